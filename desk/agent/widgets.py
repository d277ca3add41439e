"""The desk's own widgets: the slot strip, a transcript per chat, the composer
and the watermark bar. They render what they are given and post messages up;
the app owns the model and the hub connection."""

from __future__ import annotations

import time
from datetime import datetime

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Table
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import RichLog, Static, TextArea

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
    return "".join(f"[{tr('flag.' + f)}]" for f in chat.flags if f in ("urgent", "elderly", "vip", "disabled"))


class SlotTab(Static):
    """One of the five slots: who, flags, unread, wait, typing, draft."""

    class Clicked(Message):
        def __init__(self, slot: int) -> None:
            super().__init__()
            self.slot = slot

    def __init__(self, slot: int) -> None:
        super().__init__(id=f"slot-{slot}", classes="slot empty")
        self.slot = slot

    def show(self, chat: Chat | None, active: bool, now: float, tr: Tr) -> None:
        self.set_class(active, "active")
        self.set_class(chat is None, "empty")
        for _, name in WAIT_LEVELS:
            self.remove_class(name)
        self.remove_class("wait-0")
        if chat is None:
            self.update(Text(f"{self.slot} {tr('slot.empty')}", style="dim"))
            return
        waited = chat.waiting_s(now)
        self.add_class(wait_class(waited))
        self.set_class(chat.handoff.priority == "urgent", "urgent")
        text = Text(f"{self.slot} ", style="bold")
        text.append(chat.name, style="bold")
        marks = flag_marks(chat, tr)
        if marks:
            text.append(marks, style="bold red" if "urgent" in chat.flags else "bold magenta")
        text.append("\n")
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


class Transcript(RichLog):
    """One chat's transcript. Keeps its lines so it can re-wrap on resize and
    re-render when numbers are revealed; the handoff card stays on top."""

    def __init__(self, chat: Chat, tr: Tr, **kw: object) -> None:
        super().__init__(wrap=True, markup=False, highlight=False, min_width=10, auto_scroll=True, **kw)  # type: ignore[arg-type]
        self.chat = chat
        self.tr = tr
        self._width = 0
        self._human_started = False
        self._bot_started = False

    def on_resize(self, event: events.Resize) -> None:
        # Lines are wrapped for a width: draw again when it becomes known or changes.
        if event.size.width and event.size.width != self._width:
            self._width = event.size.width
            self.rebuild()

    @property
    def text_width(self) -> int:
        return max(10, self._width - 4)  # indent and scrollbar

    def rebuild(self) -> None:
        """Render everything again (reveal, resync, a new width)."""
        if not self._width:
            return  # not shown yet: drawn on the first resize
        self.clear()
        self._human_started = self._bot_started = False
        self.write(self.card(), expand=True)
        for line in self.chat.lines:
            self.add_line(line)

    def card(self) -> RenderableType:
        tr, h, c = self.tr, self.chat.handoff, self.chat.customer
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="bold")
        grid.add_column()
        reason = tr(f"reason.{h.reason}") if h.reason else "—"
        grid.add_row(tr("card.reason"), reason)
        grid.add_row(tr("card.group"), f"{h.group} · {h.priority}")
        if h.intents:
            grid.add_row(tr("card.intents"), ", ".join(h.intents))
        grid.add_row(tr("card.misses"), str(h.bot_misses))
        flags = " ".join(tr(f"flag.{f}") for f in self.chat.flags) or "—"
        grid.add_row(tr("card.flags"), f"{c.name} {flags} · {c.channel} · {c.lang}")
        if h.transferred_from:
            grid.add_row(tr("card.from"), h.transferred_from)
        if h.transfer_note:
            grid.add_row(tr("card.note"), Text(h.transfer_note, style="bold yellow"))
        style = "red" if h.priority == "urgent" else ("magenta" if self.chat.customer.flags else "blue")
        return Panel(grid, title=tr("card.title"), border_style=style, expand=True)

    def add_line(self, line: Line) -> None:
        if not self._width:
            return  # drawn by rebuild() once the width is known
        tr = self.tr
        text = line.text if self.chat.revealed else mask_for_display(line.text)
        parts: list[RenderableType] = []
        # The bot part (everything before the first agent line) is set apart
        # from the human part, so the agent sees at a glance what the bot said.
        human = line.sender == "agent"
        if not self._bot_started and not self._human_started and not human:
            if any(ln.sender == "bot" for ln in self.chat.lines):
                self._bot_started = True
                parts.append(Rule(tr("bot.part"), style="dim cyan"))
        if human and not self._human_started:
            self._human_started = True
            if self._bot_started:
                parts.append(Rule(tr("human.part"), style="bold blue"))
        stamp = datetime.fromtimestamp(line.ts).strftime("%H:%M")
        head = Text()
        if line.sender == "bot":
            head.append(f"🤖 {tr('who.bot')} ", style="dim cyan")
            body = Text(text, style="dim")
        elif line.sender == "system":
            parts.append(Text("\n".join(wrap(f"· {text} · {stamp}", self.text_width)),
                              style="dim italic", justify="center"))
            self.write(Group(*parts), expand=True)
            return
        elif line.kind == "note":
            head.append(f"🔒 {tr('who.note')} {line.sender_name} ", style="bold yellow")
            body = Text(text, style="yellow")
        elif line.sender == "customer":
            head.append(f"{self.chat.name} ", style="bold green")
            body = Text(text)
        else:
            who = tr("who.me") if line.mine else (line.sender_name or "agent")
            head.append(f"{who} ", style="bold blue")
            body = Text(text, style="blue" if line.mine else "")
        head.append(stamp, style="dim")
        if line.pending:
            head.append(f"  {tr('pending')}", style="italic yellow")
        lines = wrap(body.plain, self.text_width)
        body = Text("\n".join("  " + ln for ln in lines), style=body.style, overflow="fold")
        parts += [head, body]
        self.write(Group(*parts), expand=True)


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
        text = Text()
        text.append(f" {tr('title')} ", style="bold")
        text.append(f" {agent} {name} ", style="reverse")
        text.append(f" {tr('status.' + status)} {load}/{cap} ", style="bold")
        text.append(f" {dot} {tr('conn.' + conn)} ", style=conn_style)
        text.append(f" {session} ", style="dim")
        text.append(f" {now} ", style="bold")
        if not bell:
            text.append(" 🔕", style="dim")
        self.update(text)


def now() -> float:
    return time.time()
