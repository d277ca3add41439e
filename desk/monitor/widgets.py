"""The monitor's widgets. Each renders what the app gives it (the board
model, a frame's rows) and never touches the network.

The agents table (agents_table.py) draws only the rows on screen and redraws
a row only when one of its cells changed, so a board of 2,000 agents costs
per second what changed in it, not 2,000 rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime

from rich.cells import cell_len
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import events
from textual.containers import Vertical
from textual.widgets import DataTable, Label, Sparkline, Static
from textual.widgets.data_table import CellDoesNotExist, ColumnKey

from desk.agent.widgets import Transcript
from desk.i18n import Tr
from server import protocol as p

from .agents_table import WAIT_STYLES, AgentsTable
from .model import BoardModel, chat_labels, count, duration, percent, wait_level

__all__ = ["AgentsTable", "AlertsTable", "AuditTable", "QueueCharts", "QueuesTable", "RankList", "SidePanel",
           "TodayPanel", "TopBar", "WatchTranscript"]  # fmt: skip

ALERT_STYLES = {"raised_hand": "bold magenta", "unanswered": "bold red", "queue_wait": "bold dark_orange",
                "failed_login_burst": "bold red", "failed_login": "yellow"}  # fmt: skip


def clock_time(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S") if ts else "—"


QUEUE_COLUMNS = (
    ("group", "col.group", 12),
    ("waiting", "col.waiting", 5),
    ("by_priority", "col.by_priority", 10),
    ("longest", "col.longest", 6),
    ("eta", "col.eta", 6),
    ("online", "col.online", 5),
    ("abandoned", "col.abandoned", 6),
)


def cursor_key(table: DataTable[Text]) -> str | None:
    """The key of the row under a table's cursor (None with no rows)."""
    if not table.row_count:
        return None
    try:
        key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
    except CellDoesNotExist:
        return None
    return key.value


class QueuesTable(DataTable[Text]):
    def __init__(self, tr: Tr, **kw: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kw)  # type: ignore[arg-type]
        self.tr = tr
        self._rows: set[str] = set()

    def on_mount(self) -> None:
        for key, label, width in QUEUE_COLUMNS:
            title = self.tr(label)  # never cut a heading (English ones are longer)
            self.add_column(title, key=key, width=max(width, cell_len(title)))

    def cells(self, model: BoardModel, group: str, now: float) -> list[Text]:
        st = model.queues[group]
        q = st.row
        pri = q.by_priority
        longest = st.longest(now)
        level = wait_level(longest)
        return [
            Text(group, style="bold"),
            Text(str(q.waiting), style="bold" if q.waiting else "dim"),
            Text(f"{pri.get('urgent', 0)}/{pri.get('priority', 0)}/{pri.get('normal', 0)}",
                 style="red" if pri.get("urgent") else ""),
            Text(duration(longest) if q.waiting else "—", style=WAIT_STYLES[level] if q.waiting else "dim"),
            Text(duration(q.eta_s) if q.eta_s is not None else "—"),
            Text(str(q.agents_online), style="bold red" if q.waiting and not q.agents_online else ""),
            Text(str(q.abandoned), style="dark_orange" if q.abandoned else "dim"),
        ]  # fmt: skip

    def apply(self, model: BoardModel, groups: Iterable[str], now: float) -> None:
        for gone in [g for g in self._rows if g not in model.queues]:
            self._rows.discard(gone)
            self.remove_row(gone)
        for group in groups:
            if group not in model.queues:
                continue
            cells = self.cells(model, group, now)
            if group not in self._rows:
                self._rows.add(group)
                self.add_row(*cells, key=group)
                self.sort("group", key=lambda cell: cell.plain)
            else:
                for (key, _, _), cell in zip(QUEUE_COLUMNS, cells, strict=True):
                    self.update_cell(group, key, cell)

    def tick(self, model: BoardModel, now: float) -> None:
        for group, st in model.queues.items():
            if st.row.waiting and group in self._rows:
                self.update_cell(group, "longest", self.cells(model, group, now)[3])

    def current_group(self) -> str | None:
        return cursor_key(self)


class QueueCharts(Vertical):
    """Queue length and arrivals over the last 30 minutes (Textual sparklines)."""

    def __init__(self, tr: Tr, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.tr = tr

    def compose(self):  # type: ignore[no-untyped-def]
        yield Label("", id="lengths-label", classes="chart-label")
        yield Sparkline([], id="lengths", summary_function=max)
        yield Label("", id="arrivals-label", classes="chart-label")
        yield Sparkline([], id="arrivals", summary_function=max)

    def show(self, model: BoardModel, group: str | None) -> None:
        lengths, arrivals = model.queue_series(group)
        name = group or self.tr("queues.all")
        for key, series in (("lengths", lengths), ("arrivals", arrivals)):
            peak = max(series, default=0)
            now = series[-1] if series else 0
            label = Text(self.tr(f"queues.{key}", group=name) + "  ", style="bold")
            label.append(self.tr("queues.peak", now=now, peak=peak), style="dim")
            self.query_one(f"#{key}-label", Label).update(label)
            self.query_one(f"#{key}", Sparkline).data = [float(v) for v in series] or [0.0]


class TodayPanel(Static):
    """Today's figures from the board's totals (any missing figure shows '—')."""

    def show(self, model: BoardModel, tr: Tr) -> None:
        t = model.total
        # Neither column wraps: the panel is as wide as its longest line (monitor.tcss)
        table = Table.grid(padding=(0, 2))
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True)
        vs, s, d = t("sat_very_satisfied"), t("sat_satisfied"), t("sat_dissatisfied")
        rated = sum(x for x in (vs, s, d) if x is not None)
        sat = percent(((vs or 0) + (s or 0)) / rated) if rated else "—"

        def share(x: float | None) -> str:
            return "—" if x is None else (f"{int(x)} ({percent(x / rated)})" if rated else f"{int(x)}")

        abandoned = f"{count(t('abandoned'))} ({percent(t('abandon_rate'))})"
        answer = percent(t("answer_rate"))
        if t("asked") is not None and t("answered") is not None:
            answer += f" ({count(t('answered'))}/{count(t('asked'))})"
        bot = f"{percent(t('bot_containment'))} ({count(t('bot_contained'))})"
        rows = [
            ("fig.answer_rate", Text(answer, style="bold")),
            ("fig.abandoned", Text(abandoned)),
            ("fig.frt", Text(f"{duration(t('frt_p50_s'))} / {duration(t('frt_p90_s'))}")),
            ("fig.handle", Text(duration(t("handle_p50_s")))),
            ("fig.fcr", Text(percent(t("fcr_rate")))),
            ("fig.sat", Text(sat, style="bold")),
            ("fig.sat_vs", Text(share(vs), style="green")),
            ("fig.sat_s", Text(share(s))),
            ("fig.sat_d", Text(share(d), style="red" if d else "")),
            ("fig.bot", Text(bot)),
            ("fig.started", Text(f"{count(t('chats_started'))} · {count(t('handoffs'))}")),
            ("fig.messages", Text(count(t("messages")))),
        ]
        for key, value in rows:
            table.add_row(Text(tr(key), style="" if key.startswith("fig.sat_") else "bold"), value)
        self.update(table)


class RankList(Static):
    """A titled top-N list (bot misses, phrases used most)."""

    def show(self, title: str, rows: list[tuple[str, str]], empty: str, footer: str = "") -> None:
        """A long label wraps in its own column, under itself."""
        table = Table.grid(padding=(0, 1))
        table.add_column(no_wrap=True, justify="right", style="dim")
        table.add_column(no_wrap=True, justify="right", style="cyan")
        table.add_column(ratio=1, overflow="fold")
        for i, (label, figure) in enumerate(rows, 1):
            table.add_row(f"{i}.", figure, label)
        parts: list[RenderableType] = [Text(title, style="bold")]
        parts.append(table if rows else Text(empty, style="dim"))
        if footer:
            parts.append(Text(footer, style="dim italic"))
        self.update(Group(*parts))


ALERT_ROWS = 500  # alerts the table keeps, newest first


class AlertsTable(DataTable[Text]):
    """Every alert since the monitor started, newest first. A chat is shown
    by its customer's name (with a short chat id where two share a name)."""

    def __init__(self, tr: Tr, **kw: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kw)  # type: ignore[arg-type]
        self.tr = tr
        self.by_key: dict[str, p.AlertRow] = {}
        self.names: dict[str, str] = {}  # conv -> its customer's name
        self.keys_of: dict[str, list[str]] = {}  # conv -> the rows about it
        self.labels: dict[str, str] = {}  # conv -> what its rows show now
        self._added = 0  # row keys are never reused

    def on_mount(self) -> None:
        tr = self.tr
        self.add_column(tr("col.at"), key="at", width=8)
        self.add_column(tr("col.kind"), key="kind", width=max(14, *(cell_len(tr(f"alert.{k}")) for k in ALERT_STYLES)))
        self.add_column(tr("col.who"), key="who", width=16)
        self.add_column(tr("col.customer"), key="conv", width=20)

    def add(self, alerts: Iterable[p.AlertRow], who: Callable[[str], str], name_of: Callable[[str], str]) -> None:
        """Add alerts (``name_of``: a chat's customer when an alert does not name it)."""
        new = [a for a in alerts]
        for a in new:
            if a.conv:
                self.names[a.conv] = a.customer or self.names.get(a.conv, "") or name_of(a.conv)
        labels = chat_labels(self.names, self.names.__getitem__)
        for conv, label in labels.items():  # a name now shared: the older rows get short ids too
            if conv in self.labels and self.labels[conv] != label:
                for key in self.keys_of.get(conv, ()):
                    self.update_cell(key, "conv", Text(label))
        self.labels = labels
        for a in new:
            key = f"{self._added}"
            self._added += 1
            self.by_key[key] = a
            if a.conv:
                self.keys_of.setdefault(a.conv, []).append(key)
            kind = Text(self.tr(f"alert.{a.kind}"), style=ALERT_STYLES.get(a.kind, "bold"))
            self.add_row(Text(clock_time(a.at)), kind, Text(who(a.who)), Text(labels.get(a.conv, "")), key=key)
        self._forget_oldest()
        if new:
            self.sort("at", key=lambda cell: cell.plain, reverse=True)
            self.move_cursor(row=0, animate=False)

    def _forget_oldest(self) -> None:
        """Keep the newest ALERT_ROWS rows (a monitor runs all day)."""
        while len(self.by_key) > ALERT_ROWS:
            key = next(iter(self.by_key))  # the oldest added
            conv = self.by_key.pop(key).conv
            self.remove_row(key)
            keys = self.keys_of.get(conv)
            if keys is not None:
                keys.remove(key)
                if not keys:
                    del self.keys_of[conv]
                    self.names.pop(conv, None)
                    self.labels.pop(conv, None)

    def current(self) -> p.AlertRow | None:
        return self.by_key.get(cursor_key(self) or "")


def audit_detail(detail: dict[str, object]) -> str:
    """An entry's detail as ``key=value`` pairs (empty values left out)."""
    parts = []
    for key, value in detail.items():
        if value is None or value == "" or value == [] or value == {}:
            continue
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            shown = ",".join(value)
        elif isinstance(value, str):
            shown = value
        else:
            shown = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        parts.append(f"{key}={shown}")
    text = " ".join(parts)
    return text if len(text) <= AUDIT_DETAIL_CHARS else text[: AUDIT_DETAIL_CHARS - 1] + "…"


AUDIT_DETAIL_CHARS = 300
# (key, heading, width); the last column (what it was about) takes what is left and wraps.
AUDIT_COLUMNS = (("id", "col.id", 6), ("at", "col.at", 14), ("actor", "col.actor", 8), ("action", "col.action", 16))
AUDIT_DETAIL_MIN = 20


class AuditTable(DataTable[Text]):
    """Audit entries, newest first. The last column (the target and the
    detail) takes the width that is left and wraps, so nothing is cut."""

    def __init__(self, tr: Tr, **kw: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kw)  # type: ignore[arg-type]
        self.tr = tr
        self.ids: list[int] = []  # newest first
        self.entries: dict[int, p.AuditEntry] = {}

    def on_mount(self) -> None:
        tr = self.tr
        for key, label, width in AUDIT_COLUMNS:
            self.add_column(tr(label), key=key, width=width)
        self.add_column(tr("col.detail"), key="detail", width=self.detail_width())

    def detail_width(self) -> int:
        """The cells left for the last column at the table's width now."""
        used = sum(w + 2 * self.cell_padding for _, _, w in AUDIT_COLUMNS) + 2 * self.cell_padding
        scrollbar = self.styles.scrollbar_size_vertical
        return max(AUDIT_DETAIL_MIN, self.size.width - used - scrollbar)

    def on_resize(self, event: events.Resize) -> None:
        width = self.detail_width()
        column = self.columns.get(ColumnKey("detail"))
        if column is not None and column.width != width:
            column.width = width
            self._redraw()

    def _redraw(self) -> None:
        """Add every row again (wrapped rows get their heights for the new width)."""
        at = self.cursor_row
        self.clear()
        for entry_id in self.ids:
            self._add(self.entries[entry_id])
        if self.row_count:
            self.move_cursor(row=min(at, self.row_count - 1), animate=False)

    def _add(self, r: p.AuditEntry) -> None:
        style = "bold red" if "fail" in r.action or "throttl" in r.action else ""
        stamp = datetime.fromtimestamp(r.ts).strftime("%m-%d %H:%M:%S")
        about = Text(r.target)
        detail = audit_detail(r.detail)
        if detail:
            about.append((" " if r.target else "") + detail, style="dim")
        self.add_row(Text(str(r.id), style="dim"), Text(stamp), Text(r.actor), Text(r.action, style=style), about,
                     key=str(r.id), height=None)  # fmt: skip

    def show(self, rows: list[p.AuditEntry], append: bool) -> None:
        """A page: the newest (replacing what is shown) or, with ``append``, an older one."""
        if not append:
            self.clear()
            self.ids = []
            self.entries = {}
        for r in rows:
            if r.id in self.entries:
                continue
            self.ids.append(r.id)
            self.entries[r.id] = r
            self._add(r)

    def add_newer(self, rows: list[p.AuditEntry]) -> int:
        """Entries newer than those shown go on top; the highlighted entry stays
        highlighted. Returns how many were added."""
        newest = self.newest
        fresh = sorted((r for r in rows if r.id > newest and r.id not in self.entries), key=lambda r: -r.id)
        if not fresh:
            return 0
        keep = self.current_id()
        for r in fresh:
            self.entries[r.id] = r
            self._add(r)
        self.ids = [r.id for r in fresh] + self.ids
        self.sort("id", key=lambda cell: int(cell.plain), reverse=True)
        if keep is not None:
            self.move_cursor(row=self.get_row_index(str(keep)), animate=False)
        return len(fresh)

    def current_id(self) -> int | None:
        key = cursor_key(self)
        return int(key) if key else None

    @property
    def oldest(self) -> int:
        return min(self.ids, default=0)

    @property
    def newest(self) -> int:
        return max(self.ids, default=0)


class TopBar(Static):
    """Who is watching, the link to the hub, the headline totals and the time."""

    def show(self, tr: Tr, user: str, name: str, conn: str, model: BoardModel, now: float,
             bell: bool, unseen_alerts: int) -> None:  # fmt: skip
        dot = {"online": "●", "connecting": "◌", "offline": "◌", "closed": "✕"}.get(conn, "?")
        conn_style = {"online": "green", "closed": "red"}.get(conn, "yellow")
        t = model.total
        text = Text(no_wrap=True, overflow="ellipsis")
        if self.size.width >= 100 or not user:  # the title gives way to the figures at 80 columns
            text.append(f" {tr('title')} ", style="bold")
        if user:
            text.append(f" {user} {name} ", style="reverse")
        text.append(f" {dot} {tr('conn.' + conn)} ", style=conn_style)
        text.append(" " + tr("bar.totals", waiting=count(t("waiting")), active=count(t("active")),
                             online=count(t("agents_online"))) + " ", style="bold")  # fmt: skip
        if unseen_alerts:
            text.append(" " + tr("bar.alerts", n=unseen_alerts) + " ", style="bold white on red")
        text.append(f" {datetime.fromtimestamp(now).strftime('%H:%M:%S')} ", style="bold")
        if not bell:
            text.append(" 🔕", style="dim")
        self.update(text)


class SidePanel(Vertical):
    """Shown beside the agents table on wide terminals: queues and the latest alerts."""

    def compose(self):  # type: ignore[no-untyped-def]
        yield Static(id="side-queues")
        yield Static(id="side-alerts")

    def show(self, tr: Tr, model: BoardModel, now: float, who: Callable[[str], str]) -> None:
        q = Table(title=tr("side.queues"), title_style="bold", expand=True, box=None, padding=(0, 1))
        q.add_column(tr("col.group"), no_wrap=True)
        q.add_column(tr("col.waiting"), justify="right")
        q.add_column(tr("col.longest"), justify="right")
        q.add_column(tr("col.eta"), justify="right")
        for group in sorted(model.queues):
            st = model.queues[group]
            longest = st.longest(now)
            q.add_row(group, str(st.row.waiting),
                      Text(duration(longest) if st.row.waiting else "—", style=WAIT_STYLES[wait_level(longest)]),
                      duration(st.row.eta_s) if st.row.eta_s is not None else "—")  # fmt: skip
        self.query_one("#side-queues", Static).update(q)
        text = Text(tr("side.alerts") + "\n", style="bold")
        latest = list(model.alerts)[:12]
        names = {a.conv: a.customer or model.customer_name(a.conv) for a in reversed(latest) if a.conv}
        labels = chat_labels(names, names.__getitem__)  # a short chat id where two share a name
        for a in latest:
            text.append(clock_time(a.at) + " ", style="dim")
            text.append(tr(f"alert.{a.kind}"), style=ALERT_STYLES.get(a.kind, "bold"))
            text.append(f" {who(a.who)}")
            text.append(f" · {labels[a.conv]}\n" if a.conv else "\n")
        self.query_one("#side-alerts", Static).update(text)


class WatchTranscript(Transcript):
    """The agent desk's transcript (the same card, masking and layout the agent
    sees), kept at the newest line when it is shown again in its tab."""

    def on_resize(self, event: events.Resize) -> None:
        # Transcript.on_resize re-wraps (Textual calls both handlers); once the
        # new size is laid out, go to the newest line. force: the scrollbar may
        # not be shown yet when the tab is first opened.
        self.call_after_refresh(self._follow)

    def _follow(self) -> None:
        if self.view is not None and self.view.scroll_y is None:
            self.scroll_end(animate=False, force=True)
            # The end may be where it already was: no scroll, so no thumb update
            # for a bar laid out while the tab was hidden. Put it in place.
            self.call_after_refresh(self.watch_show_vertical_scrollbar, self.show_vertical_scrollbar)
