"""``desk``: run the hub, manage staff, and (later) open the terminal apps.

    desk hub --port 8765 --db desk.db        run the hub
    desk user add a1 --name 李娜 --groups cards,general
    desk user list | disable ID | enable ID | set ID --max 4
    desk phrases import FILE | export FILE | list | stats
    desk kb check [FILE] | misses
    desk audit verify                         check the audit log's hash chain
    desk report --from DAY --to DAY --out DIR the weekly review as CSV files
    desk demo                                 hub + demo accounts (what `make demo` runs)

Options a command's subcommands share (``--db``) may come before or after the
subcommand: ``desk user --db X.db add a1`` and ``desk user add a1 --db X.db``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
import time
from datetime import date
from pathlib import Path

from server import admin
from server.bot.kb import DEFAULT_KB_PATH
from server.config import HubConfig

DEFAULT_DB = Path(os.environ.get("DESK_DB", "desk.db"))
DEFAULT_KB = DEFAULT_KB_PATH
# Commands whose options their own module defines (they import Textual or
# the simulator only when used).
DELEGATED = {
    "agent": ("desk.agent.__main__", "the agent desk"),
    "customer": ("desk.customer.app", "the demo customer client"),
    "simulate": ("desk.simulate", "simulated customers (steady, surge, load)"),
    "monitor": ("desk.monitor.__main__", "the supervisor monitor"),
}


def _cells(text: str, width: int) -> str:
    """`text` padded to `width` terminal cells (a Chinese character takes two)."""
    from rich.cells import cell_len

    return text + " " * max(0, width - cell_len(text))


def _existing_db(args: argparse.Namespace) -> Path:
    """The database a reading command works on; an AdminError if it is not
    there (opening it would create an empty one and report on nothing)."""
    db = Path(args.db)
    if not db.exists():
        raise admin.AdminError(f"no database at {db} (give --db, or set $DESK_DB)")
    return db


def _groups(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [g.strip() for g in text.split(",") if g.strip()]


def _password(args: argparse.Namespace) -> str:
    if getattr(args, "password", None):
        return str(args.password)
    env = os.environ.get("DESK_PASSWORD")
    if env:
        return env
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise admin.AdminError("the passwords differ")
    return first


def _anchor(text: str) -> tuple[int, str]:
    entry, _, digest = text.partition(":")
    if not entry.isdigit() or len(digest) != 64:
        raise argparse.ArgumentTypeError(f"{text!r}: expected ID:HASH as `desk audit head` prints it")
    return int(entry), digest


def _hub_config(args: argparse.Namespace) -> HubConfig:
    return HubConfig(
        db_path=Path(args.db), host=args.host, port=args.port, agent_grace_s=args.grace,
        customer_idle_s=args.idle, default_group=args.default_group,
        rate_per_s=args.rate, rate_burst=max(1, int(args.rate * 2)),
        kb_path=None if args.no_bot else Path(args.kb),
        origins=[None, *args.origin], sqlite_synchronous=args.sync.upper(),
    )  # fmt: skip


async def _run_hub(config: HubConfig) -> None:
    from server.net import build_hub

    server = await build_hub(config).start()
    print(f"hub listening on {server.url}  (db {config.db_path}; GET /healthz, /metrics)", flush=True)
    await server.serve_until_signalled()


def _print_users(users: list) -> None:  # type: ignore[type-arg]
    print(f"{'id':<12} {'role':<11} {'name':<12} {'max':>3}  {'status':<8} {'groups'}")
    for u in users:
        state = "disabled" if u.disabled else u.status
        print(f"{_cells(u.id, 12)} {u.role:<11} {_cells(u.name, 12)} {u.max_chats:>3}  {state:<8} {','.join(u.groups)}")


def _phrases(args: argparse.Namespace) -> int:
    from phrasebook import PhraseImportError, PhraseIndex

    db = Path(args.db) if args.action == "import" else _existing_db(args)
    if args.action == "import":
        try:
            written, deleted = asyncio.run(admin.import_phrases(
                db, Path(args.file), owner=args.owner, replace=args.replace))
        except PhraseImportError as exc:
            print(f"desk: {exc}", file=sys.stderr)
            return 2
        print(f"imported {written} phrases" + (f", deleted {deleted}" if deleted else ""))
    elif args.action == "export":
        n = asyncio.run(admin.export_phrases(db, Path(args.file), owner=args.owner))
        print(f"exported {n} phrases to {args.file}")
    elif args.action == "list":
        phrases, usage = asyncio.run(admin.list_phrases(db, args.agent))
        if args.search:
            index = PhraseIndex(phrases, agent_id=args.agent)
            hits = index.search(args.search, usage=usage if args.agent else None, lang=args.lang)
            rows = [(h.phrase, f"{h.field}/{h.how}") for h in hits]
        else:
            rows = [(ph, "") for ph in sorted(phrases, key=lambda ph: (ph.scope, ph.code, ph.lang))
                    if args.lang is None or ph.lang == args.lang]
        for ph, why in rows:
            owner = ph.owner or "team"
            print(f"{ph.code:<10} {ph.lang}  {owner:<8} {ph.title}  {why}".rstrip())
        print(f"({len(rows)} phrases)")
    elif args.action == "stats":
        phrases, usage = asyncio.run(admin.list_phrases(db))
        titles = {ph.id: f"{ph.code} {ph.title}" for ph in phrases}
        print("most used phrases:")
        for pid, n in sorted(usage.phrase_counts().items(), key=lambda kv: -kv[1])[:20]:
            print(f"  {n:>6}  {titles.get(pid, pid)}")
        print("uses per agent:")
        now = time.time()
        for agent in usage.agents():
            counts = usage.agent_counts(agent)
            top = ", ".join(titles.get(pid, pid) for pid, _ in usage.top(agent, now, 3))
            print(f"  {agent:<10} {sum(counts.values()):>6}  favourites: {top}")
    return 0


def _kb(args: argparse.Namespace) -> int:
    if args.action == "check":
        from server.bot import KBError, load_kb

        try:
            kb = load_kb(Path(args.file))
        except KBError as exc:
            print(f"desk: {exc}", file=sys.stderr)
            return 2
        for warning in kb.warnings:
            print(f"warning: {warning}")
        print(f"{args.file}: {len(kb.entries)} entries, valid. A running hub reloads it when the file"
              " changes (or on kill -HUP, or a supervisor's reload).")
        return 0
    rows = asyncio.run(admin.top_misses(_existing_db(args), args.limit))
    print(f"{'times':>6}  last asked        question")
    for sample, count, last in rows:
        stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(last))
        print(f"{count:>6}  {stamp}  {sample}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from server.report import last_week, write_report

    start, end = last_week()
    start, end = args.start or start, args.end or end
    if start > end:
        raise admin.AdminError(f"--from {start} is after --to {end}")
    out = Path(args.out)
    counts = asyncio.run(write_report(_existing_db(args), start, end, out))
    print(f"review {start} .. {end} written to {out}/: agents.csv ({counts['agent_days']} agent-days), "
          f"days.csv ({counts['days']} days), dissatisfied.csv ({counts['dissatisfied']} chats)")
    return 0


def _day(text: str) -> date:
    from server.report import parse_day

    try:
        return parse_day(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day like 2026-11-16") from None


def _db_command(
    sub: argparse._SubParsersAction, name: str, help_: str
) -> tuple[argparse._SubParsersAction, argparse.ArgumentParser]:
    """A command with subcommands that all work on the database. ``--db`` is
    accepted before the subcommand (``desk user --db X add``) and after it
    (``desk user add a1 --db X``); given in both places, the later one wins.
    Returns the command's subparsers and the parent to give each subcommand."""
    db_help = f"SQLite file (default {DEFAULT_DB}, or $DESK_DB)"
    cmd = sub.add_parser(name, help=help_)
    cmd.add_argument("--db", default=str(DEFAULT_DB), help=db_help)
    # After the subcommand: no default, so it never hides a --db given before.
    after = argparse.ArgumentParser(add_help=False)
    after.add_argument("--db", default=argparse.SUPPRESS, help=db_help)
    return cmd.add_subparsers(dest="action", required=True), after


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="desk", description="Bank chat desk: hub and tools.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="cmd", required=True)

    hub = sub.add_parser("hub", help="run the hub")
    hub.add_argument("--host", default="127.0.0.1")
    hub.add_argument("--port", type=int, default=8765)
    hub.add_argument("--db", default=str(DEFAULT_DB), help="SQLite file (created if missing)")
    hub.add_argument("--grace", type=float, default=60.0, help="agent reconnect grace, seconds")
    hub.add_argument("--idle", type=float, default=600.0, help="close silent customers after, seconds")
    hub.add_argument("--default-group", default="general")
    hub.add_argument("--rate", type=float, default=20.0, help="frames/s allowed per connection")
    hub.add_argument("--kb", default=str(DEFAULT_KB), help="knowledge base YAML (reloaded when it changes)")
    hub.add_argument("--no-bot", action="store_true", help="no bot: new chats go straight to the queue")
    hub.add_argument("--sync", choices=["full", "normal"], default="full",
                     help="full: an ack survives power loss; normal: it survives a hub crash (faster)")
    hub.add_argument("--origin", action="append", default=[],
                     help="allow browser clients from this Origin (repeatable)")

    demo = sub.add_parser("demo", help="hub + simulated customers + the agent desk (make demo)")
    demo.add_argument("--port", type=int, default=8765)
    demo.add_argument("--rate", type=float, default=6.0, help="new customers per minute")
    demo.add_argument("--lang", choices=["zh", "en"], help="UI language")
    demo.add_argument("--no-sim", action="store_true", help="no simulated customers")
    for name, (_, help_) in DELEGATED.items():
        sub.add_parser(name, help=f"{help_} (desk {name} --help)", add_help=False)

    usub, shared = _db_command(sub, "user", "manage agents and supervisors")
    add = usub.add_parser("add", help="add an agent or supervisor", parents=[shared])
    add.add_argument("id")
    add.add_argument("--name", required=True)
    add.add_argument("--role", choices=["agent", "supervisor"], default="agent")
    add.add_argument("--groups", default="general", help="comma-separated skill groups")
    add.add_argument("--max", type=int, default=5, help="max concurrent chats (0-5)")
    add.add_argument("--password", help="(else $DESK_PASSWORD, else prompt)")
    usub.add_parser("list", help="list staff", parents=[shared])
    for name in ("disable", "enable"):
        usub.add_parser(name, help=f"{name} a user", parents=[shared]).add_argument("id")
    st = usub.add_parser("set", help="change a user", parents=[shared])
    st.add_argument("id")
    st.add_argument("--name")
    st.add_argument("--groups")
    st.add_argument("--max", type=int)
    st.add_argument("--password")

    psub, shared = _db_command(sub, "phrases", "the phrasebook: import, export, list, stats")
    imp = psub.add_parser("import", help="import a YAML or CSV file (team, or --owner's personal)",
                          parents=[shared])  # fmt: skip
    imp.add_argument("file")
    imp.add_argument("--owner", help="import as this agent's personal phrases")
    imp.add_argument("--replace", action="store_true", help="delete phrases of that scope missing from the file")
    exp = psub.add_parser("export", help="export to a YAML or CSV file (by extension)", parents=[shared])
    exp.add_argument("file")
    exp.add_argument("--owner", help="export this agent's personal phrases instead of the team's")
    ls = psub.add_parser("list", help="list phrases, or search them like the desk does", parents=[shared])
    ls.add_argument("--agent", help="include this agent's personal phrases and rank by its usage")
    ls.add_argument("--search", help="a query: shortcode, Chinese, English or pinyin (gs, guashi)")
    ls.add_argument("--lang", choices=["zh", "en"])
    psub.add_parser("stats", help="usage per phrase and per agent", parents=[shared])

    ksub, shared = _db_command(sub, "kb", "the bot's knowledge base")
    chk = ksub.add_parser("check", help="validate a knowledge base file", parents=[shared])
    chk.add_argument("file", nargs="?", default=str(DEFAULT_KB))
    ms = ksub.add_parser("misses", help="questions the bot could not answer, most asked first", parents=[shared])
    ms.add_argument("--limit", type=int, default=30)

    asub, shared = _db_command(sub, "audit", "the audit log")
    ver = asub.add_parser("verify", help="check the hash chain (and anchors kept elsewhere)", parents=[shared])
    ver.add_argument("--anchor", action="append", default=[], type=_anchor, metavar="ID:HASH",
                     help="an entry's id and hash as `desk audit head` printed them (repeatable)")
    asub.add_parser("head", help="print the newest entry's id:hash, to keep outside the database",
                    parents=[shared])

    rep = sub.add_parser("report", help="the weekly review: CSV files for a date range (default last week)")
    rep.add_argument("--db", default=str(DEFAULT_DB), help=f"SQLite file (default {DEFAULT_DB}, or $DESK_DB)")
    rep.add_argument("--from", dest="start", type=_day, metavar="DAY", help="first day, 2026-11-16 (default: last Monday)")
    rep.add_argument("--to", dest="end", type=_day, metavar="DAY", help="last day, included (default: last Sunday)")
    rep.add_argument("--out", default="review", help="folder for the CSV files and transcripts (default review/)")
    return parser


def _delegate(name: str, argv: list[str]) -> int:
    import importlib

    module = importlib.import_module(DELEGATED[name][0])
    parser = argparse.ArgumentParser(prog=f"desk {name}", description=DELEGATED[name][1])
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(argv)) or 0)


# Textual repaints at most this often. After an idle spell its frame timer
# can hold the next repaint back by up to two periods: at Textual's default
# 60 that put a slot switch at 35 ms now and then, at 120 the worst measured
# was 24 ms (bench/desk_bench.py). Read once, when Textual is first imported.
TEXTUAL_FPS = "120"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("TEXTUAL_FPS", TEXTUAL_FPS)
    if argv and argv[0] in DELEGATED:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return _delegate(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Even with -v, these libraries must not log frames or SQL parameters:
    # passwords, tokens and message bodies would reach the log.
    for noisy in ("websockets", "aiosqlite"):
        logging.getLogger(noisy).setLevel(logging.INFO)
    try:
        if args.cmd == "hub":
            asyncio.run(_run_hub(_hub_config(args)))
        elif args.cmd == "demo":
            from desk import demo

            print(demo.banner(args.port), flush=True)
            return demo.run(port=args.port, rate=args.rate, lang=args.lang, simulate=not args.no_sim)
        elif args.cmd == "user":
            db = Path(args.db) if args.action == "add" else _existing_db(args)
            if args.action == "add":
                u = asyncio.run(admin.add_user(db, args.id, args.name, _password(args), args.role,
                                               _groups(args.groups), args.max))
                print(f"added {u.role} {u.id} ({u.name}), groups {','.join(u.groups)}, max {u.max_chats}")
            elif args.action == "list":
                _print_users(asyncio.run(admin.list_users(db)))
            elif args.action in ("disable", "enable"):
                asyncio.run(admin.set_user(db, args.id, disabled=args.action == "disable"))
                print(f"{args.id} {args.action}d")
            elif args.action == "set":
                u = asyncio.run(admin.set_user(db, args.id, name=args.name, password=args.password,
                                               groups=_groups(args.groups), max_chats=args.max))
                print(f"{u.id}: groups {','.join(u.groups)}, max {u.max_chats}")
        elif args.cmd == "phrases":
            return _phrases(args)
        elif args.cmd == "kb":
            return _kb(args)
        elif args.cmd == "report":
            return _report(args)
        elif args.cmd == "audit":
            if args.action == "head":
                entry, digest = asyncio.run(admin.audit_head(_existing_db(args)))
                print(f"{entry}:{digest}")
                return 0
            ok, count, problem = asyncio.run(admin.verify_audit(_existing_db(args), args.anchor))
            print(f"audit log {'intact' if ok else 'BROKEN'}: {count} entries checked"
                  + (f", {len(args.anchor)} anchors" if args.anchor else "") + (f"; {problem}" if problem else ""))
            return 0 if ok else 1
    except admin.AdminError as exc:
        print(f"desk: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
