"""Bad input gets a clear error or close code, and nothing else is disturbed."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import pytest

from server.net import HubServer, build_hub

from .conftest import hub_config
from .helpers import Client, agent, customer, wait_until


async def stored_messages(hub: HubServer) -> list[tuple]:
    return [tuple(r) for r in await hub.hub.store.query("SELECT conv_id, seq, text FROM messages ORDER BY conv_id, seq")]


@pytest.fixture
async def bystander(hub: HubServer) -> Client:
    """A customer mid-chat whose conversation must carry on through every attack."""
    c = await customer(hub.url, "旁观者")
    await c.say("我在正常咨询")
    return c


async def assert_bystander_unharmed(hub: HubServer, c: Client, before: list[tuple]) -> None:
    ack = await c.say("还能继续聊吗")
    assert ack["seq"] > 0
    after = await stored_messages(hub)
    assert after[: len(before)] == before or set(before) <= set(after)


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ("{not json", "bad_json"),
        ("[1, 2, 3]", "bad_frame"),
        ('{"type": "teleport"}', "unknown_type"),
        ('{"no_type": 1}', "bad_frame"),
        ('{"type": "hello"}', "bad_frame"),  # missing name
        ('{"type": "hello", "name": 42}', "bad_frame"),  # wrong type
        ('{"type": "hello", "name": "x", "flags": "vip"}', "bad_frame"),
        ('{"type": "hello", "name": "x", "extra": true}', "bad_frame"),  # unknown field
        ('{"type": "hello", "name": "' + "名" * 65 + '"}', "bad_frame"),  # too long a name
        ('{"type": "send", "conv": "c", "msg_id": "m", "text": "hi"}', "not_logged_in"),
        ('{"type": "set_status", "status": "online"}', "not_logged_in"),
        ('{"type": "login", "user": "ghost", "password": "x", "cursors": {"c": -1}}', "bad_frame"),
    ],
)
async def test_malformed_frames_get_a_clear_error(hub: HubServer, bystander: Client, payload: str, code: str) -> None:
    before = await stored_messages(hub)
    c = await Client.connect(hub.url)
    await c.raw(payload)
    err = await c.expect("error")
    assert err["code"] == code, err
    assert err["message"]
    # The same connection still works afterwards.
    await c.send(type="hello", name="之后")
    await c.expect("welcome")
    await assert_bystander_unharmed(hub, bystander, before)


async def test_binary_frames_are_refused_and_the_connection_survives(hub: HubServer, bystander: Client) -> None:
    c = await customer(hub.url)
    await c.raw(b"\xff\xfe\x00binary")
    assert (await c.expect("error"))["code"] == "binary_not_supported"
    await c.say("文本还可以")


async def test_invalid_utf8_in_a_text_frame_closes_with_1007(hub: HubServer, bystander: Client) -> None:
    """websockets refuses a text frame with invalid UTF-8 (1007); the hub carries on."""
    before = await stored_messages(hub)
    c = await Client.connect(hub.url)
    # Send a raw text frame with bad UTF-8 by writing the frame bytes ourselves.
    from websockets.frames import Frame, Opcode

    frame = Frame(Opcode.TEXT, b'{"type":"hello","name":"\xff"}')
    c.ws.protocol.send_frame(frame)
    c.ws.send_data()
    await wait_until(lambda: c.closed_code is not None, what="close")
    assert c.closed_code == 1007
    await assert_bystander_unharmed(hub, bystander, before)


async def test_oversized_frames_close_with_1009(hub: HubServer, bystander: Client) -> None:
    before = await stored_messages(hub)
    c = await customer(hub.url)
    await c.send(type="send", conv=c.conv, msg_id="big", text="大" * 40_000)  # ~120 KiB of UTF-8
    await wait_until(lambda: c.closed_code is not None, what="close")
    assert c.closed_code == 1009
    await assert_bystander_unharmed(hub, bystander, before)


async def test_over_long_text_is_refused_without_closing(hub: HubServer) -> None:
    c = await customer(hub.url)
    await c.send(type="send", conv=c.conv, msg_id="long", text="长" * 4001)
    err = await c.expect("error", lambda f: f["ref"] == "long")
    assert err["code"] == "too_long"
    await c.send(type="send", conv=c.conv, msg_id="blank", text="   ")
    assert (await c.expect("error", lambda f: f["ref"] == "blank"))["code"] == "bad_frame"
    rows = await hub.hub.store.query("SELECT COUNT(*) FROM messages WHERE msg_id IN ('long', 'blank')")
    assert rows[0][0] == 0
    await c.say("正常长度")


async def test_a_flood_is_rate_limited_then_disconnected(tmp_path, ) -> None:
    server = await build_hub(hub_config(tmp_path, rate_per_s=5.0, rate_burst=10, flood_strikes=30)).start()
    try:
        calm = await customer(server.url, "安静的客户")
        noisy = await customer(server.url, "刷屏")
        for i in range(200):
            try:
                await noisy.send(type="typing", conv=noisy.conv, on=bool(i % 2))
            except Exception:
                break
        await noisy.expect("error", lambda f: f["code"] == "rate_limited")
        await wait_until(lambda: noisy.closed_code is not None, what="flood close")
        assert noisy.closed_code == 1008
        await calm.say("我还在")
        assert server.hub.metrics.rate_limited >= 30
    finally:
        await server.stop()


async def test_unknown_and_not_yours_get_the_same_answer(hub: HubServer) -> None:
    c = await customer(hub.url)
    other = await customer(hub.url)
    await c.send(type="send", conv=other.conv, msg_id="a", text="x")
    e1 = await c.expect("error", lambda f: f["ref"] == "a")
    await c.send(type="send", conv="c-doesnotexist000", msg_id="b", text="x")
    e2 = await c.expect("error", lambda f: f["ref"] == "b")
    assert (e1["code"], e1["message"]) == (e2["code"], e2["message"])


async def test_a_client_that_vanishes_mid_chat_loses_nothing(hub: HubServer) -> None:
    await hub.hub.add_user("a1", "a1", "pw")
    a = await agent(hub.url, "a1")
    await a.send(type="set_status", status="online")
    c = await customer(hub.url)
    await a.expect("synced")
    await c.send(type="send", conv=c.conv, msg_id="last-words", text="我先走了")
    c.ws.transport.abort()  # no close frame, no goodbye
    got = await a.expect("msg", lambda f: f.get("msg_id") == "last-words")
    assert got["text"] == "我先走了"
    await a.say("好的，再见", conv=c.conv)  # the chat is still the agent's
    assert c.conv in hub.hub.router.agents["a1"].chats


async def test_wrong_password_is_refused_audited_and_throttled(hub: HubServer) -> None:
    await hub.hub.add_user("a1", "a1", "right-pw")
    for _ in range(5):
        c = await Client.connect(hub.url)
        await c.send(type="login", user="a1", password="wrong")
        assert (await c.expect("error"))["code"] == "bad_credentials"
        await c.close()
    c = await Client.connect(hub.url)
    await c.send(type="login", user="a1", password="right-pw")  # even the right one waits
    assert (await c.expect("error"))["code"] == "throttled"
    await hub.hub.store.barrier()
    rows = await hub.hub.store.query("SELECT action, COUNT(*) FROM audit GROUP BY action")
    counts = dict((r[0], r[1]) for r in rows)
    assert counts["login_failed"] == 5 and counts["login_throttled"] == 1
    details = await hub.hub.store.query("SELECT detail FROM audit WHERE action='login_failed'")
    assert all("wrong" not in r[0] for r in details)  # no password in the log


async def test_token_login_and_logout_closes_every_socket_with_that_token(hub: HubServer) -> None:
    await hub.hub.add_user("sup", "主管", "pw", role="supervisor")
    first = await agent(hub.url, "sup")
    second = await Client.connect(hub.url)
    await second.send(type="login", user="sup", token=first.token)
    await second.expect("login_ok")
    await first.send(type="logout")
    await wait_until(lambda: first.closed_code is not None and second.closed_code is not None, what="closed")
    assert first.closed_code == second.closed_code == 4002
    third = await Client.connect(hub.url)
    await third.send(type="login", user="sup", token=first.token)
    assert (await third.expect("error"))["code"] == "bad_credentials"


async def test_disabled_staff_cannot_log_in(hub: HubServer, tmp_path) -> None:
    from server import admin

    await hub.hub.add_user("a9", "a9", "pw")
    await admin.set_user(hub.hub.config.db_path, "a9", disabled=True)
    c = await Client.connect(hub.url)
    await c.send(type="login", user="a9", password="pw")
    assert (await c.expect("error"))["code"] == "bad_credentials"


async def test_healthz_and_metrics_speak_http_on_the_same_port(hub: HubServer) -> None:
    c = await customer(hub.url)
    await c.say("指标")

    def get(path: str) -> tuple[int, str]:
        with urllib.request.urlopen(f"http://127.0.0.1:{hub.port}{path}", timeout=5) as r:
            return r.status, r.read().decode()

    status, body = await asyncio.to_thread(get, "/healthz")
    assert (status, body) == (200, "ok\n")
    status, body = await asyncio.to_thread(get, "/metrics")
    assert status == 200
    assert 'desk_connections{role="customer"} 1' in body
    assert 'desk_waiting_chats{group="general"} 1' in body
    assert "desk_messages_total 1" in body
    assert 'desk_ack_latency_seconds_bucket{le="+Inf"} 1' in body


async def test_origins_outside_the_allowlist_are_refused(tmp_path) -> None:
    server = await build_hub(hub_config(tmp_path, origins=[None, "https://chat.bank.example"])).start()
    try:
        ok = await Client.connect(server.url, origin="https://chat.bank.example")
        await ok.send(type="hello", name="浏览器客户")
        await ok.expect("welcome")
        with pytest.raises(Exception) as err:
            await Client.connect(server.url, origin="https://evil.example")
        assert "403" in str(err.value)
    finally:
        await server.stop()


async def test_slow_consumer_is_cut_off_and_others_carry_on(tmp_path) -> None:
    server = await build_hub(hub_config(tmp_path, max_outbound_bytes=64 * 1024, rate_per_s=5000.0,
                                        rate_burst=10000)).start()
    try:
        await server.hub.add_user("a1", "a1", "pw")
        a = await agent(server.url, "a1")
        await a.send(type="set_status", status="online")
        slow = await customer(server.url, "不读消息")
        fast = await customer(server.url, "正常")
        await a.expect("synced", lambda f: f["conv"] == fast.conv)
        slow.ws.transport.pause_reading()  # stops reading: the hub's writes back up
        big = "请您按以下步骤操作：" * 300
        # Kernel socket buffers absorb a few MB first; keep writing until the hub gives up.
        for i in range(3000):
            await a.send(type="send", conv=slow.conv, msg_id=f"s{i}", text=big)
            if i % 100 == 0:
                await a.say(f"快{i}", conv=fast.conv)
                await fast.expect("msg", lambda f, i=i: f["text"] == f"快{i}")
            if i % 10 == 0:
                await a.expect("ack", lambda f, i=i: f["msg_id"] == f"s{i}")
            if slow.conv not in {s.conv for s in server.hub.sessions if s.role == "customer"}:
                break
        await wait_until(
            lambda: not any(s.conv == slow.conv for s in server.hub.sessions), what="slow consumer cut off"
        )
        assert all(s.backlog <= 64 * 1024 for s in server.hub.sessions)
        # It resumes with nothing lost.
        back = await Client.connect(server.url)
        await back.send(type="hello", name="x", resume_token=slow.token, last_seq=0)
        await back.expect("synced", timeout=10)
        stored = await server.hub.store.query("SELECT COUNT(*) FROM messages WHERE conv_id=? AND sender='agent'", (slow.conv,))
        assert len([f for f in back.of("msg") if f["sender"] == "agent"]) == stored[0][0]
    finally:
        await server.stop()


def test_frames_decode_errors_name_the_field() -> None:
    from server.protocol import FrameError, decode_client

    with pytest.raises(FrameError) as err:
        decode_client(json.dumps({"type": "send", "conv": "c", "msg_id": "m", "text": 5}))
    assert "$.text" in err.value.message


async def test_healthz_says_503_when_the_database_cannot_take_a_write(hub: HubServer) -> None:
    def get() -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{hub.port}/healthz", timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as exc:
            return exc.code

    assert await asyncio.to_thread(get) == 200
    await hub.hub.store.close()  # the writer is gone: no write can land
    assert await asyncio.to_thread(get) == 503
    await hub.hub.store.open()  # so the fixture can stop it cleanly
