"""The agent desk (Textual): five slots, one composer, never the wrong chat.

The hub connection runs in a worker and posts each frame as a message; the
app updates its model (model.py) and widgets from those messages. A reply is
sent to the conversation the composer's text belongs to (``Composer.owner``),
which changes only when a slot's draft is loaded: typing in slot 3 can only
ever reach slot 3's customer.
"""

from __future__ import annotations

import gc
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from textual import on
from textual.app import App, ComposeResult
from textual.await_complete import AwaitComplete
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, Static

from desk.client import FINAL_SEND_ERRORS, HubClient
from desk.i18n import Tr, detect_lang
from desk.link import HubFrame, HubLinkMixin, LinkStatus
from phrasebook import (
    PhraseIndex,
    UsageRecord,
    UsageStats,
    can_send,
    expand_shortcode,
    make_context,
    next_slot,
    render,
    unfilled_slots,
)
from server import protocol as p

from .config import DeskConfig
from .model import SLOTS, Chat, DeskModel
from .screens import (
    CloseChoice,
    CloseDialog,
    GuardDialog,
    HelpScreen,
    PhraseEditor,
    PhrasePicker,
    PickerResult,
    QuitDialog,
    TextDialog,
    TransferChoice,
    TransferDialog,
)
from .text import TEXT
from .widgets import Composer, SlotStrip, SlotTab, Transcript, Watermark

TYPING_EVERY_S = 2.0
WAIT_ALERT_EVERY_S = 30.0  # at most one "has waited" pop-up this often
HELD_ALERTS = 3  # pop-ups kept while a dialog is open, shown when it closes
AGENT_GRACE_S = 60  # the hub's default grace for an agent's chats (said when quitting)




class DeskCommands(Provider):
    """The command palette lists what can be done now, for the chats open now."""

    def _entries(self) -> list[tuple[str, Any, str]]:
        app: AgentDesk = self.app  # type: ignore[assignment]
        tr = app.tr
        out: list[tuple[str, Any, str]] = []
        for chat in app.model.open_chats():
            out.append((f"{tr('action.slot', n=chat.slot)} · {chat.name}", lambda s=chat.slot: app.action_slot(s), "slot"))
        chat = app.model.current
        if chat is not None:
            for key in ("transfer", "close", "note", "reveal", "save_phrase"):
                out.append((f"{tr('action.' + key)} · {chat.name}", getattr(app, f"action_{key}"), key))
        for key in ("phrases", "longest", "status", "hand", "bell", "wrapups", "offline", "help"):
            out.append((tr("action." + key), getattr(app, f"action_{key}"), key))
        return out

    async def discover(self) -> Hits:
        for name, callback, help_ in self._entries():
            yield DiscoveryHit(name, callback, help=help_)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, callback, help_ in self._entries():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_)


def _bindings(tr: Tr) -> list[Binding]:
    """Every action has a binding with an id (remappable in the config's [keys]).
    F-keys are the defaults because they reach the app in every terminal;
    alt+digit is kept where the terminal sends it."""
    slots = [
        Binding(f"f{n},alt+{n}", f"slot({n})", tr("action.slot", n=n), id=f"slot-{n}", priority=True,
                show=False)
        for n in SLOTS
    ]  # fmt: skip
    return [
        *slots,
        Binding("f6", "longest", tr("action.longest"), id="longest", priority=True),
        Binding("f7", "phrases", tr("action.phrases"), id="phrases", priority=True),
        Binding("f8", "transfer", tr("action.transfer"), id="transfer", priority=True),
        Binding("f9", "close", tr("action.close"), id="close", priority=True),
        Binding("f10", "note", tr("action.note"), id="note", priority=True),
        Binding("f12", "help", tr("action.help"), id="help", priority=True),
        Binding("ctrl+t", "status", tr("action.status"), id="status", priority=True, show=False),
        Binding("ctrl+g", "hand", tr("action.hand"), id="hand", priority=True, show=False),
        Binding("ctrl+r", "reveal", tr("action.reveal"), id="reveal", priority=True, show=False),
        Binding("ctrl+n", "save_phrase", tr("action.save_phrase"), id="save-phrase", priority=True, show=False),
        Binding("ctrl+b", "bell", tr("action.bell"), id="bell", priority=True, show=False),
        Binding("ctrl+o", "wrapups", tr("action.wrapups"), id="wrapups", priority=True, show=False),
        # The reply box is a few lines: its pageup/pagedown page the chat instead.
        Binding("pageup", "history(False)", tr("action.older"), id="older", priority=True, show=False),
        Binding("pagedown", "history(True)", tr("action.newer"), id="newer", priority=True, show=False),
        Binding("ctrl+end", "newest", tr("action.newest"), id="newest", priority=True, show=False),
        Binding("escape", "clear_reply", tr("action.clear"), id="clear", show=False),
    ]


class AgentDesk(HubLinkMixin, App[None]):
    CSS_PATH = str(Path(__file__).with_name("desk.tcss"))
    BINDINGS = _bindings(Tr(TEXT, "en"))
    COMMANDS = App.COMMANDS | {DeskCommands}
    ENABLE_COMMAND_PALETTE = True

    def __init__(
        self,
        url: str,
        *,
        user: str = "",
        password: str = "",
        config: DeskConfig | None = None,
        lang: str | None = None,
        clock: Any = time.time,
        connect: bool = True,
        go_online: bool = False,
    ) -> None:
        super().__init__()
        self.go_online = go_online  # set the status to online right after login
        # connect=False: no hub link; frames are fed with feed() (snapshots, benchmarks).
        self.connect = connect
        self.config = config or DeskConfig(path=Path("/nonexistent/desk.toml"))
        self.url = url
        self.user = user or self.config.user
        self.password = password
        self.tr = Tr(TEXT, detect_lang(lang or self.config.lang))
        self.clock = clock
        self.model = DeskModel()
        self.client: HubClient | None = None
        self.session_id = ""
        self.status = "offline"
        self.load_cap = (0, 5)
        self.conn = "connecting"
        self.bell_on = self.config.bell
        self.index = PhraseIndex([], agent_id=None)
        self.usage = UsageStats()
        self.directory: p.Directory | None = None
        self.pending_wrapups: dict[str, str] = {}  # conv -> customer name
        self.note_mode = False
        self._last_typing: dict[str, float] = {}
        # conv -> {phrase id: a piece of the text it put in the draft}: counted as
        # used only if that piece is still in what is sent.
        self._used: dict[str, dict[str, str]] = {}
        self.sent_count = 0
        self.hand_up = False
        self._bars_queued = False
        self.max_text = p.MAX_TEXT_CHARS  # the hub's limit (login_ok says it)
        self._wait_alerted = 0.0
        self._held_alerts: list[tuple[str, str]] = []  # pop-ups that came while a dialog was open

    # -- layout -------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Watermark(id="watermark")
        yield SlotStrip(id="slots")
        yield Transcript(self.tr, id="transcript")
        with Vertical(id="composer-box"):
            yield Label(self.tr("composer.none"), id="composer-to")
            yield Static("", id="outbox")
            yield Composer(id="composer", placeholder=self.tr("composer.placeholder"))
        yield Footer(compact=True)  # the F-keys and the palette fit 80 columns

    def on_mount(self) -> None:
        self.title = self.tr("title")
        if self.config.keys:
            self.set_keymap(self.config.keys)
        self.set_interval(1.0, self.tick)
        self.show_current()
        # What is loaded by now (Textual, the pinyin dictionaries: ~250,000
        # objects) lives as long as the desk: out of the collector's sight, a
        # full collection no longer pauses a slot switch for ~40 ms.
        gc.freeze()
        # Full collections then walk what came later (histories, caches): a few
        # ms each, and they came every dozen switches. Ten times rarer: the
        # cycles they would find (few: lines and rows hold no cycles) wait longer.
        self._gc_threshold = gc.get_threshold()
        gen0, gen1, _ = self._gc_threshold
        gc.set_threshold(gen0, gen1, 100)
        if not self.connect:
            return
        self.open_link_or_login()

    def on_unmount(self) -> None:
        # The collector is the process's, not the desk's: as it was (whoever
        # embeds the desk, the tests among them). Frozen objects stay frozen.
        gc.set_threshold(*self._gc_threshold)

    async def send(self, frame: p.Frame) -> bool:
        return self.client is not None and await self.client.send(frame)

    def on_link_status(self, message: LinkStatus) -> None:
        self.conn = message.status
        self.refresh_idle_hint()
        self.refresh_bars()

    async def on_hub_frame(self, message: HubFrame) -> None:
        await self.feed(message.frame)

    async def feed(self, f: Any) -> None:
        """Handle one decoded hub frame (the link's worker delivers them here)."""
        handler = getattr(self, f"frame_{type(f).__name__.lower()}", None)
        if handler is not None:
            result = handler(f)
            if result is not None:
                await result

    # -- frames ------------------------------------------------------------------------

    async def frame_loginok(self, f: p.LoginOk) -> None:
        self.model.agent_id, self.model.agent_name = f.user, f.name
        self.session_id = f.session or self.session_id
        self.status, self.load_cap = f.status, (0, f.max_chats)
        self.max_text = f.max_text
        self.refresh_idle_hint()
        self.index = PhraseIndex(self.index.phrases(), agent_id=f.user)
        self.config.save_token_for(f.user, f.token)
        self.password = ""  # the token does from now on
        await self.send(p.PhrasesGet())
        if self.go_online and f.status != "online":
            self.go_online = False  # once: after that the agent's own choice stands
            await self.send(p.SetStatus(status="online"))
        self.refresh_bars()

    def frame_statusevent(self, f: p.StatusEvent) -> None:
        self.status, self.load_cap = f.status, (f.load, f.max_chats)
        self.refresh_idle_hint()
        self.queue_bars()

    def refresh_idle_hint(self) -> None:
        """With no chat shown, the empty transcript says why (link, status): redraw it."""
        if self.model.current is None:
            self.show_current()

    def idle_hint(self) -> str:
        """With no chat open: why, and what to do about it."""
        if self.conn != "online":
            return self.tr("idle.connecting")
        return self.tr(f"idle.{self.status}") if self.status in ("online", "away", "offline") else ""

    def frame_assigned(self, f: p.Assigned) -> None:
        chat, new = self.model.assign(f, self.clock())
        if new:
            self.query_one(Transcript).open(chat)
            chat.queue_wait_s = f.queue_wait_s
            self.alert(self.tr("notify.new", slot=chat.slot, name=chat.name), bell=True)
        if self.model.active == chat.slot:
            self.show_current()
        self.queue_bars()

    def frame_presence(self, f: p.Presence) -> None:
        chat = self.model.by_conv.get(f.conv)
        if chat is None:
            return
        chat.customer.online = f.online
        if not f.online:
            chat.customer_typing = False
        if self.model.active == chat.slot:
            self.show_current()  # the composer label says so
        self.queue_bars()

    def frame_msg(self, f: p.Msg) -> None:
        chat = self.model.on_msg(f, self.clock())
        if chat is None:
            return
        self.render_line(chat, f.seq)
        if f.sender == "customer" and chat.synced and self.model.active != chat.slot:
            preview = f.text if len(f.text) <= 30 else f.text[:30] + "…"
            self.alert(self.tr("notify.msg", slot=chat.slot, name=chat.name, text=preview), bell=True)
        self.queue_bars()

    def frame_ack(self, f: p.Ack) -> None:
        chat = self.model.on_ack(f)
        if chat is not None:
            self.render_line(chat, f.seq)
            self.refresh_outbox()

    def frame_synced(self, f: p.Synced) -> None:
        chat = self.model.by_conv.get(f.conv)
        if chat is not None:
            chat.synced = True
            self.queue_bars()

    def frame_resync(self, f: p.Resync) -> None:
        chat = self.model.by_conv.get(f.conv)
        if chat is not None:
            chat.drop_stored()
            self.query_one(Transcript).rebuild(chat)

    def frame_unassigned(self, f: p.Unassigned) -> None:
        was_active = self.model.current
        chat = self.model.release(f.conv)
        if chat is None:
            return
        self.query_one(Transcript).close(chat.conv)
        if f.reason not in ("agent_closed", "transferred"):
            self.alert(self.tr("notify.closed", slot=chat.slot, name=chat.name, reason=f.reason), bell=True)
        if was_active is chat:
            self.show_current()
        self.refresh_bars()

    def frame_typingevent(self, f: p.TypingEvent) -> None:
        chat = self.model.by_conv.get(f.conv)
        if chat is not None and f.who == "customer":
            chat.customer_typing = f.on
            self.queue_bars()

    def frame_phrases(self, f: p.Phrases) -> None:
        me = self.model.agent_id
        self.index = PhraseIndex(list(f.phrases), agent_id=me)
        self.usage = UsageStats.from_records([UsageRecord(me, *row) for row in f.usage])

    def frame_phrasechanged(self, f: p.PhraseChanged) -> None:
        if f.deleted:
            self.index.remove(f.id)
        elif f.phrase is not None:
            if not self.index.replace(f.phrase):
                self.index.add(f.phrase)

    def frame_directory(self, f: p.Directory) -> None:
        self.directory = f

    def frame_error(self, f: p.Error) -> None:
        if f.code == "bad_credentials" and self.conn != "online":
            self.config.forget_token()
            self.client_stop()
            self.ask_login(self.tr("login.failed", why=f.message))
            return
        if f.ref and f.code in FINAL_SEND_ERRORS and self.line_refused(f.ref, f.code):
            return
        self.notify(self.tr("notify.error", message=f"{f.code}: {f.message}"), severity="error", timeout=6)

    def line_refused(self, msg_id: str, code: str) -> bool:
        """One of our lines was refused for good: mark it, and give its text back to edit."""
        found = self.model.refuse(msg_id, code)
        if found is None:
            return False
        chat, line = found
        self.query_one(Transcript).rebuild(chat)
        self.refresh_outbox()
        reason = self.tr(f"refused.{code}")
        composer = self.query_one(Composer)
        if chat.conv in self.model.by_conv and not chat.draft.strip() and line.kind != "note":
            chat.draft = line.text
            if composer.owner == chat.conv:
                composer.load(chat.conv, line.text)
            self.notify(self.tr("notify.refused", slot=chat.slot, name=chat.name, reason=reason),
                        severity="warning", timeout=8)  # fmt: skip
        else:
            self.notify(self.tr("notify.refused_gone", reason=reason, text=line.text[:40]), severity="warning",
                        timeout=8)  # fmt: skip
        return True

    def frame_ok(self, f: p.Ok) -> None:
        if f.ref == "raise_hand":
            self.notify(self.tr("notify.hand"))
        elif f.ref == "reveal":
            chat = self.model.by_conv.get(f.conv)
            if chat is not None:
                chat.revealed = True
                self.query_one(Transcript).rebuild(chat)
                self.notify(self.tr("notify.revealed", name=chat.name))

    def client_stop(self) -> None:
        if self.client is not None:
            self.run_worker(self.client.close(), exit_on_error=False)
            self.client = None

    # -- rendering -------------------------------------------------------------------

    def render_line(self, chat: Chat, seq: int) -> None:
        transcript = self.query_one(Transcript)
        last = next((ln for ln in reversed(chat.lines) if ln.seq), None)
        if last is not None and last.seq == seq:
            transcript.add_line(chat, last)
        elif any(ln.seq == seq for ln in chat.lines):
            transcript.rebuild(chat)  # it landed before lines already shown: draw again in order

    def show_current(self) -> None:
        """Point the transcript, composer and label at the active slot."""
        chat = self.model.current
        composer = self.query_one(Composer)
        label = self.query_one("#composer-to", Label)
        transcript = self.query_one(Transcript)
        if chat is None:
            transcript.empty_text = self.idle_hint()
            transcript.show(None)
            composer.load("", "")
            label.update(self.tr("composer.none"), layout=False)
            label.set_classes("")
        else:
            transcript.show(chat.conv)
            composer.load(chat.conv, chat.draft)
            away = "" if chat.online else self.tr("composer.offline")
            label.update(self.tr("composer.to", slot=chat.slot, name=chat.name) + away, layout=False)
            label.set_classes(f"slot-color-{chat.slot}")
            composer.focus()
        self.refresh_outbox()
        self.refresh_bars()

    def refresh_outbox(self) -> None:
        chat = self.model.current
        pending = [ln for ln in chat.lines if ln.pending] if chat else []
        box = self.query_one("#outbox", Static)
        text = "\n".join(f"⌛ {self.tr('pending')} {ln.text[:60]}" for ln in pending)
        if text == getattr(box, "_shown_text", None):
            return  # nothing changed: no redraw, no layout pass
        box._shown_text = text  # type: ignore[attr-defined]
        box.display = bool(pending)
        box.update(text)

    def queue_bars(self) -> None:
        """Refresh the strip and watermark soon, once for a burst of frames
        (a replay of thousands of messages must not redraw them thousands of times)."""
        if not self._bars_queued:
            self._bars_queued = True
            self.set_timer(0.05, self._flush_bars)

    def _flush_bars(self) -> None:
        self._bars_queued = False
        self.refresh_bars()

    def refresh_bars(self) -> None:
        strips = self.query(SlotStrip)
        if not strips:
            return  # a timer outlived the desk: it is closing and its widgets are gone
        now = self.clock()
        strips.first().show(self.model.slots, self.model.active, now, self.tr)
        load = len(self.model.by_conv)
        self.query_one(Watermark).show(self.model.agent_id or self.user, self.model.agent_name,
                                       self.session_id, self.status, load, self.load_cap[1],
                                       self.conn, self.tr, self.bell_on)  # fmt: skip

    def tick(self) -> None:
        now = self.clock()
        overdue = [c for c in self.model.open_chats()
                   if not c.warned_wait and c.waiting_s(now) >= self.config.wait_alert_s]  # fmt: skip
        for chat in overdue:
            chat.warned_wait = True
        # The strip already warms each waiting slot: a pop-up only for a chat the
        # agent is not looking at, and one at a time (five overdue chats made a
        # constant stream of them over the transcript).
        shown = [c for c in overdue if c.slot != self.model.active]
        if shown and now - self._wait_alerted >= WAIT_ALERT_EVERY_S:
            self._wait_alerted = now
            chat = max(shown, key=lambda c: c.waiting_s(now))
            more = f" (+{len(shown) - 1})" if len(shown) > 1 else ""
            self.alert(self.tr("notify.wait", name=chat.name, slot=chat.slot, secs=int(chat.waiting_s(now))) + more,
                       bell=True, severity="warning")  # fmt: skip
        self.refresh_bars()

    def alert(self, text: str, bell: bool = False, severity: str = "information") -> None:
        """A pop-up about the chats (new chat, new line, long wait). While a dialog
        is open it waits until the dialog closes (the last few; the strip shows
        the rest): drawn over a dialog it hid the choices the agent was reading."""
        if isinstance(self.screen, ModalScreen):
            self._held_alerts = [*self._held_alerts, (text, severity)][-HELD_ALERTS:]
        else:
            self.notify(text, severity=severity, timeout=3)  # type: ignore[arg-type]
        if bell and self.bell_on:
            self.bell()

    def pop_screen(self) -> AwaitComplete:
        done = super().pop_screen()
        if self._held_alerts:  # a dialog closed: what came meanwhile, now (not at the next tick)
            self.call_after_refresh(self.show_held_alerts)
        return done

    def show_held_alerts(self) -> None:
        if self._held_alerts and not isinstance(self.screen, ModalScreen):
            held, self._held_alerts = self._held_alerts, []
            for text, severity in held:
                self.notify(text, severity=severity, timeout=3)  # type: ignore[arg-type]

    # -- switching ---------------------------------------------------------------------

    def save_draft(self) -> None:
        composer = self.query_one(Composer)
        chat = self.model.by_conv.get(composer.owner)
        if chat is not None:
            chat.draft = composer.text

    def action_slot(self, n: int) -> None:
        if self.model.slots.get(n) is None or self.model.active == n:
            return
        self.save_draft()
        self.model.activate(n)
        self.show_current()

    async def action_quit(self) -> None:
        """ctrl+q: with chats open, ask first (they are handed back if the agent does not return)."""
        open_chats = len(self.model.by_conv)
        if not open_chats or isinstance(self.screen, QuitDialog):
            self.exit()
            return

        def done(go: bool | None) -> None:
            if go:
                self.exit()

        self.push_screen(QuitDialog(self.tr, open_chats, AGENT_GRACE_S), done)

    def action_history(self, down: bool) -> None:
        self.query_one(Transcript).page(down)

    def action_newest(self) -> None:
        self.query_one(Transcript).newest()

    def action_clear_reply(self) -> None:
        """Empty the reply box (ctrl+z in it brings the text back)."""
        composer = self.query_one(Composer)
        if composer.owner and composer.text:
            composer.clear()
            self.notify(self.tr("notify.cleared"), timeout=3)

    def action_longest(self) -> None:
        slot = self.model.longest_waiting(self.clock())
        if slot is not None:
            self.action_slot(slot)

    @on(SlotTab.Clicked)
    def slot_clicked(self, event: SlotTab.Clicked) -> None:
        self.action_slot(event.slot)

    # -- composing and sending ---------------------------------------------------------

    @on(Composer.Changed)
    async def typed(self, event: Composer.Changed) -> None:
        composer = self.query_one(Composer)
        chat = self.model.by_conv.get(composer.owner)
        if chat is None:
            return
        chat.draft = composer.text
        now = self.clock()
        empty = not composer.text.strip()
        last = self._last_typing.get(chat.conv, 0.0)
        if empty and last:
            self._last_typing.pop(chat.conv, None)
            await self.send(p.Typing(conv=chat.conv, on=False))
        elif not empty and now - last >= TYPING_EVERY_S:
            self._last_typing[chat.conv] = now
            await self.send(p.Typing(conv=chat.conv, on=True))

    @on(Composer.Submitted)
    async def submitted(self, event: Composer.Submitted) -> None:
        text = event.text.strip()
        chat = self.model.by_conv.get(event.conv)
        if not text:
            return
        if chat is None:  # closed while the text was being written
            self.notify(self.tr("notify.no_chat"), severity="warning")
            return
        if len(text) > self.max_text:  # the hub would refuse it: say so now, keep the text
            self.notify(self.tr("notify.too_long", n=len(text), max=self.max_text), severity="warning")
            return
        blockers = unfilled_slots(text)
        if blockers or not can_send(text):
            label = blockers[0].label if blockers else "…"
            self.notify(self.tr("notify.sent_blocked", label=label), severity="warning")
            if blockers:
                self.query_one(Composer).select_span(blockers[0].start, blockers[0].end)
            return
        reasons = self.model.wrong_chat_warnings(chat.conv, text)
        if reasons:
            def confirmed(ok: bool | None) -> None:
                if ok:
                    self.run_worker(self.deliver(chat.conv, text), exit_on_error=False)

            self.push_screen(GuardDialog(self.tr, chat.slot, chat.name, reasons, text), confirmed)
            return
        await self.deliver(chat.conv, text)

    async def deliver(self, conv: str, text: str) -> None:
        chat = self.model.by_conv.get(conv)
        if chat is None or self.client is None:
            self.notify(self.tr("notify.no_chat"), severity="warning")
            return
        msg_id = await self.client.send_text(conv, text)
        self.model.sent(conv, msg_id, text, self.clock())
        self.sent_count += 1
        chat.draft = ""
        composer = self.query_one(Composer)
        if composer.owner == conv:
            composer.load(conv, "")
        for phrase_id, piece in self._used.pop(conv, {}).items():
            if piece in text:  # inserted and then deleted: not used
                await self.send(p.PhraseUsed(id=phrase_id, conv=conv))
        if self._last_typing.pop(conv, None):
            await self.send(p.Typing(conv=conv, on=False))
        self.refresh_outbox()
        self.refresh_bars()

    @on(Composer.TabPressed)
    def tab(self, event: Composer.TabPressed) -> None:
        composer = self.query_one(Composer)
        chat = self.model.by_conv.get(composer.owner)
        if chat is None:
            return
        text, cursor = composer.text, composer.cursor_offset()
        if not event.backwards:
            exp = expand_shortcode(text, cursor, self.index, chat.customer.lang, self.context(chat))
            if exp is not None:
                composer.load(chat.conv, exp.text)
                self.mark_used(chat.conv, exp.phrase.id, render(exp.phrase.text, self.context(chat)).text)
                if exp.selection:
                    composer.select_span(*exp.selection)
                else:
                    composer.select_span(exp.cursor, exp.cursor)
                return
        slot = next_slot(text, cursor, backwards=event.backwards)
        if slot is not None:
            composer.select_span(slot.start, slot.end)

    def context(self, chat: Chat) -> dict[str, str]:
        return make_context(customer=chat.name, agent=self.model.agent_name or self.user,
                            queue_wait_s=chat.queue_wait_s or None,
                            lang=chat.customer.lang)  # fmt: skip

    def mark_used(self, conv: str, phrase_id: str, inserted: str) -> None:
        # The longest stretch of the phrase's own words (fill-ins get replaced), up to 12 characters.
        pieces = [part.strip() for part in re.split(r"\[\[[^\]]*\]\]", inserted)]
        self._used.setdefault(conv, {})[phrase_id] = max(pieces, key=len)[:12]

    def insert_text(self, chat: Chat, text: str) -> None:
        """Put rendered phrase text at the cursor (several phrases combine)."""
        composer = self.query_one(Composer)
        if composer.owner != chat.conv:
            return
        cursor = composer.cursor_offset()
        before, after = composer.text[:cursor], composer.text[cursor:]
        joiner = "" if not before or before.endswith(("\n", " ")) else "\n"
        new = before + joiner + text + after
        composer.load(chat.conv, new)
        start = len(before + joiner)
        slot = next_slot(new, start)
        if slot is not None and slot.start < start + len(text):
            composer.select_span(slot.start, slot.end)
        else:
            composer.select_span(start + len(text), start + len(text))
        composer.focus()

    # -- actions -----------------------------------------------------------------------

    def action_phrases(self) -> None:
        chat = self.model.current
        lang = chat.customer.lang if chat else self.tr.lang

        def done(result: PickerResult | None) -> None:
            if result is None:
                return
            if result.action == "insert" and result.phrase is not None and chat is not None:
                rendered = render(result.phrase.text, self.context(chat))
                self.mark_used(chat.conv, result.phrase.id, rendered.text)
                self.insert_text(chat, rendered.text)
            elif result.action == "edit" and result.phrase is not None:
                self.edit_phrase(result.phrase, "")
            elif result.action == "new":
                self.action_save_phrase()
            elif result.action == "delete" and result.phrase is not None:
                self.run_worker(self.send(p.PhraseDelete(id=result.phrase.id)))

        suggested = self.suggestions(chat, lang) if chat else []
        self.push_screen(PhrasePicker(self.tr, self.index, self.usage, lang, self.model.agent_id,
                                      suggested=suggested), done)  # fmt: skip

    def suggestions(self, chat: Chat, lang: str) -> list[Any]:
        """Phrases for the chat's detected topics, in the order the bot met them: the
        first is what the customer came with; later ones are more often a follow-up
        line the bot matched to some other topic (F7 Enter inserts the first)."""
        out: list[Any] = []
        for topic in chat.handoff.intents:
            found = self.index.for_topic(topic, lang) or self.index.for_topic(topic)
            out += [ph for ph in found if ph not in out]
        return out

    def edit_phrase(self, phrase: Any, text: str) -> None:
        chat = self.model.current
        lang = chat.customer.lang if chat else "zh"

        def done(draft: p.PhraseDraft | None) -> None:
            if draft is not None:
                self.run_worker(self.send(p.PhraseSave(phrase=draft)))
                self.notify(self.tr("notify.saved_phrase", code=draft.code))

        self.push_screen(PhraseEditor(self.tr, lang, phrase, text), done)

    def action_save_phrase(self) -> None:
        composer = self.query_one(Composer)
        text = composer.selected_text or composer.text
        self.edit_phrase(None, text.strip())

    def action_transfer(self) -> None:
        chat = self.model.current
        if chat is None:
            return
        self.run_worker(self._transfer(chat), exclusive=True, group="transfer")

    async def _transfer(self, chat: Chat) -> None:
        self.directory = None
        await self.send(p.DirectoryGet())
        for _ in range(50):
            if self.directory is not None:
                break
            await self.sleep(0.05)
        directory = self.directory or p.Directory(groups=[], agents=[])

        def done(choice: TransferChoice | None) -> None:
            if choice is not None and chat.conv in self.model.by_conv:
                self.run_worker(self.send(p.Transfer(conv=chat.conv, group=choice.group, agent=choice.agent,
                                                     note=choice.note)))  # fmt: skip

        self.push_screen(TransferDialog(self.tr, chat.name, directory, self.model.agent_id), done)

    async def sleep(self, seconds: float) -> None:
        import asyncio

        await asyncio.sleep(seconds)

    def action_close(self) -> None:
        chat = self.model.current
        if chat is None:
            return

        def done(choice: CloseChoice | None) -> None:
            if choice is None:
                return
            if choice.code is None:
                self.pending_wrapups[chat.conv] = chat.name
                self.notify(self.tr("notify.wrapup_later", name=chat.name))
            self.run_worker(self.send(p.Close(conv=chat.conv, wrapup=choice.code, note=choice.note)))

        self.push_screen(CloseDialog(self.tr, chat.name, chat.customer.lang), done)

    def action_wrapups(self) -> None:
        if not self.pending_wrapups:
            return
        conv, name = next(iter(self.pending_wrapups.items()))

        def done(choice: CloseChoice | None) -> None:
            if choice is not None and choice.code:
                self.pending_wrapups.pop(conv, None)
                self.run_worker(self.send(p.Wrapup(conv=conv, code=choice.code, note=choice.note)))

        self.push_screen(CloseDialog(self.tr, name, self.tr.lang, title_key="wrapup.title"), done)

    def action_note(self) -> None:
        chat = self.model.current
        if chat is None or self.client is None:
            return

        def done(text: str | None) -> None:
            if text and chat.conv in self.model.by_conv and self.client is not None:
                self.run_worker(self._note(chat.conv, text))

        self.push_screen(TextDialog(self.tr("note.title", name=chat.name), self.tr("note.go"), self.tr("cancel")), done)

    async def _note(self, conv: str, text: str) -> None:
        assert self.client is not None
        msg_id = await self.client.send_text(conv, text, note=True)
        self.model.sent(conv, msg_id, text, self.clock(), note=True)
        self.refresh_outbox()

    async def action_status(self) -> None:
        await self.send(p.SetStatus(status="away" if self.status == "online" else "online"))

    async def action_offline(self) -> None:
        await self.send(p.SetStatus(status="offline"))

    async def action_hand(self) -> None:
        chat = self.model.current
        self.hand_up = not self.hand_up
        await self.send(p.RaiseHand(on=self.hand_up, conv=chat.conv if chat else None))
        if not self.hand_up:
            self.notify(self.tr("notify.hand_down"))

    async def action_reveal(self) -> None:
        chat = self.model.current
        if chat is not None and not chat.revealed:
            await self.send(p.Reveal(conv=chat.conv))

    def action_bell(self) -> None:
        self.bell_on = not self.bell_on
        self.notify(self.tr("bell.on" if self.bell_on else "bell.off"))
        self.refresh_bars()

    def action_help(self) -> None:
        rows = [(b.key, b.description or b.action, b.id or "") for b in self.key_rows()]
        rows += [("enter", self.tr("action.send"), "composer"), ("ctrl+j", self.tr("action.newline"), "composer"),
                 ("tab / shift+tab", "/code → phrase · [[slot]]", "composer"), ("ctrl+p", "command palette", ""),
                 ("ctrl+q", "quit", "")]  # fmt: skip
        self.push_screen(HelpScreen(self.tr("help.title"), self.tr("help.intro", path=self.config.path) + "\n" + self.tr("help.legend"), rows))

    def key_rows(self) -> Iterable[Binding]:
        keymap = self.config.keys
        for binding in self.BINDINGS:
            assert isinstance(binding, Binding)
            key = keymap.get(binding.id or "", binding.key)
            yield Binding(key, binding.action, self.describe(binding), id=binding.id)

    def describe(self, binding: Binding) -> str:
        action = binding.action
        if action.startswith("slot("):
            return self.tr("action.slot", n=action[5])
        return self.tr("action." + action)


def make_agent_desk(url: str, user: str = "", password: str = "", lang: str | None = None,
                    config: DeskConfig | None = None, **kw: Any) -> AgentDesk:  # fmt: skip
    """The one factory for the desk: the CLI, the demo and the tests use it.
    The footer speaks the UI language, so the bindings are made for it."""
    config = config or DeskConfig.load()
    tr = Tr(TEXT, detect_lang(lang or config.lang))
    cls = type(f"AgentDesk_{tr.lang}", (AgentDesk,), {"BINDINGS": _bindings(tr)})
    return cls(url, user=user, password=password, lang=tr.lang, config=config, **kw)
