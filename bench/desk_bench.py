"""The agent desk, measured.

    .venv/bin/python -m bench.desk_bench [--messages 2000] [--json bench/results/desk.json]

1. Start to interactive: from constructing the app to its main screen being
   up with the composer focused (headless; no network: the login is what the
   hub costs).
2. Slot switching with five chats holding N messages each, in a real
   terminal: the desk runs in a pseudo-terminal (120x40, its real driver),
   this process presses F1..F5 on it like a terminal emulator would and
   times each switch from writing the key until the switched chat's newest
   line has come back on the screen's output. The desk's own CPU per switch
   comes from the desk process.
   Before the switches, the desk's CPU while it sits idle with those chats.
3. Loading those histories, the first showing of each chat, and the memory
   they take (headless, tracemalloc).
4. Keystrokes to send a top-20 knowledge-base answer through the phrasebook:
   with the chat's detected topic (F7 then Enter) and by shortcode (/code Tab).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import gc
import itertools
import json
import os
import pty
import struct
import sys
import termios
import time
import tracemalloc
from pathlib import Path
from typing import Any

from desk.agent import make_agent_desk
from desk.agent.config import DeskConfig
from desk.cli import TEXTUAL_FPS
from phrasebook import PhraseIndex, load_team_library
from server import protocol as p

# The topics seed 004/001 and the everyday centre traffic put first.
TOP_TOPICS = [
    "card-lost", "card-swallowed-atm", "transfer-failed", "transfer-not-arrived", "transfer-large-holiday",
    "mobile-login-fail", "mobile-password-reset", "transfer-limits", "cc-repay", "cc-installment",
    "card-abroad-use", "points", "wealth-redeem", "phone-number-change", "account-freeze-self", "complaint",
    "branch-hours", "fees-overview", "card-pin-forgot", "fraud-suspected",
]  # fmt: skip


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def app() -> Any:
    cfg = DeskConfig(path=Path("/nonexistent/desk.toml"), lang="zh", bell=False)
    return make_agent_desk("ws://127.0.0.1:9/", lang="zh", config=cfg, connect=False)


async def start_to_interactive(rounds: int = 5) -> list[float]:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        desk = app()
        async with desk.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            assert desk.query_one("#composer") is not None
            times.append(time.perf_counter() - t0)
    return times


def history(conv: str, n: int, t0: float) -> list[p.Frame]:
    frames: list[p.Frame] = []
    for seq in range(1, n + 1):
        who = "customer" if seq % 2 else "agent"
        # "<conv>#<seq>" starts each line: the terminal measurement looks for it.
        text = (f"{conv}#{seq} 我昨天在手机银行给家人转账五千元显示成功但对方还没收到，麻烦帮我查一下"
                if who == "customer" else f"{conv}#{seq} 好的，正在为您查询，请稍等，预计需要三分钟左右。")  # fmt: skip
        frames.append(p.Msg(conv=conv, seq=seq, kind="text", sender=who, sender_id="customer" if who == "customer" else "a1",
                            text=text, ts=t0 + seq))  # fmt: skip
    return frames


async def load_five_chats(desk: Any, n: int) -> None:
    await desk.feed(p.LoginOk(user="a1", role="agent", name="李娜", token="t", session="s-bench",
                              status="online", max_chats=5))  # fmt: skip
    for i in range(1, 6):
        conv = f"c{i}"
        await desk.feed(p.Assigned(conv=conv, customer=p.CustomerInfo(name=f"客户{i}"), last_seq=n,
                                   handoff=p.HandoffInfo(reason="customer_asked", group="general")))  # fmt: skip
        for frame in history(conv, n, 1795600000.0):
            await desk.feed(frame)
        await desk.feed(p.Synced(conv=conv, last_seq=n))


async def loading(n: int) -> dict[str, float]:
    """Headless: loading five histories, showing each chat the first time, their memory."""
    desk = app()
    tracemalloc.start()
    async with desk.run_test(size=(120, 40)) as pilot:
        base = tracemalloc.get_traced_memory()[0]
        t_load = time.perf_counter()
        await load_five_chats(desk, n)
        await pilot.pause()
        load_s = time.perf_counter() - t_load
        # Show every slot once: each transcript draws its history on first show.
        first_show = []
        for slot in (2, 3, 4, 5, 1):
            t0 = time.perf_counter()
            await pilot.press(f"f{slot}")
            await pilot.pause()
            first_show.append(time.perf_counter() - t0)
        heap = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return {
        "messages_per_chat": n,
        "load_s": load_s,
        "first_show_max_ms": max(first_show) * 1000,
        "heap_mb": heap / 2**20,
    }


# What a terminal sends for F1..F5 (xterm), and ctrl+q.
FKEYS = {1: b"\x1bOP", 2: b"\x1bOQ", 3: b"\x1bOR", 4: b"\x1bOS", 5: b"\x1b[15~"}
QUIT = b"\x11"


async def switching_in_a_terminal(n: int, switches: int = 60, size: tuple[int, int] = (120, 40)) -> dict[str, Any]:
    """Press F-keys on the desk in a pseudo-terminal; time key -> the chat's newest line on screen."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
    report_r, report_w = os.pipe()
    # The desk as `desk agent` starts it (the command sets Textual's frame rate).
    env = {**os.environ, "TERM": "xterm-256color", "COLORTERM": "truecolor", "TEXTUAL_FPS": TEXTUAL_FPS}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.desk_bench", "--terminal-child", str(n), "--report-fd", str(report_w),
        stdin=slave, stdout=slave, stderr=slave, pass_fds=(report_w,), env=env,  # Textual draws on stderr
        start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    os.close(report_w)
    loop = asyncio.get_running_loop()
    screen = bytearray()
    grew = asyncio.Event()

    def on_output() -> None:
        with contextlib.suppress(OSError):
            screen.extend(os.read(master, 1 << 16))
            grew.set()

    loop.add_reader(master, on_output)
    reports = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reports), os.fdopen(report_r, "rb"))

    async def appears(marker: bytes, start: int, timeout: float = 10.0) -> float:
        deadline = time.perf_counter() + timeout
        while marker not in screen[start:]:
            grew.clear()
            await asyncio.wait_for(grew.wait(), max(0.001, deadline - time.perf_counter()))
        return time.perf_counter()

    try:
        ready = json.loads(await asyncio.wait_for(reports.readline(), 120))
        samples: list[float] = []
        active = ready["active"]
        for i in range(switches):
            slot = (active + 1 + i % 3) % 5 + 1  # never the slot already shown
            marker = f"c{slot}#{n} ".encode()
            await asyncio.sleep(0.15)  # a quiet screen before each key
            start = len(screen)
            t0 = time.perf_counter()
            os.write(master, FKEYS[slot])
            samples.append(await appears(marker, start) - t0)
            active = slot
        os.write(master, QUIT)  # chats are open: the desk asks, and a second ctrl+q quits
        await asyncio.sleep(0.3)
        os.write(master, QUIT)
        child = json.loads(await asyncio.wait_for(reports.readline(), 30))
    finally:
        loop.remove_reader(master)
        transport.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        os.close(master)
    cpu = child["switch_cpu_ms"]
    return {
        "messages_per_chat": n,
        "terminal": f"{size[0]}x{size[1]}",
        "switches": len(samples),
        "switch_p50_ms": pct(samples, 0.5) * 1000,
        "switch_p99_ms": pct(samples, 0.99) * 1000,
        "switch_max_ms": max(samples) * 1000,
        "samples_ms": sorted(round(x * 1000, 1) for x in samples),
        "gc_pauses_ms": child["gc_pauses_ms"],
        "desk_cpu_per_switch_p50_ms": pct(cpu, 0.5),
        "desk_cpu_per_switch_p99_ms": pct(cpu, 0.99),
        "desk_idle_cpu_pct": child["idle_cpu_pct"],
    }


async def terminal_child(n: int, report_fd: int) -> None:
    """The desk side of `switching_in_a_terminal`: a real app on this terminal."""
    desk = app()
    report = os.fdopen(report_fd, "w", buffering=1)
    cpu_marks: list[float] = []
    action_slot = desk.action_slot

    def timed_slot(k: int) -> None:  # the CPU from this key to the next one
        cpu_marks.append(time.process_time())
        action_slot(k)

    desk.action_slot = timed_slot  # type: ignore[method-assign]
    gc_pauses: list[float] = []  # full collections while switching: the usual cause of a slow one
    gc_started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
        elif info.get("generation") == 2 and cpu_marks:
            gc_pauses.append(round((time.perf_counter() - gc_started[0]) * 1000, 1))

    gc.callbacks.append(on_gc)
    idle = [0.0]

    async def setup() -> None:
        while not desk.is_running or not desk.query("#composer"):  # noqa: ASYNC110 - no hook to await
            await asyncio.sleep(0.05)
        await load_five_chats(desk, n)
        for slot in (2, 3, 4, 5, 1):  # each chat shown once: its first wrapping is not a switch
            desk.action_slot(slot)
            await asyncio.sleep(0.3)
        # Sitting idle with five chats open (the clock and wait timers tick): what it costs.
        await asyncio.sleep(1.0)
        c0, w0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(3.0)
        idle[0] = (time.process_time() - c0) / (time.perf_counter() - w0) * 100
        cpu_marks.clear()
        report.write(json.dumps({"active": desk.model.active}) + "\n")

    task = asyncio.get_running_loop().create_task(setup())
    await desk.run_async()
    task.cancel()
    # CPU from one key to the next includes the idle ticks between them (the
    # clock, the wait timers): the cost of a switch is what rises above that.
    spans = [(b - a) * 1000 for a, b in itertools.pairwise(cpu_marks)]
    report.write(json.dumps({"switch_cpu_ms": spans, "gc_pauses_ms": gc_pauses, "idle_cpu_pct": idle[0]}) + "\n")


async def keystrokes() -> dict[str, Any]:
    """Count keys until the topic's answer is in the composer, both ways."""
    library = load_team_library()
    index = PhraseIndex(library, agent_id="a1")
    rows = []
    desk = app()
    async with desk.run_test(size=(120, 40)) as pilot:
        await desk.feed(p.LoginOk(user="a1", role="agent", name="李娜", token="t", session="s", status="online",
                                  max_chats=5))  # fmt: skip
        await desk.feed(p.Phrases(phrases=library))
        for n, topic in enumerate(TOP_TOPICS):
            phrases = index.for_topic(topic, "zh")
            if not phrases:
                rows.append({"topic": topic, "suggested": None, "shortcode": None})
                continue
            conv = f"k-{n}"
            await desk.feed(p.Assigned(conv=conv, customer=p.CustomerInfo(name="王先生"), last_seq=0,
                                       handoff=p.HandoffInfo(reason="customer_asked", intents=[topic])))  # fmt: skip
            await pilot.press(f"f{desk.model.by_conv[conv].slot}")
            await pilot.press("f7", "enter")  # 2 keys with the topic known
            await pilot.pause()
            got = desk.query_one("#composer").text  # type: ignore[attr-defined]
            target = phrases[0]
            suggested_ok = bool(got.strip()) and target.text.split("{")[0][:6] in got
            shortcode_keys = 1 + len(min((ph.code for ph in phrases), key=len)) + 1  # "/" code Tab
            rows.append({"topic": topic, "suggested": 2 if suggested_ok else None, "shortcode": shortcode_keys})
            await desk.feed(p.Unassigned(conv=conv, reason="agent_closed"))
            await pilot.pause()
    best = [min(k for k in (r["suggested"], r["shortcode"]) if k) for r in rows if r["suggested"] or r["shortcode"]]
    return {
        "topics": len(TOP_TOPICS),
        "covered": len(best),
        "max_keys": max(best) if best else None,
        "mean_keys": sum(best) / len(best) if best else None,
        "shortcode_max_keys": max((r["shortcode"] for r in rows if r["shortcode"]), default=None),
        "rows": rows,
    }


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--json", default="bench/results/desk.json")
    ap.add_argument("--terminal-child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--report-fd", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.terminal_child:
        await terminal_child(args.terminal_child, args.report_fd)
        return
    results: dict[str, Any] = {}
    start = await start_to_interactive()
    results["start_to_interactive_ms"] = {"p50": pct(start, 0.5) * 1000, "max": max(start) * 1000}
    print(f"start to interactive: p50 {results['start_to_interactive_ms']['p50']:.0f} ms, "
          f"max {results['start_to_interactive_ms']['max']:.0f} ms")  # fmt: skip
    ld = await loading(args.messages)
    results["loading"] = ld
    print(f"five chats x {args.messages} messages: loaded in {ld['load_s']:.2f} s; first show of a chat "
          f"at most {ld['first_show_max_ms']:.0f} ms; heap {ld['heap_mb']:.1f} MB")  # fmt: skip
    for size in ((120, 40), (80, 24), (200, 60)):
        sw = await switching_in_a_terminal(args.messages, size=size)
        results.setdefault("switching", []).append(sw)
        print(f"switch in a {sw['terminal']} terminal (F-key written -> the chat's newest line back on the "
              f"screen): p50 {sw['switch_p50_ms']:.1f} ms, p99 {sw['switch_p99_ms']:.1f} ms, "
              f"max {sw['switch_max_ms']:.1f} ms; desk CPU per switch p50 "
              f"{sw['desk_cpu_per_switch_p50_ms']:.1f} ms; idle with five chats open: "
              f"{sw['desk_idle_cpu_pct']:.1f} % of a core")  # fmt: skip
    keys = await keystrokes()
    results["keystrokes"] = keys
    print(f"top-20 KB answers via the phrasebook: {keys['covered']}/{keys['topics']} covered, "
          f"at most {keys['max_keys']} keys (F7 Enter with the chat's topic), "
          f"shortcode path at most {keys['shortcode_max_keys']} keys")  # fmt: skip
    save(Path(args.json), results)
    print(f"wrote {args.json}")


def save(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    asyncio.run(main())
