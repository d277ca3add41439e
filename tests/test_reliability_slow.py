"""An agent desk that stops reading: nobody else waits for it, the hub's
memory for it stays bounded, it is cut off, and it resumes with nothing lost.

The slow agent holds two chats whose customers write long lines as fast as
the hub acks them; its socket stops reading (``pause_reading``: the kernel
buffers fill, then the hub's). Meanwhile another agent and its three
customers keep talking: every line still reaches them (no timing asserted,
only that it arrives). The hub's memory for the slow socket (its session
backlog and the transport's buffer) is sampled throughout and stays under
its bounds; the hub cuts the socket off; the desk logs in again with its
token and cursors and gets every message of its chats exactly once, in order.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from server.net import HubServer, build_hub
from server.protocol import MAX_FRAME_BYTES
from server.session import FAST_WRITE_LIMIT

from .conftest import hub_config
from .helpers import Client, agent, customer, wait_until
from .proxy import record_figures, scaled

MAX_OUTBOUND = 256 * 1024
LONG = "您好，关于您的信用卡账单分期，请按以下步骤操作：登录手机银行，进入信用卡页面，选择账单分期。" * 70  # ~3,000 characters


async def online(server: HubServer, user: str) -> Client:
    await server.hub.add_user(user, user, "pw")
    a = await agent(server.url, user)
    await a.send(type="set_status", status="online")
    await a.expect("status", lambda f: f["status"] == "online")
    return a


async def test_a_desk_that_stops_reading_slows_nobody_stays_bounded_and_resumes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hub")
    server = await build_hub(hub_config(tmp_path, max_outbound_bytes=MAX_OUTBOUND, rate_per_s=5000.0,
                                        rate_burst=10000, agent_grace_s=120.0)).start()  # fmt: skip
    try:
        slow = await online(server, "a1")
        writers = [await customer(server.url, f"长消息客户{i}") for i in range(2)]
        for w in writers:
            await slow.expect("synced", lambda f, w=w: f["conv"] == w.conv)
        await slow.send(type="set_status", status="away")  # keeps its two chats, takes no more
        await slow.expect("status", lambda f: f["status"] == "away")
        other = await online(server, "a2")
        others = [await customer(server.url, f"普通客户{i}") for i in range(3)]
        for c in others:
            await other.expect("synced", lambda f, c=c: f["conv"] == c.conv)
        session = server.hub.agent_sessions["a1"]
        peaks = {"backlog": 0}
        push = session.push

        def measured_push(data: bytes) -> None:  # the backlog after every frame queued for the desk
            push(data)
            peaks["backlog"] = max(peaks["backlog"], session.backlog)

        session.push = measured_push  # type: ignore[method-assign]
        slow.ws.transport.pause_reading()  # the desk freezes

        peak_buffer = sent = rounds = 0
        other_lines = 0
        for rounds in range(1, scaled(40) + 1):
            # The writers pour long lines into the slow agent's chats...
            for i in range(40):
                for w in writers:
                    await w.send(type="send", conv=w.conv, msg_id=f"r{rounds}-{i}", text=f"{LONG}#{rounds}-{i}")
                    sent += 1
            for w in writers:
                await w.expect("ack", lambda f, r=rounds: f["msg_id"] == f"r{r}-39", timeout=30)
            # ...while the other chats carry on, both ways.
            for c in others:
                got = await c.say(f"第{rounds}轮，还在吗")
                await other.expect("msg", lambda f, m=got["msg_id"]: f.get("msg_id") == m, timeout=30)
                reply = await other.say(f"在的（第{rounds}轮）", conv=c.conv)
                await c.expect("msg", lambda f, m=reply["msg_id"]: f.get("msg_id") == m, timeout=30)
                other_lines += 2
            # The hub's memory for the frozen desk stays bounded.
            transport = getattr(session.transport, "transport", None)
            if transport is not None and not transport.is_closing():
                peak_buffer = max(peak_buffer, transport.get_write_buffer_size())
            assert session.backlog <= MAX_OUTBOUND
            if session.closed:
                break
        assert session.closed, f"the frozen desk was never cut off after {sent} long lines"
        await wait_until(lambda: server.hub.agent_sessions.get("a1") is not session, timeout=10,
                         what="the hub lets go of the frozen socket")  # fmt: skip
        assert any("unsent, disconnecting" in r.getMessage() for r in caplog.records)
        assert peak_buffer <= FAST_WRITE_LIMIT + MAX_FRAME_BYTES, peak_buffer
        assert 0 < peaks["backlog"] <= MAX_OUTBOUND, peaks  # it did back up, and no further than the bound
        # Its chats stay its own (grace) and the desk resumes from what it had read.
        assert server.hub.router.agents["a1"].chats == {w.conv for w in writers}
        slow.ws.transport.resume_reading()
        await wait_until(lambda: slow.closed_code is not None, timeout=10, what="old socket closed")
        held = {w.conv: slow.cursor(w.conv) for w in writers}
        back = await Client.connect(server.url)
        await back.send(type="login", user="a1", token=slow.token, cursors={c: s for c, (s, _) in held.items()},
                        epochs={c: e for c, (_, e) in held.items()})  # fmt: skip
        for w in writers:
            card = await back.expect("assigned", lambda f, w=w: f["conv"] == w.conv)
            assert card["resumed"]
            await back.expect("synced", lambda f, w=w: f["conv"] == w.conv, timeout=30)
        checked = 0
        for w in writers:
            rows = await server.hub.store.query("SELECT seq FROM messages WHERE conv_id=? ORDER BY seq", (w.conv,))
            seqs = [f["seq"] for f in slow.of("msg", w.conv)] + [f["seq"] for f in back.of("msg", w.conv)]
            assert seqs == [r[0] for r in rows], "the slow desk's two connections: not each message once, in order"
            checked += len(seqs)
        figures = {"long_lines_sent": sent, "rounds": rounds, "peak_backlog_bytes": peaks["backlog"],
                   "peak_transport_buffer_bytes": peak_buffer, "max_outbound_bytes": MAX_OUTBOUND,
                   "other_chat_lines_delivered": other_lines, "messages_checked_after_resume": checked,
                   "frames_read_before_cutoff": len(slow.of("msg"))}  # fmt: skip
        record_figures("slow_consumer", figures)
        print(f"\nslow consumer: {figures}")
    finally:
        await server.stop()
