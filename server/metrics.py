"""Counters for /metrics (Prometheus text format) and the board."""

from __future__ import annotations

import bisect
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .hub import Hub

# Seconds; an ack includes the group commit's fsync.
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.chats_started = 0
        self.messages = 0
        self.handoffs = 0
        self.urgent_handoffs = 0
        self.assignments = 0
        self.bot_misses = 0
        self.failed_logins = 0
        self.forbidden = 0
        self.bad_frames = 0
        self.rate_limited = 0
        self.ratings: dict[str, int] = {}
        self.closed: dict[str, int] = {}
        self.first_response_s: deque[float] = deque(maxlen=10_000)
        self.ack_counts = [0] * (len(ACK_BUCKETS) + 1)
        self.ack_sum = 0.0

    def observe_ack(self, seconds: float) -> None:
        self.ack_counts[bisect.bisect_left(ACK_BUCKETS, seconds)] += 1
        self.ack_sum += seconds

    def render(self, hub: Hub) -> str:
        lines: list[str] = []

        def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
            lines.append(f"# HELP {name} {help_}")
            lines.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                lines.append(f"{name}{labels} {value:g}")

        roles: dict[str, int] = {"customer": 0, "agent": 0, "supervisor": 0, "anonymous": 0}
        for s in hub.sessions:
            roles[s.role or "anonymous"] = roles.get(s.role or "anonymous", 0) + 1
        metric("desk_connections", "gauge", "Open websocket connections by role.",
               [(f'{{role="{r}"}}', n) for r, n in sorted(roles.items())])
        groups = sorted(set(hub.router.groups()) | {hub.config.default_group})
        metric("desk_waiting_chats", "gauge", "Chats waiting for a person, by skill group.",
               [(f'{{group="{g}"}}', len(hub.router.waiting(g))) for g in groups])
        metric("desk_active_chats", "gauge", "Chats assigned to an agent.",
               [("", sum(len(a.chats) for a in hub.router.agents.values()))])
        metric("desk_agents", "gauge", "Known agents by status (connected only).",
               [(f'{{status="{st}"}}', sum(1 for a in hub.router.agents.values()
                                            if a.connected and a.status == st))
                for st in ("online", "away", "offline")])
        metric("desk_messages_total", "counter", "Client messages stored.", [("", self.messages)])
        metric("desk_chats_started_total", "counter", "Chats started.", [("", self.chats_started)])
        metric("desk_handoffs_total", "counter", "Chats handed to a person.", [("", self.handoffs)])
        metric("desk_assignments_total", "counter", "Chats assigned to agents.", [("", self.assignments)])
        metric("desk_bot_misses_total", "counter", "Questions the bot could not answer.", [("", self.bot_misses)])
        metric("desk_failed_logins_total", "counter", "Failed staff logins.", [("", self.failed_logins)])
        metric("desk_refused_total", "counter", "Frames refused, by reason.", [
            ('{reason="forbidden"}', self.forbidden), ('{reason="bad_frame"}', self.bad_frames),
            ('{reason="rate_limited"}', self.rate_limited)])
        metric("desk_closed_total", "counter", "Chats closed, by reason.",
               [(f'{{reason="{r}"}}', n) for r, n in sorted(self.closed.items())])
        lines.append("# HELP desk_ack_latency_seconds From receiving a message to acking it (durable).")
        lines.append("# TYPE desk_ack_latency_seconds histogram")
        cumulative = 0
        for bound, count in zip((*ACK_BUCKETS, float("inf")), self.ack_counts, strict=True):
            cumulative += count
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            lines.append(f'desk_ack_latency_seconds_bucket{{le="{le}"}} {cumulative}')
        lines.append(f"desk_ack_latency_seconds_sum {self.ack_sum:g}")
        lines.append(f"desk_ack_latency_seconds_count {cumulative}")
        store = hub.store
        metric("desk_store_commits_total", "counter", "Group commits.", [("", store.commits)])
        metric("desk_store_writes_total", "counter", "Writes committed.", [("", store.writes)])
        return "\n".join(lines) + "\n"
