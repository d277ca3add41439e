"""What the supervisor monitor knows, without any widgets: the board (agents,
queues, today's figures, alerts) kept up to date from ``board`` frames, and
the figures formatted for display.

``BoardModel.apply`` takes a full board or a delta and says what changed, so
the UI touches only those rows: with 2,000 agents a delta of ten rows costs
ten rows. Waits keep growing between pushes (the hub pushes only what
changed), so each wait is turned into a local "since" and aged by the
monitor's own clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import msgspec

from server import protocol as p

SLOT_COUNT = 5  # the hub never gives an agent more than five chats
# Seconds a customer has waited for an answer -> warmth level 0..3
# (green 0-30 s, yellow 30-60, orange 60-120, red beyond).
WAIT_LIMITS = (30.0, 60.0, 120.0)
ALERT_KINDS = ("raised_hand", "unanswered", "queue_wait", "failed_login_burst", "failed_login")
MAX_ALERTS = 500


def wait_level(seconds: float) -> int:
    return sum(1 for limit in WAIT_LIMITS if seconds >= limit)


@dataclass
class AgentState:
    row: p.AgentRow
    # conv -> local time its customer's oldest unanswered line was sent (0-wait chats absent)
    since: dict[str, float] = field(default_factory=dict)
    # conv -> its customer's name (a row names a chat once; kept while the chat stays)
    names: dict[str, str] = field(default_factory=dict)

    def waits(self, now: float) -> dict[str, float]:
        """Each chat's current wait in seconds (0: nothing unanswered)."""
        return {conv: (max(0.0, now - self.since[conv]) if conv in self.since else 0.0)
                for conv in self.row.chats}  # fmt: skip

    def worst_wait(self, now: float) -> float:
        return max((now - t for t in self.since.values()), default=0.0)

    @property
    def free(self) -> int:
        return max(0, self.row.max_chats - self.row.load)

    @property
    def takes_chats(self) -> bool:
        r = self.row
        return r.status == "online" and r.connected and r.load < r.max_chats


@dataclass
class QueueState:
    row: p.QueueRow
    received: float

    def longest(self, now: float) -> float:
        """The longest wait, aged since the push (0 when nobody waits)."""
        if not self.row.waiting:
            return 0.0
        return self.row.longest_wait_s + max(0.0, now - self.received)


PRIORITY_RANK = {"urgent": 0, "priority": 1, "normal": 2}


@dataclass
class Waiting:
    """A chat waiting for a person in ``group``, as the last board listed it."""

    group: str
    chat: p.WaitingChat
    received: float  # local time of the board that listed it

    @property
    def conv(self) -> str:
        return self.chat.conv

    def wait(self, now: float) -> float:
        """Seconds since the customer asked for a person, aged since the push."""
        return self.chat.wait_s + max(0.0, now - self.received)


@dataclass
class BoardChange:
    """What one ``board`` frame changed (ids of rows to redraw)."""

    full: bool = False
    agents: list[str] = field(default_factory=list)  # changed or added, in board order
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    queues: list[str] = field(default_factory=list)
    totals: bool = False
    alerts: list[p.AlertRow] = field(default_factory=list)  # new ones, oldest first


def _alert_key(a: p.AlertRow) -> tuple[str, str, str, float]:
    return (a.kind, a.who, a.conv, round(a.at, 3))


class BoardModel:
    def __init__(self) -> None:
        self.agents: dict[str, AgentState] = {}
        self.queues: dict[str, QueueState] = {}
        self.totals: dict[str, float] = {}
        self.alerts: deque[p.AlertRow] = deque(maxlen=MAX_ALERTS)  # newest first
        self._alert_keys: set[tuple[str, str, str, float]] = set()
        self.conv_agent: dict[str, str] = {}  # conv -> agent holding it
        self.boards = 0

    # -- applying frames --------------------------------------------------------

    def apply(self, frame: p.Board, now: float) -> BoardChange:
        self.boards += 1
        change = BoardChange(full=frame.full)
        if frame.full:
            seen = {r.id for r in frame.agents}
            change.removed = [a for a in self.agents if a not in seen]
            gone_groups = [g for g in self.queues if g not in {q.group for q in frame.queues}]
            for g in gone_groups:
                del self.queues[g]
        else:
            change.removed = [a for a in frame.removed if a in self.agents]
        for agent_id in change.removed:
            self._drop_agent(agent_id)
        for row in frame.agents:
            old = self.agents.get(row.id)
            if old is None:
                change.added.append(row.id)
            elif old.row == row and frame.full:
                continue  # a resent full board: nothing to redraw for this row
            self._put_agent(row, now)
            change.agents.append(row.id)
        for q in frame.queues:
            self.queues[q.group] = QueueState(q, now)
            change.queues.append(q.group)
        if frame.totals or frame.full:
            change.totals = frame.totals != self.totals
            self.totals = dict(frame.totals)
        for alert in frame.alerts:
            key = _alert_key(alert)
            if key in self._alert_keys:
                continue
            self._alert_keys.add(key)
            if len(self.alerts) == self.alerts.maxlen:
                self._alert_keys.discard(_alert_key(self.alerts[-1]))
            self.alerts.appendleft(alert)
            change.alerts.append(alert)
        # A board may resend old alerts out of order: keep the list newest first.
        if change.alerts and len(change.alerts) > 1:
            ordered = sorted(self.alerts, key=lambda a: a.at, reverse=True)
            self.alerts.clear()
            self.alerts.extend(ordered)
        return change

    def _put_agent(self, row: p.AgentRow, now: float) -> None:
        old = self.agents.get(row.id)
        sent = row.customers if not isinstance(row.customers, msgspec.UnsetType) else {}
        # A chat this row does not name keeps the name it had here, or on the
        # row it came from (asked before that row lets go of it).
        names = {conv: sent.get(conv) or (old.names.get(conv, "") if old is not None else "")
                 or self.customer_name(conv) for conv in row.chats}  # fmt: skip
        if old is not None:
            for conv in old.row.chats:
                if self.conv_agent.get(conv) == row.id:
                    del self.conv_agent[conv]
        since: dict[str, float] = {}
        for conv, secs in row.chats.items():
            self.conv_agent[conv] = row.id
            if secs > 0:
                # Keep the older "since" when the hub's figure agrees (within a
                # second) so a redraw does not make a wait jump back and forth.
                prev = old.since.get(conv) if old is not None else None
                fresh = now - secs
                since[conv] = prev if prev is not None and abs(prev - fresh) < 1.0 else fresh
        self.agents[row.id] = AgentState(row, since, {c: n for c, n in names.items() if n})

    def _drop_agent(self, agent_id: str) -> None:
        state = self.agents.pop(agent_id, None)
        if state is not None:
            for conv in state.row.chats:
                if self.conv_agent.get(conv) == agent_id:
                    del self.conv_agent[conv]

    # -- questions the UI asks --------------------------------------------------

    def customer_name(self, conv: str) -> str:
        """The name of ``conv``'s customer as the board gave it ('' if it never did)."""
        holder = self.agents.get(self.conv_agent.get(conv, ""))
        if holder is not None and conv in holder.names:
            return holder.names[conv]
        for st in self.queues.values():
            for chat in st.row.chats:
                if chat.conv == conv:
                    return chat.customer
        return next((a.customer for a in self.alerts if a.conv == conv and a.customer), "")

    def waiting_agents(self) -> list[str]:
        """Agents with at least one customer waiting for an answer (their
        slots warm up every second)."""
        return [a for a, st in self.agents.items() if st.since]

    def waiting_chats(self, group: str | None = None) -> list[Waiting]:
        """The chats waiting for a person: one queue's in the order it will
        serve them, or (no group) every queue's, most urgent then longest
        waiting first. A board lists the first few of each queue only."""
        out = [Waiting(g, chat, st.received) for g, st in self.queues.items()
               if group is None or g == group for chat in st.row.chats]  # fmt: skip
        if group is None:
            # longest waiting first: wait_s - received orders them whatever the time now
            out.sort(key=lambda w: (PRIORITY_RANK.get(w.chat.priority, 3), w.received - w.chat.wait_s, w.conv))
        return out

    def unlisted(self, group: str | None = None) -> int:
        """How many waiting chats the board counted but did not list."""
        return sum(max(0, st.row.waiting - len(st.row.chats)) for g, st in self.queues.items()
                   if group is None or g == group)  # fmt: skip

    def reassign_targets(self, conv: str) -> list[AgentState]:
        """Agents who can take one more chat now, emptiest first (not the holder)."""
        holder = self.conv_agent.get(conv)
        out = [st for a, st in self.agents.items() if a != holder and st.takes_chats]
        return sorted(out, key=lambda st: (st.row.load - st.row.max_chats, st.row.load, st.row.id))

    def total(self, key: str) -> float | None:
        value = self.totals.get(key)
        return None if value is None else float(value)

    def queue_series(self, group: str | None) -> tuple[list[int], list[int]]:
        """(lengths, arrivals) per minute over the last 30 minutes; all groups
        added together when ``group`` is None."""
        states = [self.queues[group]] if group in self.queues else list(self.queues.values())
        lengths = _add([list(st.row.lengths) for st in states])
        arrivals = _add([list(st.row.arrivals) for st in states])
        return lengths, arrivals


def _add(series: list[list[int]]) -> list[int]:
    width = max((len(s) for s in series), default=0)
    out = [0] * width
    for s in series:
        pad = width - len(s)  # oldest first: align the newest minutes
        for i, v in enumerate(s):
            out[pad + i] += v
    return out


# -- formatting (plain strings; widgets add the colours) ---------------------------


def short_conv(conv: str) -> str:
    """A chat id shortened to its last four characters (random ones: the
    leading ones are a timestamp that chats opened together share)."""
    return "…" + conv[-4:] if len(conv) > 6 else conv


def chat_labels(convs: Iterable[str], name_of: Callable[[str], str]) -> dict[str, str]:
    """What to call each chat: its customer's name, with the short chat id
    only where two chats have the same name (the full id if there is no name)."""
    convs = list(dict.fromkeys(convs))
    names = {conv: name_of(conv) for conv in convs}
    seen: dict[str, int] = {}
    for name in names.values():
        seen[name] = seen.get(name, 0) + 1
    return {conv: (conv if not name else f"{name} {short_conv(conv)}" if seen[name] > 1 else name)
            for conv, name in names.items()}  # fmt: skip


def slot_cells(row: p.AgentRow, waits: dict[str, float]) -> list[tuple[str, int | None]]:
    """Five boxes: (glyph, warmth level) per slot. ▣ a chat (warmest first),
    ▢ a free slot up to max chats, · a slot beyond max."""
    chats = sorted(waits.values(), reverse=True)
    cells: list[tuple[str, int | None]] = [("▣", wait_level(w)) for w in chats[:SLOT_COUNT]]
    while len(cells) < SLOT_COUNT:
        cells.append(("▢", None) if len(cells) < row.max_chats else ("·", None))
    return cells


def duration(seconds: float | None) -> str:
    """45s, 3m05s, 59m, 2h05m; '—' for unknown."""
    if seconds is None:
        return "—"
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 3600:
        return f"{s // 60}m"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def percent(value: float | None) -> str:
    """A rate as a percentage. The hub sends fractions (0.93); a value above
    1 is taken as already in percent."""
    if value is None:
        return "—"
    pct = value * 100 if value <= 1.0 else value
    return f"{pct:.0f}%" if pct >= 10 or pct == 0 else f"{pct:.1f}%"


def count(value: float | None) -> str:
    return "—" if value is None else f"{int(value)}"


def since_login(logged_in_at: float, now: float) -> str:
    return "—" if not logged_in_at else duration(now - logged_in_at)
