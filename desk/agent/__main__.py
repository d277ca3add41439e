"""python -m desk.agent --url ws://127.0.0.1:8765/ --user a1 --password ..."""

import argparse
import sys

from .app import make_agent_desk
from .config import DeskConfig


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="desk agent", description="The agent desk.")
    ap.add_argument("--url", help="hub URL (default from the config file, else ws://127.0.0.1:8765/)")
    ap.add_argument("--user", help="agent id")
    ap.add_argument("--password", help="password (else a saved token, else the login screen)")
    ap.add_argument("--lang", choices=["zh", "en"], help="UI language")
    ap.add_argument("--config", help="config file (default ~/.config/desk1v5/desk.toml)")
    args = ap.parse_args(argv)
    from pathlib import Path

    config = DeskConfig.load(Path(args.config) if args.config else None)
    app = make_agent_desk(args.url or config.url, user=args.user or "", password=args.password or "",
                          lang=args.lang, config=config)  # fmt: skip
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
