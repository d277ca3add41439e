"""``desk simulate``: bring a realistic stream of scripted customers to a hub.

For demos (speed 1: people type, read and wait like people), tests (high
``--speed``, short runs) and benchmarks (``--load``: many customers, a fixed
message rate, no human delays). Customers come from
``desk/data/scenarios.yaml`` (or ``--scenarios``); each one is a HubClient,
so it reconnects, resumes and resends like the real customer app.

    desk simulate --rate 12 --duration 300                  a steady morning
    desk simulate --pattern surge --rate 6 --peak 60 --duration 600 --speed 10
    desk simulate --load --rate 600 --max-customers 200 --duration 60 --json bench.json
    desk simulate --agent a1:secret1 --agent a2:secret2     stand-in agents too

The engine is ``desk.sim`` (also used by the demo and the tests):
``await simulate(url, SimConfig(...), stop=event) -> Summary``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys

from desk.sim import (
    Scenario,
    ScenarioError,
    SimConfig,
    SimError,
    Summary,
    load_scenarios,
    simulate,
)

DEFAULT_URL = "ws://127.0.0.1:8765/"
DEFAULT_RATE = 6.0  # per minute: a quiet hour for three agents
DEFAULT_LOAD_RATE = 600.0

__all__ = [
    "Scenario",
    "SimConfig",
    "Summary",
    "add_arguments",
    "config_from_args",
    "run",
    "simulate",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``desk simulate``."""
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the hub (default {DEFAULT_URL})")
    parser.add_argument("--pattern", choices=["steady", "surge"], default="steady",
                        help="steady: Poisson arrivals at --rate; surge: an app campaign "
                             "(ramp to --peak, hold, decay)")  # fmt: skip
    parser.add_argument("--rate", type=float, default=None,
                        help=f"arrivals per minute (the base of a surge; default {DEFAULT_RATE:g}, "
                             f"{DEFAULT_LOAD_RATE:g} with --load)")  # fmt: skip
    parser.add_argument(
        "--peak",
        type=float,
        default=None,
        help="surge peak, arrivals per minute (default 5 x rate)",
    )
    parser.add_argument("--duration", type=float, default=60.0,
                        help="seconds of arrivals (default 60; 0: until Ctrl+C, steady only)")  # fmt: skip
    parser.add_argument(
        "--max-customers", type=int, default=None, help="stop arrivals after this many"
    )
    parser.add_argument("--speed", type=float, default=1.0,
                        help="time scale of human delays and patience: 1 human-like, 10 ten times faster")  # fmt: skip
    parser.add_argument(
        "--seed",
        type=int,
        default=1,
        help="same seed, same customers and arrival times (default 1)",
    )
    parser.add_argument("--load", action="store_true",
                        help="benchmark: no human delays or walking away, a fixed message rate per chat")  # fmt: skip
    parser.add_argument("--msg-rate", type=float, default=0.5,
                        help="with --load: messages per second per chat (default 0.5)")  # fmt: skip
    parser.add_argument("--grace", type=float, default=None,
                        help="seconds open chats may finish once arrivals end (default 180/speed, 5 with --load)")  # fmt: skip
    parser.add_argument(
        "--scenarios", default=None, help="scenario file (default desk/data/scenarios.yaml)"
    )
    parser.add_argument("--agent", action="append", default=[], metavar="USER[:PASSWORD]",
                        help="also run a scripted stand-in agent (repeatable; password else $DESK_PASSWORD)")  # fmt: skip
    parser.add_argument(
        "--json", default=None, metavar="PATH", help="also write the summary as JSON"
    )
    parser.add_argument("--end-on-stop", action="store_true",
                        help="stopped mid-chat (Ctrl+C, SIGTERM), customers end their chats instead of "
                             "leaving them open (the demo uses it)")  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress lines while running")


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """Settings from parsed options; SimError or ScenarioError if they cannot work."""
    scenarios = load_scenarios(args.scenarios) if args.scenarios else load_scenarios()
    agents = []
    for spec in args.agent:
        user, sep, password = spec.partition(":")
        password = password if sep else os.environ.get("DESK_PASSWORD", "")
        if not user or not password:
            raise SimError(f"--agent {spec!r}: give USER:PASSWORD, or set $DESK_PASSWORD")
        agents.append((user, password))
    rate = (
        args.rate if args.rate is not None else (DEFAULT_LOAD_RATE if args.load else DEFAULT_RATE)
    )
    return SimConfig(
        pattern=args.pattern, rate=rate, peak=args.peak, duration=args.duration,
        max_customers=args.max_customers, speed=args.speed, seed=args.seed, load=args.load,
        msg_rate=args.msg_rate, grace=args.grace, scenarios=scenarios, agents=agents,
        progress=None if args.quiet else _progress, end_on_stop=args.end_on_stop,
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Run ``desk simulate``; 0 when every chat is accounted for."""
    try:
        config = config_from_args(args)
    except (SimError, ScenarioError) as exc:
        print(f"desk simulate: {exc}", file=sys.stderr)
        return 2
    until = f"{config.duration:g} s" if config.duration else "Ctrl+C"
    mode = "load test" if config.load else f"speed x{config.speed:g}"
    shape = f"{config.rate:g}/min" + (
        f", peak {config.peak or 5 * config.rate:g}/min" if config.pattern == "surge" else ""
    )
    print(f"simulating customers against {args.url}: {config.pattern} {shape} until {until}, {mode}, "
          f"{len(config.scenarios or [])} scenarios, seed {config.seed} (Ctrl+C stops)", flush=True)  # fmt: skip
    try:
        summary = asyncio.run(_main(args.url, config))
    except SimError as exc:
        print(f"desk simulate: {exc}", file=sys.stderr)
        return 1
    print(summary.table())
    if args.json:
        summary.write_json(args.json)
        print(f"summary written to {args.json}")
    return 0 if summary.accounted else 1


async def _main(url: str, config: SimConfig) -> Summary:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def interrupted() -> None:
        if stop.is_set():  # a second Ctrl+C: stop waiting for sockets to close
            loop.remove_signal_handler(signal.SIGINT)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, interrupted)
    return await simulate(url, config, stop=stop)


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m desk.simulate`` until the lead wires ``desk simulate``."""
    parser = argparse.ArgumentParser(prog="desk simulate", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
