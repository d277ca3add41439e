"""Phrase search for one agent's desk, fast enough to run on every keystroke.

Design (target: p99 < 1 ms per keystroke over 10,000 phrases, pure Python;
see bench/phrase_search.py):

* Everything searchable is lowercased and converted to pinyin once, when a
  phrase enters the index. A keystroke never calls pypinyin.
* The strongest tiers are bisects: shortcodes, titles and title pinyin
  (initials and full, every heteronym variant) sit in sorted lists, so a
  prefix query needs no scan at all and usually settles the result.
* Everything else lives in blocks of `BLOCK` phrases. Each block keeps its
  phrases' strings joined into one "blob" per field, so a substring test over
  a block is one C-level `str.find`. ASCII-only (English) phrases get their
  own blocks, whose blobs stay one byte per character.
* A mask per field maps grams to a bitmask of the blocks containing them: 1-
  and 2-grams, 3-grams of ASCII runs (English bigrams are not selective),
  heads of ASCII words (for word-start matching) and, for full pinyin, grams
  anchored at syllable starts. A query ANDs its grams' masks and scans only
  the blocks that can match. Masks are only ever ORed into, so a removal
  leaves a harmless false positive that the scan rejects: add/replace/remove
  re-join one block, with no global rebuild.
* Rare English words (in at most `RARE` phrases) also keep their phrase set,
  so a query that is a rare word (or a prefix of rare words only) is a
  lookup; an English query that starts no word at all is skipped (a mid-word
  match such as "ud" in "fraud" is noise) and goes to fuzzy matching.
* English typos: rapidfuzz (OSA distance, a transposition costs 1) against
  the vocabulary plus same-length word prefixes (for a word still being
  typed); the closest few words are then looked up like the query itself.
* Ranking is by match tier (shortcode > title > title pinyin > tags > body
  text > all words > fuzzy), then by a bounded bonus from this agent's usage
  (decayed count): a favourite rises among equal matches but a body-text hit
  never beats a shortcode. The bonus is smaller than the gap between tiers,
  so lower tiers are skipped once enough better hits exist.
* Each pass keeps at most `cap` new candidates; the agent's most-used
  phrases are always tested directly first, so capping never hides a
  favourite. When more than `cap` phrases tie in one tier (typically a
  one-character query), which of them are listed depends on the block
  layout; the agent's next keystroke narrows it anyway.
"""

from __future__ import annotations

import heapq
import re
import time
from bisect import bisect_left, bisect_right, insort
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz import process
from rapidfuzz.distance import OSA

from .model import Phrase
from .pinyin import is_pinyin_query, pinyin_keys
from .usage import UsageStats

BLOCK = 32
HOT = 48  # the agent's top phrases, always checked directly
RARE = 256  # English words in at most this many phrases keep an entry set

# Tier bases; minor quality adds <= MAX_MINOR, usage adds < MAX_BONUS, and
# MAX_MINOR + MAX_BONUS < the 100-point gap between tiers.
CODE_EXACT, CODE_PREFIX = 1000, 900
TITLE_PREFIX, TITLE_PINYIN_PREFIX, TITLE_SUB, TITLE_PINYIN_SUB = 800, 780, 700, 690
TAG, TAG_PINYIN = 600, 580
TEXT, WORDS, FUZZY_NAME, FUZZY_TEXT = 500, 450, 350, 300
MAX_MINOR, MAX_BONUS = 25, 50

SEP = "\x1f"  # between a phrase's title, tags and category inside one string
TAG_SEP = "\x1e"  # between the title part and the tag part of pinyin strings
TRIGGERS = "/;"

# Full-width ASCII (typed with an IME in full-width mode) -> ASCII, same length.
_FULLWIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}
_FULLWIDTH.update({0x3000: 0x20, 0: None, 0x02: None, 0x1E: None, 0x1F: None})


def normalize(s: str) -> str:
    """Lowercase with full-width ASCII folded; same length (spans stay valid)
    for all but a few exotic letters whose lowercase is longer."""
    return s.translate(_FULLWIDTH).lower()


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result.

    `field` is where it matched: "code", "title", "tags", "text", or for an
    empty query "usage" (agent's favourite) / "default" (team order).
    `how` is "exact", "prefix", "substring", "initials", "pinyin", "words"
    or "fuzzy". `span` is (start, end) in the phrase's title or text when the
    query appears there literally (for highlighting), else None.
    """

    phrase: Phrase
    score: float
    field: str
    how: str
    span: tuple[int, int] | None = None


class _Entry:
    __slots__ = (
        "block",
        "code",
        "full",
        "full_b",
        "full_title_len",
        "ini",
        "ini_title_len",
        "n",
        "name",
        "phrase",
        "text",
        "title",
        "title_full",
        "title_ini",
        "title_len",
    )

    def __init__(self, n: int, p: Phrase) -> None:
        self.n = n
        self.phrase = p
        self.block = -1
        self.code = p.code
        title = normalize(p.title)
        self.title = title
        self.title_len = len(title)
        self.name = SEP.join([title, *(normalize(t) for t in p.tags), normalize(p.category)])
        self.text = normalize(p.text)
        # Pinyin of the title (all heteronym variants), then of tags/category.
        ini_t, full_t, b_t = _pinyin_part((p.title,))
        # Title pinyin variants, for the sorted prefix lists.
        self.title_ini = tuple(ini_t.split(SEP)) if ini_t else ()
        self.title_full = tuple(full_t.split(SEP)) if full_t else ()
        ini_g, full_g, b_g = _pinyin_part((*p.tags, p.category))
        self.ini = ini_t + TAG_SEP + ini_g
        self.ini_title_len = len(ini_t)
        self.full = full_t + TAG_SEP + full_g
        self.full_title_len = len(full_t)
        self.full_b = b_t + b"\x01" + b_g


@lru_cache(maxsize=32768)
def _pinyin_part(strings: tuple[str, ...]) -> tuple[str, str, bytes]:
    """Pinyin variants of several strings joined by SEP, with a boundary map.

    The boundary map has 1 where a syllable (or a segment) starts, so a
    full-pinyin hit can be accepted only there.
    """
    inis: list[str] = []
    fulls: list[str] = []
    marks = bytearray()
    seen: set[str] = set()
    for s in strings:
        if not _HAN_RE.search(s):
            continue  # pinyin is for Chinese; English is matched as words
        keys = pinyin_keys(s)
        for full, ini, bounds in zip(keys.full, keys.initials, keys.bounds, strict=True):
            if not full or full in seen:
                continue
            seen.add(full)
            if ini not in inis:
                inis.append(ini)
            if fulls:
                marks.append(1)  # the SEP itself
            fulls.append(full)
            m = bytearray(len(full))
            for b in bounds:
                m[b] = 1
            marks += m
    return SEP.join(inis), SEP.join(fulls), bytes(marks)


class _Block:
    __slots__ = ("ents", "fields", "full_b")

    def __init__(self) -> None:
        self.ents: list[_Entry] = []
        # field name -> (blob, starts); blob = "\0" + "\0".join(strings) + "\0"
        self.fields: dict[str, tuple[str, list[int]]] = {}
        self.full_b = b""

    def rebuild(self) -> None:
        for name in _FIELDS:
            strings = [getattr(e, name) for e in self.ents]
            starts, off = [], 1
            for s in strings:
                starts.append(off)
                off += len(s) + 1
            self.fields[name] = ("\0" + "\0".join(strings) + "\0", starts)
        self.full_b = b"\0" + b"\0".join(e.full_b for e in self.ents) + b"\0"


_FIELDS = ("name", "text", "ini", "full")
_HAN_RE = re.compile(r"[\u4e00-\u9fff]")
_ASCII_RUN = re.compile(r"[a-z0-9]{3,}")
_ASCII_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_WORD_HEAD = re.compile(r"(?<![a-z0-9])[a-z0-9]{1,3}")
WORD = "\x02"  # mask-key prefix: "\x02ji" = some word starts with "ji"


def _grams(s: str) -> set[str]:
    """Mask keys of a field string: every 1- and 2-gram, plus 3-grams of ASCII runs.

    Chinese bigrams are already selective; English (and pinyin) bigrams are
    not, so ASCII runs also get trigrams. Chinese trigrams would cost memory
    for little gain. (map/zip keep the loops in C: this runs per phrase.)
    """
    out = set(s)
    out.update(map(str.__add__, s, s[1:]))
    if s.isascii():
        # One pass over the whole string; the extra keys spanning spaces or
        # punctuation are harmless (and help multi-word queries).
        out.update(map("".join, zip(s, s[1:], s[2:], strict=False)))
    else:
        for run in _ASCII_RUN.findall(s):
            out.update(map("".join, zip(run, run[1:], run[2:], strict=False)))
    # Word heads (first 1-3 letters of each ASCII word) for word-start scans:
    # "ji" must not visit every block that says "Beijing".
    for head in _WORD_HEAD.findall(s):
        out.add(WORD + head)
        if len(head) > 1:
            out.add(WORD + head[:1])
            if len(head) > 2:
                out.add(WORD + head[:2])
    return out


def _boundary_grams(full: str, marks: bytes) -> set[str]:
    """1-3 letter grams starting at syllable starts (where full-pinyin hits begin).

    A gram running into a separator is kept: it is harmless, since queries
    never contain separators.
    """
    out: set[str] = set()
    add = out.add
    i = marks.find(1)
    while i >= 0:
        add(full[i])
        add(full[i : i + 2])
        add(full[i : i + 3])
        i = marks.find(1, i + 1)
    return out


def _query_grams(q: str) -> list[str]:
    if len(q) < 2:
        return [q]
    grams = {q[i : i + 2] for i in range(len(q) - 1)}
    for run in _ASCII_RUN.findall(q):
        grams.update(run[i : i + 3] for i in range(len(run) - 2))
    # Longest (most selective) first, so an empty AND is found early.
    return sorted(grams, key=len, reverse=True)


def _bonus(score: float) -> float:
    # Saturating: used once ~ +12, three times ~ +25, ten times ~ +38, cap 50.
    return MAX_BONUS * score / (score + 3.0) if score > 0 else 0.0


def _word_start(s: str, pos: int) -> bool:
    return pos == 0 or not s[pos].isascii() or s[pos - 1] not in _ASCII_ALNUM


class _Acc:
    """Best match per entry while a query runs."""

    __slots__ = ("best", "scores")

    def __init__(self, scores: dict[str, float]) -> None:
        self.best: dict[int, tuple[float, _Entry, str, str, tuple[int, int] | None]] = {}
        self.scores = scores

    def add(
        self,
        e: _Entry,
        base: float,
        minor: float,
        field: str,
        how: str,
        span: tuple[int, int] | None = None,
    ) -> None:
        total = base + min(minor, MAX_MINOR) + _bonus(self.scores.get(e.phrase.id, 0.0))
        old = self.best.get(e.n)
        if old is None or old[0] < total:
            self.best[e.n] = (total, e, field, how, span)

    def kth(self, k: int) -> float:
        if len(self.best) < k:
            return float("-inf")
        return heapq.nlargest(k, (v[0] for v in self.best.values()))[-1]


class PhraseIndex:
    """Search over the phrases one agent can see (team + their own personal).

    Build it as the hub would: `PhraseIndex(all_phrases, agent_id="a007")`
    keeps team phrases and a007's personal phrases and ignores everyone
    else's, so a phrase broadcast to every desk can be fed to `add` blindly.
    """

    def __init__(
        self, phrases: Iterable[Phrase] = (), agent_id: str | None = None, *, cap: int = 48
    ) -> None:
        self.agent_id = agent_id
        self.cap = cap
        self._next_n = 0
        self._entries: dict[int, _Entry] = {}  # insertion (library) order
        self._by_id: dict[str, _Entry] = {}
        self._by_code: dict[str, list[_Entry]] = {}
        self._codes: list[str] = []  # sorted, for prefix lookups
        # Sorted (key, n) lists: title, title initials, title full pinyin. A
        # prefix query is a bisect, so the strongest tiers never need a scan.
        self._prefix: dict[str, list[tuple[str, int]]] = {"title": [], "ini": [], "full": []}
        self._blocks: list[_Block] = []
        self._tail: dict[bool, int] = {}  # kind (ASCII-only?) -> block being filled
        self._masks: dict[str, dict[str, int]] = {f: {} for f in _FIELDS}
        self._pending: dict[int, dict[str, set[str]]] = {}  # block -> field -> new grams
        self._vocab: Counter[str] = Counter()  # English words -> entries containing them
        self._vocab_sorted: list[str] = []  # for prefix lookups
        # Entries of each *rare* English word (None once a word is common):
        # a rare word is found by lookup instead of a scan, and a common one
        # fills the candidate cap after a few blocks, so neither is slow.
        self._word_sets: dict[str, set[int] | None] = {}
        self._choices: dict[int, tuple[list[str], set[str]]] = {}  # fuzzy choices by length
        self._version = 0
        self._usage_cache: tuple[object, ...] | None = None
        self._usage_view: tuple[dict[str, float], list[_Entry]] = ({}, [])
        dirty: set[int] = set()
        for p in phrases:
            if self.accepts(p):
                if p.id in self._by_id:
                    self._remove_entry(self._by_id[p.id], dirty)
                self._insert(p, dirty)
        self._commit(dirty)

    # -- membership ----------------------------------------------------------

    def accepts(self, p: Phrase) -> bool:
        """Whether `p` is visible to this index's agent."""
        return p.scope == "team" or (self.agent_id is not None and p.owner == self.agent_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, phrase_id: object) -> bool:
        return phrase_id in self._by_id

    def get(self, phrase_id: str) -> Phrase | None:
        e = self._by_id.get(phrase_id)
        return e.phrase if e else None

    def phrases(self) -> list[Phrase]:
        """All indexed phrases in library order."""
        return [e.phrase for e in self._entries.values()]

    def lookup_code(self, code: str, lang: str = "zh") -> Phrase | None:
        """The phrase a shortcode expands to in `lang`, falling back to zh.

        An agent's personal phrase shadows a team phrase with the same code,
        so agents can override team wording without renaming anything.
        """
        ents = self._by_code.get(code.lower(), [])
        for want in (lang, "zh") if lang != "zh" else ("zh",):
            found = [e.phrase for e in ents if e.phrase.lang == want]
            if found:
                found.sort(key=lambda p: (p.scope != "personal", -p.updated_at))
                return found[0]
        return None

    def twin(self, p: Phrase, lang: str) -> Phrase | None:
        """The `lang` version of `p` (same code, scope and owner), if indexed."""
        for e in self._by_code.get(p.code, []):
            q = e.phrase
            if q.lang == lang and q.scope == p.scope and q.owner == p.owner:
                return q
        return None

    def for_topic(self, topic: str, lang: str | None = None) -> list[Phrase]:
        """Phrases linked to a knowledge-base topic (e.g. the bot's handoff intent)."""
        return [
            e.phrase
            for e in self._entries.values()
            if e.phrase.topic == topic and (lang is None or e.phrase.lang == lang)
        ]

    # -- incremental updates -------------------------------------------------

    def add(self, p: Phrase) -> bool:
        """Insert or replace `p`; False (and no change) if not visible to this agent."""
        if not self.accepts(p):
            # A phrase may move out of view (e.g. re-scoped); drop the old copy.
            self.remove(p.id)
            return False
        dirty: set[int] = set()
        old = self._by_id.get(p.id)
        if old is not None:
            self._replace_entry(old, p, dirty)
        else:
            self._insert(p, dirty)
        self._commit(dirty)
        return True

    replace = add  # same operation; the name reads better at call sites

    def remove(self, phrase_id: str) -> bool:
        e = self._by_id.get(phrase_id)
        if e is None:
            return False
        dirty: set[int] = set()
        self._remove_entry(e, dirty)
        self._commit(dirty)
        return True

    def _insert(self, p: Phrase, dirty: set[int]) -> None:
        e = _Entry(self._next_n, p)
        self._next_n += 1
        # ASCII-only phrases (English) get their own blocks: their blobs stay
        # 1 byte per character (faster find), and Chinese-gram masks never
        # point at them, nor ASCII-trigram masks at most Chinese blocks.
        kind = e.text.isascii()
        tail = self._tail.get(kind)
        if tail is None or len(self._blocks[tail].ents) >= BLOCK:
            self._blocks.append(_Block())
            tail = self._tail[kind] = len(self._blocks) - 1
        e.block = tail
        self._blocks[tail].ents.append(e)
        self._link(e)
        dirty.add(e.block)

    def _replace_entry(self, old: _Entry, p: Phrase, dirty: set[int]) -> None:
        # Keep the library position (same n, same block slot).
        self._unlink(old, keep_slot=True)
        e = _Entry(old.n, p)
        e.block = old.block
        ents = self._blocks[e.block].ents
        ents[ents.index(old)] = e
        self._link(e)
        dirty.add(e.block)

    def _remove_entry(self, e: _Entry, dirty: set[int]) -> None:
        self._unlink(e)
        self._blocks[e.block].ents.remove(e)
        dirty.add(e.block)

    def _link(self, e: _Entry) -> None:
        self._entries[e.n] = e  # a replaced entry keeps its key, so its place
        self._by_id[e.phrase.id] = e
        lst = self._by_code.setdefault(e.code, [])
        if not lst:
            insort(self._codes, e.code)
        lst.append(e)
        for kind, keys in self._prefix_keys(e):
            for k in keys:
                insort(self._prefix[kind], (k, e.n))
        # Grams are collected per block and ORed into the masks once per block
        # in _commit: far fewer dict updates than once per phrase.
        if e.block not in self._pending and len(self._pending) >= 4:
            self._flush_masks()  # bound the memory a bulk build holds
        pending = self._pending.setdefault(e.block, {f: set() for f in _FIELDS})
        for field in _FIELDS:
            if field == "full":
                pending[field] |= _boundary_grams(e.full, e.full_b)
            else:
                pending[field] |= _grams(getattr(e, field))
        for w in _english_words(e):
            if self._vocab[w] == 0:
                self._add_choice(w)
                insort(self._vocab_sorted, w)
                self._word_sets[w] = set()
            self._vocab[w] += 1
            posting = self._word_sets[w]
            if posting is not None:
                posting.add(e.n)
                if len(posting) > RARE:
                    self._word_sets[w] = None
        self._version += 1

    def _commit(self, dirty: set[int]) -> None:
        """Finish an update: OR pending grams into the masks, re-join changed blocks."""
        self._flush_masks()
        for b in dirty:
            self._blocks[b].rebuild()

    def _flush_masks(self) -> None:
        for b, fields in self._pending.items():
            bit = 1 << b
            for field, grams in fields.items():
                masks = self._masks[field]
                get = masks.get
                for g in grams:
                    masks[g] = get(g, 0) | bit
        self._pending.clear()

    def _unlink(self, e: _Entry, *, keep_slot: bool = False) -> None:
        if not keep_slot:
            del self._entries[e.n]
        del self._by_id[e.phrase.id]
        lst = self._by_code[e.code]
        lst.remove(e)
        if not lst:
            del self._by_code[e.code]
            i = bisect_left(self._codes, e.code)
            del self._codes[i]
        for kind, keys in self._prefix_keys(e):
            lst2 = self._prefix[kind]
            for k in keys:
                i = bisect_left(lst2, (k, e.n))
                if i < len(lst2) and lst2[i] == (k, e.n):
                    del lst2[i]
        for w in _english_words(e):
            self._vocab[w] -= 1
            posting = self._word_sets[w]
            if posting is not None:
                posting.discard(e.n)
            if self._vocab[w] <= 0:
                # Stale fuzzy choices are harmless: their lookups find nothing.
                del self._vocab[w]
                del self._word_sets[w]
                del self._vocab_sorted[bisect_left(self._vocab_sorted, w)]
        self._version += 1

    @staticmethod
    def _prefix_keys(e: _Entry) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return (("title", (e.title,)), ("ini", e.title_ini), ("full", e.title_full))

    def _add_choice(self, w: str) -> None:
        for length, (choices, seen) in self._choices.items():
            for c in _choices_from(w, length):
                if c not in seen:
                    seen.add(c)
                    choices.append(c)

    # -- usage ---------------------------------------------------------------

    def _usage(self, usage: UsageStats | None, now: float) -> tuple[dict[str, float], list[_Entry]]:
        if usage is None or self.agent_id is None:
            return {}, []
        # Scores move slowly; recompute when usage or the index changed, or
        # once a minute, not on every keystroke.
        key = (id(usage), usage.revision(self.agent_id), int(now // 60), self._version)
        if key != self._usage_cache:
            scores = usage.scores(self.agent_id, now)
            used = [self._by_id[pid] for pid in scores if pid in self._by_id]
            used.sort(key=lambda e: (-scores[e.phrase.id], e.n))
            self._usage_cache = key
            self._usage_view = (scores, used)
        return self._usage_view

    # -- search --------------------------------------------------------------

    def search(
        self,
        query: str,
        limit: int = 20,
        usage: UsageStats | None = None,
        now: float | None = None,
        *,
        lang: str | None = None,
    ) -> list[Hit]:
        """Best `limit` phrases for `query`, best first.

        `usage` ranks this agent's favourites up (decayed at `now`, default the
        current time). With `lang`, hits are shown in that language: a match
        on the zh phrase returns its en twin, so Chinese or pinyin queries work
        in an English chat. An empty query lists the agent's most used
        phrases, then team phrases in library order.
        """
        if limit <= 0:
            return []
        now = time.time() if now is None else now
        scores, used = self._usage(usage, now)
        q = normalize(query).strip()
        if q[:1] in TRIGGERS and len(q) > 1:
            q = q[1:].strip()  # "/gs" typed into the search box
        want = limit * 2 if lang else limit  # twins merge when shown in one language
        if not q:
            hits = self._defaults(want, scores, used)
        else:
            acc = _Acc(scores)
            _Run(self, q, want, acc, used[:HOT]).run()
            ranked = heapq.nsmallest(want, acc.best.values(), key=lambda v: (-v[0], v[1].n))
            hits = [Hit(e.phrase, round(sc, 3), f, h, sp) for sc, e, f, h, sp in ranked]
        if lang:
            hits = self._in_lang(hits, lang)
        return hits[:limit]

    def _in_lang(self, hits: list[Hit], lang: str) -> list[Hit]:
        out: list[Hit] = []
        seen: set[str] = set()
        for h in hits:
            p = h.phrase
            if p.lang != lang:
                twin = self.twin(p, lang)
                if twin is not None:
                    h = Hit(twin, h.score, h.field, h.how, None)
            if h.phrase.id not in seen:
                seen.add(h.phrase.id)
                out.append(h)
        return out

    def _defaults(self, limit: int, scores: dict[str, float], used: list[_Entry]) -> list[Hit]:
        hits = [
            Hit(e.phrase, round(scores[e.phrase.id], 3), "usage", "recent") for e in used[:limit]
        ]
        seen = {h.phrase.id for h in hits}
        for e in self._entries.values():
            if len(hits) >= limit:
                break
            if e.phrase.scope == "team" and e.phrase.id not in seen:
                hits.append(Hit(e.phrase, 0.0, "default", "default"))
        return hits

    def _needs_fuzzy(self, tok: str) -> bool:
        """A typo candidate: long enough, English letters, and not a known word or prefix."""
        if len(tok) < 4 or not tok.isascii() or not tok.isalpha():
            return False
        return not self._is_word_prefix(tok)

    def _is_word_prefix(self, tok: str) -> bool:
        vs = self._vocab_sorted
        i = bisect_left(vs, tok)
        return i < len(vs) and vs[i].startswith(tok)

    def _word_candidates(self, tok: str) -> list[_Entry] | None:
        """Entries with a word starting with `tok`, if that is cheap to know.

        Only for English letter tokens of 3+ letters (the vocabulary's
        words). Returns [] when no word starts with `tok` (a match could only
        be mid-word, which is noise), a list when every such word is rare,
        and None when a scan is needed (a common word, or too many words).
        """
        if len(tok) < 3 or not tok.isascii() or not tok.isalpha():
            return None
        vs, sets = self._vocab_sorted, self._word_sets
        i = bisect_left(vs, tok)
        found: set[int] = set()
        words = 0
        while i < len(vs) and vs[i].startswith(tok):
            posting = sets[vs[i]]
            words += 1
            if posting is None or words > 32:
                return None
            found |= posting
            if len(found) > RARE:
                return None
            i += 1
        entries = self._entries
        return [entries[n] for n in sorted(found)]

    def _close_words(self, q: str) -> list[tuple[str, float]]:
        """Vocabulary words (or word prefixes) within a typo or two of `q`, closest first."""
        choices = self._choices_for(len(q))
        if not choices:
            return []
        max_dist = 1 if len(q) <= 6 else 2
        found = process.extract(q, choices, scorer=OSA.distance, score_cutoff=max_dist, limit=5)
        return [(c, d) for c, d, _ in found if c != q]

    def _choices_for(self, length: int) -> list[str]:
        got = self._choices.get(length)
        if got is None:
            seen: set[str] = set()
            for w in self._vocab:
                seen.update(_choices_from(w, length))
            got = self._choices[length] = (sorted(seen), seen)
        return got[0]

    # -- the block scan ------------------------------------------------------

    def _scan(
        self,
        field: str,
        q: str,
        cap: int,
        *,
        bounded: bool = False,
        word_start: bool = False,
    ) -> Iterator[tuple[_Entry, int]]:
        """(entry, offset of the first acceptable match) for up to `cap` entries."""
        masks = self._masks[field]
        mask = -1
        # A full-pinyin hit starts at a syllable, so only the query's first
        # three letters, anchored there, can be looked up.
        grams = [q[:3]] if field == "full" else _query_grams(q)
        if word_start:
            grams.append(WORD + q[:3])
        for g in grams:
            mask &= masks.get(g, 0)
            if not mask:
                return
        found = 0
        blocks = self._blocks
        while mask:
            low = mask & -mask
            mask ^= low
            blk = blocks[low.bit_length() - 1]
            blob, starts = blk.fields[field]
            i = blob.find(q)
            while i >= 0:
                k = bisect_right(starts, i) - 1
                pos = i - starts[k]
                ok = True
                if bounded:
                    ok = blk.full_b[i] == 1
                elif word_start:
                    ok = pos == 0 or blob[i - 1] not in _ASCII_ALNUM
                if not ok:
                    i = blob.find(q, i + 1)
                    continue
                yield blk.ents[k], pos
                found += 1
                if found >= cap:
                    return
                # Skip to the next entry: one (the earliest) match per entry.
                i = blob.find(q, starts[k + 1]) if k + 1 < len(starts) else -1


class _Run:
    """One query: passes from the strongest tier down, stopping when settled.

    Every pass first tests the agent's hot (most used) entries directly, then
    looks at the rest, keeping at most `cap` new candidates.
    """

    __slots__ = ("acc", "ascii", "cap", "direct", "hot", "ix", "q", "want")

    def __init__(self, ix: PhraseIndex, q: str, want: int, acc: _Acc, hot: list[_Entry]) -> None:
        self.ix = ix
        self.q = q
        self.want = want
        self.acc = acc
        self.hot = hot
        # Within a tier, candidates differ only by small "minor" scores, so a
        # few more than needed is enough.
        self.cap = min(ix.cap, want + 8)
        self.direct = False  # name and text already matched from word postings
        # English/ASCII queries match at word starts only: "ud" must not hit
        # "fraud". Chinese has no word boundaries, so any position counts.
        self.ascii = q.isascii() and q[:1] in _ASCII_ALNUM

    def enough(self, next_base: int) -> bool:
        """True when no hit of a tier starting at `next_base` could make the list."""
        return self.acc.kth(self.want) >= next_base + MAX_MINOR + MAX_BONUS

    def run(self) -> None:
        q = self.q
        tokens = q.split()
        pinyin = q.replace(" ", "").replace("'", "") if is_pinyin_query(q) else ""
        self.codes()
        if self.enough(TITLE_PREFIX):
            return
        self.title_prefix()
        if pinyin:
            self.pinyin_prefix(pinyin)
        if self.enough(TITLE_SUB):
            return
        if len(tokens) > 1:
            # Whole-query name/text matches are found among the word
            # candidates (a phrase containing the query contains each word).
            if pinyin and not self.enough(TITLE_PINYIN_SUB):
                self.pinyin_scan(pinyin)
            if not self.enough(TEXT):
                self.words(tokens)
            return
        self.name_scan()
        if pinyin and len(pinyin) > 1 and not self.enough(TITLE_PINYIN_SUB):
            self.pinyin_scan(pinyin)
        if self.enough(TEXT):
            return
        if len(q) >= 2:
            self.text_scan()
        if self.ix._needs_fuzzy(q) and not self.enough(FUZZY_NAME):
            self.fuzzy()

    # -- tiers ---------------------------------------------------------------

    def codes(self) -> None:
        ix, q, acc = self.ix, self.q, self.acc
        for e in ix._by_code.get(q, ()):
            acc.add(e, CODE_EXACT, 0, "code", "exact")
        codes = ix._codes
        i = bisect_left(codes, q)
        taken = 0
        while i < len(codes) and codes[i].startswith(q) and taken < self.cap:
            code = codes[i]
            if code != q:
                minor = MAX_MINOR - 2 * min(len(code) - len(q), 12)
                for e in ix._by_code[code]:
                    acc.add(e, CODE_PREFIX, minor, "code", "prefix")
                    taken += 1
            i += 1
        for e in self.hot:
            if e.code.startswith(q) and e.code != q:
                acc.add(
                    e, CODE_PREFIX, MAX_MINOR - 2 * min(len(e.code) - len(q), 12), "code", "prefix"
                )

    def _prefixed(self, kind: str, q: str) -> Iterator[tuple[str, _Entry]]:
        keys = self.ix._prefix[kind]
        entries = self.ix._entries
        i = bisect_left(keys, (q, -1))
        end = min(len(keys), i + self.cap)
        while i < end:
            key, n = keys[i]
            if not key.startswith(q):
                return
            yield key, entries[n]
            i += 1

    def title_prefix(self) -> None:
        q, n = self.q, len(self.q)
        for e in self.hot:
            if e.title.startswith(q):
                self._title_prefix_hit(e, n)
        for _, e in self._prefixed("title", q):
            self._title_prefix_hit(e, n)

    def _title_prefix_hit(self, e: _Entry, n: int) -> None:
        how = "exact" if n == e.title_len else "prefix"
        self.acc.add(e, TITLE_PREFIX, MAX_MINOR * n / e.title_len, "title", how, (0, n))

    def pinyin_prefix(self, q: str) -> None:
        acc = self.acc
        for kind, how in (("ini", "initials"), ("full", "pinyin")):
            if kind == "full" and len(q) < 2:
                continue
            for e in self.hot:
                for key in e.title_ini if kind == "ini" else e.title_full:
                    if key.startswith(q):
                        minor = 10 + 15 * len(q) / len(key)
                        acc.add(e, TITLE_PINYIN_PREFIX, minor, "title", how)
            for key, e in self._prefixed(kind, q):
                acc.add(e, TITLE_PINYIN_PREFIX, 10 + 15 * len(q) / len(key), "title", how)

    def name_scan(self) -> None:
        q = self.q
        for e in self.hot:
            pos = _find_word(e.name, q) if self.ascii else e.name.find(q)
            if pos >= 0:
                self._name_hit(e, pos)
        direct = self.ix._word_candidates(q)
        if direct is not None:
            # Name hits first, then body text, each capped: the list may
            # hold a few hundred phrases of one medium-frequency word.
            self.direct = True
            found = 0
            for e in direct:
                pos = _find_word(e.name, q)
                if pos >= 0:
                    self._name_hit(e, pos)
                    found += 1
                    if found >= self.cap:
                        break
            found = 0
            for e in direct:
                pos = _find_word(e.text, q)
                if pos >= 0:
                    self._text_hit(e, pos)
                    found += 1
                    if found >= self.cap:
                        break
            return
        for e, pos in self.ix._scan("name", q, self.cap, word_start=self.ascii):
            self._name_hit(e, pos)

    def _name_hit(self, e: _Entry, pos: int) -> None:
        n = len(self.q)
        if pos == 0:
            self._title_prefix_hit(e, n)
        elif pos < e.title_len:
            minor = 10 * n / e.title_len + (5 if _word_start(e.name, pos) else 0)
            self.acc.add(e, TITLE_SUB, minor, "title", "substring", (pos, pos + n))
        else:
            name = e.name
            at_start = name[pos - 1] == SEP
            whole = at_start and (pos + n == len(name) or name[pos + n] == SEP)
            self.acc.add(e, TAG, 20 if whole else (10 if at_start else 0), "tags", "substring")

    def pinyin_scan(self, q: str) -> None:
        """Pinyin matches inside titles (not at the start) and in tags/category."""
        ix = self.ix
        for e in self.hot:
            pos = e.ini.find(q)
            if pos >= 0:
                self._ini_hit(e, pos, q)
            pos = _find_bounded(e.full, e.full_b, q)
            if pos >= 0:
                self._full_hit(e, pos, q)
        for e, pos in ix._scan("ini", q, self.cap):
            self._ini_hit(e, pos, q)
        for e, pos in ix._scan("full", q, self.cap, bounded=True):
            self._full_hit(e, pos, q)

    def _ini_hit(self, e: _Entry, pos: int, q: str) -> None:
        if pos < e.ini_title_len:
            if pos > 0 and e.ini[pos - 1] not in (SEP, TAG_SEP):
                self.acc.add(e, TITLE_PINYIN_SUB, 5, "title", "initials")
        else:
            start = e.ini[pos - 1] in (SEP, TAG_SEP)
            self.acc.add(e, TAG_PINYIN, 10 if start else 0, "tags", "initials")

    def _full_hit(self, e: _Entry, pos: int, q: str) -> None:
        if pos < e.full_title_len:
            if pos > 0 and e.full[pos - 1] not in (SEP, TAG_SEP):
                self.acc.add(e, TITLE_PINYIN_SUB, 8, "title", "pinyin")
        else:
            start = e.full[pos - 1] in (SEP, TAG_SEP)
            self.acc.add(e, TAG_PINYIN, 12 if start else 2, "tags", "pinyin")

    def _text_hit(self, e: _Entry, pos: int) -> None:
        minor = 10 if pos == 0 else (5 if _word_start(e.text, pos) else 0)
        self.acc.add(e, TEXT, minor, "text", "substring", (pos, pos + len(self.q)))

    def text_scan(self) -> None:
        q = self.q
        if self.direct:
            return
        for e in self.hot:
            pos = _find_word(e.text, q) if self.ascii else e.text.find(q)
            if pos >= 0:
                self._text_hit(e, pos)
        for e, pos in self.ix._scan("text", q, self.cap, word_start=self.ascii):
            self._text_hit(e, pos)

    def words(self, tokens: list[str]) -> None:
        """Every token somewhere in the phrase, any order ("card lost" finds "Lost card").

        Also scores the whole query as a title or body-text substring: a
        phrase that contains it contains every token, so it is among the
        candidates and no separate scan for the whole query is needed.
        """
        ix, q = self.ix, self.q
        options: list[list[str]] = []
        for tok in tokens:
            alts = [tok]
            if ix._needs_fuzzy(tok):
                close = ix._close_words(tok)
                # Only the closest spellings, and not "transfers" when
                # "transfer" (a substring of it) is already searched.
                for w, d in close:
                    if d == close[0][1] and not any(w.startswith(a) for a in alts[1:]):
                        alts.append(w)
                del alts[4:]
            options.append(alts)
        # Drive from the longest token (most selective), verify the rest.
        driver = options[max(range(len(tokens)), key=lambda i: len(tokens[i]))]
        candidates: dict[int, _Entry] = {e.n: e for e in self.hot}
        most = len(candidates) + 2 * self.cap
        for alt in driver:
            direct = ix._word_candidates(alt)
            if direct is not None:
                for e in direct:
                    candidates[e.n] = e
                    if len(candidates) >= most:
                        break
                continue
            for field in ("name", "text"):
                for e, _ in ix._scan(field, alt, self.cap):
                    candidates[e.n] = e
        pairs = list(zip(tokens, options, strict=True))
        for e in candidates.values():
            name, text = e.name, e.text
            pos = name.find(q)
            if pos >= 0:
                self._name_hit(e, pos)
            pos = text.find(q)
            if pos >= 0:
                self._text_hit(e, pos)
            in_name = True
            fuzzy_tokens = 0
            for tok, alts in pairs:
                for a in alts:
                    if a in name:
                        break
                else:
                    in_name = False
                    for a in alts:
                        if a in text:
                            break
                    else:
                        break  # this token is missing: not a hit
                if a != tok:
                    fuzzy_tokens += 1
            else:
                minor = (10 if in_name else 0) + 10 - 5 * fuzzy_tokens
                field = "title" if in_name else "text"
                self.acc.add(e, WORDS, minor, field, "fuzzy" if fuzzy_tokens else "words")

    def fuzzy(self) -> None:
        """Close vocabulary words, closest first, until enough phrases are found."""
        ix = self.ix
        found = 0
        close = ix._close_words(self.q)
        for field, base in (("name", FUZZY_NAME), ("text", FUZZY_TEXT)):
            for word, dist in close:
                minor = MAX_MINOR - 10 * dist
                for e in self.hot:
                    pos = _find_word(getattr(e, field), word)
                    if pos >= 0:
                        self._fuzzy_hit(e, field, pos, word, base, minor)
                if found >= self.cap:
                    continue
                direct = ix._word_candidates(word)
                if direct is not None:
                    for e in direct:
                        pos = _find_word(getattr(e, field), word)
                        if pos >= 0:
                            self._fuzzy_hit(e, field, pos, word, base, minor)
                            found += 1
                    continue
                for e, pos in ix._scan(field, word, self.cap - found, word_start=True):
                    self._fuzzy_hit(e, field, pos, word, base, minor)
                    found += 1

    def _fuzzy_hit(
        self, e: _Entry, field: str, pos: int, word: str, base: int, minor: float
    ) -> None:
        if field == "text":
            self.acc.add(e, base, minor, "text", "fuzzy", (pos, pos + len(word)))
        else:
            in_title = pos < e.title_len
            self.acc.add(
                e, base, minor + (5 if in_title else 0), "title" if in_title else "tags", "fuzzy"
            )


_WORD_RE = re.compile(r"[a-z]{3,}")


def _english_words(e: _Entry) -> set[str]:
    return set(_WORD_RE.findall(e.name)) | set(_WORD_RE.findall(e.text))


def _choices_from(w: str, length: int) -> list[str]:
    # A same-length prefix (the word still being typed) and, when the length
    # is close, the whole word (a finished word with a typo).
    out = []
    if len(w) > length:
        out.append(w[:length])
    if abs(len(w) - length) <= 2:
        out.append(w)
    return out


def _find_bounded(s: str, marks: bytes, q: str) -> int:
    i = s.find(q)
    while i >= 0:
        if marks[i] == 1:
            return i
        i = s.find(q, i + 1)
    return -1


def _find_word(s: str, w: str) -> int:
    i = s.find(w)
    while i >= 0:
        if i == 0 or s[i - 1] not in _ASCII_ALNUM:
            return i
        i = s.find(w, i + 1)
    return -1


def clear_caches() -> None:
    """Forget cached pinyin (for cold-start measurements; never needed otherwise)."""
    _pinyin_part.cache_clear()
    pinyin_keys.cache_clear()
