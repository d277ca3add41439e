"""The customer simulator: its scenario file, arrival patterns, and runs
against a real hub whose database must agree with the simulator's summary."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from desk.sim import (
    ScenarioError,
    SimConfig,
    SimError,
    Steady,
    Surge,
    arrival_times,
    load_scenarios,
    parse_scenarios,
    simulate,
)
from desk.simulate import add_arguments, config_from_args
from server.bot import DEFAULT_KB_PATH, KnowledgeBot, load_kb
from server.bot.triggers import is_closing, wants_person
from server.botstage import BotContext
from server.net import HubServer, build_hub

from .conftest import hub_config
from .helpers import agent, wait_until

GROUPS = ["general", "cards", "payments", "digital", "accounts", "credit_card", "wealth", "loans",
          "security", "complaints"]  # fmt: skip


def _variants(line: str | list[str]) -> list[str]:
    return [line] if isinstance(line, str) else list(line)


# -- the scenario file ----------------------------------------------------------


def test_the_shipped_scenarios_load_and_cover_the_bank_cases() -> None:
    """The default file validates and holds the cases the seeds and the KB name."""
    scenarios = {s.name: s for s in load_scenarios()}
    assert len(scenarios) >= 14
    for name in ("card-lost", "atm-swallowed", "transfer-not-arrived", "large-transfer-holiday",
                 "elderly-mobile-transfer", "angry-complaint", "two-businesses"):  # fmt: skip
        assert name in scenarios
    assert "elderly" in scenarios["elderly-mobile-transfer"].flags
    assert scenarios["card-lost"].human_after is None and scenarios["card-lost"].expect == "handoff"
    satisfied_by_bot = [
        s for s in scenarios.values() if s.human_after is None and s.expect == "answer"
    ]
    assert len(satisfied_by_bot) >= 4
    assert sum(s.lang == "zh" for s in scenarios.values()) > 0.8 * len(scenarios)
    assert any(
        s.patience_s(random.Random(0)) < 60 for s in scenarios.values()
    )  # some are impatient
    assert any(
        s.rating.dissatisfied > s.rating.satisfied for s in scenarios.values()
    )  # not always kind


def test_the_scenarios_agree_with_the_knowledge_base() -> None:
    """Every opening variant gets what the file expects from the real bot; every
    way of asking for a person is read as one; thanks to the bot read as closing."""
    bot = KnowledgeBot(load_kb())
    for sc in load_scenarios():
        if sc.expect and sc.opening:
            for text in _variants(sc.opening[0]):
                ctx = BotContext(conv_id="c", customer_name="x", lang=sc.lang)
                turn = bot.answer(ctx, text)
                got = "handoff" if turn.handoff else "answer" if turn.intents else "miss"
                assert got == sc.expect, (sc.name, text, got)
        for line in sc.human_lines:
            for text in _variants(line):
                assert wants_person(text), (sc.name, text)
        if sc.human_after is None and sc.expect == "answer":
            for line in sc.thanks:
                for text in _variants(line):
                    assert is_closing(text), (sc.name, text)


GOOD = {"name": "ok", "opening": ["网点几点开门"], "thanks": ["谢谢"], "replies": ["好的"]}


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ({"scenarios": [{**GOOD, "weight": "heavy"}]}, ["scenario 1 (ok)", "$.weight"]),
        ({"scenarios": [{**GOOD, "patiance": 30}]}, ["scenario 1 (ok)", "patiance"]),
        ({"scenarios": [{**GOOD, "human_after": 2}]}, ["human_after is 2", "only 1 opening"]),
        ({"scenarios": [{**GOOD, "rating": {"happy": 1}}]}, ["happy"]),
        ({"scenarios": [{**GOOD, "patience": [300, 30]}]}, ["patience", "min is above max"]),
        ({"scenarios": [GOOD, GOOD]}, ["scenario 2 (ok)", "used twice"]),
        ({"defaults": {"speed": 2}, "scenarios": [GOOD]}, ["defaults", "speed"]),
        ({"scenarios": []}, ["no scenarios"]),
        ({"version": 2, "scenarios": [GOOD]}, ["$.version"]),
    ],
)
def test_a_bad_scenario_file_is_refused_with_a_clear_message(
    doc: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(ScenarioError) as err:
        parse_scenarios(doc, "centre.yaml")
    assert "centre.yaml" in str(err.value)
    for word in words:
        assert word in str(err.value)


def test_an_unreadable_scenario_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("scenarios: [name: x\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"bad\.yaml: not valid YAML"):
        load_scenarios(bad)
    with pytest.raises(ScenarioError, match=r"missing\.yaml: cannot read"):
        load_scenarios(tmp_path / "missing.yaml")


# -- arrivals (plain Python) ---------------------------------------------------------


def test_a_surge_brings_more_arrivals_in_its_peak_window_than_steady_traffic() -> None:
    surge = Surge.over(600.0, base=6.0, peak=60.0)
    lo, hi = surge.peak_window
    surge_times = list(arrival_times(surge, surge.max_rate, random.Random(7), until=600.0))
    steady_times = list(arrival_times(Steady(6.0), 6.0, random.Random(7), until=600.0))
    in_peak = sum(lo <= t < hi for t in surge_times)
    assert in_peak > 3 * sum(lo <= t < hi for t in steady_times)
    assert in_peak > 0.6 * 60.0 * (hi - lo) / 60.0  # near the peak rate (150 expected)
    assert surge(0.0) == 6.0 and surge((lo + hi) / 2) == 60.0 and surge(599.0) < 10.0
    # The same seed gives the same schedule; steady traffic averages its rate.
    assert surge_times == list(arrival_times(surge, surge.max_rate, random.Random(7), until=600.0))
    assert 40 <= len(steady_times) <= 85  # 60 expected


# -- runs against a real hub --------------------------------------------------------


async def _scripted_agent(url: str, user: str, stop: asyncio.Event) -> None:
    """Answer each live customer message; close a chat after two replies."""
    c = await agent(url, user)
    await c.send(type="set_status", status="online")
    live_after: dict[str, int] = {}  # conv -> last seq of the history it came with
    replies: Counter[str] = Counter()
    seen = 0
    try:
        while not stop.is_set():
            for f in c.frames[seen:]:
                seen += 1
                conv = f.get("conv", "")
                if f["type"] == "assigned":
                    live_after[conv] = f["last_seq"]
                elif f["type"] == "unassigned":
                    live_after.pop(conv, None)
                elif (f["type"] == "msg" and f["sender"] == "customer" and conv in live_after
                      and f["seq"] > live_after[conv] and replies[conv] < 2):  # fmt: skip
                    replies[conv] += 1
                    await c.send(type="send", conv=conv, msg_id=f"{user}-{replies[conv]}",
                                 text=f"好的，这边为您处理（{replies[conv]}）")  # fmt: skip
                    if replies[conv] == 2:
                        await c.send(type="close", conv=conv, wrapup="sim-test")
            await asyncio.sleep(0.01)
    finally:
        await c.close()


@pytest.fixture
async def kb_hub(tmp_path: Path) -> Any:
    kb = tmp_path / "kb.yaml"
    shutil.copy(DEFAULT_KB_PATH, kb)
    # The real per-connection limits: the simulator must stay under them.
    cfg = hub_config(tmp_path, kb_path=kb, customer_grace_s=0.2, rate_per_s=20.0, rate_burst=40)
    server = await build_hub(cfg).start()
    try:
        yield server
    finally:
        await server.stop()


async def _all_closed(server: HubServer) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []

    async def poll() -> bool:
        nonlocal rows
        rows = await server.hub.store.query("SELECT state, close_reason, rating FROM conversations")
        return all(r[0] == "closed" for r in rows)

    for _ in range(300):
        if await poll():
            return rows
        await asyncio.sleep(0.02)
    raise AssertionError(f"chats still open in the database: {rows}")


async def test_a_bounded_run_accounts_for_every_chat_and_matches_the_database(
    kb_hub: HubServer, tmp_path: Path
) -> None:
    """Ten customers, the KB bot, two agents who answer twice and close: every
    chat ends up in exactly one outcome, and the hub's records agree."""
    for user, name in (("a1", "李娜"), ("a2", "王强")):
        await kb_hub.hub.add_user(user, name, "pw", groups=GROUPS)
    stop_agents = asyncio.Event()
    agents = [
        asyncio.create_task(_scripted_agent(kb_hub.url, u, stop_agents)) for u in ("a1", "a2")
    ]
    await wait_until(lambda: len(kb_hub.hub.agent_sessions) == 2, what="agents online")
    config = SimConfig(rate=900.0, duration=2.0, max_customers=10, speed=100.0, seed=3, grace=8.0)
    try:
        summary = await simulate(kb_hub.url, config)
    finally:
        stop_agents.set()
        await asyncio.gather(*agents)

    assert summary.started == summary.arrivals == 10 and summary.failed == 0
    assert summary.accounted and summary.still_open == 0
    assert summary.started == summary.bot_contained + summary.answered_by_person + summary.abandoned
    assert summary.bot_contained >= 1 and summary.answered_by_person >= 1
    assert summary.handed_off == summary.answered_by_person + summary.abandoned

    rows = await _all_closed(kb_hub)
    assert len(rows) == summary.started
    assert Counter(r[1] for r in rows) == Counter(summary.closed_by_reason)
    assert Counter(r[2] for r in rows if r[2]) == Counter(
        {k: v for k, v in summary.ratings.items() if v}
    )
    stored = await kb_hub.hub.store.query("SELECT COUNT(*) FROM messages WHERE sender='customer'")
    assert stored[0][0] == summary.messages_sent == summary.messages_acked
    assert summary.ack_ms["p50"] is not None and summary.agent_reply_s["n"]
    assert kb_hub.hub.metrics.rate_limited == 0 and "rate_limited" not in summary.errors

    out = tmp_path / "summary.json"
    summary.write_json(out)
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["started"] == 10 and data["accounted"] is True
    assert "bot-contained" in summary.table() and "still open at stop" in summary.table()


async def test_a_load_run_with_a_stand_in_agent_serves_every_chat(kb_hub: HubServer) -> None:
    """Benchmark mode: no human delays, and the simulator's own agent closes what the bot hands off."""
    await kb_hub.hub.add_user("a1", "李娜", "pw", groups=GROUPS)
    config = SimConfig(load=True, rate=1200.0, duration=1.0, max_customers=8, msg_rate=20.0,
                       seed=5, agents=[("a1", "pw")], grace=8.0)  # fmt: skip
    summary = await simulate(kb_hub.url, config)
    assert summary.started == 8 and summary.accounted and summary.still_open == 0
    assert summary.answered_by_person >= 1 and summary.abandoned == 0  # load mode never walks away
    assert summary.messages_sent == summary.messages_acked > 0
    rows = await _all_closed(kb_hub)
    assert Counter(r[1] for r in rows) == Counter(summary.closed_by_reason)


WAITER = {"name": "waiter", "human_after": 0, "human_lines": ["人工"], "button": 0.0,
          "replies": ["卡号尾号是0128"], "thanks": ["谢谢"], "patience": 0.5}  # fmt: skip


async def test_customers_abandon_when_patience_runs_out_with_no_agents_online(
    tmp_path: Path,
) -> None:
    server = await build_hub(
        hub_config(tmp_path, customer_grace_s=0.2)
    ).start()  # no bot, no agents
    try:
        config = SimConfig(rate=600.0, duration=1.0, max_customers=3, speed=1.0, grace=5.0,
                           scenarios=parse_scenarios({"scenarios": [WAITER]}))  # fmt: skip
        summary = await simulate(server.url, config)
        assert summary.started == 3 and summary.abandoned == 3 and summary.accounted
        assert summary.closed_by_reason == {"abandoned": 3} and summary.rating_requests == 0
        rows = await _all_closed(server)  # the hub closes them once its grace has passed
        assert [r[1] for r in rows] == ["abandoned"] * 3
    finally:
        await server.stop()


async def test_a_stopped_run_reports_the_chats_it_left_open(tmp_path: Path) -> None:
    server = await build_hub(hub_config(tmp_path)).start()
    try:
        patient = {**WAITER, "patience": 600}
        config = SimConfig(rate=600.0, duration=30.0, max_customers=3, speed=1.0,
                           scenarios=parse_scenarios({"scenarios": [patient]}))  # fmt: skip
        stop = asyncio.Event()
        run = asyncio.create_task(simulate(server.url, config, stop=stop))
        await wait_until(lambda: sum(c.rec.state == "queued" for c in server.hub.convs.values()) == 3,
                         what="three customers waiting")  # fmt: skip
        stop.set()
        summary = await asyncio.wait_for(run, 5.0)
        assert summary.started == summary.still_open == 3 and summary.accounted
        assert summary.open_by_state == {"queued": 3} and summary.abandoned == 0
        assert "still open at stop" in summary.table()
    finally:
        await server.stop()


async def test_a_run_stopped_with_end_on_stop_leaves_no_chat_open(tmp_path: Path) -> None:
    """The demo's simulator: stopped mid-chat, its customers end their chats, so
    the next demo on the same database does not start with their chats."""
    server = await build_hub(hub_config(tmp_path)).start()
    try:
        patient = {**WAITER, "patience": 600}
        config = SimConfig(rate=600.0, duration=30.0, max_customers=3, speed=1.0, end_on_stop=True,
                           scenarios=parse_scenarios({"scenarios": [patient]}))  # fmt: skip
        stop = asyncio.Event()
        run = asyncio.create_task(simulate(server.url, config, stop=stop))
        await wait_until(lambda: sum(c.rec.state == "queued" for c in server.hub.convs.values()) == 3,
                         what="three customers waiting")  # fmt: skip
        stop.set()
        await asyncio.wait_for(run, 5.0)
        await wait_until(lambda: not server.hub.convs, what="their chats closed")
        await server.hub.store.barrier()
        rows = await server.hub.store.query("SELECT state, close_reason FROM conversations")
        assert sorted(map(tuple, rows)) == [("closed", "customer_ended")] * 3
    finally:
        await server.stop()


async def test_an_unreachable_hub_is_reported_at_once() -> None:
    with pytest.raises(SimError, match="cannot reach the hub"):
        await simulate("ws://127.0.0.1:9/", SimConfig(duration=1.0, connect_timeout=1.0))


# -- the command line ---------------------------------------------------------------


def test_the_command_line_options_become_a_config(monkeypatch: pytest.MonkeyPatch) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([])
    assert args.url == "ws://127.0.0.1:8765/" and args.pattern == "steady" and args.json is None
    cfg = config_from_args(parser.parse_args(
        ["--pattern", "surge", "--rate", "6", "--peak", "60", "--duration", "120", "--speed", "10",
         "--seed", "9", "--max-customers", "50", "--agent", "a1:pw-1234", "--end-on-stop"]))  # fmt: skip
    assert (cfg.pattern, cfg.rate, cfg.peak, cfg.speed, cfg.seed, cfg.max_customers) == \
        ("surge", 6.0, 60.0, 10.0, 9, 50)  # fmt: skip
    assert cfg.agents == [("a1", "pw-1234")] and isinstance(cfg.rate_curve(), Surge) and cfg.end_on_stop
    assert not config_from_args(parser.parse_args([])).end_on_stop
    assert config_from_args(parser.parse_args(["--load"])).rate > 100  # load mode: many customers
    monkeypatch.delenv("DESK_PASSWORD", raising=False)
    with pytest.raises(SimError, match="USER:PASSWORD"):
        config_from_args(parser.parse_args(["--agent", "a1"]))
    with pytest.raises(SimError, match="needs a duration"):
        config_from_args(parser.parse_args(["--pattern", "surge", "--duration", "0"]))
    with pytest.raises(SystemExit):
        parser.parse_args(["--pattern", "wave"])
