"""The agents table: one row per agent, for boards of thousands of agents.

Textual's DataTable re-renders every visible cell after any update (its
render caches are keyed by a table-wide update counter), which costs
~100 ms a second on a busy 160x50 board. This widget uses the line API
instead: it keeps each agent's cells as cheap comparable specs, draws only
the rows on screen, and rebuilds a row's strip only when one of its cells
changed. A board delta costs the rows it names; a clock tick costs the rows
on screen. Waits and time logged in are aged when a row is drawn, so rows
scrolled into view are never stale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from desk.i18n import Tr

from .model import AgentState, BoardModel, duration, percent, since_login, slot_cells, wait_level

WAIT_STYLES = ("green", "yellow", "dark_orange", "bold red")
STATUS_STYLES = {"online": "green", "away": "yellow", "offline": "dim", "lost": "bold red"}

# (column key, header key, width; None: what is left). The first columns matter most at 80 columns.
AGENT_COLUMNS: tuple[tuple[str, str, int | None], ...] = (
    ("hand", "col.hand", 2),
    ("agent", "col.agent", 12),
    ("status", "col.status", 7),
    ("slots", "col.slots", 5),
    ("wait", "col.wait", 5),
    ("load", "col.load", 4),
    ("since", "col.since", 5),
    ("handled", "col.handled", 4),
    ("frt", "col.frt", 5),
    ("aht", "col.aht", 5),
    ("sat", "col.sat", 4),
    ("rated", "col.rated", 5),
    ("groups", "col.groups", None),
)
SORTS = ("id", "wait", "load", "hand")
VOLATILE = ("slots", "wait", "since")  # columns that change with the clock
PAD = 1  # cells of padding each side of a column
Spec = tuple[object, str]  # (text, or the slot boxes; style)


class AgentsTable(ScrollView, can_focus=True):
    """Agents, one per row, with a row cursor. Enter (or a double click)
    posts ``AgentsTable.Selected``."""

    DEFAULT_CSS = """
    AgentsTable { height: 1fr; scrollbar-gutter: stable; scrollbar-size-vertical: 1; }
    AgentsTable > .agents-table--header { text-style: bold; background: $panel; color: $foreground; }
    AgentsTable > .agents-table--odd { background: $surface-lighten-1 30%; }
    AgentsTable > .agents-table--cursor { background: $accent 40%; }
    AgentsTable:focus > .agents-table--cursor { background: $accent 70%; text-style: bold; }
    """
    COMPONENT_CLASSES = {"agents-table--header", "agents-table--odd", "agents-table--cursor"}
    BINDINGS = [
        Binding("up", "move(-1)", show=False),
        Binding("down", "move(1)", show=False),
        Binding("pageup", "page(-1)", show=False),
        Binding("pagedown", "page(1)", show=False),
        Binding("home", "edge(0)", show=False),
        Binding("end", "edge(1)", show=False),
        Binding("enter", "select", show=False),
    ]

    class Selected(Message):
        """The supervisor chose an agent's row (Enter or double click)."""

        def __init__(self, agent_id: str) -> None:
            super().__init__()
            self.agent_id = agent_id

    def __init__(self, tr: Tr, clock: Callable[[], float], **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.tr = tr
        self.clock = clock
        self.model: BoardModel | None = None
        self.order: list[str] = []  # agent ids, top to bottom
        self._index: dict[str, int] = {}
        self._specs: dict[str, dict[str, Spec]] = {}
        self._aged: dict[str, float] = {}  # agent -> clock time its volatile cells were computed
        self._strips: dict[str, Strip] = {}  # agent -> its row, drawn (no cursor/zebra)
        self._styles: dict[str, Style] = {}
        self._now = 0.0
        self.cursor = 0
        self.sort_mode = "id"
        self.row_writes = 0  # rows whose cells changed (tests and benchmarks read it)

    # -- the board ---------------------------------------------------------------------

    def apply(self, model: BoardModel, agent_ids: Iterable[str], removed: Iterable[str], now: float) -> None:
        """Take the rows a board frame changed (and drop the removed ones)."""
        self.model, self._now = model, now
        current = self.current_agent()
        gone = [a for a in removed if a in self._index]
        added = False
        for agent_id in gone:
            for cache in (self._specs, self._aged, self._strips):
                cache.pop(agent_id, None)
        if gone:
            drop = set(gone)
            self.order = [a for a in self.order if a not in drop]
        for agent_id in agent_ids:
            st = model.agents.get(agent_id)
            if st is None:
                continue
            if agent_id not in self._specs:
                self.order.append(agent_id)
                added = True
            self._put(agent_id, self.specs(st, now), now)
        if added or gone:
            self.resort(model, now, keep=current)
        else:
            self.refresh()

    def tick(self, model: BoardModel, now: float) -> None:
        """A second passed: rows on screen age their waits when drawn."""
        self.model, self._now = model, now
        self.refresh()

    def _put(self, agent_id: str, specs: dict[str, Spec], now: float) -> None:
        old = self._specs.get(agent_id)
        if old is None or any(old.get(k) != v for k, v in specs.items()):
            self._specs[agent_id] = {**(old or {}), **specs}
            self._strips.pop(agent_id, None)
            self.row_writes += 1
        if "since" in specs:
            self._aged[agent_id] = now

    # -- cells -------------------------------------------------------------------------

    def specs(self, st: AgentState, now: float, only: Iterable[str] | None = None) -> dict[str, Spec]:
        r, tr = st.row, self.tr
        cols = set(only) if only is not None else None
        out: dict[str, Spec] = {}
        waits = st.waits(now) if st.since else dict.fromkeys(r.chats, 0.0)
        if cols is None or "slots" in cols:
            out["slots"] = (tuple(slot_cells(r, waits)), "")
        if cols is None or "wait" in cols:
            worst = max(waits.values(), default=0.0)
            out["wait"] = (duration(worst) if worst >= 1 else "", WAIT_STYLES[wait_level(worst)])
        if cols is None or "since" in cols:
            out["since"] = (since_login(r.logged_in_at, now) if r.connected else "—", "dim")
        if cols is not None:
            return out
        status = r.status if r.connected or r.status == "offline" else "lost"
        out.update({
            "hand": ("✋" if r.hand_raised else "", "bold magenta"),
            "agent": (f"{r.name} {r.id}", "bold" if r.hand_raised else ""),
            "status": (tr(f"status.{status}"), STATUS_STYLES.get(status, "")),
            "load": (f"{r.load}/{r.max_chats}", "bold" if r.load >= r.max_chats and r.max_chats else ""),
            "handled": (str(r.handled), ""),
            "frt": (duration(r.first_response_p50_s), ""),
            "aht": (duration(r.handle_p50_s), ""),
            "sat": (percent(r.satisfaction) if r.rated else "—", ""),
            "rated": (str(r.rated), "dim"),
            "groups": (",".join(r.groups), "dim"),
        })  # fmt: skip
        return out

    def cell_text(self, agent_id: str, col: str) -> str:
        """What the row shows in a column now (tests read the table through it)."""
        if self.model is None or agent_id not in self.model.agents:
            raise KeyError(agent_id)
        spec = self.specs(self.model.agents[agent_id], self.clock())[col]
        return "".join(g for g, _ in spec[0]) if col == "slots" else str(spec[0])  # type: ignore[union-attr]

    # -- drawing ------------------------------------------------------------------------

    def _style(self, name: str) -> Style:
        style = self._styles.get(name)
        if style is None:
            style = self._styles[name] = Style.parse(name) if name else Style()
        return style

    def _widths(self, width: int) -> list[int]:
        fixed = sum((w or 0) + 2 * PAD for _, _, w in AGENT_COLUMNS)
        rest = max(8, width - fixed - 2 * PAD)
        return [w if w is not None else rest for _, _, w in AGENT_COLUMNS]

    def _row_strip(self, cells: list[list[tuple[str, Style]]], width: int) -> Strip:
        segments: list[Segment] = []
        pad = Segment(" " * PAD)
        for parts, w in zip(cells, self._widths(width), strict=True):
            segments.append(pad)
            used = 0
            for text, style in parts:
                room = w - used
                if room <= 0:
                    break
                if cell_len(text) > room:
                    text = set_cell_size(text, room - 1) + "…" if room > 1 else set_cell_size(text, room)
                segments.append(Segment(text, style))
                used += cell_len(text)
            if used < w:
                segments.append(Segment(" " * (w - used)))
            segments.append(pad)
        return Strip(segments).crop_extend(0, width, None)

    def _agent_strip(self, agent_id: str, width: int) -> Strip:
        self._age(agent_id)
        strip = self._strips.get(agent_id)
        if strip is None or strip.cell_length != width:
            specs = self._specs[agent_id]
            cells: list[list[tuple[str, Style]]] = []
            for col, _, _ in AGENT_COLUMNS:
                value, style = specs[col]
                if col == "slots":
                    cells.append([(g, self._style(WAIT_STYLES[lv] if lv is not None else "dim"))
                                  for g, lv in value])  # type: ignore[union-attr]  # fmt: skip
                else:
                    cells.append([(str(value), self._style(style))])
            strip = self._strips[agent_id] = self._row_strip(cells, width)
        return strip

    def _age(self, agent_id: str) -> None:
        """Bring a row's clock-driven cells up to the current second before drawing it."""
        if self.model is None or self._aged.get(agent_id) == self._now:
            return
        st = self.model.agents.get(agent_id)
        if st is not None:
            self._put(agent_id, self.specs(st, self._now, VOLATILE), self._now)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        if y == 0:
            header = [[(self.tr(label), Style())] for _, label, _ in AGENT_COLUMNS]
            return self._row_strip(header, width).apply_style(self.get_component_rich_style("agents-table--header"))
        index = int(self.scroll_y) + y - 1
        if index >= len(self.order):
            return Strip.blank(width, self.rich_style)
        strip = self._agent_strip(self.order[index], width).apply_style(self.rich_style)
        if index == self.cursor:
            return strip.apply_style(self.get_component_rich_style("agents-table--cursor"))
        if index % 2:
            return strip.apply_style(self.get_component_rich_style("agents-table--odd"))
        return strip

    def _refresh_size(self) -> None:
        self.virtual_size = Size(self.scrollable_content_region.width, len(self.order) + 1)

    def on_resize(self, event: events.Resize) -> None:
        self._strips.clear()
        self._refresh_size()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()

    # -- order and the cursor ---------------------------------------------------------------

    def sort_key(self, model: BoardModel, now: float) -> Callable[[str], object]:
        mode = self.sort_mode

        def key(agent_id: str) -> object:
            st = model.agents.get(agent_id)
            if st is None:
                return (1, 0.0, agent_id)
            if mode == "wait":
                return (0, -st.worst_wait(now), agent_id)
            if mode == "load":
                return (0, -(st.row.load / (st.row.max_chats or 1)), agent_id)
            if mode == "hand":
                return (0, 0 if st.row.hand_raised else 1, -st.worst_wait(now), agent_id)
            return (0, 0.0, agent_id)

        return key

    def resort(self, model: BoardModel, now: float, keep: str | None = None) -> None:
        """Order the rows by the sort mode; the cursor stays on its agent."""
        current = keep if keep is not None else self.current_agent()
        self.model = model
        self.order.sort(key=self.sort_key(model, now))
        self._index = {a: i for i, a in enumerate(self.order)}
        self._refresh_size()
        if current is not None and current in self._index:
            self.cursor = self._index[current]
        self.cursor = max(0, min(self.cursor, len(self.order) - 1))
        self.refresh()

    @property
    def row_count(self) -> int:
        return len(self.order)

    def current_agent(self) -> str | None:
        return self.order[self.cursor] if 0 <= self.cursor < len(self.order) else None

    def select_agent(self, agent_id: str) -> bool:
        index = self._index.get(agent_id)
        if index is None:
            return False
        self._move_to(index)
        return True

    def _move_to(self, index: int) -> None:
        if not self.order:
            return
        self.cursor = max(0, min(index, len(self.order) - 1))
        rows = max(1, self.scrollable_content_region.height - 1)
        top = int(self.scroll_y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True, force=True)
        elif self.cursor >= top + rows:
            self.scroll_to(y=self.cursor - rows + 1, animate=False, immediate=True, force=True)
        self.refresh()

    def action_move(self, step: int) -> None:
        self._move_to(self.cursor + step)

    def action_page(self, step: int) -> None:
        self._move_to(self.cursor + step * max(1, self.scrollable_content_region.height - 2))

    def action_edge(self, end: int) -> None:
        self._move_to(len(self.order) - 1 if end else 0)

    def action_select(self) -> None:
        agent_id = self.current_agent()
        if agent_id is not None:
            self.post_message(self.Selected(agent_id))

    def on_click(self, event: events.Click) -> None:
        if event.y < 1:
            return
        index = int(self.scroll_y) + event.y - 1
        if 0 <= index < len(self.order):
            self._move_to(index)
            if event.chain >= 2:
                self.action_select()
