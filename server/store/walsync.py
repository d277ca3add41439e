"""Syncing the WAL in a helper process, for ``synchronous=FULL`` durability.

The hub's writer commits on the event loop with SQLite's ``synchronous=
NORMAL`` (the WAL frames are written, not yet flushed), then asks this
helper to ``fdatasync`` the WAL and acks only when it answers. In WAL mode
that is what ``FULL`` does on every commit, without blocking the loop.

The helper (``walsync_child.py``) is a child process rather than a thread:
see its docstring. It dies with the hub (end of its input). If it dies on
its own, the syncs it owed fail (those writes are not acked, the store
turns unhealthy) and the next sync starts a new helper.
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

Done = Callable[[OSError | None], None]


class WalSync:
    """Asks the helper for syncs; calls each ``done`` in order, on the loop."""

    def __init__(self, wal: Path) -> None:
        self.wal = wal
        self._proc: asyncio.subprocess.Process | None = None
        self._ask = -1  # our end of the helper's input
        self._answers = -1  # our end of the helper's output
        self._pending: deque[Done] = deque()
        self._buf = b""
        self._starting: asyncio.Task[None] | None = None
        self._after_start: list[Done] = []
        self.restarts = -1  # helpers started after the first

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        child_in, ask = os.pipe()
        answers, child_out = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-I", "-S", str(CHILD), str(self.wal), stdin=child_in, stdout=child_out
            )
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
        self.restarts += 1

    def sync(self, done: Done) -> None:
        """Ask for a sync of everything written so far; ``done(None)`` once it is on disk."""
        if self._proc is None:
            # The helper died earlier: start another one, then ask it.
            self._after_start.append(done)
            if self._starting is None:
                self._starting = asyncio.get_running_loop().create_task(self._restart())
            return
        self._pending.append(done)
        try:
            os.write(self._ask, b"s")
        except OSError as exc:
            self._died(exc)

    async def _restart(self) -> None:
        try:
            await self.start()
            error = None
        except Exception as exc:
            error = OSError(f"the WAL sync helper could not be started: {exc}")
            log.error("%s", error)
        self._starting = None
        waiting, self._after_start = self._after_start, []
        for done in waiting:
            if error is None:
                self.sync(done)
            else:
                done(error)

    def _readable(self) -> None:
        try:
            data = os.read(self._answers, 65536)
        except BlockingIOError:
            return
        except OSError as exc:
            self._died(exc)
            return
        if not data:
            self._died(OSError("the WAL sync helper exited"))
            return
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        for line in lines:
            if not self._pending:
                log.error("WAL sync helper answered a sync nobody asked for: %r", line)
                continue
            done = self._pending.popleft()
            if line == b"ok":
                done(None)
            else:
                done(OSError(f"WAL sync failed: {line.decode(errors='replace')}"))

    def _detach(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            asyncio.get_running_loop().remove_reader(self._answers)
            _end(proc, self._ask, self._answers)
        self._ask = self._answers = -1
        self._buf = b""

    def _died(self, exc: OSError) -> None:
        """The helper is gone: what it owed fails; the next sync starts a new one."""
        log.error("WAL sync helper lost (%s); %d syncs fail", exc, len(self._pending))
        self._detach()
        pending, self._pending = self._pending, deque()
        for done in pending:
            done(exc)

    async def stop(self) -> None:
        proc = self._proc
        self._detach()
        if proc is not None:
            try:
                await asyncio.wait_for(proc.wait(), 2.0)
            except TimeoutError:
                _kill_if_running(proc)
                await proc.wait()
        if self._starting is not None:
            self._starting.cancel()
            self._starting = None
        pending = [*self._pending, *self._after_start]
        self._pending, self._after_start = deque(), []
        for done in pending:
            done(OSError("the store closed before the sync finished"))

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
