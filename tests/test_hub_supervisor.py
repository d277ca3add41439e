"""The hub side of the supervisor monitor: board, alerts, watch, whisper,
reassign, agent settings, audit browsing, and the weekly report."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

from server import report
from server.net import HubServer, build_hub

from .conftest import hub_config
from .helpers import Client, agent, customer, wait_until


async def online(hub: HubServer, user: str, max_chats: int = 5, groups: list[str] | None = None) -> Client:
    await hub.hub.add_user(user, f"坐席{user}", "pw", groups=groups or ["general"], max_chats=max_chats)
    a = await agent(hub.url, user)
    await a.send(type="set_status", status="online")
    await a.expect("status", lambda f: f["status"] == "online")
    return a


async def supervisor(hub: HubServer) -> Client:
    if "sup" not in hub.hub.users:
        await hub.hub.add_user("sup", "主管", "pw", role="supervisor")
    s = await agent(hub.url, "sup")
    await s.expect("board", lambda f: f["full"])
    return s


def row(board_frames: list[dict], agent_id: str) -> dict | None:
    for frame in reversed(board_frames):
        for r in frame["agents"]:
            if r["id"] == agent_id:
                return r
    return None


async def test_the_board_shows_load_handled_and_figures_as_chats_come_and_go(hub: HubServer) -> None:
    s = await supervisor(hub)
    a = await online(hub, "a1")
    c1, c2 = await customer(hub.url), await customer(hub.url)
    await s.expect("board", lambda f: any(r["id"] == "a1" and r["load"] == 2 for r in f["agents"]))
    await a.expect("synced", lambda f: f["conv"] == c2.conv)
    await c1.say("在吗")
    await a.say("在的，请讲", conv=c1.conv)
    await a.send(type="close", conv=c1.conv, wrapup="resolved")
    await c1.expect("rating_request")
    await c1.send(type="rate", conv=c1.conv, score="very_satisfied")
    await c1.expect("ok")
    got = await s.expect("board", lambda f: any(r["id"] == "a1" and r["load"] == 1 and r["handled"] == 1
                                                and r["satisfaction"] == 1.0 for r in f["agents"]))  # fmt: skip
    r = next(r for r in got["agents"] if r["id"] == "a1")
    assert r["first_response_p50_s"] is not None and r["handle_p50_s"] is not None
    totals = (await s.expect("board", lambda f: f["totals"].get("sat_very_satisfied") == 1.0))["totals"]
    assert totals["asked"] == 2 and totals["answered"] == 2 and totals["answer_rate"] == 1.0
    assert totals["fcr_rate"] == 1.0


async def test_alerts_fire_when_waits_pass_their_thresholds(tmp_path: Path) -> None:
    server = await build_hub(hub_config(tmp_path, alert_queue_wait_s=0.3, alert_unanswered_s=0.3)).start()
    try:
        s = await supervisor(server)
        waiting = await customer(server.url, "排队的")
        alert = await s.expect("board", lambda f: any(x["kind"] == "queue_wait" for x in f["alerts"]))
        assert next(x for x in alert["alerts"] if x["kind"] == "queue_wait")["conv"] == waiting.conv
        a = await online(server, "a1")
        await a.expect("synced")
        await waiting.say("怎么还没人回我")
        got = await s.expect("board", lambda f: any(x["kind"] == "unanswered" for x in f["alerts"]))
        assert next(x for x in got["alerts"] if x["kind"] == "unanswered")["who"] == "a1"
        # the slot's wait shows on the agent's row, growing
        await s.expect("board", lambda f: any(r["id"] == "a1" and r["chats"].get(waiting.conv, 0) > 0.3
                                              for r in f["agents"]))  # fmt: skip
    finally:
        await server.stop()


async def test_the_board_names_each_chats_customer_once_and_alerts_name_theirs(tmp_path: Path) -> None:
    server = await build_hub(hub_config(tmp_path, alert_unanswered_s=0.3)).start()
    try:
        s = await supervisor(server)
        a = await online(server, "a1")
        c1 = await customer(server.url, "王先生")
        named = await s.expect("board", lambda f: any(r["id"] == "a1" and c1.conv in r["chats"] for r in f["agents"]))
        assert next(r for r in named["agents"] if r["id"] == "a1")["customers"] == {c1.conv: "王先生"}
        await a.expect("synced", lambda f: f["conv"] == c1.conv)
        c2 = await customer(server.url, "李女士")
        got = await s.expect("board", lambda f: any(r["id"] == "a1" and c2.conv in r["chats"] for r in f["agents"]))
        # the row that adds 李女士 names her only: 王先生 was named before
        assert next(r for r in got["agents"] if r["id"] == "a1")["customers"] == {c2.conv: "李女士"}
        await c1.say("在吗？")  # unanswered: the wait grows, the row goes out again without names
        alert = await s.expect("board", lambda f: any(x["kind"] == "unanswered" for x in f["alerts"]))
        assert next(x for x in alert["alerts"] if x["kind"] == "unanswered")["customer"] == "王先生"
        quiet = await s.expect("board", lambda f: any(r["id"] == "a1" and r["chats"].get(c1.conv, 0) > 0
                                                      for r in f["agents"]))  # fmt: skip
        assert "customers" not in next(r for r in quiet["agents"] if r["id"] == "a1")
        # a supervisor who joins now gets every name on the full board
        late = await agent(server.url, "sup")
        full = await late.expect("board", lambda f: f["full"])
        assert next(r for r in full["agents"] if r["id"] == "a1")["customers"] == {c1.conv: "王先生", c2.conv: "李女士"}
    finally:
        await server.stop()


async def test_a_name_is_not_lost_when_a_chat_moves_while_nobody_watches(hub: HubServer) -> None:
    """Rows are not pushed while no supervisor watches: a chat that left an agent then
    and comes back later is named again, whatever rows were pushed in between."""
    s = await supervisor(hub)
    a1, a2 = await online(hub, "a1"), await online(hub, "a2")
    await a1.send(type="set_status", status="away")  # the chat goes to a2
    await a1.expect("status", lambda f: f["status"] == "away")
    c = await customer(hub.url, "王先生")
    await s.expect("board", lambda f: any(r["id"] == "a2" and r.get("customers") == {c.conv: "王先生"}
                                          for r in f["agents"]))  # fmt: skip
    await s.close()
    await wait_until(lambda: not hub.hub.supervisors, what="the supervisor gone")
    await a1.send(type="set_status", status="online")
    await a1.expect("status", lambda f: f["status"] == "online")
    await a2.send(type="transfer", conv=c.conv, agent="a1")
    await a1.expect("assigned", lambda f: f["conv"] == c.conv)
    s = await agent(hub.url, "sup")
    full = await s.expect("board", lambda f: f["full"])
    assert next(r for r in full["agents"] if r["id"] == "a1")["customers"] == {c.conv: "王先生"}
    await a1.send(type="raise_hand", conv=c.conv, note="")  # a push with a1's row only
    await s.expect("board", lambda f: not f["full"] and [r["id"] for r in f["agents"]] == ["a1"])
    await s.send(type="reassign", conv=c.conv, agent="a2")
    back = await s.expect("board", lambda f: any(r["id"] == "a2" and c.conv in r["chats"] for r in f["agents"]))
    assert next(r for r in back["agents"] if r["id"] == "a2")["customers"] == {c.conv: "王先生"}


async def test_a_raised_hand_about_a_chat_that_is_not_the_agents_names_no_customer(hub: HubServer) -> None:
    s = await supervisor(hub)
    a1, a2 = await online(hub, "a1"), await online(hub, "a2")
    await a1.send(type="set_status", status="away")
    await a1.expect("status", lambda f: f["status"] == "away")
    c = await customer(hub.url, "王先生")  # a2's
    await a2.expect("assigned", lambda f: f["conv"] == c.conv)
    await a1.send(type="raise_hand", conv=c.conv, note="帮忙")
    await a1.expect("ok", lambda f: f["ref"] == "raise_hand")
    got = await s.expect("board", lambda f: any(x["kind"] == "raised_hand" for x in f["alerts"]))
    hand = next(x for x in got["alerts"] if x["kind"] == "raised_hand")
    assert hand["who"] == "a1" and "conv" not in hand and "customer" not in hand


async def test_a_burst_of_failed_logins_raises_an_alert(hub: HubServer) -> None:
    s = await supervisor(hub)
    for i in range(5):
        c = await Client.connect(hub.url)
        await c.send(type="login", user=f"guess{i}", password="x")
        await c.expect("error")
    await s.expect("board", lambda f: any(x["kind"] == "failed_login_burst" for x in f["alerts"]))


async def test_whisper_reaches_only_the_agent_and_watch_is_read_only(hub: HubServer) -> None:
    s = await supervisor(hub)
    a = await online(hub, "a1")
    c = await customer(hub.url, "王先生")
    await a.expect("synced")
    await c.say("我的身份证110101199003074578")
    await s.send(type="watch", conv=c.conv)
    w = await s.expect("watching")
    assert w["agent"] == "a1" and w["customer"]["name"] == "王先生"
    await s.expect("synced", lambda f: f["conv"] == c.conv)
    assert any("110101199003074578" in f["text"] for f in s.of("msg"))  # masked on screen by the monitor
    await s.send(type="whisper", conv=c.conv, msg_id="w1", text="先核实身份再办理")
    await s.expect("ack", lambda f: f["msg_id"] == "w1")
    note = await a.expect("msg", lambda f: f["text"] == "先核实身份再办理")
    assert note["kind"] == "note" and note["sender"] == "supervisor"
    await c.say("好的")
    await s.expect("msg", lambda f: f["text"] == "好的")  # live after the history
    assert "先核实身份再办理" not in c.texts()
    # read-only: a supervisor cannot write to the customer
    await s.send(type="send", conv=c.conv, msg_id="x", text="hi")
    assert (await s.expect("error", lambda f: f["ref"] == "send"))["code"] == "forbidden"
    rows = await hub.hub.store.query("SELECT action FROM audit WHERE actor='sup' ORDER BY id")
    assert [r[0] for r in rows if r[0] != "login"] == ["watch", "whisper"]


async def test_reassign_respects_the_five_chat_cap(hub: HubServer) -> None:
    s = await supervisor(hub)
    a1 = await online(hub, "a1")
    cs = [await customer(hub.url, f"客户{i}") for i in range(6)]
    for c in cs[:5]:
        await c.expect("state", lambda f: f["state"] == "assigned")
    a2 = await online(hub, "a2", max_chats=5, groups=["other"])
    for c in cs[:5]:  # fill a2 to its cap by hand
        await s.send(type="reassign", conv=c.conv, agent="a2")
        await s.expect("ok", lambda f, c=c: f["ref"] == "reassign" and f["conv"] == c.conv)
    assert len(hub.hub.router.agents["a2"].chats) == 5
    await s.send(type="reassign", conv=cs[5].conv, agent="a2")  # the waiting sixth
    err = await s.expect("error", lambda f: f.get("conv") == cs[5].conv)
    assert err["code"] == "agent_unavailable"
    assert len(hub.hub.router.agents["a2"].chats) == 5
    hub.hub.router.check_invariants()
    await a2.expect("assigned", lambda f: f["conv"] == cs[4].conv)
    await a1.expect("unassigned", lambda f: f["conv"] == cs[4].conv and f["reason"] == "reassigned")


async def test_the_board_lists_the_waiting_chats_in_serving_order_but_the_directory_does_not(hub: HubServer) -> None:
    """Queue rows carry each waiting chat (name, priority, wait) for supervisors only."""
    s = await supervisor(hub)
    first = await customer(hub.url, "王先生")
    elderly = await customer(hub.url, "张阿姨", flags=["elderly"])
    last = await customer(hub.url, "李女士")
    board = await s.expect("board", lambda f: any(q["group"] == "general" and len(q.get("chats", [])) == 3
                                                  for q in f["queues"]))  # fmt: skip
    q = next(q for q in board["queues"] if q["group"] == "general")
    assert [c["conv"] for c in q["chats"]] == [elderly.conv, first.conv, last.conv]  # as they will be served
    assert q["chats"][0]["customer"] == "张阿姨" and q["chats"][0]["priority"] == "priority"
    assert q["chats"][0]["flags"] == ["elderly"] and q["chats"][1]["priority"] == "normal"
    assert all(c["wait_s"] >= 0 for c in q["chats"])
    a = await online(hub, "a1", max_chats=1, groups=["cards"])  # another group: takes none by itself
    await s.send(type="reassign", conv=first.conv, agent="a1")
    await s.expect("ok", lambda f: f["ref"] == "reassign" and f["conv"] == first.conv)
    await a.expect("assigned", lambda f: f["conv"] == first.conv)
    board = await s.expect("board", lambda f: any(q["group"] == "general" and len(q.get("chats", [])) == 2
                                                  for q in f["queues"]))  # fmt: skip
    q = next(q for q in board["queues"] if q["group"] == "general")
    assert [c["conv"] for c in q["chats"]] == [elderly.conv, last.conv]
    await a.send(type="directory_get")
    directory = await a.expect("directory")
    assert directory["groups"] and all(not g.get("chats") for g in directory["groups"])


async def test_a_supervisor_changes_an_agents_status_and_cap(hub: HubServer) -> None:
    s = await supervisor(hub)
    a = await online(hub, "a1")
    await s.send(type="agent_set", agent="a1", max_chats=1)
    await s.expect("ok", lambda f: f["ref"] == "agent_set")
    await a.expect("status", lambda f: f["max_chats"] == 1)
    c1, c2 = await customer(hub.url), await customer(hub.url)
    await c2.expect("queue")
    assert len(hub.hub.router.agents["a1"].chats) == 1
    await s.send(type="agent_set", agent="a1", status="away")
    await a.expect("status", lambda f: f["status"] == "away")
    await s.send(type="audit_get", limit=10, action="agent_set")
    rows = (await s.expect("audit_rows"))["rows"]
    assert [r["action"] for r in rows] == ["agent_set", "agent_set"] and rows[0]["id"] > rows[1]["id"]
    assert c1.conv in hub.hub.router.agents["a1"].chats


async def test_the_weekly_report_matches_the_database(tmp_path: Path) -> None:
    server = await build_hub(hub_config(tmp_path)).start()
    try:
        a = await online(server, "a1")
        outcomes = ["very_satisfied", "dissatisfied", "satisfied", "dissatisfied"]
        for i, score in enumerate(outcomes):
            c = await customer(server.url, f"客户{i}")
            await a.expect("synced", lambda f, c=c: f["conv"] == c.conv)
            await c.say(f"问题{i}，手机13812345678")
            await a.say("已处理", conv=c.conv)
            await a.send(type="close", conv=c.conv, wrapup="card-lost" if i % 2 else "resolved")
            await c.expect("rating_request")
            await c.send(type="rate", conv=c.conv, score=score, comment="太慢了" if score == "dissatisfied" else "")
            await c.expect("ok")
        await server.hub.store.barrier()
    finally:
        await server.stop()
    out = tmp_path / "review"
    today = date.today()
    counts = await report.write_report(tmp_path / "hub.db", today, today, out)
    assert counts == {"agent_days": 1, "days": 1, "dissatisfied": 2}
    with (out / "agents.csv").open(encoding="utf-8-sig") as fh:
        agents = list(csv.DictReader(fh))
    assert agents[0]["agent"] == "a1" and agents[0]["handled"] == "4"
    assert (agents[0]["very_satisfied"], agents[0]["satisfied"], agents[0]["dissatisfied"]) == ("1", "1", "2")
    with (out / "dissatisfied.csv").open(encoding="utf-8-sig") as fh:
        unhappy = list(csv.DictReader(fh))
    assert [u["wrapup_code"] for u in unhappy] == ["card-lost", "card-lost"] and unhappy[0]["comment"] == "太慢了"
    transcript = (out / unhappy[0]["transcript"]).read_text(encoding="utf-8")
    assert "已处理" in transcript and "13812345678" not in transcript
    with (out / "days.csv").open(encoding="utf-8-sig") as fh:
        day = next(csv.DictReader(fh))
    assert (day["started"], day["answered"], day["dissatisfied"]) == ("4", "4", "2")


async def test_a_reassign_of_a_waiting_chat_never_takes_it_from_the_agent_it_went_to(hub: HubServer) -> None:
    """waiting_only: the supervisor picked it from the waiting list; if the queue gave it to an agent
    meanwhile, the hub answers not_waiting and the chat stays where it is."""
    s = await supervisor(hub)
    a1 = await online(hub, "a1")
    await online(hub, "a2")
    c = await customer(hub.url, "王先生")
    await a1.expect("assigned", lambda f: f["conv"] == c.conv)  # it did not wait long
    await s.send(type="reassign", conv=c.conv, agent="a2", waiting_only=True)
    refused = await s.expect("error", lambda f: f["ref"] == "reassign")
    assert refused["code"] == "not_waiting" and "a1" in refused["message"]
    assert hub.hub.router.agents["a1"].chats == {c.conv} and not hub.hub.router.agents["a2"].chats
