"""The SQLite store on its own: group commits, isolation of a bad write, the audit chain."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from server.store import ConversationRecord, MessageRecord, SQLiteStore, StoreError


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
