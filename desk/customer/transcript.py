"""The chat transcript: a Line API widget that draws only the rows on screen.

A long chat must stay smooth, so there is no widget per message: lines are
wrapped once per width (cached per line), a prefix sum of their heights maps
a screen row to its line, and ``render_line`` builds just the visible strips.
Appending costs O(1); an ack that moves a line re-sums from that line on.

Wrapping is ours because Rich and Textual only break at spaces: Chinese has
none, so a long sentence after a space would jump whole to the next line.
Here every wide character is a break opportunity, and closing punctuation
never starts a line (nor opening punctuation end one).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterable

from rich.cells import cell_len, get_character_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from desk.i18n import Tr

from .model import Line

# No line starts with these (they close what came before) ...
NO_START = set("，。、；：！？）」』】》〉〕｝…—’”,.;:!?)]}%·～")
# ... and none ends with these (they open what follows).
NO_END = set("（「『【《〈〔｛‘“([{")

Row = tuple[int, list[tuple[str, str]]]  # (indent, [(text, component class)])
# Beyond these widths lines get hard to read on a big terminal.
MAX_TEXT_CELLS = 100
MAX_OWN_CELLS = 72


Token = tuple[str, int, int]  # (text, cells without trailing spaces, cells)


def _tokens(paragraph: str) -> list[Token]:
    """Split into unbreakable pieces: a run of narrow characters (a word), or
    one wide character, each with the spaces that follow it (and its widths,
    counted here once rather than again per wrap)."""
    size_of = get_character_cell_size
    out: list[Token] = []
    cur, body_w, total_w = "", 0, 0
    # State of `cur`: ends in a space; ends in a narrow character; holds only opening punctuation.
    spaced = narrow = opening = False
    for ch in paragraph:
        size = size_of(ch)
        if ch.isspace():
            cur, total_w, spaced = cur + ch, total_w + size, True
            continue
        if cur and (
            ch in NO_START  # keep closing punctuation with what it closes
            or size == 0  # combining marks stay on their base character
            or opening  # opening punctuation sticks to what follows
            or (size == 1 and narrow and not spaced)  # the word goes on
        ):
            cur, total_w = cur + ch, total_w + size
            body_w = total_w
            opening = opening and ch in NO_END
        else:
            if cur:
                out.append((cur, body_w, total_w))
            cur, body_w, total_w = ch, size, size
            opening = ch in NO_END
        spaced = False
        narrow = size == 1
    if cur:
        out.append((cur, body_w, total_w))
    return out


def wrap_cells(text: str, width: int) -> list[str]:
    """Wrap `text` to lines of at most `width` terminal cells (CJK counts 2)."""
    width = max(1, width)
    if "\n" not in text and "\t" not in text and cell_len(text) <= width:
        return [text.rstrip()]  # the common short message
    lines: list[str] = []
    for paragraph in text.expandtabs(4).split("\n"):
        line, used = "", 0
        for tok, need, total in _tokens(paragraph):
            if used + need <= width:
                line, used = line + tok, used + total
                continue
            if line.strip():
                lines.append(line.rstrip())
            line, used = "", 0
            if need <= width:
                line, used = tok, total
                continue
            body = tok.rstrip()
            for ch in body:  # a word wider than the line: fold it
                size = get_character_cell_size(ch)
                if used + size > width and used:
                    lines.append(line)
                    line, used = "", 0
                line, used = line + ch, used + size
            line, used = line + tok[len(body) :], used + total - need
        lines.append(line.rstrip())
    return lines


def _clock(ts: float) -> str:
    return time.strftime("%H:%M", time.localtime(ts)) if ts else ""


class Transcript(ScrollView, can_focus=True):
    """Who said what, in seq order, pinned to the newest line."""

    COMPONENT_CLASSES = {
        "transcript--me",
        "transcript--bot",
        "transcript--agent",
        "transcript--system",
        "transcript--meta",
        "transcript--pending",
        "transcript--failed",
        "transcript--text",
    }

    DEFAULT_CSS = """
    Transcript {
        overflow-x: hidden;
        overflow-y: scroll;
        scrollbar-size-vertical: 1;
        background: $surface;
        & > .transcript--me { color: $primary; text-style: bold; }
        & > .transcript--bot { color: $success; text-style: bold; }
        & > .transcript--agent { color: $warning; text-style: bold; }
        & > .transcript--system { color: $text-muted; text-style: italic; }
        & > .transcript--meta { color: $text-muted; }
        & > .transcript--pending { color: $warning; }
        & > .transcript--failed { color: $error; text-style: bold; }
        & > .transcript--text { color: $foreground; }
    }
    """

    def __init__(self, tr: Tr, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.tr = tr
        self._lines: list[Line] = []
        self._keys: set[int] = set()  # keys of _lines: a new line needs no search
        self._starts: list[int] = [0]  # _starts[i]: first row of _lines[i]; last: total
        self._layouts: dict[int, list[Row]] = {}  # line key -> rows at _width
        self._width = 0
        self._styles: dict[str, Style] = {}

    # -- attributes down: the screen hands lines in ------------------------------

    @property
    def line_count(self) -> int:
        return len(self._lines)

    @property
    def lines(self) -> list[Line]:
        return list(self._lines)

    def reset(self, lines: Iterable[Line] = ()) -> None:
        """Replace everything (a resync or a new chat)."""
        self._lines = sorted(lines, key=lambda ln: ln.order)
        self._keys = {ln.key for ln in self._lines}
        self._layouts.clear()
        self._resum(0)

    def set_line(self, line: Line) -> None:
        """Add a line, or redraw one that changed (an ack moves it into seq place)."""
        self._layouts.pop(line.key, None)
        old = self._find(line)
        if old is not None:
            del self._lines[old]
        self._keys.add(line.key)
        if not self._lines or self._lines[-1].order < line.order:
            at = len(self._lines)
            self._lines.append(line)
        else:
            at = bisect.bisect_right(self._lines, line.order, key=lambda ln: ln.order)
            self._lines.insert(at, line)
        self._resum(at if old is None else min(at, old))

    def remove_line(self, line: Line) -> None:
        old = self._find(line)
        if old is None:
            return
        del self._lines[old]
        self._keys.discard(line.key)
        self._layouts.pop(line.key, None)
        self._resum(old)

    def text_rows(self) -> list[str]:
        """Every row as plain text (tests and debugging)."""
        return ["".join(t for t, _ in segs) for ln in self._lines for _, segs in self._layout(ln)]

    def _find(self, line: Line) -> int | None:
        if line.key not in self._keys:
            return None
        # Lines that change are our own recent ones: look from the end.
        for i in range(len(self._lines) - 1, -1, -1):
            if self._lines[i] is line:
                return i
        return None

    # -- layout ----------------------------------------------------------------

    def _resum(self, start: int) -> None:
        """Recompute row offsets from line `start` on and resize the scroll area."""
        del self._starts[start + 1 :]
        total = self._starts[start]
        for line in self._lines[start:]:
            total += len(self._layout(line)) if self._width else 0
            self._starts.append(total)
        self.virtual_size = Size(self._width, total)
        self.refresh()

    def _layout(self, line: Line) -> list[Row]:
        rows = self._layouts.get(line.key)
        if rows is None:
            rows = self._layouts[line.key] = self._rows_for(line, self._width)
        return rows

    def _rows_for(self, line: Line, width: int) -> list[Row]:
        tr = self.tr
        if line.who == "system":
            body = wrap_cells(line.text, max(8, min(width - 6, MAX_TEXT_CELLS)))
            return [(max(1, (width - cell_len(t)) // 2), [(t, "system")]) for t in body]
        if line.failed:
            state = [(tr("failed", reason=tr(f"err_{line.failed}")), "failed")]
        elif line.pending:
            state = [(tr("pending"), "pending")]
        else:
            state = [(_clock(line.ts), "meta")]
        if line.who == "me":
            # Ours on the right, as in any chat app; the text stays left-aligned in its block.
            body = wrap_cells(line.text, max(8, min(width - 10, MAX_OWN_CELLS)))
            block = max((cell_len(t) for t in body), default=0)
            head = [*state, ("  ", "meta"), (tr("who_me"), "me")]
            head_len = sum(cell_len(t) for t, _ in head)
            rows: list[Row] = [(max(0, width - 1 - head_len), head)]
            rows += [(max(0, width - 1 - block), [(t, "text")]) for t in body]
            return rows
        if line.who == "bot":
            label = (tr("who_bot"), "bot")
        else:
            label = (tr("who_agent", name=line.name) if line.name else tr("who_staff"), "agent")
        rows = [(1, [label, ("  ", "meta"), *state])]
        rows += [
            (3, [(t, "text")])
            for t in wrap_cells(line.text, max(8, min(width - 5, MAX_TEXT_CELLS)))
        ]
        return rows

    def _content_width(self) -> int:
        return self.scrollable_content_region.width

    def on_resize(self, event: events.Resize) -> None:
        width = self._content_width()
        if width != self._width and width > 0:
            self._width = width
            self._layouts.clear()  # every line wraps anew at the new width
            self._resum(0)

    # -- rendering ---------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()

    def _style(self, name: str) -> Style:
        style = self._styles.get(name)
        if style is None:
            style = self._styles[name] = self.get_component_rich_style(f"transcript--{name}")
        return style

    def render_line(self, y: int) -> Strip:
        width = self._content_width()
        base = self.rich_style
        row = self.scroll_offset.y + y
        if not self._lines or row >= self._starts[-1] or not self._width:
            return Strip.blank(width, base)
        i = bisect.bisect_right(self._starts, row) - 1
        rows = self._layout(self._lines[i])
        indent, segs = rows[row - self._starts[i]]
        segments = [Segment(" " * indent, base)]
        segments += [Segment(text, base + self._style(cls)) for text, cls in segs]
        return Strip(segments).crop_extend(0, width, base)
