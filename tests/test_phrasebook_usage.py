"""Usage statistics: counts, decayed scores, persistence."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from phrasebook import UsageRecord, UsageStats

DAY = 86400.0
T0 = 1736125200.0


def test_counts_per_phrase_and_per_agent():
    """Counts are kept per (agent, phrase) and summed for the team."""
    u = UsageStats()
    u.record("a1", "p1", T0)
    u.record("a1", "p1", T0 + 1)
    u.record("a2", "p1", T0 + 2)
    u.record("a2", "p2", T0 + 3)
    assert u.count("p1", "a1") == 2
    assert u.count("p1") == 3
    assert u.agent_counts("a2") == {"p1": 1, "p2": 1}
    assert u.phrase_counts() == {"p1": 3, "p2": 1}
    assert u.agents() == ["a1", "a2"]


def test_score_halves_every_half_life():
    """A use is worth 1 now, 0.5 one half-life later."""
    u = UsageStats(half_life_days=14)
    u.record("a1", "p", T0)
    assert u.score("a1", "p", T0) == pytest.approx(1.0)
    assert u.score("a1", "p", T0 + 14 * DAY) == pytest.approx(0.5)
    assert u.score("a1", "missing", T0) == 0.0


def test_recent_habit_beats_old_habit():
    """Ten uses two months ago weigh less than three uses this week."""
    u = UsageStats(half_life_days=14)
    for i in range(10):
        u.record("a1", "old", T0 - 60 * DAY + i)
    for i in range(3):
        u.record("a1", "new", T0 - 2 * DAY + i)
    assert [pid for pid, _ in u.top("a1", T0)] == ["new", "old"]


@given(st.lists(st.floats(min_value=0, max_value=90 * DAY), min_size=1, max_size=20))
def test_out_of_order_records_give_the_same_score(offsets):
    """Replaying uses in any order yields the same decayed score."""
    a, b = UsageStats(), UsageStats()
    for off in offsets:
        a.record("x", "p", T0 + off)
    for off in sorted(offsets, reverse=True):
        b.record("x", "p", T0 + off)
    now = T0 + 100 * DAY
    expected = sum(math.exp(-math.log(2) / (14 * DAY) * (now - (T0 + off))) for off in offsets)
    assert a.score("x", "p", now) == pytest.approx(expected, rel=1e-9)
    assert b.score("x", "p", now) == pytest.approx(expected, rel=1e-9)


def test_round_trip_through_records_and_json():
    """The hub can persist and restore statistics exactly."""
    u = UsageStats(half_life_days=7)
    u.record("a1", "p1", T0)
    u.record("a1", "p1", T0 + 10)
    u.record("a2", "p2", T0 + 20)
    records = u.to_records()
    assert all(isinstance(r, UsageRecord) for r in records)
    again = UsageStats.from_records(records, half_life_days=7)
    assert again.to_records() == records
    restored = UsageStats.from_json(u.to_json())
    assert restored.half_life_days == 7
    assert restored.to_records() == records
    assert restored.score("a1", "p1", T0 + DAY) == pytest.approx(u.score("a1", "p1", T0 + DAY))


def test_forget_phrase_and_revision():
    """Deleting a phrase drops its statistics; revisions move on every change."""
    u = UsageStats()
    r0 = u.revision("a1")
    u.record("a1", "p1", T0)
    assert u.revision("a1") > r0
    u.forget_phrase("p1")
    assert u.count("p1") == 0
    with pytest.raises(ValueError):
        u.record("", "p1", T0)
