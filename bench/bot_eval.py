"""How well the bot's matcher does on a question set written apart from the KB.

    .venv/bin/python -m bench.bot_eval [--kb PATH] [--eval PATH] [--json PATH]

The matcher runs exactly as the bot runs it (same Matcher, same answer
threshold): a case counts as answered when the best topic reaches the bot's
threshold. Figures:
  in-scope top-1 accuracy   answered with the expected topic / in-scope cases
  in-scope unanswered       best score below the threshold (the bot offers or misses)
  out-of-scope false answers  out-of-scope cases the bot would answer anyway
Then, for information, each case goes through the whole bot in a fresh chat,
which shows what the handoff rules (人工, 投诉, urgent topics) do to it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from server.bot import KnowledgeBot, load_kb
from server.bot.kb import DEFAULT_KB_PATH
from server.botstage import BotContext

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EVAL_PATH = ROOT / "bench" / "data" / "bot_eval.yaml"


def load_cases(path: str | Path) -> list[dict[str, Any]]:
    """The eval cases: [{q: str, expect: id | None}]."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    cases = data["cases"] if isinstance(data, dict) else data
    return [{"q": str(c["q"]), "expect": c.get("expect")} for c in cases]


def evaluate(bot: KnowledgeBot, cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Score `bot.matcher` at `bot.threshold` on `cases`; returns the figures and the misses."""
    matcher, threshold = bot.matcher, bot.threshold
    unknown = sorted({c["expect"] for c in cases if c["expect"] and c["expect"] not in bot.kb})
    in_scope = {"n": 0, "correct": 0, "wrong": 0, "unanswered": 0, "top1_any": 0, "top3_offered": 0}
    oos = {"n": 0, "answered": 0, "offered": 0}
    errors: list[dict[str, Any]] = []
    timings: list[float] = []
    for case in cases:
        start = time.perf_counter()
        found = matcher.match(case["q"], limit=3, min_score=0.0)
        timings.append((time.perf_counter() - start) * 1000)
        best = found[0] if found else None
        answered = best.entry_id if best and best.score >= threshold else None
        expect = case["expect"]
        row = {
            "q": case["q"],
            "expect": expect,
            "got": answered,
            "top": [(m.entry_id, round(m.score, 3)) for m in found],
        }
        if expect is None:
            oos["n"] += 1
            if answered:
                oos["answered"] += 1
                errors.append(row)
            elif best and best.score >= bot.offer_threshold:
                oos["offered"] += 1
            continue
        in_scope["n"] += 1
        in_scope["top1_any"] += bool(best and best.entry_id == expect)
        in_scope["top3_offered"] += any(
            m.entry_id == expect and m.score >= bot.offer_threshold for m in found
        )
        if answered == expect:
            in_scope["correct"] += 1
            continue
        in_scope["wrong" if answered else "unanswered"] += 1
        errors.append(row)

    n_in, n_out = max(in_scope["n"], 1), max(oos["n"], 1)
    return {
        "threshold": threshold,
        "offer_threshold": bot.offer_threshold,
        "in_scope": {
            **in_scope,
            "top1_accuracy": round(in_scope["correct"] / n_in, 4),
            "wrong_answer_rate": round(in_scope["wrong"] / n_in, 4),
            "unanswered_rate": round(in_scope["unanswered"] / n_in, 4),
            "top1_ignoring_threshold": round(in_scope["top1_any"] / n_in, 4),
            "expected_in_offer_band_or_better": round(in_scope["top3_offered"] / n_in, 4),
        },
        "out_of_scope": {
            **oos,
            "false_answer_rate": round(oos["answered"] / n_out, 4),
            "offered_rate": round(oos["offered"] / n_out, 4),
        },
        "latency_ms": {
            "mean": round(statistics.fmean(timings), 3) if timings else 0.0,
            "p99": round(sorted(timings)[int(0.99 * (len(timings) - 1))], 3) if timings else 0.0,
            "max": round(max(timings), 3) if timings else 0.0,
        },
        "unknown_expected_ids": unknown,
        "misclassified": errors,
    }


def through_bot(bot: KnowledgeBot, cases: list[dict[str, Any]]) -> dict[str, Counter[str]]:
    """What the whole bot does with each case as the first message of a new chat."""
    outcomes: dict[str, Counter[str]] = {"in_scope": Counter(), "out_of_scope": Counter()}
    for case in cases:
        ctx = BotContext(conv_id="eval", customer_name="eval", lang="zh")
        turn = bot.answer(ctx, case["q"])
        if turn.handoff is not None:
            outcome = f"handoff:{turn.handoff.reason}"
            if case["expect"] and turn.intents == [case["expect"]]:
                outcome += "+answered"  # urgent: answered first, then handed off
        elif turn.intents:
            outcome = "answered-right" if turn.intents == [case["expect"]] else "answered-wrong"
        elif turn.missed:
            outcome = "missed"
        elif ctx.memory.get("offered"):
            hit = case["expect"] in ctx.memory["offered"]
            outcome = "offered-incl-expected" if hit else "offered"
        else:
            outcome = ctx.memory.get("last", "other")
        outcomes["in_scope" if case["expect"] else "out_of_scope"][outcome] += 1
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kb", type=Path, default=DEFAULT_KB_PATH)
    parser.add_argument("--eval", type=Path, default=DEFAULT_EVAL_PATH)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="do not list misclassified cases"
    )
    args = parser.parse_args(argv)

    bot = KnowledgeBot(load_kb(args.kb))
    cases = load_cases(args.eval)
    report = evaluate(bot, cases)
    report["through_bot"] = {k: dict(v) for k, v in through_bot(bot, cases).items()}
    ins, oos, lat = report["in_scope"], report["out_of_scope"], report["latency_ms"]

    print(f"KB {args.kb} ({len(bot.kb)} topics), eval {args.eval} ({len(cases)} cases)")
    print(f"thresholds: answer >= {report['threshold']}, offer >= {report['offer_threshold']}")
    print(
        f"in-scope     n={ins['n']:4d}  top-1 accuracy {ins['top1_accuracy']:.1%}  "
        f"wrong {ins['wrong_answer_rate']:.1%}  unanswered {ins['unanswered_rate']:.1%}"
    )
    print(
        f"             top-1 ignoring threshold {ins['top1_ignoring_threshold']:.1%}  "
        f"expected topic answered or offered {ins['expected_in_offer_band_or_better']:.1%}"
    )
    print(
        f"out-of-scope n={oos['n']:4d}  false answers {oos['false_answer_rate']:.1%}  "
        f"offered topics {oos['offered_rate']:.1%}"
    )
    print(f"latency per match: mean {lat['mean']} ms, p99 {lat['p99']} ms, max {lat['max']} ms")
    if report["unknown_expected_ids"]:
        print(
            f"WARNING: eval expects ids the KB lacks: {', '.join(report['unknown_expected_ids'])}"
        )
    for scope, counts in report["through_bot"].items():
        print(
            f"through the bot, {scope}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        )
    if not args.quiet and report["misclassified"]:
        print(f"\nmisclassified ({len(report['misclassified'])}):")
        for row in report["misclassified"]:
            tops = " ".join(f"{i}:{s:.2f}" for i, s in row["top"])
            print(
                f"  expect {row['expect'] or '-':24} got {row['got'] or '-':24} | {row['q']}  [{tops}]"
            )
    if args.json:
        args.json.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
