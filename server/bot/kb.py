"""The knowledge base: the bot's topics, loaded from YAML into frozen, checked objects.

Loading is a pure function of the file: no caches, no module state. The hub can
call `load_kb` again to reload without a restart; a bad file raises `KBError`
and leaves whatever KB the caller already holds untouched.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

LANGS: tuple[str, ...] = ("zh", "en")
FLAGS: frozenset[str] = frozenset({"urgent"})
# The hub's skill groups; a topic owned by a group the hub does not know would
# hand customers to a queue nobody serves, so the loader refuses it by default.
SKILL_GROUPS: frozenset[str] = frozenset(
    {
        "general",
        "cards",
        "payments",
        "digital",
        "accounts",
        "credit_card",
        "wealth",
        "loans",
        "security",
        "complaints",
    }
)
SUPPORTED_VERSIONS = (1,)
DEFAULT_KB_PATH = Path(__file__).with_name("data") / "kb.yaml"

_ID_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_TOP_FIELDS = ("version", "bank", "entries")
_ENTRY_FIELDS = ("id", "title", "group", "flags", "keywords", "questions", "answer")


class KBError(ValueError):
    """The knowledge-base file cannot be used; the message names the entry and field."""


@dataclass(frozen=True, slots=True)
class Text:
    """One piece of text in Chinese and (optionally) English."""

    zh: str
    en: str | None = None

    def get(self, lang: str) -> str:
        """The text in `lang`, falling back to Chinese (always present)."""
        return self.en if lang == "en" and self.en else self.zh


@dataclass(frozen=True, slots=True)
class Phrases:
    """Phrasings per language (questions or keywords)."""

    zh: tuple[str, ...] = ()
    en: tuple[str, ...] = ()

    def get(self, lang: str) -> tuple[str, ...]:
        return self.en if lang == "en" else self.zh


@dataclass(frozen=True, slots=True)
class Entry:
    """One topic the bot can answer."""

    id: str
    title: Text
    group: str
    answer: Text
    questions: Phrases
    keywords: Phrases = Phrases()
    flags: frozenset[str] = frozenset()

    @property
    def urgent(self) -> bool:
        return "urgent" in self.flags


@dataclass(frozen=True, slots=True)
class KnowledgeBase:
    """All topics, in file order, with lookup by id."""

    entries: tuple[Entry, ...]
    bank: str = ""
    version: int = 1
    source: str = "<memory>"
    # Problems worth fixing that do not stop the KB from working (the hub logs them).
    warnings: tuple[str, ...] = ()
    _by_id: Mapping[str, Entry] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id: dict[str, Entry] = {}
        for entry in self.entries:
            if entry.id in by_id:
                raise KBError(f"{self.source}: duplicate entry id {entry.id!r}")
            by_id[entry.id] = entry
        object.__setattr__(self, "_by_id", MappingProxyType(by_id))

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._by_id

    def __getitem__(self, entry_id: str) -> Entry:
        return self._by_id[entry_id]

    def get(self, entry_id: str) -> Entry | None:
        return self._by_id.get(entry_id)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(e.id for e in self.entries)


def load_kb(
    path: str | Path = DEFAULT_KB_PATH, *, groups: Collection[str] | None = SKILL_GROUPS
) -> KnowledgeBase:
    """Read and check a knowledge-base YAML file.

    `groups` is the set of skill groups an entry may name (None: any). Raises
    KBError on any problem; never returns a partly valid KB.
    """
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KBError(f"{path}: cannot read the knowledge base: {exc}") from exc
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise KBError(f"{path}: not valid YAML: {exc}") from exc
    return parse_kb(data, source=str(path), groups=groups)


def parse_kb(
    data: Any, *, source: str = "<memory>", groups: Collection[str] | None = SKILL_GROUPS
) -> KnowledgeBase:
    """Check already-parsed YAML data (a mapping) and build the KnowledgeBase."""
    if not isinstance(data, Mapping):
        raise KBError(
            f"{source}: expected a mapping with 'version', 'bank' and 'entries', got {_kind(data)}"
        )
    _no_unknown(data, _TOP_FIELDS, f"{source}: top level")
    version = data.get("version")
    if version not in SUPPORTED_VERSIONS or isinstance(version, bool):
        raise KBError(
            f"{source}: version: expected one of {list(SUPPORTED_VERSIONS)}, got {version!r}"
        )
    bank = data.get("bank", "")
    if not isinstance(bank, str):
        raise KBError(f"{source}: bank: expected a string, got {_kind(bank)}")
    raw_entries = data.get("entries")
    if not isinstance(raw_entries, list) or not raw_entries:
        raise KBError(f"{source}: entries: expected a non-empty list, got {_kind(raw_entries)}")

    entries: list[Entry] = []
    first_seen: dict[str, int] = {}
    question_owner: dict[str, str] = {}
    warnings: list[str] = []
    for index, raw in enumerate(raw_entries):
        entry = _parse_entry(raw, index, source, groups)
        if entry.id in first_seen:
            raise KBError(
                f"{source}: entry {entry.id!r} (#{index + 1}): id: duplicate of entry #{first_seen[entry.id] + 1}"
            )
        first_seen[entry.id] = index
        # The same phrasing under two topics makes the match a coin toss; worth
        # fixing, but not worth refusing a whole KB edit over.
        for lang in LANGS:
            for question in entry.questions.get(lang):
                key = f"{lang}:{_squash(question)}"
                owner = question_owner.setdefault(key, entry.id)
                if owner != entry.id:
                    warnings.append(
                        f"{source}: entry {entry.id!r} (#{index + 1}): questions.{lang}: "
                        f"{question!r} is also a question of {owner!r}"
                    )
        entries.append(entry)
    return KnowledgeBase(
        entries=tuple(entries),
        bank=bank,
        version=int(version),
        source=source,
        warnings=tuple(warnings),
    )


def _parse_entry(raw: Any, index: int, source: str, groups: Collection[str] | None) -> Entry:
    where = f"{source}: entry #{index + 1}"
    if not isinstance(raw, Mapping):
        raise KBError(f"{where}: expected a mapping, got {_kind(raw)}")
    entry_id = raw.get("id")
    if not isinstance(entry_id, str) or not _ID_RE.match(entry_id):
        raise KBError(f"{where}: id: expected a lowercase slug like 'card-lost', got {entry_id!r}")
    where = f"{source}: entry {entry_id!r} (#{index + 1})"
    _no_unknown(raw, _ENTRY_FIELDS, where)

    group = raw.get("group")
    if not isinstance(group, str) or not group:
        raise KBError(f"{where}: group: expected a skill group name, got {group!r}")
    if groups is not None and group not in groups:
        raise KBError(
            f"{where}: group: unknown skill group {group!r} (known: {', '.join(sorted(groups))})"
        )

    raw_flags = raw.get("flags") or []
    if not isinstance(raw_flags, list):
        raise KBError(f"{where}: flags: expected a list, got {_kind(raw_flags)}")
    for flag in raw_flags:
        if flag not in FLAGS:
            raise KBError(
                f"{where}: flags: unknown flag {flag!r} (known: {', '.join(sorted(FLAGS))})"
            )

    questions = _phrases(raw.get("questions"), f"{where}: questions", required=True)
    keywords = _phrases(raw.get("keywords"), f"{where}: keywords", required=False)
    return Entry(
        id=entry_id,
        title=_text(raw.get("title"), f"{where}: title"),
        group=group,
        answer=_text(raw.get("answer"), f"{where}: answer"),
        questions=questions,
        keywords=keywords,
        flags=frozenset(raw_flags),
    )


def _text(raw: Any, where: str) -> Text:
    if not isinstance(raw, Mapping):
        raise KBError(f"{where}: expected a mapping like {{zh: ..., en: ...}}, got {_kind(raw)}")
    _no_unknown(raw, LANGS, where)
    zh = raw.get("zh")
    if not isinstance(zh, str) or not zh.strip():
        raise KBError(f"{where}.zh: missing (a non-empty Chinese text is required)")
    en = raw.get("en")
    if en is not None and (not isinstance(en, str) or not en.strip()):
        raise KBError(f"{where}.en: expected a non-empty string, got {en!r}")
    return Text(zh=zh.strip(), en=en.strip() if en else None)


def _phrases(raw: Any, where: str, *, required: bool) -> Phrases:
    if raw is None and not required:
        return Phrases()
    if not isinstance(raw, Mapping):
        raise KBError(
            f"{where}: expected a mapping like {{zh: [...], en: [...]}}, got {_kind(raw)}"
        )
    _no_unknown(raw, LANGS, where)
    out: dict[str, tuple[str, ...]] = {}
    for lang in LANGS:
        items = raw.get(lang)
        if items is None:
            items = []
        if not isinstance(items, list):
            raise KBError(f"{where}.{lang}: expected a list of strings, got {_kind(items)}")
        seen: dict[str, None] = {}
        for pos, item in enumerate(items):
            # YAML 1.1 turns bare no/yes/on into booleans: say so rather than guess.
            if not isinstance(item, str) or not item.strip():
                raise KBError(
                    f"{where}.{lang}[{pos}]: expected a non-empty string, got {item!r} (quote it)"
                )
            seen.setdefault(item.strip(), None)
        out[lang] = tuple(seen)
    if required and not out["zh"]:
        raise KBError(f"{where}.zh: missing (at least one Chinese phrasing is required)")
    return Phrases(zh=out["zh"], en=out["en"])


def _no_unknown(raw: Mapping[Any, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in raw:
        if key not in allowed:
            raise KBError(f"{where}: unknown field {key!r} (expected: {', '.join(allowed)})")


def _squash(text: str) -> str:
    return re.sub(r"[\s\W_]+", "", text.casefold())


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__
