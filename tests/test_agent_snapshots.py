"""A few snapshots of the agent desk's main screen (80x24 and large), fed a
fixed set of frames so nothing depends on the network or the clock."""

from __future__ import annotations

from pathlib import Path

from desk.agent import make_agent_desk
from desk.agent.config import DeskConfig

from .desk_frames import T0, opening_frames


def desk(lang: str = "zh"):  # type: ignore[no-untyped-def]
    cfg = DeskConfig(path=Path("/nonexistent/desk.toml"), lang=lang, bell=False)
    return make_agent_desk("ws://127.0.0.1:9/", lang=lang, config=cfg, connect=False, clock=lambda: T0)


async def fed(pilot) -> None:  # type: ignore[no-untyped-def]
    for frame in opening_frames():
        await pilot.app.feed(frame)
    await pilot.pause()
    pilot.app.clear_notifications()
    pilot.app.refresh_bars()
    await pilot.pause()


def test_main_screen_at_80x24(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(desk(), terminal_size=(80, 24), run_before=fed)


def test_main_screen_large_in_english(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(desk("en"), terminal_size=(140, 45), run_before=fed)


def test_switching_to_the_urgent_slot(snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def then(pilot) -> None:  # type: ignore[no-untyped-def]
        await fed(pilot)
        await pilot.press("f3")
        await pilot.pause()

    assert snap_compare(desk(), terminal_size=(80, 24), run_before=then)
