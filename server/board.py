"""The supervisors' live board: rows for agents and queues, pushed as deltas.

Changes only mark rows dirty; one timer per interval turns the dirty rows
into a single ``board`` frame for every supervisor. The cost is bounded by
what changed and by the interval (default once a second), not by how many
events happened, so watching 2,000 agents stays cheap for the hub.

Customers' names go out once per chat and row: an agent row names only the
chats whose names the watching supervisors do not have yet (a full board
names them all, to the supervisor who joins).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING

import msgspec

from . import protocol as p
from .routing import PRIORITY_NAMES

if TYPE_CHECKING:
    from .hub import Hub
    from .session import Session


class BoardFeed:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.dirty_agents: set[str] = set()
        self.dirty_groups: set[str] = set()
        self.new_alerts: list[p.AlertRow] = []
        self.alerts: deque[p.AlertRow] = deque(maxlen=100)
        self._timer: asyncio.TimerHandle | None = None
        self._ticker: asyncio.TimerHandle | None = None
        self._last_push = 0.0
        self.pushes = 0
        self._alerted: set[tuple[str, str, float]] = set()
        self._failed_logins: deque[float] = deque()
        # agent -> the chats whose customers' names every watching supervisor has
        # (from the full board it joined with, or from a row pushed since)
        self._listed: dict[str, frozenset[str]] = {}
        self._stopped = False

    # -- marking ------------------------------------------------------------

    def touch_agent(self, agent_id: str) -> None:
        if self.hub.supervisors:
            self.dirty_agents.add(agent_id)
            self._schedule()

    def touch_queues(self, groups: Iterable[str]) -> None:
        if self.hub.supervisors:
            self.dirty_groups.update(groups)
            self._schedule()

    def alert(self, kind: str, who: str, conv: str = "") -> None:
        now = self.hub.clock()
        if kind == "failed_login":
            self._failed_logins.append(now)
            while self._failed_logins and self._failed_logins[0] < now - 60:
                self._failed_logins.popleft()
            if len(self._failed_logins) >= self.hub.config.alert_failed_logins:
                self._failed_logins.clear()  # one burst, one alert
                self.alert("failed_login_burst", who)
        chat = self.hub.convs.get(conv) if conv else None
        row = p.AlertRow(kind=kind, who=who, conv=conv, at=now,
                         customer=chat.rec.customer_name if chat is not None else "")  # fmt: skip
        self.alerts.append(row)
        if self.hub.supervisors:
            self.new_alerts.append(row)
            self._schedule()

    def tick(self) -> None:
        """Once a second while supervisors watch: waits grow without events, so
        re-colour agents with waiting customers and raise wait alerts."""
        self._ticker = None
        hub = self.hub
        if not hub.supervisors:
            return
        now, cfg = hub.clock(), hub.config
        for conv in hub.convs.values():
            since = conv.unanswered_since
            if since is not None and conv.rec.agent_id:
                self.dirty_agents.add(conv.rec.agent_id)
                key = ("unanswered", conv.id, since)
                if now - since >= cfg.alert_unanswered_s and key not in self._alerted:
                    self._alerted.add(key)
                    self.alert("unanswered", conv.rec.agent_id, conv=conv.id)
        for group, queue in hub.router.queues.items():
            if queue:
                self.dirty_groups.add(group)
                chat = hub.router.chats[queue[0][1]]
                key = ("queue_wait", chat.id, chat.asked_at)
                if now - chat.asked_at >= cfg.alert_queue_wait_s and key not in self._alerted:
                    self._alerted.add(key)
                    self.alert("queue_wait", group, conv=chat.id)
        if len(self._alerted) > 10_000:
            self._alerted.clear()
        if self.dirty_agents or self.dirty_groups:
            self._schedule()
        self.start_ticking()

    def start_ticking(self) -> None:
        if self._ticker is None and self.hub.supervisors:
            self._ticker = asyncio.get_running_loop().call_later(1.0, self.tick)

    # -- sending ------------------------------------------------------------

    def send_full(self, session: Session) -> None:
        hub = self.hub
        self.start_ticking()
        rows = [self.agent_row(a) for a in sorted(hub.router.agents)]
        if hub.supervisors <= {session}:
            # Nobody else was watching, so no row went out since the last
            # supervisor left: what this board names is all anyone knows.
            self._listed = {r.id: frozenset(r.customers or ()) for r in rows}
        # Else the rows pushed so far named every chat to those already
        # watching, and this board names them all to the newcomer: the rows
        # still to be pushed name what changed since, for both.
        session.send(p.Board(
            full=True,
            agents=rows,
            queues=[self.queue_row(g, listed=True) for g in sorted(hub.router.groups())],
            totals=self.totals(),
            alerts=list(self.alerts),
        ))  # fmt: skip

    def _schedule(self) -> None:
        if self._timer is not None or self._stopped:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._last_push + self.hub.config.board_interval_s - time.monotonic())
        self._timer = loop.call_later(delay, self._push)

    def _push(self) -> None:
        self._timer = None
        self._last_push = time.monotonic()
        hub = self.hub
        agents = []
        for agent_id in sorted(self.dirty_agents):
            agent = hub.router.agents.get(agent_id)
            if agent is None:
                self._listed.pop(agent_id, None)
                continue
            known = self._listed.get(agent_id, frozenset()) & agent.chats
            row = self.agent_row(agent_id, named=known)
            agents.append(row)
            self._listed[agent_id] = known | frozenset(row.customers or ())
        queues = [self.queue_row(g, listed=True) for g in sorted(self.dirty_groups)]
        frame = p.encode(p.Board(full=False, agents=agents, queues=queues,
                                 totals=self.totals(), alerts=self.new_alerts))
        self.dirty_agents.clear()
        self.dirty_groups.clear()
        self.new_alerts = []
        self.pushes += 1
        for session in hub.supervisors:
            session.push(frame)

    def stop(self) -> None:
        self._stopped = True  # a write completing during the hub's stop must not arm a timer
        for handle in (self._timer, self._ticker):
            if handle is not None:
                handle.cancel()
        self._timer = self._ticker = None

    # -- rows ---------------------------------------------------------------

    def agent_row(self, agent_id: str, named: frozenset[str] = frozenset()) -> p.AgentRow:
        """An agent's row; its chats' customers are named except those in ``named``
        (the supervisors have their names from an earlier row)."""
        hub = self.hub
        agent = hub.router.agents[agent_id]
        now = hub.clock()
        chats: dict[str, float] = {}
        names: dict[str, str] = {}
        for conv_id in sorted(agent.chats):
            conv = hub.convs.get(conv_id)
            since = conv.unanswered_since if conv is not None else None
            chats[conv_id] = round(now - since, 1) if since is not None else 0.0
            if conv is not None and conv_id not in named:
                names[conv_id] = conv.rec.customer_name
        return p.AgentRow(
            id=agent_id, name=hub._name(agent_id), status=agent.status, connected=agent.connected,
            load=len(agent.chats), max_chats=agent.max_chats, groups=sorted(agent.groups),
            chats=chats, hand_raised=agent_id in hub.hands,
            logged_in_at=hub.logged_in_at.get(agent_id, 0.0),
            customers=names or msgspec.UNSET,
            **hub.stats.agent(agent_id).fields(),
        )  # fmt: skip

    def queue_row(self, group: str, *, listed: bool = False) -> p.QueueRow:
        """A queue's row; ``listed``: with its first waiting chats (supervisors
        only: an agent's transfer directory gets the counts, not the customers)."""
        hub = self.hub
        waiting = hub.router.waiting(group)
        now = hub.clock()
        by_priority: dict[str, int] = {}
        longest = 0.0
        chats: list[p.WaitingChat] = []
        for conv_id in waiting:
            chat = hub.router.chats[conv_id]
            name = PRIORITY_NAMES[chat.klass]
            by_priority[name] = by_priority.get(name, 0) + 1
            longest = max(longest, now - chat.asked_at)
            conv = hub.convs.get(conv_id)
            if listed and conv is not None and len(chats) < p.WAITING_LISTED:
                chats.append(p.WaitingChat(conv=conv_id, customer=conv.rec.customer_name, priority=name,
                                           wait_s=round(max(0.0, now - chat.asked_at), 1),
                                           flags=list(conv.rec.flags)))  # fmt: skip
        online = sum(
            1 for a in hub.router.agents_in(group)
            if hub.router.agents[a].status == "online" and hub.router.agents[a].connected
        )  # fmt: skip
        arrivals, lengths = hub.stats.sparks(group, len(waiting))
        return p.QueueRow(
            group=group, waiting=len(waiting), by_priority=by_priority,
            longest_wait_s=round(longest, 1), eta_s=hub.router.eta(group, len(waiting) + 1),
            agents_online=online, abandoned=hub.stats.group_abandoned[group],
            arrivals=arrivals, lengths=lengths, chats=chats,
        )  # fmt: skip

    def totals(self) -> dict[str, float]:
        hub = self.hub
        m = hub.metrics
        return {
            "waiting": float(sum(len(q) for q in hub.router.queues.values())),
            "active": float(sum(len(a.chats) for a in hub.router.agents.values())),
            "agents_online": float(sum(
                1 for a in hub.router.agents.values() if a.status == "online" and a.connected
            )),
            "chats_started": float(m.chats_started),
            "handoffs": float(m.handoffs),
            "messages": float(m.messages),
            **hub.stats.totals(),
        }  # fmt: skip
