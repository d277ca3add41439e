"""The shared client: reconnects, resumes and resends by itself."""

from __future__ import annotations

import asyncio

from desk.client import HubClient
from server import protocol as p
from server.net import HubServer

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
    assert c.pending == {}
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
