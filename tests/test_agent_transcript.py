"""The desk's transcript with long histories: where a chat opens, and what it costs to keep.

Fed decoded hub frames (the desk's input) without a network: these are about
drawing, not delivery (delivery is tested against a real hub in test_agent_desk).
"""

from __future__ import annotations

import gc
from pathlib import Path

from desk.agent import AgentDesk, make_agent_desk
from desk.agent.config import DeskConfig
from desk.agent.widgets import Transcript
from server import protocol as p

from .desk_frames import T0, customer

SIZE = (120, 40)


def desk(tmp_path: Path) -> AgentDesk:
    cfg = DeskConfig(path=tmp_path / "desk.toml", lang="zh", bell=False)
    return make_agent_desk("ws://127.0.0.1:9/", lang="zh", config=cfg, connect=False)


async def open_chats(app: AgentDesk, count: int, messages: int) -> None:
    """`count` chats; the i-th has `messages` + 37*(i-1) lines, so no two end at the same row."""
    await app.feed(p.LoginOk(user="a1", role="agent", name="李娜", token="t", session="s-1", status="online",
                             max_chats=5))  # fmt: skip
    base = messages
    for i in range(1, count + 1):
        conv = f"c{i}"
        messages = base + 37 * (i - 1)
        await app.feed(p.Assigned(conv=conv, customer=customer(f"客户{i}"), last_seq=messages,
                                  handoff=p.HandoffInfo(reason="customer_asked")))  # fmt: skip
        for seq in range(1, messages + 1):
            who = "customer" if seq % 2 else "agent"
            await app.feed(p.Msg(conv=conv, seq=seq, kind="text", sender=who, ts=T0 + seq,
                                 sender_id="customer" if who == "customer" else "a1",
                                 text=f"{conv}#{seq} 我昨天在手机银行给家人转账五千元显示成功但对方还没收到"))  # fmt: skip
        await app.feed(p.Synced(conv=conv, last_seq=messages))


def newest_line_shown(t: Transcript) -> bool:
    return t.view is not None and t.scroll_offset.y == t.max_scroll_y > 0


async def test_a_switch_shows_the_chat_at_its_newest_line_in_the_same_frame(tmp_path: Path) -> None:
    """The scroll position is set by the switch itself, before any repaint: no frame shows the top first."""
    app = desk(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_chats(app, 3, 300)
        await pilot.pause()
        t = app.query_one(Transcript)
        for slot in (2, 3, 1, 3):
            app.action_slot(slot)  # no await: nothing has been repainted yet
            assert t.view is not None and t.view.chat.slot == slot
            assert newest_line_shown(t), (slot, t.scroll_offset.y, t.max_scroll_y)
            await pilot.pause()


async def test_a_chat_left_while_its_history_arrives_reopens_at_its_newest_line(tmp_path: Path) -> None:
    """Switching away in the same moment a replay lands must not park that chat at its first line."""
    app = desk(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_chats(app, 2, 200)  # slot 1 is shown while its 200 lines arrive
        app.action_slot(2)  # ...and left before any repaint
        await pilot.pause()
        app.action_slot(1)
        await pilot.pause()
        assert newest_line_shown(app.query_one(Transcript))


async def test_where_the_agent_was_reading_is_kept_per_chat(tmp_path: Path) -> None:
    """Scrolled up in one chat, switched away and back: still there; the other chat follows its newest line."""
    app = desk(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_chats(app, 2, 200)
        await pilot.pause()
        t = app.query_one(Transcript)
        app.action_slot(1)
        await pilot.pause()
        t.scroll_to(y=40, animate=False, immediate=True)
        app.action_slot(2)
        assert newest_line_shown(t)
        app.action_slot(1)
        assert t.scroll_offset.y == 40


async def test_long_histories_give_the_garbage_collector_nothing_to_walk(tmp_path: Path) -> None:
    """Wrapped rows are tuples of strings, which CPython stops tracking after a collection: thousands
    of rows add nothing for each full collection to walk (with lists they made it a ~40 ms pause)."""
    app = desk(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_chats(app, 5, 400)
        for slot in (2, 3, 4, 5, 1):  # every chat wrapped
            app.action_slot(slot)
            await pilot.pause()
        gc.collect()
        rows = [row for v in app.query_one(Transcript).views.values() for row in v.rows]
        assert len(rows) >= 2 * 5 * 400  # a header row and a text row per message at least
        assert sum(gc.is_tracked(row) for row in rows) == 0


async def say(app: AgentDesk, pilot, conv: str, seq: int, text: str) -> None:  # type: ignore[no-untyped-def]
    await app.feed(p.Msg(conv=conv, seq=seq, kind="text", sender="customer", sender_id="customer",
                         ts=T0 + seq, text=text))  # fmt: skip
    await pilot.pause()


async def test_the_newest_line_stays_in_view_when_the_outbox_grows_under_the_chat(tmp_path: Path) -> None:
    """Lines waiting for their ack shrink the transcript; it still follows the newest line,
    and the customer's next line shows (a user saw replies and answers vanish below the edge)."""
    app = desk(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_chats(app, 1, 30)
        await pilot.pause()
        t = app.query_one(Transcript)
        for i in range(3):  # three replies in flight: the outbox takes three rows
            app.model.sent("c1", f"m{i}", f"回复{i}", app.clock())
        app.refresh_outbox()
        await pilot.pause()
        assert newest_line_shown(t) and t.following
        await say(app, pilot, "c1", 31, "c1#31 客户的新消息")
        assert newest_line_shown(t)
        app.action_slot(1)
        assert newest_line_shown(t)


async def test_scrolled_up_new_lines_are_counted_and_pagedown_to_the_end_follows_again(tmp_path: Path) -> None:
    """PageUp in the reply box pages the chat back; lines arriving meanwhile do not move the view
    and are counted in the border; PageDown to the end follows again."""
    app = desk(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_chats(app, 1, 40)
        await pilot.pause()
        t = app.query_one(Transcript)
        end = t.scroll_offset.y
        await pilot.press("pageup")
        await pilot.pause()
        reading = t.scroll_offset.y
        assert reading < end and not t.following
        await say(app, pilot, "c1", 41, "c1#41 新消息一")
        await say(app, pilot, "c1", 42, "c1#42 新消息二")
        assert t.scroll_offset.y == reading  # the agent's place is kept
        assert "2" in str(t.border_subtitle) and "PgDn" in str(t.border_subtitle)
        for _ in range(5):
            await pilot.press("pagedown")
        await pilot.pause()
        assert newest_line_shown(t) and t.following and not t.border_subtitle
        await say(app, pilot, "c1", 43, "c1#43 新消息三")
        assert newest_line_shown(t)


async def test_escape_clears_the_reply_box_and_ctrl_z_brings_it_back(tmp_path: Path) -> None:
    """A wrongly inserted phrase goes with one key, and comes back with another."""
    from desk.agent.widgets import Composer

    app = desk(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_chats(app, 1, 3)
        await pilot.pause()
        composer = app.query_one(Composer)
        composer.focus()
        await pilot.press(*"您好请稍等")
        await pilot.press("escape")
        assert composer.text == ""
        await pilot.press("ctrl+z")
        assert composer.text == "您好请稍等"


async def test_with_no_chat_the_desk_says_why_and_what_to_do(tmp_path: Path) -> None:
    """An agent who logs in offline sees that ctrl+t takes chats (a new user waited for nothing)."""
    app = desk(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        app.conn = "online"
        await app.feed(p.LoginOk(user="a1", role="agent", name="李娜", token="t", session="s-1", status="offline",
                                 max_chats=5))  # fmt: skip
        await pilot.pause()
        t = app.query_one(Transcript)
        assert "ctrl+t" in t.empty_text and "离线" in t.empty_text
        await app.feed(p.StatusEvent(status="online", max_chats=5, load=0))
        await pilot.pause()
        assert "在线" in t.empty_text and "ctrl+t" not in t.empty_text


async def test_an_idle_desk_does_not_keep_asking_to_place_the_transcript(tmp_path: Path) -> None:
    """With no chat shown (or one shown before it had a size), the place is asked for once,
    not again on every refresh: that loop kept an idle desk at 100 % of a core."""
    app = desk(tmp_path)
    calls = 0
    async with app.run_test(size=SIZE) as pilot:
        t = app.query_one(Transcript)
        real = t._place_pending

        def counted() -> None:
            nonlocal calls
            calls += 1
            real()

        t._place_pending = counted  # type: ignore[method-assign]
        for _ in range(5):
            t.refresh()
            await pilot.pause()
        assert calls == 0 and t._pending is None  # nothing to place with no chat
        await open_chats(app, 2, 50)
        for _ in range(5):
            t.refresh()
            await pilot.pause()
        assert calls <= 2 and t._pending is None
        assert newest_line_shown(t)


async def test_the_desk_makes_full_collections_rarer_only_while_it_runs(tmp_path: Path) -> None:
    """The collector belongs to the process: the desk's setting is undone at exit."""
    before = gc.get_threshold()
    app = desk(tmp_path)
    async with app.run_test(size=SIZE):
        assert gc.get_threshold()[2] == 100
    assert gc.get_threshold() == before
