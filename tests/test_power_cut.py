"""A power cut: messages shown but not yet synced are gone, and the next run reuses their seqs.

A message reaches the other side once it is written and is acked to its sender once
the WAL is synced. A crash of the hub loses nothing shown (the written WAL is in the
kernel's cache); a power cut can lose the unsynced tail. These tests make that tail
real (the sync helper is frozen, so nothing written after is synced or acked), kill the
hub, and delete the unsynced rows, which is what the WAL's recovery after a power cut
leaves. A client that holds a lost message must be told to resynchronise, never resumed
past it, whether or not the next run has given its seq to another message.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import socket
import sqlite3
from pathlib import Path

import psutil

from desk.client import HubClient
from server import admin
from server import protocol as p

from .helpers import Client, wait_until
from .test_hub_process import agent_and_customer, hub_process, login


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def freeze_sync_helper(hub_pid: int) -> list[psutil.Process]:
    """The disk stops answering: commits are written, none is synced (so none acked)."""
    helpers = psutil.Process(hub_pid).children()
    assert helpers, "the hub runs no WAL sync helper (is it FULL?)"
    for h in helpers:
        h.send_signal(signal.SIGSTOP)
    return helpers


async def power_cut(proc: asyncio.subprocess.Process, helpers: list[psutil.Process]) -> None:
    proc.send_signal(signal.SIGKILL)
    for h in helpers:  # stopped, it would not notice its hub is gone (and holds its pipes open)
        with contextlib.suppress(psutil.Error):
            h.kill()
    await proc.wait()


def lose_unsynced(db: Path, conv: str, from_seq: int) -> list[str]:
    """What WAL recovery after a power cut leaves: the unsynced tail is gone."""
    with sqlite3.connect(db) as con:
        lost = [r[0] for r in con.execute("SELECT text FROM messages WHERE conv_id=? AND seq>=?", (conv, from_seq))]
        con.execute("DELETE FROM messages WHERE conv_id=? AND seq>=?", (conv, from_seq))
    return lost


def stored(db: Path, conv: str) -> list[tuple[int, str]]:
    with sqlite3.connect(db) as con:
        return list(con.execute("SELECT seq, text FROM messages WHERE conv_id=? ORDER BY seq", (conv,)))


async def shown_then_cut(db: Path) -> tuple[Client, Client, dict, tuple[int, int]]:
    """A chat; the agent's line r1 is shown to the customer, never synced; then the power goes."""
    async with hub_process(db) as (proc, url):
        a, c = await agent_and_customer(url)
        await c.say("我的卡被吞了")
        helpers = freeze_sync_helper(proc.pid)
        await a.send(type="send", conv=c.conv, msg_id="r1", text="请稍等，我帮您查一下")
        shown = await c.expect("msg", lambda f: f.get("msg_id") == "r1")
        await asyncio.sleep(0.2)
        assert not a.of("ack", c.conv), "acked without a sync"
        await power_cut(proc, helpers)
    assert lose_unsynced(db, c.conv, shown["seq"]) == ["请稍等，我帮您查一下"]
    return a, c, shown, c.cursor(c.conv)


async def test_a_cursor_naming_a_message_lost_in_a_power_cut_gets_a_resync_even_once_its_seq_is_reused(
    tmp_path: Path,
) -> None:
    db = tmp_path / "hub.db"
    await admin.add_user(db, "a1", "李娜", "secret-pw")
    a, c, shown, (held, epoch) = await shown_then_cut(db)
    assert (held, epoch) == (shown["seq"], shown["epoch"])
    async with hub_process(db) as (_, url):
        # The agent's desk comes back first and sends a new line: it takes the lost seq.
        back_a = await login(url, "a1", token=a.token, cursors={c.conv: a.cursor(c.conv)[0]},
                             epochs={c.conv: a.cursor(c.conv)[1]})  # fmt: skip
        await back_a.expect("synced", lambda f: f["conv"] == c.conv)
        again = await back_a.say("您的卡已临时冻结", conv=c.conv)
        assert again["seq"] == held and again["epoch"] != epoch, "the next run reuses the lost seq"
        # The customer resumes holding the lost line at that seq: told to start over.
        back_c = await Client.connect(url)
        await back_c.send(type="hello", name="王先生", resume_token=c.token, last_seq=held, last_epoch=epoch)
        resync = await back_c.expect("resync")
        assert "not the one you hold" in resync["reason"]
        await back_c.expect("synced")
        after = back_c.frames.index(resync)
        replayed = [(f["seq"], f["text"]) for f in back_c.frames[after:] if f["type"] == "msg"]
        assert replayed == [(s, t) for s, t in stored(db, c.conv)], "the whole stored history, nothing else"
        assert "请稍等，我帮您查一下" not in [t for _, t in replayed]
        assert replayed[-1] == (held, "您的卡已临时冻结")
        # From there on it is a normal chat.
        await back_a.say("还有别的需要吗", conv=c.conv)
        await back_c.expect("msg", lambda f: f["text"] == "还有别的需要吗")


async def test_a_cursor_past_what_survived_the_power_cut_gets_a_resync(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    await admin.add_user(db, "a1", "李娜", "secret-pw")
    _, c, _, (held, epoch) = await shown_then_cut(db)
    async with hub_process(db) as (_, url):
        back_c = await Client.connect(url)
        await back_c.send(type="hello", name="王先生", resume_token=c.token, last_seq=held, last_epoch=epoch)
        resync = await back_c.expect("resync")
        assert "past the last message" in resync["reason"]
        synced = await back_c.expect("synced")
        assert synced["last_seq"] == held - 1
        assert [f["text"] for f in back_c.frames if f["type"] == "msg"] == [t for _, t in stored(db, c.conv)]


async def test_after_a_clean_restart_a_cursor_from_the_last_run_resumes_without_a_resync(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    await admin.add_user(db, "a1", "李娜", "secret-pw")
    async with hub_process(db) as (proc, url):
        a, c = await agent_and_customer(url)
        await a.say("您好，请问有什么可以帮您", conv=c.conv)
        await c.expect("msg", lambda f: f["text"] == "您好，请问有什么可以帮您")
        held, epoch = c.cursor(c.conv)
        await c.close()
        await a.say("您还在吗", conv=c.conv)
        proc.send_signal(signal.SIGTERM)
        await proc.wait()
    async with hub_process(db) as (proc, url):
        back_c = await Client.connect(url)
        await back_c.send(type="hello", name="王先生", resume_token=c.token, last_seq=held, last_epoch=epoch)
        synced = await back_c.expect("synced")
        assert not back_c.of("resync")
        assert back_c.texts() == ["您还在吗"]
        assert synced["epoch"] == epoch  # numbered by the first run, which the cursor now names


async def test_the_product_client_comes_through_a_power_cut_with_one_true_transcript(tmp_path: Path) -> None:
    """desk/client.py on both sides. The agent's desk reconnects by itself to the restarted hub and
    sends its unacked line again (stored once, at the lost seq); the customer's phone slept through
    it and comes back with the same state: told its copy is not the stored one, it ends with
    exactly the stored transcript."""
    db = tmp_path / "hub.db"
    await admin.add_user(db, "a1", "李娜", "secret-pw")
    port = free_port()
    c_frames: list[object] = []
    a_frames: list[object] = []
    async with hub_process(db, "--no-bot", "--port", str(port)) as (proc, url):
        assert url == f"ws://127.0.0.1:{port}/"
        a = HubClient(url, a_frames.append, login=p.Login(user="a1", password="secret-pw"))
        a_task = asyncio.create_task(a.run())
        await a.wait_online()
        await a.send(p.SetStatus(status="online"))
        c = HubClient(url, c_frames.append, hello=p.Hello(name="王先生"))
        c_task = asyncio.create_task(c.run())
        await c.wait_online()
        conv = c.state.conv
        await wait_until(lambda: conv in a.state.cursors and conv not in a.state.syncing, what="assigned")
        await c.send_text(conv, "我的卡被吞了")
        await wait_until(lambda: any(isinstance(f, p.Ack) for f in c_frames), what="customer line acked")
        helpers = freeze_sync_helper(proc.pid)
        msg_id = await a.send_text(conv, "请稍等，我帮您查一下")
        await wait_until(lambda: any(isinstance(f, p.Msg) and f.msg_id == msg_id for f in c_frames),
                         what="shown to the customer")  # fmt: skip
        lost_seq = c.state.cursors[conv]
        assert msg_id in a.pending, "not acked, so still the agent's to send"
        await power_cut(proc, helpers)
    await c.close()  # the phone sleeps
    c_task.cancel()
    asleep = c.state
    assert lose_unsynced(db, conv, lost_seq) == ["请稍等，我帮您查一下"]
    try:
        async with hub_process(db, "--no-bot", "--port", str(port)):
            await wait_until(lambda: msg_id not in a.pending, timeout=20, what="the agent's line resent and acked")
            await a.send_text(conv, "您的卡已临时冻结")
            await wait_until(lambda: [t for _, t in stored(db, conv)][-1:] == ["您的卡已临时冻结"], what="stored")
            want = stored(db, conv)
            assert [t for _, t in want].count("请稍等，我帮您查一下") == 1, "the resent line, stored once"
            assert want[-2] == (lost_seq, "请稍等，我帮您查一下"), "it took the seq of the copy the customer holds"
            c = HubClient(url, c_frames.append, hello=p.Hello(name="王先生"))  # the phone wakes up
            c.state = dataclasses.replace(asleep, status="connecting")
            c_task = asyncio.create_task(c.run())
            await wait_until(lambda: c.state.cursors.get(conv) == want[-1][0] and conv not in c.state.syncing,
                             timeout=20, what="the customer caught up")  # fmt: skip
            resyncs = [f for f in c_frames if isinstance(f, p.Resync)]
            assert len(resyncs) == 1 and "not the one you hold" in resyncs[0].reason, resyncs
            cut = c_frames.index(resyncs[0])
            seen = [(f.seq, f.text) for f in c_frames[cut:] if isinstance(f, p.Msg)]
            # From the resync on: the whole stored history (its own lines too, from the replay),
            # each once, in order, and not the lost copy.
            with sqlite3.connect(db) as con:
                rows = [tuple(r) for r in con.execute(
                    "SELECT seq, text FROM messages WHERE conv_id=? AND kind!='note' ORDER BY seq", (conv,))]
            assert seen == rows
    finally:
        for client, task in ((a, a_task), (c, c_task)):
            await client.close()
            task.cancel()
