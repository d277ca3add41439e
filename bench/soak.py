"""The reliability drills, long: lossy links, SIGKILLs, slow desks, races,
hostile frames and customer data, scaled up (docs/RELIABILITY.md).

    .venv/bin/python -m bench.soak                 # 10x the default suite's drills (~5 minutes)
    .venv/bin/python -m bench.soak --factor 30     # longer
    .venv/bin/python -m bench.soak --only lossy,crash

It runs the same tests as `make test` with DESK_SOAK set (tests/proxy.py
scales every drill by it), collects each drill's figures and writes them to
bench/results/soak.json. Known hub bugs stay xfail, so a green soak means
"nothing new".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DRILLS = {
    "lossy": "tests/test_reliability_lossy.py",
    "crash": "tests/test_reliability_crash.py",
    "slow": "tests/test_reliability_slow.py",
    "races": "tests/test_reliability_races.py",
    "frames": "tests/test_hostile_frames.py",
    "auth": "tests/test_hostile_auth.py",
    "data": "tests/test_hostile_data.py",
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--factor", type=float, default=10.0, help="how many times the default drills (default 10)")
    ap.add_argument("--only", default="", help=f"comma-separated subset of {','.join(DRILLS)}")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "soak.json"))
    args = ap.parse_args()
    chosen = [d.strip() for d in args.only.split(",") if d.strip()] or list(DRILLS)
    unknown = set(chosen) - set(DRILLS)
    if unknown:
        ap.error(f"unknown drills: {sorted(unknown)}")
    figures_dir = Path(tempfile.mkdtemp(prefix="desk-soak-"))
    env = {**os.environ, "DESK_SOAK": f"{args.factor:g}", "DESK_FIGURES": str(figures_dir)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rxX", *(DRILLS[d] for d in chosen)]
    print(f"$ DESK_SOAK={args.factor:g} {' '.join(cmd[1:])}", flush=True)
    t0 = time.monotonic()
    code = subprocess.call(cmd, cwd=ROOT, env=env)
    elapsed = time.monotonic() - t0
    results = {p.stem: json.loads(p.read_text()) for p in sorted(figures_dir.glob("*.json"))}
    out = {"factor": args.factor, "drills": chosen, "exit": code, "seconds": round(elapsed, 1), "figures": results}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, ensure_ascii=False, indent=2, sort_keys=True))
    print(f"\nsoak x{args.factor:g}: exit {code} in {elapsed:.0f} s; figures in {args.json}")
    for name, fig in results.items():
        shown = {k: v for k, v in fig.items() if k not in ("drill", "at", "soak_factor") and not isinstance(v, dict)}
        print(f"  {name}: " + ", ".join(f"{k}={v}" for k, v in sorted(shown.items())))
    return code


if __name__ == "__main__":
    sys.exit(main())
