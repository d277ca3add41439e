"""The scripted customers: the scenario file, its checks, and picking from it.

The file format is documented at the top of ``desk/data/scenarios.yaml``.
msgspec checks types and names the offending field; the checks that need
more than one field (``human_after`` against ``opening``...) follow, so a
centre editing the file gets one clear message per mistake.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import yaml
from msgspec import Meta, Struct

DEFAULT_SCENARIOS = Path(__file__).resolve().parent.parent / "data" / "scenarios.yaml"
Score = Literal["very_satisfied", "satisfied", "dissatisfied"]
SCORES: tuple[Score, ...] = ("very_satisfied", "satisfied", "dissatisfied")

Prob = Annotated[float, Meta(ge=0.0, le=1.0)]
NonNeg = Annotated[float, Meta(ge=0.0)]
# A line, or variants of it (one is picked per customer).
Line = str | list[str]
# A number, or [min, max] to draw from. (A list, not a tuple: msgspec 0.22
# mishandles a fixed-length tuple inside this union.)
Span = NonNeg | list[NonNeg]


class ScenarioError(ValueError):
    """The scenario file cannot be used; the message says where and why."""


class Rating(Struct, forbid_unknown_fields=True):
    """Relative weights of the three rating levels."""

    very_satisfied: NonNeg = 0.0
    satisfied: NonNeg = 0.0
    dissatisfied: NonNeg = 0.0

    def weights(self) -> list[float]:
        return [self.very_satisfied, self.satisfied, self.dissatisfied]


class Scenario(Struct, forbid_unknown_fields=True, kw_only=True):
    """One kind of customer (see the file's header for every field)."""

    name: Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=40)]
    weight: NonNeg = 1.0
    lang: Literal["zh", "en"] = "zh"
    flags: Annotated[
        list[Annotated[str, Meta(min_length=1, max_length=24)]], Meta(max_length=8)
    ] = []
    channels: list[Annotated[str, Meta(min_length=1, max_length=32)]] = []
    names: list[Annotated[str, Meta(min_length=1, max_length=64)]] = []
    expect: Literal["answer", "handoff", "miss"] | None = None
    opening: list[Line] = []
    human_after: Annotated[int, Meta(ge=0)] | None = None
    human_lines: list[Line] = []
    button: Prob = 0.25
    replies: list[Line] = []
    exchanges: Span | None = None
    filler: list[Line] = []
    thanks: list[Line] = []
    ends: Prob = 0.6
    patience: Span = msgspec.field(default_factory=lambda: [60.0, 300.0])
    typing_cps: Annotated[float, Meta(gt=0.0)] = 1.5
    rate: Prob = 0.85
    rating: Rating = msgspec.field(default_factory=lambda: Rating(4, 5, 1))
    comments: dict[Score, list[str]] = {}

    def problems(self) -> list[str]:
        """What is wrong beyond single-field types and ranges."""
        out: list[str] = []
        for field in ("opening", "human_lines", "replies", "filler", "thanks"):
            for i, line in enumerate(getattr(self, field)):
                variants = [line] if isinstance(line, str) else line
                if not variants or any(not v.strip() for v in variants):
                    out.append(f"{field}[{i}] is empty")
        if self.human_after is None and not self.opening:
            out.append(
                "opening is empty and human_after is not set: the customer would say nothing"
            )
        if self.human_after is not None:
            if self.human_after > len(self.opening):
                out.append(f"human_after is {self.human_after} but there are only "
                           f"{len(self.opening)} opening lines")  # fmt: skip
            if not self.human_lines and self.button < 1.0:
                out.append("human_after is set but human_lines is empty (or set button: 1)")
        if not self.thanks:
            out.append("thanks is empty: the customer needs a last line")
        if not self.replies and not self.filler:
            out.append("replies and filler are both empty: nothing to answer an agent with")
        for field in ("patience", "exchanges"):
            value = getattr(self, field)
            if isinstance(value, list) and len(value) != 2:
                out.append(f"{field} must be a number or [min, max]")
            elif isinstance(value, list) and value[0] > value[1]:
                out.append(f"{field} is [{value[0]:g}, {value[1]:g}]: min is above max")
        if sum(self.rating.weights()) <= 0:
            out.append("rating weights are all zero")
        return out

    # -- drawing (every random choice goes through the caller's rng) ----------

    def patience_s(self, rng: random.Random) -> float:
        return draw(self.patience, rng)

    def exchange_count(self, rng: random.Random) -> int:
        if self.exchanges is None:
            return max(1, len(self.replies))
        return max(1, round(draw(self.exchanges, rng)))

    def reply(self, index: int, rng: random.Random) -> str:
        if index < len(self.replies):
            return pick(self.replies[index], rng)
        return pick(rng.choice(self.filler or self.replies), rng)

    def score(self, rng: random.Random) -> Score:
        return rng.choices(SCORES, weights=self.rating.weights())[0]


def pick(line: Line, rng: random.Random) -> str:
    """A line as written, or one of its variants."""
    return line if isinstance(line, str) else rng.choice(line)


def draw(span: float | list[float], rng: random.Random) -> float:
    return float(span) if not isinstance(span, list) else rng.uniform(span[0], span[1])


class _File(Struct, forbid_unknown_fields=True):
    scenarios: list[dict[str, Any]]
    version: Literal[1] = 1
    defaults: dict[str, Any] = {}


def parse_scenarios(data: Any, source: str = "scenarios") -> list[Scenario]:
    """Validate already-parsed YAML/JSON data; raise ScenarioError naming the place."""
    try:
        doc = msgspec.convert(data, _File)
    except msgspec.ValidationError as exc:
        raise ScenarioError(f"{source}: {exc}") from None
    fields = set(Scenario.__struct_fields__)
    unknown = sorted(set(doc.defaults) - fields)
    if unknown:
        raise ScenarioError(f"{source}: defaults: unknown field(s) {', '.join(unknown)}")
    if "name" in doc.defaults:
        raise ScenarioError(f"{source}: defaults: a name must be given per scenario")
    if not doc.scenarios:
        raise ScenarioError(f"{source}: no scenarios")
    out: list[Scenario] = []
    seen: set[str] = set()
    for i, raw in enumerate(doc.scenarios, 1):
        label = f"scenario {i}" + (f" ({raw['name']})" if isinstance(raw.get("name"), str) else "")
        try:
            sc = msgspec.convert({**doc.defaults, **raw}, Scenario)
        except msgspec.ValidationError as exc:
            raise ScenarioError(f"{source}: {label}: {exc}") from None
        problems = sc.problems()
        if sc.name in seen:
            problems.insert(0, f"the name {sc.name!r} is used twice")
        if problems:
            raise ScenarioError(f"{source}: {label}: {'; '.join(problems)}")
        seen.add(sc.name)
        out.append(sc)
    if sum(sc.weight for sc in out) <= 0:
        raise ScenarioError(f"{source}: every scenario has weight 0")
    return out


def load_scenarios(path: str | Path = DEFAULT_SCENARIOS) -> list[Scenario]:
    """Read and validate a scenario file (YAML)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from None
    return parse_scenarios(data, str(path))


def choose(scenarios: Sequence[Scenario], rng: random.Random) -> Scenario:
    return rng.choices(list(scenarios), weights=[s.weight for s in scenarios])[0]


# -- names -------------------------------------------------------------------

_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁"
    "任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严武戴孔汤"
)
_GIVEN = (
    "晓燕",
    "建国",
    "丽娟",
    "志强",
    "海波",
    "秀英",
    "婷婷",
    "俊杰",
    "雪梅",
    "子轩",
    "浩然",
    "欣怡",
    "国华",
    "桂兰",
)
# Weighted honorifics: how customers appear in a bank's chat (name from the app profile).
_TITLES = (("先生", 45), ("女士", 40), ("小姐", 8), ("总", 3), ("老师", 4))
_ELDER_TITLES = (("阿姨", 40), ("叔叔", 20), ("大爷", 20), ("奶奶", 15), ("爷爷", 5))
_EN_FIRST = ("David", "Sarah", "Michael", "Emma", "James", "Anna", "Tom", "Lucy", "Daniel", "Maria")
_EN_LAST = (
    "Smith",
    "Chen",
    "Garcia",
    "Müller",
    "Brown",
    "Wong",
    "Johnson",
    "Kim",
    "Rossi",
    "Taylor",
)


def customer_name(sc: Scenario, rng: random.Random) -> str:
    """A realistic display name: 王先生, 李女士, 张阿姨, or one of the scenario's."""
    if sc.names:
        return rng.choice(sc.names)
    if sc.lang == "en":
        if rng.random() < 0.5:
            return f"{rng.choice(('Mr.', 'Ms.'))} {rng.choice(_EN_LAST)}"
        return f"{rng.choice(_EN_FIRST)} {rng.choice(_EN_LAST)}"
    surname = rng.choice(_SURNAMES)
    if "elderly" not in sc.flags and rng.random() < 0.15:
        return surname + rng.choice(_GIVEN)  # the full name, as some apps show it
    titles = _ELDER_TITLES if "elderly" in sc.flags else _TITLES
    return surname + rng.choices([t for t, _ in titles], weights=[w for _, w in titles])[0]


_CHANNELS = (("app", 50), ("wechat", 20), ("web", 15), ("life_app", 10), ("biz_app", 5))


def channel(sc: Scenario, rng: random.Random) -> str:
    if sc.channels:
        return rng.choice(sc.channels)
    return rng.choices([c for c, _ in _CHANNELS], weights=[w for _, w in _CHANNELS])[0]
