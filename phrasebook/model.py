"""The phrase record and its validation.

A phrase is immutable (a frozen msgspec Struct): the search index keeps
precomputed lowercase/pinyin strings for each phrase, so a phrase that could be
edited in place would silently desynchronise them. Edits are new objects that
go through `PhraseIndex.replace`.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

import msgspec

from .template import KNOWN_PLACEHOLDERS, template_problems

Lang = Literal["zh", "en"]
Scope = Literal["team", "personal"]

LANGS: tuple[str, ...] = ("zh", "en")
SCOPES: tuple[str, ...] = ("team", "personal")

# Shortcodes are typed after a trigger in the reply box, so they must be plain
# ASCII that every keyboard layout and IME produces in English mode.
CODE_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}")
TOPIC_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
# Characters that separate tags in CSV cells (Excel users type any of these).
TAG_SEPARATORS = "|;,，、；"

MAX_TITLE = 80
MAX_TEXT = 4000
MAX_TAG = 30
MAX_CATEGORY = 30


class PhraseError(ValueError):
    """A phrase is invalid. `field` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Phrase(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of the phrase library (短语库).

    Team phrases (`scope="team"`, `owner=None`) are published by the centre;
    personal phrases belong to one agent (`owner` = agent id). The English
    version of a phrase is a separate record with the same `code` and
    `lang="en"`. `topic` optionally links the phrase to a knowledge-base topic
    id (e.g. "card-lost") so the desk can suggest it when the bot hands over.
    """

    id: str
    code: str
    title: str
    text: str
    category: str
    tags: tuple[str, ...] = ()
    lang: Lang = "zh"
    scope: Scope = "team"
    owner: str | None = None
    updated_at: float = 0.0
    topic: str | None = None

    def __post_init__(self) -> None:
        # Normalise first (lists from JSON/YAML become tuples, CRLF from Excel
        # becomes LF, outer whitespace goes) so equal content compares equal
        # and round-trips through files are exact.
        force = msgspec.structs.force_setattr
        if not isinstance(self.tags, tuple):
            if isinstance(self.tags, str | bytes) or not _iterable(self.tags):
                raise PhraseError("tags", "must be a list of strings")
            force(self, "tags", tuple(self.tags))
        for name in ("id", "code", "title", "category", "text"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise PhraseError(name, f"must be a string, got {type(value).__name__}")
        force(self, "text", self.text.replace("\r\n", "\n").replace("\r", "\n").strip())
        force(self, "title", self.title.strip())
        force(self, "category", self.category.strip())
        force(self, "code", self.code.strip())
        if any(not isinstance(t, str) for t in self.tags):
            raise PhraseError("tags", "every tag must be a string")
        force(self, "tags", tuple(t.strip() for t in self.tags))
        if isinstance(self.updated_at, int) and not isinstance(self.updated_at, bool):
            force(self, "updated_at", float(self.updated_at))
        _validate(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (tags as a list), e.g. for the hub's database."""
        return msgspec.to_builtins(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Phrase:
        """Build from a plain dict; raises PhraseError with the field name."""
        try:
            return msgspec.convert(data, cls)
        except msgspec.ValidationError as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, PhraseError):
                raise cause from None
            raise PhraseError(_field_of(str(exc)), str(exc)) from None


def _iterable(value: object) -> bool:
    try:
        iter(value)  # type: ignore[call-overload]
    except TypeError:
        return False
    return True


def _field_of(message: str) -> str:
    # msgspec says "... - at `$.code`"; pull the field name out for PhraseError.
    m = re.search(r"\$\.(\w+)", message)
    return m.group(1) if m else "phrase"


def _validate(p: Phrase) -> None:
    # code before id: a file's missing id is derived from the code, and the
    # code is the field the author has to fix.
    if not CODE_RE.fullmatch(p.code):
        raise PhraseError(
            "code",
            f"{p.code!r} must be 1-32 lowercase ascii letters, digits or . _ - "
            "and start with a letter or digit (e.g. gs, zzsb, hi)",
        )
    if not p.id or len(p.id) > 120 or any(c.isspace() for c in p.id):
        raise PhraseError("id", f"must be 1-120 characters without spaces, got {p.id!r}")
    if p.lang not in LANGS:
        raise PhraseError("lang", f"must be one of {', '.join(LANGS)}, got {p.lang!r}")
    if p.scope not in SCOPES:
        raise PhraseError("scope", f"must be one of {', '.join(SCOPES)}, got {p.scope!r}")
    if p.scope == "personal":
        if not isinstance(p.owner, str) or not p.owner.strip():
            raise PhraseError("owner", "a personal phrase needs the owning agent id")
    elif p.owner is not None:
        raise PhraseError("owner", "a team phrase has no owner (leave it empty)")
    if not p.title or "\n" in p.title or len(p.title) > MAX_TITLE:
        raise PhraseError("title", f"must be one line of 1-{MAX_TITLE} characters")
    if not p.category or "\n" in p.category or len(p.category) > MAX_CATEGORY:
        raise PhraseError("category", f"must be one line of 1-{MAX_CATEGORY} characters")
    if not p.text:
        raise PhraseError("text", "must not be empty")
    if len(p.text) > MAX_TEXT:
        raise PhraseError("text", f"is {len(p.text)} characters, the limit is {MAX_TEXT}")
    problems = template_problems(p.text)
    if problems:
        raise PhraseError("text", "; ".join(problems))
    seen: set[str] = set()
    for tag in p.tags:
        if not tag or len(tag) > MAX_TAG or "\n" in tag:
            raise PhraseError("tags", f"tag {tag!r} must be 1-{MAX_TAG} characters")
        bad = [c for c in tag if c in TAG_SEPARATORS]
        if bad:
            raise PhraseError("tags", f"tag {tag!r} contains separator {bad[0]!r}")
        if tag in seen:
            raise PhraseError("tags", f"tag {tag!r} is repeated")
        seen.add(tag)
    if (
        isinstance(p.updated_at, bool)
        or not isinstance(p.updated_at, float)
        or not math.isfinite(p.updated_at)
        or p.updated_at < 0
    ):
        raise PhraseError("updated_at", f"must be a finite unix time >= 0, got {p.updated_at!r}")
    if p.topic is not None and (not isinstance(p.topic, str) or not TOPIC_RE.fullmatch(p.topic)):
        raise PhraseError("topic", f"{p.topic!r} must be a knowledge-base topic id like card-lost")


def derive_id(scope: str, owner: str | None, code: str, lang: str) -> str:
    """The id a phrase gets when its file gives none: `team:gs:zh`, `a007:gs:en`.

    Deterministic so re-importing an edited file keeps usage statistics
    attached; ':' cannot occur in a code, so ids never collide.
    """
    return f"{'team' if scope == 'team' else owner}:{code}:{lang}"


def twin_key(p: Phrase) -> tuple[str, str | None, str]:
    """Phrases with the same key are language versions of one phrase."""
    return (p.scope, p.owner, p.code)


def visible_to(phrases: list[Phrase], agent_id: str | None) -> list[Phrase]:
    """Team phrases plus `agent_id`'s personal ones: what one desk may see."""
    return [
        p for p in phrases if p.scope == "team" or (agent_id is not None and p.owner == agent_id)
    ]


def library_problems(phrases: list[Phrase]) -> list[str]:
    """Whole-library checks a single record cannot make.

    Duplicate ids and duplicate shortcodes per language (within the team part
    or one agent's personal part) are errors: a shortcode must expand to one
    phrase. Returns human-readable messages; empty means consistent.
    """
    problems: list[str] = []
    ids: set[str] = set()
    codes: dict[tuple[str, str | None, str, str], str] = {}
    for p in phrases:
        if p.id in ids:
            problems.append(f"id {p.id!r} is used twice")
        ids.add(p.id)
        key = (p.scope, p.owner, p.code, p.lang)
        if key in codes:
            who = "team" if p.scope == "team" else f"agent {p.owner}"
            problems.append(
                f"code {p.code!r} ({p.lang}) is used twice in the {who} library: "
                f"{codes[key]!r} and {p.id!r}"
            )
        else:
            codes[key] = p.id
    return problems


def missing_twins(phrases: list[Phrase]) -> list[Phrase]:
    """Team zh phrases that have no English version (the centre's checklist)."""
    en = {twin_key(p) for p in phrases if p.lang == "en"}
    return [p for p in phrases if p.lang == "zh" and p.scope == "team" and twin_key(p) not in en]


__all__ = [
    "CODE_RE",
    "KNOWN_PLACEHOLDERS",
    "LANGS",
    "SCOPES",
    "Lang",
    "Phrase",
    "PhraseError",
    "Scope",
    "derive_id",
    "library_problems",
    "missing_twins",
    "twin_key",
    "visible_to",
]
