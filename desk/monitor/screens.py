"""Dialogs of the monitor. Each is a ModalScreen that dismisses a result; none
touches the network (the app sends what they return). The login, help and
text dialogs are the agent desk's own."""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, RadioButton, RadioSet, TextArea
from textual.widgets.option_list import Option

from desk.agent.screens import HelpScreen, LoginScreen, TextDialog
from desk.i18n import Tr
from server import protocol as p

from .model import AgentState, Waiting, chat_labels, duration, wait_level
from .widgets import WAIT_STYLES

__all__ = ["AgentSetChoice", "AgentSetDialog", "ChatChoice", "ChatPicker", "HelpScreen", "LoginScreen",
           "TargetPicker", "TeamPhraseEditor", "TextDialog", "WaitingPicker", "WhisperDialog"]  # fmt: skip

_DIALOG = """
{name} {{ align: center middle; }}
{name} > Vertical {{ width: 80%; max-width: 90; height: auto; max-height: 90%; border: thick $accent;
                     background: $surface; padding: 0 1; }}
{name} OptionList {{ height: auto; max-height: 14; }}
{name} .dialog-title {{ text-style: bold; width: 1fr; content-align: center middle; padding: 0 0 1 0; }}
{name} .buttons {{ height: auto; align-horizontal: right; margin-top: 1; }}
{name} .buttons Button {{ margin-left: 1; }}
"""


class WhisperDialog(TextDialog):
    """The agent desk's note dialog, sized for the monitor: the title wraps,
    a line says who sees it, and the buttons keep to one row."""

    DEFAULT_CSS = _DIALOG.format(name="WhisperDialog") + """
    WhisperDialog > Vertical { border: thick $warning; }
    WhisperDialog .dialog-title { padding: 0; }
    WhisperDialog .wd-hint { width: 1fr; color: $text-muted; padding: 0 0 1 0; }
    WhisperDialog TextArea { height: 5; }
    """

    def __init__(self, title: str, hint: str, button: str, cancel: str) -> None:
        super().__init__(title, button, cancel)
        self.hint = hint

    def on_mount(self) -> None:
        title = self.query_one(".dialog-title", Label)
        title.parent.mount(Label(self.hint, classes="wd-hint"), after=title)  # type: ignore[union-attr]
        super().on_mount()


@dataclass
class ChatChoice:
    conv: str
    action: str  # watch | reassign


class ChatPicker(ModalScreen[ChatChoice | None]):
    """An agent's chats, warmest first: Enter watches, F9 (or the button) reassigns."""

    DEFAULT_CSS = _DIALOG.format(name="ChatPicker")
    BINDINGS = [Binding("escape", "cancel", show=False), Binding("f9", "reassign", show=False, priority=True),
                Binding("f7", "watch", show=False, priority=True)]  # fmt: skip

    def __init__(self, tr: Tr, agent: AgentState, now: float) -> None:
        super().__init__()
        self.tr, self.agent, self.now = tr, agent, now
        waits = agent.waits(now)
        self.convs = sorted(waits, key=lambda c: (-waits[c], c))
        self.waits = waits

    def compose(self) -> ComposeResult:
        tr, r = self.tr, self.agent.row
        with Vertical():
            yield Label(tr("chats.title", agent=f"{r.name} ({r.id})"), classes="dialog-title")
            if not self.convs:
                yield Label(tr("chats.none", agent=r.name))
            options = []
            names = chat_labels(self.convs, self.agent.names.get)
            for conv in self.convs:
                wait = self.waits[conv]
                if wait:
                    label = Text("▣ ", style=WAIT_STYLES[wait_level(wait)])
                    label.append(tr("chats.row", customer=names[conv], wait=duration(wait)))
                else:
                    label = Text("▣ ", style=WAIT_STYLES[0])
                    label.append(tr("chats.quiet", customer=names[conv]))
                options.append(Option(label))
            yield OptionList(*options, id="cp-chats")
            with Horizontal(classes="buttons"):
                yield Button(tr("chats.watch"), variant="primary", id="cp-watch", disabled=not self.convs)
                yield Button(tr("chats.reassign"), id="cp-reassign", disabled=not self.convs)
                yield Button(tr("cancel"), id="cp-cancel")

    def on_mount(self) -> None:
        chats = self.query_one("#cp-chats", OptionList)
        if self.convs:
            chats.highlighted = 0
            chats.focus()
        else:
            self.query_one("#cp-cancel").focus()

    def _pick(self, action: str) -> None:
        idx = self.query_one("#cp-chats", OptionList).highlighted
        if idx is not None and 0 <= idx < len(self.convs):
            self.dismiss(ChatChoice(self.convs[idx], action))

    @on(OptionList.OptionSelected)
    @on(Button.Pressed, "#cp-watch")
    def action_watch(self) -> None:
        self._pick("watch")

    @on(Button.Pressed, "#cp-reassign")
    def action_reassign(self) -> None:
        self._pick("reassign")

    @on(Button.Pressed, "#cp-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


PRIORITY_STYLES = {"urgent": "bold white on red", "priority": "bold dark_orange", "normal": "dim"}


def _fit(text: str, cells: int) -> str:
    """`text` padded to `cells` terminal cells (Chinese takes two), or cut with "…"."""
    width = cell_len(text)
    if width <= cells:
        return text + " " * (cells - width)
    out, used = "", 0
    for ch in text:
        if used + cell_len(ch) > cells - 1:
            break
        out += ch
        used += cell_len(ch)
    return out + "…" + " " * (cells - used - 1)


# Cells per column of the waiting list: priority, customer, flags, group, waited.
WAITING_WIDTHS = (4, 18, 8, 12, 7)


def waiting_head(tr: Tr) -> str:
    cols = ("priority", "customer", "flags", "group", "wait")
    return " ".join(_fit(tr(f"waiting.col.{c}"), w) for c, w in zip(cols, WAITING_WIDTHS, strict=True)).rstrip()


def waiting_row(tr: Tr, w: Waiting, now: float, customer: str = "") -> Text:
    """One waiting chat: priority, customer (``customer``: the name with a
    short chat id where two share it), flags, group, wait."""
    chat, wait = w.chat, w.wait(now)
    pw, cw, fw, gw, _ = WAITING_WIDTHS
    row = Text(_fit(tr(f"priority.{chat.priority}"), pw), style=PRIORITY_STYLES.get(chat.priority, ""))
    row.append(" " + _fit(customer or chat.customer or chat.conv, cw))
    flags = " ".join(tr(f"flag.{f}") for f in chat.flags if f in ("elderly", "vip", "disabled"))
    row.append(" " + _fit(flags, fw), style="bold magenta")
    row.append(" " + _fit(w.group, gw), style="cyan")
    row.append(" " + duration(wait), style=WAIT_STYLES[wait_level(wait)])
    return row


class WaitingPicker(ModalScreen[ChatChoice | None]):
    """Chats waiting for a person (one queue's, or every queue's): Enter or F9
    reassigns the highlighted one to an agent, F7 watches it."""

    DEFAULT_CSS = _DIALOG.format(name="WaitingPicker") + """
    WaitingPicker > Vertical { width: 96%; max-width: 100; }
    WaitingPicker .wp-head { color: $text-muted; padding: 0 0 0 2; }
    WaitingPicker .wp-more { color: $text-muted; padding: 0 0 0 2; }
    """
    BINDINGS = [Binding("escape", "cancel", show=False), Binding("f9", "reassign", show=False, priority=True),
                Binding("f7", "watch", show=False, priority=True)]  # fmt: skip

    def __init__(self, tr: Tr, waiting: list[Waiting], now: float, group: str | None = None,
                 unlisted: int = 0) -> None:  # fmt: skip
        super().__init__()
        self.tr, self.waiting, self.now, self.group, self.unlisted = tr, waiting, now, group, unlisted

    def compose(self) -> ComposeResult:
        tr = self.tr
        n = len(self.waiting) + self.unlisted
        with Vertical():
            title = tr("waiting.title", group=self.group, n=n) if self.group else tr("waiting.title_all", n=n)
            yield Label(title, classes="dialog-title")
            if not self.waiting:
                none = tr("waiting.none", group=self.group) if self.group else tr("waiting.none_all")
                yield Label(Text(none, style="dim"))
            else:
                yield Label(waiting_head(tr), classes="wp-head")
            names = {w.conv: w.chat.customer for w in self.waiting}
            labels = chat_labels(names, names.__getitem__)
            yield OptionList(*(Option(waiting_row(tr, w, self.now, labels[w.conv])) for w in self.waiting),
                             id="wp-chats")  # fmt: skip
            if self.unlisted:
                yield Label(tr("waiting.more", n=self.unlisted), classes="wp-more")
            if self.waiting:
                yield Label(tr("waiting.keys"), classes="wp-more")
            with Horizontal(classes="buttons"):
                yield Button(tr("chats.reassign"), variant="warning", id="wp-reassign", disabled=not self.waiting)
                yield Button(tr("chats.watch"), id="wp-watch", disabled=not self.waiting)
                yield Button(tr("cancel"), id="wp-cancel")

    def on_mount(self) -> None:
        chats = self.query_one("#wp-chats", OptionList)
        chats.display = bool(self.waiting)
        if self.waiting:
            chats.highlighted = 0
            chats.focus()
        else:
            self.query_one("#wp-cancel").focus()

    def _pick(self, action: str) -> None:
        idx = self.query_one("#wp-chats", OptionList).highlighted
        if idx is not None and 0 <= idx < len(self.waiting):
            self.dismiss(ChatChoice(self.waiting[idx].conv, action))

    @on(OptionList.OptionSelected)
    @on(Button.Pressed, "#wp-reassign")
    def action_reassign(self) -> None:
        self._pick("reassign")

    @on(Button.Pressed, "#wp-watch")
    def action_watch(self) -> None:
        self._pick("watch")

    @on(Button.Pressed, "#wp-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class TargetPicker(ModalScreen[str | None]):
    """Agents online with a free slot, emptiest first; dismisses an agent id."""

    DEFAULT_CSS = _DIALOG.format(name="TargetPicker")
    BINDINGS = [Binding("escape", "cancel", show=False)]

    def __init__(self, tr: Tr, conv: str, targets: list[AgentState], title: str = "") -> None:
        super().__init__()
        self.tr, self.conv, self.targets = tr, conv, targets
        self.title_text = title or tr("target.title", customer=conv)

    def compose(self) -> ComposeResult:
        tr = self.tr
        with Vertical():
            yield Label(self.title_text, classes="dialog-title")
            if not self.targets:
                yield Label(Text(tr("target.none"), style="bold red"))
            options = []
            for st in self.targets:
                r = st.row
                options.append(Option(tr("target.row", name=r.name, id=r.id, load=r.load, max=r.max_chats,
                                         groups=",".join(r.groups))))  # fmt: skip
            yield OptionList(*options, id="tp-agents")
            with Horizontal(classes="buttons"):
                yield Button(tr("target.go"), variant="warning", id="tp-go", disabled=not self.targets)
                yield Button(tr("cancel"), id="tp-cancel")

    def on_mount(self) -> None:
        agents = self.query_one("#tp-agents", OptionList)
        if self.targets:
            agents.highlighted = 0
            agents.focus()

    @on(OptionList.OptionSelected)
    @on(Button.Pressed, "#tp-go")
    def go(self) -> None:
        idx = self.query_one("#tp-agents", OptionList).highlighted
        if idx is not None and 0 <= idx < len(self.targets):
            self.dismiss(self.targets[idx].row.id)

    @on(Button.Pressed, "#tp-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


@dataclass
class AgentSetChoice:
    status: str | None  # None: unchanged
    max_chats: int | None


STATUSES = ("online", "away", "offline")


class AgentSetDialog(ModalScreen[AgentSetChoice | None]):
    """Change an agent's status or max chats (only what changed is sent)."""

    DEFAULT_CSS = _DIALOG.format(name="AgentSetDialog") + """
    AgentSetDialog RadioSet { width: 1fr; height: auto; layout: horizontal; }
    """
    BINDINGS = [Binding("escape", "cancel", show=False)]

    def __init__(self, tr: Tr, agent: AgentState) -> None:
        super().__init__()
        self.tr, self.agent = tr, agent

    def compose(self) -> ComposeResult:
        tr, r = self.tr, self.agent.row
        with Vertical():
            yield Label(tr("set.title", name=r.name, id=r.id), classes="dialog-title")
            yield Label(tr("set.status"))
            with RadioSet(id="as-status"):
                for status in STATUSES:
                    yield RadioButton(tr(f"status.{status}"), value=r.status == status, id=f"as-{status}")
            yield Label(tr("set.max"))
            with RadioSet(id="as-max"):
                for n in range(6):
                    yield RadioButton(str(n), value=r.max_chats == n, id=f"as-max-{n}")
            with Horizontal(classes="buttons"):
                yield Button(tr("save"), variant="primary", id="as-save")
                yield Button(tr("cancel"), id="as-cancel")

    def on_mount(self) -> None:
        self.query_one("#as-status").focus()

    def choice(self) -> AgentSetChoice:
        r = self.agent.row
        status_idx = self.query_one("#as-status", RadioSet).pressed_index
        max_idx = self.query_one("#as-max", RadioSet).pressed_index
        status = STATUSES[status_idx] if 0 <= status_idx < len(STATUSES) else None
        max_chats = max_idx if 0 <= max_idx <= 5 else None
        return AgentSetChoice(status if status != r.status else None,
                              max_chats if max_chats != r.max_chats else None)  # fmt: skip

    @on(Button.Pressed, "#as-save")
    def save(self) -> None:
        choice = self.choice()
        self.dismiss(choice if choice.status is not None or choice.max_chats is not None else None)

    @on(Button.Pressed, "#as-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class TeamPhraseEditor(ModalScreen[p.PhraseDraft | None]):
    """A small editor that publishes a team phrase (scope "team")."""

    DEFAULT_CSS = _DIALOG.format(name="TeamPhraseEditor") + """
    TeamPhraseEditor > Vertical { width: 90%; max-width: 100; }
    TeamPhraseEditor TextArea { height: 5; }
    TeamPhraseEditor .te-row { height: auto; }
    TeamPhraseEditor .te-row Input { width: 1fr; }
    TeamPhraseEditor RadioSet { width: auto; height: auto; layout: horizontal; }
    TeamPhraseEditor .te-label { padding: 1 1 0 0; }
    """
    BINDINGS = [Binding("escape", "cancel", show=False)]

    def __init__(self, tr: Tr, lang: str = "zh") -> None:
        super().__init__()
        self.tr, self.lang = tr, lang

    def compose(self) -> ComposeResult:
        tr = self.tr
        with Vertical():
            yield Label(tr("phrase.title_team"), classes="dialog-title")
            with Horizontal(classes="te-row"):
                yield Input(placeholder=tr("phrase.code"), id="te-code", max_length=32)
                yield Input(placeholder=tr("phrase.title"), id="te-title", max_length=80)
            yield Label(tr("phrase.text"))
            yield TextArea(id="te-text", soft_wrap=True)
            with Horizontal(classes="te-row"):
                yield Input(placeholder=tr("phrase.tags"), id="te-tags")
                yield Input("团队" if self.lang == "zh" else "Team", placeholder=tr("phrase.category"),
                            id="te-category", max_length=40)  # fmt: skip
            with Horizontal(classes="te-row"):
                yield Label(tr("phrase.lang"), classes="te-label")
                with RadioSet(id="te-lang"):
                    yield RadioButton("中文", value=self.lang == "zh", id="te-zh")
                    yield RadioButton("English", value=self.lang == "en", id="te-en")
            with Horizontal(classes="buttons"):
                yield Button(tr("phrase.publish"), variant="primary", id="te-save")
                yield Button(tr("cancel"), id="te-cancel")

    def on_mount(self) -> None:
        self.query_one("#te-code").focus()

    @on(Button.Pressed, "#te-save")
    def save(self) -> None:
        code = self.query_one("#te-code", Input).value.strip().lstrip("/;")
        title = self.query_one("#te-title", Input).value.strip()
        text = self.query_one("#te-text", TextArea).text.strip()
        raw_tags = self.query_one("#te-tags", Input).value.replace("，", ",")
        tags = [t.strip()[:24] for t in raw_tags.split(",") if t.strip()][:16]
        category = self.query_one("#te-category", Input).value.strip() or "团队"
        lang = "en" if self.query_one("#te-lang", RadioSet).pressed_index == 1 else "zh"
        if not (code and title and text):
            self.notify(self.tr("phrase.missing"), severity="warning")
            return
        self.dismiss(p.PhraseDraft(code=code, title=title, text=text, tags=tags, category=category,
                                   lang=lang, scope="team"))  # fmt: skip

    @on(Button.Pressed, "#te-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
