"""English and Simplified Chinese for the terminal apps.

Each app keeps its own table ``{key: {"en": ..., "zh": ...}}`` next to its
code and reads it through a ``Tr`` bound to the user's language, so apps do
not edit one shared file. Missing keys fall back to English, then the key.
"""

from __future__ import annotations

import locale
import os

LANGS = ("en", "zh")

Table = dict[str, dict[str, str]]


def detect_lang(explicit: str | None = None) -> str:
    """--lang / config first, then $DESK_LANG, then the locale (zh_* -> zh)."""
    for candidate in (explicit, os.environ.get("DESK_LANG")):
        if candidate in LANGS:
            return candidate  # type: ignore[return-value]
    loc = os.environ.get("LC_ALL") or os.environ.get("LANG") or (locale.getlocale()[0] or "")
    return "zh" if loc.lower().startswith("zh") else "en"


class Tr:
    def __init__(self, table: Table, lang: str) -> None:
        self.table = table
        self.lang = lang if lang in LANGS else "en"

    def __call__(self, key: str, **kw: object) -> str:
        entry = self.table.get(key)
        text = key if entry is None else entry.get(self.lang) or entry.get("en") or key
        return text.format(**kw) if kw else text
