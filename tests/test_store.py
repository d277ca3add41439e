"""The SQLite store on its own: group commits, isolation of a bad write, the audit chain."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from server.store import ConversationRecord, MessageRecord, SQLiteStore, StoreError
from server.store.schema import MIGRATIONS


def msg(seq: int, text: str = "hi") -> MessageRecord:
    return MessageRecord(conv_id="c-1", seq=seq, kind="text", sender="customer", sender_id="customer",
                         text=text, ts=1.0, msg_id=f"m{seq}")  # fmt: skip


async def test_one_bad_write_in_a_group_commit_fails_alone(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        store.insert_conversation(ConversationRecord(id="c-1", customer_name="王先生", created_at=1.0))
        futures = [store.append_message(msg(1)), store.append_message(msg(1, "clash")), store.append_message(msg(2))]
        results = await asyncio.gather(*futures, return_exceptions=True)
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], StoreError)
        rows = await store.query("SELECT seq, text FROM messages ORDER BY seq")
        assert [tuple(r) for r in rows] == [(1, "hi"), (2, "hi")]
        # a message without its conversation is refused (foreign key)
        with pytest.raises(StoreError):
            await store.append_message(MessageRecord(conv_id="nope", seq=1, kind="text", sender="customer",
                                                     text="x", ts=1.0))  # fmt: skip
    finally:
        await store.close()


async def test_many_writes_share_few_commits(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        store.insert_conversation(ConversationRecord(id="c-1", customer_name="王先生", created_at=1.0))
        await asyncio.gather(*[store.append_message(msg(i)) for i in range(1, 501)])
        assert store.writes == 501 and store.commits < 50
    finally:
        await store.close()


async def test_the_audit_chain_detects_tampering(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    for i in range(5):
        store.audit("a1", "login", detail={"n": i})
    await store.barrier()
    assert (await store.verify_audit())[:2] == (True, 5)
    await store.close()
    with sqlite3.connect(tmp_path / "s.db") as db:
        db.execute("UPDATE audit SET actor='someone' WHERE id=3")
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    ok, _, problem = await store.verify_audit()
    await store.close()
    assert not ok and "entry 3" in problem


async def test_a_restored_backup_never_hands_out_an_epoch_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run 1, a backup, run 2, the backup restored, run 3: run 3 must not reuse run 2's epoch, or a
    client holding run 2's messages would be resumed past what run 3 numbered with the same seqs."""
    import shutil

    import server.store.sqlite as sqlite_mod

    now = [1_800_000_000.0]
    monkeypatch.setattr(sqlite_mod.time, "time", lambda: now[0])
    path = tmp_path / "hub.db"

    async def run() -> int:
        store = SQLiteStore(path)
        await store.open()
        try:
            return await store.next_epoch()
        finally:
            await store.close()

    first = await run()
    shutil.copy(path, tmp_path / "backup.db")
    now[0] += 5
    second = await run()
    assert second > first
    shutil.copy(tmp_path / "backup.db", path)
    now[0] += 5
    third = await run()
    assert third not in (first, second) and third > second
    # A clock that stands still (or steps back) still gets a new one.
    now[0] -= 60
    assert await run() == third + 1


def version_4_database(tmp_path: Path) -> Path:
    """A hub's database as schema version 4 left it: one chat, three messages stored out of order."""

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # a hub's database as version 4 left it
        for script in MIGRATIONS[:4]:
            db.executescript(script)
        db.execute("PRAGMA user_version=4")
        db.execute(
            "INSERT INTO conversations(id, customer_name, channel, flags, lang, token_hash, state, grp,"
            " klass, asked_at, assigned_at, front, created_at, close_reason, closed_by, bot_memory,"
            " handoff, transfers, wrapup_code, wrapup_note, rating, rating_comment) VALUES"
            " ('c-1','王先生','web','[]','zh','t','bot','general',2,0,0,0,1.0,'','','{}','{}',0,'','','','')"
        )
        for seq in (3, 1, 2):  # stored out of order on purpose
            db.execute(
                "INSERT INTO messages(conv_id, seq, msg_id, kind, sender, sender_id, sender_name,"
                " text, ts) VALUES ('c-1',?,?,'text','customer','customer','王先生',?,?)",
                (seq, f"m{seq}", f"第{seq}句", float(seq)),
            )
    return path


async def test_a_database_from_before_version_5_keeps_every_message_in_order(tmp_path: Path) -> None:
    """Migration 5 moves messages to a table in arrival order: nothing lost, order and dedupe kept."""
    path = version_4_database(tmp_path)
    store = SQLiteStore(path)
    await store.open()
    try:
        assert [m.text for m in await store.messages_after("c-1", 0, True)] == ["第1句", "第2句", "第3句"]
        # epoch 0: numbered before the hub counted its runs (migration 6)
        assert await store.message_ids(["c-1"]) == {("c-1", "customer", f"m{i}"): (i, 0) for i in (1, 2, 3)}
        assert await store.last_seqs(["c-1"]) == {"c-1": 3}
        with pytest.raises(StoreError):  # one seq per conversation, still enforced
            await store.append_message(msg(2, "again"))
        await store.append_message(msg(4))
        assert [m.seq for m in await store.messages_after("c-1", 2, True)] == [3, 4]
        assert (await store.query("PRAGMA user_version"))[0][0] == len(MIGRATIONS)
    finally:
        await store.close()


async def test_a_write_lock_held_by_another_process_never_blocks_the_hubs_loop(tmp_path: Path) -> None:
    """A CLI holding SQLite's write lock delays commits; the event loop keeps running meanwhile."""
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    other = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    try:
        store.insert_conversation(ConversationRecord(id="c-1", customer_name="王先生", created_at=1.0))
        await store.barrier()
        other.execute("BEGIN IMMEDIATE")  # the other writer holds the lock
        pending = store.append_message(msg(1))
        ticks = 0
        for _ in range(20):  # the loop is free: these sleeps keep their pace
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 20 and not pending.done()
        other.execute("COMMIT")
        await asyncio.wait_for(pending, 10)
        assert [m.seq for m in await store.messages_after("c-1", 0, True)] == [1]
    finally:
        other.close()
        await store.close()


async def test_a_lost_sync_helper_delays_acks_and_loses_nothing(tmp_path: Path) -> None:
    """The WAL sync helper hangs, then dies: no ack while the sync is owed, then a new helper syncs it."""
    import os
    import signal

    store = SQLiteStore(tmp_path / "s.db")  # synchronous=FULL: every commit waits for a sync
    await store.open()
    try:
        store.insert_conversation(ConversationRecord(id="c-1", customer_name="王先生", created_at=1.0))
        await store.barrier()
        assert store._sync is not None and store._sync.pid is not None
        os.kill(store._sync.pid, signal.SIGSTOP)  # the helper hangs: the next commits wait on it
        pending = asyncio.gather(store.append_message(msg(1)), store.append_message(msg(2)))
        await asyncio.sleep(0.2)
        assert not pending.done()  # nothing is acked while the sync is owed
        os.kill(store._sync.pid, signal.SIGKILL)
        await asyncio.wait_for(pending, 10)  # a new helper synced them
        await asyncio.wait_for(store.append_message(msg(3)), 10)
        assert store.healthy and store._sync.restarts == 1
        assert [m.seq for m in await store.messages_after("c-1", 0, True)] == [1, 2, 3]
    finally:
        await store.close()


async def test_after_a_failed_disk_sync_the_store_acks_nothing_more(tmp_path: Path) -> None:
    """fdatasync refused (here: the helper restarted on a FIFO, EINVAL): that write and every later
    one fail, because after a failed sync a successful one proves nothing (PostgreSQL's fsyncgate)."""
    import os
    import signal

    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        store.insert_conversation(ConversationRecord(id="c-1", customer_name="王先生", created_at=1.0))
        await store.barrier()
        assert store._sync is not None and store._sync.pid is not None
        fifo = tmp_path / "refuses-sync"
        os.mkfifo(fifo)
        os.close(store._sync._fd)  # the next helper syncs something the kernel cannot sync
        store._sync._fd = os.open(fifo, os.O_RDWR | os.O_CLOEXEC)
        os.kill(store._sync.pid, signal.SIGKILL)
        with pytest.raises(StoreError, match="WAL sync failed"):
            await asyncio.wait_for(store.append_message(msg(1)), 10)
        assert not store.healthy
        with pytest.raises(StoreError, match="storage failed"):
            await store.append_message(msg(2))
        assert not await store.ping()
    finally:
        await store.close()


async def test_the_wal_stays_bounded_under_writes_that_never_pause(tmp_path: Path) -> None:
    """A surge that never lets up: the writer pauses for a full checkpoint, so the WAL starts over."""
    store = SQLiteStore(tmp_path / "s.db", synchronous="NORMAL")
    await store.open()
    store.wal_limit_frames = 300  # about 1.2 MB, so the test stays small
    store.checkpoint_every = 10
    wal = Path(f"{tmp_path / 's.db'}-wal")
    try:
        convs = [f"c-{i}" for i in range(50)]
        for c in convs:
            store.insert_conversation(ConversationRecord(id=c, customer_name="客户", created_at=1.0))
        seqs = dict.fromkeys(convs, 0)
        outstanding: list[asyncio.Future[None]] = []
        for _ in range(400):  # the next round is queued before the last one is stored
            for c in convs:
                seqs[c] += 1
                outstanding.append(store.append_message(MessageRecord(
                    conv_id=c, seq=seqs[c], kind="text", sender="customer", sender_id="customer",
                    text="您好，我想查一下昨天的转账为什么还没到账" * 3, ts=1.0)))  # fmt: skip
            await asyncio.sleep(0)
            if len(outstanding) > 500:
                await asyncio.gather(*outstanding[:250])
                del outstanding[:250]
        await asyncio.gather(*outstanding)
        assert store.full_checkpoints >= 1
        # Without the pause the WAL would hold every page written: tens of megabytes.
        size = (await asyncio.to_thread(wal.stat)).st_size
        assert size < 8 * 300 * 4096, size
        rows = await store.query("SELECT COUNT(*) FROM messages")
        assert rows[0][0] == 400 * 50
    finally:
        await store.close()


async def test_a_symlinked_database_has_its_real_wal_synced(tmp_path: Path) -> None:
    """SQLite follows the link: the sync helper must sync the WAL beside the real file, not the link."""
    import os

    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link.db").symlink_to(real / "hub.db")
    (tmp_path / "link.db-wal").write_bytes(b"")  # a stray file where a naive helper would look
    store = SQLiteStore(tmp_path / "link.db")
    await store.open()
    try:
        store.insert_conversation(ConversationRecord(id="c-1", customer_name="王先生", created_at=1.0))
        await store.append_message(msg(1))
        assert store._sync is not None and store._sync.pid is not None
        synced = os.readlink(f"/proc/{store._sync.pid}/fd/{store._sync._fd}")
        assert synced == str(real / "hub.db-wal")
    finally:
        await store.close()


async def test_writes_resolve_in_the_order_they_were_submitted_even_when_one_fails(tmp_path: Path) -> None:
    """A bad write in a group commit fails alone, and not ahead of the good writes before it."""
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        store.insert_conversation(ConversationRecord(id="c-1", customer_name="王先生", created_at=1.0))
        await store.barrier()
        order: list[str] = []
        futs = [store.append_message(msg(1)), store.append_message(msg(2)), store.append_message(msg(1, "dup"))]
        for name, fut in zip(("seq1", "seq2", "dup"), futs, strict=True):
            fut.add_done_callback(lambda f, n=name: order.append(f"{n}:{'err' if f.exception() else 'ok'}"))
        await asyncio.gather(*futs, return_exceptions=True)
        await asyncio.sleep(0)  # the last done-callback
        assert order == ["seq1:ok", "seq2:ok", "dup:err"]
    finally:
        await store.close()


async def test_a_long_queue_is_committed_in_turns_not_by_recursion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Thousands of batches queued at once (synchronous=NORMAL resolves each at once): every write
    lands, the writer gives the loop back between batches, and close() does not wait for a stranded one."""
    from server.store import sqlite as sqlite_store

    monkeypatch.setattr(sqlite_store, "MAX_BATCH", 2)  # 3,000 batches: far past Python's recursion limit
    store = SQLiteStore(tmp_path / "s.db", synchronous="NORMAL")
    await store.open()
    try:
        store.insert_conversation(ConversationRecord(id="c-1", customer_name="王先生", created_at=1.0))
        results = await asyncio.wait_for(
            asyncio.gather(*[store.append_message(msg(i)) for i in range(1, 6001)], return_exceptions=True), 60
        )
        assert [r for r in results if r is not None] == []
        assert (await store.query("SELECT COUNT(*) FROM messages"))[0][0] == 6000
    finally:
        await asyncio.wait_for(store.close(), 10)


async def test_a_reader_pinning_the_wal_does_not_make_the_writer_pause_again_and_again(tmp_path: Path) -> None:
    """While a reader holds an old snapshot the WAL cannot start over: the writer tries once, says so,
    and does not keep pausing for nothing."""
    store = SQLiteStore(tmp_path / "s.db", synchronous="NORMAL")
    await store.open()
    store.wal_limit_frames = 100
    store.checkpoint_every = 5
    reader = sqlite3.connect(tmp_path / "s.db")
    try:
        store.insert_conversation(ConversationRecord(id="c-1", customer_name="王先生", created_at=1.0))
        await store.barrier()
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM messages").fetchone()  # holds its snapshot
        seq = 0
        for _ in range(200):
            batch = []
            for _ in range(20):
                seq += 1
                batch.append(store.append_message(msg(seq, "您好，我想查一下转账为什么还没到账" * 4)))
            await asyncio.gather(*batch)
        assert 1 <= store.full_checkpoints <= 2, store.full_checkpoints
    finally:
        reader.close()
        await store.close()


async def test_a_lock_taken_while_a_bad_write_is_isolated_delays_the_others_not_fails_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group commit fails on a bad write; while its writes are retried one by one another process
    takes the lock: the bad write fails, the others are stored once the lock is free."""
    from server.store import sqlite as sqlite_store

    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        store.insert_conversation(ConversationRecord(id="c-1", customer_name="王先生", created_at=1.0))
        await store.barrier()
        real = sqlite_store._run_transaction
        calls = {"n": 0}

        def other_process_takes_the_lock(conn: sqlite3.Connection, groups: list) -> None:  # type: ignore[type-arg]
            calls["n"] += 1
            if calls["n"] == 3:  # the second write of the isolation
                raise sqlite3.OperationalError("database is locked")
            real(conn, groups)

        monkeypatch.setattr(sqlite_store, "_run_transaction", other_process_takes_the_lock)
        results = await asyncio.gather(store.append_message(msg(1, "dup-to-be")), store.append_message(msg(1)),
                                       store.append_message(msg(2)), store.append_message(msg(3)),
                                       return_exceptions=True)  # fmt: skip
        assert results[0] is None and isinstance(results[1], StoreError)
        assert results[2] is None and results[3] is None, results
        assert [m.seq for m in await store.messages_after("c-1", 0, True)] == [1, 2, 3]
    finally:
        await store.close()

