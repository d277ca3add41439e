"""The phrase library (短语库): model, templates, search, usage, import/export.

Pure domain code: no UI, no sockets, no database. The hub stores phrases and
usage and calls this package; the desk shows what it returns.

Typical use on a desk::

    phrases = load_yaml(team_library_path()) + my_personal_phrases
    index = PhraseIndex(phrases, agent_id="a007")
    hits = index.search("gs", usage=usage, lang="zh")
    exp = expand_shortcode(draft, cursor, index, lang, make_context(customer="王女士"))
    if can_send(draft): ...
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .io import (
    ImportProblem,
    PhraseImportError,
    dump_csv,
    dump_yaml,
    dumps_csv,
    dumps_yaml,
    load_csv,
    load_yaml,
    loads_csv,
    loads_yaml,
)
from .model import (
    KNOWN_PLACEHOLDERS,
    Phrase,
    PhraseError,
    derive_id,
    library_problems,
    missing_twins,
    visible_to,
)
from .search import Hit, PhraseIndex
from .shortcode import DEFAULT_TRIGGERS, Expansion, expand_shortcode, find_shortcode
from .template import (
    BANK_NAME,
    HOTLINE,
    Rendered,
    Slot,
    can_send,
    combine,
    fill_slot,
    make_context,
    next_slot,
    render,
    send_blockers,
    unfilled_slots,
)
from .usage import UsageRecord, UsageStats


def team_library_path() -> Path:
    """Path of the shipped team library, `phrasebook/data/team.yaml`."""
    return Path(str(resources.files(__package__).joinpath("data", "team.yaml")))


def load_team_library() -> list[Phrase]:
    """The shipped team library (示例银行), parsed and validated."""
    return load_yaml(team_library_path())


__all__ = [
    "BANK_NAME",
    "DEFAULT_TRIGGERS",
    "HOTLINE",
    "KNOWN_PLACEHOLDERS",
    "Expansion",
    "Hit",
    "ImportProblem",
    "Phrase",
    "PhraseError",
    "PhraseImportError",
    "PhraseIndex",
    "Rendered",
    "Slot",
    "UsageRecord",
    "UsageStats",
    "can_send",
    "combine",
    "derive_id",
    "dump_csv",
    "dump_yaml",
    "dumps_csv",
    "dumps_yaml",
    "expand_shortcode",
    "fill_slot",
    "find_shortcode",
    "library_problems",
    "load_csv",
    "load_team_library",
    "load_yaml",
    "loads_csv",
    "loads_yaml",
    "make_context",
    "missing_twins",
    "next_slot",
    "render",
    "send_blockers",
    "team_library_path",
    "unfilled_slots",
    "visible_to",
]
