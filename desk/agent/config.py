"""The desk's settings: a TOML file (``~/.config/desk1v5/desk.toml`` or
``$DESK_CONFIG``), overridden by command-line flags.

    lang = "zh"            # UI language: zh or en
    bell = true            # terminal bell on new chats, background messages, long waits
    wait_alert_s = 60      # warn when a customer has waited this long for an answer
    url = "ws://127.0.0.1:8765/"
    user = "a1"
    save_token = true      # remember the login token (not the password)

    [keys]                 # binding id = keys (comma separated)
    slot-1 = "f1,alt+1"
    phrases = "f7,ctrl+k"
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from desk.tokens import TokenFile


def default_path() -> Path:
    env = os.environ.get("DESK_CONFIG")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "desk1v5" / "desk.toml"


@dataclass
class DeskConfig:
    path: Path = field(default_factory=default_path)
    lang: str | None = None
    bell: bool = True
    wait_alert_s: float = 60.0
    url: str = "ws://127.0.0.1:8765/"
    user: str = ""
    save_token: bool = True
    keys: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None = None) -> DeskConfig:
        path = path or default_path()
        cfg = cls(path=path)
        if path.exists():
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            for name in ("lang", "bell", "wait_alert_s", "url", "user", "save_token"):
                if name in data:
                    setattr(cfg, name, data[name])
            cfg.keys = {str(k): str(v) for k, v in data.get("keys", {}).items()}
        return cfg

    @property
    def token_path(self) -> Path:
        return self.path.with_name("token")

    def saved_token(self, user: str) -> str:
        return TokenFile(self.token_path).load(user)

    def save_token_for(self, user: str, token: str) -> None:
        if self.save_token:
            TokenFile(self.token_path).save(user, token)

    def forget_token(self) -> None:
        TokenFile(self.token_path).forget()
