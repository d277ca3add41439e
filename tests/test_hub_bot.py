"""The bot stage inside a real hub: answers first, hands off well, learns what it missed."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from server.bot import DEFAULT_KB_PATH
from server.net import HubServer, build_hub

from .conftest import hub_config
from .helpers import Client, agent, customer, wait_until


@pytest.fixture
async def bot_hub(tmp_path: Path) -> AsyncIterator[HubServer]:
    kb = tmp_path / "kb.yaml"
    shutil.copy(DEFAULT_KB_PATH, kb)
    server = await build_hub(hub_config(tmp_path, kb_path=kb, maintenance_s=0.1)).start()
    try:
        yield server
    finally:
        await server.stop()


async def online(hub: HubServer, user: str, groups: list[str]) -> Client:
    await hub.hub.add_user(user, user, "pw", groups=groups)
    a = await agent(hub.url, user)
    await a.send(type="set_status", status="online")
    await a.expect("status", lambda f: f["status"] == "online")
    return a


async def bot_reply(c: Client, after: int) -> dict:
    return await c.expect("msg", lambda f: f["sender"] == "bot", start=after)


async def test_the_bot_greets_answers_and_hands_off_with_the_transcript(bot_hub: HubServer) -> None:
    c = await customer(bot_hub.url, "王先生")
    greeting = await bot_reply(c, 0)
    assert "人工" in greeting["text"]
    mark = len(c.frames)
    await c.say("我的卡被ATM吞了怎么办")
    answer = await bot_reply(c, mark)
    assert "ATM" in answer["text"] or "吞" in answer["text"]
    assert bot_hub.hub.convs[c.conv].rec.state == "bot"
    a = await online(bot_hub, "a1", ["cards", "general"])
    assert not a.of("assigned")  # the bot still has it: nobody asked for a person
    await c.say("转人工")
    card = await a.expect("assigned")
    assert card["handoff"]["reason"] == "customer_asked"
    assert card["handoff"]["group"] == "cards"  # the topic's owner, not the default queue
    assert "card-swallowed-atm" in card["handoff"]["intents"]
    await a.expect("synced")
    kinds = [(f["sender"], f["kind"]) for f in a.of("msg")]
    assert ("bot", "bot") in kinds and ("customer", "text") in kinds  # the bot part came along


async def test_an_urgent_intent_jumps_to_the_owning_group_with_urgent_priority(bot_hub: HubServer) -> None:
    calm = [await customer(bot_hub.url, f"排队{i}") for i in range(2)]
    for c in calm:
        await c.say("人工")
        await c.expect("state", lambda f: f["state"] == "queued")
    lost = await customer(bot_hub.url, "李女士")
    mark = len(lost.frames)
    await lost.say("我的银行卡丢了，快帮我挂失")
    await bot_reply(lost, mark)  # the safe first step comes at once
    await lost.expect("state", lambda f: f["state"] == "queued")
    chat = bot_hub.hub.router.chats[lost.conv]
    assert chat.group == "cards" and chat.klass == 0
    a = await online(bot_hub, "a1", ["cards"])
    card = await a.expect("assigned")
    assert card["conv"] == lost.conv and card["handoff"]["priority"] == "urgent"
    assert card["handoff"]["reason"] == "urgent"


async def test_two_misses_in_a_row_hand_off_and_misses_are_recorded(bot_hub: HubServer) -> None:
    c = await customer(bot_hub.url)
    for q in ("你们食堂今天吃什么", "给我讲个笑话吧"):
        mark = len(c.frames)
        await c.say(q)
        await bot_reply(c, mark)
    await c.expect("state", lambda f: f["state"] == "queued")
    assert bot_hub.hub.convs[c.conv].rec.handoff["reason"] == "misses"
    assert bot_hub.hub.convs[c.conv].rec.handoff["bot_misses"] == 2
    other = await customer(bot_hub.url)
    mark = len(other.frames)
    await other.say("你们食堂今天吃什么？")  # the same question, punctuated differently
    await bot_reply(other, mark)
    await bot_hub.hub.add_user("sup", "主管", "pw", role="supervisor")
    s = await agent(bot_hub.url, "sup")
    await bot_hub.hub.store.barrier()
    await s.send(type="bot_misses_get")
    rows = (await s.expect("bot_misses"))["rows"]
    assert rows[0][0].startswith("你们食堂今天吃什么") and rows[0][1] == 2
    assert any(r[0] == "给我讲个笑话吧" and r[1] == 1 for r in rows)


async def test_an_upset_customer_goes_to_complaints(bot_hub: HubServer) -> None:
    c = await customer(bot_hub.url)
    await c.say("你们这服务太差了，我要投诉！！！")
    await c.expect("state", lambda f: f["state"] == "queued")
    rec = bot_hub.hub.convs[c.conv].rec
    assert rec.handoff["reason"] == "upset" and bot_hub.hub.router.chats[c.conv].group == "complaints"


async def test_chatting_with_the_bot_while_queued_keeps_the_place(bot_hub: HubServer) -> None:
    first = await customer(bot_hub.url, "第一位")
    second = await customer(bot_hub.url, "第二位")
    for c in (first, second):
        await c.say("人工")
    await second.expect("queue", lambda f: f["position"] == 2)
    mark = len(first.frames)
    await first.say("信用卡怎么还款")
    reply = await bot_reply(first, mark)
    assert "还款" in reply["text"]
    assert bot_hub.hub.router.position(first.conv) == 1
    assert bot_hub.hub.router.position(second.conv) == 2
    mark = len(first.frames)
    await first.say("还要等多久")
    assert "1" in (await bot_reply(first, mark))["text"]
    a = await online(bot_hub, "a1", ["general"])
    assert (await a.expect("assigned"))["conv"] == first.conv


async def test_a_knowledge_base_edit_is_picked_up_by_the_next_question(bot_hub: HubServer, tmp_path: Path) -> None:
    c = await customer(bot_hub.url)
    question = "你们的保险箱怎么租"
    mark = len(c.frames)
    await c.say(question)
    assert "无法回答" in (await bot_reply(c, mark))["text"]
    kb_file = tmp_path / "kb.yaml"
    data = yaml.safe_load(kb_file.read_text(encoding="utf-8"))
    data["entries"].append({
        "id": "safe-deposit-box", "group": "general", "flags": [],
        "title": {"zh": "保险箱租赁", "en": "Safe deposit boxes"},
        "keywords": {"zh": ["保险箱"], "en": ["safe deposit box"]},
        "questions": {"zh": ["保险箱怎么租", "想租个保险箱", "保险箱租金多少"], "en": ["How do I rent a safe deposit box?"]},
        "answer": {"zh": "保险箱租赁请携带身份证到开办该业务的网点办理，租金按箱型收取。",
                   "en": "Bring your ID to a branch that offers safe deposit boxes; the fee depends on the size."},
    })  # fmt: skip
    kb_file.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    await wait_until(lambda: "safe-deposit-box" in {e.id for e in bot_hub.hub.bot.kb.entries}, what="reload")
    other = await customer(bot_hub.url)
    mark = len(other.frames)
    await other.say(question)
    assert "网点" in (await bot_reply(other, mark))["text"]


async def test_a_broken_knowledge_base_is_refused_and_the_old_one_kept(bot_hub: HubServer, tmp_path: Path) -> None:
    await bot_hub.hub.add_user("sup", "主管", "pw", role="supervisor")
    s = await agent(bot_hub.url, "sup")
    before = bot_hub.hub.bot
    (tmp_path / "kb.yaml").write_text("entries: [ {id: x} ]", encoding="utf-8")
    await s.send(type="kb_reload")
    err = await s.expect("error", lambda f: f["ref"] == "kb_reload")
    assert err["code"] == "kb_invalid"
    assert bot_hub.hub.bot is before
    c = await customer(bot_hub.url)
    mark = len(c.frames)
    await c.say("ATM吞卡了")
    assert (await bot_reply(c, mark))["text"]
    rows = await bot_hub.hub.store.query("SELECT action, actor FROM audit WHERE action LIKE 'kb_%' ORDER BY id")
    assert ("kb_reload_failed", "sup") in [tuple(r) for r in rows]
