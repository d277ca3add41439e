"""SQLite storage: WAL, one writer connection, group commits.

Every write is queued with a future. The writer takes everything queued
since its last commit, runs it in one transaction (consecutive statements of
the same shape as one ``executemany``) and commits once, then resolves the
futures in submission order. Under load many acks share one sync, so durable
acks do not cost throughput. Reads use other connections, which WAL lets run
beside the writer.

Where the time goes: the statements of a group commit take tens of
microseconds, the sync of the WAL hundreds. So the writer runs its
statements on the event loop's thread (no hop to a worker thread, which
under load waits milliseconds for the interpreter lock) with
``synchronous=NORMAL``, and for ``FULL`` durability has a helper process
``fdatasync`` the WAL before it resolves the futures (``walsync.py``). A
commit in WAL mode is durable once its WAL frames are on disk, so "NORMAL,
then fdatasync of the WAL" gives what SQLite's FULL gives an ack, minus the
blocked loop. A write may also carry a ``written`` callback, run right
after its commit, while the helper syncs: the hub shows a message to the
other side then (it survives a crash of the hub from there on) and acks it
to its sender when the future resolves (it survives a power cut). While a
sync is out, new writes gather for the next commit. The loop still syncs briefly itself when
SQLite starts the WAL over after a checkpoint (it syncs the new header).
The writer never waits for a lock on the loop: another process holding the
write lock (a CLI import) is retried after a short pause.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import msgspec

from phrasebook import Phrase, UsageRecord

from .base import AuditRecord, ConversationRecord, MessageRecord, StoreError, UserRecord
from .schema import migrate
from .walsync import SyncAbandoned, WalSync

log = logging.getLogger("hub.store")

MAX_BATCH = 512  # writes per group commit: bounds the time one commit holds the loop
# Commits written and waiting for their sync at once. A message is shown at
# its commit, so a writer waiting for syncs delays what people see: with 2,
# delivery p99 was 2.2-2.5x the bare relay's at 2,000-7,000 msg/s, with 32
# 1.2-1.7x, throughput the same (docs/BENCHMARKS.md). The helper serves
# requests that queue up with one fdatasync, so they cost no extra syncs.
MAX_IN_SYNC = 32
BUSY_GIVE_UP_S = 30.0  # another writer holding the lock this long fails the batch
CLOSE_WAIT_S = 30.0  # close() waits this long for the last commits and their sync
HOLD_BACKOFF_S = 30.0  # after a full checkpoint a reader kept from completing
_RETRY = StoreError("retry: another process took the write lock")  # marks writes to try again
_AUDIT = "-- audit entry, chained in the transaction --"  # a write the writer handles itself
CHECKPOINT_EVERY = 200  # commits between background WAL checkpoints
# Under writes that never pause, a checkpoint beside the writer never catches
# up and the WAL grows without end. Past this many frames (4 KiB each) the
# writer holds its next commit until a checkpoint has copied everything back,
# so the WAL starts over from its beginning.
WAL_LIMIT_FRAMES = 16_384
_NOOP = "UPDATE meta SET v=v WHERE k='schema'"  # a write that changes nothing
GENESIS = "0" * 64

_CONV_FIELDS = tuple(ConversationRecord.__struct_fields__)
_JSON_FIELDS = {"flags", "bot_memory", "handoff", "groups"}
_BOOL_FIELDS = {"front", "disabled"}


@dataclass(slots=True)
class _Write:
    sql: str
    params: tuple[Any, ...]
    future: asyncio.Future[None]
    written: Callable[[], None] | None = None  # runs at the commit, before the sync


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _col(name: str, value: Any) -> Any:
    if name in _JSON_FIELDS:
        return _dump(value)
    if name in _BOOL_FIELDS:
        return int(bool(value))
    return value


def _conv_from_row(row: aiosqlite.Row) -> ConversationRecord:
    data = {k: row[k] for k in row.keys()}
    for k in ("flags", "bot_memory", "handoff"):
        data[k] = json.loads(data[k] or ("[]" if k == "flags" else "{}"))
    for k in ("front",):
        data[k] = bool(data[k])
    return msgspec.convert(data, ConversationRecord)


def _user_from_row(row: aiosqlite.Row) -> UserRecord:
    data = {k: row[k] for k in row.keys()}
    data["groups"] = json.loads(data["groups"])
    data["disabled"] = bool(data["disabled"])
    return msgspec.convert(data, UserRecord)


def _msg_from_row(row: aiosqlite.Row) -> MessageRecord:
    return MessageRecord(
        conv_id=row[0], seq=row[1], msg_id=row[2], kind=row[3], sender=row[4],
        sender_id=row[5], sender_name=row[6], text=row[7], ts=row[8], epoch=row[9],
    )  # fmt: skip


class SQLiteStore:
    """The embedded default store (see ``Store`` in base.py)."""

    def __init__(self, path: str | Path, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self.synchronous = synchronous.upper()  # FULL: an ack survives power loss, not just a crash
        self._wconn: sqlite3.Connection | None = None
        self._sync: WalSync | None = None
        self._rconn: aiosqlite.Connection | None = None
        self._cconn: aiosqlite.Connection | None = None
        self._queue: deque[_Write] = deque()
        self._open = False
        self._stopped = False
        self._scheduled = False  # a commit is due at the next turn of the loop
        self._in_sync = 0  # commits written, their sync not yet answered
        self._unconfirmed = 0  # writes in those commits
        self._paused = False  # waiting out another process's lock, or a full checkpoint
        self._busy_waited = 0.0
        self._broken = ""  # a sync failed: nothing is acked any more (see _synced)
        self._idle: asyncio.Event | None = None
        self._checkpoint: asyncio.Task[None] | None = None
        self._since_checkpoint = 0
        self.checkpoint_every = CHECKPOINT_EVERY
        self.wal_limit_frames = WAL_LIMIT_FRAMES
        self._hold_for_checkpoint = False
        self._no_hold_until = 0.0  # after a full checkpoint a reader kept from completing
        self.full_checkpoints = 0  # times the writer paused for one
        self.healthy = False
        self.commits = 0
        self.writes = 0
        self.last_error = ""

    # -- life ---------------------------------------------------------------

    async def open(self) -> None:
        try:
            await self._open_connections()
        except BaseException:
            await self._close_connections()
            raise
        self._idle = asyncio.Event()
        self._idle.set()
        self._open = True
        self.healthy = True

    async def _open_connections(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._cconn = await aiosqlite.connect(self.path, isolation_level=None)
        await self._cconn.execute("PRAGMA journal_mode=WAL")
        await self._cconn.execute("PRAGMA busy_timeout=5000")
        await migrate(self._cconn)
        full = self.synchronous in ("FULL", "EXTRA")
        # The writer lives on the event loop's thread (see the module's note).
        conn = sqlite3.connect(self.path, isolation_level=None)
        self._wconn = conn
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'NORMAL' if full else self.synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
        # Checkpoints run beside the writer (see _run_checkpoint), so a
        # commit never pays for copying the WAL back into the database.
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute(_NOOP)  # the WAL file exists from here on, for the sync helper to open
        conn.execute("PRAGMA busy_timeout=0")  # from now on the loop never waits for a lock
        if full:
            # The file SQLite really writes: a symlinked or relative path
            # must not have the helper sync some other file.
            main = next(row[2] for row in conn.execute("PRAGMA database_list") if row[1] == "main")
            self._sync = WalSync(Path(f"{main}-wal"))
            await self._sync.start()
        self._rconn = await aiosqlite.connect(self.path)
        self._rconn.row_factory = aiosqlite.Row
        await self._rconn.execute("PRAGMA busy_timeout=5000")

    async def close(self) -> None:
        """Commit (and sync) everything submitted so far, then close."""
        self._open = False  # new writes fail from here on
        if self._idle is not None:
            try:
                await asyncio.wait_for(self._idle.wait(), CLOSE_WAIT_S)
            except TimeoutError:  # a sync that never came back: those writes stay unacked
                log.error("store closed with %d writes not confirmed", len(self._queue) + self._unconfirmed)
        if self._checkpoint is not None:
            await self._checkpoint
        self._stopped = True
        await self._close_connections()
        self.healthy = False

    async def _close_connections(self) -> None:
        if self._sync is not None:
            await self._sync.stop()
            self._sync = None
        for conn in (self._rconn, self._cconn):
            if conn is not None:
                await conn.close()
        if self._wconn is not None:
            self._wconn.close()  # the last one: it checkpoints and removes the WAL
        self._rconn = self._wconn = self._cconn = None

    # -- the writer ---------------------------------------------------------

    def _submit(
        self, sql: str, params: tuple[Any, ...], written: Callable[[], None] | None = None
    ) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not self._open or self._broken:
            fut.set_exception(StoreError(self._broken or "the store is closed"))
            return fut
        self._queue.append(_Write(sql, params, fut, written))
        self._schedule()
        return fut

    def _schedule(self) -> None:
        """Commit at the next turn: everything submitted in this one shares it.
        One commit per turn also bounds how long the writer holds the loop."""
        if self._queue and not self._scheduled and self._can_commit():
            self._scheduled = True
            assert self._idle is not None
            self._idle.clear()
            asyncio.get_running_loop().call_soon(self._commit_next)

    def _can_commit(self) -> bool:
        # Commits go on while earlier ones are being synced (see MAX_IN_SYNC);
        # the bound only matters when the disk stalls.
        return not self._paused and self._in_sync < MAX_IN_SYNC

    def _commit_next(self) -> None:
        """Commit what is queued; resolve it now (NORMAL) or when the WAL is synced (FULL)."""
        self._scheduled = False
        if self._stopped or self._broken:  # these writes fail, unacked
            while self._queue:
                self._fail(self._queue.popleft(), StoreError(self._broken or "the store closed"))
            self._settled()
            return
        if not self._can_commit():
            return
        if not self._queue:
            self._settled()
            return
        if self._hold_for_checkpoint and self._checkpoint is None:
            self._paused = True  # no commit until the WAL is copied back
            self._checkpoint = asyncio.get_running_loop().create_task(self._run_checkpoint(holding=True))
            return
        batch = [self._queue.popleft() for _ in range(min(MAX_BATCH, len(self._queue)))]
        conn = self._wconn
        assert conn is not None
        try:
            _run_transaction(conn, _grouped(batch))
            outcome: list[tuple[_Write, Exception | None]] = [(w, None) for w in batch]
        except sqlite3.OperationalError as exc:
            if _busy(exc) and self._busy_waited < BUSY_GIVE_UP_S:
                self._retry_later(batch)
                return
            outcome = self._isolate(batch, exc)
        except Exception as exc:  # a bad write: commit the others, fail it alone
            outcome = self._isolate(batch, exc)
        if outcome and outcome[-1][1] is _RETRY:  # the lock was taken during the isolation
            retry = [w for w, e in outcome if e is _RETRY]
            outcome = [(w, e) for w, e in outcome if e is not _RETRY]
            self._queue.extendleft(reversed(retry))
        else:
            self._busy_waited = 0.0
        stored = sum(1 for _, e in outcome if e is None)
        if self._sync is None or not stored:
            _written(outcome)
            self._committed(outcome)
        else:
            self._in_sync += 1
            self._unconfirmed += len(outcome)
            self._sync.sync(lambda error: self._synced(outcome, error))
            _written(outcome)  # while the helper syncs
        if self._queue and self._busy_waited == 0.0:
            self._schedule()  # more than one batch queued, or the second commit in flight
        elif self._queue:
            self._retry_later([])

    def _retry_later(self, batch: list[_Write]) -> None:
        """Another process holds the write lock: let the loop run, try again shortly."""
        self._queue.extendleft(reversed(batch))
        pause = min(max(self._busy_waited, 0.001), 0.05)  # 1, 1, 2, 4 ... 50 ms
        self._busy_waited += pause
        self._paused = True

        def again() -> None:
            self._paused = False
            self._schedule()
            self._settled()

        asyncio.get_running_loop().call_later(pause, again)

    def _isolate(self, batch: list[_Write], exc: Exception) -> list[tuple[_Write, Exception | None]]:
        """A group commit failed: run its writes one by one, so one bad write fails alone.
        If another process takes the lock meanwhile, the rest is marked for a retry."""
        conn = self._wconn
        assert conn is not None
        if len(batch) == 1:
            return [(batch[0], exc)]
        outcome: list[tuple[_Write, Exception | None]] = []
        for i, write in enumerate(batch):
            try:
                _run_transaction(conn, _grouped([write]))
                outcome.append((write, None))
            except sqlite3.OperationalError as one:
                if _busy(one):
                    return outcome + [(w, _RETRY) for w in batch[i:]]
                outcome.append((write, one))
            except Exception as one:
                outcome.append((write, one))
        return outcome

    def _synced(self, outcome: list[tuple[_Write, Exception | None]], error: OSError | None) -> None:
        self._in_sync -= 1
        self._unconfirmed -= len(outcome)
        if error is not None and not isinstance(error, SyncAbandoned) and not self._broken:
            # Committed, but maybe not on disk, and after a failed fdatasync a
            # later one that succeeds proves nothing: ack nothing from now on.
            # A restarted hub recovers from the database; resends are deduped.
            self._broken = f"storage failed, restart the hub: {error}"
            log.critical("%s", self._broken)
        if error is not None or self._broken:
            failure = error or StoreError(self._broken)
            outcome = [(w, e or failure) for w, e in outcome]
        self._committed(outcome)

    def _committed(self, outcome: list[tuple[_Write, Exception | None]]) -> None:
        """Resolve a commit's writes in submission order, then go on."""
        stored = 0
        for write, exc in outcome:
            if exc is None:
                stored += 1
                if not write.future.done():
                    write.future.set_result(None)
            else:
                self._fail(write, exc)
        if stored:
            self.commits += 1
            self.writes += stored
            if not self._broken and not any(e for _, e in outcome):
                self.healthy = True
            self._since_checkpoint += 1
            if self._since_checkpoint >= self.checkpoint_every and self._checkpoint is None:
                self._since_checkpoint = 0
                self._checkpoint = asyncio.get_running_loop().create_task(self._run_checkpoint())
        self._schedule()  # what was submitted meanwhile: at the next turn, not by recursion
        self._settled()

    def _settled(self) -> None:
        idle = not (self._paused or self._in_sync or self._scheduled or self._queue)
        if self._idle is not None and idle:
            self._idle.set()

    async def _run_checkpoint(self, holding: bool = False) -> None:
        """PASSIVE: copy what it can without blocking readers. Beside a running
        writer it may not catch up; `holding`, the writer waits for it."""
        try:
            assert self._cconn is not None
            async with self._cconn.execute("PRAGMA wal_checkpoint(PASSIVE)") as cur:
                row = await cur.fetchone()
            frames, copied = (row[1], row[2]) if row else (0, 0)
            if holding:
                self.full_checkpoints += 1
                self._hold_for_checkpoint = False
                if copied < frames:
                    # A reader still uses an old snapshot: the WAL cannot start
                    # over yet, and pausing the writer again soon gains nothing.
                    self._no_hold_until = time.monotonic() + HOLD_BACKOFF_S
                    log.warning("WAL not checkpointed (%d of %d frames): a reader holds it", copied, frames)
            elif frames >= self.wal_limit_frames and time.monotonic() >= self._no_hold_until:
                # The WAL has not started over for this long: the writer kept
                # adding frames while checkpoints copied the older ones.
                self._hold_for_checkpoint = True
        except Exception as exc:  # a missed checkpoint is retried later
            log.warning("checkpoint failed: %s", exc)
            self._hold_for_checkpoint = False
        finally:
            self._checkpoint = None
            if holding:
                self._paused = False
                self._schedule()
                self._settled()

    def _fail(self, write: _Write, exc: Exception) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        log.error("write failed: %s (%s)", self.last_error, write.sql.split("(")[0])
        if isinstance(exc, (OSError, sqlite3.OperationalError)) and not isinstance(exc, SyncAbandoned):
            self.healthy = False
        if not write.future.done():
            write.future.set_exception(StoreError(self.last_error))

    # -- writes -------------------------------------------------------------

    def put_user(self, user: UserRecord) -> asyncio.Future[None]:
        return self._submit(
            "INSERT INTO users(id, role, name, pw_hash, disabled, max_chats, groups, status, created_at)"
            " VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET role=excluded.role,"
            " name=excluded.name, pw_hash=excluded.pw_hash, disabled=excluded.disabled,"
            " max_chats=excluded.max_chats, groups=excluded.groups, status=excluded.status",
            (
                user.id, user.role, user.name, user.pw_hash, int(user.disabled), user.max_chats,
                _dump(user.groups), user.status, user.created_at or time.time(),
            ),
        )  # fmt: skip

    def set_user_status(self, user_id: str, status: str) -> asyncio.Future[None]:
        return self._submit("UPDATE users SET status=? WHERE id=?", (status, user_id))

    def insert_conversation(self, conv: ConversationRecord) -> asyncio.Future[None]:
        cols = ",".join(_CONV_FIELDS)
        marks = ",".join("?" * len(_CONV_FIELDS))
        params = tuple(_col(f, getattr(conv, f)) for f in _CONV_FIELDS)
        return self._submit(f"INSERT INTO conversations({cols}) VALUES ({marks})", params)

    def update_conversation(self, conv_id: str, **fields: Any) -> asyncio.Future[None]:
        unknown = set(fields) - set(_CONV_FIELDS)
        if unknown:
            raise ValueError(f"unknown conversation fields {sorted(unknown)}")
        names = sorted(fields)
        sets = ",".join(f"{n}=?" for n in names)
        params = (*(_col(n, fields[n]) for n in names), conv_id)
        return self._submit(f"UPDATE conversations SET {sets} WHERE id=?", params)

    def append_message(
        self, msg: MessageRecord, written: Callable[[], None] | None = None
    ) -> asyncio.Future[None]:
        return self._submit(
            "INSERT INTO messages(conv_id, seq, msg_id, kind, sender, sender_id, sender_name, text, ts, epoch)"
            " VALUES (?,?,?,?,?,?,?,?,?,?)",
            (msg.conv_id, msg.seq, msg.msg_id, msg.kind, msg.sender, msg.sender_id,
             msg.sender_name, msg.text, msg.ts, msg.epoch),
            written,
        )  # fmt: skip

    async def next_epoch(self) -> int:
        # Never one used before, even when the increment itself is lost (a power
        # cut with --sync normal) or the file is a restored backup: the clock
        # (ms) has moved on since any run whose messages a client can hold.
        rows = await self._all("SELECT v FROM meta WHERE k='epoch'")
        epoch = max(int(rows[0][0]) + 1, int(time.time() * 1000))
        await self._submit("UPDATE meta SET v=? WHERE k='epoch'", (str(epoch),))
        return epoch

    def add_transfer(
        self, conv_id: str, from_agent: str, to_group: str, to_agent: str, note: str, ts: float
    ) -> asyncio.Future[None]:
        return self._submit(
            "INSERT INTO transfers(conv_id, from_agent, to_group, to_agent, note, ts) VALUES (?,?,?,?,?,?)",
            (conv_id, from_agent, to_group, to_agent, note, ts),
        )

    def add_token(self, token_hash: str, user_id: str, session: str, ts: float) -> asyncio.Future[None]:
        return self._submit(
            "INSERT INTO tokens(hash, user_id, session, created_at) VALUES (?,?,?,?)",
            (token_hash, user_id, session, ts),
        )

    def revoke_token(self, token_hash: str, ts: float) -> asyncio.Future[None]:
        return self._submit(
            "UPDATE tokens SET revoked_at=? WHERE hash=? AND revoked_at IS NULL", (ts, token_hash)
        )

    def audit(
        self, actor: str, action: str, target: str = "", detail: dict[str, Any] | None = None
    ) -> asyncio.Future[None]:
        # The hash chain is computed inside the writing transaction (see
        # _run_transaction), which holds SQLite's write lock: a CLI writing
        # to the same file while the hub runs extends the same chain.
        return self._submit(_AUDIT, (time.time(), actor, action, target, _dump(detail or {})))

    def put_phrase(self, phrase: Phrase, by: str) -> asyncio.Future[None]:
        self._bump_phrases()
        return self._submit(
            "INSERT INTO phrases(id, scope, owner, code, lang, data, updated_at, updated_by)"
            " VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET scope=excluded.scope,"
            " owner=excluded.owner, code=excluded.code, lang=excluded.lang, data=excluded.data,"
            " updated_at=excluded.updated_at, updated_by=excluded.updated_by",
            (phrase.id, phrase.scope, phrase.owner, phrase.code, phrase.lang,
             msgspec.json.encode(phrase).decode(), phrase.updated_at, by),
        )  # fmt: skip

    def delete_phrase(self, phrase_id: str) -> asyncio.Future[None]:
        self._bump_phrases()
        self._submit("DELETE FROM phrase_usage WHERE phrase_id=?", (phrase_id,))
        return self._submit("DELETE FROM phrases WHERE id=?", (phrase_id,))

    def _bump_phrases(self) -> None:
        # Every writer (hub or CLI) bumps this, so a running hub notices
        # changes made behind its back with one cheap read.
        self._submit("UPDATE meta SET v = CAST(v AS INTEGER) + 1 WHERE k='phrases_rev'", ())

    def put_usage(self, rec: UsageRecord, conv_id: str, ts: float) -> asyncio.Future[None]:
        self._submit(
            "INSERT INTO phrase_uses(agent_id, phrase_id, conv_id, ts) VALUES (?,?,?,?)",
            (rec.agent, rec.phrase_id, conv_id, ts),
        )
        return self._submit(
            "INSERT INTO phrase_usage(agent_id, phrase_id, count, score, score_at, last_used)"
            " VALUES (?,?,?,?,?,?) ON CONFLICT(agent_id, phrase_id) DO UPDATE SET"
            " count=excluded.count, score=excluded.score, score_at=excluded.score_at,"
            " last_used=excluded.last_used",
            (rec.agent, rec.phrase_id, rec.count, rec.score, rec.score_at, rec.last_used),
        )

    async def load_phrases(self) -> list[Phrase]:
        rows = await self._all("SELECT data FROM phrases ORDER BY id")
        return [msgspec.json.decode(r[0], type=Phrase) for r in rows]

    async def load_usage(self) -> list[UsageRecord]:
        rows = await self._all(
            "SELECT agent_id, phrase_id, count, score, score_at, last_used FROM phrase_usage"
        )
        return [UsageRecord(*r) for r in rows]

    async def phrases_rev(self) -> int:
        rows = await self._all("SELECT v FROM meta WHERE k='phrases_rev'")
        return int(rows[0][0]) if rows else 0

    # -- the bot's misses -----------------------------------------------------

    def record_miss(self, question: str, sample: str, ts: float) -> asyncio.Future[None]:
        return self._submit(
            "INSERT INTO bot_misses(question, sample, count, first_at, last_at) VALUES (?,?,1,?,?)"
            " ON CONFLICT(question) DO UPDATE SET count=count+1, last_at=excluded.last_at,"
            " sample=excluded.sample",
            (question, sample, ts, ts),
        )

    async def conversations_since(self, since: float) -> list[dict[str, Any]]:
        """Every conversation touched since `since` (created, closed or rated): for figures."""
        rows = await self._all(
            "SELECT id, created_at, asked_at, assigned_at, first_response_at, state, closed_at,"
            " close_reason, closed_by, last_agent, transfers, rating, rated_at, grp, wrapup_code"
            " FROM conversations WHERE created_at >= ? OR closed_at >= ? OR rated_at >= ?",
            (since, since, since),
        )
        return [{k: r[k] for k in r.keys()} for r in rows]

    async def phrase_uses_since(self, since: float) -> dict[str, int]:
        rows = await self._all(
            "SELECT phrase_id, COUNT(*) FROM phrase_uses WHERE ts >= ? GROUP BY phrase_id", (since,)
        )
        return {r[0]: r[1] for r in rows}

    async def top_misses(self, limit: int = 50) -> list[tuple[str, int, float]]:
        """(latest wording, times asked, last asked), most asked first."""
        rows = await self._all(
            "SELECT sample, count, last_at FROM bot_misses ORDER BY count DESC, last_at DESC LIMIT ?",
            (limit,),
        )
        return [(r[0], r[1], r[2]) for r in rows]

    def barrier(self) -> asyncio.Future[None]:
        return self._submit(_NOOP, ())

    # -- reads --------------------------------------------------------------

    async def _all(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        if self._rconn is None:
            raise StoreError("the store is closed")
        async with self._rconn.execute(sql, tuple(params)) as cur:
            return list(await cur.fetchall())

    async def get_user(self, user_id: str) -> UserRecord | None:
        rows = await self._all("SELECT * FROM users WHERE id=?", (user_id,))
        return _user_from_row(rows[0]) if rows else None

    async def list_users(self) -> list[UserRecord]:
        return [_user_from_row(r) for r in await self._all("SELECT * FROM users ORDER BY id")]

    async def token_user(self, token_hash: str) -> tuple[str, str] | None:
        rows = await self._all(
            "SELECT user_id, session FROM tokens WHERE hash=? AND revoked_at IS NULL", (token_hash,)
        )
        return (rows[0][0], rows[0][1]) if rows else None

    async def get_conversation(self, conv_id: str) -> ConversationRecord | None:
        rows = await self._all("SELECT * FROM conversations WHERE id=?", (conv_id,))
        return _conv_from_row(rows[0]) if rows else None

    async def conversation_by_token(self, token_hash: str) -> ConversationRecord | None:
        rows = await self._all("SELECT * FROM conversations WHERE token_hash=?", (token_hash,))
        return _conv_from_row(rows[0]) if rows else None

    async def open_conversations(self) -> list[ConversationRecord]:
        rows = await self._all(
            "SELECT * FROM conversations WHERE state != 'closed' ORDER BY created_at, id"
        )
        return [_conv_from_row(r) for r in rows]

    async def last_seqs(self, conv_ids: Iterable[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for chunk in _chunks(list(conv_ids)):
            marks = ",".join("?" * len(chunk))
            rows = await self._all(
                f"SELECT conv_id, MAX(seq) FROM messages WHERE conv_id IN ({marks}) GROUP BY conv_id",
                chunk,
            )
            out.update({r[0]: r[1] for r in rows})
        return out

    async def message_ids(self, conv_ids: Iterable[str]) -> dict[tuple[str, str, str], tuple[int, int]]:
        out: dict[tuple[str, str, str], tuple[int, int]] = {}
        for chunk in _chunks(list(conv_ids)):
            marks = ",".join("?" * len(chunk))
            rows = await self._all(
                f"SELECT conv_id, sender_id, msg_id, seq, epoch FROM messages"
                f" WHERE conv_id IN ({marks}) AND msg_id != ''",
                chunk,
            )
            out.update({(r[0], r[1], r[2]): (r[3], r[4]) for r in rows})
        return out

    async def messages_after(
        self, conv_id: str, after_seq: int, include_staff: bool
    ) -> list[MessageRecord]:
        staff = "" if include_staff else " AND kind != 'note'"
        rows = await self._all(
            "SELECT conv_id, seq, msg_id, kind, sender, sender_id, sender_name, text, ts, epoch"
            f" FROM messages WHERE conv_id=? AND seq>?{staff} ORDER BY seq",
            (conv_id, after_seq),
        )
        return [_msg_from_row(r) for r in rows]

    async def audit_entries(self, limit: int = 100, after_id: int = 0) -> list[AuditRecord]:
        rows = await self._all(
            "SELECT id, ts, actor, action, target, detail, prev_hash, hash FROM audit"
            " WHERE id>? ORDER BY id LIMIT ?",
            (after_id, limit),
        )
        return [
            AuditRecord(id=r[0], ts=r[1], actor=r[2], action=r[3], target=r[4],
                        detail=json.loads(r[5]), prev_hash=r[6], hash=r[7])
            for r in rows
        ]  # fmt: skip

    async def audit_page(self, limit: int = 100, before_id: int = 0, action: str = "") -> list[AuditRecord]:
        """Newest first, for browsing (before_id pages back; action filters)."""
        where, params = [], []
        if before_id:
            where.append("id < ?")
            params.append(before_id)
        if action:
            where.append("action = ?")
            params.append(action)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self._all(
            f"SELECT id, ts, actor, action, target, detail, prev_hash, hash FROM audit {clause}"
            " ORDER BY id DESC LIMIT ?",
            (*params, limit),
        )
        return [
            AuditRecord(id=r[0], ts=r[1], actor=r[2], action=r[3], target=r[4],
                        detail=json.loads(r[5]), prev_hash=r[6], hash=r[7])
            for r in rows
        ]  # fmt: skip

    async def verify_audit(self, anchors: Iterable[tuple[int, str]] = ()) -> tuple[bool, int, str]:
        """Check the hash chain, and that each anchor (an entry's id and hash
        recorded outside the database, see ``audit_head``) is still there: the
        chain has no secret, so a writer of the file could rewrite it
        consistently; an anchor kept elsewhere cannot be rewritten with it."""
        prev, count = GENESIS, 0
        rows = await self._all(
            "SELECT id, ts, actor, action, target, detail, prev_hash, hash FROM audit ORDER BY id"
        )
        hashes: dict[int, str] = {}
        for r in rows:
            count += 1
            if r[6] != prev:
                return False, count, f"entry {r[0]}: broken link to the previous entry"
            if _audit_hash(prev, r[1], r[2], r[3], r[4], r[5]) != r[7]:
                return False, count, f"entry {r[0]}: contents do not match its hash"
            prev = hashes[r[0]] = r[7]
        for entry, digest in anchors:
            if entry not in hashes:
                return False, count, f"anchor {entry}: no such entry (deleted, or the log was replaced)"
            if hashes[entry] != digest:
                return False, count, f"anchor {entry}: the entry's hash changed (the log was rewritten)"
        return True, count, ""

    async def audit_head(self) -> tuple[int, str]:
        """The newest entry's id and hash (0 and the genesis hash when empty): record it
        somewhere the database's writers cannot reach, to check later with ``verify_audit``."""
        rows = await self._all("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1")
        return (rows[0][0], rows[0][1]) if rows else (0, GENESIS)

    async def ping(self) -> bool:
        try:
            await asyncio.wait_for(
                self._submit(_NOOP, ()), timeout=2.0
            )
        except (StoreError, TimeoutError):
            return False
        return True

    async def query(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        """Read-only SQL for reports and tests (never on a hot path)."""
        return await self._all(sql, params)


def _written(outcome: list[tuple[_Write, Exception | None]]) -> None:
    for write, exc in outcome:
        if exc is None and write.written is not None:
            try:
                write.written()
            except Exception:  # one caller's bug must not cost the others their acks
                log.exception("a written-callback failed")


def _grouped(batch: list[_Write]) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """Consecutive writes of one shape, as one ``executemany``."""
    groups: list[tuple[str, list[tuple[Any, ...]]]] = []
    for w in batch:
        if groups and groups[-1][0] == w.sql:
            groups[-1][1].append(w.params)
        else:
            groups.append((w.sql, [w.params]))
    return groups


def _run_transaction(conn: sqlite3.Connection, groups: list[tuple[str, list[tuple[Any, ...]]]]) -> None:
    """One transaction on the writer connection, committed or rolled back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for sql, rows in groups:
            if sql == _AUDIT:
                _append_audit(conn, rows)
            elif len(rows) == 1:
                conn.execute(sql, rows[0])
            else:
                conn.executemany(sql, rows)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLite may have rolled back already (full disk, I/O error)
            conn.execute("ROLLBACK")
        raise


def _append_audit(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    """Chain each entry to the last one stored, inside the write transaction."""
    last = conn.execute("SELECT hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    prev = last[0] if last else GENESIS
    for ts, actor, action, target, body in rows:
        digest = _audit_hash(prev, ts, actor, action, target, body)
        conn.execute(
            "INSERT INTO audit(ts, actor, action, target, detail, prev_hash, hash) VALUES (?,?,?,?,?,?,?)",
            (ts, actor, action, target, body, prev, digest),
        )
        prev = digest


def _busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)


def _audit_hash(prev: str, ts: float, actor: str, action: str, target: str, body: str) -> str:
    line = "\x1f".join((prev, repr(ts), actor, action, target, body))
    return hashlib.sha256(line.encode()).hexdigest()


def _chunks(items: list[str], size: int = 500) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
