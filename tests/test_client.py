"""The shared client: reconnects, resumes and resends by itself."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from desk.client import HubClient
from server import protocol as p
from server.net import HubServer, build_hub
from server.store import MessageRecord

from .conftest import hub_config
from .helpers import agent, wait_until


async def test_a_customer_client_resumes_and_resends_after_a_cut(hub: HubServer) -> None:
    await hub.hub.add_user("a1", "李娜", "pw")
    a = await agent(hub.url, "a1")
    await a.send(type="set_status", status="online")
    seen: list[p.Msg] = []
    statuses: list[str] = []
    c = HubClient(hub.url, lambda f: seen.append(f) if isinstance(f, p.Msg) else None,
                  hello=p.Hello(name="王先生"), on_status=statuses.append)
    task = asyncio.create_task(c.run())
    await c.wait_online()
    conv = c.state.conv
    await a.expect("synced", lambda f: f["conv"] == conv)
    await c.send_text(conv, "第一句")
    await a.expect("msg", lambda f: f["text"] == "第一句")
    c.drop()
    await c.send_text(conv, "断线时写的")  # queued: not online
    for i in range(3):
        await a.say(f"客服{i}", conv=conv)
    await wait_until(lambda: any(m.text == "客服2" for m in seen), what="replayed agent lines")
    got = await a.expect("msg", lambda f: f["text"] == "断线时写的")
    assert got["seq"] > 0
    texts = [m.text for m in seen if m.sender == "agent"]
    assert texts == ["客服0", "客服1", "客服2"]  # each once, in order
    assert "offline" in statuses and statuses[-1] == "online"
    # The agent is shown a line once written; its sender's ack waits for the sync.
    await wait_until(lambda: c.pending == {}, what="the resent line acked")
    rows = await hub.hub.store.query("SELECT COUNT(*) FROM messages WHERE text='断线时写的'")
    assert rows[0][0] == 1
    await c.close()
    task.cancel()


async def test_an_agent_client_logs_back_in_with_its_token_and_cursors(hub: HubServer) -> None:
    await hub.hub.add_user("a1", "李娜", "pw")
    frames: list[object] = []
    a = HubClient(hub.url, frames.append, login=p.Login(user="a1", password="pw"))
    task = asyncio.create_task(a.run())
    await a.wait_online()
    await a.send(p.SetStatus(status="online"))
    from .helpers import customer

    c = await customer(hub.url)
    await wait_until(lambda: c.conv in a.state.cursors and c.conv not in a.state.syncing, what="assigned")
    a.drop()
    await c.say("你在吗")
    await wait_until(lambda: any(isinstance(f, p.Msg) and f.text == "你在吗" for f in frames), what="resumed")
    assigned = [f for f in frames if isinstance(f, p.Assigned)]
    assert len(assigned) == 2 and assigned[1].resumed
    assert a.state.status == "online"
    await a.close()
    task.cancel()


async def test_a_message_refused_because_the_chat_ended_leaves_the_unsent_queue(hub: HubServer) -> None:
    """invalid_state is final: the message is dropped from the queue at once and not sent after a reconnect."""
    await hub.hub.add_user("a1", "李娜", "pw")
    a = await agent(hub.url, "a1")
    await a.send(type="set_status", status="online")
    frames: list[object] = []
    c = HubClient(hub.url, frames.append, hello=p.Hello(name="王先生"))
    task = asyncio.create_task(c.run())
    await c.wait_online()
    conv = c.state.conv
    await a.expect("synced", lambda f: f["conv"] == conv)
    await a.send(type="close", conv=conv)
    await wait_until(lambda: any(isinstance(f, p.ConvState) and f.state == "closed" for f in frames), what="closed")

    def refusals(msg_id: str) -> list[p.Error]:
        return [f for f in frames if isinstance(f, p.Error) and f.ref == msg_id]

    late = await c.send_text(conv, "还有一个问题")
    await wait_until(lambda: refusals(late), what="the refusal")
    assert refusals(late)[0].code == "invalid_state"
    assert c.pending == {}  # the app was told (the error frame); nothing left to resend
    c.drop()
    await wait_until(lambda: c.state.reconnects == 1 and c.state.status == "online", what="resumed")
    again = await c.send_text(conv, "在吗")
    await wait_until(lambda: refusals(again), what="the second refusal")
    assert len(refusals(late)) == 1  # not sent again after the reconnect
    assert c.pending == {}
    rows = await hub.hub.store.query("SELECT COUNT(*) FROM messages WHERE sender='customer'")
    assert rows[0][0] == 0
    await c.close()
    task.cancel()


async def test_a_message_the_hub_could_not_store_goes_again_without_a_reconnect(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """store_failed is transient: the client sends the message again by itself, and it is stored once."""
    store = hub.hub.store
    real, failed = store.append_message, []

    def flaky(rec: MessageRecord, written: object = None) -> asyncio.Future[None]:
        if rec.sender == "customer" and not failed:
            failed.append(rec.msg_id)
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            fut.set_exception(OSError("disk full"))
            return fut
        return real(rec, written)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "append_message", flaky)
    frames: list[object] = []
    c = HubClient(hub.url, frames.append, hello=p.Hello(name="王先生"))
    task = asyncio.create_task(c.run())
    await c.wait_online()
    msg_id = await c.send_text(c.state.conv, "我的卡被吞了")
    await wait_until(lambda: any(isinstance(f, p.Ack) and f.msg_id == msg_id for f in frames), what="the ack")
    assert failed == [msg_id]
    assert [f.code for f in frames if isinstance(f, p.Error)] == ["store_failed"]
    assert c.pending == {} and c.state.reconnects == 0
    rows = await store.query("SELECT COUNT(*) FROM messages WHERE msg_id=?", (msg_id,))
    assert rows[0][0] == 1
    await c.close()
    task.cancel()


async def test_messages_dropped_by_the_rate_limit_go_again_until_acked(tmp_path: Path) -> None:
    """rate_limited names no message and is sent for only some drops: every unacked one goes again."""
    server = await build_hub(hub_config(tmp_path, rate_per_s=4.0, rate_burst=4)).start()
    try:
        frames: list[object] = []
        c = HubClient(server.url, frames.append, hello=p.Hello(name="王先生"))
        task = asyncio.create_task(c.run())
        await c.wait_online()
        texts = [f"第{i}句" for i in range(8)]
        for text in texts:
            await c.send_text(c.state.conv, text)
        await wait_until(lambda: not c.pending, what="every message acked")
        assert any(isinstance(f, p.Error) and f.code == "rate_limited" for f in frames)
        assert c.state.reconnects == 0
        rows = await server.hub.store.query("SELECT text FROM messages WHERE sender='customer' ORDER BY seq")
        assert sorted(r[0] for r in rows) == sorted(texts)  # each once
        await c.close()
        task.cancel()
    finally:
        await server.stop()
