"""Hostile frames of every shape get a clear error or a close code; the hub
keeps serving the other chats; nothing stored changes.

Hypothesis generates, for anonymous sockets, a customer, an agent and a
supervisor (the frame types are read from ``server.protocol`` at run time, so
new ones are covered as they appear):

* structural defects: not JSON, JSON that is not an object, a missing,
  non-string or unknown ``type``, an unknown field, a field of the wrong JSON
  type (huge strings, deep nesting, big numbers...), a missing required field,
  lone surrogate escapes, control characters;
* well-formed frames aimed at what is not the sender's: someone else's chat
  (real or forged ids), commands of another role, a second hello/login;
* transport abuse: binary frames, invalid UTF-8 in a text frame (1007),
  frames over 64 KiB (1009), floods (rate_limited, then 1008).

Every frame must be answered by an ``error`` with a documented code and a
message (never ``internal``), or by a documented close code. After every
example a bystander customer and its agent still talk both ways, and the
``messages`` and ``conversations`` tables are unchanged except for the
bystander's own lines.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import string
import typing
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode

from server import protocol as p
from server.net import HubServer, build_hub

from .conftest import hub_config
from .helpers import Client, agent, customer, wait_until
from .proxy import record_figures, scaled

DOCS = Path(__file__).resolve().parent.parent / "docs" / "PROTOCOL.md"


def documented_errors() -> set[str]:
    """The codes in PROTOCOL.md's error table (first column of each row)."""
    text = DOCS.read_text()
    section = text[text.index("## Errors") : text.index("## Close codes")]
    codes: set[str] = set()
    for line in section.splitlines():
        cells = line.split("|")
        if len(cells) > 2:
            codes.update(re.findall(r"`([a-z_]+)`", cells[1]))
    return codes


DOCUMENTED_ERRORS = documented_errors()
CLOSE_CODES = {1007, 1008, 1009}
UNSOLICITED = {"queue", "state", "typing", "board", "status", "msg", "synced", "assigned", "phrase_changed"}

CLIENT_TYPES: dict[str, msgspec.inspect.StructType] = {
    msgspec.inspect.type_info(cls).tag: msgspec.inspect.type_info(cls)  # type: ignore[misc]
    for cls in typing.get_args(p.ClientFrame)
}

# -- what each field accepts, in JSON kinds ------------------------------------------

KINDS = ("null", "bool", "int", "float", "str", "array", "object")


def accepted(t: msgspec.inspect.Type) -> set[str]:
    mi = msgspec.inspect
    if isinstance(t, mi.UnionType):
        return set().union(*(accepted(x) for x in t.types))
    if isinstance(t, mi.NoneType):
        return {"null"}
    if isinstance(t, mi.BoolType):
        return {"bool"}
    if isinstance(t, mi.IntType):
        return {"int"}
    if isinstance(t, mi.FloatType):
        return {"int", "float"}
    if isinstance(t, mi.StrType):
        return {"str"}
    if isinstance(t, mi.LiteralType):
        return {"str" if isinstance(v, str) else "int" for v in t.values}
    if isinstance(t, (mi.ListType, mi.TupleType, mi.VarTupleType, mi.SetType, mi.FrozenSetType)):
        return {"array"}
    if isinstance(t, (mi.DictType, mi.StructType, mi.TypedDictType, mi.DataclassType)):
        return {"object"}
    return set(KINDS)  # Any or unknown: nothing is wrong for it


json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40),
)  # fmt: skip
json_value = st.recursive(json_leaf, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                            st.dictionaries(st.text(max_size=8), kids, max_size=4)),
                          max_leaves=12)  # fmt: skip


def value_of_kind(kind: str) -> st.SearchStrategy[Any]:
    return {
        "null": st.none(),
        "bool": st.booleans(),
        "int": st.integers(min_value=-(2**70), max_value=2**70),
        "float": st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: x != int(x)),
        "str": st.one_of(st.text(max_size=30), st.just("长" * 20_000), st.text(alphabet="🏦💳\u200b\u202e", max_size=10)),
        "array": st.one_of(st.lists(json_leaf, max_size=5), st.just(DEEP_ARRAY)),
        "object": st.one_of(st.dictionaries(st.text(max_size=6), json_leaf, max_size=4), st.just(DEEP_OBJECT)),
    }[kind]


# Nesting deeper than Python's json module can write: spliced in as text.
DEEP_ARRAY, DEEP_OBJECT = "@@DEEP_ARRAY@@", "@@DEEP_OBJECT@@"
DEEP = {
    json.dumps(DEEP_ARRAY): "[" * 10_000 + "]" * 10_000,
    json.dumps(DEEP_OBJECT): '{"k":' * 5_000 + "{}" + "}" * 5_000,
}


def dumps(frame: Any, ensure_ascii: bool = False) -> str:
    raw = json.dumps(frame, ensure_ascii=ensure_ascii)
    for marker, deep in DEEP.items():
        raw = raw.replace(marker, deep)
    return raw


# -- hostile frames ------------------------------------------------------------------

CONV_TYPES = sorted(t for t, info in CLIENT_TYPES.items() if any(f.name == "conv" for f in info.fields))


@st.composite
def structural(draw: st.DrawFn) -> tuple[str, str]:
    """A text frame that is not a valid frame of any type."""
    how = draw(st.sampled_from(["not_json", "not_object", "bad_type", "unknown_field", "wrong_kind",
                                "missing_field", "surrogate", "control_char"]))  # fmt: skip
    tag = draw(st.sampled_from(sorted(CLIENT_TYPES)))
    info = CLIENT_TYPES[tag]
    frame: dict[str, Any] = {"type": tag}
    for f in info.fields:  # some real fields, with any values
        if draw(st.booleans()):
            frame[f.name] = draw(json_value)
    if how == "not_json":
        return how, draw(st.sampled_from(["{", "{not json", "[1,", "{'type': 'hello'}", "NaN", "", "\ufeff{}"]))
    if how == "not_object":
        return how, json.dumps(draw(st.one_of(json_leaf, st.lists(json_leaf, max_size=3))))
    if how == "bad_type":
        frame["type"] = draw(st.one_of(st.text(max_size=12).filter(lambda s: s not in CLIENT_TYPES),
                                       st.integers(), st.none(), st.lists(st.just(tag), max_size=2)))  # fmt: skip
        if draw(st.booleans()):
            del frame["type"]
        return how, json.dumps(frame, ensure_ascii=draw(st.booleans()))
    if how == "unknown_field":
        name = draw(st.text(alphabet=string.ascii_letters + "_$.", min_size=1, max_size=12)
                    .filter(lambda n: n not in {f.name for f in info.fields} and n != "type"))  # fmt: skip
        frame[name] = draw(json_value)
        return how, json.dumps(frame)
    if how == "missing_field":
        required = [f for f in info.fields if f.required]
        if not required:
            frame["zz_unknown"] = 1
            return "unknown_field", json.dumps(frame)
        frame.pop(draw(st.sampled_from(required)).name, None)
        return how, json.dumps(frame)
    if how in ("surrogate", "control_char"):
        target = draw(st.sampled_from([f.name for f in info.fields] or ["zz"]))
        frame[target] = "PLACEHOLDER"
        raw = json.dumps(frame)
        bad = "\\ud800x" if how == "surrogate" else "a\x01b"
        return how, raw.replace("PLACEHOLDER", bad)
    # wrong_kind: one field of a JSON kind it never accepts
    fields = [f for f in info.fields if set(KINDS) - accepted(f.type)]
    if not fields:
        frame["zz_unknown"] = 1
        return "unknown_field", json.dumps(frame)
    f = draw(st.sampled_from(fields))
    kind = draw(st.sampled_from(sorted(set(KINDS) - accepted(f.type))))
    frame[f.name] = draw(value_of_kind(kind))
    raw = dumps(frame)
    if len(raw.encode()) > p.MAX_FRAME_BYTES:
        return "oversized", raw
    return how, raw


def not_yours(victim: str, who: str) -> st.SearchStrategy[tuple[str, str]]:
    """Well-formed frames about a chat that is not the sender's (or of another role).
    Supervisors may watch, whisper into and reassign any chat: not attacks for them."""
    conv = st.one_of(st.just(victim), st.from_regex(r"c-[0-9a-f]{16}", fullmatch=True),
                     st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=64))  # fmt: skip
    tags = sorted(t for t in TEMPLATES if not (who == "supervisor" and t in ("watch", "whisper", "reassign")))
    return st.builds(
        lambda tag, c, text: ("not_yours", json.dumps(TEMPLATES[tag](c, text), ensure_ascii=False)),
        st.sampled_from(tags), conv, st.text(min_size=1, max_size=50).filter(str.strip),
    )  # fmt: skip


TEMPLATES = {
    "send": lambda c, t: {"type": "send", "conv": c, "msg_id": "h1", "text": t},
    "typing": lambda c, t: {"type": "typing", "conv": c, "on": True},
    "request_human": lambda c, t: {"type": "request_human", "conv": c},
    "end": lambda c, t: {"type": "end", "conv": c},
    "rate": lambda c, t: {"type": "rate", "conv": c, "score": "dissatisfied", "comment": t},
    "note": lambda c, t: {"type": "note", "conv": c, "msg_id": "h2", "text": t},
    "transfer_group": lambda c, t: {"type": "transfer", "conv": c, "group": "general", "note": t},
    "transfer_agent": lambda c, t: {"type": "transfer", "conv": c, "agent": "a1"},
    "close": lambda c, t: {"type": "close", "conv": c, "wrapup": "x", "note": t},
    "wrapup": lambda c, t: {"type": "wrapup", "conv": c, "code": "x", "note": t},
    "reveal": lambda c, t: {"type": "reveal", "conv": c},
    "watch": lambda c, t: {"type": "watch", "conv": c},
    "whisper": lambda c, t: {"type": "whisper", "conv": c, "msg_id": "h3", "text": t},
    "reassign": lambda c, t: {"type": "reassign", "conv": c, "agent": "a2"},
    "hello_again": lambda c, t: {"type": "hello", "name": "又来了"},
    "login_again": lambda c, t: {"type": "login", "user": "a2", "password": t},
}
# What a well-formed frame about someone else's chat may be answered with, by role.
NOT_YOURS_CODES = {"not_logged_in", "forbidden", "unknown_conversation", "invalid_state"}


@st.composite
def hostile(draw: st.DrawFn, victim: str) -> tuple[str, str, str | bytes]:
    """(who sends it, what kind of attack, the frame)."""
    who = draw(st.sampled_from(["anonymous", "customer", "agent", "supervisor"]))
    attack = draw(st.sampled_from(["structural"] * 10 + ["not_yours"] * 7 + ["binary", "bad_utf8", "oversized"]))
    if attack == "structural":
        kind, frame = draw(structural())
        return who, kind, frame
    if attack == "not_yours":
        kind, frame = draw(not_yours(victim, who))
        if who == "anonymous" and json.loads(frame)["type"] in ("hello", "login"):
            frame = json.dumps({"type": "logout"})  # (a valid hello/login would start a session)
        return who, kind, frame
    if attack == "binary":
        return who, "binary", draw(st.binary(max_size=200))
    if attack == "oversized":
        size = draw(st.integers(p.MAX_FRAME_BYTES + 1, 4 * p.MAX_FRAME_BYTES))
        return who, "oversized", json.dumps({"type": "send", "conv": victim, "msg_id": "big", "text": "x" * size})
    return who, "bad_utf8", draw(st.sampled_from([b'{"type":"hello","name":"\xff"}', b"\xc3\x28", b"\xed\xa0\x80"]))


# -- the arena ------------------------------------------------------------------------


class Arena:
    """One hub, a bystander chat that must keep working, and hostile sockets."""

    def __init__(self, server: HubServer) -> None:
        self.server = server
        self.url = server.url
        self.figures: Counter[str] = Counter()
        self.codes: Counter[str] = Counter()
        self.socks: dict[str, Client] = {}
        self.refusals: set[str] = set()

    async def setup(self) -> None:
        hub = self.server.hub
        await hub.add_user("a1", "坐席一", "pw", max_chats=1)
        await hub.add_user("a2", "坐席二", "pw")
        await hub.add_user("sup", "主管", "pw", role="supervisor")
        self.agent = await agent(self.url, "a1")
        await self.agent.send(type="set_status", status="online")
        self.bystander = await customer(self.url, "旁观者")
        await self.agent.expect("synced", lambda f: f["conv"] == self.bystander.conv)
        self.tokens = {"agent": "", "supervisor": "", "customer": ""}
        for who in ("anonymous", "customer", "agent", "supervisor"):
            await self.sock(who)
        self.victim = self.bystander.conv

    async def sock(self, who: str) -> Client:
        """The hostile socket of `who`, reconnected (and logged in again) if it was closed."""
        c = self.socks.get(who)
        if c is not None and c.closed_code is None:
            return c
        c = await Client.connect(self.url)
        if who == "customer":
            if self.tokens["customer"]:
                await c.send(type="hello", name="x", resume_token=self.tokens["customer"])
            else:
                await c.send(type="hello", name="捣乱的客户")
            w = await c.expect("welcome")
            self.tokens["customer"], c.conv = w["resume_token"], w["conv"]
        elif who in ("agent", "supervisor"):
            user = "a2" if who == "agent" else "sup"
            if self.tokens[who]:
                await c.send(type="login", user=user, token=self.tokens[who])
            else:
                await c.send(type="login", user=user, password="pw")
            self.tokens[who] = (await c.expect("login_ok"))["token"]
        self.socks[who] = c
        return c

    async def attack(self, who: str, kind: str, frame: str | bytes) -> None:
        c = await self.sock(who)
        start = len(c.frames)
        if kind == "bad_utf8":  # a *text* frame whose bytes are not UTF-8 (the client library won't send one)
            assert isinstance(frame, bytes)
            c.ws.protocol.send_frame(Frame(Opcode.TEXT, frame))
            c.ws.send_data()
        else:
            await c.raw(frame)
        self.figures[f"{who}:{kind}"] += 1
        self.figures["frames"] += 1

        def answered() -> bool:
            return c.closed_code is not None or any(f["type"] not in UNSOLICITED for f in c.frames[start:])

        await wait_until(answered, timeout=10, what=f"an answer to {who}'s {kind} frame {str(frame)[:200]!r}")
        replies = [f for f in c.frames[start:] if f["type"] not in UNSOLICITED]
        if not replies:
            assert c.closed_code in CLOSE_CODES, f"{kind}: closed with {c.closed_code}"
            self.codes[f"close {c.closed_code}"] += 1
            expected_close = {"bad_utf8": 1007, "oversized": 1009}.get(kind)
            assert expected_close in (None, c.closed_code), f"{kind}: closed with {c.closed_code}"
            return
        r = replies[0]
        assert r["type"] == "error", f"{who}'s {kind} frame was accepted: {r}; frame {str(frame)[:300]!r}"
        assert r["code"] in DOCUMENTED_ERRORS and r["code"] != "internal", f"{kind}: {r}"
        assert r["message"].strip(), r
        self.codes[r["code"]] += 1
        if r["code"] == "unknown_conversation":  # one answer whether the chat exists or not
            self.refusals.add(r["message"])
            assert len(self.refusals) == 1, self.refusals
        if kind == "binary":
            assert r["code"] == "binary_not_supported"
        elif kind == "not_yours":
            assert r["code"] in NOT_YOURS_CODES, f"{who}: {r} for {frame}"
        elif kind in ("not_json", "surrogate", "control_char"):
            assert r["code"] in ("bad_json", "bad_frame"), r
        elif kind != "oversized":
            if who == "anonymous" and r["code"] == "not_logged_in":
                return  # decoded fine but sent before hello/login: also a refusal
            assert r["code"] in ("bad_frame", "unknown_type", "bad_json"), f"{kind}: {r} for {str(frame)[:200]!r}"

    async def snapshot(self) -> tuple[list[tuple], list[tuple]]:
        store = self.server.hub.store
        await store.barrier()
        msgs = [tuple(r) for r in await store.query(
            "SELECT * FROM messages WHERE conv_id != ? ORDER BY conv_id, seq", (self.victim,))]  # fmt: skip
        convs = [tuple(r) for r in await store.query(
            "SELECT * FROM conversations WHERE id != ? ORDER BY id", (self.victim,))]  # fmt: skip
        return msgs, convs

    async def bystander_still_talks(self, n: int) -> None:
        ack = await self.bystander.say(f"第{n}个问题，还在吗")
        await self.agent.expect("msg", lambda f: f.get("msg_id") == ack["msg_id"])
        reply = await self.agent.say(f"在的，第{n}个回答", conv=self.victim)
        await self.bystander.expect("msg", lambda f: f.get("msg_id") == reply["msg_id"])
        self.figures["bystander_round_trips"] += 1


@pytest.fixture
async def arena(tmp_path: Path) -> Any:
    server = await build_hub(hub_config(tmp_path, rate_per_s=10_000.0, rate_burst=20_000,
                                        login_failures=10_000)).start()  # fmt: skip
    a = Arena(server)
    await a.setup()
    a.before = await a.snapshot()
    try:
        yield a
    finally:
        await server.stop()


def test_the_documented_error_codes_were_read() -> None:
    assert {"bad_json", "bad_frame", "unknown_type", "binary_not_supported", "forbidden",
            "unknown_conversation", "rate_limited"} <= DOCUMENTED_ERRORS  # fmt: skip


@settings(max_examples=scaled(300), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])  # fmt: skip
@given(data=st.data())
async def test_hostile_frames_get_an_error_or_a_close_and_change_nothing(arena: Arena, data: st.DataObject) -> None:
    who, kind, frame = data.draw(hostile(arena.victim))
    await arena.attack(who, kind, frame)
    if arena.figures["frames"] % 10 == 0:
        await arena.bystander_still_talks(arena.figures["frames"])
        assert await arena.snapshot() == arena.before, "a hostile frame changed what is stored"
        record_figures("hostile_frames", {**arena.figures, "answers": dict(arena.codes)})


async def test_stored_data_is_unchanged_after_a_bombardment(arena: Arena) -> None:
    """The same attacks without Hypothesis in the loop: a seeded barrage from every role."""
    rng = random.Random(2024)
    for i in range(scaled(150)):
        who = rng.choice(["anonymous", "customer", "agent", "supervisor"])
        roll = rng.random()
        if roll < 0.3:
            frame: str | bytes = json.dumps({"type": rng.choice(sorted(CLIENT_TYPES)), "zz": rng.random()})
            kind = "unknown_field"
        elif roll < 0.6:
            tag = rng.choice(sorted(t for t in TEMPLATES if who != "supervisor" or t not in ("watch", "whisper", "reassign")))
            frame, kind = json.dumps(TEMPLATES[tag](arena.victim, "我的卡号是6222021234567890128")), "not_yours"
            if who == "anonymous" and tag in ("hello_again", "login_again"):
                frame = json.dumps({"type": "logout"})
        elif roll < 0.7:
            frame, kind = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))), "binary"
        elif roll < 0.8:
            frame, kind = dumps({"type": "send", "conv": arena.victim, "msg_id": "x", "text": DEEP_ARRAY}), "wrong_kind"
        elif roll < 0.9:
            frame, kind = b'{"type":"typing","conv":"\xfe"}', "bad_utf8"
        else:
            frame, kind = json.dumps({"type": "note", "conv": arena.victim, "msg_id": "x", "text": "长" * 30_000}), "oversized"
        await arena.attack(who, kind, frame)
        if i % 25 == 0:
            await arena.bystander_still_talks(i)
    assert await arena.snapshot() == arena.before
    assert arena.codes["close 1007"] and arena.codes["close 1009"] and arena.codes["binary_not_supported"]


async def test_floods_from_many_sockets_are_cut_off_and_the_bystander_carries_on(tmp_path: Path) -> None:
    server = await build_hub(hub_config(tmp_path, rate_per_s=20.0, rate_burst=40, flood_strikes=50)).start()
    try:
        await server.hub.add_user("a1", "坐席一", "pw")
        a1 = await agent(server.url, "a1")
        await a1.send(type="set_status", status="online")
        calm = await customer(server.url, "安静的客户")
        await a1.expect("synced", lambda f: f["conv"] == calm.conv)
        floods = [await customer(server.url, f"刷屏{i}") for i in range(5)]
        floods += [await Client.connect(server.url) for _ in range(5)]  # anonymous ones too
        rng = random.Random(7)

        async def flood(c: Client) -> int:
            sent = 0
            for i in range(400):
                frame = rng.choice([
                    json.dumps({"type": "typing", "conv": c.conv or "c-x", "on": bool(i % 2)}),
                    json.dumps({"type": "send", "conv": "c-0000000000000000", "msg_id": f"f{i}", "text": "刷"}),
                    "{not json", b"\x00\x01binary",
                ])  # fmt: skip
                try:
                    await c.raw(frame)
                except Exception:
                    break
                sent += 1
            return sent

        sent = await asyncio.gather(*(flood(c) for c in floods))
        for c in floods:
            await wait_until(lambda c=c: c.closed_code is not None, timeout=10, what="flooder closed")
            assert c.closed_code == 1008
            assert any(f.get("code") == "rate_limited" for f in c.frames)
        ack = await calm.say("我还在，能听到吗")
        await a1.expect("msg", lambda f: f.get("msg_id") == ack["msg_id"])
        await a1.say("听得到", conv=calm.conv)
        await calm.expect("msg", lambda f: f["text"] == "听得到")
        stored_by_floods = await server.hub.store.query(
            "SELECT COUNT(*) FROM messages WHERE sender='customer' AND conv_id != ?", (calm.conv,))
        assert stored_by_floods[0][0] == 0  # not one flooder line stored
        record_figures("floods", {"flooders": len(floods), "frames_sent": sum(sent),
                                  "rate_limited": server.hub.metrics.rate_limited})  # fmt: skip
    finally:
        await server.stop()


async def test_an_out_of_range_number_is_a_bad_frame_not_an_internal_error(hub: HubServer) -> None:
    """Was: audit_get.before_id took any integer; past SQLite's 64-bit range the store raised
    OverflowError and the supervisor got 'internal'. Fixed in f0db3d0 (protocol ints are bounded).
    Every integer field of every frame, at 2**63 and 2**70, from every role: bad_frame."""
    await hub.hub.add_user("sup", "主管", "pw", role="supervisor")
    await hub.hub.add_user("a2", "坐席二", "pw")
    socks = {"supervisor": await agent(hub.url, "sup"), "agent": await agent(hub.url, "a2"),
             "customer": await customer(hub.url)}  # fmt: skip
    mi = msgspec.inspect
    tried = 0
    for tag, info in sorted(CLIENT_TYPES.items()):
        for field in info.fields:
            if "int" not in accepted(field.type) or isinstance(field.type, mi.LiteralType):
                continue
            for who, sock in socks.items():
                for big in (2**63, 2**70):
                    start = len(sock.frames)
                    await sock.raw(json.dumps({"type": tag, field.name: big}))
                    err = await sock.expect("error", start=start)
                    assert err["code"] in ("bad_frame", "forbidden"), (who, tag, field.name, err)
                    tried += 1
    assert tried >= 10
