"""The supervisor monitor (Textual): load, queues and quality live, and the
supervisor's actions (watch, whisper, reassign, agent settings, team
phrases, the audit log, the knowledge base).

The hub link runs in a worker and posts each frame as a message; ``feed``
handles one frame, so tests and snapshots drive the app without a network.
The board lives in a headless model (model.py); widgets redraw only the rows
a board delta names.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Footer, Input, Label, Static, TabbedContent, TabPane

from desk.agent.model import Chat, Line
from desk.client import HubClient
from desk.i18n import Tr, detect_lang
from desk.link import HubFrame, HubLinkMixin, LinkStatus
from server import protocol as p

from .agents_table import SORTS
from .config import MonitorConfig
from .model import BoardChange, BoardModel, Waiting, chat_labels, duration
from .screens import (
    AgentSetChoice,
    AgentSetDialog,
    ChatChoice,
    ChatPicker,
    HelpScreen,
    TargetPicker,
    TeamPhraseEditor,
    WaitingPicker,
    WhisperDialog,
)
from .text import TEXT
from .widgets import (
    AgentsTable,
    AlertsTable,
    AuditTable,
    QueueCharts,
    QueuesTable,
    RankList,
    SidePanel,
    TodayPanel,
    TopBar,
    WatchTranscript,
)

TABS = ("agents", "queues", "today", "alerts", "audit", "watch")
AUDIT_PAGE = 100
AUDIT_ANSWER_S = 10.0  # an audit request unanswered this long is given up (the next one goes out)
TOP_N = 10
RESORT_EVERY_S = 5.0




class MonitorCommands(Provider):
    """The command palette: what can be done now, for the agent selected and
    the chat watched now, and the chats waiting longest."""

    def _entries(self) -> list[tuple[str, Callable[[], Any], str]]:
        """(what, callback, its key) for everything that can be done now."""
        app: SupervisorMonitor = self.app  # type: ignore[assignment]
        tr, now = app.tr, app.clock()
        key = app.key_of
        out: list[tuple[str, Callable[[], Any], str]] = []
        for tab in TABS:
            out.append((tr("tab." + tab), lambda t=tab: app.action_tab(t), key(f"tab-{tab}")))
        if app.watch_conv:
            for action, binding in (("whisper", "whisper"), ("reassign", "reassign"), ("unwatch", "unwatch")):
                out.append((tr("action." + action), getattr(app, f"action_{action}"), key(binding)))
        agent = app.selected_agent()
        if agent is not None:
            out.append((f"{tr('action.watch')} · {agent.row.name}", app.action_watch, key("watch")))
            out.append((f"{tr('action.agent_set')} · {agent.row.name}", app.action_agent_set, key("agent-set")))
        warm = sorted(((st.worst_wait(now), st) for st in app.model.agents.values() if st.since),
                      key=lambda x: -x[0])[:8]  # fmt: skip
        for _, st in warm:
            labels = chat_labels(st.row.chats, st.names.get)
            for conv, wait in sorted(st.waits(now).items(), key=lambda x: -x[1])[:2]:
                label = tr("palette.watch", customer=labels[conv], agent=st.row.name) + f" · {duration(wait)}"
                out.append((label, lambda c=conv: app.watch(c), ""))
        out.append((tr("palette.waiting_all"), lambda: app.pick_waiting(None), ""))
        for w in app.model.waiting_chats()[:5]:
            label = tr("palette.reassign_waiting", name=w.chat.customer, group=w.group, wait=duration(w.wait(now)))
            out.append((label, lambda c=w.conv: app.reassign_waiting(c), ""))
        for st in app.model.agents.values():
            if st.row.hand_raised:
                out.append((tr("palette.agent", name=st.row.name, id=st.row.id),
                            lambda a=st.row.id: app.goto_agent(a), "✋"))  # fmt: skip
        for action, binding in (("team_phrase", "team-phrase"), ("kb_reload", "kb-reload"), ("refresh", "refresh"),
                                ("sort", "sort"), ("bell", "bell"), ("audit_older", ""),
                                ("next_alert", "next-alert"), ("help", "help")):  # fmt: skip
            out.append((tr("action." + action), getattr(app, f"action_{action}"), key(binding)))
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
    """Every action has a binding with an id (remappable in the config's
    [keys]); F-keys by default because they reach the app in every terminal."""
    tabs = [
        Binding(f"f{n}", f"tab('{tab}')", tr("tab." + tab), id=f"tab-{tab}", priority=True, show=False)
        for n, tab in enumerate(TABS, 1)
    ]  # fmt: skip
    return [
        *tabs,
        Binding("f7", "watch", tr("action.watch"), id="watch", priority=True),
        Binding("f8", "whisper", tr("action.whisper"), id="whisper", priority=True),
        Binding("f9", "reassign", tr("action.reassign"), id="reassign", priority=True),
        Binding("f10", "agent_set", tr("action.agent_set"), id="agent-set", priority=True),
        Binding("f12", "help", tr("action.help"), id="help", priority=True),
        Binding("ctrl+n", "team_phrase", tr("action.team_phrase"), id="team-phrase", priority=True, show=False),
        Binding("ctrl+r", "kb_reload", tr("action.kb_reload"), id="kb-reload", priority=True, show=False),
        Binding("ctrl+u", "refresh", tr("action.refresh"), id="refresh", priority=True, show=False),
        Binding("ctrl+b", "bell", tr("action.bell"), id="bell", priority=True, show=False),
        Binding("ctrl+o", "sort", tr("action.sort"), id="sort", priority=True, show=False),
        Binding("ctrl+w", "unwatch", tr("action.unwatch"), id="unwatch", priority=True, show=False),
        Binding("ctrl+a", "next_alert", tr("action.next_alert"), id="next-alert", priority=True, show=False),
    ]


_MONITOR_ACTIONS = {b.action.split("(")[0] for b in _bindings(Tr(TEXT, "en"))}


class SupervisorMonitor(HubLinkMixin, App[None]):
    CSS_PATH = str(Path(__file__).with_name("monitor.tcss"))
    BINDINGS = _bindings(Tr(TEXT, "en"))
    COMMANDS = App.COMMANDS | {MonitorCommands}
    ENABLE_COMMAND_PALETTE = True
    # The agents table gets a side column (queues, latest alerts) on wide terminals.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (80, "-normal"), (140, "-wide")]

    def __init__(
        self,
        url: str,
        *,
        user: str = "",
        password: str = "",
        config: MonitorConfig | None = None,
        lang: str | None = None,
        clock: Callable[[], float] = time.time,
        connect: bool = True,
    ) -> None:
        super().__init__()
        # connect=False: no hub link; frames are fed with feed() (snapshots, benchmarks).
        self.connect = connect
        self.config = config or MonitorConfig(path=Path("/nonexistent/monitor.toml"))
        self.url = url
        self.user = user or self.config.user
        self.password = password
        self.tr = Tr(TEXT, detect_lang(lang or self.config.lang))
        self.clock = clock
        self.model = BoardModel()
        self.client: HubClient | None = None
        self.conn = "connecting" if connect else "offline"
        self.sup_name = ""
        self.bell_on = self.config.bell
        self.unseen_alerts = 0
        self.figures_at = 0.0
        # the watched chat
        self.watch_conv = ""
        self.watch_info: p.Watching | None = None
        self.watch_state = ""
        self.watch_chats: dict[str, Chat] = {}
        self.whispers: dict[str, tuple[str, str]] = {}  # msg_id -> (conv, text) until acked
        # what the last request of each kind was about (to word the answer)
        self.asked: dict[str, str] = {}
        # what each audit_get in flight asks for, oldest first (the hub answers in order):
        # "newest" (replace what is shown), "older" (the page before), "newer" (entries since)
        self.audit_asked: deque[tuple[str, float]] = deque()  # (what, when asked)
        self.audit_action = ""
        self.audit_done = False
        self.audit_at = 0.0  # when the newest entries were last asked for
        self._last_resort = 0.0

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # While a dialog is open its own keys win (F7/F9 in the chat picker):
        # the monitor's F-keys step aside instead of opening a second dialog.
        if isinstance(self.screen, ModalScreen) and action in _MONITOR_ACTIONS:
            return False
        return True

    # -- layout -------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        tr = self.tr
        yield TopBar(id="topbar")
        with TabbedContent(id="tabs", initial="agents"):
            with TabPane(f"F1 {tr('tab.agents')}", id="agents"):
                yield Static(id="agents-summary", classes="summary")
                with Horizontal(id="agents-body"):
                    yield AgentsTable(tr, self.clock, id="agents-table")
                    yield SidePanel(id="side")
            with TabPane(f"F2 {tr('tab.queues')}", id="queues"):
                yield Static(tr("queues.hint"), classes="summary")
                yield QueuesTable(tr, id="queues-table")
                yield QueueCharts(tr, id="queue-charts")
            with TabPane(f"F3 {tr('tab.today')}", id="today"):
                with VerticalScroll(id="today-scroll"), Horizontal(id="today-body"):
                    yield TodayPanel(id="figures")
                    with Vertical(id="today-lists"):
                        yield RankList(id="misses")
                        yield RankList(id="top-phrases")
            with TabPane(f"F4 {tr('tab.alerts')}", id="alerts"):
                yield Static(tr("alerts.hint"), classes="summary")
                yield AlertsTable(tr, id="alerts-table")
            with TabPane(f"F5 {tr('tab.audit')}", id="audit"):
                with Horizontal(id="audit-bar"):
                    yield Input(placeholder=tr("audit.filter"), id="audit-action")
                    yield Button(tr("audit.newest"), id="audit-newest", compact=True)
                    yield Button(tr("audit.older"), id="audit-older", compact=True)
                    yield Label("", id="audit-count")
                yield AuditTable(tr, id="audit-table")
            with TabPane(f"F6 {tr('tab.watch')}", id="watch"):
                yield Static(id="watch-head", classes="summary")
                yield WatchTranscript(tr, id="watch-log")
                yield Static(tr("watch.hint"), id="watch-hint", classes="summary")
        yield Footer()

    def on_mount(self) -> None:
        self.title = self.tr("title")
        if self.config.keys:
            self.set_keymap(self.config.keys)
        self.set_interval(1.0, self.tick)
        self.refresh_all()
        self.query_one(AgentsTable).focus()
        if not self.connect:
            return
        self.open_link_or_login()

    async def send(self, frame: p.Frame) -> bool:
        sent = self.client is not None and await self.client.send(frame)
        if not sent and self.connect:
            self.notify(self.tr("notify.not_connected"), severity="warning")
        return sent

    def send_soon(self, frame: p.Frame) -> None:
        self.run_worker(self.send(frame), exit_on_error=False)

    def client_stop(self) -> None:
        if self.client is not None:
            self.run_worker(self.client.close(), exit_on_error=False)
            self.client = None

    def on_link_status(self, message: LinkStatus) -> None:
        self.conn = message.status
        with contextlib.suppress(NoMatches):  # the link closes while the app shuts down
            self.refresh_bar()

    async def on_hub_frame(self, message: HubFrame) -> None:
        with contextlib.suppress(NoMatches):  # a last frame while the app shuts down
            await self.feed(message.frame)

    async def feed(self, f: Any) -> None:
        """Handle one decoded hub frame (the link's worker delivers them here)."""
        handler = getattr(self, f"frame_{type(f).__name__.lower()}", None)
        if handler is not None:
            result = handler(f)
            if result is not None:
                await result

    # -- frames: login and the board ------------------------------------------------

    async def frame_loginok(self, f: p.LoginOk) -> None:
        if f.role != "supervisor":  # an agent's account: the monitor is not for it
            self.client_stop()
            self.ask_login(self.tr("login.not_supervisor", user=f.user))
            return
        self.user, self.sup_name = f.user, f.name
        self.config.save_token_for(f.user, f.token)
        self.password = ""  # the token does from now on
        if not self.connect:
            self.conn = "online"
        await self.request_figures()
        if self.watch_conv:  # after a reconnect: watch again (history is deduplicated by seq)
            await self.send(p.Watch(conv=self.watch_conv, on=True))
        self.audit_asked.clear()  # asked on the old link: no answer is coming
        if self.query_one(TabbedContent).active == "audit":
            await self.request_audit("newest")
        self.refresh_bar()

    def frame_board(self, f: p.Board) -> None:
        now = self.clock()
        change = self.model.apply(f, now)
        self.show_board(change, now)
        fresh = [a for a in change.alerts if not f.full]
        if fresh:
            self.announce(fresh)

    def show_board(self, change: BoardChange, now: float) -> None:
        self.query_one(AgentsTable).apply(self.model, change.agents, change.removed, now)
        if change.queues or change.full:
            self.query_one(QueuesTable).apply(self.model, change.queues, now)
            self.show_charts()
        if change.totals:
            self.query_one(TodayPanel).show(self.model, self.tr)
        if change.alerts:
            self.query_one(AlertsTable).add(reversed(change.alerts), self.who, self.model.customer_name)
        if change.agents or change.removed:
            self.refresh_summary()
        if self.watch_info is not None:
            self.refresh_watch_head()
        self.refresh_side(now)
        self.refresh_bar()

    def announce(self, alerts: list[p.AlertRow]) -> None:
        """A toast for each new alert (a few at most), and the bell where wanted."""
        tr = self.tr
        self.unseen_alerts += len(alerts)
        for a in alerts[-3:]:
            text = tr("alert.toast", kind=tr(f"alert.{a.kind}"), who=self.who(a.who))
            if a.conv:
                text += f" · {self.chat_name(a.conv, a.customer)}"
            severity = "error" if a.kind in ("unanswered", "failed_login_burst") else "warning"
            self.notify(text, severity=severity, timeout=6)  # type: ignore[arg-type]
        if self.bell_on and any(a.kind in self.config.bell_alerts for a in alerts):
            self.bell()
        self.refresh_alert_tab()

    def chat_name(self, conv: str, customer: str = "") -> str:
        """A chat as the supervisor knows it: its customer's name (the chat id
        if the board never named it)."""
        return customer or self.model.customer_name(conv) or conv

    def who(self, agent_id: str) -> str:
        st = self.model.agents.get(agent_id)
        return f"{st.row.name} ({agent_id})" if st is not None and st.row.name != agent_id else agent_id

    # -- frames: figures, audit ------------------------------------------------------

    def frame_botmisses(self, f: p.BotMisses) -> None:
        rows = [(q if len(q) <= 60 else q[:60] + "…", f"×{n}") for q, n, _ in f.rows[:TOP_N]]
        self.query_one("#misses", RankList).show(self.tr("today.misses"), rows, self.tr("today.none"))

    def frame_phrasestats(self, f: p.PhraseStats) -> None:
        rows = [(f"/{code} {title}", f"{today}/{total}") for _, code, title, today, total in f.rows[:TOP_N]]
        every = int(self.config.figures_every_s)
        from datetime import datetime

        stamp = datetime.fromtimestamp(self.clock()).strftime("%H:%M:%S")
        self.query_one("#top-phrases", RankList).show(self.tr("today.phrases"), rows, self.tr("today.none"),
                                                      self.tr("today.updated", time=stamp, every=every))  # fmt: skip

    def frame_auditrows(self, f: p.AuditRows) -> None:
        table = self.query_one(AuditTable)
        rows = list(f.rows)
        asked = self.audit_asked.popleft()[0] if self.audit_asked else "newest"
        full = len(rows) >= AUDIT_PAGE
        if asked == "newer" and table.ids and not (full and rows[-1].id > table.newest):
            table.add_newer(rows)
        else:  # the newest page; or newer entries than one page holds: start again from the newest
            table.show(rows, append=asked == "older")
            self.audit_done = not full
        key = "audit.end" if self.audit_done else "audit.count"
        self.query_one("#audit-count", Label).update(self.tr(key, n=len(table.ids)))

    # -- frames: the watched chat -------------------------------------------------------

    def frame_watching(self, f: p.Watching) -> None:
        if f.conv != self.watch_conv:
            return  # an answer to a watch since replaced by another
        chat = self.watch_chats.get(f.conv)
        transcript = self.query_one(WatchTranscript)
        if chat is None:
            chat = Chat(f.conv, 0, f.customer, f.handoff, assigned_at=self.clock())
            self.watch_chats = {f.conv: chat}
            transcript.open(chat)
        else:  # watched again (reconnect) or the chat changed hands: the history is kept
            chat.customer, chat.handoff = f.customer, f.handoff
            transcript.rebuild(chat)
        self.watch_info, self.watch_state = f, f.state
        transcript.show(f.conv)
        self.refresh_watch_head()

    def frame_msg(self, f: p.Msg) -> None:
        chat = self.watch_chats.get(f.conv)
        if chat is None or f.conv != self.watch_conv:
            return
        mine = f.sender == "supervisor" and f.sender_id == self.user
        line = Line(f.seq, f.kind, f.sender, f.text, f.ts, sender_name=f.sender_name, msg_id=f.msg_id, mine=mine)
        if chat.add(line):
            self.render_line(chat, f.seq)

    def frame_synced(self, f: p.Synced) -> None:
        chat = self.watch_chats.get(f.conv)
        if chat is not None:
            chat.synced = True
            self.refresh_watch_head()

    def frame_convstate(self, f: p.ConvState) -> None:
        if f.conv != self.watch_conv:
            return
        self.watch_state = f.state
        if f.state == "closed":
            self.notify(self.tr("notify.watch_closed"), timeout=4)
        self.refresh_watch_head()

    def frame_ack(self, f: p.Ack) -> None:
        pending = self.whispers.pop(f.msg_id, None)
        chat = self.watch_chats.get(f.conv)
        if pending is None or chat is None:
            return
        line = Line(f.seq, "note", "supervisor", pending[1], self.clock(), sender_name=self.sup_name,
                    msg_id=f.msg_id, mine=True)  # fmt: skip
        if chat.add(line):
            self.render_line(chat, f.seq)
        else:  # already shown (the hub echoed it as a msg): drop the pending copy
            chat.lines[:] = [ln for ln in chat.lines if not (ln.pending and ln.msg_id == f.msg_id)]
            self.query_one(WatchTranscript).rebuild(chat)

    def render_line(self, chat: Chat, seq: int) -> None:
        transcript = self.query_one(WatchTranscript)
        last = next((ln for ln in reversed(chat.lines) if not ln.pending), None)
        if last is not None and last.seq == seq and not any(ln.pending for ln in chat.lines):
            transcript.add_line(chat, last)
        else:  # it landed before lines already shown, or replaced a pending copy: draw again
            transcript.rebuild(chat)

    # -- frames: answers -------------------------------------------------------------------

    def frame_ok(self, f: p.Ok) -> None:
        tr = self.tr
        if f.ref == "reassign":
            self.notify(tr("notify.reassigned", agent=self.who(self.asked.get("reassign", ""))))
        elif f.ref == "agent_set":
            self.notify(tr("notify.agent_set"))
        elif f.ref == "kb_reload":
            self.notify(tr("notify.kb_reloaded"))
        elif f.ref == "phrase_save":
            self.notify(tr("notify.phrase_saved"))

    def frame_error(self, f: p.Error) -> None:
        tr = self.tr
        if f.ref == "login" and f.code in ("bad_credentials", "throttled") and self.conn != "online":
            self.config.forget_token()
            self.client_stop()
            self.ask_login(tr("login.failed", why=f.message))
            return
        if f.ref == "watch" and f.conv and f.conv == self.watch_conv:
            self.watch_gone(f.conv)  # closed (or never existed): nothing to watch
        if f.ref in self.whispers:
            self.drop_whisper(f.ref)
        if f.ref == "audit_get" and self.audit_asked:
            self.audit_asked.popleft()  # refused: no rows are coming for it
        if f.code == "agent_unavailable":
            text = tr("notify.agent_unavailable", agent=self.who(self.asked.get("reassign", "")))
        elif f.code == "not_waiting":
            name = self.asked.get("reassign_waiting", f.conv)
            holder = self.model.conv_agent.get(f.conv)
            self.notify(tr("notify.waiting_taken", name=name, agent=self.who(holder)) if holder
                        else tr("notify.waiting_gone", name=name), severity="warning")  # fmt: skip
            return
        else:
            text = tr("notify.error", message=f"{f.code}: {f.message}")
        self.notify(text, severity="error", timeout=8)

    # -- rendering -----------------------------------------------------------------------

    def refresh_all(self) -> None:
        now = self.clock()
        self.query_one(TodayPanel).show(self.model, self.tr)
        self.query_one("#misses", RankList).show(self.tr("today.misses"), [], self.tr("today.none"))
        self.query_one("#top-phrases", RankList).show(self.tr("today.phrases"), [], self.tr("today.none"))
        self.show_charts()
        self.refresh_summary()
        self.refresh_watch_head()
        self.refresh_side(now)
        self.refresh_bar()

    def refresh_bar(self) -> None:
        self.query_one(TopBar).show(self.tr, self.user, self.sup_name, self.conn, self.model, self.clock(),
                                    self.bell_on, self.unseen_alerts)  # fmt: skip

    def refresh_summary(self) -> None:
        agents = self.model.agents.values()
        online = sum(1 for st in agents if st.row.status == "online" and st.row.connected)
        hands = sum(1 for st in agents if st.row.hand_raised)
        table = self.query_one(AgentsTable)
        text = self.tr("agents.summary", n=len(self.model.agents), online=online, hands=hands,
                       sort=self.tr("sort." + table.sort_mode))  # fmt: skip
        self.query_one("#agents-summary", Static).update(Text(text, style="bold magenta" if hands else ""))

    def refresh_side(self, now: float) -> None:
        side = self.query_one(SidePanel)
        if side.display:  # wide terminals only (monitor.tcss)
            side.show(self.tr, self.model, now, self.who)

    def refresh_alert_tab(self) -> None:
        label = f"F4 {self.tr('tab.alerts')}"
        if self.unseen_alerts:
            label += f" ({self.unseen_alerts})"
        self.query_one(TabbedContent).get_tab("alerts").label = label  # type: ignore[assignment]

    def show_charts(self) -> None:
        self.query_one(QueueCharts).show(self.model, self.query_one(QueuesTable).current_group())

    def refresh_watch_head(self) -> None:
        tr, info = self.tr, self.watch_info
        head = self.query_one("#watch-head", Static)
        if info is None:
            head.update(Text(tr("composer.none"), style="dim"))
            return
        state = tr(f"watch.state.{self.watch_state}") if self.watch_state else "?"
        agent = self.who(info.agent) if info.agent else tr("watch.nobody")
        text = Text(tr("watch.head", customer=info.customer.name, agent=agent, state=state), style="bold")
        text.append(f"  {info.conv}", style="dim")
        head.update(text)
        head.set_class(self.watch_state == "closed", "closed")

    def tick(self) -> None:
        with contextlib.suppress(NoMatches):  # the last tick while the app shuts down
            self._tick()

    def _tick(self) -> None:
        now = self.clock()
        self.query_one(AgentsTable).tick(self.model, now)
        self.query_one(QueuesTable).tick(self.model, now)
        table = self.query_one(AgentsTable)
        if table.sort_mode != "id" and now - self._last_resort >= RESORT_EVERY_S:
            self._last_resort = now
            table.resort(self.model, now)
        if self.conn == "online" and now - self.figures_at >= self.config.figures_every_s:
            self.run_worker(self.request_figures(), exit_on_error=False)
        while self.audit_asked and now - self.audit_asked[0][1] > AUDIT_ANSWER_S:
            self.audit_asked.popleft()  # no answer came (lost with a refused frame): ask again
        if (self.conn == "online" and self.query_one(TabbedContent).active == "audit"
                and now - self.audit_at >= self.config.audit_every_s):  # fmt: skip
            self.run_worker(self.request_audit("newer"), exit_on_error=False)
        self.refresh_side(now)
        self.refresh_bar()

    # -- tabs ------------------------------------------------------------------------------

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    @on(TabbedContent.TabActivated)
    async def tab_shown(self, event: TabbedContent.TabActivated) -> None:
        pane = event.pane.id or ""
        focus = {"agents": AgentsTable, "queues": QueuesTable, "alerts": AlertsTable, "audit": AuditTable}
        if pane in focus:
            self.query_one(focus[pane]).focus()
        if pane == "alerts" and self.unseen_alerts:
            self.unseen_alerts = 0
            self.refresh_alert_tab()
            self.refresh_bar()
        if pane == "audit":  # what was written since it was last shown
            await self.request_audit("newer" if self.query_one(AuditTable).ids else "newest")
        if pane == "today":
            await self.request_figures()

    @on(DataTable.RowHighlighted, "#queues-table")
    def queue_highlighted(self) -> None:
        self.show_charts()

    # -- selection ---------------------------------------------------------------------------

    def selected_agent(self):  # type: ignore[no-untyped-def]
        agent_id = self.query_one(AgentsTable).current_agent()
        return self.model.agents.get(agent_id or "")

    def goto_agent(self, agent_id: str) -> None:
        self.action_tab("agents")
        self.query_one(AgentsTable).select_agent(agent_id)

    # -- watching ------------------------------------------------------------------------------

    def watch(self, conv: str) -> None:
        """Watch ``conv`` read-only (stops watching the previous chat)."""
        self.run_worker(self._watch(conv), exclusive=True, group="watch", exit_on_error=False)

    async def _watch(self, conv: str) -> None:
        old = self.watch_conv
        if old == conv:
            self.action_tab("watch")
            return
        if old:
            await self.stop_watching()
        self.watch_conv, self.watch_info, self.watch_state = conv, None, ""
        self.action_tab("watch")
        self.refresh_watch_head()
        await self.send(p.Watch(conv=conv, on=True))

    async def stop_watching(self) -> None:
        conv = self.watch_conv
        if not conv:
            return
        self.watch_gone(conv)
        await self.send(p.Watch(conv=conv, on=False))

    def watch_gone(self, conv: str) -> None:
        """Forget the watched chat here (the hub is told by the caller, if at all)."""
        self.watch_conv, self.watch_info, self.watch_state = "", None, ""
        self.watch_chats.pop(conv, None)
        transcript = self.query_one(WatchTranscript)
        transcript.close(conv)
        transcript.show(None)
        if self.client is not None:
            # The client keeps a cursor per chat it saw; a supervisor's chats are
            # only watched, and a login carries at most 32 cursors.
            self.client.state.cursors.pop(conv, None)
            self.client.state.epochs.pop(conv, None)
        self.refresh_watch_head()

    async def action_unwatch(self) -> None:
        await self.stop_watching()

    def action_watch(self) -> None:
        tabs = self.query_one(TabbedContent)
        if tabs.active == "queues":
            self.pick_waiting(self.query_one(QueuesTable).current_group())
            return
        if tabs.active == "alerts":
            alert = self.query_one(AlertsTable).current()
            if alert is not None and alert.conv:
                self.watch(alert.conv)
            elif alert is not None and alert.who in self.model.agents:
                self.goto_agent(alert.who)
            return
        self.pick_chat()

    def pick_chat(self) -> None:
        """The selected agent's chats: watch one, or reassign it."""
        agent = self.selected_agent()
        if agent is None:
            self.notify(self.tr("notify.no_agent"), severity="warning")
            return

        self.push_screen(ChatPicker(self.tr, agent, self.clock()), self._chosen(self.reassign))

    def pick_waiting(self, group: str | None) -> None:
        """The chats waiting in ``group`` (None: in every group), as the last
        board listed them: reassign one to an agent, or watch it."""
        waiting = self.model.waiting_chats(group)
        self.push_screen(WaitingPicker(self.tr, waiting, self.clock(), group, self.model.unlisted(group)),
                         self._chosen(self.reassign_waiting))  # fmt: skip

    def _chosen(self, reassign: Callable[[str], None]) -> Callable[[ChatChoice | None], None]:
        """What a chat picker's choice does: watch the chat, or reassign it with `reassign`."""

        def done(choice: ChatChoice | None) -> None:
            if choice is None:
                return
            if choice.action == "watch":
                self.watch(choice.conv)
            else:
                reassign(choice.conv)

        return done

    @on(AgentsTable.Selected)
    def agent_chosen(self) -> None:
        self.pick_chat()

    @on(DataTable.RowSelected, "#queues-table")
    def queue_chosen(self) -> None:
        self.pick_waiting(self.query_one(QueuesTable).current_group())

    @on(DataTable.RowSelected, "#alerts-table")
    def alert_chosen(self) -> None:
        self.action_watch()

    # -- whisper, reassign, agent settings -----------------------------------------------------

    def action_whisper(self) -> None:
        info = self.watch_info
        if not self.watch_conv or info is None:
            self.notify(self.tr("notify.no_watch"), severity="warning")
            return
        if not info.agent or self.watch_state != "assigned":
            self.notify(self.tr("notify.no_agent_on_chat"), severity="warning")
            return
        conv = self.watch_conv

        def done(text: str | None) -> None:
            if text and conv == self.watch_conv:
                self.run_worker(self.whisper(conv, text), exit_on_error=False)

        title = self.tr("whisper.title", agent=self.who(info.agent), customer=info.customer.name)
        self.push_screen(WhisperDialog(title, self.tr("whisper.hint"), self.tr("whisper.go"), self.tr("cancel")), done)

    async def whisper(self, conv: str, text: str) -> None:
        """Send a note only the chat's agent sees; shown here once acked."""
        if self.client is None:
            self.notify(self.tr("notify.not_connected"), severity="warning")
            return
        msg_id = self.client.new_msg_id()
        self.whispers[msg_id] = (conv, text)
        chat = self.watch_chats.get(conv)
        if chat is not None:
            chat.add(Line(0, "note", "supervisor", text, self.clock(), sender_name=self.sup_name, msg_id=msg_id,
                          mine=True))  # fmt: skip
            self.query_one(WatchTranscript).rebuild(chat)
        if not await self.send(p.Whisper(conv=conv, msg_id=msg_id, text=text)):
            self.drop_whisper(msg_id)

    def drop_whisper(self, msg_id: str) -> None:
        """A whisper that did not go out (or was refused): take its pending line away."""
        pending = self.whispers.pop(msg_id, None)
        chat = self.watch_chats.get(pending[0]) if pending is not None else None
        if chat is not None:
            chat.lines[:] = [ln for ln in chat.lines if not (ln.pending and ln.msg_id == msg_id)]
            self.query_one(WatchTranscript).rebuild(chat)

    def action_reassign(self) -> None:
        tabs = self.query_one(TabbedContent)
        if tabs.active == "watch" and self.watch_conv:
            self.reassign(self.watch_conv)
        elif tabs.active == "alerts":
            alert = self.query_one(AlertsTable).current()
            if alert is not None and alert.conv:
                self.reassign(alert.conv)
        elif tabs.active == "queues":
            self.pick_waiting(self.query_one(QueuesTable).current_group())
        else:
            self.pick_chat()

    def reassign(self, conv: str, title: str = "", waiting_name: str = "") -> None:
        """Pick an agent with a free slot for ``conv``; the hub holds the cap.
        ``waiting_name``: a waiting chat's customer (checked again before sending)."""
        targets = self.model.reassign_targets(conv)
        title = title or self.tr("target.title", customer=self.chat_name(conv))

        def done(agent_id: str | None) -> None:
            if not agent_id or (waiting_name and self.still_waiting(conv, waiting_name) is None):
                return
            self.asked["reassign"] = agent_id
            if waiting_name:
                self.asked["reassign_waiting"] = waiting_name
            # waiting_only: the board may be a second old; the hub refuses if the
            # queue has given the chat to someone meanwhile, rather than take it away.
            self.send_soon(p.Reassign(conv=conv, agent=agent_id, waiting_only=bool(waiting_name)))

        self.push_screen(TargetPicker(self.tr, conv, targets, title), done)

    def reassign_waiting(self, conv: str) -> None:
        """Reassign a chat the board lists as waiting."""
        w = self.still_waiting(conv, conv)
        if w is not None:
            title = self.tr("target.title_waiting", name=w.chat.customer, group=w.group,
                            wait=duration(w.wait(self.clock())))  # fmt: skip
            self.reassign(conv, title, waiting_name=w.chat.customer)

    def still_waiting(self, conv: str, name: str) -> Waiting | None:
        """The chat as the latest board lists it, if it still waits; if not, say
        where it went (reassigning a chat an agent has just been given would
        take it away from that agent)."""
        w = next((w for w in self.model.waiting_chats() if w.conv == conv), None)
        if w is None:
            holder = self.model.conv_agent.get(conv)
            if holder:
                self.notify(self.tr("notify.waiting_taken", name=name, agent=self.who(holder)), severity="warning")
            else:
                self.notify(self.tr("notify.waiting_gone", name=name), severity="warning")
        return w

    def action_agent_set(self) -> None:
        agent = self.selected_agent()
        if agent is None:
            self.notify(self.tr("notify.no_agent"), severity="warning")
            return

        def done(choice: AgentSetChoice | None) -> None:
            if choice is not None:
                self.send_soon(p.AgentSet(agent=agent.row.id, status=choice.status,  # type: ignore[arg-type]
                                          max_chats=choice.max_chats))  # fmt: skip

        self.push_screen(AgentSetDialog(self.tr, agent), done)

    # -- phrases, knowledge base, figures ---------------------------------------------------------

    def action_team_phrase(self) -> None:
        def done(draft: p.PhraseDraft | None) -> None:
            if draft is not None:
                self.send_soon(p.PhraseSave(phrase=draft))

        self.push_screen(TeamPhraseEditor(self.tr, self.tr.lang), done)

    async def action_kb_reload(self) -> None:
        if await self.send(p.KbReload()):
            self.notify(self.tr("notify.kb_reloading"))

    async def action_refresh(self) -> None:
        await self.request_figures()
        if self.query_one(TabbedContent).active == "audit":
            await self.request_audit("newest")

    async def request_figures(self) -> None:
        self.figures_at = self.clock()
        await self.send(p.BotMissesGet(limit=TOP_N))
        await self.send(p.PhraseStatsGet(limit=TOP_N))

    # -- the audit log ------------------------------------------------------------------------------

    async def request_audit(self, what: str) -> None:
        """Ask for audit entries: "newest" (a fresh first page), "older" (the
        page before the oldest shown) or "newer" (entries since the newest shown)."""
        table = self.query_one(AuditTable)
        if what == "older" and (self.audit_done or not table.ids):
            return
        if what == "newer" and self.audit_asked:
            return  # an answer is on its way
        if what != "older":
            self.audit_at = self.clock()
        before = table.oldest if what == "older" else 0
        # Noted first: the answer may come before send() returns.
        self.audit_asked.append((what, self.clock()))
        if not await self.send(p.AuditGet(limit=AUDIT_PAGE, before_id=before, action=self.audit_action)):
            self.audit_asked.pop()

    @on(Input.Submitted, "#audit-action")
    async def audit_filter(self, event: Input.Submitted) -> None:
        self.audit_action = event.value.strip()[:40]
        await self.request_audit("newest")
        self.query_one(AuditTable).focus()

    @on(Button.Pressed, "#audit-newest")
    async def audit_newest(self) -> None:
        await self.request_audit("newest")
        self.query_one(AuditTable).focus()

    @on(Button.Pressed, "#audit-older")
    async def action_audit_older(self) -> None:
        self.action_tab("audit")
        await self.request_audit("older")

    @on(DataTable.RowHighlighted, "#audit-table")
    async def audit_scrolled(self, event: DataTable.RowHighlighted) -> None:
        """Down to the last entry shown: the page before it follows."""
        if event.cursor_row == event.data_table.row_count - 1 and event.cursor_row > 0:
            await self.request_audit("older")

    # -- the rest -----------------------------------------------------------------------------------

    def action_sort(self) -> None:
        table = self.query_one(AgentsTable)
        table.sort_mode = SORTS[(SORTS.index(table.sort_mode) + 1) % len(SORTS)]
        table.resort(self.model, self.clock())
        self._last_resort = self.clock()
        self.refresh_summary()

    def action_next_alert(self) -> None:
        self.action_tab("alerts")
        table = self.query_one(AlertsTable)
        if table.row_count:
            table.move_cursor(row=0)

    def action_bell(self) -> None:
        self.bell_on = not self.bell_on
        self.notify(self.tr("bell.on" if self.bell_on else "bell.off"))
        self.refresh_bar()

    def action_help(self) -> None:
        rows = [(b.key, b.description or b.action, b.id or "") for b in self.key_rows()]
        rows += [("enter", self.tr("chats.watch") + " / " + self.tr("chats.reassign"), "agents"),
                 ("enter", self.tr("palette.waiting_all"), "queues"),
                 ("ctrl+p", "command palette", ""), ("ctrl+q", "quit", "")]  # fmt: skip
        self.push_screen(HelpScreen(self.tr("help.title"), self.tr("help.intro", path=self.config.path), rows))

    def key_of(self, binding_id: str) -> str:
        """The keys bound to a binding id now (the config's [keys] win)."""
        if not binding_id:
            return ""
        if binding_id in self.config.keys:
            return self.config.keys[binding_id]
        return next((b.key for b in self.BINDINGS if isinstance(b, Binding) and b.id == binding_id), "")

    def key_rows(self) -> Iterable[Binding]:
        keymap = self.config.keys
        for binding in self.BINDINGS:
            assert isinstance(binding, Binding)
            yield Binding(keymap.get(binding.id or "", binding.key), binding.action, binding.description,
                          id=binding.id)  # fmt: skip


def make_monitor(url: str, user: str = "", password: str = "", lang: str | None = None,
                 config: MonitorConfig | None = None, **kw: Any) -> SupervisorMonitor:  # fmt: skip
    """The one factory for the monitor: the CLI and the tests use it.
    The footer speaks the UI language, so the bindings are made for it."""
    config = config or MonitorConfig.load()
    tr = Tr(TEXT, detect_lang(lang or config.lang))
    cls = type(f"SupervisorMonitor_{tr.lang}", (SupervisorMonitor,), {"BINDINGS": _bindings(tr)})
    return cls(url, user=user, password=password, lang=tr.lang, config=config, **kw)
