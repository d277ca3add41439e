"""Wrap mixed Chinese/English text by terminal cells.

Rich wraps at spaces, so a run of Chinese (which has none) is one long
"word": it jumps to the next line and leaves a gap after "1." or a name.
Chinese may break between any two characters; Latin words should not.

Chinese typesetting (禁则, kinsoku) adds two rules, kept here: a line does
not start with closing punctuation (。，、；：？！）」』》】〉”’…— and the
like) and does not end with opening punctuation (（「『《【〈“‘). When a
line is full just before such a mark, its last character moves down with
the mark, so the next line reads "码。" rather than "。".
"""

from __future__ import annotations

from rich.cells import cell_len

__all__ = ["wrap"]

# What may not start a line, after anything (full-width and CJK marks)...
_NO_START = "，。、；：？！．）］｝」』》】〉〕〗〙〛｠”’…‥—～％‰℃"
# ...or after Chinese (an English line may start with "(", ":" or "..." after a space).
_NO_START_ASCII = ",.;:?!)]}%"
# What may not end a line, before anything...
_NO_END = "（［｛「『《【〈〔〖〘〚｟“‘"
# ...or before Chinese.
_NO_END_ASCII = "([{"

_SPACE, _WIDE, _ZERO, _NS, _NS_ASCII, _NE, _NE_ASCII = 1, 2, 4, 8, 16, 32, 64


class _Info(dict[str, tuple[int, int]]):
    """Each character's (cells, flags), worked out once."""

    def __missing__(self, ch: str) -> tuple[int, int]:
        w = cell_len(ch)
        flags = (
            (_SPACE if ch == " " else 0)
            | (_WIDE if w == 2 else 0)
            | (_ZERO if w == 0 else 0)
            | (_NS if ch in _NO_START else 0)
            | (_NS_ASCII if ch in _NO_START_ASCII else 0)
            | (_NE if ch in _NO_END else 0)
            | (_NE_ASCII if ch in _NO_END_ASCII else 0)
        )
        self[ch] = info = (w, flags)
        return info


_INFO = _Info()


def wrap(text: str, width: int) -> list[str]:
    """Lines of at most `width` cells (a wide character counts 2), one list
    item per line; each "\\n" starts a new line.

    Breaks after spaces (the spaces at a break are dropped) and between a
    wide character and its neighbours, never inside a Latin word unless
    the word alone is wider than `width`. A line never starts with closing
    punctuation nor ends with opening punctuation, unless a run of
    punctuation is itself wider than `width`. A single character wider
    than `width` (a wide one at width 1) gets a line of its own. Apart
    from the spaces dropped at breaks, the lines joined give back `text`.
    """
    if width <= 0:
        return text.split("\n")
    out: list[str] = []
    for para in text.split("\n"):
        if cell_len(para) <= width:
            out.append(para)
        else:
            _wrap_para(para, width, out)
    return out


def _wrap_para(para: str, width: int, out: list[str]) -> None:
    info = list(map(_INFO.__getitem__, para))
    n = len(para)
    start = 0  # where the current line starts
    cells = 0  # cells of para[start:i], trailing spaces included
    last = -1  # index of the last character before i that is not a space
    ok = -1  # the latest break point after start that breaks no rule
    raw = -1  # the latest break point after start, even one that breaks a kinsoku rule
    i = 0
    while i < n:
        w, f = info[i]
        if f & _SPACE and not (i + 1 < n and info[i + 1][1] & _ZERO):
            # Spaces hang past the edge: they are dropped at a break. (A space
            # carrying a combining mark is a character like any other.)
            cells += w
            i += 1
            continue
        if last >= start and i > start and not f & _ZERO:
            pf = info[last][1]
            if last != i - 1 or (pf | f) & _WIDE or (pf & _NS and f & (_NE | _NE_ASCII)):
                raw = i
                if not (
                    f & _NS
                    or pf & _NE
                    or (f & _NS_ASCII and pf & _WIDE)
                    or (pf & _NE_ASCII and f & _WIDE)
                ):
                    ok = i
        if w and cells + w > width and i > start:
            if last < start:  # only leading spaces so far: drop them
                start, cells = i, 0
                continue
            if ok > start:
                cut = ok
            else:
                cut = _emergency(info, start, i)
                if cut < 0:
                    cut = raw if raw > start else i
            out.append(para[start:cut].rstrip(" "))
            while info[cut][1] & _SPACE and not info[cut + 1][1] & _ZERO:
                cut += 1
            start = cut
            cells = sum(info[j][0] for j in range(start, i))
            # i is looked at again, on the new line: it may not fit there either.
            continue
        cells += w
        last = i
        i += 1
    tail = para[start:]
    out.append(tail.rstrip(" ") if cells > width else tail)


def _emergency(info: list[tuple[int, int]], start: int, i: int) -> int:
    """The latest place in (start, i] to cut inside a word or a run of
    punctuation without starting a line with a closing mark or ending one
    with an opening mark; -1 if there is none."""
    for p in range(i, start, -1):
        f, pf = info[p][1], info[p - 1][1]
        if (f | pf) & _SPACE or f & (_ZERO | _NS | _NS_ASCII) or pf & (_NE | _NE_ASCII):
            continue
        return p
    return -1
