"""The run's summary: every chat accounted for, as a table and as JSON."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .customer import ChatRecord
from .scenarios import SCORES

OUTCOMES = ("bot", "person", "abandoned", "open")
# How a chat reads in progress lines and the table: open ones by the state
# the customer last saw, finished ones by outcome.
OPEN_LABELS = {
    "new": "connecting",
    "bot": "with the bot",
    "queued": "queued",
    "assigned": "with an agent",
}
DONE_LABELS = {
    "failed": "failed",
    "bot": "bot-contained",
    "person": "served",
    "abandoned": "abandoned",
}


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None without data."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil without floats drifting
    return ordered[min(len(ordered), int(rank)) - 1]


def _spread(values: Sequence[float], *qs: int) -> dict[str, float | int | None]:
    out: dict[str, float | int | None] = {f"p{q}": percentile(values, q) for q in qs}
    out["n"] = len(values)
    return out


@dataclass
class Summary:
    """What the simulated customers saw. ``started`` always equals
    ``bot_contained + answered_by_person + abandoned + still_open``."""

    url: str = ""
    pattern: str = "steady"
    seed: int = 0
    speed: float = 1.0
    load: bool = False
    elapsed_s: float = 0.0
    arrivals: int = 0  # customers launched
    failed: int = 0  # never got a chat (hub unreachable, no welcome)
    started: int = 0
    bot_contained: int = 0  # closed without a person, never asked for one
    answered_by_person: int = 0  # an agent took it, and it has closed
    abandoned: int = 0  # left the queue (or was closed there) before any agent came
    still_open: int = 0  # not closed when the run stopped
    open_by_state: dict[str, int] = field(default_factory=dict)
    handed_off: int = 0  # went to the queue at all
    asked_for_person: int = 0
    handed_off_unasked: int = 0  # the bot (urgent, upset, misses) or a bot-less hub queued it
    closed_by_reason: dict[str, int] = field(default_factory=dict)
    rating_requests: int = 0
    ratings: dict[str, int] = field(default_factory=dict)
    messages_sent: int = 0
    messages_acked: int = 0
    messages_received: dict[str, int] = field(default_factory=dict)
    typing_sent: int = 0
    ack_ms: dict[str, float | int | None] = field(default_factory=dict)
    agent_reply_s: dict[str, float | int | None] = field(default_factory=dict)
    first_response_s: dict[str, float | int | None] = field(default_factory=dict)
    queue_wait_s: dict[str, float | int | None] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    reconnects: int = 0
    by_scenario: dict[str, dict[str, int]] = field(default_factory=dict)

    @classmethod
    def from_records(cls, records: Iterable[ChatRecord], **run: Any) -> Summary:
        recs = list(records)
        s = cls(**run)
        s.arrivals = len(recs)
        outcomes = Counter(r.outcome for r in recs)
        s.failed = outcomes["failed"]
        s.started = sum(1 for r in recs if r.started)
        s.bot_contained, s.answered_by_person = outcomes["bot"], outcomes["person"]
        s.abandoned, s.still_open = outcomes["abandoned"], outcomes["open"]
        s.open_by_state = dict(Counter(r.state for r in recs if r.outcome == "open"))
        started = [r for r in recs if r.started]
        s.handed_off = sum(r.handed_off for r in started)
        s.asked_for_person = sum(r.asked_human for r in started)
        s.handed_off_unasked = sum(r.handed_off and not r.asked_human for r in started)
        s.closed_by_reason = dict(
            Counter(r.close_reason for r in started if r.closed or r.left_queue)
        )
        s.rating_requests = sum(r.rating_requested for r in started)
        rated = Counter(r.rating for r in started if r.rating)
        s.ratings = {score: rated[score] for score in SCORES}
        s.messages_sent = sum(r.sent for r in recs)
        s.messages_acked = sum(r.acked for r in recs)
        received: Counter[str] = Counter()
        for r in recs:
            received.update(r.received)
        s.messages_received = dict(received)
        s.typing_sent = sum(r.typing_sent for r in recs)
        s.ack_ms = _spread([x for r in recs for x in r.ack_ms], 50, 99)
        s.agent_reply_s = _spread([x for r in recs for x in r.reply_s], 50, 90)
        s.first_response_s = _spread([x for r in recs for x in r.first_response_s], 50, 90)
        s.queue_wait_s = _spread([x for r in recs for x in r.queue_wait_s], 50, 90)
        errors: Counter[str] = Counter()
        for r in recs:
            errors.update(r.errors)
        s.errors = dict(errors)
        s.reconnects = sum(r.reconnects for r in recs)
        for r in recs:
            row = s.by_scenario.setdefault(
                r.scenario, dict.fromkeys(("arrived", "failed", *OUTCOMES), 0)
            )
            row["arrived"] += 1
            row[r.outcome] += 1
        return s

    @property
    def accounted(self) -> bool:
        return (
            self.started
            == self.bot_contained + self.answered_by_person + self.abandoned + self.still_open
        )

    @property
    def rated(self) -> int:
        return sum(self.ratings.values())

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["rated"] = self.rated
        out["accounted"] = self.accounted
        return out

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(
            json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )

    def table(self) -> str:
        """The summary for a terminal."""
        mode = "load" if self.load else f"speed x{self.speed:g}"
        lines = [f"customer simulation: {self.pattern}, {mode}, seed {self.seed}, "
                 f"{self.elapsed_s:.1f} s against {self.url}"]  # fmt: skip
        row = lines.append
        row(
            f"  {'chats started':<28}{self.started:>6}"
            + (f"   ({self.failed} could not start)" if self.failed else "")
        )
        row(f"    {'bot-contained':<26}{self.bot_contained:>6}   ended without asking for a person")
        row(f"    {'answered by a person':<26}{self.answered_by_person:>6}")
        row(f"    {'abandoned':<26}{self.abandoned:>6}   left the queue before an agent came")
        open_detail = ", ".join(
            f"{OPEN_LABELS.get(k, k)} {v}" for k, v in sorted(self.open_by_state.items())
        )
        row(
            f"    {'still open at stop':<26}{self.still_open:>6}"
            + (f"   ({open_detail})" if open_detail else "")
        )
        row(f"  {'handed off to a person':<28}{self.handed_off:>6}   "
            f"(asked {self.asked_for_person}, without asking {self.handed_off_unasked})")  # fmt: skip
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.closed_by_reason.items())) or "-"
        row(f"  {'closed by reason':<28}{reasons}")
        ratings = ", ".join(f"{k} {v}" for k, v in self.ratings.items())
        row(f"  {'rated':<28}{self.rated:>6}   of {self.rating_requests} asked ({ratings})")
        recv = ", ".join(f"{k} {v}" for k, v in sorted(self.messages_received.items()))
        row(
            f"  {'messages sent':<28}{self.messages_sent:>6}   acked {self.messages_acked}, typing {self.typing_sent}"
        )
        row(
            f"  {'messages received':<28}{sum(self.messages_received.values()):>6}   ({recv or '-'})"
        )
        if self.elapsed_s > 0 and self.load:
            row(
                f"  {'throughput':<28}{self.messages_sent / self.elapsed_s:>6.1f}   messages/s sent"
            )
        row(
            f"  {'send -> ack':<28}{_fmt(self.ack_ms, 'p50', 'ms')}   p99 {_fmt(self.ack_ms, 'p99', 'ms')}"
        )
        row(f"  {'customer -> agent reply':<28}{_fmt(self.agent_reply_s, 'p50', 's')}   "
            f"p90 {_fmt(self.agent_reply_s, 'p90', 's')}   ({self.agent_reply_s.get('n', 0)} replies)")  # fmt: skip
        row(f"  {'agent joined -> first line':<28}{_fmt(self.first_response_s, 'p50', 's')}   "
            f"p90 {_fmt(self.first_response_s, 'p90', 's')}")  # fmt: skip
        row(f"  {'handoff -> agent joined':<28}{_fmt(self.queue_wait_s, 'p50', 's')}   "
            f"p90 {_fmt(self.queue_wait_s, 'p90', 's')}")  # fmt: skip
        errors = ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items())) or "none"
        row(
            f"  {'errors':<28}{errors}"
            + (f"   (reconnects {self.reconnects})" if self.reconnects else "")
        )
        if self.still_open and self.open_by_state.get("queued"):
            row(
                "  note: chats left open in the queue are closed by the hub as abandoned after its customer grace"
            )
        if self.by_scenario:
            row("")
            row(
                f"  {'scenario':<26}{'arrived':>8}{'bot':>6}{'person':>8}{'abandon':>9}{'open':>6}{'failed':>8}"
            )
            for name, c in sorted(self.by_scenario.items(), key=lambda kv: -kv[1]["arrived"]):
                row(f"  {name:<26}{c['arrived']:>8}{c['bot']:>6}{c['person']:>8}{c['abandoned']:>9}"
                    f"{c['open']:>6}{c['failed']:>8}")  # fmt: skip
        if not self.accounted:  # never expected: say so loudly rather than print a wrong table
            row("  WARNING: the outcomes do not add up to the chats started")
        return "\n".join(lines)


def _fmt(spread: dict[str, float | int | None], key: str, unit: str) -> str:
    value = spread.get(key)
    if value is None:
        return f"{'-':>6}"
    return f"{value:>6.1f} ms" if unit == "ms" else f"{value:>6.2f} s"
