"""The phrasebook through the hub: stored, private where it should be, pushed live."""

from __future__ import annotations

from pathlib import Path

from phrasebook import team_library_path
from server import admin
from server.net import HubServer, build_hub

from .conftest import hub_config
from .helpers import Client, agent


async def staff(hub: HubServer, user: str, role: str = "agent") -> Client:
    if user not in hub.hub.users:
        await hub.hub.add_user(user, user, "pw", role=role)
    c = await agent(hub.url, user)
    await c.send(type="phrases_get")
    await c.expect("phrases")
    return c


def draft(code: str, text: str, **kw: object) -> dict[str, object]:
    return {"code": code, "title": kw.pop("title", f"我的{code}"), "text": text, **kw}


async def test_a_personal_phrase_is_the_owners_alone(hub: HubServer) -> None:
    a1 = await staff(hub, "a1")
    a2 = await staff(hub, "a2")
    await a1.send(type="phrase_save", phrase=draft("wxf", "{customer}您好，请稍等，我帮您查一下挂失进度。"))
    await a1.expect("ok", lambda f: f["ref"] == "phrase_save")
    changed = await a1.expect("phrase_changed")
    assert changed["phrase"]["owner"] == "a1" and changed["phrase"]["scope"] == "personal"
    assert not a2.of("phrase_changed")
    start = len(a2.frames)
    await a2.send(type="phrases_get")
    listing = (await a2.expect("phrases", start=start))["phrases"]
    assert all(ph["owner"] != "a1" for ph in listing)
    # a2 can neither edit nor delete it, and is told the same as for a missing phrase
    await a2.send(type="phrase_delete", id=changed["id"])
    assert (await a2.expect("error"))["code"] == "unknown_phrase"
    await a2.send(type="phrase_save", phrase=draft("wxf", "改掉", id=changed["id"]))
    assert (await a2.expect("error", lambda f: f["ref"] == "phrase_save"))["code"] == "unknown_phrase"
    # Agents cannot publish team phrases.
    await a1.send(type="phrase_save", phrase=draft("team1", "大家好", scope="team"))
    assert (await a1.expect("error", lambda f: f["ref"] == "phrase_save"))["code"] == "forbidden"


async def test_a_published_team_change_reaches_every_connected_desk(hub: HubServer) -> None:
    sup = await staff(hub, "sup", role="supervisor")
    a1 = await staff(hub, "a1")
    a2 = await staff(hub, "a2")
    await sup.send(type="phrase_save", phrase=draft("sdcx", "稍等，正在为您查询[[业务类型]]的办理进度。",
                                                       scope="team", title="查询进度", tags=["稍等"]))
    await sup.expect("ok", lambda f: f["ref"] == "phrase_save")
    for desk in (a1, a2):
        got = await desk.expect("phrase_changed")
        assert got["phrase"]["code"] == "sdcx" and got["phrase"]["scope"] == "team"
    await sup.send(type="phrase_delete", id=got["id"])
    for desk in (a1, a2):
        await desk.expect("phrase_changed", lambda f: f["deleted"])
    rows = await hub.hub.store.query("SELECT action FROM audit WHERE action LIKE 'phrase_%' ORDER BY id")
    assert [r[0] for r in rows] == ["phrase_publish", "phrase_delete"]


async def test_bad_phrases_are_refused_with_the_reason(hub: HubServer) -> None:
    a1 = await staff(hub, "a1")
    await a1.send(type="phrase_save", phrase=draft("BAD CODE", "x"))
    err = await a1.expect("error", lambda f: f["ref"] == "phrase_save")
    assert err["code"] == "bad_phrase" and "code" in err["message"]
    await a1.send(type="phrase_save", phrase=draft("ok1", "您好{custmer}"))
    err = await a1.expect("error", lambda f: f["ref"] == "phrase_save" and "custmer" in f["message"])
    await a1.send(type="phrase_save", phrase=draft("dup", "第一条"))
    await a1.expect("ok")
    await a1.send(type="phrase_save", phrase={**draft("dup", "第二条"), "title": "另一个"})
    # same code, same language, same owner: the same id, so it is an edit, not a clash
    await a1.expect("phrase_changed", lambda f: f["phrase"]["text"] == "第二条")


async def test_a_cli_import_while_the_hub_runs_is_pushed_live(tmp_path: Path) -> None:
    server = await build_hub(hub_config(tmp_path, maintenance_s=0.1)).start()
    try:
        a1 = await staff(server, "a1")
        written, _ = await admin.import_phrases(server.hub.config.db_path, team_library_path())
        assert written >= 180
        await a1.expect("phrase_changed", lambda f: f["phrase"] and f["phrase"]["code"] == "gs")
        await a1.send(type="phrases_get")
        await a1.expect("phrases", lambda f: len(f["phrases"]) == written)
    finally:
        await server.stop()


async def test_usage_is_kept_per_agent_and_survives_a_restart(tmp_path: Path) -> None:
    cfg = hub_config(tmp_path)
    await admin.import_phrases(cfg.db_path, team_library_path())
    server = await build_hub(cfg).start()
    try:
        a1 = await staff(server, "a1")
        listing = a1.of("phrases")[-1]["phrases"]
        pid = next(ph["id"] for ph in listing if ph["code"] == "sd" and ph["lang"] == "zh")
        for _ in range(3):
            await a1.send(type="phrase_used", id=pid)
        await a1.send(type="phrase_used", id="team:nope:zh")
        assert (await a1.expect("error"))["code"] == "unknown_phrase"
        await server.hub.store.barrier()
    finally:
        await server.stop()
    server = await build_hub(cfg).start()
    try:
        a1 = await staff(server, "a1")
        usage = {row[0]: row[1] for row in a1.of("phrases")[-1]["usage"]}
        assert usage == {pid: 3}
        a2 = await staff(server, "a2")
        assert a2.of("phrases")[-1]["usage"] == []
    finally:
        await server.stop()


async def test_cli_import_export_round_trips(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    n, _ = await admin.import_phrases(db, team_library_path())
    out = tmp_path / "team.csv"
    assert await admin.export_phrases(db, out) == n
    db2 = tmp_path / "y.db"
    await admin.import_phrases(db2, out)
    first, _ = await admin.list_phrases(db)
    second, _ = await admin.list_phrases(db2)
    strip = lambda phs: sorted((ph.id, ph.code, ph.title, ph.text, ph.tags, ph.lang, ph.topic) for ph in phs)  # noqa: E731
    assert strip(first) == strip(second)
