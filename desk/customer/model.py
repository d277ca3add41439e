"""The customer's side of one chat as plain data: no Textual, no sockets.

``ChatModel.apply(frame)`` folds a decoded hub frame into the model and
returns an ``Update`` naming what the screen must redraw. The network worker
and the snapshot tests feed it the same way, so what the tests see is what a
live chat shows.
"""

from __future__ import annotations

import bisect
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

# A refusal in FINAL_SEND_ERRORS fails the line: HubClient, on the same codes,
# has dropped it from its unsent queue.
from desk.client import FINAL_SEND_ERRORS
from server import protocol as p

Who = Literal["me", "bot", "agent", "system"]
Link = Literal["connecting", "online", "reconnecting", "closed"]


@dataclass(eq=False)
class Line:
    """One transcript line. ``key`` is local and stable; ``seq`` comes from the hub."""

    key: int
    who: Who
    text: str
    name: str = ""
    ts: float = 0.0
    seq: int | None = None
    msg_id: str = ""
    failed: str = ""  # the hub's error code when it refused the line

    @property
    def pending(self) -> bool:
        return self.seq is None and not self.failed

    @property
    def order(self) -> tuple[int, int]:
        """Stored lines in seq order, then our unacked ones in the order typed."""
        return (0, self.seq) if self.seq is not None else (1, self.key)


@dataclass
class Update:
    """What one frame changed, for the screen to redraw."""

    lines: list[Line] = field(default_factory=list)  # added or changed
    removed: list[Line] = field(default_factory=list)
    reset: bool = False  # drop every stored line before applying `lines`
    status: bool = False  # conversation state, queue, agent or typing changed
    rating: bool = False  # the hub asks for a rating
    notice: str = ""  # a text key to show as a toast
    error: p.Error | None = None  # a refusal not tied to a transcript line

    def merge(self, other: Update) -> Update:
        self.lines += other.lines
        self.removed += other.removed
        self.reset |= other.reset
        self.status |= other.status
        self.rating |= other.rating
        self.notice = other.notice or self.notice
        self.error = other.error or self.error
        return self


class ChatModel:
    """Folds hub frames into transcript lines and status fields."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._now = clock
        self.conv = ""
        self.state = "connecting"  # connecting | bot | queued | assigned | closed
        self.agent_name = ""
        self.queue_position: int | None = None
        self.queue_eta: int | None = None
        self.typing_name = ""
        self.typing_at = 0.0
        self.rated = False
        self.rating_asked = False
        self._keys = itertools.count(1)
        self._lines: list[Line] = []  # in display order
        self._by_seq: dict[int, Line] = {}
        self._by_msg_id: dict[str, Line] = {}  # our own lines, by the id the client gave them
        self._early: dict[str, p.Ack | p.Error] = {}  # outcomes that beat the msg_id binding

    # -- reading -------------------------------------------------------------

    @property
    def lines(self) -> list[Line]:
        return list(self._lines)

    def texts(self) -> list[tuple[str, str]]:
        """(who, text) in display order: handy for tests."""
        return [(ln.who, ln.text) for ln in self._lines]

    # -- our own messages ----------------------------------------------------

    def add_own(self, text: str) -> Line:
        """A line the customer just typed: pending until its ack."""
        line = Line(next(self._keys), "me", text, ts=self._now())
        self._place(line)
        return line

    def bind(self, key: int, msg_id: str) -> Update:
        """The client queued line `key` as `msg_id`; apply an ack that came first."""
        line = next((ln for ln in reversed(self._lines) if ln.key == key), None)
        if line is None:
            return Update()
        line.msg_id = msg_id
        self._by_msg_id[msg_id] = line
        early = self._early.pop(msg_id, None)
        if isinstance(early, p.Ack):
            return self._confirm(line, early.seq, self._now())
        if isinstance(early, p.Error):
            return self._refused(line, early)
        return Update()

    # -- frames --------------------------------------------------------------

    def apply(self, frame: object) -> Update:
        handler = getattr(self, f"_on_{type(frame).__name__.lower()}", None)
        return handler(frame) if handler is not None else Update()

    def _on_welcome(self, f: p.Welcome) -> Update:
        up = Update(status=True)
        if self.conv and f.conv != self.conv:
            # The old token was unknown and the client started afresh.
            up.merge(self._drop_stored())
            up.notice = "new_chat_started"
            self.rated = self.rating_asked = False
        self.conv = f.conv
        self._set_state(f.state)
        return up

    def _on_msg(self, f: p.Msg) -> Update:
        if f.kind == "note" or f.seq in self._by_seq:
            return Update()  # staff-only, or a replay of a line we hold
        if f.sender == "customer":
            own = self._by_msg_id.get(f.msg_id) if f.msg_id else None
            if own is not None and own.seq is None:  # stored before the link dropped
                return self._confirm(own, f.seq, f.ts)
            line = Line(next(self._keys), "me", f.text, ts=f.ts, seq=f.seq, msg_id=f.msg_id)
        elif f.sender == "bot" or f.kind == "bot":
            line = Line(next(self._keys), "bot", f.text, ts=f.ts, seq=f.seq)
        elif f.sender in ("agent", "supervisor"):
            line = Line(next(self._keys), "agent", f.text, name=f.sender_name, ts=f.ts, seq=f.seq)
        else:
            line = Line(next(self._keys), "system", f.text, ts=f.ts, seq=f.seq)
        self._by_seq[f.seq] = line
        self._place(line)
        up = Update(lines=[line])
        if line.who == "agent" and self.typing_name:
            self.typing_name = ""  # the reply is here: the mark has done its job
            up.status = True
        return up

    def _on_ack(self, f: p.Ack) -> Update:
        line = self._by_msg_id.get(f.msg_id)
        if line is None:
            self._early[f.msg_id] = f
            return Update()
        return self._confirm(line, f.seq, self._now())

    def _on_convstate(self, f: p.ConvState) -> Update:
        self._set_state(f.state)
        if f.state == "assigned":
            self.agent_name = f.agent_name or self.agent_name
        return Update(status=True)

    def _on_queuestatus(self, f: p.QueueStatus) -> Update:
        self.queue_position, self.queue_eta = f.position, f.eta_s
        return Update(status=True)

    def _on_typingevent(self, f: p.TypingEvent) -> Update:
        if f.who != "agent":
            return Update()
        self.typing_name = (f.name or self.agent_name or "…") if f.on else ""
        self.typing_at = self._now()
        return Update(status=True)

    def _on_ratingrequest(self, f: p.RatingRequest) -> Update:
        if self.rated:
            return Update()
        self.rating_asked = True
        return Update(rating=True, status=True)

    def _on_resync(self, f: p.Resync) -> Update:
        return self._drop_stored()

    def _on_ok(self, f: p.Ok) -> Update:
        if f.ref == "rate":
            self.rated = True
            return Update(status=True, notice="rate_thanks")
        return Update()

    def _on_error(self, f: p.Error) -> Update:
        if f.code == "already_rated":
            self.rated = True
            return Update(status=True)
        line = self._by_msg_id.get(f.ref) if f.ref else None
        if line is not None:
            return self._refused(line, f)
        if f.ref and f.ref not in ("hello", "typing", "request_human", "end", "rate"):
            self._early[f.ref] = f  # may be about a line not bound yet
        return Update(error=f)

    # -- helpers -------------------------------------------------------------

    def expire_typing(self, older_than: float) -> bool:
        """Clear a typing mark nobody refreshed (the agent's link may be gone)."""
        if self.typing_name and self._now() - self.typing_at >= older_than:
            self.typing_name = ""
            return True
        return False

    def _set_state(self, state: str) -> None:
        self.state = state
        if state != "queued":
            self.queue_position = self.queue_eta = None
        if state != "assigned":
            self.agent_name = ""
            self.typing_name = ""

    def _confirm(self, line: Line, seq: int, ts: float) -> Update:
        if line.seq is not None:
            return Update()  # a duplicate ack
        held = self._by_seq.get(seq)
        if held is not None and held is not line:  # the same message reached us twice
            self._unplace(line)
            return Update(removed=[line])
        self._unplace(line)
        line.seq, line.ts, line.failed = seq, ts, ""
        self._by_seq[seq] = line
        self._place(line)
        return Update(lines=[line])

    def _refused(self, line: Line, f: p.Error) -> Update:
        if f.code not in FINAL_SEND_ERRORS or line.seq is not None:
            return Update(error=f)  # transient: the client sends it again by itself
        line.failed = f.code
        return Update(lines=[line])

    def _drop_stored(self) -> Update:
        """Forget every stored line (resync or a new chat); keep our unacked ones."""
        kept = [ln for ln in self._lines if ln.seq is None]
        self._lines = kept
        self._by_seq.clear()
        self._by_msg_id = {k: ln for k, ln in self._by_msg_id.items() if ln.seq is None}
        return Update(reset=True, lines=list(kept))

    def _place(self, line: Line) -> None:
        if not self._lines or self._lines[-1].order < line.order:
            self._lines.append(line)  # the usual case: the newest line
        else:
            at = bisect.bisect_right(self._lines, line.order, key=lambda ln: ln.order)
            self._lines.insert(at, line)

    def _unplace(self, line: Line) -> None:
        self._lines.remove(line)


class TypingThrottle:
    """Decides when to send our own typing on/off: on changes, at most one
    frame per `interval`, and a fresh `on` every `refresh` seconds of typing
    (so an agent desk that expires stale marks keeps showing it)."""

    def __init__(self, interval: float = 2.0, refresh: float = 6.0) -> None:
        self.interval = interval
        self.refresh = refresh
        self.sent = False  # what the agent was last told
        self.last = -math.inf

    def update(self, want: bool, now: float) -> tuple[bool | None, float | None]:
        """Returns (state to send now or None, seconds until asking again or None)."""
        due = want != self.sent or (want and now - self.last >= self.refresh)
        if not due:
            return None, None
        wait = self.last + self.interval - now
        if wait > 0:
            return None, wait
        self.sent, self.last = want, now
        return want, None

    def reset(self) -> None:
        self.sent = False


def format_eta(eta_s: int | None, minutes: str, under: str) -> str | None:
    """A rough wait for people: "under a minute" or whole minutes, rounded up."""
    if eta_s is None:
        return None
    if eta_s < 60:
        return under
    return minutes.format(n=math.ceil(eta_s / 60))
