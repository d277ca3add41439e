"""Wrap mixed Chinese/English text by terminal cells.

Rich wraps at spaces, so a run of Chinese (which has none) is one long
"word": it jumps to the next line and leaves a gap after "1." or a name.
Chinese may break between any two characters; Latin words should not.
"""

from __future__ import annotations

import unicodedata

from rich.cells import cell_len

_NO_LINE_START = set("，。、；：？！）》」』】,.;:?!)]}%")


def _breakable_after(ch: str) -> bool:
    return ch == " " or unicodedata.east_asian_width(ch) in ("W", "F")


def wrap(text: str, width: int) -> list[str]:
    """Lines of at most `width` cells; breaks at spaces or between wide
    characters, never before closing punctuation, hard-breaks what cannot fit."""
    if width <= 0:
        return text.split("\n")
    out: list[str] = []
    for para in text.split("\n"):
        line, cells, last_break = "", 0, -1
        for ch in para:
            w = cell_len(ch)
            if cells + w > width and line:
                cut = last_break if last_break > 0 and ch not in _NO_LINE_START else len(line)
                if ch in _NO_LINE_START and last_break > 0:
                    cut = last_break
                head, line = line[:cut].rstrip(" "), line[cut:].lstrip(" ")
                out.append(head)
                cells = cell_len(line)
                last_break = -1
            line += ch
            cells += w
            if _breakable_after(ch):
                last_break = len(line)
            elif unicodedata.east_asian_width(ch) in ("W", "F") or (line and _breakable_after(line[-1])):
                last_break = len(line)
            if len(line) >= 2 and unicodedata.east_asian_width(line[-2]) in ("W", "F") and ch not in _NO_LINE_START:
                last_break = max(last_break, len(line) - 1)
        out.append(line)
    return out
