"""Queues and assignment: a plain-Python state machine with no I/O.

The hub calls these methods from its event loop; each returns the effects it
caused (who got which chat, who lost one, which queues moved) for the hub to
persist and announce. Because every method runs to completion without
awaiting, there is no interleaving inside the router: the five-chat cap and
"one agent per chat" hold after every call, and the tests check exactly that
by driving the router directly, with any sequence of events.

Dispatch is event-driven: it runs inside the call that freed a slot or added
work (a close, a status change, an arrival...), never from a timer.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

HARD_MAX_CHATS = 5  # the product's promise: never more than five at once

# Queue classes, lower is served first.
URGENT, PRIORITY, NORMAL = 0, 1, 2
PRIORITY_NAMES = {URGENT: "urgent", PRIORITY: "priority", NORMAL: "normal"}
PRIORITY_FLAGS = frozenset({"elderly", "vip", "disabled"})

ONLINE, AWAY, OFFLINE = "online", "away", "offline"
STATUSES = (ONLINE, AWAY, OFFLINE)

DEFAULT_HANDLE_S = 240.0  # first guess of a chat's handle time, refined by closes


def priority_class(priority: str, flags: Iterable[str]) -> int:
    """Urgent above elderly/VIP above normal."""
    if priority == "urgent":
        return URGENT
    if PRIORITY_FLAGS.intersection(flags):
        return PRIORITY
    return NORMAL


class RoutingError(Exception):
    """A request the router refuses; ``code`` is the wire error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# -- effects ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Assigned:
    conv: str
    agent: str


@dataclass(frozen=True, slots=True)
class Unassigned:
    conv: str
    agent: str
    reason: str  # closed | transferred | requeued | reassigned


@dataclass(frozen=True, slots=True)
class Queued:
    conv: str
    group: str
    front: bool = False


@dataclass(frozen=True, slots=True)
class Dequeued:
    conv: str
    group: str
    reason: str  # assigned | closed | abandoned


Effect = Assigned | Unassigned | Queued | Dequeued


# -- state ------------------------------------------------------------------


@dataclass(slots=True)
class AgentState:
    id: str
    groups: frozenset[str]
    max_chats: int
    status: str = OFFLINE
    connected: bool = False
    chats: set[str] = field(default_factory=set)
    # Ties between equally loaded agents go to the one whose last new chat is
    # oldest ("idle longest"), which also spreads work round-robin.
    last_assigned_at: float = 0.0

    @property
    def available(self) -> bool:
        return self.status == ONLINE and self.connected and len(self.chats) < self.max_chats


@dataclass(slots=True)
class ChatState:
    id: str
    group: str = ""
    klass: int = NORMAL
    asked_at: float = 0.0  # when the customer first asked for a person
    state: str = "bot"  # bot | queued | assigned | closed
    agent: str | None = None
    front: bool = False  # requeued after its agent vanished: goes first in its class
    exclude: str | None = None  # the agent who transferred it away
    assigned_at: float = 0.0
    key: tuple[int, int, float, int] | None = None


class Router:
    """Skill-group queues and agents' slots."""

    def __init__(self) -> None:
        self.agents: dict[str, AgentState] = {}
        self.chats: dict[str, ChatState] = {}
        self.queues: dict[str, list[tuple[tuple[int, int, float, int], str]]] = {}
        self._by_group: dict[str, set[str]] = {}
        self._order = itertools.count()
        self._handle_s: dict[str, float] = {}

    # -- agents -------------------------------------------------------------

    def upsert_agent(
        self, agent_id: str, groups: Iterable[str], max_chats: int, now: float
    ) -> list[Effect]:
        """Register an agent or update its groups and cap (chats are kept)."""
        cap = max(0, min(int(max_chats), HARD_MAX_CHATS))
        groups = frozenset(groups)
        agent = self.agents.get(agent_id)
        if agent is None:
            agent = AgentState(agent_id, groups, cap, last_assigned_at=now)
            self.agents[agent_id] = agent
        else:
            for g in agent.groups - groups:
                self._by_group.get(g, set()).discard(agent_id)
            agent.groups, agent.max_chats = groups, cap
        for g in groups:
            self._by_group.setdefault(g, set()).add(agent_id)
        return self._dispatch(now)

    def set_status(self, agent_id: str, status: str, now: float) -> list[Effect]:
        """online takes chats; away keeps its chats and takes none; offline
        hands its chats back to the front of their queues."""
        if status not in STATUSES:
            raise RoutingError("bad_status", f"unknown status {status!r}")
        agent = self._agent(agent_id)
        was = agent.status
        agent.status = status
        effects: list[Effect] = []
        if status == OFFLINE and agent.chats:
            effects += self._requeue_all(agent, now)
        if status == ONLINE and was != ONLINE:
            agent.last_assigned_at = min(agent.last_assigned_at, now)
        effects += self._dispatch(now)
        return effects

    def connect(self, agent_id: str, now: float) -> list[Effect]:
        self._agent(agent_id).connected = True
        return self._dispatch(now)

    def disconnect(self, agent_id: str, now: float) -> list[Effect]:
        """The socket dropped: no new chats; current chats wait for the grace period."""
        self._agent(agent_id).connected = False
        return []

    def grace_expired(self, agent_id: str, now: float) -> list[Effect]:
        """The agent did not come back in time: its chats go back to the front."""
        agent = self._agent(agent_id)
        if agent.connected:
            return []
        return self._requeue_all(agent, now) + self._dispatch(now)

    # -- chats --------------------------------------------------------------

    def track(self, conv: str) -> None:
        """A new chat in the bot stage (not queued yet)."""
        self.chats.setdefault(conv, ChatState(conv))

    def enqueue(
        self, conv: str, group: str, klass: int, now: float, asked_at: float | None = None
    ) -> list[Effect]:
        """The customer wants a person: queue in `group` and dispatch."""
        chat = self.chats.setdefault(conv, ChatState(conv))
        if chat.state in ("queued", "assigned"):
            return []
        if chat.state == "closed":
            raise RoutingError("closed", "the conversation is closed")
        chat.group, chat.klass = group, klass
        chat.asked_at = now if asked_at is None else asked_at
        return [self._push(chat, front=False), *self._dispatch(now)]

    def close(self, conv: str, now: float, reason: str = "closed") -> list[Effect]:
        """Close a chat wherever it is; a freed slot is offered at once."""
        chat = self.chats.pop(conv, None)
        if chat is None:
            return []
        effects: list[Effect] = []
        if chat.state == "queued":
            self._remove(chat)
            effects.append(Dequeued(conv, chat.group, "abandoned" if reason == "abandoned" else "closed"))
        elif chat.state == "assigned" and chat.agent is not None:
            agent = self.agents[chat.agent]
            agent.chats.discard(conv)
            self._learn_handle(chat.group, now - chat.assigned_at)
            effects.append(Unassigned(conv, agent.id, "closed"))
        chat.state = "closed"
        return effects + self._dispatch(now)

    def transfer_to_group(self, conv: str, group: str, now: float) -> list[Effect]:
        """Back into a queue (keeping its place by first-ask time), never
        straight back to the agent who transferred it."""
        chat = self._assigned(conv)
        agent = self.agents[chat.agent]  # type: ignore[index]
        agent.chats.discard(conv)
        chat.agent, chat.exclude, chat.group = None, agent.id, group
        effects: list[Effect] = [Unassigned(conv, agent.id, "transferred")]
        effects.append(self._push(chat, front=False))
        return effects + self._dispatch(now)

    def transfer_to_agent(
        self, conv: str, target: str, now: float, reason: str = "transferred"
    ) -> list[Effect]:
        """Hand a chat to a named agent, who must be online with a free slot.

        Works on an assigned chat (transfer, reassign) or a queued one (a
        supervisor picks who takes it)."""
        chat = self.chats.get(conv)
        if chat is None or chat.state not in ("assigned", "queued"):
            raise RoutingError("invalid_state", "the chat is not waiting or assigned")
        dest = self.agents.get(target)
        if dest is None:
            raise RoutingError("unknown_agent", f"no agent {target!r}")
        if chat.agent == target:
            raise RoutingError("invalid_state", "the chat is already with that agent")
        if not dest.available:
            raise RoutingError("agent_unavailable", f"{target} is not online with a free slot")
        effects: list[Effect] = []
        if chat.state == "assigned":
            src = self.agents[chat.agent]  # type: ignore[index]
            src.chats.discard(conv)
            effects.append(Unassigned(conv, src.id, reason))
        else:
            self._remove(chat)
            effects.append(Dequeued(conv, chat.group, "assigned"))
        effects.append(self._assign(chat, dest, now))
        return effects + self._dispatch(now)

    # -- restore after a restart --------------------------------------------

    def restore_assigned(self, conv: str, group: str, klass: int, agent_id: str, at: float) -> None:
        """Put back a chat the database says is assigned. The cap was held when
        it was stored; if the agent's max was lowered since, it only stops new
        chats until the load falls."""
        agent = self._agent(agent_id)
        chat = self.chats.setdefault(conv, ChatState(conv))
        chat.group, chat.klass, chat.state, chat.agent = group, klass, "assigned", agent_id
        chat.assigned_at = at
        agent.chats.add(conv)

    def restore_queued(
        self, conv: str, group: str, klass: int, asked_at: float, front: bool, exclude: str | None
    ) -> None:
        chat = self.chats.setdefault(conv, ChatState(conv))
        chat.group, chat.klass, chat.asked_at, chat.exclude = group, klass, asked_at, exclude
        self._push(chat, front=front)

    # -- queries ------------------------------------------------------------

    def waiting(self, group: str) -> list[str]:
        return [conv for _, conv in self.queues.get(group, ())]

    def position(self, conv: str) -> int | None:
        """1-based place in its group's queue."""
        chat = self.chats.get(conv)
        if chat is None or chat.state != "queued" or chat.key is None:
            return None
        return bisect.bisect_left(self.queues[chat.group], (chat.key, "")) + 1

    def capacity(self, group: str) -> int:
        """Slots of the group's connected online agents."""
        return sum(
            self.agents[a].max_chats
            for a in self._by_group.get(group, ())
            if self.agents[a].status == ONLINE and self.agents[a].connected
        )

    def eta_params(self, group: str) -> tuple[int, float]:
        """(slots, handle seconds): eta = position * handle / slots."""
        return self.capacity(group), self._handle_s.get(group, DEFAULT_HANDLE_S)

    def eta(self, group: str, position: int) -> int | None:
        """Seconds until a chat at `position` is likely served: the group's
        slots free at one handle-time per slot. None when nobody can serve."""
        slots = self.capacity(group)
        if slots == 0:
            return None
        handle = self._handle_s.get(group, DEFAULT_HANDLE_S)
        return round(position * handle / slots)

    def groups(self) -> Iterator[str]:
        return iter(set(self.queues) | set(self._by_group))

    def agents_in(self, group: str) -> set[str]:
        return self._by_group.get(group, set())

    def check_invariants(self) -> None:
        """Raise AssertionError if a cap or the one-agent rule is broken."""
        holders: dict[str, str] = {}
        for agent in self.agents.values():
            assert len(agent.chats) <= HARD_MAX_CHATS, f"{agent.id} holds {len(agent.chats)}"
            for conv in agent.chats:
                assert conv not in holders, f"{conv} held by {holders[conv]} and {agent.id}"
                holders[conv] = agent.id
                assert self.chats[conv].agent == agent.id, f"{conv} disagrees on its agent"
        for chat in self.chats.values():
            if chat.state == "assigned":
                assert holders.get(chat.id) == chat.agent, f"{chat.id} not held by {chat.agent}"
        queued = {conv for q in self.queues.values() for _, conv in q}
        assert queued == {c.id for c in self.chats.values() if c.state == "queued"}
        for q in self.queues.values():
            assert q == sorted(q), "queue out of order"

    # -- internals ----------------------------------------------------------

    def _agent(self, agent_id: str) -> AgentState:
        agent = self.agents.get(agent_id)
        if agent is None:
            raise RoutingError("unknown_agent", f"no agent {agent_id!r}")
        return agent

    def _assigned(self, conv: str) -> ChatState:
        chat = self.chats.get(conv)
        if chat is None or chat.state != "assigned" or chat.agent is None:
            raise RoutingError("invalid_state", "the chat is not assigned")
        return chat

    def _push(self, chat: ChatState, front: bool) -> Queued:
        chat.state, chat.agent, chat.front = "queued", None, front
        chat.key = (chat.klass, 0 if front else 1, chat.asked_at, next(self._order))
        bisect.insort(self.queues.setdefault(chat.group, []), (chat.key, chat.id))
        return Queued(chat.id, chat.group, front)

    def _remove(self, chat: ChatState) -> None:
        q = self.queues[chat.group]
        i = bisect.bisect_left(q, (chat.key, ""))
        assert q[i][1] == chat.id
        del q[i]
        chat.key = None

    def _assign(self, chat: ChatState, agent: AgentState, now: float) -> Assigned:
        chat.state, chat.agent, chat.assigned_at, chat.front = "assigned", agent.id, now, False
        agent.chats.add(chat.id)
        agent.last_assigned_at = now
        return Assigned(chat.id, agent.id)

    def _requeue_all(self, agent: AgentState, now: float) -> list[Effect]:
        effects: list[Effect] = []
        for conv in sorted(agent.chats, key=lambda c: self.chats[c].asked_at):
            chat = self.chats[conv]
            agent.chats.discard(conv)
            effects.append(Unassigned(conv, agent.id, "requeued"))
            effects.append(self._push(chat, front=True))
        return effects

    def _best_agent(self, group: str, exclude: str | None) -> AgentState | None:
        best: AgentState | None = None
        for agent_id in self._by_group.get(group, ()):
            if agent_id == exclude:
                continue
            agent = self.agents[agent_id]
            if not agent.available:
                continue
            if best is None or (len(agent.chats), agent.last_assigned_at, agent.id) < (
                len(best.chats),
                best.last_assigned_at,
                best.id,
            ):
                best = agent
        return best

    def _dispatch(self, now: float) -> list[Effect]:
        """Offer the oldest highest-priority waiting chats to free agents
        until no waiting chat has an available agent."""
        effects: list[Effect] = []
        while True:
            pick: tuple[tuple[int, int, float, int], ChatState, AgentState] | None = None
            for queue in self.queues.values():
                for key, conv in queue:
                    if pick is not None and key >= pick[0]:
                        break
                    chat = self.chats[conv]
                    agent = self._best_agent(chat.group, chat.exclude)
                    if agent is not None:
                        pick = (key, chat, agent)
                        break
                    if chat.exclude is None:
                        break  # nobody in this group is free: later entries can't do better
            if pick is None:
                return effects
            _, chat, agent = pick
            self._remove(chat)
            effects.append(Dequeued(chat.id, chat.group, "assigned"))
            effects.append(self._assign(chat, agent, now))

    def _learn_handle(self, group: str, seconds: float) -> None:
        if seconds <= 0:
            return
        old = self._handle_s.get(group, DEFAULT_HANDLE_S)
        self._handle_s[group] = 0.8 * old + 0.2 * seconds
