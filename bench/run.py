"""`make bench`: every benchmark, one after the other, results under bench/results/.

    .venv/bin/python -m bench.run [--quick]

Figures are recorded in docs/BENCHMARKS.md with the command that produced them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

STEPS = [
    ("bot evaluation", ["bench.bot_eval", "--json", "bench/results/bot_eval.json"]),
    ("phrase search", ["bench.phrase_search", "--json", "bench/results/phrase_search.json"]),
    ("agent desk", ["bench.desk_bench", "--json", "bench/results/desk.json"]),
    ("hub vs bare relay", ["bench.hub_bench", "--json", "bench/results/hub.json"]),
    ("supervisors watching 2,000 agents", ["bench.board_bench", "--json", "bench/results/board.json"]),
]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = ap.parse_args()
    failed = []
    for name, cmd in STEPS:
        extra = []
        if args.quick and cmd[0] == "bench.hub_bench":
            extra = ["--quick"]
        if args.quick and cmd[0] == "bench.desk_bench":
            extra = ["--messages", "300"]
        if args.quick and cmd[0] == "bench.board_bench":
            extra = ["--agents", "300", "--customers", "50", "--seconds", "5"]
        print(f"\n=== {name}: python -m {' '.join(cmd + extra)}", flush=True)
        t0 = time.monotonic()
        code = subprocess.call([sys.executable, "-m", *cmd, *extra])
        print(f"--- {name}: exit {code} in {time.monotonic() - t0:.0f} s", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
