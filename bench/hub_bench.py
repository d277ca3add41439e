"""The hub against a bare websockets relay, in one run, in separate processes.

    .venv/bin/python -m bench.hub_bench [--quick] [--json bench/results/hub.json]

Phases (each starts fresh server processes; this process is the load):
1. throughput: the same pairs and payloads through the relay and through the
   hub (durable acks, synchronous=FULL; a hub sender keeps at most `window`
   messages unacked, a relay sender `window` undelivered); messages/s
   delivered, delivery latencies, and the hub's ack latencies.
2. latency at the same offered load (a fixed rate both can carry): delivery
   p50/p99 (sender to the other side; the hub shows a message once written),
   the hub's ack p50/p99 (sender to its durable ack); and a bare fdatasync
   loop at that rate: the floor under a durable ack.
3. dispatch: an agent closes a chat; time until the next waiting chat is
   offered to it (client-measured, includes the group commit), p50/p99.
4. memory: RSS per idle customer connection at N connected customers
   (each said hello and waits in the queue), hub and relay.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from server import admin

ROOT = Path(__file__).resolve().parent.parent
PAYLOAD = "您好，我昨天下午通过手机银行给我妈转了五千块钱，显示成功但是她到现在还没收到，麻烦帮忙查一下"


def connect(url: str, **kw: Any) -> Any:
    """Clients like the servers: no per-message deflate (same for hub and relay)."""
    return ws_connect(url, compression=None, **kw)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


@contextlib.asynccontextmanager
async def process(*args: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
    url = re.search(r"ws://[\d.]+:\d+/", line)
    assert url, line
    try:
        yield proc, url.group(0)
    finally:
        proc.terminate()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.wait(), 20)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def hub_args(db: Path, sync: str = "full") -> list[str]:
    return ["-m", "desk.cli", "hub", "--port", "0", "--db", str(db), "--idle", "3600", "--rate", "10000",
            "--no-bot", "--sync", sync]  # fmt: skip


class Pairs:
    """Senders and receivers, with per-message send times and latencies.

    A sender's window (closed loop) opens again when its message is delivered
    (the relay, which has no acks) or acked (the hub: a client keeps at most
    `window` messages unacked, and an ack means durable)."""

    def __init__(self, gate: str = "delivery") -> None:
        self.gate = gate
        self.sent_at: dict[str, float] = {}
        self.ack_sent_at: dict[str, float] = {}
        self.latencies: list[float] = []
        self.ack_latencies: list[float] = []
        self.delivered = 0
        self.acked = 0
        self.window: dict[int, asyncio.Semaphore] = {}
        self.recording = False

    def sent(self, msg_id: str) -> None:
        self.sent_at[msg_id] = time.perf_counter()
        if self.gate == "ack":
            self.ack_sent_at[msg_id] = self.sent_at[msg_id]

    def on_delivery(self, msg_id: str) -> None:
        t0 = self.sent_at.pop(msg_id, None)
        if t0 is None:
            return
        if self.gate == "delivery":
            self.window[int(msg_id.split("-", 2)[1])].release()
        if self.recording:
            self.delivered += 1
            self.latencies.append(time.perf_counter() - t0)

    def on_ack(self, msg_id: str) -> None:
        t0 = self.ack_sent_at.pop(msg_id, None)
        if t0 is None:
            return
        self.window[int(msg_id.split("-", 2)[1])].release()
        if self.recording:
            self.acked += 1
            self.ack_latencies.append(time.perf_counter() - t0)


async def reader(ws: ClientConnection, pairs: Pairs, want: str) -> None:
    """Feed deliveries (frames of type `want` with a msg_id) to `pairs`."""
    with contextlib.suppress(Exception):
        async for raw in ws:
            frame = json.loads(raw)
            if frame.get("type") == want and "msg_id" in frame:
                pairs.on_delivery(frame["msg_id"])


async def drain(ws: ClientConnection) -> None:
    with contextlib.suppress(Exception):
        async for _ in ws:
            pass


async def acks(ws: ClientConnection, pairs: Pairs) -> None:
    """A hub customer: its acks."""
    with contextlib.suppress(Exception):
        async for raw in ws:
            frame = json.loads(raw)
            if frame.get("type") == "ack":
                pairs.on_ack(frame["msg_id"])


async def sender(ws: ClientConnection, conv: str, index: int, pairs: Pairs, window: int,
                 rate: float | None, stop: asyncio.Event) -> None:  # fmt: skip
    pairs.window[index] = asyncio.Semaphore(window)
    counter = itertools.count()
    next_at = time.perf_counter()
    while not stop.is_set():
        if rate is not None:
            next_at += 1.0 / rate
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await pairs.window[index].acquire()
        msg_id = f"m-{index}-{next(counter)}"
        pairs.sent(msg_id)
        await ws.send(json.dumps({"type": "send", "conv": conv, "msg_id": msg_id, "text": PAYLOAD},
                                 ensure_ascii=False))


async def paced(senders: list[tuple[ClientConnection, str]], pairs: Pairs, rate: float,
                stop: asyncio.Event) -> None:  # fmt: skip
    """Open loop: one clock sends `rate` messages/s round-robin over the senders,
    so the offered load does not depend on how fast answers come back."""
    counter = itertools.count()
    for i in range(len(senders)):
        pairs.window[i] = asyncio.Semaphore(1 << 30)
    start = time.perf_counter()
    while not stop.is_set():
        due = int((time.perf_counter() - start) * rate)
        n = next(counter)
        if n >= due:
            await asyncio.sleep((n + 1 - due) / rate)
        i = n % len(senders)
        ws, conv = senders[i]
        msg_id = f"m-{i}-{n}"
        pairs.sent(msg_id)
        await ws.send(json.dumps({"type": "send", "conv": conv, "msg_id": msg_id, "text": PAYLOAD},
                                 ensure_ascii=False))


def _cpu(proc: psutil.Process, children: bool = True) -> float:
    """User + system seconds of a process and its helpers (the hub's WAL sync process)."""
    total = 0.0
    for p in [proc, *(proc.children() if children else [])]:
        with contextlib.suppress(psutil.Error):
            total += sum(p.cpu_times()[:2])
    return total


async def run_load(senders: list[tuple[ClientConnection, str]], pairs: Pairs, seconds: float,
                   window: int, rate: float | None, server_pid: int) -> dict[str, float]:  # fmt: skip
    """Drive the load; also the CPU the server and this process (the load) used meanwhile."""
    server, me = psutil.Process(server_pid), psutil.Process()
    stop = asyncio.Event()
    if rate is None:
        tasks = [asyncio.create_task(sender(ws, conv, i, pairs, window, None, stop))
                 for i, (ws, conv) in enumerate(senders)]  # fmt: skip
    else:
        tasks = [asyncio.create_task(paced(senders, pairs, rate, stop))]
    await asyncio.sleep(1.0)  # warm-up
    pairs.recording = True
    t0 = time.perf_counter()
    cpu1 = _cpu(server), _cpu(me, children=False)
    await asyncio.sleep(seconds)
    pairs.recording = False
    elapsed = time.perf_counter() - t0
    cpu2 = _cpu(server), _cpu(me, children=False)
    stop.set()
    for s in pairs.window.values():  # unblock senders waiting on the window
        for _ in range(max(window, 1)):
            s.release()
    await asyncio.gather(*tasks, return_exceptions=True)
    lat, ack = pairs.latencies, pairs.ack_latencies
    acks = {} if pairs.gate != "ack" else {  # the hub: the sender's ack (durable), from the same send
        "acks_per_s": pairs.acked / elapsed,
        "ack_p50_ms": pct(ack, 0.50) * 1000,
        "ack_p99_ms": pct(ack, 0.99) * 1000,
    }
    return {
        "msgs_per_s": pairs.delivered / elapsed,
        "p50_ms": pct(lat, 0.50) * 1000,
        "p99_ms": pct(lat, 0.99) * 1000,
        "delivered": pairs.delivered,
        **acks,
        # share of one core over the measured seconds: is the server or the load the limit?
        "server_cpu": (cpu2[0] - cpu1[0]) / elapsed,
        "load_cpu": (cpu2[1] - cpu1[1]) / elapsed,
    }


async def relay_phase(n: int, seconds: float, window: int, rate: float | None) -> dict[str, float]:
    async with process(str(ROOT / "bench" / "relay.py"), "0") as (proc, url):
        pairs = Pairs()
        conns = []
        readers = []
        for i in range(n):
            a = await connect(f"{url}room/{i}")
            b = await connect(f"{url}room/{i}")
            conns += [a, b]
            readers.append(asyncio.create_task(reader(b, pairs, "send")))
        result = await run_load([(conns[2 * i], f"room{i}") for i in range(n)], pairs, seconds, window, rate,
                                proc.pid)  # fmt: skip
        for c in conns:
            await c.close()
        for r in readers:
            r.cancel()
        return result


async def hub_setup(db: Path, agents: int) -> None:
    for i in range(agents):
        await admin.add_user(db, f"b{i}", f"坐席{i}", "bench-pw", max_chats=5)


async def hub_phase(db: Path, n: int, seconds: float, window: int, rate: float | None,
                    sync: str = "full") -> dict[str, float]:  # fmt: skip
    agents = (n + 4) // 5
    async with process(*hub_args(db, sync)) as (proc, url):
        pairs = Pairs(gate="ack")
        agent_ws = []
        for i in range(agents):
            ws = await connect(url)
            await ws.send(json.dumps({"type": "login", "user": f"b{i}", "password": "bench-pw"}))
            while json.loads(await ws.recv())["type"] != "login_ok":
                pass
            await ws.send(json.dumps({"type": "set_status", "status": "online"}))
            agent_ws.append(ws)
        readers = [asyncio.create_task(reader(ws, pairs, "msg")) for ws in agent_ws]
        customers = []
        for i in range(n):
            ws = await connect(url)
            await ws.send(json.dumps({"type": "hello", "name": f"客户{i}"}, ensure_ascii=False))
            conv = ""
            while True:
                f = json.loads(await ws.recv())
                if f["type"] == "welcome":
                    conv = f["conv"]
                if f["type"] == "state" and f["state"] == "assigned":
                    break
            customers.append((ws, conv))
        drains = [asyncio.create_task(acks(ws, pairs)) for ws, _ in customers]
        result = await run_load(customers, pairs, seconds, window, rate, proc.pid)
        for ws, _ in customers:
            await ws.close()
        for ws in agent_ws:
            await ws.close()
        for t in readers + drains:
            t.cancel()
        return result


async def dispatch_phase(db: Path, waiting: int) -> dict[str, float]:
    """One agent with five chats and `waiting` customers queued: close, time the next offer."""
    await admin.add_user(db, "d0", "派单", "bench-pw", max_chats=5)
    async with process(*hub_args(db)) as (_, url):
        customers = []
        for i in range(waiting + 5):
            ws = await connect(url)
            await ws.send(json.dumps({"type": "hello", "name": f"排队{i}"}, ensure_ascii=False))
            customers.append(ws)
        drains = [asyncio.create_task(drain(ws)) for ws in customers]
        ag = await connect(url)
        await ag.send(json.dumps({"type": "login", "user": "d0", "password": "bench-pw"}))
        await ag.send(json.dumps({"type": "set_status", "status": "online"}))
        held: list[str] = []
        while len(held) < 5:
            f = json.loads(await ag.recv())
            if f["type"] == "assigned":
                held.append(f["conv"])
        samples: list[float] = []
        for _ in range(waiting):
            conv = held.pop(0)
            t0 = time.perf_counter()
            await ag.send(json.dumps({"type": "close", "conv": conv}))
            while True:
                f = json.loads(await ag.recv())
                if f["type"] == "assigned":
                    samples.append(time.perf_counter() - t0)
                    held.append(f["conv"])
                    break
        for t in drains:
            t.cancel()
        return {"p50_ms": pct(samples, 0.5) * 1000, "p99_ms": pct(samples, 0.99) * 1000,
                "samples": len(samples)}  # fmt: skip


def router_dispatch(agents: int, waiting: int) -> dict[str, float]:
    """The routing core alone: a close with `agents` agents and `waiting` queued."""
    from server.routing import NORMAL, Router

    r = Router()
    for i in range(agents):
        r.upsert_agent(f"a{i}", ["general"], 5, now=0)
        r.connect(f"a{i}", 0)
        r.set_status(f"a{i}", "online", 0)
    for i in range(agents * 5 + waiting):
        r.enqueue(f"c{i}", "general", NORMAL, now=i)
    samples = []
    for i in range(2000):
        agent = r.agents[f"a{i % agents}"]
        conv = next(iter(agent.chats))
        t0 = time.perf_counter()
        r.close(conv, now=10_000 + i)
        samples.append(time.perf_counter() - t0)
        r.enqueue(f"x{i}", "general", NORMAL, now=20_000 + i)
    return {"p50_ms": pct(samples, 0.5) * 1000, "p99_ms": pct(samples, 0.99) * 1000}


async def memory_phase(db: Path, n: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for label, args, hello in (
        ("relay", [str(ROOT / "bench" / "relay.py"), "0"], False),
        ("hub", hub_args(db), True),
    ):
        async with process(*args) as (proc, url):
            ps = psutil.Process(proc.pid)
            await asyncio.sleep(0.5)
            before = ps.memory_info().rss
            conns: list[ClientConnection] = []
            for start in range(0, n, 500):
                batch = await asyncio.gather(*[
                    connect(url if hello else f"{url}room/{i}", ping_interval=None)
                    for i in range(start, min(n, start + 500))
                ])  # fmt: skip
                if hello:
                    for i, ws in enumerate(batch):
                        await ws.send(json.dumps({"type": "hello", "name": f"客户{start + i}"}, ensure_ascii=False))
                    for ws in batch:
                        while json.loads(await ws.recv())["type"] != "welcome":
                            pass
                conns += batch
            drains = [asyncio.create_task(drain(ws)) for ws in conns]
            await asyncio.sleep(2.0)
            after = ps.memory_info().rss
            out[f"{label}_rss_before_mb"] = before / 2**20
            out[f"{label}_rss_after_mb"] = after / 2**20
            out[f"{label}_kib_per_conn"] = (after - before) / n / 1024
            for t in drains:
                t.cancel()
            await asyncio.gather(*[ws.close() for ws in conns[:2000]], return_exceptions=True)
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "hub.json"))
    args = ap.parse_args()
    n_pairs = 20 if args.quick else 100
    seconds = 3.0 if args.quick else 8.0
    idle = 1000 if args.quick else 10_000
    tmp = Path(tempfile.mkdtemp(prefix="hubbench-"))
    results: dict[str, Any] = {"pairs": n_pairs, "seconds": seconds, "payload_chars": len(PAYLOAD)}

    window = 8
    print(f"throughput, {n_pairs} conversations, {window} in flight per sender, {seconds:g}s")
    relay = await relay_phase(n_pairs, seconds, window, None)
    await hub_setup(tmp / "t.db", (n_pairs + 4) // 5)
    hub = await hub_phase(tmp / "t.db", n_pairs, seconds, window, None)
    results["throughput"] = {"relay": relay, "hub": hub, "ratio": hub["msgs_per_s"] / relay["msgs_per_s"]}
    for name, r in (("relay", relay), ("hub", hub)):
        print(f"  {name:5s} {r['msgs_per_s']:8.0f} msg/s  p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms"
              f"  (cpu: server {r['server_cpu']:.0%}, load {r['load_cpu']:.0%} of a core)")
    print(f"  hub acks (durable): {hub['acks_per_s']:.0f}/s  p50 {hub['ack_p50_ms']:.2f} ms"
          f"  p99 {hub['ack_p99_ms']:.2f} ms (each sender keeps at most {window} unacked)")
    print(f"  hub/relay throughput {results['throughput']['ratio']:.2f}")

    # Latency at the same offered load, for several loads: 500 msg/s is about the
    # busiest hour of a 2,000-agent centre (seed 002: 400,000 contacts a day),
    # the last is a quarter of the slower server's maximum. Each point is run
    # `reps` times, interleaved, and the medians are reported: a p99 from one
    # short run on a shared 2-core machine moves by tens of percent.
    quarter = round(0.25 * min(relay["msgs_per_s"], hub["msgs_per_s"]), -2)
    loads = [500.0, quarter] if args.quick else [500.0, 1000.0, 2000.0, quarter]
    reps = 1 if args.quick else 3
    lat_seconds = 3.0 if args.quick else 5.0
    results["latency"] = []
    print(f"delivery latency at the same offered load (open loop, median of {reps} runs of {lat_seconds:g}s):"
          " relay vs hub with FULL (shown once written, acked after the WAL's fdatasync) and NORMAL"
          " (acked after the write: durable against a crash of the hub, not a power cut)")
    for i, offered in enumerate(loads):
        runs: dict[str, list[dict[str, float]]] = {"relay": [], "hub_full": [], "hub_normal": []}
        for rep in range(reps):
            runs["relay"].append(await relay_phase(n_pairs, lat_seconds, 0, offered))
            for sync in ("full", "normal"):
                db = tmp / f"l{i}-{rep}-{sync}.db"
                await hub_setup(db, (n_pairs + 4) // 5)
                runs[f"hub_{sync}"].append(await hub_phase(db, n_pairs, lat_seconds, 0, offered, sync))
        point: dict[str, Any] = {"offered_msgs_per_s": offered, "runs": runs}
        for name, rs in runs.items():
            point[name] = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        for sync in ("full", "normal"):
            point[f"p99_ratio_{sync}"] = point[f"hub_{sync}"]["p99_ms"] / point["relay"]["p99_ms"]
        # The floor under FULL: the disk's own flush, measured bare in the same
        # directory at the same rate (one commit per message at these loads).
        point["fdatasync"] = disk_floor(tmp, offered, 600 if args.quick else 1500)
        point["fdatasync_p99_over_relay_p99"] = point["fdatasync"]["p99_ms"] / point["relay"]["p99_ms"]
        results["latency"].append(point)
        r, f, n = point["relay"], point["hub_full"], point["hub_normal"]
        print(f"  {offered:6.0f} msg/s  relay p50 {r['p50_ms']:.2f} p99 {r['p99_ms']:.2f} ms | "
              f"hub FULL p50 {f['p50_ms']:.2f} p99 {f['p99_ms']:.2f} ms (x{point['p99_ratio_full']:.2f}) | "
              f"NORMAL p50 {n['p50_ms']:.2f} p99 {n['p99_ms']:.2f} ms (x{point['p99_ratio_normal']:.2f})"
              f"  [hub cpu {f['server_cpu']:.0%} / {n['server_cpu']:.0%}]", flush=True)
        print(f"         the sender's ack: FULL p50 {f['ack_p50_ms']:.2f} p99 {f['ack_p99_ms']:.2f} ms | "
              f"NORMAL p50 {n['ack_p50_ms']:.2f} p99 {n['ack_p99_ms']:.2f} ms", flush=True)
        d = point["fdatasync"]
        print(f"         the disk alone at that rate: fdatasync p50 {d['p50_ms']:.2f} p99 {d['p99_ms']:.2f} ms"
              f" (x{point['fdatasync_p99_over_relay_p99']:.2f} the relay's p99)", flush=True)

    waiting = 100 if args.quick else 300
    d = await dispatch_phase(tmp / "d.db", waiting)
    core = router_dispatch(2000, 1000)
    results["dispatch"] = {"end_to_end": d, "router_2000_agents": core}
    print(f"dispatch after a slot frees (close -> next assigned, client side): p50 {d['p50_ms']:.2f} ms  p99 {d['p99_ms']:.2f} ms")
    print(f"  routing core alone, 2000 agents, 1000 waiting: p50 {core['p50_ms']:.3f} ms  p99 {core['p99_ms']:.3f} ms")

    mem = await memory_phase(tmp / "m.db", idle)
    results["memory"] = {"connections": idle, **mem}
    print(f"memory per idle connection at {idle}: hub {mem['hub_kib_per_conn']:.1f} KiB, relay {mem['relay_kib_per_conn']:.1f} KiB")

    results["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    save(Path(args.json), results)
    print(f"wrote {args.json}")


def disk_floor(tmp: Path, rate: float, n: int) -> dict[str, float]:
    """fdatasync of a 4 KiB overwrite in a preallocated file (what syncing a WAL
    that SQLite reuses costs at least), ``rate`` syncs a second (0: back to back).
    On this machine's virtual disk a sync costs more the rarer syncs are (1 ms
    p50 at 500/s, 0.05 ms back to back): the I/O path idles between them."""
    path = tmp / "fdatasync.bin"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        size = 4096 * 256
        os.write(fd, b"\0" * size)
        os.fsync(fd)
        took = []
        start = time.perf_counter()
        for i in range(n):
            if rate:  # paced on a clock, like the load: a slow sync does not lower the rate
                time.sleep(max(0.0, start + i / rate - time.perf_counter()))
            os.pwrite(fd, os.urandom(4096), (i * 4096) % size)
            t = time.perf_counter()
            os.fdatasync(fd)
            took.append((time.perf_counter() - t) * 1000)
    finally:
        os.close(fd)
        path.unlink()
    return {"p50_ms": pct(took, 0.5), "p99_ms": pct(took, 0.99), "syncs": n}


def save(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    asyncio.run(main())
