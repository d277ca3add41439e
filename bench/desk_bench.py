"""The agent desk, measured headless.

    .venv/bin/python -m bench.desk_bench [--messages 2000] [--json bench/results/desk.json]

1. Start to interactive: from constructing the app to its main screen being
   up with the composer focused (no network: the login is what the hub costs).
2. Slot switching with five chats holding N messages each: the time of one
   switch, from the key to the next screen refresh, p50/p99.
3. Memory of those histories (tracemalloc, Python heap).
4. Keystrokes to send a top-20 knowledge-base answer through the phrasebook:
   with the chat's detected topic (F7 then Enter) and by shortcode (/code Tab).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import tracemalloc
from pathlib import Path
from typing import Any

from desk.agent import make_agent_desk
from desk.agent.config import DeskConfig
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
        text = (f"第{seq}条：我昨天在手机银行给家人转账五千元显示成功但对方还没收到，麻烦帮我查一下"
                if who == "customer" else f"第{seq}条：好的，正在为您查询，请稍等，预计需要三分钟左右。")  # fmt: skip
        frames.append(p.Msg(conv=conv, seq=seq, kind="text", sender=who, sender_id="customer" if who == "customer" else "a1",
                            text=text, ts=t0 + seq))  # fmt: skip
    return frames


async def switching(n: int) -> dict[str, float]:
    desk = app()
    tracemalloc.start()
    async with desk.run_test(size=(120, 40)) as pilot:
        base = tracemalloc.get_traced_memory()[0]
        await desk.feed(p.LoginOk(user="a1", role="agent", name="李娜", token="t", session="s-bench",
                                  status="online", max_chats=5))  # fmt: skip
        t_load = time.perf_counter()
        for i in range(1, 6):
            conv = f"c-{i}"
            await desk.feed(p.Assigned(conv=conv, customer=p.CustomerInfo(name=f"客户{i}"), last_seq=n,
                                       handoff=p.HandoffInfo(reason="customer_asked", group="general")))  # fmt: skip
            for frame in history(conv, n, 1795600000.0):
                await desk.feed(frame)
            await desk.feed(p.Synced(conv=conv, last_seq=n))
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
        samples, cpu = [], []
        for i in range(60):
            slot = i % 5 + 1 if i % 5 + 1 != desk.model.active else (i + 1) % 5 + 1
            t0, c0 = time.perf_counter(), time.process_time()
            await pilot.press(f"f{slot}")
            await pilot.pause()
            samples.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    tracemalloc.stop()
    return {
        "messages_per_chat": n,
        "load_s": load_s,
        "first_show_max_ms": max(first_show) * 1000,
        "switch_p50_ms": pct(samples, 0.5) * 1000,
        "switch_p99_ms": pct(samples, 0.99) * 1000,
        "switch_cpu_p50_ms": pct(cpu, 0.5) * 1000,
        "switch_cpu_p99_ms": pct(cpu, 0.99) * 1000,
        "heap_mb": heap / 2**20,
    }


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
    args = ap.parse_args()
    results: dict[str, Any] = {}
    start = await start_to_interactive()
    results["start_to_interactive_ms"] = {"p50": pct(start, 0.5) * 1000, "max": max(start) * 1000}
    print(f"start to interactive: p50 {results['start_to_interactive_ms']['p50']:.0f} ms, "
          f"max {results['start_to_interactive_ms']['max']:.0f} ms")  # fmt: skip
    sw = await switching(args.messages)
    results["switching"] = sw
    print(f"five chats x {args.messages} messages: loaded in {sw['load_s']:.2f} s; first show of a slot "
          f"at most {sw['first_show_max_ms']:.0f} ms; switch (key to redrawn screen, Pilot) p50 "
          f"{sw['switch_p50_ms']:.1f} ms, p99 {sw['switch_p99_ms']:.1f} ms; CPU per switch p50 "
          f"{sw['switch_cpu_p50_ms']:.1f} ms, p99 {sw['switch_cpu_p99_ms']:.1f} ms; heap {sw['heap_mb']:.1f} MB")  # fmt: skip
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
