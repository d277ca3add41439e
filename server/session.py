"""One connected client: who it is, what it may see, and its outbound queue.

Frames are queued and written by a task that exists only while there is
something to write (an idle connection costs no task). A client that stops
reading is cut off once its backlog passes a bound, so it cannot grow the
hub's memory; it reconnects and resumes from its cursor.

While a conversation is being replayed to this client from the database, live
messages for it are held back and released after the replay, so the client
sees every sequence number once and in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from typing import Any, Protocol

from msgspec import Struct

from .protocol import Error, encode

log = logging.getLogger("hub.session")

# Close codes (see docs/PROTOCOL.md).
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_REPLACED = 4001  # the same principal connected again elsewhere
CLOSE_LOGGED_OUT = 4002  # the token was revoked or the user logged out
CLOSE_SLOW = 4008  # too much unsent: the client was not reading

_ids = itertools.count(1)
FAST_WRITE_LIMIT = 64 * 1024  # bytes already buffered in the kernel-side transport


class Transport(Protocol):
    async def send(self, message: bytes, text: bool | None = None) -> None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


class Session:
    def __init__(self, transport: Transport, peer: str = "", max_outbound: int = 1 << 20) -> None:
        self.id = next(_ids)
        self.transport = transport
        self.peer = peer
        self.role: str = ""  # "" until hello/login, then customer | agent | supervisor
        self.principal: str = ""  # conversation id (customer) or user id (staff)
        self.name: str = ""
        self.token_hash: str = ""
        self.conv: str = ""  # a customer's conversation
        # Conversations this session may receive frames of right now.
        self.visible: set[str] = set()
        self.closed = False
        self.max_outbound = max_outbound
        self._out: deque[bytes] = deque()
        self._out_bytes = 0
        self._writer: asyncio.Task[None] | None = None
        self._unflushed = 0  # bytes framed by the protocol, not yet handed to the socket
        self._syncing: dict[str, list[tuple[int, bytes]]] = {}
        self.frames_in = 0
        self.strikes = 0
        # The rate limiter's bucket.
        self.tokens = 0.0
        self.refilled_at = 0.0

    def __repr__(self) -> str:
        return f"<Session {self.id} {self.role or 'anonymous'} {self.principal}>"

    # -- sending ------------------------------------------------------------

    def send(self, frame: Struct) -> None:
        self.push(encode(frame))

    def error(self, code: str, message: str, ref: str = "", conv: str = "") -> None:
        self.send(Error(code=code, message=message, ref=ref, conv=conv))

    def push(self, data: bytes) -> None:
        if self.closed:
            return
        if self._writer is None and not self._out and self._write_now(data):
            return
        self._out.append(data)
        self._out_bytes += len(data)
        if self._out_bytes > self.max_outbound:
            log.warning("session %s: %d bytes unsent, disconnecting", self.id, self._out_bytes)
            self._out.clear()
            self._out_bytes = 0
            self.kill(CLOSE_SLOW, "too slow: resume from your cursor")
            # A client that does not read cannot receive a close frame either:
            # drop the link now rather than hold its buffers for the close timeout.
            abort = getattr(getattr(self.transport, "transport", None), "abort", None)
            if abort is not None:
                asyncio.get_running_loop().call_later(0.5, abort)
            return
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._drain())

    def deliver(self, conv: str, seq: int, data: bytes) -> None:
        """A conversation message: held back while that conversation replays."""
        held = self._syncing.get(conv)
        if held is not None:
            held.append((seq, data))
        else:
            self.push(data)

    def _write_now(self, data: bytes) -> bool:
        """Hand the frame to the socket without a task, when the socket keeps up.

        This is what ``await connection.send()`` does after its checks, minus
        the coroutine and lock: a hub sends several frames per message, and
        the async path costs more than the write itself. The frame is framed
        at once (so order is kept with anything websockets sends itself) and
        the bytes go to the socket at the end of this turn of the event loop,
        together with every other frame this session got in the same turn: a
        group commit that acks eight messages of one sender is one write
        system call, not eight. When the kernel buffer backs up past
        ``FAST_WRITE_LIMIT`` (or anything is odd), the frame takes the queued
        path, which awaits the socket's drain."""
        proto = getattr(self.transport, "protocol", None)
        sock = getattr(self.transport, "transport", None)
        if proto is None or sock is None:
            return False
        if sock.get_write_buffer_size() + self._unflushed > FAST_WRITE_LIMIT:
            return False
        try:
            proto.send_text(data)
        except Exception:  # not open: the queued path reports it
            return False
        if not self._unflushed:
            asyncio.get_running_loop().call_soon(self._flush)
        self._unflushed += len(data) or 1
        return True

    def _flush(self) -> None:
        """Write what the protocol holds in one call (see ``_write_now``)."""
        self._unflushed = 0
        proto = getattr(self.transport, "protocol", None)
        sock = getattr(self.transport, "transport", None)
        if proto is None or sock is None:
            return
        try:
            writes = proto.data_to_send()
            if all(writes):
                if writes:
                    sock.write(writes[0] if len(writes) == 1 else b"".join(writes))
                return
            for data in writes:  # rare: a close is under way
                if data:
                    sock.write(data)
                elif sock.can_write_eof():  # websockets' end-of-stream mark: half-close
                    sock.write_eof()
                else:
                    sock.close()
        except Exception:  # the socket is gone; websockets reports the close
            log.debug("session %s: write failed", self.id)

    async def _drain(self) -> None:
        try:
            while self._out and not self.closed:
                data = self._out.popleft()
                self._out_bytes -= len(data)
                await self.transport.send(data, text=True)
        except Exception:
            self._out.clear()
            self._out_bytes = 0
        finally:
            self._writer = None

    @property
    def backlog(self) -> int:
        return self._out_bytes

    def kill(self, code: int, reason: str) -> None:
        """Close the socket without waiting (safe to call from sync code)."""
        if self.closed:
            return
        self.closed = True
        asyncio.get_running_loop().create_task(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self.transport.close(code, reason)

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until everything queued so far has been written (best effort)."""
        writer = self._writer
        if writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(writer), timeout)

    # -- replay -------------------------------------------------------------

    def begin_sync(self, conv: str) -> None:
        self._syncing.setdefault(conv, [])

    def syncing(self, conv: str) -> bool:
        return conv in self._syncing

    def end_sync(self, conv: str, replayed_upto: int) -> int:
        """Release held live messages newer than the replay; returns the last seq."""
        last = replayed_upto
        for seq, data in self._syncing.pop(conv, []):
            if seq > last:
                self.push(data)
                last = seq
        return last

    def drop_sync(self, conv: str) -> None:
        self._syncing.pop(conv, None)

    def info(self) -> dict[str, Any]:
        return {"id": self.id, "role": self.role, "principal": self.principal, "peer": self.peer}
