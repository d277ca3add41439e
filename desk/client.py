"""A resilient hub connection for every client (agent desk, customer app,
supervisor monitor, simulator). No Textual here: apps feed its frames into
their own message loop.

It reconnects by itself (``async for ws in connect(...)``, which backs off),
then logs in again or resumes with the token and its cursors, and resends
every message that was not acked, with the same ``msg_id`` so the hub stores
each once. Cursors (the last ``seq`` held per conversation, with the
``epoch`` of that message) advance from ``msg``, ``ack`` and ``synced``
frames; after a ``resync`` the conversation starts again from nothing.

A message the hub refuses for good (an ``error`` whose ``ref`` is its
``msg_id`` and whose code is in ``FINAL_SEND_ERRORS``: the chat has ended, it
is not yours, the text is too long...) leaves the unsent queue: sending it
again could only be refused again. The app gets that ``error`` frame like
any other and marks the line as not sent. A transient refusal
(``store_failed``, ``rate_limited``) keeps the message queued and sends it
again shortly, without waiting for a reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from server import protocol as p

log = logging.getLogger("desk.client")

FrameHandler = Callable[[Any], Awaitable[None] | None]
# Close codes after which reconnecting would be wrong (see docs/PROTOCOL.md).
FINAL_CLOSES = {4001, 4002}
# Refusals of a message (error ``ref`` = its msg_id) that resending the same
# frame cannot change: it leaves the unsent queue (docs/PROTOCOL.md, Errors).
FINAL_SEND_ERRORS = frozenset({"invalid_state", "unknown_conversation", "forbidden", "too_long", "bad_frame"})
# Refusals that another try may pass: every unacked message goes again (the
# hub stores each msg_id once), up to len(RETRY_DELAYS) rounds while some stay
# unacked, pausing RETRY_DELAYS (one step longer each round, back to the first
# after an ack). ``rate_limited`` names no frame, hence "every".
TRANSIENT_SEND_ERRORS = frozenset({"store_failed", "rate_limited", "internal"})
RETRY_DELAYS = (0.5, 1.0, 2.0, 5.0)


def quick_backoff() -> Generator[float]:
    """Reconnect fast at first (a hub restart takes a second), then back off."""
    yield from (0.2, 0.5, 1.0, 2.0, 3.0)
    while True:
        yield 5.0


@dataclass(slots=True)
class Pending:
    frame: p.Send | p.Note
    sent: int = 0  # how many times it went out


@dataclass
class ClientState:
    status: str = "connecting"  # connecting | online | offline | closed
    token: str = ""
    conv: str = ""  # a customer's conversation
    cursors: dict[str, int] = field(default_factory=dict)
    # The run of the hub that numbered the message at each cursor: a cursor
    # is (seq, epoch), so a message a crash took back is never resumed past.
    epochs: dict[str, int] = field(default_factory=dict)
    syncing: set[str] = field(default_factory=set)
    last_error: str = ""
    reconnects: int = 0


class HubClient:
    """Connect as a customer (``hello``) or staff (``login``) and stay connected."""

    def __init__(
        self,
        url: str,
        on_frame: FrameHandler,
        *,
        hello: p.Hello | None = None,
        login: p.Login | None = None,
        on_status: Callable[[str], None] | None = None,
        backoff: Callable[[], Generator[float]] = quick_backoff,
    ) -> None:
        if (hello is None) == (login is None):
            raise ValueError("give exactly one of hello (customer) or login (staff)")
        self.url = url
        self.on_frame = on_frame
        self.hello = hello
        self.login = login
        self.on_status = on_status
        self.backoff = backoff
        self.state = ClientState()
        self.pending: dict[str, Pending] = {}  # msg_id -> unacked message
        self._ws: ClientConnection | None = None
        self._ids = itertools.count(1)
        self._prefix = secrets.token_hex(3)
        self._stop = False
        self._ready = asyncio.Event()
        self._retry: asyncio.Task[None] | None = None
        self._refusals = 0  # retry rounds since the last ack

    # -- sending ----------------------------------------------------------------

    def new_msg_id(self) -> str:
        return f"{self._prefix}-{next(self._ids)}"

    async def send_text(self, conv: str, text: str, *, note: bool = False) -> str:
        """Queue a message until the hub acks it; returns its msg_id."""
        msg_id = self.new_msg_id()
        frame: p.Send | p.Note = (p.Note if note else p.Send)(conv=conv, msg_id=msg_id, text=text)
        pend = self.pending[msg_id] = Pending(frame)
        if await self._try_send(frame):  # its ack (or refusal) may come before this returns
            pend.sent += 1
        return msg_id

    async def send(self, frame: p.Frame) -> bool:
        """Send a frame now if connected; False if it could not go out."""
        return await self._try_send(frame)

    async def _try_send(self, frame: p.Frame) -> bool:
        ws = self._ws
        if ws is None or self.state.status != "online":
            return False
        try:
            await ws.send(p.encode(frame), text=True)
        except ConnectionClosed:
            return False
        return True

    async def wait_online(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._ready.wait(), timeout)

    # -- running ------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, and reconnect after every drop, until ``close()``."""
        try:
            async for ws in connect(self.url, reconnect_delays=self.backoff, compression=None,
                                    open_timeout=5, close_timeout=2):  # fmt: skip
                if self._stop:
                    await ws.close()
                    break
                self._ws = ws
                try:
                    await self._session(ws)
                except ConnectionClosed as exc:
                    code = exc.rcvd.code if exc.rcvd else None
                    if code in FINAL_CLOSES:
                        self.state.last_error = exc.rcvd.reason if exc.rcvd else str(code)
                        self._set_status("closed")
                        break
                finally:
                    self._ws = None
                    self._ready.clear()
                if self._stop:
                    break
                self.state.reconnects += 1
                self._set_status("offline")
        except (InvalidURI, InvalidHandshake, OSError) as exc:
            self.state.last_error = str(exc)
            self._set_status("closed")
            raise

    async def _session(self, ws: ClientConnection) -> None:
        self._set_status("connecting")
        await ws.send(p.encode(self._opening()), text=True)
        async for raw in ws:
            frame = p.decode_hub(raw)
            await self._track(ws, frame)
            result = self.on_frame(frame)
            if asyncio.iscoroutine(result):
                await result

    def _opening(self) -> p.Frame:
        st = self.state
        if self.hello is not None:
            if st.token:
                return p.Hello(name=self.hello.name, channel=self.hello.channel, flags=self.hello.flags,
                               lang=self.hello.lang, resume_token=st.token,
                               last_seq=st.cursors.get(st.conv, 0),
                               last_epoch=st.epochs.get(st.conv, 0))  # fmt: skip
            return self.hello
        assert self.login is not None
        if st.token:
            return p.Login(user=self.login.user, token=st.token, cursors=dict(st.cursors),
                           epochs={c: st.epochs.get(c, 0) for c in st.cursors})  # fmt: skip
        return self.login

    async def _track(self, ws: ClientConnection, frame: Any) -> None:
        """Keep cursors, tokens and the unacked queue in step with the hub."""
        st = self.state
        if isinstance(frame, p.Welcome):
            st.token, st.conv = frame.resume_token, frame.conv
            st.cursors.setdefault(frame.conv, 0)
            if frame.resumed:
                st.syncing.add(frame.conv)
            else:
                st.syncing.discard(frame.conv)
                await self._online(ws)
        elif isinstance(frame, p.LoginOk):
            st.token = frame.token
            await self._online(ws)
        elif isinstance(frame, p.Msg):
            if frame.seq > st.cursors.get(frame.conv, 0):
                st.cursors[frame.conv], st.epochs[frame.conv] = frame.seq, frame.epoch
        elif isinstance(frame, p.Ack):
            self.pending.pop(frame.msg_id, None)
            self._refusals = 0
            if frame.seq > st.cursors.get(frame.conv, 0):
                st.cursors[frame.conv], st.epochs[frame.conv] = frame.seq, frame.epoch
        elif isinstance(frame, p.Assigned):
            st.syncing.add(frame.conv)
            st.cursors.setdefault(frame.conv, 0)
        elif isinstance(frame, p.Resync):
            st.cursors[frame.conv], st.epochs[frame.conv] = 0, 0
        elif isinstance(frame, p.Synced):
            if frame.last_seq >= st.cursors.get(frame.conv, 0):
                st.cursors[frame.conv], st.epochs[frame.conv] = frame.last_seq, frame.epoch
            st.syncing.discard(frame.conv)
            if self.hello is not None:
                await self._online(ws)
        elif isinstance(frame, p.Unassigned):
            st.cursors.pop(frame.conv, None)
            st.epochs.pop(frame.conv, None)
            st.syncing.discard(frame.conv)
            for msg_id in [m for m, pend in self.pending.items() if pend.frame.conv == frame.conv]:
                del self.pending[msg_id]
        elif isinstance(frame, p.Error):
            await self._refused(ws, frame)

    async def _refused(self, ws: ClientConnection, frame: p.Error) -> None:
        st = self.state
        if frame.code == "unknown_token":
            st.token = ""  # start afresh next time
            if self.hello is not None:
                await ws.send(p.encode(self.hello), text=True)
        elif frame.code in ("bad_credentials", "throttled") and st.token:
            st.token = ""  # the saved token no longer works: fall back to the password
            if self.login is not None and self.login.password:
                await ws.send(p.encode(self.login), text=True)
        elif frame.code in FINAL_SEND_ERRORS and frame.ref in self.pending:
            del self.pending[frame.ref]  # refused for good: never sent again
        elif frame.code in TRANSIENT_SEND_ERRORS and self.pending:
            self._retry_soon()

    async def _online(self, ws: ClientConnection) -> None:
        self._set_status("online")
        self._ready.set()
        for pend in list(self.pending.values()):  # the same msg_id: stored once
            with contextlib.suppress(ConnectionClosed):
                await ws.send(p.encode(pend.frame), text=True)
                pend.sent += 1

    def _retry_soon(self) -> None:
        """After a transient refusal: send the unacked messages again (one retry task at most)."""
        if self._retry is None or self._retry.done():
            self._retry = asyncio.get_running_loop().create_task(self._resend_unacked())

    async def _resend_unacked(self) -> None:
        # A few rounds, not one: the hub reports only some of the frames it
        # drops for the rate limit, so a resend may be dropped without a word.
        for _ in RETRY_DELAYS:
            await asyncio.sleep(RETRY_DELAYS[min(self._refusals, len(RETRY_DELAYS) - 1)])
            self._refusals += 1
            ws = self._ws
            if ws is None or self.state.status != "online" or self._stop or not self.pending:
                return  # done, or offline: the next login sends them all anyway
            for pend in list(self.pending.values()):
                try:
                    await ws.send(p.encode(pend.frame), text=True)
                except ConnectionClosed:
                    return
                pend.sent += 1

    def _set_status(self, status: str) -> None:
        if status != self.state.status:
            self.state.status = status
            if self.on_status is not None:
                self.on_status(status)

    async def close(self) -> None:
        self._stop = True
        if self._retry is not None:
            self._retry.cancel()
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        self._set_status("closed")

    def drop(self) -> None:
        """Cut the link abruptly (tests and fault drills): the client reconnects."""
        ws = self._ws
        if ws is not None:
            ws.transport.abort()
