"""A fixed board for snapshots and tests of the supervisor monitor: agents in
every state, four queues with 30 minutes of history, today's figures,
alerts, and a watched chat. The clock is fixed (T0)."""

from __future__ import annotations

import math

from server import protocol as p

from .desk_frames import T0, customer

# The customers of the chats on the board (two share a name, as customers do).
CUSTOMERS = {"c-1": "王先生", "c-2": "李女士", "c-3": "张阿姨", "c-4": "刘洋", "c-5": "陈晨", "c-6": "杨帆",
             "c-7": "张伟", "c-8": "张伟", "c-9": "赵磊", "c-10": "黄丽", "c-11": "周杰", "c-12": "吴芳",
             "c-13": "徐静", "c-14": "孙浩", "c-15": "马超", "c-16": "朱琳", "c-20": "何女士"}  # fmt: skip


def agent(id_: str, name: str, status: str = "online", chats: dict[str, float] | None = None, *,
          connected: bool = True, max_chats: int = 5, hand: bool = False, on_for: float = 3600.0,
          handled: int = 0, frt: float | None = None, aht: float | None = None,
          sat: float | None = None, rated: int = 0, groups: list[str] | None = None) -> p.AgentRow:  # fmt: skip
    chats = chats or {}
    return p.AgentRow(id=id_, name=name, status=status, connected=connected, load=len(chats),
                      max_chats=max_chats, groups=groups or ["general"], chats=chats, hand_raised=hand,
                      logged_in_at=T0 - on_for if connected else 0.0, handled=handled,
                      first_response_p50_s=frt, handle_p50_s=aht, satisfaction=sat, rated=rated,
                      customers={c: CUSTOMERS.get(c, f"客户{c[-3:]}") for c in chats})  # fmt: skip


def agents() -> list[p.AgentRow]:
    return [
        agent("a1", "李娜", chats={"c-1": 95.0, "c-2": 40.0, "c-3": 0.0}, hand=True, on_for=3 * 3600 + 300,
              handled=14, frt=22.0, aht=372.0, sat=0.92, rated=12, groups=["cards", "general"]),
        agent("a2", "王强", chats={"c-4": 10.0, "c-5": 0.0, "c-6": 0.0, "c-7": 130.0, "c-8": 70.0},
              on_for=2 * 3600, handled=21, frt=35.0, aht=410.0, sat=0.75, rated=16),
        agent("a3", "陈静", "away", {"c-9": 0.0, "c-10": 5.0}, on_for=5400, handled=9, frt=18.0, aht=300.0,
              sat=1.0, rated=5),
        agent("a4", "赵敏", "offline", connected=False, handled=6, frt=41.0, aht=520.0, sat=0.5, rated=4),
        agent("a5", "孙磊", chats={"c-11": 45.0}, connected=False, on_for=1800, handled=3, frt=25.0),
        agent("a6", "周婷", chats={"c-12": 0.0}, max_chats=3, on_for=600, handled=2, frt=15.0, aht=240.0),
        agent("a7", "吴昊", on_for=120),
        agent("a8", "郑洁", chats={"c-13": 0.0, "c-14": 0.0, "c-15": 0.0, "c-16": 0.0}, on_for=4 * 3600,
              handled=30, frt=12.0, aht=280.0, sat=0.97, rated=25),
    ]  # fmt: skip


def series(base: float, amp: float, phase: float) -> list[int]:
    return [max(0, round(base + amp * math.sin(i / 4 + phase))) for i in range(30)]


def queues() -> list[p.QueueRow]:
    return [
        p.QueueRow(group="cards", waiting=4, by_priority={"urgent": 1, "priority": 1, "normal": 2},
                   longest_wait_s=135.0, eta_s=180, agents_online=2, abandoned=3,
                   arrivals=series(3, 2, 0.0), lengths=series(4, 3, 1.0)),
        p.QueueRow(group="credit_card", waiting=1, by_priority={"normal": 1}, longest_wait_s=20.0, eta_s=45,
                   agents_online=1, abandoned=0, arrivals=series(1, 1, 2.0), lengths=series(1, 1, 0.5)),
        p.QueueRow(group="digital", waiting=2, by_priority={"priority": 2}, longest_wait_s=62.0, eta_s=None,
                   agents_online=0, abandoned=1, arrivals=series(2, 1, 1.0), lengths=series(2, 2, 3.0)),
        p.QueueRow(group="general", waiting=0, longest_wait_s=0.0, eta_s=30, agents_online=4, abandoned=2,
                   arrivals=series(4, 3, 0.5), lengths=series(1, 1, 2.5)),
    ]  # fmt: skip


def totals() -> dict[str, float]:
    return {
        "waiting": 7.0, "active": 16.0, "agents_online": 5.0, "chats_started": 212.0, "handoffs": 118.0,
        "messages": 3480.0, "answer_rate": 0.931, "abandoned": 6.0, "abandon_rate": 0.051,
        "frt_p50_s": 24.0, "frt_p90_s": 88.0, "handle_p50_s": 356.0, "fcr_rate": 0.84,
        "sat_very_satisfied": 41.0, "sat_satisfied": 22.0, "sat_dissatisfied": 5.0,
        "bot_contained": 94.0, "bot_containment": 0.443, "asked": 127.0, "answered": 118.0,
    }  # fmt: skip


def alerts() -> list[p.AlertRow]:
    return [
        p.AlertRow(kind="failed_login", who="a9", at=T0 - 900),
        p.AlertRow(kind="queue_wait", who="cards", conv="c-20", customer="何女士", at=T0 - 200),
        p.AlertRow(kind="unanswered", who="a2", conv="c-7", customer="张伟", at=T0 - 90),
        p.AlertRow(kind="unanswered", who="a2", conv="c-8", customer="张伟", at=T0 - 70),
        p.AlertRow(kind="raised_hand", who="a1", conv="c-1", customer="王先生", at=T0 - 30),
    ]


def login() -> p.LoginOk:
    return p.LoginOk(user="sup", role="supervisor", name="值班主管", token="t", session="s-feedfacecafe0001")


def board() -> p.Board:
    return p.Board(full=True, agents=agents(), queues=queues(), totals=totals(), alerts=alerts())


def figures() -> list[p.Frame]:
    return [
        p.BotMisses(rows=[("信用卡年费怎么减免", 17, T0 - 60), ("手机银行转账限额能调高吗", 11, T0 - 300),
                          ("外币兑换手续费多少", 8, T0 - 900), ("网点几点开门", 5, T0 - 1200)]),
        p.PhraseStats(rows=[("t-hi", "hi", "问候", 58, 1302), ("t-wait", "wait", "请稍候", 41, 988),
                            ("t-gs", "gs", "挂失指引", 12, 240), ("t-bye", "bye", "结束语", 37, 1120)]),
    ]  # fmt: skip


def opening_frames() -> list[p.Frame]:
    return [login(), board(), *figures()]


def audit_rows() -> p.AuditRows:
    acts = [("a9", "login_failed", "", {"peer": "10.0.0.8", "reason": "bad_credentials"}),
            ("sup", "watch", "c-1", {}), ("a1", "raise_hand", "c-1", {"note": "客户要求经理"}),
            ("sup", "reassign", "c-7", {"from": "a2", "to": "a7"}), ("a2", "login", "", {"via": "password"})]
    return p.AuditRows(rows=[p.AuditEntry(id=120 - i, ts=T0 - 60 * i, actor=a, action=act, target=t, detail=d)
                             for i, (a, act, t, d) in enumerate(acts)])  # fmt: skip


def watched_chat() -> list[p.Frame]:
    """Watching c-1 (李娜's chat): history with an ID and a phone number that
    must show masked, then synced."""
    return [
        p.Watching(conv="c-1", customer=customer("王先生"), agent="a1", state="assigned", last_seq=5,
                   handoff=p.HandoffInfo(reason="customer_asked", group="cards", intents=["card-swallowed-atm"])),
        p.Msg(conv="c-1", seq=1, kind="bot", sender="bot", ts=T0 - 300, text="您好，我是示例银行智能客服。"),
        p.Msg(conv="c-1", seq=2, kind="text", sender="customer", sender_id="customer", ts=T0 - 280,
              text="卡被ATM吞了，身份证110101199003071234，手机13812345678"),
        p.Msg(conv="c-1", seq=3, kind="system", sender="system", ts=T0 - 200, text="客服 李娜 已接入，为您服务。"),
        p.Msg(conv="c-1", seq=4, kind="text", sender="agent", sender_id="a1", sender_name="李娜", ts=T0 - 190,
              text="您好，请问是哪个网点的ATM？"),
        p.Msg(conv="c-1", seq=5, kind="text", sender="customer", sender_id="customer", ts=T0 - 95,
              text="人民路支行，我很着急"),
        p.Synced(conv="c-1", last_seq=5),
    ]  # fmt: skip


def big_board(n: int = 2000) -> p.Board:
    """A board of ``n`` agents (benchmarks and the smoothness test)."""
    rows = [agent(f"x{i:04d}", f"坐席{i}", chats={f"cx-{i}-{k}": float((i * 7 + k * 13) % 150) for k in range(i % 6)})
            for i in range(n)]  # fmt: skip
    return p.Board(full=True, agents=rows, queues=queues(), totals=totals())


def big_delta(n: int = 2000, changed: int = 50, round_: int = 1) -> p.Board:
    rows = [agent(f"x{i:04d}", f"坐席{i}", chats={f"cx-{i}-{k}": float((i + round_ + k) % 150) for k in range(round_ % 6)})
            for i in range(0, n, max(1, n // changed))]  # fmt: skip
    return p.Board(full=False, agents=rows)
