"""`desk agent`: the agent desk. Also `python -m desk.agent`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .app import make_agent_desk
from .config import DeskConfig


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--url", help="hub URL (default from the config file, else ws://127.0.0.1:8765/)")
    ap.add_argument("--user", help="agent id")
    ap.add_argument("--password", help="password (else a saved token, else the login screen)")
    ap.add_argument("--lang", choices=["zh", "en"], help="UI language (default: config, $DESK_LANG, locale)")
    ap.add_argument("--config", help="config file (default ~/.config/desk1v5/desk.toml or $DESK_CONFIG)")
    ap.add_argument("--no-bell", action="store_true", help="no terminal bell")
    ap.add_argument("--online", action="store_true", help="go online (take chats) right after logging in")


def run(args: argparse.Namespace) -> int:
    config = DeskConfig.load(Path(args.config) if args.config else None)
    if args.no_bell:
        config.bell = False
    app = make_agent_desk(args.url or config.url, user=args.user or "", password=args.password or "",
                          lang=args.lang, config=config, go_online=args.online)  # fmt: skip
    app.run()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="desk agent", description="The agent desk.")
    add_arguments(ap)
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
