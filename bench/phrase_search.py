"""Phrase search benchmark: per-keystroke latency over a 10,000-phrase library.

Run from the repository root:

    .venv/bin/python -m bench.phrase_search [--n 10000] [--rounds 20] [--json PATH]

The library is built deterministically (fixed seed) from the shipped team
library plus synthetic variants (regional/segment versions, extra sentences,
extra tags, personal copies), mixed Chinese and English. An agent with a
realistic usage history then "types" queries one keystroke at a time:
pinyin initials, full pinyin, Chinese (one committed character at a time, as
an IME delivers them), English with typos, and shortcodes with a trigger.
Every keystroke is one timed `PhraseIndex.search` call with the GC enabled.
Target: p99 < 1 ms per keystroke.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import sys
import time
import tracemalloc

from phrasebook import PhraseIndex, UsageStats, expand_shortcode, load_team_library, make_context
from phrasebook.model import Phrase
from phrasebook.pinyin import pinyin_keys
from phrasebook.search import clear_caches

AGENT = "a007"
SEED = 20250106

ZH_VARIANTS = [
    "（简版）", "（详细版）", "（北京分行）", "（上海分行）", "（广州分行）", "（深圳分行）",
    "（杭州分行）", "（成都分行）", "（夜间）", "（节假日）", "（VIP客户）", "（再次提醒）",
    "（活动期间）", "（小微企业主）", "（新客户）", "（二次来电）", "（外籍客户）", "（残障客户）",
]  # fmt: skip
EN_VARIANTS = [
    " (short)", " (detailed)", " (Beijing)", " (Shanghai)", " (Guangzhou)", " (Shenzhen)",
    " (night shift)", " (holiday)", " (VIP)", " (reminder)", " (campaign)", " (small business)",
    " (new customer)", " (repeat contact)", " (foreign customer)", " (accessibility)",
]  # fmt: skip
ZH_EXTRA = [
    "如有疑问请随时联系我们。", "具体以页面显示为准。", "办理时请携带本人有效身份证件。",
    "活动期间咨询量较大，回复可能稍慢。", "感谢您对{bank}的支持。", "请注意保护个人信息安全。",
    "该规则自本月起执行。", "如需纸质材料可到网点领取。", "部分地区规则略有不同。",
]  # fmt: skip
EN_EXTRA = [
    "Please contact us if you have any questions.", "The page in the app shows the exact figures.",
    "Please bring your valid ID.", "Replies may be slower during campaigns.",
    "Thank you for banking with {bank}.", "Please keep your personal information safe.",
    "This rule applies from this month.", "Rules may differ slightly by region.",
]  # fmt: skip
ZH_TAGS = ["分行", "夜班", "活动", "重点", "常用", "新规", "外籍", "小微", "理财季", "春节"]
EN_TAGS = ["branch", "night", "campaign", "priority", "frequent", "new rule", "sme", "festival"]

# (kind, final text, chat language). Chinese is typed one committed character
# at a time; everything else one key at a time.
QUERIES: list[tuple[str, str, str]] = [
    ("initials", "gs", "zh"), ("initials", "zzsb", "zh"), ("initials", "sd", "zh"),
    ("initials", "tk", "zh"), ("initials", "xyk", "zh"), ("initials", "czmm", "zh"),
    ("initials", "jjrzz", "zh"), ("initials", "zbzz", "zh"), ("initials", "sjyh", "zh"),
    ("initials", "wdz", "zh"),
    ("pinyin", "guashi", "zh"), ("pinyin", "shaodeng", "zh"), ("pinyin", "zhuanzhang", "zh"),
    ("pinyin", "xinyongka", "zh"), ("pinyin", "huankuan", "zh"), ("pinyin", "tunka", "zh"),
    ("pinyin", "chongzhimima", "zh"), ("pinyin", "zhangbei", "zh"), ("pinyin", "xiane", "zh"),
    ("pinyin", "jifen", "zh"),
    ("chinese", "挂失", "zh"), ("chinese", "转账失败", "zh"), ("chinese", "手机银行登录", "zh"),
    ("chinese", "信用卡还款", "zh"), ("chinese", "吞卡", "zh"), ("chinese", "长辈版", "zh"),
    ("chinese", "转账限额", "zh"), ("chinese", "投诉", "zh"), ("chinese", "请您稍等", "zh"),
    ("chinese", "境外", "zh"),
    ("english", "tranfser failed", "en"), ("english", "lost crad", "en"),
    ("english", "repayemnt", "en"), ("english", "pasword reset", "en"),
    ("english", "blcok card", "en"), ("english", "instalmnets", "en"), ("english", "limt", "en"),
    ("english", "complant", "en"), ("english", "card retained atm", "en"),
    ("english", "statment", "en"),
    ("shortcode", "/gs", "zh"), ("shortcode", "/zzsb", "zh"), ("shortcode", ";sd", "zh"),
    ("shortcode", "/hi", "en"), ("shortcode", "/zbzz", "zh"), ("shortcode", ";jjr", "zh"),
]  # fmt: skip


def build_library(n: int, seed: int = SEED) -> list[Phrase]:
    """`n` phrases: the team library plus deterministic synthetic variants."""
    rng = random.Random(seed)
    team = load_team_library()
    out = list(team)
    used_codes: set[tuple[str, str, str | None, str]] = {
        (p.scope, p.code, p.owner, p.lang) for p in team
    }
    serial = 0
    while len(out) < n:
        base = rng.choice(team)
        serial += 1
        personal = rng.random() < 0.3
        scope, owner = ("personal", AGENT) if personal else ("team", None)
        zh = base.lang == "zh"
        variant = rng.choice(ZH_VARIANTS if zh else EN_VARIANTS)
        title = (base.title + variant)[:80]
        extra = rng.sample(ZH_EXTRA if zh else EN_EXTRA, k=rng.randint(0, 2))
        text = base.text + ("" if zh else " ") + ("" if zh else " ").join(extra)
        tag_pool = ZH_TAGS if zh else EN_TAGS
        tags = list(dict.fromkeys([*base.tags, rng.choice(tag_pool)]))
        code = f"{base.code}{serial % 97}"
        k = 0
        while (scope, code, owner, base.lang) in used_codes:
            k += 1
            code = f"{base.code}{serial % 97}.{k}"
        used_codes.add((scope, code, owner, base.lang))
        out.append(
            Phrase(
                id=f"syn-{serial}",
                code=code,
                title=title,
                text=text.strip(),
                category=base.category,
                tags=tuple(tags),
                lang=base.lang,
                scope=scope,
                owner=owner,
                updated_at=1736125200.0 + serial,
                topic=base.topic,
            )
        )
    return out[:n]


def make_usage(phrases: list[Phrase], now: float, seed: int = SEED) -> UsageStats:
    """An agent's month of history: 2,000 uses, Zipf-like over 300 phrases."""
    rng = random.Random(seed + 1)
    visible = [p for p in phrases if p.scope == "team" or p.owner == AGENT]
    favourites = rng.sample(visible, k=min(300, len(visible)))
    weights = [1.0 / (i + 1) for i in range(len(favourites))]
    usage = UsageStats()
    for _ in range(2000):
        p = rng.choices(favourites, weights)[0]
        usage.record(AGENT, p.id, now - rng.uniform(0, 30 * 86400))
    return usage


def keystrokes(text: str) -> list[str]:
    return [text[: i + 1] for i in range(len(text))]


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def run(n: int, rounds: int, seed: int) -> dict[str, object]:
    import psutil

    load_before = round(os.getloadavg()[0], 2)
    phrases = build_library(n, seed)
    now = 1736125200.0 + 40 * 86400
    usage = make_usage(phrases, now, seed)
    proc = psutil.Process()

    # Build time, cold: pinyin cache emptied (pypinyin's dictionaries are
    # loaded by a warm-up call first, as they would be once per desk process).
    pinyin_keys("预热")
    clear_caches()
    gc.collect()
    rss0 = proc.memory_info().rss
    t0 = time.perf_counter()
    index = PhraseIndex(phrases, agent_id=AGENT)
    build_s = time.perf_counter() - t0
    gc.collect()
    rss_delta = proc.memory_info().rss - rss0

    # Memory held by the index, measured on a second (traced) build.
    clear_caches()
    gc.collect()
    tracemalloc.start()
    traced = PhraseIndex(phrases, agent_id=AGENT)
    traced_bytes, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del traced
    gc.collect()

    # Keystroke simulation. The GC stays on (it is on in a desk); count the
    # full collections that land inside the measured loop.
    gc_gen2 = 0

    def on_gc(phase: str, info: dict) -> None:
        nonlocal gc_gen2
        if phase == "start" and info.get("generation") == 2:
            gc_gen2 += 1

    gc.callbacks.append(on_gc)
    samples: dict[str, list[float]] = {}
    all_ms: list[float] = []
    hits_seen = 0
    index.search("warm", usage=usage, now=now)
    for _ in range(rounds):
        for kind, text, lang in QUERIES:
            for q in keystrokes(text):
                t = time.perf_counter_ns()
                hits = index.search(q, limit=20, usage=usage, now=now, lang=lang)
                ms = (time.perf_counter_ns() - t) / 1e6
                hits_seen += len(hits)
                samples.setdefault(kind, []).append(ms)
                all_ms.append(ms)

    gc.callbacks.remove(on_gc)

    # Empty query (the list shown before typing).
    empty = []
    for _ in range(rounds * 10):
        t = time.perf_counter_ns()
        index.search("", usage=usage, now=now)
        empty.append((time.perf_counter_ns() - t) / 1e6)

    # Shortcode expansion in the reply box.
    ctx = make_context(customer="王女士", agent="小李", now=now, queue_wait_s=180)
    expand_ms = []
    for _ in range(rounds * 10):
        for draft in ("/gs", "您好;sd", "/zbzz", "/nothere"):
            t = time.perf_counter_ns()
            expand_shortcode(draft, len(draft), index, "zh", ctx)
            expand_ms.append((time.perf_counter_ns() - t) / 1e6)

    # Incremental updates (a phrase edited/added/removed live).
    rng = random.Random(seed + 2)
    update_ms: dict[str, list[float]] = {"add": [], "replace": [], "remove": []}
    for i in range(200):
        base = rng.choice(phrases)
        p = Phrase(
            id=f"live-{i}",
            code=f"live{i}",
            title=base.title + "（新）",
            text=base.text,
            category=base.category,
            tags=base.tags,
            lang=base.lang,
            updated_at=now,
        )
        t = time.perf_counter_ns()
        index.add(p)
        update_ms["add"].append((time.perf_counter_ns() - t) / 1e6)
        edited = msgspec_replace(p, text=p.text + "（已更新）")
        t = time.perf_counter_ns()
        index.replace(edited)
        update_ms["replace"].append((time.perf_counter_ns() - t) / 1e6)
    for i in range(200):
        t = time.perf_counter_ns()
        index.remove(f"live-{i}")
        update_ms["remove"].append((time.perf_counter_ns() - t) / 1e6)

    def summary(values: list[float]) -> dict[str, float]:
        return {
            "count": len(values),
            "p50_ms": round(pct(values, 50), 4),
            "p90_ms": round(pct(values, 90), 4),
            "p99_ms": round(pct(values, 99), 4),
            "max_ms": round(max(values), 4),
            "mean_ms": round(statistics.fmean(values), 4),
        }

    return {
        "load_avg_1m_before": load_before,
        "load_avg_1m_after": round(os.getloadavg()[0], 2),
        "gc_gen2_collections": gc_gen2,
        "phrases": len(phrases),
        "indexed_for_agent": len(index),
        "rounds": rounds,
        "seed": seed,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "build_s": round(build_s, 3),
        "rss_delta_mb": round(rss_delta / 2**20, 1),
        "traced_mb": round(traced_bytes / 2**20, 1),
        "traced_peak_mb": round(traced_peak / 2**20, 1),
        "keystroke": summary(all_ms),
        "by_kind": {k: summary(v) for k, v in samples.items()},
        "empty_query": summary(empty),
        "expand_shortcode": summary(expand_ms),
        "updates": {k: summary(v) for k, v in update_ms.items()},
        "target_p99_ms": 1.0,
        "target_met": pct(all_ms, 99) < 1.0,
        "mean_hits": round(hits_seen / max(1, len(all_ms)), 1),
    }


def msgspec_replace(p: Phrase, **changes: object) -> Phrase:
    import msgspec

    return msgspec.structs.replace(p, **changes)


def print_table(r: dict) -> None:
    print(f"phrase search benchmark: {r['phrases']} phrases ({r['indexed_for_agent']} visible to "
          f"{AGENT}), {r['rounds']} rounds, Python {r['python']}, {r['cpus']} CPUs")  # fmt: skip
    print(f"load average (1 min) {r['load_avg_1m_before']} before, {r['load_avg_1m_after']} after; "
          f"{r['gc_gen2_collections']} full GC(s) during the keystroke loop")  # fmt: skip
    print(f"index build {r['build_s']:.3f} s   RSS delta {r['rss_delta_mb']} MB   "
          f"traced {r['traced_mb']} MB (peak {r['traced_peak_mb']} MB)")  # fmt: skip
    head = f"{'what':<22}{'count':>7}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}"
    print(head)
    print("-" * len(head))
    rows = [("all keystrokes", r["keystroke"])]
    rows += [(f"  {k}", v) for k, v in r["by_kind"].items()]
    rows += [("empty query", r["empty_query"]), ("expand_shortcode", r["expand_shortcode"])]
    rows += [(f"update: {k}", v) for k, v in r["updates"].items()]
    for name, s in rows:
        print(f"{name:<22}{s['count']:>7}{s['p50_ms']:>9.3f}{s['p90_ms']:>9.3f}"
              f"{s['p99_ms']:>9.3f}{s['max_ms']:>9.3f}")  # fmt: skip
    verdict = "MET" if r["target_met"] else "MISSED"
    print(f"target p99 < {r['target_p99_ms']} ms per keystroke: {verdict}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="library size (default 10000)")
    ap.add_argument("--rounds", type=int, default=20, help="passes over the query set")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = ap.parse_args(argv)
    result = run(args.n, args.rounds, args.seed)
    print_table(result)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, ensure_ascii=False, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
