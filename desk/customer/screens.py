"""The start screen (name and demo flags) and the chat screen."""

from __future__ import annotations

import time

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Button, Checkbox, Footer, Input, Label, Static

from desk.client import HubClient
from desk.i18n import Tr
from server import protocol as p

from .dialogs import ConfirmEnd, Rating, RatingScreen
from .model import ChatModel, Link, TypingThrottle, Update, format_eta
from .texts import localize_bindings
from .transcript import Transcript

FLAGS = ("elderly", "disabled", "vip")
TYPING_STALE_S = 8.0  # hide an agent's typing mark nobody refreshed


def who_label(tr: Tr, name: str, flags: list[str]) -> str:
    shown = [tr(f"flag_{f}") if f in FLAGS else f for f in flags]
    return tr("who_flags", name=name, flags=tr("flag_sep").join(shown)) if shown else name


class StartScreen(Screen[tuple[str, list[str]]]):
    """Who the demo customer is: a name and, for demos, priority flags."""

    def __init__(self, tr: Tr, flags: list[str] | None = None) -> None:
        super().__init__()
        self.tr = tr
        self.flags = list(flags or [])

    def compose(self) -> ComposeResult:
        tr = self.tr
        with Vertical(id="start-box"):
            yield Label(tr("start_title"), id="start-title")
            yield Label(tr("start_name"))
            yield Input(
                placeholder=tr("start_name_placeholder"),
                max_length=p.MAX_NAME_CHARS,
                id="start-name",
            )
            yield Label(tr("start_flags"))
            with Horizontal(id="start-flags"):
                for flag in FLAGS:
                    yield Checkbox(tr(f"flag_{flag}"), value=flag in self.flags, id=f"flag-{flag}")
            yield Button(tr("start_go"), variant="primary", id="start-go")

    @on(Input.Submitted, "#start-name")
    @on(Button.Pressed, "#start-go")
    def _start(self) -> None:
        name = self.query_one("#start-name", Input).value.strip()
        if not name:
            self.notify(self.tr("start_need_name"), severity="warning")
            self.query_one("#start-name", Input).focus()
            return
        flags = [f for f in FLAGS if self.query_one(f"#flag-{f}", Checkbox).value]
        flags += [f for f in self.flags if f not in FLAGS]  # command-line extras ride along
        self.dismiss((name, flags))


class ChatScreen(Screen[None]):
    """One conversation. Frames from the hub arrive as ``FrameReceived``
    messages and go through ``handle_frame``, which tests may call directly."""

    BINDINGS = [
        Binding("f2", "request_human", "key_human", id="customer.request-human"),
        Binding("f3", "end_chat", "key_end", id="customer.end"),
        Binding("f4", "rate", "key_rate", id="customer.rate"),
        Binding("f5", "new_chat", "key_new", id="customer.new-chat"),
    ]

    class FrameReceived(Message):
        """A decoded frame from the hub."""

        def __init__(self, frame: object) -> None:
            super().__init__()
            self.frame = frame

    class LinkChanged(Message):
        """HubClient's connection status changed."""

        def __init__(self, status: str, reconnects: int = 0, error: str = "") -> None:
            super().__init__()
            self.status, self.reconnects, self.error = status, reconnects, error

    class Queued(Message):
        """The client took our line `key` as `msg_id` (it resends it until acked)."""

        def __init__(self, key: int, msg_id: str) -> None:
            super().__init__()
            self.key, self.msg_id = key, msg_id

    class NewChatRequested(Message):
        """The chat is over and the customer wants another one."""

    def __init__(self, tr: Tr, customer_name: str, flags: list[str], lang: str = "zh",
                 url: str | None = None) -> None:  # fmt: skip
        super().__init__()
        self.tr = tr
        self.customer_name = customer_name
        self.flags = list(flags)
        self.lang = lang
        self.model = ChatModel()
        self.link: Link = "connecting"
        self.throttle = TypingThrottle()
        # Control frames not answered yet, by ref: sent again after a reconnect.
        self.awaiting: dict[str, p.Frame] = {}
        self._typing_timer: Timer | None = None
        self._rating_open = False
        self._leaving = False
        self.client: HubClient | None = None
        if url:
            hello = p.Hello(name=customer_name, channel="app", flags=self.flags, lang=lang)  # type: ignore[arg-type]
            self.client = HubClient(
                url, self._on_hub_frame, hello=hello, on_status=self._on_hub_status
            )
        localize_bindings(self, tr)

    # -- layout --------------------------------------------------------------

    def compose(self) -> ComposeResult:
        tr = self.tr
        with Horizontal(id="topbar"):
            yield Label(tr("app_title"), id="title")
            yield Label(who_label(tr, self.customer_name, self.flags), id="who")
            yield Label(tr("link_connecting"), id="link", classes="link-connecting")
        yield Static(tr("state_connecting"), id="status")
        yield Transcript(tr, id="transcript")
        yield Static("", id="typing")
        with Horizontal(id="composer"):
            yield Input(placeholder=tr("input_connecting"), max_length=p.MAX_TEXT_CHARS,
                        disabled=True, id="message")  # fmt: skip
            yield Button(tr("btn_human"), id="human", disabled=True)
            yield Button(tr("btn_end"), id="end", disabled=True, variant="error")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(Transcript).anchor()  # stay on the newest line until the user scrolls up
        if self.client is not None:
            self._run_client()

    async def on_unmount(self) -> None:
        self._leaving = True
        if self.client is not None:
            await self.client.close()

    # -- network (workers post messages; handlers touch widgets) ----------------

    def _on_hub_frame(self, frame: object) -> None:
        self.post_message(self.FrameReceived(frame))

    def _on_hub_status(self, status: str) -> None:
        reconnects = self.client.state.reconnects if self.client else 0
        self.post_message(self.LinkChanged(status, reconnects))

    @work(exclusive=True, group="hub", exit_on_error=False)
    async def _run_client(self) -> None:
        assert self.client is not None
        try:
            await self.client.run()
        except Exception as exc:  # a bad URL or a refused handshake: nothing to retry
            self.post_message(self.LinkChanged("closed", error=str(exc)))

    @work(group="send", exit_on_error=False)
    async def _send_text(self, key: int, text: str) -> None:
        assert self.client is not None
        msg_id = await self.client.send_text(self.model.conv, text)
        self.post_message(self.Queued(key, msg_id))

    @work(group="send", exit_on_error=False)
    async def _send_frames(self, frames: list[p.Frame]) -> None:
        if self.client is None:
            return
        for frame in frames:
            if not await self.client.send(frame):
                return  # offline: `awaiting` frames go again once back online

    @on(FrameReceived)
    def _frame_received(self, message: FrameReceived) -> None:
        self.handle_frame(message.frame)

    @on(LinkChanged)
    def _link_changed(self, message: LinkChanged) -> None:
        self.set_link(message.status, message.reconnects)
        if message.status == "closed" and self.client is not None and not self._leaving:
            error = message.error or self.client.state.last_error
            key = "link_replaced" if "elsewhere" in error else "link_failed"
            self.notify(self.tr(key, error=error), severity="error", timeout=10)

    @on(Queued)
    def _queued(self, message: Queued) -> None:
        self._show(self.model.bind(message.key, message.msg_id))

    # -- feeding (the network worker and the tests both come through here) -------

    def handle_frame(self, frame: object) -> None:
        """Apply one decoded hub frame to the model and the screen."""
        if isinstance(frame, p.Ok | p.Error) and frame.ref in self.awaiting:
            del self.awaiting[frame.ref]  # answered: no need to send it again
        if isinstance(frame, p.ConvState) and frame.state == "closed":
            self.awaiting.pop("end", None)
            self.awaiting.pop("request_human", None)
        self._show(self.model.apply(frame))

    def set_link(self, status: str, reconnects: int = 0) -> None:
        """Show HubClient's status: connecting | online | offline | closed."""
        if status == "online":
            link: Link = "online"
            if self.awaiting:
                self._send_frames(list(self.awaiting.values()))
        elif status == "closed":
            link = "closed"
        elif status == "offline" or reconnects:
            link = "reconnecting"
        else:
            link = "connecting"
        self.link = link
        label = self.query_one("#link", Label)
        label.update(self.tr(f"link_{link}"))
        label.set_classes(f"link-{link}")

    def _show(self, up: Update) -> None:
        transcript = self.query_one(Transcript)
        if up.reset:
            transcript.reset(self.model.lines)
        else:
            for line in up.removed:
                transcript.remove_line(line)
            for line in up.lines:
                transcript.set_line(line)  # a failed line says why (HubClient no longer resends it)
        if up.status:
            self.refresh_status()
        if up.notice:
            self.notify(self.tr(up.notice))
        # HubClient handles a stale token itself (a new chat follows, with its own notice).
        if up.error is not None and up.error.ref != "typing" and up.error.code != "unknown_token":
            text = self.tr(f"err_{up.error.code}")
            self.notify(
                up.error.message if text == f"err_{up.error.code}" else text, severity="warning"
            )
        if up.rating:
            self.action_rate()

    def refresh_status(self) -> None:
        """Redraw the status line, typing mark and composer from the model."""
        tr, m = self.tr, self.model
        if m.state == "bot":
            text = tr("state_bot")
        elif m.state == "queued":
            if m.queue_position is None:
                text = tr("state_queued")
            else:
                eta = format_eta(m.queue_eta, tr("eta_minutes"), tr("eta_under_minute"))
                wait = tr("queue_eta", eta=eta) if eta else tr("queue_no_agent")
                text = f"{tr('queue_pos', position=m.queue_position)} · {wait}"
        elif m.state == "assigned":
            text = tr("state_assigned", name=m.agent_name or tr("who_staff"))
        elif m.state == "closed":
            text = tr("state_rated" if m.rated else "state_closed")
        else:
            text = tr("state_connecting")
        status = self.query_one("#status", Static)
        status.update(text)
        status.set_classes(f"state-{m.state}")
        typing = self.query_one("#typing", Static)
        typing.update(tr("typing", name=m.typing_name) if m.typing_name else "")
        if m.typing_name:
            self.set_timer(TYPING_STALE_S, self._expire_typing)
        open_ = bool(m.conv) and m.state != "closed"
        box = self.query_one("#message", Input)
        was_disabled = box.disabled
        box.disabled = not open_
        box.placeholder = tr(
            "input_placeholder" if open_ else "input_closed" if m.conv else "input_connecting"
        )
        if open_ and was_disabled:
            box.focus()
        self.query_one("#human", Button).disabled = m.state != "bot"
        self.query_one("#end", Button).disabled = not open_
        if m.state != "assigned":
            self.throttle.reset()
        self.refresh_bindings()

    def _expire_typing(self) -> None:
        if self.model.expire_typing(TYPING_STALE_S):
            self.refresh_status()

    # -- the customer's actions --------------------------------------------------

    @on(Input.Submitted, "#message")
    def _submit(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text or not self.model.conv or self.model.state == "closed":
            return
        event.input.value = ""
        line = self.model.add_own(text)  # shown at once, marked as sending
        self.query_one(Transcript).set_line(line)
        if self.client is not None:
            self._send_text(line.key, text)

    @on(Input.Changed, "#message")
    def _typed(self) -> None:
        self._typing_tick()

    def _typing_tick(self) -> None:
        self._typing_timer = None
        if self.client is None or self.model.state != "assigned":
            return
        want = bool(self.query_one("#message", Input).value.strip())
        send, wait = self.throttle.update(want, time.monotonic())
        if send is not None:
            self._send_frames([p.Typing(conv=self.model.conv, on=send)])
        if wait is not None and self._typing_timer is None:
            self._typing_timer = self.set_timer(wait, self._typing_tick)

    @on(Button.Pressed, "#human")
    def _human_pressed(self) -> None:
        self.action_request_human()

    @on(Button.Pressed, "#end")
    def _end_pressed(self) -> None:
        self.action_end_chat()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        state = self.model.state
        if action == "request_human":
            if state == "closed":
                return False
            return True if state == "bot" else None  # shown greyed while a person is coming
        if action == "end_chat":
            return bool(self.model.conv) and state != "closed"
        if action == "rate":
            return state == "closed" and not self.model.rated and not self._rating_open
        if action == "new_chat":
            return state == "closed"
        return True

    def action_request_human(self) -> None:
        if self.model.state != "bot":
            return
        self._command(p.RequestHuman(conv=self.model.conv))

    def action_end_chat(self) -> None:
        def confirmed(yes: bool | None) -> None:
            if yes and self.model.state != "closed":
                self._command(p.End(conv=self.model.conv))

        self.app.push_screen(ConfirmEnd(self.tr), confirmed)

    def action_rate(self) -> None:
        if self._rating_open or self.model.rated:
            return
        self._rating_open = True
        self.refresh_bindings()
        self.app.push_screen(RatingScreen(self.tr), self._rated)

    def _rated(self, rating: Rating | None) -> None:
        self._rating_open = False
        if rating is None:
            self.notify(self.tr("rate_later"))
        else:
            self._command(p.Rate(conv=self.model.conv, score=rating.score, comment=rating.comment))
        self.refresh_bindings()

    def action_new_chat(self) -> None:
        self.post_message(self.NewChatRequested())

    def _command(self, frame: p.RequestHuman | p.End | p.Rate) -> None:
        """Send a command, and keep it until answered so a reconnect resends it."""
        self.awaiting[frame.__struct_config__.tag] = frame  # type: ignore[index]
        self._send_frames([frame])
