"""Dialogs of the agent desk. Each is a ModalScreen that dismisses a result;
none touches the network (the app sends what they return)."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static, TextArea
from textual.widgets.option_list import Option

from desk.i18n import Tr
from phrasebook import Hit, Phrase, PhraseIndex, UsageStats
from server import protocol as p

from .text import WRAPUP_CODES


class LoginScreen(ModalScreen[tuple[str, str]]):
    DEFAULT_CSS = """
    LoginScreen { align: center middle; }
    LoginScreen > Vertical { width: 50; height: auto; border: thick $accent; padding: 1 2; background: $surface; }
    LoginScreen Input { margin-bottom: 1; }
    LoginScreen #login-error { color: $error; height: auto; }
    """

    def __init__(self, tr: Tr, user: str = "", error: str = "") -> None:
        super().__init__()
        self.tr, self.user, self.error = tr, user, error

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.tr("login.title"), classes="dialog-title")
            yield Input(self.user, placeholder=self.tr("login.user"), id="login-user")
            yield Input(placeholder=self.tr("login.password"), password=True, id="login-password")
            yield Static(self.error, id="login-error")
            yield Button(self.tr("login.go"), variant="primary", id="login-go")

    def on_mount(self) -> None:
        self.query_one("#login-password" if self.user else "#login-user").focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#login-go")
    def go(self) -> None:
        user = self.query_one("#login-user", Input).value.strip()
        password = self.query_one("#login-password", Input).value
        if user and password:
            self.dismiss((user, password))
        elif not user:
            self.query_one("#login-user").focus()
        else:
            self.query_one("#login-password").focus()


@dataclass
class PickerResult:
    action: str  # insert | edit | new | delete
    phrase: Phrase | None = None


class PhrasePicker(ModalScreen[PickerResult | None]):
    """Search as you type (pinyin initials too), preview, insert."""

    DEFAULT_CSS = """
    PhrasePicker { align: center middle; }
    PhrasePicker > Vertical { width: 90%; height: 85%; border: thick $accent; background: $surface; padding: 0 1; }
    PhrasePicker #pick-body { height: 1fr; }
    PhrasePicker OptionList { width: 1fr; height: 1fr; }
    PhrasePicker #pick-preview { width: 1fr; height: 1fr; border-left: solid $primary; padding: 0 1; }
    PhrasePicker #pick-help { color: $text-muted; height: 1; }
    """
    BINDINGS = [
        Binding("escape", "dismiss_none", "Close", show=False),
        Binding("down", "move(1)", show=False, priority=True),
        Binding("up", "move(-1)", show=False, priority=True),
        Binding("f2", "edit", show=False, priority=True),
        Binding("f3", "new", show=False, priority=True),
        Binding("f4", "delete", show=False, priority=True),
    ]

    def __init__(self, tr: Tr, index: PhraseIndex, usage: UsageStats, lang: str, me: str, query: str = "",
                 suggested: list[Phrase] | None = None) -> None:  # fmt: skip
        super().__init__()
        self.tr, self.index, self.usage, self.lang, self.me = tr, index, usage, lang, me
        self.query_text = query
        # Phrases for the topics the bot detected in this chat: with an empty
        # query they come first, so the answer is F7, Enter.
        self.suggested = suggested or []
        self.hits: list[Hit] = []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.tr("phrases.title"), classes="dialog-title")
            yield Input(self.query_text, placeholder=self.tr("phrases.search"), id="pick-query")
            with Horizontal(id="pick-body"):
                yield OptionList(id="pick-list")
                with VerticalScroll(id="pick-preview"):
                    yield Static(id="pick-text")
            yield Static(self.tr("phrases.help"), id="pick-help")

    def on_mount(self) -> None:
        self.query_one("#pick-query").focus()
        self.search(self.query_text)

    @on(Input.Changed, "#pick-query")
    def changed(self, event: Input.Changed) -> None:
        self.search(event.value)

    def search(self, query: str) -> None:
        self.hits = self.index.search(query, limit=30, usage=self.usage, lang=self.lang)
        if not query.strip() and self.suggested:
            first = [Hit(ph, 1000.0, "topic", "suggested") for ph in self.suggested]
            seen = {ph.id for ph in self.suggested}
            self.hits = first + [h for h in self.hits if h.phrase.id not in seen]
        options = self.query_one("#pick-list", OptionList)
        options.clear_options()
        for hit in self.hits:
            ph = hit.phrase
            label = Text()
            label.append(f"/{ph.code:<7}", style="bold cyan")
            label.append(ph.title)
            if ph.scope == "personal":
                label.append(" ★", style="yellow")
            if hit.how == "suggested":
                label.append(" ◆", style="bold green")
            options.add_option(Option(label))
        if self.hits:
            options.highlighted = 0
        self.preview()

    @on(OptionList.OptionHighlighted)
    def preview(self) -> None:
        hit = self.current()
        body = self.query_one("#pick-text", Static)
        if hit is None:
            body.update(Text(self.tr("phrases.none"), style="dim"))
            return
        ph = hit.phrase
        text = Text()
        text.append(f"{ph.title}  ", style="bold")
        text.append(f"[{ph.category}] {' '.join(ph.tags)}\n\n", style="dim")
        text.append(ph.text)
        body.update(text)

    def current(self) -> Hit | None:
        idx = self.query_one("#pick-list", OptionList).highlighted
        return self.hits[idx] if idx is not None and 0 <= idx < len(self.hits) else None

    def action_move(self, step: int) -> None:
        options = self.query_one("#pick-list", OptionList)
        if self.hits:
            options.highlighted = max(0, min(len(self.hits) - 1, (options.highlighted or 0) + step))

    @on(Input.Submitted, "#pick-query")
    @on(OptionList.OptionSelected)
    def insert(self) -> None:
        hit = self.current()
        if hit is not None:
            self.dismiss(PickerResult("insert", hit.phrase))

    def action_edit(self) -> None:
        hit = self.current()
        if hit is not None and hit.phrase.owner == self.me:
            self.dismiss(PickerResult("edit", hit.phrase))

    def action_new(self) -> None:
        self.dismiss(PickerResult("new"))

    def action_delete(self) -> None:
        hit = self.current()
        if hit is not None and hit.phrase.owner == self.me:
            self.dismiss(PickerResult("delete", hit.phrase))

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class PhraseEditor(ModalScreen[p.PhraseDraft | None]):
    DEFAULT_CSS = """
    PhraseEditor { align: center middle; }
    PhraseEditor > Vertical { width: 80%; height: auto; max-height: 90%; border: thick $accent; background: $surface; padding: 0 1; }
    PhraseEditor TextArea { height: 8; }
    """
    BINDINGS = [Binding("escape", "cancel", show=False)]

    def __init__(self, tr: Tr, lang: str, phrase: Phrase | None = None, text: str = "") -> None:
        super().__init__()
        self.tr, self.lang, self.phrase, self.text = tr, lang, phrase, text

    def compose(self) -> ComposeResult:
        ph = self.phrase
        with Vertical():
            yield Label(self.tr("phrase.edit"), classes="dialog-title")
            yield Input(ph.code if ph else "", placeholder=self.tr("phrase.code"), id="ph-code")
            yield Input(ph.title if ph else "", placeholder=self.tr("phrase.title"), id="ph-title")
            yield Label(self.tr("phrase.text"))
            yield TextArea(ph.text if ph else self.text, id="ph-text", soft_wrap=True)
            yield Input(", ".join(ph.tags) if ph else "", placeholder=self.tr("phrase.tags"), id="ph-tags")
            with Horizontal(classes="buttons"):
                yield Button(self.tr("save"), variant="primary", id="ph-save")
                yield Button(self.tr("cancel"), id="ph-cancel")

    @on(Button.Pressed, "#ph-save")
    def save(self) -> None:
        code = self.query_one("#ph-code", Input).value.strip().lstrip("/;")
        title = self.query_one("#ph-title", Input).value.strip()
        text = self.query_one("#ph-text", TextArea).text.strip()
        tags = [t.strip() for t in self.query_one("#ph-tags", Input).value.replace("，", ",").split(",") if t.strip()]
        if not (code and title and text):
            self.notify(self.tr("phrase.code") + " / " + self.tr("phrase.title"), severity="warning")
            return
        ph = self.phrase
        self.dismiss(p.PhraseDraft(code=code, title=title, text=text, tags=tags,
                                   lang=ph.lang if ph else self.lang,  # type: ignore[arg-type]
                                   category=ph.category if ph else "个人", id=ph.id if ph else None))  # fmt: skip

    @on(Button.Pressed, "#ph-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


@dataclass
class TransferChoice:
    group: str | None
    agent: str | None
    note: str


class TransferDialog(ModalScreen[TransferChoice | None]):
    DEFAULT_CSS = """
    TransferDialog { align: center middle; }
    TransferDialog > Vertical { width: 80%; height: 90%; border: thick $accent; background: $surface; padding: 0 1; }
    TransferDialog OptionList { height: 1fr; }
    TransferDialog Input { margin-top: 1; }
    """
    BINDINGS = [Binding("escape", "cancel", show=False)]

    def __init__(self, tr: Tr, name: str, directory: p.Directory, me: str) -> None:
        super().__init__()
        self.tr, self.who, self.me = tr, name, me
        self.targets: list[tuple[str | None, str | None]] = []
        self.directory = directory

    def compose(self) -> ComposeResult:
        tr = self.tr
        with Vertical():
            yield Label(tr("transfer.title", name=self.who), classes="dialog-title")
            # Who else is there: the directory's counts include this agent, who
            # never gets its own transfer back.
            others = [a for a in self.directory.agents
                      if a.id != self.me and a.status == "online" and a.connected]  # fmt: skip
            staffed: list[tuple[tuple[str | None, str | None], Option]] = []
            unstaffed: list[tuple[tuple[str | None, str | None], Option]] = []
            for g in self.directory.groups:
                online = sum(1 for a in others if g.group in a.groups)
                label = Text(f"◆ {g.group}  ", style="bold")
                if online:
                    label.append(tr("transfer.waiting", waiting=g.waiting, online=online), style="dim")
                    staffed.append(((g.group, None), Option(label)))
                else:  # still allowed (the chat waits in that queue), but said plainly
                    label.append(tr("transfer.nobody", waiting=g.waiting), style="yellow")
                    unstaffed.append(((g.group, None), Option(label)))
            free = [((None, a.id), Option(Text(f"● {a.name} ({a.id})  {a.load}/{a.max_chats}  {','.join(a.groups)}")))
                    for a in others if a.load < a.max_chats]  # fmt: skip
            # Groups someone can take, then named agents, then groups nobody else staffs.
            ordered = staffed + free + unstaffed
            self.targets = [target for target, _ in ordered]
            yield Label(f"{tr('transfer.groups')} / {tr('transfer.agents')}")
            yield OptionList(*[option for _, option in ordered], id="tr-targets")
            yield Input(placeholder=tr("transfer.note"), id="tr-note")
            with Horizontal(classes="buttons"):
                yield Button(tr("transfer.go"), variant="primary", id="tr-go")
                yield Button(tr("cancel"), id="tr-cancel")

    def on_mount(self) -> None:
        targets = self.query_one("#tr-targets", OptionList)
        targets.highlighted = 0 if self.targets else None
        targets.focus()

    @on(OptionList.OptionSelected)
    def picked(self) -> None:
        self.query_one("#tr-note").focus()

    @on(Input.Submitted, "#tr-note")
    @on(Button.Pressed, "#tr-go")
    def go(self) -> None:
        idx = self.query_one("#tr-targets", OptionList).highlighted
        if idx is None or not (0 <= idx < len(self.targets)):
            return
        group, agent = self.targets[idx]
        self.dismiss(TransferChoice(group, agent, self.query_one("#tr-note", Input).value.strip()))

    @on(Button.Pressed, "#tr-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


@dataclass
class CloseChoice:
    code: str | None
    note: str


class CloseDialog(ModalScreen[CloseChoice | None]):
    DEFAULT_CSS = """
    CloseDialog { align: center middle; }
    CloseDialog > Vertical { width: 70%; height: auto; max-height: 90%; border: thick $accent; background: $surface; padding: 0 1; }
    CloseDialog OptionList { height: auto; max-height: 12; }
    """
    BINDINGS = [Binding("escape", "cancel", show=False)]

    def __init__(self, tr: Tr, name: str, lang: str, title_key: str = "close.title") -> None:
        super().__init__()
        self.tr, self.who, self.lang, self.title_key = tr, name, lang, title_key

    def compose(self) -> ComposeResult:
        tr = self.tr
        with Vertical():
            yield Label(tr(self.title_key, name=self.who), classes="dialog-title")
            yield Label(tr("close.code"))
            yield OptionList(*[Option(f"{code}  {names.get(tr.lang, names['en'])}") for code, names in WRAPUP_CODES],
                             id="cl-codes")  # fmt: skip
            yield Input(placeholder=tr("close.note"), id="cl-note")
            with Horizontal(classes="buttons"):
                yield Button(tr("close.go"), variant="error", id="cl-go")
                if self.title_key == "close.title":
                    yield Button(tr("close.later"), id="cl-later")
                yield Button(tr("cancel"), id="cl-cancel")

    def on_mount(self) -> None:
        codes = self.query_one("#cl-codes", OptionList)
        codes.highlighted = 0
        codes.focus()

    @on(OptionList.OptionSelected)
    def picked(self) -> None:
        self.query_one("#cl-note").focus()

    @on(Input.Submitted, "#cl-note")
    @on(Button.Pressed, "#cl-go")
    def go(self) -> None:
        idx = self.query_one("#cl-codes", OptionList).highlighted
        code = WRAPUP_CODES[idx][0] if idx is not None else None
        self.dismiss(CloseChoice(code, self.query_one("#cl-note", Input).value.strip()))

    @on(Button.Pressed, "#cl-later")
    def later(self) -> None:
        self.dismiss(CloseChoice(None, ""))

    @on(Button.Pressed, "#cl-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class TextDialog(ModalScreen[str | None]):
    """One line or a few: an internal note."""

    DEFAULT_CSS = """
    TextDialog { align: center middle; }
    TextDialog > Vertical { width: 70%; height: auto; border: thick $warning; background: $surface; padding: 0 1; }
    TextDialog TextArea { height: 6; }
    """
    BINDINGS = [Binding("escape", "cancel", show=False), Binding("ctrl+s", "go", show=False)]

    def __init__(self, title: str, button: str, cancel: str) -> None:
        super().__init__()
        self.title_text, self.button, self.cancel = title, button, cancel

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="dialog-title")
            yield TextArea(id="td-text", soft_wrap=True)
            with Horizontal(classes="buttons"):
                yield Button(self.button, variant="warning", id="td-go")
                yield Button(self.cancel, id="td-cancel")

    def on_mount(self) -> None:
        self.query_one("#td-text").focus()

    @on(Button.Pressed, "#td-go")
    def action_go(self) -> None:
        text = self.query_one("#td-text", TextArea).text.strip()
        self.dismiss(text or None)

    @on(Button.Pressed, "#td-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class GuardDialog(ModalScreen[bool]):
    """The wrong-chat guard: the agent confirms before the reply leaves."""

    DEFAULT_CSS = """
    GuardDialog { align: center middle; }
    GuardDialog > Vertical { width: 70%; height: auto; border: thick $error; background: $surface; padding: 1 2; }
    """
    BINDINGS = [Binding("escape", "back", show=False)]

    def __init__(self, tr: Tr, slot: int, name: str, reasons: list[str], draft: str) -> None:
        super().__init__()
        self.tr, self.slot, self.who, self.reasons, self.draft = tr, slot, name, reasons, draft

    def compose(self) -> ComposeResult:
        tr = self.tr
        lines = Text()
        lines.append(tr("guard.body", slot=self.slot, name=self.who) + "\n", style="bold")
        for reason in self.reasons:
            kind, slot, value = reason.split(":", 2)
            lines.append(f"  • {tr('guard.' + kind, slot=slot, value=value)}\n", style="bold red")
        lines.append("\n" + self.draft[:300], style="italic")
        with Vertical():
            yield Label(tr("guard.title"), classes="dialog-title")
            yield Static(lines)
            with Horizontal(classes="buttons"):
                yield Button(tr("guard.cancel"), variant="primary", id="g-back")
                yield Button(tr("guard.send"), variant="error", id="g-send")

    def on_mount(self) -> None:
        self.query_one("#g-back").focus()  # the safe choice is the default

    @on(Button.Pressed, "#g-send")
    def send(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#g-back")
    def action_back(self) -> None:
        self.dismiss(False)


class QuitDialog(ModalScreen[bool]):
    """Quitting with chats open: they go back to the queue if the agent does not return."""

    DEFAULT_CSS = """
    QuitDialog { align: center middle; }
    QuitDialog > Vertical { width: 70%; max-width: 72; height: auto; border: thick $warning; background: $surface; padding: 1 2; }
    """
    BINDINGS = [Binding("escape", "stay", show=False)]

    def __init__(self, tr: Tr, chats: int, grace_s: int) -> None:
        super().__init__()
        self.tr, self.chats, self.grace_s = tr, chats, grace_s

    def compose(self) -> ComposeResult:
        tr = self.tr
        with Vertical():
            yield Label(tr("quit.title"), classes="dialog-title")
            yield Static(tr("quit.body", n=self.chats, secs=self.grace_s))
            with Horizontal(classes="buttons"):
                yield Button(tr("quit.stay"), variant="primary", id="q-stay")
                yield Button(tr("quit.go"), variant="warning", id="q-go")

    def on_mount(self) -> None:
        self.query_one("#q-stay").focus()  # staying is the default

    @on(Button.Pressed, "#q-go")
    def go(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#q-stay")
    def action_stay(self) -> None:
        self.dismiss(False)


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 80%; height: 90%; border: thick $accent; background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("escape,f12,q", "close", show=False)]

    def __init__(self, title: str, intro: str, rows: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self.title_text, self.intro, self.rows = title, intro, rows

    def compose(self) -> ComposeResult:
        from rich.table import Table

        table = Table(expand=True, box=None)
        table.add_column("keys", style="bold cyan")
        table.add_column("action")
        table.add_column("id", style="dim")
        for keys, action, binding_id in self.rows:
            table.add_row(keys, action, binding_id)
        with VerticalScroll():
            yield Label(self.title_text, classes="dialog-title")
            yield Static(Text(self.intro, style="dim"))
            yield Static(table)

    def action_close(self) -> None:
        self.dismiss(None)
