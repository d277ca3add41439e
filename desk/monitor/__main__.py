"""`desk monitor`: the supervisor monitor. Also `python -m desk.monitor`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .app import make_monitor
from .config import MonitorConfig


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--url", help="hub URL (default from the config file, else ws://127.0.0.1:8765/)")
    ap.add_argument("--user", help="supervisor id")
    ap.add_argument("--password", help="password (else a saved token, else the login screen)")
    ap.add_argument("--lang", choices=["zh", "en"], help="UI language (default: config, $DESK_LANG, locale)")
    ap.add_argument("--config", help="config file (default ~/.config/desk1v5/monitor.toml or $DESK_MONITOR_CONFIG)")
    bell = ap.add_mutually_exclusive_group()
    bell.add_argument("--no-bell", action="store_true", help="no terminal bell on alerts")
    bell.add_argument("--bell", metavar="KINDS",
                      help="ring the bell on these alert kinds (comma separated: raised_hand, unanswered, "
                           "queue_wait, failed_login_burst, failed_login)")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    config = MonitorConfig.load(Path(args.config) if args.config else None)
    if args.no_bell:
        config.bell = False
    elif args.bell:
        config.bell = True
        config.bell_alerts = [k.strip() for k in args.bell.split(",") if k.strip()]
    app = make_monitor(args.url or config.url, user=args.user or "", password=args.password or "",
                       lang=args.lang, config=config)  # fmt: skip
    app.run()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="desk monitor", description="The supervisor monitor.")
    add_arguments(ap)
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
