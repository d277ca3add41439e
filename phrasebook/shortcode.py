"""Shortcode expansion in the reply box: `/gs` or `;gs` becomes the 挂失 phrase.

Triggers: both `/` and `;` (the defaults). `/` is the habit from chat tools;
`;` sits under the right little finger and needs no Shift on any layout. A
trigger only counts at the start of the draft or after whitespace or a
non-ASCII character (Chinese text or punctuation), so URLs ("https://x/gs"),
ratios ("1/2") and English text ("a;b") never expand. The code must end at
the cursor. The desk decides when to call this (e.g. on Space or Tab).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .model import Phrase
from .search import PhraseIndex
from .template import Slot, render

DEFAULT_TRIGGERS = "/;"
_CODE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")


@dataclass(frozen=True, slots=True)
class Expansion:
    """The draft after expansion.

    `text`/`cursor` replace the draft and caret. `start`/`end` delimit the
    inserted phrase. `slots` index `text`; `selection` is the first slot's
    span (select it so typing replaces it) or None when nothing is left to
    fill, in which case `cursor` sits after the inserted text.
    """

    text: str
    cursor: int
    phrase: Phrase
    start: int
    end: int
    slots: tuple[Slot, ...]
    selection: tuple[int, int] | None
    unknown: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()


def find_shortcode(
    draft: str, cursor: int, triggers: str = DEFAULT_TRIGGERS
) -> tuple[int, str] | None:
    """(trigger offset, code) if a trigger+code ends exactly at `cursor`."""
    if not 0 < cursor <= len(draft):
        return None
    if cursor < len(draft) and draft[cursor].lower() in _CODE_CHARS:
        return None  # the caret is inside a word
    i = cursor
    while i > 0 and draft[i - 1].lower() in _CODE_CHARS:
        i -= 1
    t = i - 1
    if t < 0 or draft[t] not in triggers or i == cursor:
        return None
    if t > 0:
        before = draft[t - 1]
        if before.isascii() and not before.isspace():
            return None
    return t, draft[i:cursor].lower()


def expand_shortcode(
    draft: str,
    cursor: int,
    index: PhraseIndex,
    lang: str = "zh",
    context: Mapping[str, object] | None = None,
    *,
    triggers: str = DEFAULT_TRIGGERS,
) -> Expansion | None:
    """Expand the `/code` or `;code` just before `cursor`, or return None.

    Uses the phrase in the chat's `lang`, falling back to zh; an agent's
    personal phrase shadows a team one with the same code. Placeholders are
    filled from `context` (see `make_context`); slots are kept and reported.
    """
    found = find_shortcode(draft, cursor, triggers)
    if found is None:
        return None
    start, code = found
    phrase = index.lookup_code(code, lang)
    if phrase is None:
        return None
    r = render(phrase.text, context)
    end = start + len(r.text)
    text = draft[:start] + r.text + draft[cursor:]
    slots = tuple(Slot(s.start + start, s.end + start, s.label, s.hint) for s in r.slots)
    selection = (slots[0].start, slots[0].end) if slots else None
    return Expansion(
        text=text,
        cursor=selection[0] if selection else end,
        phrase=phrase,
        start=start,
        end=end,
        slots=slots,
        selection=selection,
        unknown=r.unknown,
        missing=r.missing,
    )
