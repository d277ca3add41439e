"""The supervisor monitor driven by Pilot against a real hub, with real agent
and customer sockets."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from textual.widgets import Input, Label, OptionList, RadioButton, TextArea

from desk.agent.screens import LoginScreen
from desk.monitor import MonitorConfig, SupervisorMonitor, make_monitor
from desk.monitor.screens import (
    AgentSetDialog,
    ChatPicker,
    TargetPicker,
    TeamPhraseEditor,
    TextDialog,
    WaitingPicker,
)
from desk.monitor.widgets import AgentsTable, AlertsTable, AuditTable, QueuesTable, WatchTranscript
from server import protocol as p
from server.net import HubServer, build_hub

from .conftest import hub_config
from .helpers import Client, agent, customer

SIZE = (120, 36)


async def until(pilot, pred: Callable[[], bool], what: str = "", timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.02)):
        if pred():
            return
        await pilot.pause(0.02)
    raise AssertionError(f"timed out: {what}")


async def monitor_for(hub: HubServer, tmp_path: Path, password: str = "pw", user: str = "sup") -> SupervisorMonitor:
    if "sup" not in hub.hub.users:
        await hub.hub.add_user("sup", "值班主管", "pw", role="supervisor")
    cfg = MonitorConfig(path=tmp_path / "monitor.toml", lang="zh", bell=True, figures_every_s=3600)
    app = make_monitor(hub.url, user=user, password=password, lang="zh", config=cfg)
    app.rings = 0  # type: ignore[attr-defined]

    def bell() -> None:
        app.rings += 1  # type: ignore[attr-defined]

    app.bell = bell  # type: ignore[method-assign]
    return app


async def online(hub: HubServer, user: str, max_chats: int = 5, groups: list[str] | None = None) -> Client:
    await hub.hub.add_user(user, {"a1": "李娜", "a2": "王强"}.get(user, user), "pw", max_chats=max_chats,
                           groups=groups)  # fmt: skip
    a = await agent(hub.url, user)
    await a.send(type="set_status", status="online")
    await a.expect("status", lambda f: f["status"] == "online")
    return a


def cell(app: SupervisorMonitor, agent_id: str, column: str) -> str:
    return app.query_one(AgentsTable).cell_text(agent_id, column)


def notices(app: SupervisorMonitor) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def test_the_board_shows_the_right_load_as_chats_are_assigned_and_closed(hub: HubServer, tmp_path: Path) -> None:
    app = await monitor_for(hub, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.conn == "online" and app.model.boards > 0, "board")
        a = await online(hub, "a1")
        c1, c2 = await customer(hub.url, "王先生"), await customer(hub.url, "李女士")
        await until(pilot, lambda: "a1" in app.model.agents and cell(app, "a1", "load") == "2/5", "load 2/5")
        assert cell(app, "a1", "slots") == "▣▣▢▢▢"
        assert cell(app, "a1", "status") == "在线"
        await a.expect("synced", lambda f: f["conv"] == c2.conv)
        await c1.say("在吗")
        await a.say("在的，请讲", conv=c1.conv)
        await a.send(type="close", conv=c1.conv, wrapup="resolved")
        await until(pilot, lambda: cell(app, "a1", "load") == "1/5" and cell(app, "a1", "handled") == "1",
                    "load 1/5, one handled")  # fmt: skip
        assert cell(app, "a1", "slots") == "▣▢▢▢▢"
        assert app.model.total("active") == 1.0
        await a.send(type="close", conv=c2.conv, wrapup="resolved")
        await until(pilot, lambda: cell(app, "a1", "load") == "0/5", "load 0/5")


async def test_an_alert_fires_when_a_wait_passes_its_threshold_and_leads_to_the_chat(tmp_path: Path) -> None:
    server = await build_hub(hub_config(tmp_path, alert_queue_wait_s=0.3, alert_unanswered_s=0.3)).start()
    try:
        app = await monitor_for(server, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.model.boards > 0, "board")
            waiting = await customer(server.url, "排队的")
            await until(pilot, lambda: any(x.kind == "queue_wait" for x in app.model.alerts), "queue alert")
            assert app.rings >= 1  # type: ignore[attr-defined]
            assert any("排队过久" in n for n in notices(app))
            a = await online(server, "a1")
            await a.expect("synced")
            await waiting.say("怎么还没人回我")
            await until(pilot, lambda: any(x.kind == "unanswered" for x in app.model.alerts), "unanswered alert")
            assert any("客户久未回复" in n and "李娜" in n for n in notices(app))
            # The slot warms up on the board while nobody answers.
            await until(pilot, lambda: cell(app, "a1", "wait") != "", "a wait on the row")
            # F4, the newest alert is on top; Enter watches its chat.
            await pilot.press("f4")
            table = app.query_one(AlertsTable)
            assert table.current() is not None and table.current().kind == "unanswered"  # type: ignore[union-attr]
            assert app.unseen_alerts == 0
            await pilot.press("enter")
            await until(pilot, lambda: app.watch_info is not None and app.watch_info.conv == waiting.conv, "watching")
            await until(pilot, lambda: any(ln.text == "怎么还没人回我" for ln in app.watch_chats[waiting.conv].lines),
                        "history")  # fmt: skip
            # The agent closes it: the watch says so.
            await a.send(type="close", conv=waiting.conv, wrapup="resolved")
            await until(pilot, lambda: app.watch_state == "closed", "closed")
            assert "已结束" in str(app.query_one("#watch-head").render())
    finally:
        await server.stop()


async def test_a_whisper_reaches_only_the_agent_and_the_watched_chat_is_masked(hub: HubServer, tmp_path: Path) -> None:
    app = await monitor_for(hub, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        a = await online(hub, "a1")
        c = await customer(hub.url, "王先生")
        await a.expect("synced")
        await c.say("我的身份证110101199003074578")
        await until(pilot, lambda: "a1" in app.model.agents and cell(app, "a1", "load") == "1/5", "a1 has the chat")
        app.query_one(AgentsTable).select_agent("a1")
        await pilot.press("enter")  # the agent's chats
        await until(pilot, lambda: isinstance(app.screen, ChatPicker), "chat picker")
        await pilot.press("enter")  # watch the first
        await until(pilot, lambda: app.watch_info is not None and bool(app.watch_chats[c.conv].synced), "synced")
        transcript = app.query_one(WatchTranscript)
        await pilot.pause()
        shown = "\n".join("".join(t for t, _ in row) for row in transcript.view.rows)  # type: ignore[union-attr]
        assert "110101********4578" in shown and "110101199003074578" not in shown
        await pilot.press("f8")
        await until(pilot, lambda: isinstance(app.screen, TextDialog), "whisper dialog")
        app.screen.query_one(TextArea).insert("先核实身份再办理")
        await pilot.click("#td-go")
        note = await a.expect("msg", lambda f: f["text"] == "先核实身份再办理")
        assert note["kind"] == "note" and note["sender"] == "supervisor"
        await until(pilot, lambda: any(ln.text == "先核实身份再办理" and ln.seq for ln in app.watch_chats[c.conv].lines),
                    "whisper acked on screen")  # fmt: skip
        # The customer never sees it, not even after more traffic.
        await c.say("好的")
        await until(pilot, lambda: any(ln.text == "好的" for ln in app.watch_chats[c.conv].lines), "live line")
        assert "先核实身份再办理" not in c.texts()
        # Stop watching: the hub stops sending, and the client's cursor is gone.
        await pilot.press("ctrl+w")
        assert not app.watch_conv and c.conv not in app.client.state.cursors  # type: ignore[union-attr]


async def test_reassign_respects_the_five_chat_cap(hub: HubServer, tmp_path: Path) -> None:
    app = await monitor_for(hub, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        a1 = await online(hub, "a1")
        full = [await customer(hub.url, f"客户{i}") for i in range(5)]
        for c in full:
            await c.expect("state", lambda f: f["state"] == "assigned")
        await online(hub, "a2")
        sixth = await customer(hub.url, "孙先生")
        await sixth.expect("state", lambda f: f["state"] == "assigned")
        await until(pilot, lambda: {"a1", "a2"} <= set(app.model.agents) and cell(app, "a1", "load") == "5/5"
                    and cell(app, "a2", "load") == "1/5", "5/5 and 1/5")  # fmt: skip
        # From a2's chat, the reassign picker offers nobody: a1 is full.
        app.query_one(AgentsTable).select_agent("a2")
        await pilot.press("f9")
        await until(pilot, lambda: isinstance(app.screen, ChatPicker), "chat picker")
        await pilot.press("f9")
        await until(pilot, lambda: isinstance(app.screen, TargetPicker), "target picker")
        assert app.screen.targets == []  # type: ignore[attr-defined]
        await pilot.press("escape")
        # Even when asked (a stale board), the hub refuses, and the monitor says so.
        app.asked["reassign"] = "a1"
        await app.send(p.Reassign(conv=sixth.conv, agent="a1"))
        await until(pilot, lambda: any("没有空位" in n for n in notices(app)), "refusal shown")
        assert len(hub.hub.router.agents["a1"].chats) == 5
        # The other way works: one of a1's chats goes to a2 (picked in the UI).
        app.query_one(AgentsTable).select_agent("a1")
        await pilot.press("f9")
        await until(pilot, lambda: isinstance(app.screen, ChatPicker), "a1's chats")
        moved = app.screen.convs[0]  # type: ignore[attr-defined]
        await pilot.press("f9")
        await until(pilot, lambda: isinstance(app.screen, TargetPicker), "targets")
        assert [t.row.id for t in app.screen.targets] == ["a2"]  # type: ignore[attr-defined]
        await pilot.press("enter")
        await a1.expect("unassigned", lambda f: f["conv"] == moved)
        await until(pilot, lambda: cell(app, "a1", "load") == "4/5" and cell(app, "a2", "load") == "2/5", "moved")
        assert any("已改派给" in n for n in notices(app))


def options(app: SupervisorMonitor) -> list[str]:
    """The rows of the open picker's list, as plain text."""
    return [str(o.prompt) for o in app.screen.query_one(OptionList).options]


async def test_a_waiting_chat_is_picked_in_the_queues_tab_and_reassigned_within_the_cap(
    hub: HubServer, tmp_path: Path
) -> None:
    """F2, Enter on a queue: its waiting chats (name, group, wait, priority); Enter, an agent with room: reassigned."""
    app = await monitor_for(hub, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        a1 = await online(hub, "a1", max_chats=1)  # general, full with one chat
        busy = await customer(hub.url, "赵先生")
        await busy.expect("state", lambda f: f["state"] == "assigned")
        first = await customer(hub.url, "王先生")
        elderly = await customer(hub.url, "张阿姨", flags=["elderly"])
        a2 = await online(hub, "a2", max_chats=2, groups=["cards"])  # room, but not for general chats
        await until(pilot, lambda: len(app.model.waiting_chats("general")) == 2 and "a2" in app.model.agents,
                    "two waiting on the board")  # fmt: skip
        await pilot.press("f2")
        table = app.query_one(QueuesTable)
        assert table.has_focus and table.current_group() == "cards"  # a2's group comes first
        await pilot.press("down")
        assert table.current_group() == "general"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, WaitingPicker), "the waiting chats")
        rows = options(app)
        assert len(rows) == 2 and "general 排队中（2）" in str(app.screen.query_one(".dialog-title", Label).render())
        assert rows[0].startswith("优") and "张阿姨" in rows[0] and "老" in rows[0] and "general" in rows[0]
        assert rows[1].startswith("普") and "王先生" in rows[1]
        assert all(first.conv not in r and elderly.conv not in r for r in rows)  # names, not chat ids
        assert re.search(r"\d+s", rows[0])  # how long they have waited
        await pilot.press("enter")  # reassign the first served: the elderly customer
        await until(pilot, lambda: isinstance(app.screen, TargetPicker), "targets")
        assert [t.row.id for t in app.screen.targets] == ["a2"]  # type: ignore[attr-defined]  # a1 is full
        assert "将 张阿姨（general 已排队" in str(app.screen.query_one(".dialog-title", Label).render())
        await pilot.press("enter")
        await a2.expect("assigned", lambda f: f["conv"] == elderly.conv)
        await until(pilot, lambda: [w.conv for w in app.model.waiting_chats()] == [first.conv]
                    and cell(app, "a2", "load") == "1/2", "moved off the queue")  # fmt: skip
        assert any("已改派给 王强 (a2)" in n for n in notices(app))
        # F9 on the queues tab does the same; the second fills a2 to its cap.
        await pilot.press("f9")
        await until(pilot, lambda: isinstance(app.screen, WaitingPicker), "the waiting chats again")
        await pilot.press("f9")
        await until(pilot, lambda: isinstance(app.screen, TargetPicker), "targets again")
        await pilot.press("enter")
        await a2.expect("assigned", lambda f: f["conv"] == first.conv)
        await until(pilot, lambda: cell(app, "a2", "load") == "2/2", "a2 full")
        # A third waits: nobody has room, and the hub would refuse anyway.
        third = await customer(hub.url, "钱小姐")
        await until(pilot, lambda: [w.conv for w in app.model.waiting_chats()] == [third.conv], "the third waits")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, WaitingPicker), "picker")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, TargetPicker), "no targets")
        assert app.screen.targets == []  # type: ignore[attr-defined]
        await pilot.press("escape")
        assert len(hub.hub.router.agents["a2"].chats) == 2 and len(hub.hub.router.agents["a1"].chats) == 1
        # F7 in the picker watches the waiting chat.
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, WaitingPicker), "picker")
        await pilot.press("f7")
        await until(pilot, lambda: app.watch_info is not None and app.watch_info.conv == third.conv, "watching")
        assert "排队中" in str(app.query_one("#watch-head").render())
        await a1.close()


async def test_a_waiting_chat_taken_by_an_agent_meanwhile_is_not_reassigned(hub: HubServer, tmp_path: Path) -> None:
    """Between picking a waiting chat and its new agent, the queue gives it to someone: nothing is sent."""
    app = await monitor_for(hub, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        a1 = await online(hub, "a1", max_chats=1)
        busy = await customer(hub.url, "赵先生")
        await busy.expect("state", lambda f: f["state"] == "assigned")
        waiting = await customer(hub.url, "王先生")
        await online(hub, "a2", groups=["cards"])
        await until(pilot, lambda: len(app.model.waiting_chats()) == 1, "waiting")
        await until(pilot, lambda: [t.row.id for t in app.model.reassign_targets(waiting.conv)] == ["a2"],
                    "a2 online with a free slot, on the board")  # fmt: skip
        app.pick_waiting(None)
        await until(pilot, lambda: isinstance(app.screen, WaitingPicker), "picker")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, TargetPicker), "targets")
        await a1.send(type="close", conv=busy.conv)  # a1 is free: the queue gives it the waiting chat
        await a1.expect("assigned", lambda f: f["conv"] == waiting.conv)
        await pilot.press("enter")  # a2, chosen on a picture the board has not corrected yet
        await until(pilot, lambda: any("王先生 已不在排队" in n for n in notices(app)), "told")
        assert waiting.conv in hub.hub.router.agents["a1"].chats  # the hub refused: nothing moved
        assert not hub.hub.router.agents["a2"].chats


async def test_agent_settings_change_status_and_max_chats_and_are_audited(hub: HubServer, tmp_path: Path) -> None:
    app = await monitor_for(hub, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await online(hub, "a1")
        await until(pilot, lambda: "a1" in app.model.agents, "a1 on the board")
        app.query_one(AgentsTable).select_agent("a1")
        await pilot.press("f10")
        await until(pilot, lambda: isinstance(app.screen, AgentSetDialog), "settings")
        app.screen.query_one("#as-away", RadioButton).value = True
        app.screen.query_one("#as-max-3", RadioButton).value = True
        await pilot.click("#as-save")
        await until(pilot, lambda: cell(app, "a1", "status") == "小休" and cell(app, "a1", "load") == "0/3", "away, 0/3")
        assert hub.hub.router.agents["a1"].max_chats == 3
        await hub.hub.store.barrier()
        rows = await hub.hub.store.query("SELECT actor, target FROM audit WHERE action='agent_set'")
        assert [tuple(r) for r in rows] == [("sup", "a1")]


async def test_the_audit_log_pages_back_and_filters_by_action(hub: HubServer, tmp_path: Path) -> None:
    for i in range(130):
        hub.hub.store.audit("a9", "login_failed" if i % 10 == 0 else "probe", target=f"t{i}")
    await hub.hub.store.barrier()
    app = await monitor_for(hub, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.conn == "online", "online")
        await pilot.press("f5")
        table = app.query_one(AuditTable)
        await until(pilot, lambda: table.row_count == 100, "the newest page")
        await pilot.click("#audit-older")
        await until(pilot, lambda: table.row_count > 130, "and the one before")
        assert table.ids == sorted(table.ids, reverse=True) and len(set(table.ids)) == len(table.ids)
        assert "已到最早" in str(app.query_one("#audit-count").render())
        app.query_one("#audit-action", Input).value = "login_failed"
        app.query_one("#audit-action", Input).focus()
        await pilot.press("enter")
        await until(pilot, lambda: table.row_count == 13, "filtered")
        assert {table.get_row_at(i)[3].plain for i in range(13)} == {"login_failed"}


async def test_the_audit_tab_shows_new_entries_by_itself_even_after_a_lost_answer(
    hub: HubServer, tmp_path: Path
) -> None:
    """New entries appear on top while the tab is shown; a request whose answer never
    came (a frame the hub refused) is given up, so the refresh does not stop for good."""
    app = await monitor_for(hub, tmp_path)
    app.config.audit_every_s = 0.2
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.conn == "online", "online")
        await pilot.press("f5")
        table = app.query_one(AuditTable)
        await until(pilot, lambda: table.row_count > 0, "the newest page")
        app.audit_asked.append(("newer", app.clock() - 60))  # its answer was lost
        hub.hub.store.audit("a9", "login_failed", target="late")
        await until(pilot, lambda: any(e.target == "late" for e in table.entries.values()), "the new entry", 8)
        assert table.get_row_at(0)[3].plain == "login_failed"  # on top
        assert not any(t < app.clock() - 30 for _, t in app.audit_asked)


async def test_a_team_phrase_published_from_the_monitor_reaches_agents(hub: HubServer, tmp_path: Path) -> None:
    app = await monitor_for(hub, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        a = await online(hub, "a1")
        await until(pilot, lambda: app.conn == "online", "online")
        await pilot.press("ctrl+n")
        await until(pilot, lambda: isinstance(app.screen, TeamPhraseEditor), "editor")
        app.screen.query_one("#te-code", Input).value = "xyk"
        app.screen.query_one("#te-title", Input).value = "信用卡年费"
        app.screen.query_one("#te-text", TextArea).insert("{customer}您好，年费可在刷卡满6次后减免。")
        await pilot.click("#te-save")
        changed = await a.expect("phrase_changed")
        assert changed["phrase"]["scope"] == "team" and changed["phrase"]["code"] == "xyk"
        await until(pilot, lambda: any("团队短语已发布" in n for n in notices(app)), "confirmed")
        # Ctrl+R reloads the bot's knowledge base; this hub has none, and says so.
        await pilot.press("ctrl+r")
        await until(pilot, lambda: any("kb_invalid" in n for n in notices(app)), "refused")


async def test_wrong_password_and_agent_accounts_are_sent_back_to_the_login_screen(hub: HubServer, tmp_path: Path) -> None:
    app = await monitor_for(hub, tmp_path, password="wrong")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, LoginScreen), "login screen")
        assert "登录失败" in str(app.screen.query_one("#login-error").render())
    await hub.hub.add_user("a1", "李娜", "pw")
    app = await monitor_for(hub, tmp_path, user="a1")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, LoginScreen), "login screen")
        assert "不是主管账号" in str(app.screen.query_one("#login-error").render())


async def test_the_monitor_reconnects_after_a_hub_restart_and_watches_again(tmp_path: Path) -> None:
    server = await build_hub(hub_config(tmp_path)).start()
    app = await monitor_for(server, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        a = await online(server, "a1")
        c = await customer(server.url, "王先生")
        await a.expect("synced")
        await c.say("第一句")
        await until(pilot, lambda: "a1" in app.model.agents and app.model.conv_agent.get(c.conv) == "a1", "board")
        app.watch(c.conv)
        await until(pilot, lambda: c.conv in app.watch_chats and app.watch_chats[c.conv].synced, "watching")
        port = server.port
        await server.stop()
        await until(pilot, lambda: app.conn != "online", "link lost")
        server = await build_hub(hub_config(tmp_path, port=port)).start()
        try:
            await until(pilot, lambda: app.conn == "online", "back", timeout=10)
            back = await Client.connect(server.url)
            await back.send(type="hello", name="王先生", resume_token=c.token, last_seq=0)
            await back.expect("synced")
            await back.send(type="send", conv=c.conv, msg_id="after", text="重启后第二句")
            chat = app.watch_chats[c.conv]
            await until(pilot, lambda: any(ln.text == "重启后第二句" for ln in chat.lines), "live again")
            texts = [ln.text for ln in chat.lines if ln.sender == "customer"]
            assert texts == ["第一句", "重启后第二句"]  # the replayed history is not doubled
            assert "a1" in app.model.agents
        finally:
            await server.stop()
