"""The desk's own widgets: the slot strip, a transcript per chat, the composer
and the watermark bar. They render what they are given and post messages up;
the app owns the model and the hub connection."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static, TextArea

from desk.cjkwrap import wrap
from desk.i18n import Tr
from server.masking import mask_for_display

from .model import SLOTS, Chat, Line

# Seconds a customer has waited for an answer -> the slot's warmth class.
WAIT_LEVELS = ((120, "wait-3"), (60, "wait-2"), (30, "wait-1"))


def wait_class(seconds: float) -> str:
    for limit, name in WAIT_LEVELS:
        if seconds >= limit:
            return name
    return "wait-0"


def flag_marks(chat: Chat, tr: Tr) -> str:
    """The chat's flags in a tab: one mark each (急老贵助 / !EVA), as a tab is
    13 cells wide at 80 columns; the handoff card spells them out."""
    return "".join(tr("flagmark." + f) for f in chat.flags if f in ("urgent", "elderly", "vip", "disabled"))


class SlotTab(Static):
    """One of the five slots: who, flags, unread, wait, typing, draft."""

    class Clicked(Message):
        def __init__(self, slot: int) -> None:
            super().__init__()
            self.slot = slot

    def __init__(self, slot: int) -> None:
        super().__init__(id=f"slot-{slot}", classes=f"slot slot-{slot} empty")
        self.slot = slot
        self._shown: object = None

    def update(self, content: object = "", **kw: object) -> None:  # type: ignore[override]
        # Redraw only what changed: an unchanged tab costs no layout pass.
        key = (content.markup if isinstance(content, Text) else content, tuple(sorted(self.classes)))
        if key != self._shown:
            self._shown = key
            # A tab's size never depends on its text: no layout pass needed.
            super().update(content, layout=False)  # type: ignore[arg-type]

    def show(self, chat: Chat | None, active: bool, now: float, tr: Tr) -> None:
        waited = chat.waiting_s(now) if chat is not None else 0.0
        classes = {"slot", f"slot-{self.slot}", "active" if active else "", "empty" if chat is None else ""}
        if chat is not None:
            classes.add(wait_class(waited))
            if chat.handoff.priority == "urgent":
                classes.add("urgent")
        classes.discard("")
        if classes != set(self.classes):  # each class change restyles the tab: only when needed
            self.set_classes(classes)
        if chat is None:
            self.update(Text(f"{self.slot} {tr('slot.empty')}", style="dim"))
            return
        text = Text(f"{self.slot} ", style="bold")
        marks = flag_marks(chat, tr)
        if marks:  # before the name: a narrow tab cuts the name, never the flags
            text.append(marks + " ", style="bold red" if "urgent" in chat.flags else "bold magenta")
        text.append(chat.name, style="bold")
        text.append("\n")
        if not chat.online:
            text.append(f"⌁{tr('slot.offline')} ", style="italic")
        if not chat.synced:
            text.append(f"⟳{tr('slot.syncing')} ", style="italic")
        if chat.unread:
            text.append(f"✉{chat.unread} ", style="bold")
        if chat.unanswered_since is not None:
            text.append(f"⏱{int(waited)}s ", style="bold")
        if chat.customer_typing:
            text.append("✎ ")
        if chat.draft.strip():
            text.append("✍")
        self.update(text)

    def on_click(self, event: events.Click) -> None:
        self.post_message(self.Clicked(self.slot))


class SlotStrip(Horizontal):
    def compose(self) -> ComposeResult:
        for n in SLOTS:
            yield SlotTab(n)

    def show(self, slots: dict[int, Chat | None], active: int | None, now: float, tr: Tr) -> None:
        for n in SLOTS:
            self.query_one(f"#slot-{n}", SlotTab).show(slots[n], active == n, now, tr)


# A row is text runs with the *names* of their styles: tuples of strings only,
# which the garbage collector stops tracking, so tens of thousands of rows
# do not make each full collection (a pause in the desk) longer.
Row = tuple[tuple[str, str], ...]

_STYLE = {
    "bold": Style(bold=True),
    "dim": Style(dim=True),
    "bot": Style(color="cyan", dim=True),
    "bot_text": Style(dim=True),
    "system": Style(dim=True, italic=True),
    "note": Style(color="yellow", bold=True),
    "note_text": Style(color="yellow"),
    "customer": Style(color="green", bold=True),
    "mine": Style(color="blue", bold=True),
    "mine_text": Style(color="bright_blue"),
    "agent": Style(color="blue", bold=True),
    "pending": Style(color="yellow", italic=True),
    "refused": Style(color="red", bold=True),
    "plain": Style(),
    "rule_bot": Style(color="cyan", dim=True),
    "rule_human": Style(color="blue", bold=True),
    "card_urgent": Style(color="red", bold=True),
    "card_priority": Style(color="magenta", bold=True),
    "card_normal": Style(color="blue", bold=True),
    "card_note": Style(color="yellow", bold=True),
}


@dataclass
class ChatView:
    """One chat's rows, wrapped for `width`; kept while other chats are shown."""

    chat: Chat
    rows: list[Row] = field(default_factory=list)
    width: int = 0
    scroll_y: float | None = None  # None: follow the newest line
    bot_started: bool = False
    human_started: bool = False


class Transcript(ScrollView, can_focus=False):
    """The transcript of the active chat, drawn line by line (Textual's line API).

    Every open chat keeps its rows (messages wrapped by cells for the current
    width); only the rows on screen become strips. Switching chats swaps the
    rows of one widget, so it costs a screenful of drawing however long the
    histories are, and nothing mounts a widget per message. The handoff card
    stays on top, and the bot part is set apart from the human part.

    Following the newest line is a state, not a position: it holds until the
    agent scrolls up and comes back when they scroll to the end, whatever
    happens to the widget's height meanwhile (the outbox showing lines being
    sent, a taller draft). While it does not hold, new lines are counted in
    the border below."""

    DEFAULT_CSS = "Transcript { height: 1fr; scrollbar-gutter: stable; scrollbar-size-vertical: 1; overflow-x: hidden; }"

    def __init__(self, tr: Tr, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.tr = tr
        self.views: dict[str, ChatView] = {}
        self.view: ChatView | None = None
        self._width = 0
        self.following = True  # the shown chat keeps to its newest line
        self.empty_text = tr("composer.none")  # what shows with no chat (the app says why)
        self._placing = False  # our own scroll, not the agent's
        self._unseen = 0  # lines that arrived below while not following
        self._pending: tuple[ChatView, float | None] | None = None  # a place asked for before there was a size
        self._line_style: tuple[object, Style] | None = None  # (the styles' cache key, rich_style)

    # -- which chat -------------------------------------------------------------------

    def open(self, chat: Chat) -> None:
        self.views.setdefault(chat.conv, ChatView(chat))

    def close(self, conv: str) -> None:
        view = self.views.pop(conv, None)
        if view is not None and view is self.view:
            self.show(None)

    def show(self, conv: str | None) -> None:
        if self.view is not None:  # remember where the agent was reading
            self.view.scroll_y = None if self.following else self.scroll_offset.y
        self.view = self.views.get(conv or "")
        if self.view is not None and self._width and self.view.width != self._width:
            self._wrap(self.view)
        self._resize()
        self.following = self.view is None or self.view.scroll_y is None
        self._set_unseen(0)
        self._place(None if self.following else self.view.scroll_y)  # type: ignore[union-attr]
        self.refresh()

    def _place(self, y: float | None, again: bool = True) -> None:
        """Scroll to `y` (None: the newest line). Once the widget has its size,
        in this very frame: a switch must never show the chat at the wrong
        place first. Before that, once the new size has been laid out (after
        the next refresh, or at the resize that gives it a size: never by
        asking again each refresh, which kept an idle desk at 100 % CPU)."""
        if self.view is None:
            self._pending = None
            return
        height = self.scrollable_content_region.height
        if height > 0:
            self._pending = None
            end = max(0, len(self.view.rows) - height)
            self._placing = True
            try:
                # force: the scrollbar (which allows scrolling) only appears with the next layout
                self.scroll_to(y=end if y is None else min(y, end), animate=False, immediate=True, force=True)
            finally:
                self._placing = False
        else:
            self._pending = (self.view, y)
            if again:
                self.call_after_refresh(self._place_pending)

    def _place_pending(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None and pending[0] is self.view and (pending[1] is not None or self.following):
            self._place(pending[1], again=False)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if not self._placing and self.view is not None:
            # The agent scrolled (or the view was put back where they were reading).
            self.following = new_value >= self.max_scroll_y - 1
            if self.following:
                self._set_unseen(0)

    def watch_show_vertical_scrollbar(self, shown: bool) -> None:
        # Textual moves the thumb with the scroll only while the bar is shown:
        # a bar that appears after a scroll (a switch, a tab shown) would show
        # the top. Put it where the view is.
        if shown:
            self.vertical_scrollbar.position = self.scroll_y

    def page(self, down: bool) -> None:
        """A page towards the older lines or the newest (the keys of the composer's pageup/pagedown)."""
        height = max(1, self.scrollable_content_region.height - 1)
        self.scroll_to(y=self.scroll_offset.y + (height if down else -height), animate=False, force=True)

    def newest(self) -> None:
        self.following = True
        self._set_unseen(0)
        self._place(None)

    def _set_unseen(self, n: int) -> None:
        self._unseen = n
        self.border_subtitle = self.tr("transcript.unseen", n=n) if n else ""

    def on_resize(self, event: events.Resize) -> None:
        # The scrollbar's gutter is always reserved (CSS), so a scrollbar
        # appearing does not change the width and re-wrap everything.
        width = event.size.width - 1
        if width > 0 and width != self._width:
            self._width = width
            if self.view is not None:
                self._wrap(self.view)
                self._resize()
        if self._pending is not None:  # placed before it had a size
            self._place_pending()
        elif self.following:  # taller or shorter: the newest line stays in view
            self._place(None)

    @property
    def text_width(self) -> int:
        return max(10, self._width - 3)

    def _resize(self) -> None:
        rows = len(self.view.rows) if self.view is not None else 1
        self.virtual_size = Size(max(1, self._width), rows)

    # -- content ---------------------------------------------------------------------

    def rebuild(self, chat: Chat) -> None:
        """Wrap one chat again (reveal, resync)."""
        view = self.views.get(chat.conv)
        if view is not None:
            view.width = 0
            if view is self.view and self._width:
                self._wrap(view)
                self._resize()
                self.refresh()

    def add_line(self, chat: Chat, line: Line) -> None:
        view = self.views.get(chat.conv)
        if view is None or not view.width or view.width != self._width:
            return  # wrapped in full when it is next shown
        added = self.line_rows(view, line)
        view.rows += added
        if view is self.view:
            self._resize()
            if self.following:
                self._place(None)
            else:
                self._set_unseen(self._unseen + 1)
            self.refresh()

    def _wrap(self, view: ChatView) -> None:
        view.bot_started = view.human_started = False
        rows = self.card_rows(view.chat)
        for line in view.chat.lines:
            rows += self.line_rows(view, line)
        view.rows, view.width = rows, self._width

    @property
    def line_style(self) -> Style:
        """The widget's own style under every line. Worked out once per style
        change, as Textual does for its visual style: computing it walks every
        ancestor, and doing that per line took over half of drawing a transcript."""
        key = self.styles._cache_key
        if self._line_style is None or self._line_style[0] != key:
            self._line_style = (key, self.rich_style)
        return self._line_style[1]

    def notify_style_update(self) -> None:
        self._line_style = None
        super().notify_style_update()

    def render_line(self, y: int) -> Strip:
        index = self.scroll_offset.y + y
        width = self.scrollable_content_region.width
        base = self.line_style
        if self.view is None:
            text = self.empty_text if y == 0 else ""
            return Strip([Segment(text, _STYLE["dim"])]).crop_extend(0, width, None).apply_style(base)
        rows = self.view.rows
        if index >= len(rows):
            return Strip.blank(width, base)
        strip = Strip([Segment(text, _STYLE[style]) for text, style in rows[index]])
        return strip.crop_extend(0, width, None).apply_style(base)

    # -- rows -----------------------------------------------------------------------

    def _wrapped(self, text: str, style: str, indent: str = "  ") -> list[Row]:
        return [((indent + part, style),) for part in wrap(text, self.text_width - len(indent))]

    def _rule(self, label: str, style: str) -> Row:
        label = f" {label} "
        side = max(2, (self.text_width - cell_len(label)) // 2)
        return (("─" * side + label + "─" * side, style),)

    def card_rows(self, chat: Chat) -> list[Row]:
        tr, h, c = self.tr, chat.handoff, chat.customer
        kind = "urgent" if h.priority == "urgent" else ("priority" if c.flags else "normal")
        bar = f"card_{kind}"
        flags = " ".join(tr(f"flag.{f}") for f in chat.flags) or "—"
        fields = [
            (tr("card.reason"), tr(f"reason.{h.reason}") if h.reason else "—", "plain"),
            (tr("card.group"), f"{h.group or '—'} · {h.priority}", "plain"),
            (tr("card.flags"), f"{c.name} {flags} · {c.channel} · {c.lang}", "plain"),
        ]
        if h.intents:
            fields.append((tr("card.intents"), ", ".join(h.intents), "plain"))
        fields.append((tr("card.misses"), str(h.bot_misses), "plain"))
        if h.transferred_from:
            fields.append((tr("card.from"), h.transferred_from, "plain"))
        if h.transfer_note:
            fields.append((tr("card.note"), h.transfer_note, "card_note"))
        label_w = max(cell_len(label) for label, _, _ in fields) + 2
        rows: list[Row] = [(("▛ " + tr("card.title"), bar),)]
        for label, value, style in fields:
            pad = " " * (label_w - cell_len(label))
            for i, part in enumerate(wrap(value, max(10, self.text_width - label_w - 2))):
                head = label + pad if i == 0 else " " * label_w
                rows.append((("▌ ", bar), (head, "bold"), (part, style)))
        rows.append((("▙" + "▄" * max(4, min(self.text_width, 40)), bar),))
        return rows

    def line_rows(self, view: ChatView, line: Line) -> list[Row]:
        tr, chat = self.tr, view.chat
        rows: list[Row] = []
        text = line.text if chat.revealed else mask_for_display(line.text)
        human = line.sender == "agent"
        if not view.bot_started and not view.human_started and not human:
            if any(ln.sender == "bot" for ln in chat.lines):
                view.bot_started = True
                rows.append(self._rule(tr("bot.part"), "rule_bot"))
        if human and not view.human_started:
            view.human_started = True
            if view.bot_started:
                rows.append(self._rule(tr("human.part"), "rule_human"))
        stamp = datetime.fromtimestamp(line.ts).strftime("%H:%M")
        if line.sender == "system":
            for part in wrap(f"· {text} · {stamp}", self.text_width):
                pad = max(0, (self.text_width - cell_len(part)) // 2)
                rows.append(((" " * pad + part, "system"),))
            return rows
        if line.sender == "bot":
            who, who_style, body_style = f"🤖 {tr('who.bot')}", "bot", "bot_text"
        elif line.kind == "note" and line.sender == "supervisor":  # a whisper: from the supervisor, to the agent only
            who, who_style, body_style = f"📣 {tr('who.whisper')} {line.sender_name}", "note", "note_text"
        elif line.kind == "note":
            who, who_style, body_style = f"🔒 {tr('who.note')} {line.sender_name}", "note", "note_text"
        elif line.sender == "customer":
            who, who_style, body_style = chat.name, "customer", "plain"
        elif line.mine:
            who, who_style, body_style = tr("who.me"), "mine", "mine_text"
        else:
            who, who_style, body_style = line.sender_name or "agent", "agent", "plain"
        head: Row = ((who + " ", who_style), (stamp, "dim"))
        if line.pending:
            head += (("  " + tr("pending"), "pending"),)
        elif line.refused:
            head += (("  ✕ " + tr("refused", reason=tr(f"refused.{line.refused}")), "refused"),)
        rows.append(head)
        rows += self._wrapped(text, body_style)
        return rows


class Composer(TextArea):
    """The reply box. Enter sends; ctrl+j adds a line; Tab expands /code or
    visits the next [[slot]]. It remembers whose chat its text belongs to."""

    class Submitted(Message):
        def __init__(self, conv: str, text: str) -> None:
            super().__init__()
            self.conv = conv
            self.text = text

    class TabPressed(Message):
        def __init__(self, backwards: bool) -> None:
            super().__init__()
            self.backwards = backwards

    class Typed(Message):
        """The draft changed (for typing indicators and the draft mark)."""

    def __init__(self, **kw: object) -> None:
        super().__init__(soft_wrap=True, show_line_numbers=False, tab_behavior="focus", **kw)  # type: ignore[arg-type]
        # The conversation the current text belongs to. Set only when a slot's
        # draft is loaded, so a reply can never leave for another chat.
        self.owner: str = ""

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            if self.owner:
                self.post_message(self.Submitted(self.owner, self.text))
            return
        if event.key == "ctrl+j":
            event.stop()
            event.prevent_default()
            self.insert("\n")
            return
        if event.key in ("tab", "shift+tab"):
            event.stop()
            event.prevent_default()
            self.post_message(self.TabPressed(event.key == "shift+tab"))
            return
        await super()._on_key(event)

    def load(self, owner: str, text: str) -> None:
        self.owner = owner
        self.load_text(text)
        self.move_cursor(self.document.end)
        self.disabled = not owner

    def select_span(self, start: int, end: int) -> None:
        """Select characters [start, end) of the text (a fill-in slot)."""
        self.selection = self._offset_selection(start, end)

    def _offset_selection(self, start: int, end: int):  # type: ignore[no-untyped-def]
        from textual.widgets.text_area import Selection

        return Selection(self._location(start), self._location(end))

    def _location(self, offset: int) -> tuple[int, int]:
        before = self.text[:offset]
        row = before.count("\n")
        col = len(before) - (before.rfind("\n") + 1)
        return row, col

    def cursor_offset(self) -> int:
        row, col = self.cursor_location
        lines = self.text.split("\n")
        return sum(len(x) + 1 for x in lines[:row]) + col


class Watermark(Static):
    """Always on screen (seed 002): who is working, which session, the time,
    and the link to the hub."""

    def show(self, agent: str, name: str, session: str, status: str, load: int, cap: int,
             conn: str, tr: Tr, bell: bool) -> None:  # fmt: skip
        now = datetime.fromtimestamp(self.app.clock()).strftime("%H:%M:%S")  # type: ignore[attr-defined]
        dot = {"online": "●", "connecting": "◌", "offline": "◌", "closed": "✕"}.get(conn, "?")
        conn_style = {"online": "green", "closed": "red"}.get(conn, "yellow")
        # Most important first: a narrow terminal cuts the line from the right,
        # and who, when and which session must survive (seed 002).
        text = Text()
        text.append(f" {agent} {name} ", style="reverse")
        text.append(f" {now} ", style="bold")
        text.append(f" {session} ", style="dim")
        text.append(f" {tr('status.' + status)} {load}/{cap} ", style="bold")
        text.append(f" {dot} {tr('conn.' + conn)} ", style=conn_style)
        if not bell:
            text.append(" 🔕", style="dim")
        text.append(f" {tr('title')} ", style="bold")
        self.update(text, layout=False)  # one line, fixed height: no layout pass


def now() -> float:
    return time.time()
