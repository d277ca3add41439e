"""The demo customer client, driven with Pilot against a real hub and real agents."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from rich.cells import cell_len
from textual.pilot import Pilot
from textual.widgets import Button, Input, Static

from desk.customer.app import CustomerApp
from desk.customer.dialogs import RatingScreen
from desk.customer.model import ChatModel, TypingThrottle, format_eta
from desk.customer.screens import ChatScreen, StartScreen
from desk.customer.transcript import Transcript, wrap_cells
from desk.customer_app import make_customer_app
from server import protocol as p
from server.bot import DEFAULT_KB_PATH
from server.net import HubServer, build_hub

from .conftest import hub_config
from .helpers import TIMEOUT, Client, agent, customer

# -- helpers ---------------------------------------------------------------------


@pytest.fixture
async def bot_hub(tmp_path: Path) -> AsyncIterator[HubServer]:
    server = await build_hub(hub_config(tmp_path, kb_path=DEFAULT_KB_PATH)).start()
    try:
        yield server
    finally:
        await server.stop()


async def online(hub: HubServer, user: str = "a1", name: str = "李娜") -> Client:
    await hub.hub.add_user(user, name, "pw", groups=["general", "cards"])
    a = await agent(hub.url, user)
    await a.send(type="set_status", status="online")
    await a.expect("status", lambda f: f["status"] == "online")
    return a


async def until(pilot: Pilot, pred: Callable[[], object], what: str = "") -> None:
    """Let the app run until `pred()` holds (no fixed sleeps)."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what or pred}")
        await pilot.pause(0.02)


async def chat_of(pilot: Pilot) -> ChatScreen:
    app = pilot.app
    assert isinstance(app, CustomerApp)
    await until(pilot, lambda: app.chat is not None and app.chat.is_mounted, "the chat screen")
    assert app.chat is not None
    return app.chat


async def type_text(pilot: Pilot, text: str) -> None:
    """Type like a person. Pilot.press drops fullwidth punctuation (its key
    name does not map back to the character), so those go in as a terminal
    would deliver them: inserted at the cursor of the focused input."""
    for ch in text:
        if ch.isalnum() or ch.isascii():
            await pilot.press(ch)
        else:
            focused = pilot.app.focused
            assert isinstance(focused, Input)
            focused.insert_text_at_cursor(ch)
            await pilot.pause()


def text_of(screen: ChatScreen, selector: str) -> str:
    return str(screen.query_one(selector, Static).content)


def said(screen: ChatScreen) -> list[str]:
    return [text for _, text in screen.model.texts()]


# -- against a real hub ------------------------------------------------------------


async def test_a_chat_from_first_line_to_rating(hub: HubServer) -> None:
    """Type, Enter, the agent types and replies, closes, and the rating lands in the database."""
    a = await online(hub)
    app = make_customer_app(hub.url, name="张阿姨", flags=["elderly"], ui_lang="zh")
    async with app.run_test(size=(80, 24)) as pilot:
        chat = await chat_of(pilot)
        await until(pilot, lambda: chat.model.state == "assigned", "assigned to the agent")
        conv = (await a.expect("assigned"))["conv"]
        await a.expect("synced")
        assert text_of(chat, "#status") == "客服 李娜 为您服务"
        assert chat.link == "online" and "已连接" in str(chat.query_one("#link", Static).content)

        await type_text(pilot, "你好，我的卡被吞了")  # the message box has the focus
        await a.expect("typing", lambda f: f["who"] == "customer" and f["on"])
        await pilot.press("enter")
        mine = chat.model.lines[-1]
        assert (mine.who, mine.text) == ("me", "你好，我的卡被吞了")  # shown at once
        got = await a.expect("msg", lambda f: f["text"] == "你好，我的卡被吞了")
        await until(pilot, lambda: not mine.pending, "the ack")
        assert mine.seq == got["seq"]

        await a.send(type="typing", conv=conv, on=True)
        await until(pilot, lambda: text_of(chat, "#typing") == "李娜 正在输入…", "the typing mark")
        await a.say("请问是哪个网点的ATM？", conv=conv)
        await until(pilot, lambda: said(chat)[-1] == "请问是哪个网点的ATM？", "the reply")
        assert chat.model.lines[-1].who == "agent" and chat.model.lines[-1].name == "李娜"
        assert text_of(chat, "#typing") == ""  # the reply replaces the mark
        ons = [f for f in a.of("typing", conv) if f["who"] == "customer" and f["on"]]
        assert len(ons) == 1  # nine keystrokes, one frame: at most one per 2 s

        await a.send(type="close", conv=conv, wrapup="card-lost")
        await until(pilot, lambda: isinstance(app.screen, RatingScreen), "the rating dialog")
        assert chat.query_one("#message", Input).disabled
        await pilot.press("down", "enter", "tab")
        await type_text(pilot, "很耐心")
        await pilot.press("enter")  # 满意, with a comment
        await until(pilot, lambda: chat.model.rated, "the hub's ok")
        assert text_of(chat, "#status") == "对话已结束 · 感谢您的评价"
    rows = await hub.hub.store.query("SELECT rating, rating_comment FROM conversations")
    assert [tuple(r) for r in rows] == [("satisfied", "很耐心")]


async def test_the_second_waiting_customer_sees_place_two_and_no_agent_online(
    hub: HubServer,
) -> None:
    """Two customers, nobody online: the app (second) shows place 2 and no estimate."""
    first = await customer(hub.url, "王先生")
    await first.expect("queue")
    app = make_customer_app(hub.url, name="李先生", ui_lang="zh")
    async with app.run_test(size=(80, 24)) as pilot:
        chat = await chat_of(pilot)
        await until(pilot, lambda: chat.model.queue_position == 2, "place 2")
        assert chat.model.queue_eta is None
        assert text_of(chat, "#status") == "排队中：第 2 位 · 暂无客服在线，请耐心等候"
    await first.close()


def hold_resumes(hub: HubServer, monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Hold the hub's answer to every resume until the event is set, so that
    "meanwhile" is certain: the client reconnects at once after a drop."""
    gate = asyncio.Event()
    resume = hub.hub._resume_customer

    async def held_resume(session: object, f: p.Hello) -> None:
        await gate.wait()
        await resume(session, f)  # type: ignore[arg-type]

    monkeypatch.setattr(hub.hub, "_resume_customer", held_resume)
    return gate


async def test_resume_after_a_dropped_link_shows_every_message_once_in_order(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cut the socket; the agent writes meanwhile; nothing is lost, doubled or out of order."""
    gate = hold_resumes(hub, monkeypatch)
    a = await online(hub)
    app = make_customer_app(hub.url, name="张阿姨", ui_lang="zh")
    async with app.run_test(size=(80, 24)) as pilot:
        chat = await chat_of(pilot)
        await until(pilot, lambda: chat.model.state == "assigned", "assigned")
        conv = (await a.expect("assigned"))["conv"]
        await a.expect("synced")
        await pilot.press(*"第一句", "enter")
        await a.expect("msg", lambda f: f["text"] == "第一句")

        assert chat.client is not None
        chat.client.drop()
        await until(pilot, lambda: chat.link == "reconnecting", "the reconnecting mark")
        assert "重连中" in str(chat.query_one("#link", Static).content)
        await pilot.press(*"断线时写的", "enter")
        offline = chat.model.lines[-1]
        assert offline.pending
        assert any("发送中…" in row for row in chat.query_one(Transcript).text_rows())
        for i in range(3):
            await a.say(f"客服回复{i}", conv=conv)
        assert "客服回复0" not in said(chat)
        gate.set()

        await until(
            pilot,
            lambda: chat.link == "online" and not offline.pending and "客服回复2" in said(chat),
            "resumed",
        )
        texts = said(chat)
        for text in ("第一句", "断线时写的", "客服回复0", "客服回复1", "客服回复2"):
            assert texts.count(text) == 1, texts
        assert texts.index("客服回复2") < texts.index("断线时写的")  # stored after the replay
        seqs = [line.seq for line in chat.model.lines]
        assert None not in seqs and seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        assert chat.query_one(Transcript).lines == chat.model.lines  # the screen shows the same
        assert "已连接" in str(chat.query_one("#link", Static).content)
    rows = await hub.hub.store.query("SELECT COUNT(*) FROM messages WHERE text='断线时写的'")
    assert rows[0][0] == 1


async def test_a_line_written_offline_into_a_chat_that_ended_meanwhile_says_not_sent(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hub refuses it (invalid_state): the line reads "not sent (chat ended)", and it is not sent again."""
    gate = hold_resumes(hub, monkeypatch)
    a = await online(hub)
    app = make_customer_app(hub.url, name="张阿姨", ui_lang="zh")
    async with app.run_test(size=(80, 24)) as pilot:
        chat = await chat_of(pilot)
        await until(pilot, lambda: chat.model.state == "assigned", "assigned")
        conv = (await a.expect("assigned"))["conv"]
        await a.expect("synced")
        assert chat.client is not None
        chat.client.drop()
        await until(pilot, lambda: chat.link == "reconnecting", "the reconnecting mark")
        await pilot.press(*"还在吗", "enter")
        late = chat.model.lines[-1]
        assert late.pending and any("发送中…" in row for row in chat.query_one(Transcript).text_rows())
        await a.send(type="close", conv=conv)  # the chat ends while the customer is away
        await a.expect("ok", lambda f: f["ref"] == "close")
        gate.set()

        await until(pilot, lambda: late.failed == "invalid_state", "the refusal")
        assert not late.pending
        rows = [row for row in chat.query_one(Transcript).text_rows() if "还在吗" in row or "未发送" in row]
        assert any("未发送（对话已结束）" in row for row in rows), rows
        assert not any("发送中…" in row for row in chat.query_one(Transcript).text_rows())
        assert chat.client.pending == {}  # refused for good: the client will not send it again
    rows = await hub.hub.store.query("SELECT COUNT(*) FROM messages WHERE text='还在吗'")
    assert rows[0][0] == 0


@pytest.mark.parametrize("how", ["key", "button"])
async def test_asking_for_a_person_after_the_bot_answers(bot_hub: HubServer, how: str) -> None:
    """The bot answers "ATM吞卡了怎么办"; F2 (or the button) queues the chat for a person."""
    app = make_customer_app(bot_hub.url, name="张阿姨", ui_lang="zh")
    async with app.run_test(size=(80, 24)) as pilot:
        chat = await chat_of(pilot)
        await until(pilot, lambda: chat.model.state == "bot" and said(chat), "the greeting")
        assert text_of(chat, "#status").startswith("智能助手为您服务")
        await pilot.press(*"ATM吞卡了怎么办", "enter")
        await until(
            pilot, lambda: chat.model.lines[-1].who == "bot" and len(said(chat)) >= 3, "an answer"
        )
        assert any("ATM" in t for who, t in chat.model.texts()[2:] if who == "bot")
        assert chat.model.state == "bot"

        if how == "key":
            await pilot.press("f2")
        else:
            await pilot.click("#human")
        await until(pilot, lambda: chat.model.queue_position == 1, "queued")
        assert text_of(chat, "#status") == "排队中：第 1 位 · 暂无客服在线，请耐心等候"
        assert bot_hub.hub.convs[chat.model.conv].rec.handoff["reason"] == "customer_asked"
        assert chat.query_one("#human", Button).disabled
        assert "request_human" not in chat.awaiting  # the hub said ok


async def test_the_start_screen_takes_a_name_and_demo_flags(hub: HubServer) -> None:
    """No name on the command line: the start screen asks, in English if so chosen."""
    app = make_customer_app(hub.url, ui_lang="en")
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, StartScreen), "the start screen")
        await pilot.click("#flag-vip")
        await pilot.click("#start-name")
        await pilot.press(*"Mr Wang", "enter")
        chat = await chat_of(pilot)
        await until(pilot, lambda: chat.model.conv in hub.hub.convs, "the chat")
        assert hub.hub.convs[chat.model.conv].rec.flags == ["vip"]
        assert text_of(chat, "#who") == "Mr Wang (VIP)"
        await until(pilot, lambda: chat.model.queue_position == 1, "queued")
        assert text_of(chat, "#status") == "In queue: position 1 · no agent online at the moment"


# -- without a network: frames fed by hand -------------------------------------------

T0 = 1_795_597_200.0  # a fixed time so snapshots do not drift
GREETING = "您好，我是示例银行智能客服助手，可以为您解答银行卡、转账、手机银行等常见问题。如需人工服务，请随时回复「人工」。"
ATM_ANSWER = (
    "1. 请不要离开，也不要相信ATM旁张贴的“客服电话”或陌生人的帮助，切勿在他人面前输入密码。\n"
    "2. 记下ATM所在网点和编号，拨打客服热线登记吞卡；如担心被盗用，可先在手机银行临时挂失。\n"
    "3. 一般3个工作日内本人携带身份证到该ATM所属网点领取。"
)


def msg(seq: int, sender: str, text: str, name: str = "", kind: str = "") -> p.Msg:
    kind = kind or {"bot": "bot", "system": "system"}.get(sender, "text")
    return p.Msg(conv="c-demo", seq=seq, kind=kind, sender=sender, text=text, ts=T0 + 30 * seq,
                 sender_name=name, msg_id=f"m-{seq}" if sender == "customer" else "")  # type: ignore[arg-type]  # fmt: skip


QUEUE_FRAMES: list[object] = [
    p.Welcome(conv="c-demo", resume_token="t", resumed=False, state="bot", last_seq=0),
    msg(1, "bot", GREETING),
    msg(
        2,
        "customer",
        "我的银行卡在ATM上被吞了，人还在ATM旁边，卡里还有这个月的工资，很着急，该怎么办？",
    ),
    msg(3, "bot", ATM_ANSWER),
    msg(4, "customer", "人工"),
    msg(5, "system", "正在为您转接人工客服，请稍候。"),
    p.ConvState(conv="c-demo", state="queued", reason="queued"),
    p.QueueStatus(conv="c-demo", group="cards", position=2, eta_s=None),
]

AGENT_FRAMES: list[object] = [
    p.Welcome(conv="c-demo", resume_token="t", resumed=True, state="assigned", last_seq=4),
    msg(1, "system", "客服 李娜 已接入，为您服务。"),
    msg(
        2,
        "agent",
        "张阿姨您好，我是客服李娜。请问您的卡是在哪个网点的ATM被吞的？我帮您登记一下，"
        "登记后三个工作日内可以到网点领取，领取时请带上本人有效身份证件。",
        name="李娜",
    ),
    msg(3, "customer", "在人民路支行门口的ATM，大概十分钟前。"),
    msg(4, "agent", "好的，已为您登记，登记号 2025112600318。", name="李娜"),
    p.ConvState(conv="c-demo", state="assigned", agent_name="李娜"),
    p.TypingEvent(conv="c-demo", who="agent", on=True, name="李娜"),
]


def offline_app(name: str = "张阿姨", flags: list[str] | None = None) -> CustomerApp:
    return CustomerApp(
        "ws://unused/", name=name, flags=flags or ["elderly"], ui_lang="zh", connect=False
    )


def feed(frames: list[object], link: str = "online") -> Callable[[Pilot], object]:
    async def run_before(pilot: Pilot) -> None:
        chat = await chat_of(pilot)
        chat.query_one("#message", Input).cursor_blink = False
        chat.set_link(link)
        for frame in frames:
            chat.handle_frame(frame)
        await pilot.pause()

    return run_before


@pytest.fixture
def shanghai_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Clock times in snapshots read the same on every machine."""
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_snapshot_bot_answer_then_waiting_in_the_queue(snap_compare, shanghai_time) -> None:
    """80x24: bot and customer lines in Chinese, wrapped by cell width, place 2, nobody online."""
    assert snap_compare(offline_app(), terminal_size=(80, 24), run_before=feed(QUEUE_FRAMES))


def test_snapshot_agent_typing_and_a_line_sending_while_offline(
    snap_compare, shanghai_time
) -> None:
    """80x24: the agent's name and typing mark, and our line marked 发送中… while reconnecting."""

    async def run_before(pilot: Pilot) -> None:
        await feed(AGENT_FRAMES, link="offline")(pilot)  # type: ignore[misc]
        chat = await chat_of(pilot)
        chat.set_link("connecting", reconnects=1)
        await type_text(pilot, "好的，谢谢您！")
        await pilot.press("enter")
        await pilot.pause()

    assert snap_compare(offline_app(), terminal_size=(80, 24), run_before=run_before)


async def test_long_chinese_lines_wrap_within_80_columns() -> None:
    """Every transcript row fits the width, and no character is lost to the wrap."""
    text = ("请问信用卡账单分期的手续费怎么算？我这个月账单是12,345.67元，想分12期，" * 4).strip()
    app = offline_app()
    async with app.run_test(size=(80, 24)) as pilot:
        chat = await chat_of(pilot)
        chat.handle_frame(QUEUE_FRAMES[0])
        chat.handle_frame(msg(1, "agent", text, name="李娜"))
        chat.handle_frame(msg(2, "customer", text))
        await pilot.pause()
        transcript = chat.query_one(Transcript)
        width = transcript.scrollable_content_region.width
        assert width == 79  # 80 minus the scrollbar
        for ln in transcript.lines:
            rows = transcript._layout(ln)
            assert all(indent + sum(cell_len(t) for t, _ in segs) <= width for indent, segs in rows)
            assert "".join(segs[0][0] for _, segs in rows[1:]) == text.replace(" ", "")
        await pilot.resize_terminal(160, 50)
        await pilot.pause()
        assert transcript._width == 159 and len(transcript.text_rows()) < 10  # rewrapped wider


async def test_a_long_history_is_drawn_without_a_widget_per_line() -> None:
    """3,000 lines: the widget count stays flat and the view stays on the newest line."""
    app = offline_app()
    async with app.run_test(size=(80, 24)) as pilot:
        chat = await chat_of(pilot)
        chat.handle_frame(QUEUE_FRAMES[0])
        await pilot.pause()
        widgets = len(list(chat.query("*")))
        for seq in range(1, 3001):
            sender = "customer" if seq % 2 else "agent"
            chat.handle_frame(
                msg(
                    seq, sender, f"第{seq}条消息，内容稍长一些以便换行" * (seq % 3 + 1), name="李娜"
                )
            )
        await pilot.pause()
        transcript = chat.query_one(Transcript)
        assert len(list(chat.query("*"))) == widgets
        assert transcript.line_count == 3000
        assert transcript.max_scroll_y > 0 and transcript.scroll_y == transcript.max_scroll_y
        chat.handle_frame(msg(3001, "agent", "最新的一条", name="李娜"))
        await pilot.pause()
        assert transcript.scroll_y == transcript.max_scroll_y  # still pinned
        assert transcript.text_rows()[-1].strip() == "最新的一条"


# -- the pieces without a screen ----------------------------------------------------


def test_wrap_breaks_chinese_anywhere_but_keeps_punctuation_and_words() -> None:
    """CJK breaks between characters; a comma never starts a line; an English word stays whole."""
    assert wrap_cells("你好你好你好", 4) == ["你好", "你好", "你好"]
    assert wrap_cells("你好，世界", 4) == ["你", "好，", "世界"]  # "，" does not start a line
    assert wrap_cells("请拨打 hotline 客服", 9) == ["请拨打", "hotline", "客服"]
    assert wrap_cells("请拨打 hotline 客服", 10) == ["请拨打", "hotline 客", "服"]
    assert wrap_cells("第一行\n\n第三行", 20) == ["第一行", "", "第三行"]
    assert wrap_cells("ABCDEFGHIJ", 4) == ["ABCD", "EFGH", "IJ"]  # too long: folded
    for width in (5, 9, 20, 79):
        rows = wrap_cells(GREETING + ATM_ANSWER, width)
        assert all(cell_len(r) <= width for r in rows)
        assert "".join(rows).replace(" ", "") == (GREETING + ATM_ANSWER).replace("\n", "").replace(
            " ", ""
        )


def test_the_model_keeps_one_line_per_message_whatever_order_news_arrives_in() -> None:
    """Early acks, replays of our own line, duplicates and a resync all end in one clean list."""
    m = ChatModel(clock=lambda: T0)
    m.apply(p.Welcome(conv="c1", resume_token="t", resumed=False, state="assigned", last_seq=0))
    a = m.add_own("甲")
    m.apply(p.Ack(conv="c1", msg_id="x-1", seq=2))  # the ack beats the binding
    m.bind(a.key, "x-1")
    assert a.seq == 2 and not a.pending
    b = m.add_own("乙")
    m.bind(b.key, "x-2")
    m.apply(msg(1, "agent", "您好", name="李娜"))
    m.apply(
        p.Msg(conv="c1", seq=3, kind="text", sender="customer", text="乙", ts=T0, msg_id="x-2")
    )  # replayed
    m.apply(p.Ack(conv="c1", msg_id="x-2", seq=3, duplicate=True))
    m.apply(msg(1, "agent", "您好", name="李娜"))  # a duplicate
    assert m.texts() == [("agent", "您好"), ("me", "甲"), ("me", "乙")]
    c = m.add_own("丙")
    m.bind(c.key, "x-3")
    m.apply(p.Resync(conv="c1", reason="restored"))
    assert m.texts() == [("me", "丙")]  # stored lines dropped, the unacked one kept
    m.apply(p.Error(code="too_long", message="too long", ref="x-3", conv="c1"))
    assert c.failed == "too_long" and not c.pending


def test_typing_frames_go_at_most_once_every_two_seconds() -> None:
    t = TypingThrottle(interval=2.0, refresh=6.0)
    assert t.update(True, 0.0) == (True, None)
    assert t.update(True, 1.0) == (None, None)  # no change
    assert t.update(False, 1.5) == (None, 0.5)  # too soon: ask again in 0.5 s
    assert t.update(False, 2.0) == (False, None)
    assert t.update(True, 7.0) == (True, None)
    assert t.update(True, 13.5) == (True, None)  # still typing: refreshed


def test_the_wait_reads_as_minutes() -> None:
    assert format_eta(None, "约 {n} 分钟", "不到 1 分钟") is None
    assert format_eta(30, "约 {n} 分钟", "不到 1 分钟") == "不到 1 分钟"
    assert format_eta(144, "约 {n} 分钟", "不到 1 分钟") == "约 3 分钟"
