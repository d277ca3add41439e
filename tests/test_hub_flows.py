"""Whole flows against a real hub on a loopback port with real websocket clients."""

from __future__ import annotations

import asyncio

import pytest

from server.net import HubServer

from .helpers import Client, agent, customer, wait_until


async def online_agent(hub: HubServer, user: str, name: str = "", groups: list[str] | None = None,
                       max_chats: int = 5) -> Client:
    if user not in hub.hub.users:
        await hub.hub.add_user(user, name or user, "pw", groups=groups or ["general"], max_chats=max_chats)
    a = await agent(hub.url, user)
    await a.send(type="set_status", status="online")
    await a.expect("status", lambda f: f["status"] == "online")
    return a


async def test_a_chat_from_first_line_to_rating(hub: HubServer) -> None:
    """Customer asks, waits, an agent joins, they talk, the agent closes, the customer rates."""
    c = await customer(hub.url, "王先生", channel="app", flags=["vip"])
    await c.expect("state", lambda f: f["state"] == "queued")
    q = await c.expect("queue")
    assert q["position"] == 1 and q["eta_s"] is None  # nobody online yet: no estimate

    a = await online_agent(hub, "a1", "李娜")
    card = await a.expect("assigned")
    assert card["conv"] == c.conv
    assert card["customer"] == {"name": "王先生", "channel": "app", "flags": ["vip"]}
    assert card["handoff"]["priority"] == "priority"
    await a.expect("synced", lambda f: f["conv"] == c.conv)
    joined = await c.expect("state", lambda f: f["state"] == "assigned")
    assert joined["agent_name"] == "李娜"

    await c.send(type="typing", conv=c.conv, on=True)
    await a.expect("typing", lambda f: f["who"] == "customer")
    ack = await c.say("我的卡被ATM吞了")
    got = await a.expect("msg", lambda f: f.get("msg_id") == ack["msg_id"])
    assert got["seq"] == ack["seq"] and got["text"] == "我的卡被ATM吞了"

    await a.send(type="typing", conv=c.conv, on=True)
    assert (await c.expect("typing", lambda f: f["who"] == "agent"))["name"] == "李娜"
    reply = await a.say("您好，请问是哪个网点的ATM？", conv=c.conv)
    assert reply["seq"] == ack["seq"] + 1
    await c.expect("msg", lambda f: f["sender"] == "agent")

    await a.send(type="close", conv=c.conv, wrapup="card-swallowed")
    await a.expect("unassigned", lambda f: f["conv"] == c.conv and f["reason"] == "agent_closed")
    await a.expect("ok", lambda f: f["ref"] == "close")
    await c.expect("state", lambda f: f["state"] == "closed")
    await c.expect("rating_request")
    await c.send(type="rate", conv=c.conv, score="very_satisfied", comment="很快")
    await c.expect("ok", lambda f: f["ref"] == "rate")
    await c.send(type="rate", conv=c.conv, score="dissatisfied")
    assert (await c.expect("error"))["code"] == "already_rated"

    rows = await hub.hub.store.query(
        "SELECT state, rating, rating_comment, wrapup_code, closed_by FROM conversations WHERE id=?", (c.conv,)
    )
    assert tuple(rows[0]) == ("closed", "very_satisfied", "很快", "card-swallowed", "a1")
    seqs = [r[0] for r in await hub.hub.store.query("SELECT seq FROM messages WHERE conv_id=? ORDER BY seq", (c.conv,))]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_internal_notes_reach_staff_only(hub: HubServer) -> None:
    c = await customer(hub.url)
    a = await online_agent(hub, "a1")
    await a.expect("synced")
    await a.send(type="note", conv=c.conv, msg_id="n1", text="客户情绪激动，注意安抚")
    note = await a.expect("ack", lambda f: f["msg_id"] == "n1")
    after = await c.say("还在吗")
    assert after["seq"] == note["seq"] + 1
    await a.expect("msg", lambda f: f.get("msg_id") == after["msg_id"])
    assert "客户情绪激动，注意安抚" not in c.texts()
    # Even a full replay to the customer leaves the note out.
    again = await Client.connect(hub.url)
    await again.send(type="hello", name="x", resume_token=c.token, last_seq=0)
    await again.expect("synced")
    assert "客户情绪激动，注意安抚" not in again.texts()
    assert "还在吗" in again.texts()  # its own lines are part of the transcript it resumes


async def test_a_sixth_customer_waits_until_a_chat_closes(hub: HubServer) -> None:
    a = await online_agent(hub, "a1")
    cs = [await customer(hub.url, f"客户{i}") for i in range(6)]
    for c in cs[:5]:
        await c.expect("state", lambda f: f["state"] == "assigned")
    sixth = cs[5]
    q = await sixth.expect("queue")
    assert q["position"] == 1 and q["eta_s"] is not None
    assert len(a.of("assigned")) == 5
    await a.send(type="close", conv=cs[2].conv)
    card = await a.expect("assigned", lambda f: f["conv"] == sixth.conv)
    assert card["conv"] == sixth.conv
    await sixth.expect("state", lambda f: f["state"] == "assigned")
    assert len(hub.hub.router.agents["a1"].chats) == 5


async def test_queue_position_and_wait_update_when_someone_ahead_leaves(hub: HubServer) -> None:
    first = await customer(hub.url, "甲")
    second = await customer(hub.url, "乙")
    await second.expect("queue", lambda f: f["position"] == 2)
    await first.send(type="end", conv=first.conv)
    await first.expect("state", lambda f: f["state"] == "closed")
    await second.expect("queue", lambda f: f["position"] == 1)


async def test_elderly_and_urgent_jump_the_queue_fifo_within_a_class(hub: HubServer) -> None:
    plain = await customer(hub.url, "普通")
    elderly = await customer(hub.url, "张阿姨", flags=["elderly"])
    plain2 = await customer(hub.url, "普通2")
    await plain2.expect("queue")
    assert hub.hub.router.waiting("general") == [elderly.conv, plain.conv, plain2.conv]


async def test_transfer_to_a_group_carries_history_and_note(hub: HubServer) -> None:
    a1 = await online_agent(hub, "a1", "李娜", groups=["general"])
    c = await customer(hub.url)
    await a1.expect("synced")
    await c.say("我想问信用卡分期")
    b = await online_agent(hub, "b1", "赵敏", groups=["credit_card"])
    await a1.send(type="transfer", conv=c.conv, group="credit_card", note="客户想办账单分期，已核实身份")
    await a1.expect("unassigned", lambda f: f["reason"] == "transferred")
    card = await b.expect("assigned", lambda f: f["conv"] == c.conv)
    assert card["handoff"]["transfer_note"] == "客户想办账单分期，已核实身份"
    assert card["handoff"]["transferred_from"] == "李娜"
    await b.expect("synced", lambda f: f["conv"] == c.conv)
    texts = b.texts(c.conv)
    assert "我想问信用卡分期" in texts  # the whole history went along
    assert any("已核实身份" in t for t in texts)  # the note, staff-only
    assert not any("已核实身份" in t for t in c.texts())
    await c.expect("state", lambda f: f["state"] == "assigned" and f["agent_name"] == "赵敏")
    # The first agent can no longer write into the chat.
    await a1.send(type="send", conv=c.conv, msg_id="late", text="还有什么可以帮您")
    assert (await a1.expect("error", lambda f: f["ref"] == "late"))["code"] == "unknown_conversation"


async def test_transfer_to_a_named_agent_and_refusal_when_full(hub: HubServer) -> None:
    a1 = await online_agent(hub, "a1")
    c = await customer(hub.url)
    await a1.expect("synced")
    b = await online_agent(hub, "b1", max_chats=1, groups=["other"])
    filler = await customer(hub.url, "填充")
    # b1 is not in "general", so filler stays with a1 (least loaded of eligible)
    await filler.expect("state", lambda f: f["state"] == "assigned")
    await a1.send(type="transfer", conv=c.conv, agent="b1", note="专家处理")
    await b.expect("assigned", lambda f: f["conv"] == c.conv)
    await a1.expect("unassigned", lambda f: f["conv"] == c.conv)
    await a1.send(type="transfer", conv=filler.conv, agent="b1")
    err = await a1.expect("error", lambda f: f.get("conv") == filler.conv)
    assert err["code"] == "agent_unavailable"
    assert filler.conv in hub.hub.router.agents["a1"].chats


async def test_away_keeps_chats_offline_requeues(hub: HubServer) -> None:
    a = await online_agent(hub, "a1")
    c = await customer(hub.url)
    await a.expect("synced")
    await a.send(type="set_status", status="away")
    await a.expect("status", lambda f: f["status"] == "away")
    c2 = await customer(hub.url)
    await c2.expect("queue")
    assert hub.hub.router.agents["a1"].chats == {c.conv}
    await a.send(type="set_status", status="offline")
    await a.expect("unassigned", lambda f: f["conv"] == c.conv and f["reason"] == "requeued")
    await c.expect("state", lambda f: f["state"] == "queued")
    assert hub.hub.router.waiting("general") == [c.conv, c2.conv]


async def test_a_resend_with_the_same_id_is_stored_once(hub: HubServer) -> None:
    c = await customer(hub.url)
    first = await c.say("转账没到账", msg_id="dup-1")
    await c.send(type="send", conv=c.conv, msg_id="dup-1", text="转账没到账")
    second = await c.expect("ack", lambda f: f["msg_id"] == "dup-1" and f.get("duplicate"))
    assert second["seq"] == first["seq"]
    rows = await hub.hub.store.query("SELECT COUNT(*) FROM messages WHERE msg_id='dup-1'")
    assert rows[0][0] == 1


async def test_forged_conversation_ids_are_refused_and_leak_nothing(hub: HubServer) -> None:
    victim = await customer(hub.url, "受害人")
    await victim.say("我的身份证号是 110101199003074578")
    mallory = await customer(hub.url, "攻击者")
    for frame in (
        dict(type="send", conv=victim.conv, msg_id="x1", text="hi"),
        dict(type="typing", conv=victim.conv),
        dict(type="end", conv=victim.conv),
        dict(type="rate", conv=victim.conv, score="dissatisfied"),
        dict(type="send", conv="c-0000000000000000", msg_id="x2", text="hi"),
    ):
        start = len(mallory.frames)
        await mallory.send(**frame)
        err = await mallory.expect("error", start=start)
        assert err["code"] == "unknown_conversation"
    a = await online_agent(hub, "a1")
    await a.expect("synced")
    other = await online_agent(hub, "a2")
    held = next(iter(hub.hub.router.agents["a1"].chats))
    await other.send(type="send", conv=held, msg_id="y", text="hi")
    assert (await other.expect("error"))["code"] == "unknown_conversation"
    await other.send(type="close", conv=held)
    assert (await other.expect("error", lambda f: f["ref"] == "close"))["code"] == "unknown_conversation"
    assert not any(f.get("conv") == victim.conv and f["type"] == "msg" for f in mallory.frames)
    assert hub.hub.metrics.forbidden >= 7
    assert hub.hub.convs[victim.conv].rec.state != "closed"


async def test_customer_cut_mid_stream_resumes_with_nothing_lost_or_duplicated(hub: HubServer) -> None:
    a = await online_agent(hub, "a1")
    c = await customer(hub.url)
    await a.expect("synced")
    for i in range(5):
        await a.say(f"第{i}条", conv=c.conv)
    await c.expect("msg", lambda f: f["text"] == "第4条")
    held, epoch = c.cursor(c.conv)
    await c.close()
    for i in range(5, 10):  # sent while the customer is away
        await a.say(f"第{i}条", conv=c.conv)
    back = await Client.connect(hub.url)
    await back.send(type="hello", name="王先生", resume_token=c.token, last_seq=held, last_epoch=epoch)
    w = await back.expect("welcome")
    assert w["resumed"] and w["conv"] == c.conv
    await back.expect("synced")
    got = [f["text"] for f in back.of("msg")]
    assert got == [f"第{i}条" for i in range(5, 10)]
    seqs = [f["seq"] for f in back.of("msg")]
    assert seqs == sorted(set(seqs)) and seqs[0] == held + 1
    await a.say("第10条", conv=c.conv)  # live traffic follows the replay
    await back.expect("msg", lambda f: f["text"] == "第10条")


async def test_a_resume_the_hub_cannot_honour_is_answered_explicitly(hub: HubServer) -> None:
    stranger = await Client.connect(hub.url)
    await stranger.send(type="hello", name="x", resume_token="not-a-token", last_seq=3)
    assert (await stranger.expect("error"))["code"] == "unknown_token"
    c = await customer(hub.url)
    await c.say("你好")
    back = await Client.connect(hub.url)
    await back.send(type="hello", name="x", resume_token=c.token, last_seq=999)
    rs = await back.expect("resync")
    assert rs["conv"] == c.conv
    synced = await back.expect("synced")
    assert back.of("msg")[0]["seq"] == 1  # the full history from the start
    assert synced["last_seq"] >= 2
    assert c.closed_code == 4001 or await _closed(c) == 4001  # the old link was replaced


async def _closed(c: Client) -> int | None:
    await wait_until(lambda: c.closed_code is not None, what="old socket closed")
    return c.closed_code


async def test_agent_reconnecting_within_grace_resumes_its_chats(hub: HubServer) -> None:
    a = await online_agent(hub, "a1")
    c = await customer(hub.url)
    await a.expect("synced")
    await c.say("第一句")
    await a.expect("msg", lambda f: f["text"] == "第一句")
    cursor, epoch = a.cursor(c.conv)
    token = a.token
    await a.close()
    await wait_until(lambda: not hub.hub.router.agents["a1"].connected, what="disconnect seen")
    await c.say("第二句")  # while the agent is gone
    back = await Client.connect(hub.url)
    await back.send(type="login", user="a1", token=token, cursors={c.conv: cursor}, epochs={c.conv: epoch})
    await back.expect("login_ok")
    card = await back.expect("assigned", lambda f: f["conv"] == c.conv)
    assert card["resumed"]
    await back.expect("synced", lambda f: f["conv"] == c.conv)
    assert [f["text"] for f in back.of("msg")] == ["第二句"]
    assert hub.hub.router.agents["a1"].chats == {c.conv}


async def test_agent_gone_past_grace_sends_chats_to_the_front_and_tells_customers(tmp_path) -> None:
    from server.net import build_hub

    from .conftest import hub_config

    server = await build_hub(hub_config(tmp_path, agent_grace_s=0.3)).start()
    try:
        a = await online_agent(server, "a1")
        c = await customer(server.url)
        await a.expect("synced")
        waiting = await customer(server.url, "后来者")
        await server.hub.add_user("a2", "a2", "pw", max_chats=0)
        await a.close()
        await c.expect("state", lambda f: f["state"] == "queued" and f["reason"] == "agent_lost", timeout=5)
        assert server.hub.router.waiting("general")[0] == c.conv  # ahead of the one already waiting
        assert waiting.conv in server.hub.router.waiting("general")
        await c.expect("msg", lambda f: "重新排队" in f["text"])
        rows = await server.hub.store.query("SELECT action FROM audit WHERE action='requeue'")
        assert rows
    finally:
        await server.stop()


async def test_idle_customers_are_closed_with_a_notice(tmp_path) -> None:
    from server.net import build_hub

    from .conftest import hub_config

    server = await build_hub(hub_config(tmp_path, customer_idle_s=0.3)).start()
    try:
        a = await online_agent(server, "a1")
        c = await customer(server.url)
        await a.expect("synced")
        await a.say("请问还有其他问题吗？", conv=c.conv)
        closed = await c.expect("state", lambda f: f["state"] == "closed", timeout=5)
        assert closed["reason"] == "idle"
        assert any("长时间未收到您的消息" in t for t in c.texts())
        await a.expect("unassigned", lambda f: f["reason"] == "idle")
    finally:
        await server.stop()


async def test_a_customer_who_leaves_the_queue_is_counted_abandoned(tmp_path) -> None:
    from server.net import build_hub

    from .conftest import hub_config

    server = await build_hub(hub_config(tmp_path, customer_grace_s=0.2)).start()
    try:
        c = await customer(server.url)
        await c.expect("queue")
        await c.close()
        await wait_until(lambda: c.conv not in server.hub.convs, what="abandoned")
        rows = await server.hub.store.query("SELECT state, close_reason FROM conversations WHERE id=?", (c.conv,))
        assert tuple(rows[0]) == ("closed", "abandoned")
        assert server.hub.router.waiting("general") == []
    finally:
        await server.stop()


async def test_supervisor_sees_agents_queues_and_live_changes(hub: HubServer) -> None:
    await hub.hub.add_user("sup", "主管", "pw", role="supervisor")
    s = await agent(hub.url, "sup")
    full = await s.expect("board", lambda f: f["full"])
    assert full["agents"] == [] or all("load" in r for r in full["agents"])
    a = await online_agent(hub, "a1", "李娜")
    c = await customer(hub.url)
    await a.expect("synced")
    row = await s.expect("board", lambda f: any(r["id"] == "a1" and r["load"] == 1 for r in f.get("agents", [])))
    assert row
    await a.send(type="raise_hand", conv=c.conv, note="客户要求经理")
    await s.expect("board", lambda f: any(x["kind"] == "raised_hand" for x in f.get("alerts", [])))
    await a.send(type="close", conv=c.conv)
    await s.expect("board", lambda f: any(r["id"] == "a1" and r["load"] == 0 for r in f.get("agents", [])))
    # Customers and agents may not act as supervisors and vice versa.
    await s.send(type="send", conv=c.conv, msg_id="s1", text="hi")
    assert (await s.expect("error"))["code"] == "forbidden"


async def test_two_hundred_customers_ten_agents_each_chat_assigned_once(tmp_path) -> None:
    """200 customers ask at once: caps hold, every chat is assigned exactly once, FIFO per class."""
    from server.net import build_hub

    from .conftest import hub_config

    server = await build_hub(hub_config(tmp_path)).start()
    try:
        agents = []
        for i in range(10):
            await server.hub.add_user(f"a{i}", f"坐席{i}", "pw", max_chats=5)
        for i in range(10):
            agents.append(await online_agent(server, f"a{i}"))
        flags = [["elderly"] if i % 7 == 0 else [] for i in range(200)]
        customers = await asyncio.gather(*[customer(server.url, f"客户{i}", flags=flags[i]) for i in range(200)])
        await wait_until(lambda: sum(len(a.chats) for a in server.hub.router.agents.values()) == 50,
                         what="50 chats assigned")
        server.hub.router.check_invariants()
        for a in server.hub.router.agents.values():
            assert len(a.chats) == 5
        # Close chats one at a time; each freed slot goes to the next in order.
        order: list[str] = []
        waiting_before = list(server.hub.router.waiting("general"))
        klass = {c.conv: server.hub.router.chats[c.conv].klass for c in customers if c.conv in waiting_before}
        asked = {c.conv: server.hub.router.chats[c.conv].asked_at for c in customers if c.conv in waiting_before}
        assert waiting_before == sorted(waiting_before, key=lambda v: (klass[v], asked[v]))
        for round_ in range(30):
            a = agents[round_ % 10]
            conv = sorted(server.hub.router.agents[f"a{round_ % 10}"].chats)[0]
            await a.send(type="close", conv=conv)
            await a.expect("ok", lambda f, conv=conv: f["ref"] == "close" and f["conv"] == conv)
            newest = [f["conv"] for f in a.of("assigned")][-1]
            order.append(newest)
            server.hub.router.check_invariants()
        assert order == waiting_before[:30]
        all_assigned = [f["conv"] for a in agents for f in a.of("assigned")]
        assert len(all_assigned) == len(set(all_assigned)) == 80
    finally:
        await server.stop()


async def test_reveal_is_audited_and_the_directory_lists_groups_and_agents(hub: HubServer) -> None:
    a = await online_agent(hub, "a1", "李娜", groups=["general", "cards"])
    c = await customer(hub.url)
    await a.expect("synced")
    await c.say("我的手机号13812345678")
    await a.send(type="reveal", conv=c.conv)
    await a.expect("ok", lambda f: f["ref"] == "reveal")
    rows = await hub.hub.store.query("SELECT actor, target FROM audit WHERE action='reveal'")
    assert [tuple(r) for r in rows] == [("a1", c.conv)]
    await a.send(type="directory_get")
    d = await a.expect("directory")
    assert {"general", "cards"} <= {g["group"] for g in d["groups"]}
    assert d["agents"][0]["id"] == "a1" and d["agents"][0]["load"] == 1


async def test_a_chat_requeued_after_its_customer_left_is_abandoned_not_kept(tmp_path) -> None:
    from server.net import build_hub

    from .conftest import hub_config

    server = await build_hub(hub_config(tmp_path, agent_grace_s=0.2, customer_grace_s=0.3)).start()
    try:
        a = await online_agent(server, "a1")
        c = await customer(server.url)
        await a.expect("synced")
        await c.close()  # the customer leaves while with the agent
        await a.close()  # then the agent's link drops past its grace: the chat is requeued
        await wait_until(lambda: c.conv not in server.hub.convs, timeout=5, what="abandoned")
        rows = await server.hub.store.query("SELECT close_reason FROM conversations WHERE id=?", (c.conv,))
        assert rows[0][0] == "abandoned"
    finally:
        await server.stop()


async def test_the_agent_sees_the_customer_go_offline_and_come_back(hub: HubServer) -> None:
    """A customer whose link drops mid-chat stays the agent's; the desk is told, and told again on return."""
    a = await online_agent(hub, "a1")
    c = await customer(hub.url)
    card = await a.expect("assigned")
    assert card["customer"].get("online", True)  # omitted when true
    await a.expect("synced")
    await c.close()
    gone = await a.expect("presence", lambda f: f["conv"] == c.conv)
    assert gone["online"] is False
    assert hub.hub.router.agents["a1"].chats == {c.conv}  # still the agent's
    # An agent logging in again meanwhile learns it from the card.
    token = a.token
    await a.close()
    await wait_until(lambda: not hub.hub.router.agents["a1"].connected, what="agent gone")
    a2 = await Client.connect(hub.url)
    await a2.send(type="login", user="a1", token=token)
    card = await a2.expect("assigned", lambda f: f["conv"] == c.conv)
    assert card["customer"]["online"] is False
    back = await Client.connect(hub.url)
    await back.send(type="hello", name="王先生", resume_token=c.token, last_seq=0)
    await back.expect("synced")
    came = await a2.expect("presence", lambda f: f["conv"] == c.conv and f["online"])
    assert came["online"] is True
    assert not [f for f in back.of("presence")]  # the customer is never sent presence frames


async def test_a_new_chat_is_welcomed_once_stored_and_its_greeting_follows_the_welcome(tmp_path) -> None:
    """A token must always name a stored chat (a customer's unacked lines go again into it after a
    power cut), so the welcome waits for the sync; the bot's greeting, written with the chat and
    shown at its write, is held for the customer until then and never comes before the welcome."""
    import os
    import signal

    from server.bot.kb import DEFAULT_KB_PATH
    from server.net import build_hub

    from .conftest import hub_config

    server = await build_hub(hub_config(tmp_path, kb_path=DEFAULT_KB_PATH)).start()
    try:
        sync_pid = server.hub.store._sync.pid  # type: ignore[attr-defined]
        os.kill(sync_pid, signal.SIGSTOP)
        try:
            c = await Client.connect(server.url)
            await c.send(type="hello", name="王先生")
            await wait_until(lambda: server.hub.convs and all(conv.committed_seq for conv in server.hub.convs.values()),
                             what="the chat and its greeting written")  # fmt: skip
            await asyncio.sleep(0.3)
            assert c.frames == [], "welcomed (or greeted) before the chat was synced"
        finally:
            os.kill(sync_pid, signal.SIGCONT)
        await c.expect("msg", lambda f: f["sender"] == "bot")
        kinds = [f["type"] for f in c.frames]
        assert kinds.index("welcome") == 0 and kinds.count("msg") == 1, kinds
    finally:
        await server.stop()


async def test_a_message_is_shown_once_written_and_acked_only_once_synced(tmp_path) -> None:
    """With FULL, a message reaches the other side as soon as it is written (it then survives a
    crash of the hub), and its sender's ack waits for the WAL's fdatasync (it then survives a power
    cut). A customer resuming meanwhile gets it from the replay, once."""
    import os
    import signal

    from server.net import build_hub

    from .conftest import hub_config

    server = await build_hub(hub_config(tmp_path, sqlite_synchronous="FULL")).start()
    try:
        a = await online_agent(server, "a1")
        c = await customer(server.url)
        await a.expect("synced")
        await c.say("在吗")
        sync_pid = server.hub.store._sync.pid  # type: ignore[attr-defined]
        os.kill(sync_pid, signal.SIGSTOP)  # the disk is slow: the next commit waits for its sync
        try:
            await a.send(type="send", conv=c.conv, msg_id="r1", text="还没落盘的回复")
            shown = await c.expect("msg", lambda f: f.get("msg_id") == "r1")
            assert shown["epoch"] == server.hub.hub_epoch
            back = await Client.connect(server.url)
            await back.send(type="hello", name="王先生", resume_token=c.token, last_seq=0)
            await back.expect("synced")
            assert back.texts().count("还没落盘的回复") == 1
            await asyncio.sleep(0.3)
            assert not a.of("ack"), "acked before the sync"
        finally:
            os.kill(sync_pid, signal.SIGCONT)
        ack = await a.expect("ack", lambda f: f["msg_id"] == "r1")
        assert (ack["seq"], ack["epoch"]) == (shown["seq"], shown["epoch"])
        await a.say("第二句", conv=c.conv)
        await back.expect("msg", lambda f: f["text"] == "第二句")
        assert back.texts().count("还没落盘的回复") == 1
    finally:
        await server.stop()


async def test_an_action_the_hub_could_not_store_is_answered_and_can_be_tried_again(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rating (or close, transfer...) whose write fails gets store_failed, never silence,
    and the customer can rate again: nothing half-done is kept in memory."""
    c = await customer(hub.url, "王先生")
    a = await online_agent(hub, "a1", "李娜")
    await a.expect("synced", lambda f: f["conv"] == c.conv)
    await a.send(type="close", conv=c.conv, wrapup="resolved")
    await c.expect("rating_request")
    store = hub.hub.store
    real = store.update_conversation

    def failing(conv_id: str, **fields: object) -> asyncio.Future[None]:
        if "rating" not in fields:
            return real(conv_id, **fields)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_exception(OSError("disk full"))
        return fut

    monkeypatch.setattr(store, "update_conversation", failing)
    await c.send(type="rate", conv=c.conv, score="satisfied")
    err = await c.expect("error")
    assert (err["code"], err["ref"], err["conv"]) == ("store_failed", "rate", c.conv) and "rate again" in err["message"]
    monkeypatch.setattr(store, "update_conversation", real)
    await c.send(type="rate", conv=c.conv, score="satisfied")
    await c.expect("ok", lambda f: f["ref"] == "rate")
    rows = await store.query("SELECT rating FROM conversations WHERE id=?", (c.conv,))
    assert rows[0][0] == "satisfied"
