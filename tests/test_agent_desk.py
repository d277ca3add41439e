"""The agent desk driven by Pilot against a real hub, with real customer sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from desk.agent import AgentDesk, make_agent_desk
from desk.agent.config import DeskConfig
from desk.agent.screens import GuardDialog, PhrasePicker
from desk.agent.widgets import Composer
from phrasebook import team_library_path
from server import admin
from server.net import HubServer, build_hub

from .conftest import hub_config
from .helpers import Client, customer

SIZE = (120, 40)


def desk_for(hub: HubServer, tmp_path: Path, user: str = "a1", password: str = "pw") -> AgentDesk:
    cfg = DeskConfig(path=tmp_path / "desk.toml", lang="zh", bell=False)
    return make_agent_desk(hub.url, user=user, password=password, lang="zh", config=cfg)


async def until(pilot, pred: Callable[[], bool], what: str = "", timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    loops = int(timeout / 0.02)
    for _ in range(loops):
        if pred():
            return
        await pilot.pause(0.02)
    raise AssertionError(f"timed out: {what}")


async def ready(hub: HubServer, user: str = "a1") -> None:
    if user not in hub.hub.users:
        await hub.hub.add_user(user, "李娜", "pw", groups=["general"])


@pytest.fixture
async def phrase_hub(tmp_path: Path) -> AsyncIterator[HubServer]:
    """A hub whose database holds the team phrasebook, agent a1 ready."""
    cfg = hub_config(tmp_path)
    await admin.import_phrases(cfg.db_path, team_library_path())
    server = await build_hub(cfg).start()
    try:
        await ready(server)
        yield server
    finally:
        await server.stop()


async def online(pilot, app: AgentDesk) -> None:  # type: ignore[no-untyped-def]
    await until(pilot, lambda: app.conn == "online", "connected")
    await pilot.press("ctrl+t")
    await until(pilot, lambda: app.status == "online", "online")


async def five_customers(hub: HubServer) -> list[Client]:
    return [await customer(hub.url, name) for name in ("王先生", "李女士", "张阿姨", "赵大爷", "钱小姐")]


async def test_a_reply_typed_in_slot_3_reaches_slot_3_and_nobody_else(hub: HubServer, tmp_path: Path) -> None:
    await ready(hub)
    app = desk_for(hub, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await online(pilot, app)
        cs = await five_customers(hub)
        await until(pilot, lambda: len(app.model.open_chats()) == 5 and all(c.synced for c in app.model.open_chats()),
                    "five chats")  # fmt: skip
        target = next(c for c in cs if app.model.by_conv[c.conv].slot == 3)
        await pilot.press("f3")
        assert app.query_one(Composer).owner == target.conv
        await pilot.press(*"您好已为您查询")
        await pilot.press("enter")
        got = await target.expect("msg", lambda f: f["sender"] == "agent")
        assert got["text"] == "您好已为您查询"
        for other in cs:
            if other is not target:
                assert not [f for f in other.of("msg") if f["sender"] == "agent"], other.conv
        # The hub agrees: exactly one agent line, in slot 3's conversation.
        rows = await hub.hub.store.query("SELECT conv_id FROM messages WHERE sender='agent'")
        assert [r[0] for r in rows] == [target.conv]


async def test_drafts_stay_with_their_slot_when_switching(hub: HubServer, tmp_path: Path) -> None:
    await ready(hub)
    app = desk_for(hub, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await online(pilot, app)
        a, b = await customer(hub.url, "王先生"), await customer(hub.url, "李女士")
        await until(pilot, lambda: len(app.model.open_chats()) == 2, "two chats")
        await pilot.press("f1")
        await pilot.press(*"给一号的草稿")
        await pilot.press("f2")
        assert app.query_one(Composer).text == ""
        await pilot.press(*"给二号")
        await pilot.press("f1")
        assert app.query_one(Composer).text == "给一号的草稿"
        assert app.model.slots[2].draft == "给二号"  # type: ignore[union-attr]
        await pilot.press("enter")
        first = app.model.slots[1].conv  # type: ignore[union-attr]
        target, other = (a, b) if a.conv == first else (b, a)
        await target.expect("msg", lambda f: f["text"] == "给一号的草稿")
        assert not [f for f in other.of("msg") if f["sender"] == "agent"]


async def test_a_sixth_customer_waits_until_a_chat_is_closed_from_the_desk(hub: HubServer, tmp_path: Path) -> None:
    await ready(hub)
    app = desk_for(hub, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await online(pilot, app)
        await five_customers(hub)
        sixth = await customer(hub.url, "孙先生")
        await until(pilot, lambda: len(app.model.open_chats()) == 5, "five chats")
        await sixth.expect("queue")
        assert sixth.conv not in app.model.by_conv
        await pilot.press("f2")
        closing = app.model.slots[2].conv  # type: ignore[union-attr]
        await pilot.press("f9")
        await pilot.pause()
        await pilot.press("enter", *"已解决", "enter")
        await until(pilot, lambda: sixth.conv in app.model.by_conv, "sixth assigned")
        assert app.model.by_conv[sixth.conv].slot == 2  # the freed slot
        assert closing not in app.model.by_conv
        rows = await hub.hub.store.query("SELECT wrapup_code, wrapup_note FROM conversations WHERE id=?", (closing,))
        assert tuple(rows[0]) == ("resolved", "已解决")


async def test_the_wrong_chat_guard_stops_another_customers_name(hub: HubServer, tmp_path: Path) -> None:
    await ready(hub)
    app = desk_for(hub, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await online(pilot, app)
        a, b = await customer(hub.url, "王先生"), await customer(hub.url, "李女士")
        await until(pilot, lambda: len(app.model.open_chats()) == 2, "two chats")
        await b.say("我的卡尾号是6688")
        await until(pilot, lambda: any("6688" in ln.text for c in app.model.open_chats() for ln in c.lines), "msg")
        slot_of_a = app.model.by_conv[a.conv].slot
        await pilot.press(f"f{slot_of_a}")
        await pilot.press(*"李女士您好")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, GuardDialog), "guard")
        assert any(r.startswith("name:") for r in app.screen.reasons)  # type: ignore[attr-defined]
        await pilot.press("enter")  # the default button is "back to editing"
        await until(pilot, lambda: not isinstance(app.screen, GuardDialog), "guard closed")
        assert not [f for f in a.of("msg") if f["sender"] == "agent"]
        assert app.query_one(Composer).text == "李女士您好"  # nothing lost
        await pilot.press("ctrl+u")  # TextArea: delete to line start
        await pilot.press(*"卡尾号6688已冻结", "enter")
        await until(pilot, lambda: isinstance(app.screen, GuardDialog), "guard on number")
        assert any(r.startswith("number:") and r.endswith("6688") for r in app.screen.reasons)  # type: ignore[attr-defined]
        await pilot.click("#g-send")
        await a.expect("msg", lambda f: f["text"] == "卡尾号6688已冻结")


async def test_shortcodes_and_the_picker_insert_phrases_with_slots_filled(phrase_hub: HubServer, tmp_path: Path) -> None:
    app = desk_for(phrase_hub, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await online(pilot, app)
        c = await customer(phrase_hub.url, "王先生")
        await until(pilot, lambda: len(app.model.open_chats()) == 1 and len(app.index) > 100, "chat+phrases")
        await pilot.press(*"/hi", "tab")
        text = app.query_one(Composer).text
        assert text.startswith("王先生您好") and "李娜" in text
        await pilot.press("enter")
        await c.expect("msg", lambda f: f["text"] == text)
        # The picker finds by pinyin (naixin dengdai -> 耐心等待); the phrase has a
        # fill-in slot, which is selected, blocks sending, and is replaced by typing.
        await pilot.press("f7")
        await until(pilot, lambda: isinstance(app.screen, PhrasePicker), "picker")
        await pilot.press(*"naixin")
        await until(pilot, lambda: app.screen.current() is not None, "a hit")  # type: ignore[attr-defined]
        phrase = app.screen.current().phrase  # type: ignore[attr-defined]
        assert "[[" in phrase.text, phrase.title
        await pilot.press("enter")
        await until(pilot, lambda: not isinstance(app.screen, PhrasePicker), "inserted")
        draft = app.query_one(Composer).text
        assert "[[" in draft and "{" not in draft
        sent = app.sent_count
        await pilot.press("enter")  # refused: the slot is not filled
        await pilot.pause()
        assert app.sent_count == sent and app.query_one(Composer).text == draft
        await pilot.press(*"5分钟")  # typing replaces the selected slot
        assert "[[" not in app.query_one(Composer).text and "5分钟" in app.query_one(Composer).text
        await pilot.press("enter")
        await until(pilot, lambda: app.sent_count == sent + 1, "sent")
        await c.expect("msg", lambda f: "5分钟" in f["text"])
        await phrase_hub.hub.store.barrier()
        uses = await phrase_hub.hub.store.query("SELECT COUNT(*) FROM phrase_uses WHERE agent_id='a1'")
        assert uses[0][0] >= 2


async def test_transfer_then_close_and_the_customer_rates(hub: HubServer, tmp_path: Path) -> None:
    await ready(hub)
    await hub.hub.add_user("b1", "赵敏", "pw", groups=["credit_card"])
    from .helpers import agent as agent_socket

    b = await agent_socket(hub.url, "b1")
    await b.send(type="set_status", status="online")
    app = desk_for(hub, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await online(pilot, app)
        c = await customer(hub.url, "王先生")
        await until(pilot, lambda: len(app.model.open_chats()) == 1, "chat")
        await pilot.press("f8")
        from desk.agent.screens import TransferDialog

        await until(pilot, lambda: isinstance(app.screen, TransferDialog), "transfer dialog")
        targets = app.screen.targets  # type: ignore[attr-defined]
        app.screen.query_one("#tr-targets").highlighted = targets.index(("credit_card", None))  # type: ignore[attr-defined]
        app.screen.query_one("#tr-note").value = "客户要办分期"  # type: ignore[attr-defined]
        await pilot.click("#tr-go")
        card = await b.expect("assigned")
        assert card["handoff"]["transfer_note"] == "客户要办分期"
        await until(pilot, lambda: not app.model.open_chats(), "slot freed")
        await b.send(type="close", conv=c.conv, wrapup="resolved")
        await c.expect("rating_request")
        await c.send(type="rate", conv=c.conv, score="satisfied")
        await c.expect("ok")


async def test_the_desk_resumes_after_the_hub_restarts_with_nothing_missing(tmp_path: Path) -> None:
    cfg = hub_config(tmp_path, port=0)
    server = await build_hub(cfg).start()
    await ready(server)
    app = desk_for(server, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await online(pilot, app)
        c = await customer(server.url, "王先生")
        await until(pilot, lambda: len(app.model.open_chats()) == 1, "chat")
        await c.say("第一句")
        port = server.port
        await server.stop()
        await until(pilot, lambda: app.conn != "online", "link lost")
        cfg.port = port  # same address: the desk reconnects by itself
        server = await build_hub(cfg).start()
        back = await Client.connect(server.url)
        await back.send(type="hello", name="王先生", resume_token=c.token, last_seq=0)
        await back.expect("synced")
        await back.send(type="send", conv=c.conv, msg_id="after", text="重启后第二句")
        await until(pilot, lambda: app.conn == "online", "reconnected", timeout=10)
        chat = app.model.by_conv[c.conv]
        await until(pilot, lambda: any(ln.text == "重启后第二句" for ln in chat.lines), "new line", timeout=10)
        texts = [ln.text for ln in chat.lines if ln.sender == "customer"]
        assert texts == ["第一句", "重启后第二句"]  # each once, in order
        assert chat.slot == 1 and chat.synced
    await server.stop()


async def test_the_desk_shows_a_customer_offline_and_back(hub: HubServer, tmp_path: Path) -> None:
    """A customer's link drops: their slot and the composer label say so; on return the mark goes."""
    from desk.agent.widgets import SlotTab

    await ready(hub)
    app = desk_for(hub, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await online(pilot, app)
        c = await customer(hub.url, "王先生")
        await until(pilot, lambda: len(app.model.open_chats()) == 1, "chat")
        chat = app.model.by_conv[c.conv]
        tab = app.query_one("#slot-1", SlotTab)
        label = app.query_one("#composer-to")
        await c.close()
        await until(pilot, lambda: not chat.online, "offline seen")
        await until(pilot, lambda: "离线" in str(tab.render()), "slot mark")
        assert "离线" in str(label.render())
        back = await Client.connect(hub.url)
        await back.send(type="hello", name="王先生", resume_token=c.token, last_seq=0)
        await until(pilot, lambda: chat.online, "back online")
        await until(pilot, lambda: "离线" not in str(tab.render()), "mark gone")
        assert "离线" not in str(label.render())


async def test_a_supervisors_whisper_is_labelled_as_such_on_the_desk(hub: HubServer, tmp_path: Path) -> None:
    """A whisper shows as the supervisor's, not as one of the agent's own notes."""
    from desk.agent.widgets import Transcript

    await ready(hub)
    await hub.hub.add_user("sup", "值班主管", "pw", role="supervisor")
    app = desk_for(hub, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await online(pilot, app)
        c = await customer(hub.url, "王先生")
        await until(pilot, lambda: len(app.model.open_chats()) == 1, "chat")
        from .helpers import agent as staff_socket

        sup = await staff_socket(hub.url, "sup")
        await sup.send(type="watch", conv=c.conv)  # a supervisor whispers into a chat it watches
        await sup.expect("synced", lambda f: f["conv"] == c.conv)
        await sup.send(type="whisper", conv=c.conv, msg_id="w1", text="先核实身份")
        chat = app.model.by_conv[c.conv]
        await until(pilot, lambda: any(ln.text == "先核实身份" for ln in chat.lines), "whisper arrived")
        rows = ["".join(text for text, _ in row) for row in app.query_one(Transcript).view.rows]  # type: ignore[union-attr]
        head = next(i for i, r in enumerate(rows) if "先核实身份" in r) - 1
        assert "主管提示" in rows[head] and "值班主管" in rows[head], rows[head]
        assert not [f for f in c.of("msg") if f["text"] == "先核实身份"]  # the customer never sees it


async def test_a_line_the_hub_refuses_for_good_is_marked_not_sent_and_its_text_comes_back(tmp_path: Path) -> None:
    """An error naming our pending line with a final code (the chat ended under it): the line stops
    'sending…', says why, and the text is back in the composer to be sent elsewhere or edited."""
    from desk.agent.widgets import Transcript
    from server import protocol as p

    from .desk_frames import customer as info

    cfg = DeskConfig(path=tmp_path / "desk.toml", lang="zh", bell=False)
    app = make_agent_desk("ws://127.0.0.1:9/", lang="zh", config=cfg, connect=False)
    async with app.run_test(size=SIZE) as pilot:
        await app.feed(p.LoginOk(user="a1", role="agent", name="李娜", token="t", session="s-1", status="online",
                                 max_chats=5))  # fmt: skip
        await app.feed(p.Assigned(conv="c-1", customer=info("王先生"), last_seq=0, handoff=p.HandoffInfo()))
        await app.feed(p.Synced(conv="c-1", last_seq=0))
        line = app.model.sent("c-1", "m-7", "您的卡已为您挂失", app.clock())
        assert line is not None and line.pending
        await app.feed(p.Error(code="invalid_state", message="the chat has ended", ref="m-7", conv="c-1"))
        await pilot.pause()
        assert line.refused == "invalid_state" and not line.pending
        rows = ["".join(t for t, _ in row) for row in app.query_one(Transcript).view.rows]  # type: ignore[union-attr]
        assert any("未发送：会话已结束" in r for r in rows), rows
        assert app.query_one(Composer).text == "您的卡已为您挂失"
        assert not app.query_one("#outbox").display  # nothing left "sending…"


async def test_a_resync_drops_the_stored_lines_and_keeps_our_unacked_reply(tmp_path: Path) -> None:
    """After a power cut the hub may answer a resume with resync: the chat starts over from the
    replay, but a reply still waiting for its ack stays on screen and takes its place when acked."""
    from desk.agent.widgets import Transcript
    from server import protocol as p

    from .desk_frames import customer as info

    cfg = DeskConfig(path=tmp_path / "desk.toml", lang="zh", bell=False)
    app = make_agent_desk("ws://127.0.0.1:9/", lang="zh", config=cfg, connect=False)
    async with app.run_test(size=SIZE) as pilot:
        await app.feed(p.LoginOk(user="a1", role="agent", name="李娜", token="t", session="s-1", status="online",
                                 max_chats=5))  # fmt: skip
        await app.feed(p.Assigned(conv="c-1", customer=info("王先生"), last_seq=0, handoff=p.HandoffInfo()))
        for seq, text in ((1, "我的卡被吞了"), (2, "这条在断电时丢了")):
            await app.feed(p.Msg(conv="c-1", seq=seq, kind="text", sender="customer", text=text, ts=1.0, epoch=1))
        await app.feed(p.Synced(conv="c-1", last_seq=2, epoch=1))
        line = app.model.sent("c-1", "m-7", "请稍等，我帮您查一下", app.clock())
        assert line is not None and line.pending
        await app.feed(p.Resync(conv="c-1", reason="message 2 is not the one you hold"))
        await app.feed(p.Msg(conv="c-1", seq=1, kind="text", sender="customer", text="我的卡被吞了", ts=1.0, epoch=1))
        await app.feed(p.Synced(conv="c-1", last_seq=1, epoch=1))
        await app.feed(p.Ack(conv="c-1", msg_id="m-7", seq=2, epoch=2))
        await pilot.pause()
        chat = app.model.by_conv["c-1"]
        assert [(ln.seq, ln.text) for ln in chat.lines] == [(1, "我的卡被吞了"), (2, "请稍等，我帮您查一下")]
        assert not line.pending
        rows = "".join("".join(t for t, _ in row) for row in app.query_one(Transcript).view.rows)  # type: ignore[union-attr]
        assert "这条在断电时丢了" not in rows and "请稍等，我帮您查一下" in rows


async def test_a_reply_over_the_hubs_limit_is_stopped_at_the_desk_and_kept(hub: HubServer, tmp_path: Path) -> None:
    """The desk knows the hub's limit from login: an over-long reply is not sent, and not lost."""
    await ready(hub)
    app = desk_for(hub, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await online(pilot, app)
        c = await customer(hub.url, "王先生")
        await until(pilot, lambda: len(app.model.open_chats()) == 1, "chat")
        composer = app.query_one(Composer)
        long_text = "请" * (app.max_text + 1)
        composer.load(c.conv, long_text)
        await pilot.press("enter")
        await pilot.pause()
        assert app.sent_count == 0 and composer.text == long_text
        assert any("内容过长" in str(n.message) for n in app._notifications)
        assert not [f for f in c.of("msg") if f["sender"] == "agent"]


async def test_f7_enter_inserts_the_answer_to_what_the_customer_came_with(tmp_path: Path) -> None:
    """Two detected topics (the second from a later line the bot matched elsewhere): the picker
    offers the first topic's phrase first, so F7 Enter answers the customer's own question."""
    from phrasebook import PhraseIndex, load_team_library
    from server import protocol as p

    from .desk_frames import customer as info

    library = load_team_library()
    index = PhraseIndex(library, agent_id="a1")
    first, later = "transfer-not-arrived", "account-dormant"
    assert index.for_topic(first, "zh") and index.for_topic(later, "zh")
    cfg = DeskConfig(path=tmp_path / "desk.toml", lang="zh", bell=False)
    app = make_agent_desk("ws://127.0.0.1:9/", lang="zh", config=cfg, connect=False)
    async with app.run_test(size=SIZE) as pilot:
        await app.feed(p.LoginOk(user="a1", role="agent", name="李娜", token="t", session="s-1", status="online",
                                 max_chats=5))  # fmt: skip
        await app.feed(p.Phrases(phrases=library))
        await app.feed(p.Assigned(conv="c-1", customer=info("邹总"), last_seq=0,
                                  handoff=p.HandoffInfo(reason="customer_asked", intents=[first, later])))  # fmt: skip
        await app.feed(p.Synced(conv="c-1", last_seq=0))
        await pilot.press("f7", "enter")
        await pilot.pause()
        want = index.for_topic(first, "zh")[0].text.split("{")[0].split("[[")[0][:8]
        assert want and want in app.query_one(Composer).text, app.query_one(Composer).text


async def test_quitting_with_chats_open_asks_first(tmp_path: Path) -> None:
    """ctrl+q with a chat open: a question, staying by default; ctrl+q again quits."""
    from desk.agent.screens import QuitDialog
    from server import protocol as p

    from .desk_frames import customer as info

    cfg = DeskConfig(path=tmp_path / "desk.toml", lang="zh", bell=False)
    app = make_agent_desk("ws://127.0.0.1:9/", lang="zh", config=cfg, connect=False)
    async with app.run_test(size=SIZE) as pilot:
        await app.feed(p.LoginOk(user="a1", role="agent", name="李娜", token="t", session="s-1", status="online",
                                 max_chats=5))  # fmt: skip
        await app.feed(p.Assigned(conv="c-1", customer=info("王先生"), last_seq=0, handoff=p.HandoffInfo()))
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert isinstance(app.screen, QuitDialog) and app.is_running
        await pilot.press("enter")  # "Stay" has the focus
        await pilot.pause()
        assert not isinstance(app.screen, QuitDialog) and app.is_running
        await pilot.press("ctrl+q", "ctrl+q")
        await pilot.pause()
        assert not app.is_running


async def test_a_phrase_inserted_then_deleted_is_not_counted_as_used(phrase_hub: HubServer, tmp_path: Path) -> None:
    """Usage feeds the phrase rankings and the supervisors' figures: only phrases that leave count."""
    app = desk_for(phrase_hub, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await online(pilot, app)
        c = await customer(phrase_hub.url, "王先生")
        await until(pilot, lambda: len(app.model.open_chats()) == 1 and len(app.index) > 100, "chat+phrases")
        await pilot.press(*"/hi", "tab")
        assert app.query_one(Composer).text.startswith("王先生您好")
        await pilot.press("escape")  # not this one after all
        await pilot.press(*"请稍等", "enter")
        await c.expect("msg", lambda f: f["text"] == "请稍等")
        await pilot.press(*"/hi", "tab", "enter")  # this time it leaves
        await c.expect("msg", lambda f: f["text"].startswith("王先生您好"))
        await phrase_hub.hub.store.barrier()
        uses = await phrase_hub.hub.store.query(
            "SELECT COUNT(*) FROM phrase_uses WHERE agent_id='a1' AND phrase_id LIKE 'team:hi:%'")
        assert uses[0][0] == 1


async def test_the_transfer_dialog_counts_only_other_agents_and_says_when_nobody_can_take_it(
    hub: HubServer, tmp_path: Path
) -> None:
    """A group only this agent staffs reads 'nobody else online' (it used to count the agent itself)."""
    from desk.agent.screens import TransferDialog

    from .helpers import agent as agent_socket

    await hub.hub.add_user("a1", "李娜", "pw", groups=["general", "cards"])
    await hub.hub.add_user("b1", "赵敏", "pw", groups=["credit_card"])
    b = await agent_socket(hub.url, "b1")
    await b.send(type="set_status", status="online")
    app = desk_for(hub, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await online(pilot, app)
        await customer(hub.url, "王先生")
        await until(pilot, lambda: len(app.model.open_chats()) == 1, "chat")
        await pilot.press("f8")
        await until(pilot, lambda: isinstance(app.screen, TransferDialog), "transfer dialog")
        dialog = app.screen
        options = dialog.query_one("#tr-targets")  # type: ignore[attr-defined]
        text = {t: str(options.get_option_at_index(i).prompt) for i, t in enumerate(dialog.targets)}  # type: ignore[attr-defined]
        assert "无其他坐席在线" in text[("cards", None)]
        assert "在线 1" in text[("credit_card", None)]
        assert ("credit_card", None) in dialog.targets[:2]  # groups someone can take come first  # type: ignore[attr-defined]
        await pilot.press("escape")


async def test_pop_ups_wait_while_a_dialog_is_open_and_show_when_it_closes(hub: HubServer, tmp_path: Path) -> None:
    """A new chat arriving while the agent picks a wrap-up code does not draw over the
    dialog: its pop-up comes when the dialog closes (the bell rings at once, and the
    strip shows the chat at once)."""
    from desk.agent.screens import CloseDialog

    await ready(hub)
    app = desk_for(hub, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await online(pilot, app)
        await customer(hub.url, "王先生")
        await until(pilot, lambda: len(app.model.open_chats()) == 1, "first chat")
        app.clear_notifications()
        await pilot.press("f9")
        await until(pilot, lambda: isinstance(app.screen, CloseDialog), "close dialog")
        await customer(hub.url, "李女士")
        await until(pilot, lambda: len(app.model.open_chats()) == 2, "second chat")
        await pilot.pause(1.2)  # a tick passes with the dialog still open
        assert not [n for n in app._notifications if "李女士" in str(n.message)]
        await pilot.press("escape")
        await pilot.pause()
        assert any("李女士" in str(n.message) for n in app._notifications)  # at once, not at the next tick
