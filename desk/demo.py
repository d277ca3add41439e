"""`make demo`: a hub on an embedded SQLite file, simulated customers, and the
agent desk logged in as a demo agent. Quitting the desk stops everything.

The hub and the simulator run as child processes (their logs go to .demo/),
so the desk in the foreground is exactly the one an agent would run, and other
terminals can join the same demo: a customer (`desk customer`), the
supervisor monitor, more agents (`desk agent --user a2`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from server import admin

DEMO_DIR = Path(".demo")
DEMO_PASSWORD = "demo1234"
ALL_GROUPS = ["general", "cards", "payments", "digital", "accounts", "credit_card", "wealth", "loans",
              "security", "complaints"]  # fmt: skip
DEMO_STAFF = [
    ("a1", "李娜", "agent", ALL_GROUPS),
    ("a2", "王强", "agent", ["general", "credit_card", "accounts", "security", "complaints"]),
    ("a3", "陈静", "agent", ["general", "wealth", "loans", "cards", "payments"]),
    ("sup", "值班主管", "supervisor", []),
]


async def prepare(db: Path) -> None:
    """Demo accounts and the team phrasebook, once."""
    from phrasebook import team_library_path

    known = {u.id for u in await admin.list_users(db)}
    for user_id, name, role, groups in DEMO_STAFF:
        if user_id not in known:
            await admin.add_user(db, user_id, name, DEMO_PASSWORD, role=role, groups=groups or None)
    phrases, _ = await admin.list_phrases(db)
    if not phrases:
        await admin.import_phrases(db, team_library_path())


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "desk.cli", *args],
        stdout=subprocess.PIPE, stderr=log.open("ab"), env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


def _wait_url(proc: subprocess.Popen[bytes], what: str, timeout: float = 30.0) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        if not line:
            break
        found = re.search(r"ws://[\d.]+:\d+/", line)
        if found:
            return found.group(0)
    raise RuntimeError(f"the {what} did not start; see {DEMO_DIR}/hub.log")


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)  # the hub drains its writes on SIGTERM
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run(port: int = 8765, rate: float = 6.0, lang: str | None = None, simulate: bool = True) -> int:
    """Run the whole demo in the foreground; returns the exit code."""
    DEMO_DIR.mkdir(exist_ok=True)
    db = DEMO_DIR / "desk.db"
    asyncio.run(prepare(db))
    hub = sim = None
    try:
        hub = _spawn(["hub", "--port", str(port), "--db", str(db)], DEMO_DIR / "hub.log")
        url = _wait_url(hub, "hub")
        if simulate:
            # A gentle pace: the desk fills within a minute or two and stays busy.
            sim = _spawn(["simulate", "--url", url, "--pattern", "steady", "--rate", str(rate),
                          "--speed", "1.0", "--duration", "0", "--end-on-stop"],
                         DEMO_DIR / "simulator.log")  # fmt: skip
        from desk.agent import make_agent_desk
        from desk.agent.config import DeskConfig

        config = DeskConfig(path=DEMO_DIR / "desk.toml", lang=lang)
        make_agent_desk(url, user="a1", password=DEMO_PASSWORD, lang=lang, config=config, go_online=True).run()
    finally:
        _stop(sim)
        _stop(hub)
    print(f"Demo stopped. Its database is {db}; logs in {DEMO_DIR}/.")
    return 0


def banner(port: int) -> str:
    return (
        f"Demo hub ws://127.0.0.1:{port}/ · accounts a1 a2 a3 (agents), sup (supervisor), "
        f"password {DEMO_PASSWORD}\n"
        f"In other terminals: .venv/bin/desk customer --url ws://127.0.0.1:{port}/ --name 张阿姨 --flags elderly\n"
        f"                    .venv/bin/desk agent --url ws://127.0.0.1:{port}/ --user a2 --password {DEMO_PASSWORD}\n"
    )


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(run())
