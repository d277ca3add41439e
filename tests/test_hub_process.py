"""The hub as users run it (`desk hub` in its own process): killed, stopped, restarted."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from server import admin

from .helpers import Client, customer, wait_until


@asynccontextmanager
async def hub_process(db: Path, *extra: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "desk.cli", "hub", "--port", "0", "--db", str(db), *(extra or ("--no-bot",)),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    match = re.search(r"ws://[\d.]+:\d+/", line)
    assert match, f"hub did not start: {line!r}"
    try:
        yield proc, match.group(0)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def login(url: str, user: str, **kw: object) -> Client:
    a = await Client.connect(url)
    await a.send(type="login", user=user, **kw)
    ok = await a.expect("login_ok")
    a.token = ok["token"]
    return a


async def agent_and_customer(url: str) -> tuple[Client, Client]:
    """a1 (password secret-pw) online, and a customer it has been given, replayed to it."""
    a = await login(url, "a1", password="secret-pw")
    await a.send(type="set_status", status="online")
    c = await customer(url, "王先生")
    await a.expect("synced", lambda f: f["conv"] == c.conv)
    return a, c


async def test_an_acked_message_survives_sigkill_and_resume_delivers_it(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    await admin.add_user(db, "a1", "李娜", "secret-pw")
    async with hub_process(db) as (proc, url):
        a, c = await agent_and_customer(url)
        cursor, epoch = a.cursor(c.conv)
        ack = await c.say("请帮我挂失尾号0128的卡")
        proc.send_signal(signal.SIGKILL)  # no chance to flush anything
        await proc.wait()
    async with hub_process(db) as (proc, url):
        back = await Client.connect(url)
        await back.send(type="hello", name="王先生", resume_token=c.token, last_seq=ack["seq"] - 1,
                         last_epoch=ack["epoch"])
        await back.expect("synced")
        agent = await login(url, "a1", token=a.token, cursors={c.conv: cursor}, epochs={c.conv: epoch})
        card = await agent.expect("assigned", lambda f: f["conv"] == c.conv)
        assert card["resumed"]
        await agent.expect("synced", lambda f: f["conv"] == c.conv)
        got = [f for f in agent.of("msg") if f.get("msg_id") == ack["msg_id"]]
        assert len(got) == 1 and got[0]["seq"] == ack["seq"]
        # The conversation is still assigned to a1 and still works both ways.
        reply = await agent.say("已为您办理临时挂失", conv=c.conv)
        assert reply["seq"] > ack["seq"]
        await back.expect("msg", lambda f: f.get("msg_id") == reply["msg_id"])


async def test_waiting_chats_keep_their_order_across_a_crash(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    async with hub_process(db) as (proc, url):
        cs = [await customer(url, f"客户{i}", flags=["elderly"] if i == 2 else []) for i in range(4)]
        await cs[-1].expect("queue")
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    await admin.add_user(db, "a1", "李娜", "secret-pw", max_chats=1)
    async with hub_process(db) as (proc, url):
        a = await login(url, "a1", password="secret-pw")
        await a.send(type="set_status", status="online")
        first = await a.expect("assigned")
        assert first["conv"] == cs[2].conv  # elderly first, then FIFO
        for expected in (cs[0], cs[1], cs[3]):
            await a.send(type="close", conv=a.of("assigned")[-1]["conv"])
            nxt = await a.expect("assigned", lambda f, e=expected: f["conv"] == e.conv)
            assert nxt["conv"] == expected.conv


async def test_sigterm_drains_and_closes_sockets_with_1001(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    async with hub_process(db) as (proc, url):
        c = await customer(url)
        acks = await asyncio.gather(*[c.say(f"第{i}句") for i in range(20)])
        proc.send_signal(signal.SIGTERM)
        await wait_until(lambda: c.closed_code is not None, timeout=15, what="close on SIGTERM")
        assert c.closed_code == 1001
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    async with hub_process(db) as (proc, url):
        back = await Client.connect(url)
        await back.send(type="hello", name="x", resume_token=c.token, last_seq=0)
        await back.expect("synced")
        seqs = {f["seq"] for f in back.of("msg")}
        assert {a["seq"] for a in acks} <= seqs


async def test_admin_cli_adds_lists_disables_and_sets(tmp_path: Path) -> None:
    db = str(tmp_path / "hub.db")

    async def cli(*args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "desk.cli", *args, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await proc.communicate()
        return proc.returncode or 0, out.decode()

    code, out = await cli("user", "--db", db, "add", "a7", "--name", "周杰", "--groups", "cards,general",
                          "--max", "4", "--password", "pw-1234")
    assert code == 0, out
    code, out = await cli("user", "--db", db, "add", "s1", "--name", "主管", "--role", "supervisor",
                          "--password", "pw-1234")
    assert code == 0, out
    code, out = await cli("user", "--db", db, "add", "bad", "--name", "x", "--max", "6", "--password", "pw-1234")
    assert code == 2 and "between 0 and 5" in out
    code, out = await cli("user", "--db", db, "set", "a7", "--max", "3", "--groups", "wealth")
    assert code == 0 and "max 3" in out
    code, out = await cli("user", "--db", db, "disable", "a7")
    assert code == 0
    code, out = await cli("user", "--db", db, "list")
    assert re.search(r"a7\s+agent\s+周杰\s+3\s+disabled\s+wealth", out), out
    assert re.search(r"s1\s+supervisor", out), out
    code, out = await cli("audit", "--db", db, "verify")
    assert code == 0 and "intact" in out
