"""Hub settings, passed in (never read at import time) so tests and the CLI
build the same hub with different values."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .protocol import MAX_FRAME_BYTES


@dataclass(slots=True)
class HubConfig:
    db_path: Path = Path("desk.db")
    host: str = "127.0.0.1"
    port: int = 8765  # 0: pick a free port (tests)
    # Seconds an agent whose link dropped keeps its chats before they are requeued.
    agent_grace_s: float = 60.0
    # Seconds a waiting customer whose link dropped keeps its place.
    customer_grace_s: float = 120.0
    # Seconds without a word from the customer before the chat is closed.
    customer_idle_s: float = 600.0
    default_group: str = "general"
    max_frame_bytes: int = MAX_FRAME_BYTES
    # Per-connection frame budget (token bucket); beyond it frames are refused,
    # and a client that keeps flooding is disconnected.
    rate_per_s: float = 20.0
    rate_burst: int = 40
    flood_strikes: int = 50
    # A client whose unsent frames exceed this is too slow: it is disconnected
    # (it can resume) so its backlog cannot eat the hub's memory.
    max_outbound_bytes: int = 1 << 20
    # Failed logins per user (and per address) within the window before refusal.
    login_failures: int = 5
    login_window_s: float = 60.0
    # Minimum seconds between supervisor board pushes.
    board_interval_s: float = 1.0
    # Supervisor alerts: the oldest waiting chat of a queue, a customer with no
    # answer in an agent's slot, failed logins within a minute.
    alert_queue_wait_s: float = 120.0
    alert_unanswered_s: float = 90.0
    alert_failed_logins: int = 5
    # Origins allowed for browser clients; None admits clients that send none.
    origins: list[str | None] = field(default_factory=lambda: [None])
    sqlite_synchronous: str = "FULL"
    # The knowledge base the built-in bot answers from; None: no bot (every
    # new chat goes straight to the queue of `default_group`).
    kb_path: Path | None = None
    # Seconds between checks for edits made outside the hub (CLI imports, KB file).
    maintenance_s: float = 2.0
    # Seconds between log lines naming the audit log's head (an anchor to keep
    # outside the database; also logged at start).
    audit_anchor_s: float = 3600.0
