"""Find the knowledge-base topic a customer's message is about, or admit there is none.

Chinese is matched without word segmentation: each phrasing becomes character
unigrams and bigrams, weighted by how rare they are across topics (IDF built
from the KB itself). English uses stemmed words and word bigrams. Before
scoring, a query's unknown bigrams are repaired against the KB vocabulary:
a homophone via toneless pinyin (挂矢 -> 挂失, 转帐 -> 转账), an English typo via
edit distance (pasword -> password).

Each topic is one document: its questions, keywords and title, plus (at a
lower weight) its answer. Three signals, each 0..1, are blended:
  doc    cosine between the query and the topic document
  cover  share of the query's weight the topic's vocabulary explains; what is
         left unexplained ("机票", "天气") is what marks an out-of-scope question
  kw     share of the query taken by a keyword of the topic said in full
and the blend is mapped onto a 0..1 confidence that is 0.5 at `half_at`, the
evidence the bot needs to answer. A match that looks strong but is unsure is
then pushed down into the "offer a choice" band: when the query shares no
rare term with the topic (a bare "信用卡" or "转账" fits a dozen topics), or
when two topics tie. Scoring each question separately (max over phrasings)
was tried and dropped: on bench/bot_eval.py it added nothing to the document.
All indexes are built once in __init__; a match is a few dictionary walks.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from rapidfuzz import process
from rapidfuzz.distance import OSA

from .kb import KnowledgeBase
from .text import CJK_RE, detect_lang, en_tokens, pinyin_of, zh_segments

# Characters that never make a bigram a term of its own (see _is_term).
_ZH_FUNCTION_CHARS = frozenset("的们我你您他她它")

# Confidence at or above which the bot answers outright, and the lower bound of
# the "did you mean one of these?" band. Chosen with bench/bot_eval.py.
ANSWER_THRESHOLD = 0.5
OFFER_THRESHOLD = 0.35


@dataclass(frozen=True, slots=True)
class Match:
    """One candidate topic for a message."""

    entry_id: str
    score: float  # confidence 0..1
    lang: str  # the language whose phrasings matched ("zh" or "en")


@dataclass(frozen=True, slots=True)
class MatcherConfig:
    """Scoring knobs; the defaults are what bench/bot_eval.py was tuned with."""

    unigram_weight: float = 1.0  # zh single characters, relative to bigrams
    en_bigram_weight: float = 0.5  # English word pairs, relative to single words
    unknown_df: float = 0.5  # a feature no topic uses counts as this rare
    answer_weight: float = 0.5  # the answer's words in the topic document
    w_doc: float = 0.7
    w_cover: float = 0.1
    w_kw: float = 0.2
    half_at: float = 0.14  # blended evidence that maps to confidence 0.5
    # Two ways a match is unsure however strong it looks, and then its
    # confidence is scaled by `unsure_factor`, down into the band where the
    # bot offers a choice instead of answering:
    # - the query shares no term (char bigram / English word) with the topic
    #   that at most `specific_share` of the topics use (4 of 76): "信用卡"
    #   alone fits fifteen;
    # - another topic scores within `tie_margin` of it (then all are scaled).
    specific_share: float = 0.05
    tie_margin: float = 0.02
    unsure_factor: float = 0.55


class _LangIndex:
    """Everything needed to score one language against every entry."""

    def __init__(self, lang: str, kb: KnowledgeBase, cfg: MatcherConfig) -> None:
        self.lang = lang
        self.cfg = cfg
        self.entry_ids = list(kb.ids)
        phrased: list[Counter[str]] = []  # per entry: questions, keywords, title
        answered: list[set[str]] = []  # per entry: the answer's features
        keywords: list[tuple[int, frozenset[str]]] = []
        bigrams: Counter[str] = Counter()
        words: Counter[str] = Counter()
        for eidx, entry in enumerate(kb):
            doc: Counter[str] = Counter()
            title = entry.title.en if lang == "en" else entry.title.zh
            for text in (*entry.questions.get(lang), *([title] if title else [])):
                units = self._units(text)
                doc.update(self._features(units))
                self._vocab(units, bigrams, words)
            for text in entry.keywords.get(lang):
                units = self._units(text)
                feats = frozenset(self._features(units))
                if feats:
                    keywords.append((eidx, feats))
                    doc.update(feats)
                self._vocab(units, bigrams, words)
            phrased.append(doc)
            # The answer's words count too, lightly: customers describe a
            # problem in words the answer uses ("境外", "报警") as much as in
            # the questions' words. Only English answers for English.
            answer = entry.answer.en if lang == "en" else entry.answer.zh
            answered.append(set(self._features(self._units(answer or ""))))

        n = max(len(kb), 1)
        df: Counter[str] = Counter()
        phrased_df: Counter[str] = Counter()
        for doc, ans in zip(phrased, answered, strict=True):
            df.update(doc.keys() | ans)
            phrased_df.update(doc.keys())
        # feature -> topics whose phrasings use it, for terms few topics use.
        self.specific: dict[str, list[int]] = defaultdict(list)
        few = max(1, round(cfg.specific_share * n))
        for eidx, doc in enumerate(phrased):
            for f in doc:
                if phrased_df[f] <= few and self._is_term(f):
                    self.specific[f].append(eidx)
        self.idf = {f: math.log(1 + n / d) for f, d in df.items()}
        self.unknown_idf = math.log(1 + n / cfg.unknown_df)

        # Postings: feature -> [(entry index, weight in the unit-length topic vector)].
        self.d_post: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for eidx, (doc, ans) in enumerate(zip(phrased, answered, strict=True)):
            vec = {f: (1 + math.log(c)) * self._weight(f) for f, c in doc.items()}
            for f in ans:
                vec[f] = vec.get(f, 0.0) + cfg.answer_weight * self._weight(f)
            norm = _norm(vec.values()) or 1.0
            for f, w in vec.items():
                self.d_post[f].append((eidx, w / norm))
        self.kw_post: dict[str, list[int]] = defaultdict(list)
        for kidx, (_eidx, feats) in enumerate(keywords):
            for f in feats:
                self.kw_post[f].append(kidx)
        self.keywords = keywords

        # Typo repair tables: a pinyin pair -> the commonest KB bigram that sounds
        # like it; the English word list for edit-distance lookup.
        self.bigrams = frozenset(bigrams)
        by_sound: dict[tuple[str, str], tuple[int, str]] = {}
        for bg, count in bigrams.items():
            key = (pinyin_of(bg[0]), pinyin_of(bg[1]))
            if key not in by_sound or count > by_sound[key][0]:
                by_sound[key] = (count, bg)
        self.by_sound = {k: bg for k, (_c, bg) in by_sound.items()}
        self.word_set = frozenset(words)
        self.words_by_initial: dict[str, list[str]] = defaultdict(list)
        for word in sorted(words):
            self.words_by_initial[word[0]].append(word)

    # -- text to features -------------------------------------------------

    def _units(self, text: str) -> list[list[str]]:
        if self.lang == "zh":
            return zh_segments(text)
        tokens = en_tokens(text)
        return [tokens] if tokens else []

    def _features(self, segments: list[list[str]]) -> Iterable[str]:
        if self.lang == "zh":
            for units in segments:
                for i, unit in enumerate(units):
                    yield "1" + unit
                    if i + 1 < len(units):
                        yield "2" + unit + "\x1f" + units[i + 1]
        else:
            for tokens in segments:
                for i, tok in enumerate(tokens):
                    yield "1" + tok
                    if i + 1 < len(tokens):
                        yield "2" + tok + "\x1f" + tokens[i + 1]

    def _vocab(self, segments: list[list[str]], bigrams: Counter[str], words: Counter[str]) -> None:
        for units in segments:
            if self.lang == "zh":
                for a, b in itertools.pairwise(units):
                    if CJK_RE.match(a) and CJK_RE.match(b):
                        bigrams[a + b] += 1
            else:
                words.update(units)

    def _is_term(self, feature: str) -> bool:
        """Whether a feature can carry meaning on its own: an English word or
        pair, or a Chinese bigram without a function character (的账 and 们银
        are rare only because they straddle two words)."""
        if self.lang == "en":
            return True
        return feature[0] == "2" and not any(ch in _ZH_FUNCTION_CHARS for ch in feature)

    def _weight(self, feature: str) -> float:
        idf = self.idf.get(feature, self.unknown_idf)
        if feature[0] == "1":
            return idf * (self.cfg.unigram_weight if self.lang == "zh" else 1.0)
        return idf * (1.0 if self.lang == "zh" else self.cfg.en_bigram_weight)

    # -- typo repair --------------------------------------------------------

    def repair(self, segments: list[list[str]]) -> list[list[str]]:
        if self.lang == "zh":
            return [self._repair_zh(units) for units in segments]
        return [[self._repair_en(tok) for tok in tokens] for tokens in segments]

    def _repair_zh(self, units: list[str]) -> list[str]:
        units = list(units)
        for i in range(len(units) - 1):
            pair = units[i] + units[i + 1]
            if (
                len(pair) != 2
                or pair in self.bigrams
                or not CJK_RE.match(pair[0])
                or not CJK_RE.match(pair[1])
            ):
                continue
            fixed = self.by_sound.get((pinyin_of(pair[0]), pinyin_of(pair[1])))
            if fixed is None:
                continue
            # Only keep the repair if the neighbourhood reads more like the KB
            # afterwards, so a correct word we simply do not know stays put.
            before = self._known_pairs(units, i)
            trial = [*units[:i], fixed[0], fixed[1], *units[i + 2 :]]
            if self._known_pairs(trial, i) > before:
                units = trial
        return units

    def _known_pairs(self, units: list[str], i: int) -> int:
        lo, hi = max(0, i - 1), min(len(units) - 1, i + 2)
        return sum(units[j] + units[j + 1] in self.bigrams for j in range(lo, hi))

    def _repair_en(self, token: str) -> str:
        # One slip per word (two in long words; a swap counts as one), never
        # the first letter:
        # "pasword" -> "password", but "story" must not become "history".
        if token in self.word_set or len(token) < 4 or token.isdigit():
            return token
        limit = 1 if len(token) < 8 else 2
        candidates = [
            w for w in self.words_by_initial.get(token[0], ()) if abs(len(w) - len(token)) <= limit
        ]
        best = process.extractOne(token, candidates, scorer=OSA.distance, score_cutoff=limit)
        return best[0] if best else token

    # -- scoring ------------------------------------------------------------

    def signals(self, text: str) -> dict[int, tuple[float, float, float, bool]]:
        """Per entry index: (doc, cover, kw, specific); see the module docstring."""
        feats = set(self._features(self.repair(self._units(text))))
        if not feats:
            return {}
        specific = {eidx for f in feats for eidx in self.specific.get(f, ())}
        qvec = {f: self._weight(f) for f in feats}
        qnorm = _norm(qvec.values())
        qsum = sum(qvec.values())

        dot: dict[int, float] = defaultdict(float)
        cover: dict[int, float] = defaultdict(float)
        kw_hits: dict[int, int] = defaultdict(int)
        for f, w in qvec.items():
            for eidx, dw in self.d_post.get(f, ()):
                dot[eidx] += w * dw
                cover[eidx] += w
            for kidx in self.kw_post.get(f, ()):
                kw_hits[kidx] += 1
        # A keyword counts only when all of its features are in the query
        # (the whole keyword was said); it then covers that share of the query.
        # One said inside a longer keyword of another topic does not count:
        # "解除挂失" is about cancelling a report, not about 挂失.
        said = [self.keywords[k] for k, hits in kw_hits.items() if hits == len(self.keywords[k][1])]
        kw: dict[int, float] = defaultdict(float)
        for eidx, kfeats in said:
            if any(other > kfeats and oe != eidx for oe, other in said):
                continue
            kw[eidx] = max(kw[eidx], sum(qvec[f] for f in kfeats) / qsum)
        return {
            eidx: (dot[eidx] / qnorm, cover[eidx] / qsum, kw.get(eidx, 0.0), eidx in specific)
            for eidx in dot
        }

    def score(self, text: str) -> dict[int, float]:
        """Per entry index: confidence 0..1 (0.5 where the blend reaches `half_at`)."""
        cfg = self.cfg
        rate = math.log(2) / cfg.half_at
        scores = {}
        for eidx, (d, c, k, specific) in self.signals(text).items():
            conf = 1.0 - math.exp(-rate * (cfg.w_doc * d + cfg.w_cover * c + cfg.w_kw * k))
            scores[eidx] = conf if specific else conf * cfg.unsure_factor
        if len(scores) > 1:
            best, second = heapq.nlargest(2, scores.values())
            # A tie is never more than half sure. Everything is scaled alike
            # so the ranking (and the choice offered) stays as it was.
            if best > 0.5 and best - second < cfg.tie_margin:
                scores = {eidx: conf * cfg.unsure_factor for eidx, conf in scores.items()}
        return scores


class Matcher:
    """Rank knowledge-base topics for a message; indexes are built once, here."""

    def __init__(
        self,
        kb: KnowledgeBase,
        *,
        floor: float = OFFER_THRESHOLD,
        config: MatcherConfig | None = None,
    ) -> None:
        self.kb = kb
        self.floor = floor
        self.config = config or MatcherConfig()
        self._index = {lang: _LangIndex(lang, kb, self.config) for lang in ("zh", "en")}

    def match(
        self, text: str, lang: str | None = None, limit: int = 3, min_score: float | None = None
    ) -> list[Match]:
        """Best topics for `text`, best first; empty when nothing reaches `min_score`.

        `lang` is the chat's language, used only when the text itself does not
        say (a lone "ATM"); a Chinese character always means Chinese.
        `min_score` defaults to the matcher's floor (the offer threshold).
        """
        used = detect_lang(text, default=lang if lang in self._index else "zh")
        index = self._index[used]
        scores = index.score(text)
        floor = self.floor if min_score is None else min_score
        ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
        return [
            Match(entry_id=index.entry_ids[eidx], score=round(score, 4), lang=used)
            for eidx, score in ranked[:limit]
            if score >= floor
        ]

    def has_content(self, text: str, lang: str | None = None) -> bool:
        """Whether anything is left of `text` once greetings and noise go."""
        used = detect_lang(text, default=lang if lang in self._index else "zh")
        return any(self._index[used]._units(text))


def _norm(values: Iterable[float]) -> float:
    return math.sqrt(sum(v * v for v in values))
