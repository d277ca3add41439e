"""The monitor's settings: a TOML file (``~/.config/desk1v5/monitor.toml`` or
``$DESK_MONITOR_CONFIG``), overridden by command-line flags.

    lang = "zh"                 # UI language: zh or en
    url = "ws://127.0.0.1:8765/"
    user = "sup"
    bell = true                 # ring the terminal bell on alerts of the kinds below
    bell_alerts = ["raised_hand", "unanswered", "queue_wait", "failed_login_burst"]
    figures_every_s = 30        # ask for bot misses and phrase stats this often
    audit_every_s = 5           # while the audit tab is shown, ask for new entries this often
    save_token = true           # remember the login token (not the password)

    [keys]                      # binding id = keys (comma separated)
    watch = "f7,ctrl+k"
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from desk.tokens import TokenFile

DEFAULT_BELL_ALERTS = ["raised_hand", "unanswered", "queue_wait", "failed_login_burst"]


def default_path() -> Path:
    env = os.environ.get("DESK_MONITOR_CONFIG")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "desk1v5" / "monitor.toml"


@dataclass
class MonitorConfig:
    path: Path = field(default_factory=default_path)
    lang: str | None = None
    url: str = "ws://127.0.0.1:8765/"
    user: str = ""
    bell: bool = True
    bell_alerts: list[str] = field(default_factory=lambda: list(DEFAULT_BELL_ALERTS))
    figures_every_s: float = 30.0
    audit_every_s: float = 5.0
    save_token: bool = True
    keys: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None = None) -> MonitorConfig:
        path = path or default_path()
        cfg = cls(path=path)
        if path.exists():
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            for name in ("lang", "url", "user", "bell", "figures_every_s", "audit_every_s", "save_token"):
                if name in data:
                    setattr(cfg, name, data[name])
            if "bell_alerts" in data:
                cfg.bell_alerts = [str(k) for k in data["bell_alerts"]]
            cfg.keys = {str(k): str(v) for k, v in data.get("keys", {}).items()}
        return cfg

    @property
    def token_path(self) -> Path:
        # Not the agent desk's token file: one person may run both on one machine.
        return self.path.with_name("monitor-token")

    def saved_token(self, user: str) -> str:
        return TokenFile(self.token_path).load(user)

    def save_token_for(self, user: str, token: str) -> None:
        if self.save_token:
            TokenFile(self.token_path).save(user, token)

    def forget_token(self) -> None:
        TokenFile(self.token_path).forget()
