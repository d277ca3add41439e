"""What five supervisors watching 2,000 agents cost the hub.

    .venv/bin/python -m bench.board_bench [--agents 2000] [--seconds 20] [--json bench/results/board.json]

One hub process, 2,000 agents logged in (token logins, so password hashing
does not dominate), a steady load of customers chatting with them. The hub's
CPU is measured over the same window twice: with no supervisor, then with five
supervisors receiving the board. The difference is what the board costs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from server.auth import hash_password, token_hash
from server.store import SQLiteStore, UserRecord

from .hub_bench import PAYLOAD, connect, process, save

GROUPS = ["general", "cards", "payments", "digital", "credit_card"]


async def seed(db: Path, agents: int) -> dict[str, str]:
    """Agents and a supervisor, with login tokens written straight to the store."""
    store = SQLiteStore(db)
    await store.open()
    pw = hash_password("bench-pw")
    tokens: dict[str, str] = {}
    now = time.time()
    for i in range(agents):
        uid = f"b{i}"
        store.put_user(UserRecord(id=uid, role="agent", name=f"坐席{i}", pw_hash=pw,
                                  groups=["general", GROUPS[i % len(GROUPS)]], created_at=now))  # fmt: skip
        tokens[uid] = secrets.token_urlsafe(16)
        store.add_token(token_hash(tokens[uid]), uid, f"s-{i}", now)
    for i in range(5):
        uid = f"sup{i}"
        store.put_user(UserRecord(id=uid, role="supervisor", name=f"主管{i}", pw_hash=pw, created_at=now))
        tokens[uid] = secrets.token_urlsafe(16)
        store.add_token(token_hash(tokens[uid]), uid, f"s-sup{i}", now)
    await store.barrier()
    await store.close()
    return tokens


async def login(url: str, user: str, token: str, online: bool) -> Any:
    ws = await connect(url, ping_interval=None)
    await ws.send(json.dumps({"type": "login", "user": user, "token": token}))
    while json.loads(await ws.recv())["type"] != "login_ok":
        pass
    if online:
        await ws.send(json.dumps({"type": "set_status", "status": "online"}))
    return ws


async def agent_loop(ws: Any, stop: asyncio.Event) -> None:
    """Answer every customer line; close a chat after a few exchanges."""
    counts: dict[str, int] = {}
    n = 0
    with contextlib.suppress(Exception):
        async for raw in ws:
            f = json.loads(raw)
            if f["type"] == "msg" and f["sender"] == "customer" and not stop.is_set():
                conv = f["conv"]
                counts[conv] = counts.get(conv, 0) + 1
                n += 1
                await ws.send(json.dumps({"type": "send", "conv": conv, "msg_id": f"r{n}", "text": "好的，正在为您查询"},
                                         ensure_ascii=False))  # fmt: skip
                if counts[conv] >= 4:
                    await ws.send(json.dumps({"type": "close", "conv": conv, "wrapup": "resolved"}))


async def customer_loop(url: str, rate: float, stop: asyncio.Event, rng: random.Random) -> None:
    """A customer asks, chats at `rate` lines/s, and leaves when closed."""
    while not stop.is_set():
        ws = await connect(url, ping_interval=None)
        await ws.send(json.dumps({"type": "hello", "name": "王先生"}, ensure_ascii=False))
        conv, closed, n = "", False, 0
        async def read(ws: Any = ws) -> None:
            nonlocal conv, closed
            with contextlib.suppress(Exception):
                async for raw in ws:
                    f = json.loads(raw)
                    if f["type"] == "welcome":
                        conv = f["conv"]
                    elif f["type"] == "state" and f["state"] == "closed":
                        closed = True
        reader = asyncio.create_task(read())
        while not closed and not stop.is_set():
            await asyncio.sleep(rng.expovariate(rate))
            if conv:
                n += 1
                await ws.send(json.dumps({"type": "send", "conv": conv, "msg_id": f"c{n}", "text": PAYLOAD},
                                         ensure_ascii=False))  # fmt: skip
        reader.cancel()
        await ws.close()


async def cpu_over(pid: int, seconds: float) -> float:
    proc = psutil.Process(pid)
    t0 = proc.cpu_times()
    await asyncio.sleep(seconds)
    t1 = proc.cpu_times()
    return (t1.user + t1.system) - (t0.user + t0.system)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=2000)
    ap.add_argument("--customers", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--json", default="bench/results/board.json")
    args = ap.parse_args()
    db = Path(tempfile.mkdtemp(prefix="boardbench-")) / "hub.db"
    tokens = await seed(db, args.agents)
    stop = asyncio.Event()
    rng = random.Random(7)
    async with process("-m", "desk.cli", "hub", "--port", "0", "--db", str(db), "--no-bot", "--idle", "3600",
                       "--rate", "1000") as (proc, url):  # fmt: skip
        agents = []
        for start in range(0, args.agents, 200):
            agents += await asyncio.gather(*[login(url, f"b{i}", tokens[f"b{i}"], True)
                                             for i in range(start, min(args.agents, start + 200))])  # fmt: skip
        loops = [asyncio.create_task(agent_loop(ws, stop)) for ws in agents]
        customers = [asyncio.create_task(customer_loop(url, 0.2, stop, rng)) for _ in range(args.customers)]
        await asyncio.sleep(5)  # warm up: chats assigned, traffic steady
        base = await cpu_over(proc.pid, args.seconds)
        sups = [await login(url, f"sup{i}", tokens[f"sup{i}"], False) for i in range(5)]
        board_bytes = [0]

        async def count(ws: Any) -> None:
            with contextlib.suppress(Exception):
                async for raw in ws:
                    board_bytes[0] += len(raw)

        readers = [asyncio.create_task(count(ws)) for ws in sups]
        await asyncio.sleep(2)
        board_bytes[0] = 0
        watched = await cpu_over(proc.pid, args.seconds)
        bytes_per_s = board_bytes[0] / args.seconds / 5
        stop.set()
        for t in loops + customers + readers:
            t.cancel()
        await asyncio.gather(*[ws.close() for ws in agents + sups], return_exceptions=True)
    results = {
        "agents": args.agents, "customers": args.customers, "seconds": args.seconds,
        "hub_cpu_s_without": round(base, 2), "hub_cpu_s_with_5_supervisors": round(watched, 2),
        "extra_cpu_share_of_one_core": round((watched - base) / args.seconds, 3),
        "board_bytes_per_s_per_supervisor": round(bytes_per_s),
    }  # fmt: skip
    print(f"{args.agents} agents, {args.customers} customers chatting: hub CPU {base:.2f} s over {args.seconds:g} s "
          f"without supervisors, {watched:.2f} s with five; extra {100 * results['extra_cpu_share_of_one_core']:.1f}% "
          f"of one core; board traffic {bytes_per_s / 1024:.1f} KiB/s per supervisor")  # fmt: skip
    save(Path(args.json), results)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    asyncio.run(main())
