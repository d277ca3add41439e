"""Who used which phrase, how often and how lately.

Ranking uses an exponentially decayed count per (agent, phrase): each use adds
1 and the total halves every `half_life_days`. Yesterday's favourite outranks
a phrase used a lot last quarter, and a new habit takes over within days.

The decayed count is stored as (value, as_of): value is exact at time as_of
and is decayed on read, so recording is O(1) and nothing ticks in the
background. The hub persists `to_records()` / `to_json()` and restores with
`from_records()` / `from_json()`.
"""

from __future__ import annotations

import math
from collections import defaultdict

import msgspec

DEFAULT_HALF_LIFE_DAYS = 14.0


class UsageRecord(msgspec.Struct, frozen=True):
    """One (agent, phrase) row, shaped for a database table or JSON."""

    agent: str
    phrase_id: str
    count: int
    score: float  # decayed count as of `score_at`
    score_at: float
    last_used: float


class _Cell:
    __slots__ = ("count", "last_used", "score", "score_at")

    def __init__(self) -> None:
        self.count = 0
        self.score = 0.0
        self.score_at = 0.0
        self.last_used = 0.0


class UsageStats:
    """Usage counts for any number of agents (the hub keeps one for the centre)."""

    def __init__(self, half_life_days: float = DEFAULT_HALF_LIFE_DAYS) -> None:
        if not half_life_days > 0:
            raise ValueError("half_life_days must be positive")
        self.half_life_days = half_life_days
        self._rate = math.log(2) / (half_life_days * 86400.0)
        self._cells: dict[str, dict[str, _Cell]] = defaultdict(dict)
        # Bumped on every change for one agent; the search index caches the
        # agent's scores and re-reads them only when this moves.
        self._revision: dict[str, int] = defaultdict(int)

    # -- recording -----------------------------------------------------------

    def record(self, agent: str, phrase_id: str, at: float) -> None:
        """Count one use of `phrase_id` by `agent` at unix time `at`.

        Out-of-order times (a hub replaying a backlog) are handled exactly: an
        old use adds its already-decayed weight.
        """
        if not agent or not phrase_id:
            raise ValueError("agent and phrase_id are required")
        cell = self._cells[agent].get(phrase_id)
        if cell is None:
            cell = self._cells[agent][phrase_id] = _Cell()
        cell.count += 1
        if cell.count == 1:
            cell.score, cell.score_at = 1.0, at
        elif at >= cell.score_at:
            cell.score = cell.score * math.exp(-self._rate * (at - cell.score_at)) + 1.0
            cell.score_at = at
        else:
            cell.score += math.exp(-self._rate * (cell.score_at - at))
        cell.last_used = max(cell.last_used, at)
        self._revision[agent] += 1

    def forget_phrase(self, phrase_id: str) -> None:
        """Drop every agent's statistics for a deleted phrase."""
        for agent, cells in self._cells.items():
            if cells.pop(phrase_id, None) is not None:
                self._revision[agent] += 1

    # -- reading -------------------------------------------------------------

    def revision(self, agent: str) -> int:
        """Changes so far for `agent` (cache key for derived rankings)."""
        return self._revision.get(agent, 0)

    def count(self, phrase_id: str, agent: str | None = None) -> int:
        """Uses of a phrase by one agent, or by everyone when agent is None."""
        if agent is not None:
            cell = self._cells.get(agent, {}).get(phrase_id)
            return cell.count if cell else 0
        return sum(c[phrase_id].count for c in self._cells.values() if phrase_id in c)

    def agent_counts(self, agent: str) -> dict[str, int]:
        """phrase id -> uses, for one agent."""
        return {pid: c.count for pid, c in self._cells.get(agent, {}).items()}

    def phrase_counts(self) -> dict[str, int]:
        """phrase id -> uses by all agents (what the team actually uses)."""
        totals: dict[str, int] = defaultdict(int)
        for cells in self._cells.values():
            for pid, c in cells.items():
                totals[pid] += c.count
        return dict(totals)

    def record_of(self, agent: str, phrase_id: str) -> UsageRecord | None:
        """The stored row for one (agent, phrase), e.g. to persist after `record`."""
        c = self._cells.get(agent, {}).get(phrase_id)
        if c is None:
            return None
        return UsageRecord(agent, phrase_id, c.count, c.score, c.score_at, c.last_used)

    def agents(self) -> list[str]:
        return sorted(a for a, cells in self._cells.items() if cells)

    def score(self, agent: str, phrase_id: str, now: float) -> float:
        """Decayed use count at `now` (1.0 = used once, just now)."""
        cell = self._cells.get(agent, {}).get(phrase_id)
        if cell is None:
            return 0.0
        return self._decay(cell, now)

    def scores(self, agent: str, now: float) -> dict[str, float]:
        """phrase id -> decayed score for every phrase `agent` has used."""
        return {pid: self._decay(c, now) for pid, c in self._cells.get(agent, {}).items()}

    def top(self, agent: str, now: float, n: int = 20) -> list[tuple[str, float]]:
        """The agent's `n` favourites by decayed score, best first."""
        ranked = sorted(self.scores(agent, now).items(), key=lambda kv: (-kv[1], kv[0]))
        return ranked[:n]

    def _decay(self, cell: _Cell, now: float) -> float:
        if now <= cell.score_at:
            return cell.score
        return cell.score * math.exp(-self._rate * (now - cell.score_at))

    # -- persistence ---------------------------------------------------------

    def to_records(self) -> list[UsageRecord]:
        """Every (agent, phrase) row, sorted, for the hub to store."""
        return [
            UsageRecord(agent, pid, c.count, c.score, c.score_at, c.last_used)
            for agent in sorted(self._cells)
            for pid, c in sorted(self._cells[agent].items())
        ]

    @classmethod
    def from_records(
        cls, records: list[UsageRecord], half_life_days: float = DEFAULT_HALF_LIFE_DAYS
    ) -> UsageStats:
        stats = cls(half_life_days)
        for r in records:
            cell = _Cell()
            cell.count, cell.score, cell.score_at, cell.last_used = (
                r.count,
                r.score,
                r.score_at,
                r.last_used,
            )
            stats._cells[r.agent][r.phrase_id] = cell
            stats._revision[r.agent] += 1
        return stats

    def to_json(self) -> bytes:
        """`{"half_life_days": ..., "records": [...]}` as UTF-8 JSON."""
        return msgspec.json.encode(
            {"half_life_days": self.half_life_days, "records": self.to_records()}
        )

    @classmethod
    def from_json(cls, data: bytes | str) -> UsageStats:
        doc = msgspec.json.decode(data, type=_UsageDoc)
        return cls.from_records(doc.records, doc.half_life_days)


class _UsageDoc(msgspec.Struct):
    records: list[UsageRecord]
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS
