"""Today's figures, kept incrementally for the supervisors' board.

Definitions (the weekly report in report.py computes the same from the
database, and at start-up the hub loads today's figures that way):

- started: chats begun today; asked: of those, chats that asked for a person;
  answered: chats a person took (answer rate = answered / asked);
- abandoned: chats closed because the customer left the queue;
- first response: seconds from assignment to the agent's first reply;
- handle time: seconds from assignment to close;
- FCR proxy: closed by an agent without any transfer, out of those closed by an agent;
- bot containment: chats closed today that never asked for a person and were
  not abandoned, out of chats started today;
- satisfaction: ratings given today (very satisfied / satisfied / dissatisfied).
Per agent, a chat counts for the last agent who held it.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

MINUTES = 30  # sparkline length


def local_day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(ts))


def day_start(ts: float) -> float:
    t = time.localtime(ts)
    return time.mktime((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0, 0, 0, -1))


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))], 1)


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


@dataclass
class AgentDay:
    handled: int = 0
    first_response: list[float] = field(default_factory=list)
    handle: list[float] = field(default_factory=list)
    ratings: Counter[str] = field(default_factory=Counter)

    def fields(self) -> dict[str, Any]:
        rated = sum(self.ratings.values())
        good = self.ratings["very_satisfied"] + self.ratings["satisfied"]
        return {
            "handled": self.handled,
            "first_response_p50_s": median(self.first_response),
            "handle_p50_s": median(self.handle),
            "satisfaction": round(good / rated, 3) if rated else None,
            "rated": rated,
        }


class DayStats:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.day = local_day(clock())
        self._reset()

    def _reset(self) -> None:
        self.started = self.asked = self.answered = self.abandoned = 0
        self.closed_with_agent = self.fcr = self.bot_contained = 0
        self.ratings: Counter[str] = Counter()
        self.first_response: list[float] = []
        self.handle: list[float] = []
        self.agents: dict[str, AgentDay] = {}
        self.group_abandoned: Counter[str] = Counter()
        # group -> deque of [minute, arrivals, max queue length]
        self.minutes: dict[str, deque[list[int]]] = {}

    def roll(self) -> None:
        """A new day starts the figures afresh (sparklines keep their window)."""
        day = local_day(self.clock())
        if day != self.day:
            minutes = self.minutes
            self.day = day
            self._reset()
            self.minutes = minutes

    def agent(self, agent_id: str) -> AgentDay:
        return self.agents.setdefault(agent_id, AgentDay())

    # -- events ----------------------------------------------------------------------

    def chat_started(self) -> None:
        self.roll()
        self.started += 1

    def asked_for_person(self) -> None:
        self.roll()
        self.asked += 1

    def first_assignment(self) -> None:
        self.roll()
        self.answered += 1

    def responded(self, agent: str, seconds: float) -> None:
        self.roll()
        self.first_response.append(seconds)
        self.agent(agent).first_response.append(seconds)

    def closed(self, *, reason: str, last_agent: str, asked: bool, handle_s: float | None,
               closed_by_agent: bool, transfers: int) -> None:  # fmt: skip
        self.roll()
        if reason == "abandoned":
            self.abandoned += 1
        elif not asked:
            self.bot_contained += 1
        if last_agent and handle_s is not None:
            self.handle.append(handle_s)
            day = self.agent(last_agent)
            day.handled += 1
            day.handle.append(handle_s)
            if closed_by_agent:
                self.closed_with_agent += 1
                if transfers == 0:
                    self.fcr += 1

    def abandoned_in(self, group: str) -> None:
        self.group_abandoned[group] += 1

    def rated(self, last_agent: str, score: str) -> None:
        self.roll()
        self.ratings[score] += 1
        if last_agent:
            self.agent(last_agent).ratings[score] += 1

    # -- sparklines -------------------------------------------------------------------

    def _bucket(self, group: str) -> list[int]:
        minute = int(self.clock() // 60)
        q = self.minutes.setdefault(group, deque(maxlen=MINUTES))
        if not q or q[-1][0] != minute:
            q.append([minute, 0, q[-1][2] if q else 0])
        return q[-1]

    def arrival(self, group: str, length: int) -> None:
        b = self._bucket(group)
        b[1] += 1
        b[2] = max(b[2], length)

    def queue_length(self, group: str, length: int) -> None:
        b = self._bucket(group)
        b[2] = max(b[2], length)

    def sparks(self, group: str, length_now: int) -> tuple[list[int], list[int]]:
        """Arrivals and queue length per minute for the last 30 minutes."""
        now_minute = int(self.clock() // 60)
        by_minute = {m: (a, n) for m, a, n in self.minutes.get(group, ())}
        arrivals, lengths, last = [], [], 0
        for m in range(now_minute - MINUTES + 1, now_minute + 1):
            a, n = by_minute.get(m, (0, last))
            arrivals.append(a)
            lengths.append(n)
            last = n if m in by_minute else last
        lengths[-1] = max(lengths[-1], length_now)
        return arrivals, lengths

    # -- the board ----------------------------------------------------------------------

    def totals(self) -> dict[str, float]:
        rated = sum(self.ratings.values())
        out: dict[str, float | None] = {
            "asked": self.asked,
            "answered": self.answered,
            "answer_rate": round(self.answered / self.asked, 3) if self.asked else None,
            "abandoned": self.abandoned,
            "abandon_rate": round(self.abandoned / self.asked, 3) if self.asked else None,
            "frt_p50_s": pct(self.first_response, 0.5),
            "frt_p90_s": pct(self.first_response, 0.9),
            "handle_p50_s": pct(self.handle, 0.5),
            "fcr_rate": round(self.fcr / self.closed_with_agent, 3) if self.closed_with_agent else None,
            "sat_very_satisfied": self.ratings["very_satisfied"],
            "sat_satisfied": self.ratings["satisfied"],
            "sat_dissatisfied": self.ratings["dissatisfied"],
            "rated": rated,
            "bot_contained": self.bot_contained,
            "bot_containment": round(self.bot_contained / self.started, 3) if self.started else None,
            "started_today": self.started,
        }
        return {k: float(v) for k, v in out.items() if v is not None}

    # -- start-up -----------------------------------------------------------------------

    def load(self, rows: Iterable[dict[str, Any]]) -> None:
        """Today's figures from the database rows of today's conversations."""
        self._reset()
        since = day_start(self.clock())
        for r in rows:
            if r["created_at"] >= since:
                self.started += 1
                if r["asked_at"]:
                    self.asked += 1
                if r["assigned_at"]:
                    self.answered += 1
            if r["first_response_at"] and r["first_response_at"] >= since and r["assigned_at"]:
                secs = r["first_response_at"] - r["assigned_at"]
                self.first_response.append(secs)
                if r["last_agent"]:
                    self.agent(r["last_agent"]).first_response.append(secs)
            if r["state"] == "closed" and r["closed_at"] and r["closed_at"] >= since:
                handle = r["closed_at"] - r["assigned_at"] if r["assigned_at"] else None
                self.closed(reason=r["close_reason"], last_agent=r["last_agent"], asked=bool(r["asked_at"]),
                            handle_s=handle, closed_by_agent=r["closed_by"] == r["last_agent"] and bool(r["last_agent"]),
                            transfers=r["transfers"])  # fmt: skip
                if r["close_reason"] == "abandoned":
                    self.abandoned_in(r["grp"])
            if r["rating"] and (r["rated_at"] or 0) >= since:
                self.rated(r["last_agent"], r["rating"])
