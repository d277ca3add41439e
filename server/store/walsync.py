"""Syncing the WAL in a helper process, for ``synchronous=FULL`` durability.

The hub's writer commits on the event loop with SQLite's ``synchronous=
NORMAL`` (the WAL frames are written, not yet flushed), then asks this
helper to ``fdatasync`` the WAL and acks only when it answers. In WAL mode
that is what ``FULL`` does on every commit, without blocking the loop.

The helper (``walsync_child.py``) is a child process rather than a thread:
see its docstring. It dies with the hub (end of its input).

Two kinds of failure, two answers:
- The helper dies (killed, crashed) or will not start: nothing is known to
  be lost, the committed frames are in the page cache. A new helper is
  started (tried again and again) and asked for every sync still owed; those
  writes are acked late, not failed.
- ``fdatasync`` itself fails (EIO, ENOSPC): the kernel may already have
  dropped the dirty pages, so a later sync that succeeds proves nothing
  (PostgreSQL's "fsyncgate"). That sync's ``done`` gets the error, and the
  store stops acking anything (see ``SQLiteStore._synced``). Every helper
  syncs the one WAL descriptor the hub opened, and a new helper first syncs a
  witness descriptor, so an error a dead helper saw is not lost with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections import deque
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("hub.store")

CHILD = Path(__file__).with_name("walsync_child.py")
START_TIMEOUT_S = 10.0
RESTART_PAUSE_MAX_S = 5.0  # a helper that will not start is tried again this often, for ever

Done = Callable[[OSError | None], None]


class SyncAbandoned(OSError):
    """The store closed before the helper answered: not acked, nothing known to have failed."""


class WalSync:
    """Asks the helper for syncs; calls each ``done`` in order, on the loop."""

    def __init__(self, wal: Path) -> None:
        self.wal = wal  # the real WAL file (the store resolves it with SQLite)
        self._fd = -1  # the WAL, open for the hub's whole life; every helper syncs it
        self._witness = -1  # the same file opened again, synced only when a helper starts
        self._proc: asyncio.subprocess.Process | None = None
        self._ask = -1  # our end of the helper's input
        self._answers = -1  # our end of the helper's output
        self._pending: deque[Done] = deque()  # asked, in order; the helper answers in order
        self._buf = b""
        self._restarting: asyncio.Task[None] | None = None
        self.restarts = 0  # helpers started after the first

    @property
    def running(self) -> bool:
        return self._proc is not None

    async def start(self) -> None:
        """Open the WAL and start the first helper; raises OSError if it does not come up."""
        self._fd = os.open(self.wal, os.O_RDWR | os.O_CLOEXEC)
        self._witness = os.open(self.wal, os.O_RDWR | os.O_CLOEXEC)
        try:
            await self._spawn(check_witness=False)
        except BaseException:
            self._close_files()
            raise

    async def _spawn(self, check_witness: bool) -> None:
        loop = asyncio.get_running_loop()
        ask = answers = -1
        child_in, ask = os.pipe()
        try:
            answers, child_out = os.pipe()
        except BaseException:
            for fd in (child_in, ask):
                os.close(fd)
            raise
        args = [str(self._fd), str(self._witness)] if check_witness else [str(self._fd)]
        passed = (self._fd, self._witness) if check_witness else (self._fd,)
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-I", "-S", str(CHILD), *args,
                stdin=child_in, stdout=child_out, pass_fds=passed,
            )  # fmt: skip
        except BaseException:
            for fd in (ask, answers):
                os.close(fd)
            raise
        finally:
            os.close(child_in)
            os.close(child_out)
        os.set_blocking(answers, False)
        ready: asyncio.Future[bytes] = loop.create_future()

        def first_line() -> None:
            with contextlib.suppress(BlockingIOError):
                line = os.read(answers, 64)
                if not ready.done():
                    ready.set_result(line)

        loop.add_reader(answers, first_line)
        try:
            line = await asyncio.wait_for(ready, START_TIMEOUT_S)
            if line != b"ready\n":
                raise OSError(f"the WAL sync helper did not start ({line!r})")
        except BaseException:
            loop.remove_reader(answers)
            _end(proc, ask, answers)
            raise
        loop.remove_reader(answers)
        loop.add_reader(answers, self._readable)
        self._proc, self._ask, self._answers = proc, ask, answers

    def sync(self, done: Done) -> None:
        """Ask for a sync of everything written so far; ``done(None)`` once it is on disk."""
        self._pending.append(done)
        if self._proc is not None:
            self._ask_helper(1)

    def _ask_helper(self, n: int) -> None:
        try:
            os.write(self._ask, b"s" * n)
        except OSError as exc:
            self._lost(exc)

    def _readable(self) -> None:
        try:
            data = os.read(self._answers, 65536)
        except BlockingIOError:
            return
        except OSError as exc:
            self._lost(exc)
            return
        if not data:
            self._lost(OSError("the WAL sync helper exited"))
            return
        self._answered(data)

    def _answered(self, data: bytes) -> None:
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        settled: list[tuple[Done, OSError | None]] = []
        for line in lines:  # take them all first: a failing callback must not strand the rest
            if not self._pending:
                log.error("WAL sync helper answered a sync nobody asked for: %r", line)
                continue
            error = None if line == b"ok" else OSError(f"WAL sync failed: {line.decode(errors='replace')}")
            settled.append((self._pending.popleft(), error))
        for done, error in settled:
            try:
                done(error)
            except Exception:
                log.exception("a sync's callback failed")

    def _detach(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            asyncio.get_running_loop().remove_reader(self._answers)
            _end(proc, self._ask, self._answers)
        self._ask = self._answers = -1
        self._buf = b""

    def _lost(self, exc: OSError) -> None:
        """The helper is gone. What it owed is not lost: a new one syncs it."""
        # Whatever it answered before it went still counts (an error above all).
        with contextlib.suppress(OSError):
            while self._answers >= 0 and (data := os.read(self._answers, 65536)):
                self._answered(data)
        log.error("WAL sync helper lost (%s); restarting it for %d syncs", exc, len(self._pending))
        self._detach()
        if self._restarting is None:
            self._restarting = asyncio.get_running_loop().create_task(self._restart())

    async def _restart(self) -> None:
        pause = 0.05
        while True:
            try:
                # The witness reports a write-back error the lost helper may
                # have seen and not told: then every owed sync fails.
                await self._spawn(check_witness=True)
                break
            except Exception as exc:  # keep trying: nothing is known lost, acks just wait
                log.error("WAL sync helper did not start (%s); again in %.1f s", exc, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, RESTART_PAUSE_MAX_S)
        self._restarting = None
        self.restarts += 1
        if self._pending:
            self._ask_helper(len(self._pending))

    async def stop(self) -> None:
        if self._restarting is not None:
            self._restarting.cancel()
            self._restarting = None
        proc = self._proc
        self._detach()
        pending, self._pending = self._pending, deque()
        for done in pending:
            done(SyncAbandoned("the store closed before the WAL was synced"))
        if proc is not None:
            try:
                await asyncio.wait_for(proc.wait(), 2.0)
            except TimeoutError:
                _kill_if_running(proc)
                await proc.wait()
        self._close_files()

    def _close_files(self) -> None:
        for fd in (self._fd, self._witness):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fd = self._witness = -1

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None


def _end(proc: asyncio.subprocess.Process, ask: int, answers: int) -> None:
    """Close its input: it exits by itself (asyncio reaps it). A helper that
    does not is killed a moment later."""
    for fd in (ask, answers):
        with contextlib.suppress(OSError):
            os.close(fd)
    if proc.returncode is None:
        asyncio.get_running_loop().call_later(2.0, _kill_if_running, proc)


def _kill_if_running(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
