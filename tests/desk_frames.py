"""A fixed conversation set for snapshots and benchmarks of the agent desk."""

from __future__ import annotations

from server import protocol as p

T0 = 1795600000.0  # a fixed clock: snapshots must not depend on today


def customer(name: str, flags: list[str] | None = None, lang: str = "zh") -> p.CustomerInfo:
    return p.CustomerInfo(name=name, channel="app", flags=flags or [], lang=lang)


def opening_frames() -> list[p.Frame]:
    return [
        p.LoginOk(user="a1", role="agent", name="李娜", token="t", session="s-0123456789abcdef",
                  status="online", max_chats=5, groups=["general", "cards"]),
        p.StatusEvent(status="online", max_chats=5, load=3),
        p.Assigned(conv="c-1", customer=customer("王先生"), last_seq=4,
                   handoff=p.HandoffInfo(reason="customer_asked", group="cards", intents=["card-swallowed-atm"])),
        p.Msg(conv="c-1", seq=1, kind="bot", sender="bot", ts=T0 - 120,
              text="您好，我是示例银行智能客服助手，可以为您解答银行卡、转账、手机银行等常见问题。如需人工服务，请随时回复「人工」。"),
        p.Msg(conv="c-1", seq=2, kind="text", sender="customer", sender_id="customer", ts=T0 - 100,
              text="我的卡昨天在人民路支行的ATM取钱的时候被吞了，卡号尾号0128，手机13812345678，现在怎么办啊"),
        p.Msg(conv="c-1", seq=3, kind="bot", sender="bot", ts=T0 - 99,
              text="1. 请不要离开，也不要相信ATM旁张贴的“客服电话”。\n2. 记下ATM所在网点和编号，工作日到该网点凭身份证领回。"),
        p.Msg(conv="c-1", seq=4, kind="text", sender="customer", sender_id="customer", ts=T0 - 40, text="人工"),
        p.Synced(conv="c-1", last_seq=4),
        p.Assigned(conv="c-2", customer=customer("张阿姨", ["elderly"]), last_seq=1,
                   handoff=p.HandoffInfo(reason="misses", group="digital", priority="priority", bot_misses=2)),
        p.Msg(conv="c-2", seq=1, kind="text", sender="customer", sender_id="customer", ts=T0 - 75,
              text="我不会用手机银行转账，能一步一步教我吗"),
        p.Synced(conv="c-2", last_seq=1),
        p.Assigned(conv="c-3", customer=customer("李女士"), last_seq=1,
                   handoff=p.HandoffInfo(reason="urgent", group="cards", priority="urgent", intents=["card-lost"])),
        p.Msg(conv="c-3", seq=1, kind="text", sender="customer", sender_id="customer", ts=T0 - 150,
              text="卡丢了！卡号 ***************0128 快帮我挂失"),
        p.Synced(conv="c-3", last_seq=1),
    ]
