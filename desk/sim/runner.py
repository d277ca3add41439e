"""Bring a stream of simulated customers to a hub and sum up what happened."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from websockets.asyncio.client import connect

from .agent import SimAgent
from .arrivals import Steady, Surge, arrival_times
from .customer import CLOSE_TIMEOUT, ChatRecord, SimCustomer, Timing
from .report import DONE_LABELS, OPEN_LABELS, Summary
from .scenarios import Scenario, choose, load_scenarios

SETTLE_S = 0.25  # seconds for frames already sent to reach customers before they are counted


class SimError(RuntimeError):
    """The run cannot start (bad settings, hub unreachable, an agent cannot log in)."""


@dataclass
class SimConfig:
    """How many customers arrive, when, and how human they are."""

    pattern: Literal["steady", "surge"] = "steady"
    rate: float = 6.0  # arrivals per minute (the base rate of a surge)
    peak: float | None = None  # surge peak per minute; default 5 x rate
    duration: float = 60.0  # seconds of arrivals; 0: until stopped (steady only)
    max_customers: int | None = None
    speed: float = 1.0  # 1: human-like; 10: ten times faster
    seed: int = 1
    load: bool = False  # benchmark: no human delays, fixed message rate
    msg_rate: float = 0.5  # load mode: messages per second per chat
    grace: float | None = None  # seconds open chats may finish after arrivals end
    scenarios: Sequence[Scenario] | None = None  # default: desk/data/scenarios.yaml
    agents: Sequence[tuple[str, str]] = ()  # (user, password): scripted stand-in agents
    connect_timeout: float = 10.0
    # Stopped (Ctrl+C, SIGTERM) mid-chat, customers end their chats rather than
    # leave them open: the demo's next run starts with none left over.
    end_on_stop: bool = False
    progress: Callable[[str], None] | None = None
    progress_every: float = 10.0
    timing: Timing = field(init=False)

    def __post_init__(self) -> None:
        problems = []
        if self.rate <= 0:
            problems.append("rate must be above 0 per minute")
        if self.speed <= 0:
            problems.append("speed must be above 0")
        if self.duration < 0:
            problems.append("duration cannot be negative")
        if self.pattern == "surge" and self.duration <= 0:
            problems.append("a surge needs a duration (its shape is scaled to it)")
        if self.peak is not None and self.peak < self.rate:
            problems.append("peak must be at least the base rate")
        if self.load and self.msg_rate <= 0:
            problems.append("msg_rate must be above 0")
        if self.max_customers is not None and self.max_customers < 0:
            problems.append("max_customers cannot be negative")
        if self.scenarios is not None and not any(s.weight > 0 for s in self.scenarios):
            problems.append("no scenario to draw customers from")
        if problems:
            raise SimError("; ".join(problems))
        self.timing = Timing(speed=self.speed, load=self.load, msg_interval=1.0 / self.msg_rate,
                             connect_timeout=self.connect_timeout)  # fmt: skip

    @property
    def grace_s(self) -> float:
        if self.grace is not None:
            return self.grace
        # Long enough for a chat begun near the end to finish at this speed.
        return 5.0 if self.load else max(5.0, 180.0 / self.speed)

    def rate_curve(self) -> Steady | Surge:
        if self.pattern == "surge":
            return Surge.over(
                self.duration, self.rate, self.peak if self.peak is not None else 5 * self.rate
            )
        return Steady(self.rate)


async def simulate(url: str, config: SimConfig, *, stop: asyncio.Event | None = None) -> Summary:
    """Run customers against the hub at `url` until the arrivals end and open
    chats have had `config.grace_s` to finish, or until `stop` is set.
    Chats still open then are left (sockets closed) and reported as open."""
    stop = stop or asyncio.Event()
    scenarios = list(config.scenarios) if config.scenarios is not None else load_scenarios()
    await _check_reachable(url, config.connect_timeout)
    agents = [SimAgent(url, user, pw, random.Random(f"{config.seed}:agent:{user}"), config.timing)
              for user, pw in config.agents]  # fmt: skip
    started_agents: list[SimAgent] = []
    try:
        for agent in agents:
            await agent.start()
            started_agents.append(agent)
    except RuntimeError as exc:
        await asyncio.gather(*(a.stop() for a in started_agents))
        raise SimError(str(exc)) from None

    customers: list[SimCustomer] = []
    tasks: set[asyncio.Task[ChatRecord]] = set()
    t0 = time.monotonic()
    reporter = (
        asyncio.create_task(_report_progress(config, customers, t0)) if config.progress else None
    )
    stopper = asyncio.create_task(stop.wait())
    try:
        await _arrivals(url, config, scenarios, customers, tasks, stop, t0)
        # Let the chats in progress finish; whatever is still open at the
        # deadline is reported as open, not guessed at.
        deadline = max(time.monotonic(), t0 + config.duration) + config.grace_s
        while tasks and not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            await asyncio.wait({*tasks, stopper}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if tasks:
            # Frames already on the wire (a welcome, a close) reach their
            # customers before the chats are counted.
            await asyncio.wait({*tasks}, timeout=SETTLE_S)
        for task in tasks:
            task.cancel()
        if tasks:  # each closes its socket (bounded); the summary never waits longer
            await asyncio.wait({*tasks}, timeout=2 * CLOSE_TIMEOUT)
        if reporter is not None:
            reporter.cancel()
        await asyncio.gather(*(a.stop() for a in started_agents), return_exceptions=True)
    return Summary.from_records(
        (c.rec for c in customers), url=url, pattern=config.pattern, seed=config.seed,
        speed=config.speed, load=config.load, elapsed_s=time.monotonic() - t0,
    )  # fmt: skip


async def _arrivals(url: str, config: SimConfig, scenarios: list[Scenario], customers: list[SimCustomer],
                    tasks: set[asyncio.Task[ChatRecord]], stop: asyncio.Event, t0: float) -> None:  # fmt: skip
    """Start customers on the schedule until it ends, `max_customers` is reached, or `stop`."""
    curve = config.rate_curve()
    until = config.duration if config.duration > 0 else None
    schedule = arrival_times(curve, curve.max_rate, random.Random(f"{config.seed}:arrivals"), until)
    for index, at in enumerate(schedule):
        if config.max_customers is not None and index >= config.max_customers:
            break
        delay = t0 + at - time.monotonic()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
        if stop.is_set():
            break
        # Each customer draws from its own generator: the same seed gives the
        # same people with the same scripts, whatever the network timing.
        rng = random.Random(f"{config.seed}:customer:{index}")
        customer = SimCustomer(url, choose(scenarios, rng), index, rng, config.timing, config.end_on_stop)
        customers.append(customer)
        task = asyncio.create_task(customer.run(), name=f"sim-customer-{index}")
        tasks.add(task)
        task.add_done_callback(tasks.discard)


async def _check_reachable(url: str, timeout: float) -> None:
    try:
        async with connect(url, open_timeout=min(timeout, 5.0), close_timeout=1, compression=None):
            pass
    except Exception as exc:
        raise SimError(f"cannot reach the hub at {url}: {exc}") from None


async def _report_progress(config: SimConfig, customers: list[SimCustomer], t0: float) -> None:
    assert config.progress is not None
    while True:
        await asyncio.sleep(config.progress_every)
        states: dict[str, int] = {}
        for c in customers:
            outcome = c.rec.outcome
            if outcome == "failed" and not c.finished:
                outcome = "open"  # not welcomed yet: still connecting
            key = (
                OPEN_LABELS.get(c.rec.state, c.rec.state)
                if outcome == "open"
                else DONE_LABELS[outcome]
            )
            states[key] = states.get(key, 0) + 1
        detail = ", ".join(f"{k} {v}" for k, v in sorted(states.items()))
        config.progress(f"[{time.monotonic() - t0:6.0f} s] {len(customers)} arrived: {detail}")


# `desk simulate` is wired to this module (desk/cli.py DELEGATED); the command
# line itself lives in desk/simulate.py, imported late to avoid an import cycle.


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``desk simulate`` (see desk/simulate.py)."""
    from desk.simulate import add_arguments as add

    add(parser)


def run(args: argparse.Namespace) -> int:
    """Run ``desk simulate`` (see desk/simulate.py)."""
    from desk.simulate import run as run_cli

    return run_cli(args)


__all__ = ["SimConfig", "SimError", "add_arguments", "run", "simulate"]
