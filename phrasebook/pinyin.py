"""Pinyin keys for phrase titles and tags, computed once at index build time.

Agents type pinyin initials (`gs` for 挂失) or full pinyin (`guashi`) far
faster than they can pick characters in an IME, so the index matches both.

Heteronyms: pypinyin's phrase dictionary gives the reading in context, which
is the one we index first. It is not always the reading agents type (it reads
还款 as "haikuan", 重置 as "zhongzhi"), so for a short list of common
heteronyms we also index the other everyday reading; a query matching either
is accepted. The list is curated rather than taken from pypinyin's full
heteronym table, whose rare readings (失 "yi", 卡 "qia") would make short
initials queries match nonsense.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from pypinyin import Style, lazy_pinyin

# Everyday alternative readings (toneless) of heteronyms common in banking text.
HETERONYMS: dict[str, tuple[str, ...]] = {
    "还": ("huan", "hai"),
    "重": ("chong", "zhong"),
    "行": ("hang", "xing"),
    "长": ("chang", "zhang"),
    "调": ("tiao", "diao"),
    "差": ("cha", "chai"),
    "率": ("lv", "shuai"),
    "传": ("chuan", "zhuan"),
    "朝": ("chao", "zhao"),
    "着": ("zhe", "zhao", "zhuo"),
    "乐": ("le", "yue"),
    "了": ("le", "liao"),
    "得": ("de", "dei"),
    "都": ("dou", "du"),
    "便": ("bian", "pian"),
    "省": ("sheng", "xing"),
    "说": ("shuo", "shui"),
    "会": ("hui", "kuai"),
    "地": ("di", "de"),
    "和": ("he", "huo"),
    "降": ("jiang", "xiang"),
    "角": ("jiao", "jue"),
    "觉": ("jue", "jiao"),
    "没": ("mei", "mo"),
    "单": ("dan", "shan"),
    "藏": ("cang", "zang"),
    "解": ("jie", "xie"),
    "区": ("qu", "ou"),
    "期": ("qi", "ji"),
    "给": ("gei", "ji"),
    "结": ("jie",),
    "种": ("zhong",),
    "数": ("shu",),
    "卡": ("ka",),
}

MAX_VARIANTS = 4  # per string: the primary reading plus up to 3 alternatives

_ASCII_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True, slots=True)
class PinyinKeys:
    """Pinyin forms of one string.

    `full` and `initials` are tuples of variants (primary reading first).
    `bounds[i]` holds the offsets in `full[i]` where a syllable starts, so a
    full-pinyin query only matches from a syllable start ("an" must not hit
    the middle of "kuan").
    """

    full: tuple[str, ...]
    initials: tuple[str, ...]
    bounds: tuple[tuple[int, ...], ...]


def _syllables(text: str) -> list[str]:
    # lazy_pinyin leaves non-Chinese runs as one item ("ATM吞卡" -> ["ATM",
    # "tun", "ka"]); split those into ascii words so "atm" is a syllable too.
    out: list[str] = []
    for item in lazy_pinyin(text, style=Style.NORMAL, errors="default", v_to_u=False):
        item = item.lower()
        if item.isascii():
            out.extend(_ASCII_WORD.findall(item))
        else:
            out.extend(_ASCII_WORD.findall(item.encode("ascii", "ignore").decode()))
    return out


@lru_cache(maxsize=65536)
def pinyin_keys(text: str) -> PinyinKeys:
    """Full pinyin and initials of `text`, with heteronym variants.

    Cached: tags and titles repeat a lot across a library, and pypinyin costs
    ~50 us per call.
    """
    syl = _syllables(text)
    variants: list[list[str]] = [syl]
    positions = _han_positions(text)
    # Only swap readings when characters and syllables line up one to one
    # (they do unless pypinyin lacks a character); otherwise index as is.
    if positions and _syllable_count(text) == len(syl):
        for ch_index, syl_index in positions:
            for alt in HETERONYMS.get(text[ch_index], ()):
                if alt != syl[syl_index] and len(variants) < MAX_VARIANTS:
                    v = list(syl)
                    v[syl_index] = alt
                    variants.append(v)
    full: list[str] = []
    initials: list[str] = []
    bounds: list[tuple[int, ...]] = []
    for v in variants:
        f = "".join(v)
        if f in full:
            continue
        b, off = [], 0
        for s in v:
            b.append(off)
            off += len(s)
        full.append(f)
        initials.append("".join(s[0] for s in v if s))
        bounds.append(tuple(b))
    return PinyinKeys(tuple(full), tuple(initials), tuple(bounds))


def _syllable_count(text: str) -> int:
    han = sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff")
    return han + len(_ASCII_WORD.findall(re.sub(r"[\u4e00-\u9fff]", " ", text.lower())))


def _han_positions(text: str) -> list[tuple[int, int]]:
    """(character index, syllable index) for each Chinese character."""
    out = []
    syl_index = 0
    in_word = False
    for i, ch in enumerate(text.lower()):
        if "\u4e00" <= ch <= "\u9fff":
            out.append((i, syl_index))
            syl_index += 1
            in_word = False
        elif ch.isascii() and ch.isalnum():
            if not in_word:
                syl_index += 1
                in_word = True
        else:
            in_word = False
    return out


def is_pinyin_query(query: str) -> bool:
    """Whether a query could be pinyin: ascii letters (spaces/' allowed)."""
    return bool(query) and query.isascii() and query.replace(" ", "").replace("'", "").isalpha()
