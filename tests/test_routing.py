"""The routing core on its own: no sockets, no clock, every rule checked."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from server.routing import (
    NORMAL,
    PRIORITY,
    URGENT,
    Assigned,
    Router,
    RoutingError,
    Unassigned,
    priority_class,
)


def router_with(*agents: tuple[str, list[str], int], online: bool = True) -> Router:
    r = Router()
    for i, (agent_id, groups, cap) in enumerate(agents):
        r.upsert_agent(agent_id, groups, cap, now=float(i))
        r.connect(agent_id, 0)
        if online:
            r.set_status(agent_id, "online", 0)
    return r


def assigned(effects: list) -> list[tuple[str, str]]:
    return [(e.conv, e.agent) for e in effects if isinstance(e, Assigned)]


def test_priority_classes_put_urgent_above_elderly_above_normal() -> None:
    assert priority_class("urgent", []) == URGENT
    assert priority_class("normal", ["elderly"]) == PRIORITY
    assert priority_class("normal", ["vip"]) == PRIORITY
    assert priority_class("normal", []) == NORMAL


def test_least_loaded_agent_gets_the_chat_and_ties_go_to_the_longest_idle() -> None:
    r = router_with(("a", ["g"], 5), ("b", ["g"], 5))
    # Both empty: a was registered first (idle longer), so a gets the first chat.
    assert assigned(r.enqueue("c1", "g", NORMAL, now=10)) == [("c1", "a")]
    # b is now less loaded.
    assert assigned(r.enqueue("c2", "g", NORMAL, now=11)) == [("c2", "b")]
    # Equal load again: a's last chat is older, so a.
    assert assigned(r.enqueue("c3", "g", NORMAL, now=12)) == [("c3", "a")]


def test_max_chats_is_per_agent_and_never_above_five() -> None:
    r = router_with(("a", ["g"], 9))
    assert r.agents["a"].max_chats == 5
    for i in range(7):
        r.enqueue(f"c{i}", "g", NORMAL, now=i)
    assert len(r.agents["a"].chats) == 5
    assert r.waiting("g") == ["c5", "c6"]
    r.check_invariants()


def test_a_freed_slot_goes_at_once_to_the_oldest_highest_priority_chat() -> None:
    r = router_with(("a", ["g"], 1))
    r.enqueue("busy", "g", NORMAL, now=0)
    r.enqueue("n1", "g", NORMAL, now=1)
    r.enqueue("n2", "g", NORMAL, now=2)
    r.enqueue("old", "g", PRIORITY, now=3)
    r.enqueue("u", "g", URGENT, now=4)
    assert r.waiting("g") == ["u", "old", "n1", "n2"]
    effects = r.close("busy", now=5)
    assert any(isinstance(e, Unassigned) for e in effects)
    assert assigned(effects) == [("u", "a")]


def test_fifo_within_a_class_follows_first_ask_not_arrival_in_the_queue() -> None:
    r = router_with(("a", ["g", "h"], 1))
    r.enqueue("busy", "g", NORMAL, now=0)
    r.enqueue("late", "g", NORMAL, now=10)
    r.enqueue("early", "g", NORMAL, now=20, asked_at=5)
    assert r.waiting("g") == ["early", "late"]


def test_away_keeps_chats_and_takes_none_and_online_dispatches_again() -> None:
    r = router_with(("a", ["g"], 5))
    r.enqueue("c1", "g", NORMAL, now=0)
    r.set_status("a", "away", 1)
    assert not assigned(r.enqueue("c2", "g", NORMAL, now=2))
    assert r.agents["a"].chats == {"c1"}
    assert r.waiting("g") == ["c2"]
    assert assigned(r.set_status("a", "online", 3)) == [("c2", "a")]


def test_offline_hands_chats_back_to_the_front_of_their_queue() -> None:
    r = router_with(("a", ["g"], 1), ("b", ["g"], 0))
    r.enqueue("c1", "g", NORMAL, now=0)
    r.enqueue("c2", "g", NORMAL, now=1)
    effects = r.set_status("a", "offline", 2)
    assert ("c1", "a", "requeued") in [(e.conv, e.agent, e.reason) for e in effects if isinstance(e, Unassigned)]
    assert r.waiting("g") == ["c1", "c2"]  # front, ahead of the older normal one
    r.check_invariants()


def test_disconnect_keeps_chats_until_grace_expires_then_they_go_first() -> None:
    r = router_with(("a", ["g"], 5), ("b", ["g"], 0))
    r.enqueue("c1", "g", NORMAL, now=0)
    r.enqueue("other", "g", URGENT, now=0.5)  # goes to a too (a has room)
    r.disconnect("a", 1)
    r.set_status("b", "away", 1)
    r.enqueue("n", "g", NORMAL, now=1.5)
    assert r.agents["a"].chats == {"c1", "other"}
    assert r.grace_expired("a", 2)  # requeued
    assert r.waiting("g")[:2] == ["other", "c1"]  # urgent first, then front-of-class
    assert r.waiting("g")[2] == "n"
    # Reconnected before grace ran out: nothing changes.
    r2 = router_with(("a", ["g"], 5))
    r2.enqueue("c1", "g", NORMAL, now=0)
    r2.disconnect("a", 1)
    r2.connect("a", 2)
    assert r2.grace_expired("a", 3) == []
    assert r2.agents["a"].chats == {"c1"}


def test_transfer_to_group_never_returns_to_the_same_agent() -> None:
    r = router_with(("a", ["g", "x"], 5), ("b", ["x"], 5))
    r.enqueue("c1", "g", NORMAL, now=0)
    r.set_status("b", "away", 1)
    effects = r.transfer_to_group("c1", "x", now=2)
    assert not assigned(effects)  # a is in x but transferred it away; b is away
    assert r.waiting("x") == ["c1"]
    assert assigned(r.set_status("b", "online", 3)) == [("c1", "b")]


def test_transfer_to_a_named_agent_needs_a_free_slot() -> None:
    r = router_with(("a", ["g"], 5), ("b", ["g"], 1))
    r.enqueue("c1", "g", NORMAL, now=0)  # a
    r.enqueue("c2", "g", NORMAL, now=1)  # b (less loaded)
    with pytest.raises(RoutingError) as err:
        r.transfer_to_agent("c1", "b", now=2)
    assert err.value.code == "agent_unavailable"
    with pytest.raises(RoutingError):
        r.transfer_to_agent("c1", "nobody", now=2)
    r.close("c2", now=3)
    effects = r.transfer_to_agent("c1", "b", now=4)
    assert assigned(effects) == [("c1", "b")]
    r.check_invariants()


def test_eta_scales_with_position_and_is_unknown_without_agents() -> None:
    r = router_with(("a", ["g"], 2))
    assert r.eta("g", 1) is not None
    assert r.eta("g", 4) == pytest.approx(4 * r.eta("g", 1), abs=1)
    assert r.eta("nobody-here", 1) is None


class RouterMachine(RuleBasedStateMachine):
    """Any interleaving of arrivals, closes, transfers, status changes and
    disconnects keeps every cap and gives each chat at most one agent."""

    agents = ("a1", "a2", "a3", "a4")
    groups = ("g1", "g2")

    def __init__(self) -> None:
        super().__init__()
        self.r = Router()
        self.now = 0.0
        self.next_conv = 0
        self.open: set[str] = set()
        for i, a in enumerate(self.agents):
            self.r.upsert_agent(a, self.groups[: 1 + i % 2], 1 + i, now=0)

    def tick(self) -> float:
        self.now += 1
        return self.now

    @rule(group=st.sampled_from(groups), klass=st.sampled_from([URGENT, PRIORITY, NORMAL]))
    def arrive(self, group: str, klass: int) -> None:
        conv = f"c{self.next_conv}"
        self.next_conv += 1
        self.r.track(conv)
        self.r.enqueue(conv, group, klass, now=self.tick())
        self.open.add(conv)

    @precondition(lambda self: self.open)
    @rule(data=st.data())
    def close(self, data: st.DataObject) -> None:
        conv = data.draw(st.sampled_from(sorted(self.open)))
        self.r.close(conv, now=self.tick())
        self.open.discard(conv)

    @rule(agent=st.sampled_from(agents), status=st.sampled_from(["online", "away", "offline"]))
    def status(self, agent: str, status: str) -> None:
        self.r.set_status(agent, status, self.tick())

    @rule(agent=st.sampled_from(agents), up=st.booleans())
    def link(self, agent: str, up: bool) -> None:
        (self.r.connect if up else self.r.disconnect)(agent, self.tick())

    @rule(agent=st.sampled_from(agents))
    def grace(self, agent: str) -> None:
        self.r.grace_expired(agent, self.tick())

    @rule(agent=st.sampled_from(agents), cap=st.integers(0, 7))
    def cap(self, agent: str, cap: int) -> None:
        self.r.upsert_agent(agent, self.r.agents[agent].groups, cap, self.tick())

    @precondition(lambda self: self.open)
    @rule(data=st.data(), group=st.sampled_from(groups))
    def transfer_group(self, data: st.DataObject, group: str) -> None:
        conv = data.draw(st.sampled_from(sorted(self.open)))
        try:
            self.r.transfer_to_group(conv, group, self.tick())
        except RoutingError:
            assert self.r.chats[conv].state != "assigned"

    @precondition(lambda self: self.open)
    @rule(data=st.data(), agent=st.sampled_from(agents))
    def transfer_agent(self, data: st.DataObject, agent: str) -> None:
        conv = data.draw(st.sampled_from(sorted(self.open)))
        try:
            self.r.transfer_to_agent(conv, agent, self.tick())
        except RoutingError:
            pass

    @invariant()
    def caps_hold_and_one_agent_per_chat(self) -> None:
        self.r.check_invariants()

    @invariant()
    def nobody_waits_while_a_free_eligible_agent_exists(self) -> None:
        for group, queue in self.r.queues.items():
            for _, conv in queue:
                chat = self.r.chats[conv]
                free = [
                    a for a in self.r.agents_in(group)
                    if self.r.agents[a].available and a != chat.exclude
                ]  # fmt: skip
                assert not free, f"{conv} waits in {group} while {free} are free"


TestRouterMachine = RouterMachine.TestCase
TestRouterMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
