"""Text normalisation shared by the matcher and the trigger detectors.

Chinese is not segmented: the matcher works on characters, so all this module
does for Chinese is fold width/case, drop courtesy noise and split on
punctuation. English gets word tokens, a stop list and a light stemmer.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from pypinyin import Style, lazy_pinyin

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
CJK_RE = re.compile(f"[{_CJK}]")
# A unit is one CJK character or one run of ASCII letters/digits.
_UNIT_RE = re.compile(f"[{_CJK}]|[a-z0-9]+")
_WORD_RE = re.compile(r"[a-z0-9]+")
_SPLIT_RE = re.compile(f"[^{_CJK}a-z0-9]+")

# Courtesy and filler the customer adds around the question. Longest first so
# "请问一下" goes as a whole.
_ZH_NOISE_WORDS = """
    您好 你好 哈喽 嗨 在吗 在不在 亲
    请问一下 请问 问一下 问下 我想问一下 我想问 想问一下 想问下 想问
    我想咨询一下 咨询一下 咨询下 我想咨询 咨询
    谢谢你 谢谢您 谢谢 多谢 感谢 麻烦你 麻烦您 麻烦了 麻烦 帮忙 一下
""".split()
# Sentence-final particles go only at the end of a clause: mid-clause 吗 is
# more often an IME slip for 码 (验证吗 -> 验证码) that the matcher repairs.
_ZH_PARTICLES = "呢吗啊呀吧哦噢嘛啦喔诶哎唉嗯额呃哇"
_ZH_NOISE_RE = re.compile(
    "|".join(sorted(map(re.escape, _ZH_NOISE_WORDS), key=len, reverse=True))
    + f"|[{_ZH_PARTICLES}]+(?=[^{_CJK}a-z0-9]|$)"
)
# One spelling per term, applied to the KB and to queries alike: variant or
# commonly mistyped characters, dialect question words, and the many names
# customers use for the same channel or card. Longest first.
_ZH_CANON = {
    "帐": "账",
    "登陆": "登录",
    "咋办": "怎么办",
    "咋整": "怎么办",
    "咋弄": "怎么办",
    "咋": "怎么",
    "为啥": "为什么",
    "啥": "什么",
    "手机银行app": "手机银行",
    "手机app": "手机银行",
    "掌上银行": "手机银行",
    "app": "手机银行",
    "储蓄卡": "银行卡",
    "借记卡": "银行卡",
    "工资卡": "银行卡",
    "取款机": "atm",
    "自助机": "atm",
    "柜员机": "atm",
    "提款机": "atm",
    "atm机": "atm",
    "刷脸": "人脸",
}
_ZH_CANON_RE = re.compile(
    "|".join(
        # ASCII terms only as whole words ("app", not the middle of "whatsapp").
        f"(?<![a-z]){re.escape(k)}(?![a-z])" if k.isascii() else re.escape(k)
        for k in sorted(_ZH_CANON, key=len, reverse=True)
    )
)

_EN_NOISE_RE = re.compile(
    r"\b(?:hi|hello|hey|dear|sir|madam|please|pls|plz|thanks|thank you|thank u|thx|ty|"
    r"good (?:morning|afternoon|evening))\b"
)
# Words that say nothing about the topic. Question words (how, when, where)
# stay: "when does the branch open" and "where is the branch" differ by them.
EN_STOP = frozenset(
    """a an the is are am was were be been being to of for in on at by with from as into
    i me my mine myself we us our you your it its this that these those there
    do does did done doing can could would will shall should may might must
    just so very really also too about any some please hi hello hey thanks thank
    and or but if then than im ive id ill dont didnt doesnt cant cannot wont isnt arent
    get got have has had having need want like know tell let help bank""".split()
)


def fold(text: str) -> str:
    """Width/case folding: full-width Ｘ？ becomes x?, so one spelling per character."""
    return unicodedata.normalize("NFKC", text).casefold()


def has_cjk(text: str) -> bool:
    return CJK_RE.search(text) is not None


def detect_lang(text: str, default: str = "zh") -> str:
    """The language a message is written in; `default` when it does not say.

    Any Chinese character means Chinese (customers mix in "ATM", "APP"); two or
    more English words without Chinese mean English; a lone "ok" or "atm"
    keeps the chat's language.
    """
    if has_cjk(text):
        return "zh"
    words = re.findall(r"[a-zA-Z]{2,}", text)
    if len(words) >= 2:
        return "en"
    return default


def zh_segments(text: str) -> list[list[str]]:
    """Chinese text as runs of units (characters / ASCII words), noise removed.

    Runs break at punctuation, spaces and removed noise so no n-gram spans them.
    """
    text = _ZH_CANON_RE.sub(lambda m: _ZH_CANON[m.group()], fold(text))
    text = _ZH_NOISE_RE.sub(" ", text)
    segments = []
    for piece in _SPLIT_RE.split(text):
        units = _UNIT_RE.findall(piece)
        if units:
            segments.append(units)
    return segments


def en_tokens(text: str) -> list[str]:
    """English text as stemmed content words."""
    text = _EN_NOISE_RE.sub(" ", fold(text).replace("'", "").replace("’", ""))
    return [stem(w) for w in _WORD_RE.findall(text) if w not in EN_STOP]


@lru_cache(maxsize=8192)
def stem(word: str) -> str:
    """A deliberately light stemmer: enough to join transfer/transfers/transferred.

    It only has to map a word and its inflections to the same key, not to a
    real root, so it strips a suffix, undoubles a final consonant and drops a
    final e ("charge"/"charged"/"charges" all become "charg").
    """
    if len(word) <= 2 or word.isdigit():
        return word
    for suffix, repl in (
        ("ies", "y"),
        ("ied", "y"),
        ("ing", ""),
        ("ed", ""),
        ("es", ""),
        ("s", ""),
    ):
        if not word.endswith(suffix):
            continue
        root = word[: -len(suffix)]
        if suffix == "s" and word.endswith(("ss", "us", "is")):
            break
        # "used" -> "us" but "bring" stays: a short root must keep a vowel.
        if len(root) >= 3 or (
            len(root) == 2 and suffix in ("ing", "ed") and re.search("[aeiou]", root)
        ):
            word = root + repl
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouls":
        word = word[:-1]
    if len(word) > 2 and word.endswith("e"):
        word = word[:-1]
    return word


@lru_cache(maxsize=16384)
def pinyin_of(unit: str) -> str:
    """Toneless pinyin of one CJK character (IME homophone typos differ only in tone)."""
    if len(unit) != 1 or not CJK_RE.match(unit):
        return unit
    return lazy_pinyin(unit, style=Style.NORMAL)[0]
