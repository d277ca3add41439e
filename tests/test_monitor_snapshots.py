"""Snapshots of the supervisor monitor (80x24 and large), fed a fixed board
so nothing depends on the network or the clock."""

from __future__ import annotations

from pathlib import Path

from desk.monitor import MonitorConfig, make_monitor
from desk.monitor.app import TABS

from .monitor_frames import T0, audit_rows, opening_frames, watched_chat


def monitor(lang: str = "zh"):  # type: ignore[no-untyped-def]
    cfg = MonitorConfig(path=Path("/nonexistent/monitor.toml"), lang=lang, bell=False)
    return make_monitor("ws://127.0.0.1:9/", lang=lang, config=cfg, connect=False, clock=lambda: T0)


def fed(tab: str = "agents", watch: bool = False):  # type: ignore[no-untyped-def]
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        app = pilot.app
        await pilot.pause()  # the tabs settle on their first pane
        for frame in [*opening_frames(), audit_rows()]:
            await app.feed(frame)
        if watch:
            app.watch_conv = "c-1"
            for frame in watched_chat():
                await app.feed(frame)
        await pilot.press(f"f{TABS.index(tab) + 1}")
        await pilot.pause()
        app.clear_notifications()
        app.refresh_bar()
        await pilot.pause()
        await pilot.pause()  # a scroll settled in the last frame repaints its scrollbar in this one

    return run_before


def test_agents_at_80x24(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(monitor(), terminal_size=(80, 24), run_before=fed())


def test_agents_large_in_english_with_the_side_column(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(monitor("en"), terminal_size=(160, 50), run_before=fed())


def test_queues_with_sparklines_at_80x24(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(monitor(), terminal_size=(80, 24), run_before=fed("queues"))


def test_todays_figures_at_80x24(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(monitor(), terminal_size=(80, 24), run_before=fed("today"))


def test_a_watched_chat_is_masked_as_the_agent_sees_it(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(monitor(), terminal_size=(80, 24), run_before=fed("watch", watch=True))


def test_alerts_newest_first_in_english(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(monitor("en"), terminal_size=(80, 24), run_before=fed("alerts"))


def test_audit_log_at_120x30(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(monitor("en"), terminal_size=(120, 30), run_before=fed("audit"))
