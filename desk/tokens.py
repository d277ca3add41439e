"""A saved login token ("user\\ntoken"), readable only by its owner.

The desk and the monitor keep separate files (one person may run both) but
the same format and rules: the token, never the password."""

from __future__ import annotations

import contextlib
from pathlib import Path


class TokenFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self, user: str) -> str:
        try:
            saved_user, token = self.path.read_text(encoding="utf-8").split("\n", 1)
        except (OSError, ValueError):
            return ""
        return token.strip() if saved_user == user else ""

    def save(self, user: str, token: str) -> None:
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(f"{user}\n{token}", encoding="utf-8")
            self.path.chmod(0o600)  # a token opens the desk: keep it private

    def forget(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()
