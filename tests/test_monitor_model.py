"""The monitor's headless board model, and the agents table under a board of
2,000 agents (fed frames, no network)."""

from __future__ import annotations

from pathlib import Path

from desk.monitor import BoardModel, MonitorConfig, make_monitor
from desk.monitor.app import MonitorCommands
from desk.monitor.model import duration, percent, slot_cells
from desk.monitor.widgets import AgentsTable
from server import protocol as p

from .monitor_frames import (
    T0,
    agent,
    big_board,
    big_delta,
    board,
    login,
    opening_frames,
    watched_chat,
)


def test_five_boxes_show_chats_warmest_first_then_free_slots_then_slots_beyond_max() -> None:
    row = agent("a1", "李娜", chats={"c1": 95.0, "c2": 40.0, "c3": 0.0})
    cells = slot_cells(row, dict(row.chats))
    assert cells == [("▣", 2), ("▣", 1), ("▣", 0), ("▢", None), ("▢", None)]
    small = agent("a6", "周婷", chats={"c": 130.0}, max_chats=3)
    assert [g for g, _ in slot_cells(small, dict(small.chats))] == ["▣", "▢", "▢", "·", "·"]
    assert slot_cells(small, dict(small.chats))[0][1] == 3  # red beyond two minutes


def test_a_delta_replaces_only_the_rows_it_names_and_waits_age_on_the_local_clock() -> None:
    model = BoardModel()
    first = model.apply(board(), T0)
    assert first.full and len(first.added) == 8 and first.totals
    delta = model.apply(p.Board(full=False, agents=[agent("a7", "吴昊", chats={"c-new": 10.0})]), T0 + 1)
    assert delta.agents == ["a7"] and not delta.added and not delta.totals
    assert model.agents["a7"].row.load == 1 and model.conv_agent["c-new"] == "a7"
    assert model.agents["a7"].waits(T0 + 21) == {"c-new": 30.0}  # 10 s at T0+1, then 20 more
    assert model.agents["a1"].row.load == 3  # untouched
    gone = model.apply(p.Board(full=False, removed=["a4"]), T0 + 2)
    assert gone.removed == ["a4"] and "a4" not in model.agents


def test_alerts_are_kept_newest_first_and_a_resent_full_board_repeats_none() -> None:
    model = BoardModel()
    model.apply(board(), T0)
    assert [a.kind for a in model.alerts] == ["raised_hand", "unanswered", "unanswered", "queue_wait", "failed_login"]
    again = model.apply(board(), T0 + 5)  # after a reconnect
    assert again.alerts == [] and again.agents == []  # nothing changed, nothing to redraw
    new = p.AlertRow(kind="failed_login_burst", who="guess", at=T0 + 6)
    assert model.apply(p.Board(full=False, alerts=[new]), T0 + 6).alerts == [new]
    assert model.alerts[0] is new


def test_reassign_targets_are_online_connected_agents_with_a_free_slot_not_the_holder() -> None:
    model = BoardModel()
    model.apply(board(), T0)
    ids = [st.row.id for st in model.reassign_targets("c-1")]  # c-1 is a1's
    assert "a1" not in ids and "a2" not in ids  # a2 is full (5/5)
    assert "a3" not in ids and "a4" not in ids and "a5" not in ids  # away, offline, link lost
    assert ids[0] == "a7"  # the emptiest first
    assert set(ids) == {"a6", "a7", "a8"}


def test_waiting_chats_keep_their_queue_order_and_across_queues_the_most_urgent_longest_first() -> None:
    def q(group: str, *chats: p.WaitingChat, waiting: int | None = None) -> p.QueueRow:
        return p.QueueRow(group=group, waiting=len(chats) if waiting is None else waiting, chats=list(chats))

    def w(conv: str, priority: str, wait: float) -> p.WaitingChat:
        return p.WaitingChat(conv=conv, customer=conv, priority=priority, wait_s=wait)

    model = BoardModel()
    model.apply(p.Board(full=True, queues=[q("cards", w("k1", "priority", 30.0), w("k2", "normal", 90.0)),
                                           q("general", w("g1", "normal", 100.0), waiting=60)]), T0)  # fmt: skip
    model.apply(p.Board(full=False, queues=[q("vip", w("v1", "urgent", 5.0))]), T0 + 50)
    assert [x.conv for x in model.waiting_chats("cards")] == ["k1", "k2"]  # as the hub will serve them
    assert [x.conv for x in model.waiting_chats()] == ["v1", "k1", "g1", "k2"]
    assert model.waiting_chats("general")[0].wait(T0 + 50) == 150.0  # aged since its board
    assert model.unlisted("general") == 59 and model.unlisted() == 59 and model.unlisted("cards") == 0


def test_figures_format_missing_values_as_a_dash() -> None:
    assert [duration(None), duration(5), duration(95), duration(725), duration(7500)] == ["—", "5s", "1m35s", "12m", "2h05m"]
    assert [percent(None), percent(0.931), percent(0.051), percent(93.0)] == ["—", "93%", "5.1%", "93%"]
    assert BoardModel().total("answer_rate") is None


async def test_a_board_of_2000_agents_is_updated_by_row_not_rebuilt(tmp_path: Path) -> None:
    now = [T0]
    cfg = MonitorConfig(path=tmp_path / "monitor.toml", lang="en", bell=False)
    app = make_monitor("ws://127.0.0.1:9/", lang="en", config=cfg, connect=False, clock=lambda: now[0])
    async with app.run_test(size=(120, 40)) as pilot:
        await app.feed(login())
        await app.feed(big_board(2000))
        await pilot.pause()
        table = app.query_one(AgentsTable)
        assert table.row_count == 2000 and table.current_agent() == "x0000"
        table.row_writes = 0
        for round_ in range(1, 4):  # three seconds of deltas, 50 agents each
            await app.feed(big_delta(2000, changed=50, round_=round_))
        assert table.row_writes <= 3 * 50  # only the rows named, and only if a cell changed
        assert table.row_count == 2000 and table.current_agent() == "x0000"
        # A second passes: only the rows on screen are aged (when drawn), not 2,000.
        table.row_writes = 0
        now[0] += 1
        app.tick()
        await pilot.pause()
        assert 0 < table.row_writes <= 40
        # Rows scrolled into view are drawn with fresh waits.
        await pilot.press("end")
        await pilot.pause()
        last = table.order[-1]
        assert table.current_agent() == last
        drawn = table.render_line(table.row_count - int(table.scroll_y))
        assert "坐席1999" in drawn.text and duration(app.model.agents[last].worst_wait(now[0])) in drawn.text


async def test_the_command_palette_lists_what_can_be_done_now(tmp_path: Path) -> None:
    cfg = MonitorConfig(path=tmp_path / "monitor.toml", lang="zh", bell=False)
    app = make_monitor("ws://127.0.0.1:9/", lang="zh", config=cfg, connect=False, clock=lambda: T0)
    async with app.run_test(size=(80, 24)) as pilot:
        for frame in opening_frames():
            await app.feed(frame)
        await pilot.pause()
        names = {name: key for name, _, key in MonitorCommands(app.screen)._entries()}
        assert names["监听会话 · 李娜"] == "f7" and names["坐席设置 · 李娜"] == "f10"
        assert "定位坐席 李娜（a1）" in names  # a raised hand
        # the longest waits, by the customer's name (two of 王强's customers are both 张伟)
        assert any(n.startswith("监听 张伟 c-7（王强） · 2m10s") for n in names)
        assert "悄悄话" not in names  # nothing watched yet
        app.watch_conv = "c-1"
        for frame in watched_chat():
            await app.feed(frame)
        names = {name: key for name, _, key in MonitorCommands(app.screen)._entries()}
        assert names["悄悄话"] == "f8" and names["停止监听"] == "ctrl+w"


async def test_ctrl_o_sorts_agents_by_longest_wait_and_the_cursor_stays_on_its_agent(tmp_path: Path) -> None:
    cfg = MonitorConfig(path=tmp_path / "monitor.toml", lang="en", bell=False)
    app = make_monitor("ws://127.0.0.1:9/", lang="en", config=cfg, connect=False, clock=lambda: T0)
    async with app.run_test(size=(80, 24)) as pilot:
        for frame in opening_frames():
            await app.feed(frame)
        await pilot.pause()
        table = app.query_one(AgentsTable)
        table.select_agent("a3")
        await pilot.press("ctrl+o")  # by longest wait
        assert table.sort_mode == "wait"
        assert table.order[:3] == ["a2", "a1", "a5"]  # 130 s, 95 s, 45 s
        assert table.current_agent() == "a3"
        await pilot.press("ctrl+o")  # by load
        assert table.order[0] == "a2"  # 5/5
        await pilot.press("ctrl+o")  # raised hands first
        assert table.order[0] == "a1"
        await pilot.press("ctrl+o")  # back to ids
        assert table.order == sorted(table.order)
        assert "sorted by id" in str(app.query_one("#agents-summary").render())


async def test_the_alerts_table_keeps_the_newest_rows_and_forgets_the_chats_of_the_rest() -> None:
    """A monitor runs all day: the table keeps ALERT_ROWS alerts; names of chats no kept
    alert is about are dropped with them, and two customers with one name stay told apart."""
    from textual.app import App, ComposeResult

    from desk.i18n import Tr
    from desk.monitor.text import TEXT
    from desk.monitor.widgets import ALERT_ROWS, AlertsTable

    class Host(App[None]):
        def compose(self) -> ComposeResult:
            yield AlertsTable(Tr(TEXT, "zh"))

    async with Host().run_test() as pilot:
        table = pilot.app.query_one(AlertsTable)
        table.add([p.AlertRow(kind="unanswered", who="a1", conv=f"c-old-{i}", customer=f"客户{i}", at=T0 + i)
                   for i in range(ALERT_ROWS)], str, lambda _: "")  # fmt: skip
        table.add([p.AlertRow(kind="unanswered", who="a2", conv="c-x-1", customer="张伟", at=T0 + 1000),
                   p.AlertRow(kind="unanswered", who="a2", conv="c-x-2", customer="张伟", at=T0 + 1001)],
                  str, lambda _: "")  # fmt: skip
        assert table.row_count == ALERT_ROWS == len(table.by_key)
        assert "c-old-0" not in table.names and "c-old-1" not in table.keys_of and "c-old-2" in table.names
        assert table.labels["c-x-1"] != table.labels["c-x-2"] and table.labels["c-x-1"].startswith("张伟")
        assert table.current() is not None and table.current().conv == "c-x-2"  # newest on top
