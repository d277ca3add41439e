"""Races: any interleaving keeps every cap, one agent per chat, and shows each
chat only to whoever may see it at that moment.

Two stateful Hypothesis machines:

* ``RouterVisibilityMachine`` drives the routing core on its own (all the rules
  of ``tests/test_routing.py`` plus bot-stage arrivals, handoffs and messages)
  and keeps a model of every agent's socket built only from the effects the
  router reports, the way the hub uses them: ``Assigned`` shows a chat,
  ``Unassigned`` hides it, a reconnect shows what the agent holds. After every
  step the model must agree with the router: an agent's socket shows exactly
  the chats it holds, so every message frame the model delivers goes to the
  chat's one agent.

* ``HubMachine`` drives the real ``Hub`` (no network: sockets are fakes that
  check every frame *as it is written*) over a real SQLite store whose commits
  the machine holds back and releases, so writes land late, between other
  events, as they do under load. Each frame is checked at that moment: an
  agent gets frames of a chat only while the router gives it that chat, only
  on its current socket, only once the message is stored; a customer only of
  its own chat; each seq once, in order, per spell holding a chat. After
  every step: caps, one agent per chat, sockets' visible sets within what the
  router gives them, and (once everything is committed) every agent is shown
  exactly the chats it holds and the database agrees.

  It also holds the hub to three promises of its own docstring, which this
  machine found broken (fixed in f0db3d0; the deterministic tests below
  reproduce each): ``assigned`` only once the assignment is stored, never
  twice for one spell, and ``unassigned`` only for a chat the socket was shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import shutil
import sqlite3
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from server import protocol as p
from server.auth import token_hash
from server.config import HubConfig
from server.hub import Hub
from server.net import HubServer, build_hub
from server.routing import NORMAL, PRIORITY, URGENT, Assigned, Router, RoutingError, Unassigned
from server.session import Session
from server.store import UserRecord

from .conftest import hub_config
from .helpers import Client, agent, wait_until
from .proxy import record_figures, scaled
from .test_routing import RouterMachine

FIGURES: dict[str, Counter[str]] = {"races_router": Counter(), "races_hub": Counter()}

# ---------------------------------------------------------------------------------
# 1. The routing core with a model of the sockets built from its effects
# ---------------------------------------------------------------------------------


class RecordingRouter(Router):
    """A Router that keeps every effect it returns, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[Any] = []

    def _keep(self, effects: list[Any]) -> list[Any]:
        self.log.extend(effects)
        return effects

    def upsert_agent(self, *a: Any, **kw: Any) -> list[Any]:
        return self._keep(super().upsert_agent(*a, **kw))

    def set_status(self, *a: Any, **kw: Any) -> list[Any]:
        return self._keep(super().set_status(*a, **kw))

    def connect(self, *a: Any, **kw: Any) -> list[Any]:
        return self._keep(super().connect(*a, **kw))

    def disconnect(self, *a: Any, **kw: Any) -> list[Any]:
        return self._keep(super().disconnect(*a, **kw))

    def grace_expired(self, *a: Any, **kw: Any) -> list[Any]:
        return self._keep(super().grace_expired(*a, **kw))

    def enqueue(self, *a: Any, **kw: Any) -> list[Any]:
        return self._keep(super().enqueue(*a, **kw))

    def close(self, *a: Any, **kw: Any) -> list[Any]:
        return self._keep(super().close(*a, **kw))

    def transfer_to_group(self, *a: Any, **kw: Any) -> list[Any]:
        return self._keep(super().transfer_to_group(*a, **kw))

    def transfer_to_agent(self, *a: Any, **kw: Any) -> list[Any]:
        return self._keep(super().transfer_to_agent(*a, **kw))


class RouterVisibilityMachine(RouterMachine):
    """The routing machine of test_routing.py, plus bot-stage arrivals,
    handoffs, messages, and a socket model fed only by the router's effects."""

    def __init__(self) -> None:
        super().__init__()
        self.r = RecordingRouter()
        for i, a in enumerate(self.agents):
            self.r.upsert_agent(a, self.groups[: 1 + i % 2], 1 + i, now=0)
        self.bot_stage: set[str] = set()
        self.socket: dict[str, set[str] | None] = {a: None for a in self.agents}  # None: no socket
        self.frames = 0
        self.consumed = 0
        for a in self.agents[:3]:  # three desks open and online from the start, one still closed
            self.socket[a] = set()
            self.r.connect(a, 0)
            self.r.set_status(a, "online", 0)

    # extra rules -----------------------------------------------------------------

    @rule()
    def bot_arrival(self) -> None:
        conv = f"c{self.next_conv}"
        self.next_conv += 1
        self.r.track(conv)
        self.open.add(conv)
        self.bot_stage.add(conv)

    @precondition(lambda self: self.bot_stage & self.open)
    @rule(data=st.data(), group=st.sampled_from(RouterMachine.groups),
          klass=st.sampled_from([URGENT, PRIORITY, NORMAL]))  # fmt: skip
    def handoff(self, data: st.DataObject, group: str, klass: int) -> None:
        conv = data.draw(st.sampled_from(sorted(self.bot_stage & self.open)))
        self.bot_stage.discard(conv)
        self.r.enqueue(conv, group, klass, now=self.tick())

    @precondition(lambda self: self.open)
    @rule(data=st.data())
    def message(self, data: st.DataObject) -> None:
        """A line in a chat: the model delivers it to every socket showing the chat."""
        self._apply_effects()
        conv = data.draw(st.sampled_from(sorted(self.open)))
        shown_to = [a for a, vis in self.socket.items() if vis is not None and conv in vis]
        chat = self.r.chats.get(conv)
        holder = chat.agent if chat is not None and chat.state == "assigned" else None
        for a in shown_to:
            assert a == holder, f"a line of {conv} would reach {a}; it is held by {holder}"
        if holder is not None and self.r.agents[holder].connected:
            assert shown_to == [holder], f"{holder} holds {conv} but would not get its line"
        self.frames += len(shown_to)

    @rule(agent=st.sampled_from(RouterMachine.agents), up=st.booleans())
    def link(self, agent: str, up: bool) -> None:
        self._apply_effects()
        if up:
            # A (re)connecting desk is shown every chat the agent holds, then
            # whatever the connect dispatches to it.
            self.socket[agent] = set(self.r.agents[agent].chats)
            self.r.connect(agent, self.tick())
        else:
            self.r.disconnect(agent, self.tick())
            self.socket[agent] = None
        self._apply_effects()

    def teardown(self) -> None:
        fig = FIGURES["races_router"]
        fig["examples"] += 1
        fig["effects_applied"] += len(self.r.log)
        fig["socket_frames_modelled"] += self.frames
        fig["chats"] += self.next_conv
        record_figures("races_router", dict(fig))

    # the model ------------------------------------------------------------------

    def _apply_effects(self) -> None:
        for e in self.r.log[self.consumed :]:
            vis = self.socket.get(e.agent) if isinstance(e, (Assigned, Unassigned)) else None
            if isinstance(e, Assigned) and vis is not None:
                assert e.conv not in vis, f"{e.conv} assigned twice to {e.agent}"
                vis.add(e.conv)
                self.frames += 1
            elif isinstance(e, Unassigned) and vis is not None:
                assert e.conv in vis, f"unassigned {e.conv} from {e.agent}, which was not shown it"
                vis.discard(e.conv)
                self.frames += 1
        self.consumed = len(self.r.log)

    @invariant()
    def sockets_show_exactly_what_each_agent_holds(self) -> None:
        self._apply_effects()
        for a, vis in self.socket.items():
            if vis is not None:
                assert vis == self.r.agents[a].chats, f"{a} shows {sorted(vis)}, holds {sorted(self.r.agents[a].chats)}"
        holders: dict[str, str] = {}
        for a, vis in self.socket.items():
            for conv in vis or ():
                assert conv not in holders, f"{conv} shown to {holders[conv]} and {a}"
                holders[conv] = a


TestRouterVisibility = RouterVisibilityMachine.TestCase
TestRouterVisibility.settings = settings(max_examples=scaled(150), stateful_step_count=50, deadline=None,
                                         derandomize=True)  # fmt: skip


# ---------------------------------------------------------------------------------
# 2. The real hub, fake sockets, commits held back
# ---------------------------------------------------------------------------------


class CommitGate:
    """Hold the hub's writes back and let them reach the disk when told to.

    Writes submitted while the gate is shut wait here, in order, grouped by
    the event that made them (``mark`` ends a group); ``release(n)`` hands
    the oldest n groups to the store's real writer and waits until they are
    durable, so writes land late, in order, between other events, and the
    interleaving is the same on every run (Hypothesis replays examples)."""

    def __init__(self, store: Any) -> None:
        self.open_all = True
        self.groups: list[list[tuple[tuple[str, tuple[Any, ...], Any], asyncio.Future[None]]]] = [[]]
        self._orig = store._submit
        store._submit = self._submit  # one private seam: every write goes through it

    def _submit(self, sql: str, params: tuple[Any, ...], written: Any = None) -> asyncio.Future[None]:
        if self.open_all:
            return self._orig(sql, params, written)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.groups[-1].append(((sql, params, written), fut))
        return fut

    def mark(self) -> None:
        if self.groups[-1]:
            self.groups.append([])

    @property
    def held(self) -> int:
        return sum(len(g) for g in self.groups)

    async def release(self, groups: int | None = None) -> None:
        """Let the oldest `groups` groups commit (None: all, and open the gate), in order."""
        self.mark()
        n = len(self.groups) - 1 if groups is None else min(groups, len(self.groups) - 1)
        if groups is None:
            self.open_all = True
        todo, self.groups = self.groups[:n], self.groups[n:]
        real: list[asyncio.Future[None]] = []
        for group in todo:
            for (sql, params, written), fut in group:
                inner = self._orig(sql, params, written)
                inner.add_done_callback(lambda r, fut=fut: _copy(r, fut))
                real.append(inner)
        if real:
            await asyncio.wait(real)
        await asyncio.sleep(0)  # the copied results' callbacks

    async def hold(self) -> None:
        self.open_all = False


def _copy(src: asyncio.Future[None], dst: asyncio.Future[None]) -> None:
    if dst.done():
        return
    if src.exception() is not None:
        dst.set_exception(src.exception())  # type: ignore[arg-type]
    else:
        dst.set_result(None)


class Violation(AssertionError):
    pass


class FakeWire:
    """A socket as Session sees it; every frame is checked as it is written."""

    def __init__(self, machine: HubMachine, role: str, name: str) -> None:
        self.m = machine
        self.role, self.name = role, name
        self.session: Session | None = None
        self.frames: list[dict[str, Any]] = []
        self.dead = False
        self.close_code: int | None = None
        # What this socket was told: conv -> seqs of the open spell (None: not shown)
        self.spells: dict[str, list[int]] = {}
        self.last_seq: dict[str, int] = {}
        self.last_epoch: dict[str, int] = {}  # of the message at last_seq
        self.cursors_sent: set[str] = set()  # chats this desk named in its login
        # Session._write_now's fast path (the net layer's websocket connection)
        self.protocol = self
        self.transport = self

    # the websocket connection's surface -------------------------------------------

    def get_write_buffer_size(self) -> int:
        return 0

    def send_text(self, data: bytes) -> None:
        self.m.check_frame(self, json.loads(data))

    def send_data(self) -> None:
        pass

    def data_to_send(self) -> list[bytes]:
        return []  # every frame was checked as send_text framed it

    async def send(self, message: bytes, text: bool | None = None) -> None:
        self.m.check_frame(self, json.loads(message))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if not self.dead:
            self.dead, self.close_code = True, code
            if self.session is not None:
                self.m.hub.disconnected(self.session)  # what net.py does when the socket ends


class HubMachine(RuleBasedStateMachine):
    agents = ("a1", "a2", "a3")
    caps = {"a1": 1, "a2": 2, "a3": 3}
    groups = {"a1": ["general"], "a2": ["general", "cards"], "a3": ["cards"]}

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp(prefix="hubmachine-"))
        self.db = self.dir / "hub.db"
        cfg = HubConfig(db_path=self.db, port=0, agent_grace_s=1e6, customer_grace_s=1e6, customer_idle_s=1e6,
                        sqlite_synchronous="OFF", maintenance_s=1e6, board_interval_s=1e6)  # fmt: skip
        self.hub = Hub(cfg)
        self.ro: sqlite3.Connection | None = None
        self.customers: list[FakeWire] = []
        self.desks: dict[str, FakeWire | None] = {a: None for a in self.agents}
        self.tokens: dict[str, str] = {}
        self.msg_n = 0
        self.frames_checked = 0
        self.violations: list[str] = []
        self.arrival: dict[str, int] = {}
        self.run(self._setup())

    # plumbing --------------------------------------------------------------------

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def _setup(self) -> None:
        await self.hub.start()
        self.gate = CommitGate(self.hub.store)
        await self.gate.release()
        for a in self.agents:  # accounts and saved tokens straight in the store: no scrypt per example
            await self.hub.store.put_user(UserRecord(id=a, role="agent", name=a, pw_hash="-", groups=self.groups[a],
                                                     max_chats=self.caps[a], created_at=1.0))  # fmt: skip
            self.tokens[a] = f"token-{a}"
            await self.hub.store.add_token(token_hash(self.tokens[a]), a, f"s-{a}", 1.0)
        for a in self.agents:
            wire = await self._login(a)
            await self.hub.handle(wire.session, p.SetStatus(status="online"))  # type: ignore[arg-type]
        await self._settle()
        await self.gate.hold()
        self.ro = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)

    async def _login(self, a: str) -> FakeWire:
        old = self.desks.get(a)
        cursors = {c: old.last_seq.get(c, 0) for c in old.spells} if old is not None else {}
        epochs = {c: old.last_epoch.get(c, 0) for c in old.spells} if old is not None else {}
        wire = FakeWire(self, "agent", a)
        wire.session = Session(wire, peer="10.0.0.1")  # type: ignore[arg-type]
        wire.cursors_sent = set(cursors)
        self.hub.connected(wire.session)
        self.desks[a] = wire
        await self.hub.handle(wire.session, p.Login(user=a, token=self.tokens[a], cursors=cursors, epochs=epochs))
        return wire

    async def _settle(self) -> None:
        """Let every ready callback and spawned task (replays) run to the end."""
        deadline = time.monotonic() + 20.0  # generous: a loaded machine can be slow, never wrong
        while time.monotonic() < deadline:
            for _ in range(5):
                await asyncio.sleep(0)
            if not any(not t.done() for t in self.hub._tasks):
                return
            await asyncio.sleep(0.001)
        raise AssertionError("the hub did not settle")

    def act(self, coro: Any) -> None:
        async def go() -> None:
            try:
                await coro
            except RoutingError:
                pass
            await self._settle()
            self.gate.mark()

        self.run(go())
        self.raise_violations()

    @staticmethod
    async def _call(fn: Any, *args: Any) -> None:
        fn(*args)

    def raise_violations(self) -> None:
        if self.violations:
            first, self.violations = self.violations[0], []
            raise Violation(first)

    def teardown(self) -> None:
        fig = FIGURES["races_hub"]
        fig["examples"] += 1
        fig["frames_checked"] += self.frames_checked
        fig["customers"] += len(self.customers)
        record_figures("races_hub", dict(fig))
        try:
            if self.ro is not None:
                self.ro.close()
            self.run(self.gate.release())
            self.run(self.hub.stop())
        finally:
            self.loop.close()
            gc.unfreeze()
            shutil.rmtree(self.dir, ignore_errors=True)

    # the per-frame rules (the visibility rule, at the moment of writing) --------------

    def stored(self, conv: str, seq: int) -> bool:
        assert self.ro is not None
        return self.ro.execute("SELECT 1 FROM messages WHERE conv_id=? AND seq=?", (conv, seq)).fetchone() is not None

    def stored_agent(self, conv: str) -> str | None:
        assert self.ro is not None
        row = self.ro.execute("SELECT agent_id FROM conversations WHERE id=?", (conv,)).fetchone()
        return row[0] if row else None

    def check_frame(self, wire: FakeWire, f: dict[str, Any]) -> None:
        """Called as the hub writes a frame (often from a callback, where an
        exception would be swallowed): violations are kept and raised by the rule."""
        wire.frames.append(f)
        if self.ro is None:  # set-up
            return
        self.frames_checked += 1
        try:
            self._check_frame(wire, f)
        except Exception as exc:
            self.violations.append(f"{type(exc).__name__}: {exc} [frame {f}]")

    def _check_frame(self, wire: FakeWire, f: dict[str, Any]) -> None:
        kind, conv = f["type"], f.get("conv")
        hub = self.hub
        if wire.role == "customer":
            own = wire.session.conv if wire.session else ""
            assert kind != "presence", "a customer was sent a presence frame (agents only)"
            if conv:
                assert conv == own, f"customer of {own} got a {kind} of {conv}"
            if kind == "msg":
                assert f["kind"] != "note", f"customer got a staff note: {f}"
                assert self.stored(conv, f["seq"]), f"{conv}#{f['seq']} shown before it was stored"
                assert f["seq"] > wire.last_seq.get(conv, 0), f"customer got {conv}#{f['seq']} out of order"
                wire.last_seq[conv], wire.last_epoch[conv] = f["seq"], f.get("epoch", 0)
            return
        a = wire.name
        if kind in ("assigned", "msg", "synced", "typing", "resync", "presence"):
            chat = hub.router.chats.get(conv)
            holder = chat.agent if chat is not None and chat.state == "assigned" else None
            assert holder == a, f"{a} got a {kind} of {conv}, held by {holder}"
            assert hub.agent_sessions.get(a) is wire.session, f"{a} got a {kind} of {conv} on an old socket"
        if kind == "assigned":
            assert self.stored_agent(conv) == a, f"{a} shown {conv} before its assignment was stored"
            if f.get("resumed", False) and conv in wire.spells:
                return
            assert conv not in wire.spells, f"{a} got a second fresh assigned for {conv} in one spell"
            wire.spells[conv] = []
            wire.last_seq[conv] = 0
        elif kind == "msg":
            assert conv in wire.spells, f"{a} got {conv}#{f['seq']} without an assigned"
            assert self.stored(conv, f["seq"]), f"{conv}#{f['seq']} shown before it was stored"
            assert f["seq"] > wire.last_seq.get(conv, 0), (
                f"{a} got {conv}#{f['seq']} after #{wire.last_seq.get(conv)} in one spell")
            wire.spells[conv].append(f["seq"])
            wire.last_seq[conv], wire.last_epoch[conv] = f["seq"], f.get("epoch", 0)
        elif kind == "unassigned":
            asked = f.get("reason") == "not_yours" and conv in wire.cursors_sent  # it named the chat itself
            assert conv in wire.spells or asked, f"{a} told it lost {conv}, which it was never shown"
            wire.spells.pop(conv, None)
        elif kind == "presence":
            assert conv in wire.spells, f"{a} told of the customer of {conv}, which it was never shown"
        elif kind in ("synced", "resync", "typing", "ack", "ok", "error", "login_ok", "status"):
            pass
        else:
            assert not conv, f"{a} got an unexpected {kind} naming {conv}"

    # rules -------------------------------------------------------------------------

    def live_customers(self) -> list[FakeWire]:
        return [c for c in self.customers if not c.dead and c.session is not None and c.session.conv
                and c.session.conv in self.hub.convs]  # fmt: skip

    @rule(flags=st.sampled_from([[], ["elderly"], ["vip"]]))
    def customer_arrives(self, flags: list[str]) -> None:
        wire = FakeWire(self, "customer", f"c{len(self.customers)}")
        wire.session = Session(wire, peer="10.0.1.1")  # type: ignore[arg-type]
        self.hub.connected(wire.session)
        self.customers.append(wire)
        self.act(self.hub.handle(wire.session, p.Hello(name=f"客户{len(self.customers)}", flags=flags)))
        self.order(wire.session.conv)

    @precondition(lambda self: self.live_customers())
    @rule(data=st.data())
    def customer_says(self, data: st.DataObject) -> None:
        c = data.draw(st.sampled_from(self.live_customers()))
        self.msg_n += 1
        self.act(self.hub.handle(c.session, p.Send(conv=c.session.conv, msg_id=f"m{self.msg_n}",  # type: ignore[union-attr]
                                                   text=f"客户的第{self.msg_n}句")))  # fmt: skip

    @precondition(lambda self: self.live_customers())
    @rule(data=st.data())
    def customer_ends(self, data: st.DataObject) -> None:
        c = data.draw(st.sampled_from(self.live_customers()))
        self.act(self.hub.handle(c.session, p.End(conv=c.session.conv)))  # type: ignore[union-attr]

    @precondition(lambda self: self.live_customers())
    @rule(data=st.data())
    def customer_drops_and_comes_back(self, data: st.DataObject) -> None:
        c = data.draw(st.sampled_from(self.live_customers()))
        welcome = next((f for f in c.frames if f["type"] == "welcome"), None)
        self.run(c.close(1006))
        if welcome is None:  # never told its token: it cannot come back
            return
        back = FakeWire(self, "customer", c.name)
        back.session = Session(back, peer="10.0.1.1")  # type: ignore[arg-type]
        self.hub.connected(back.session)
        self.customers.append(back)
        self.act(self.hub.handle(back.session, p.Hello(name="x", resume_token=welcome["resume_token"],
                                                       last_seq=c.last_seq.get(welcome["conv"], 0),
                                                       last_epoch=c.last_epoch.get(welcome["conv"], 0))))  # fmt: skip

    @precondition(lambda self: any(c.session and c.session.conv in self.hub.convs for c in self.customers))
    @rule(data=st.data())
    def customer_grace_ends(self, data: st.DataObject) -> None:
        convs = sorted({c.session.conv for c in self.customers if c.session and c.session.conv in self.hub.convs},
                       key=self.order)  # fmt: skip
        conv = data.draw(st.sampled_from(convs))
        self.act(self._call(self.hub._customer_gone, conv))  # the grace timer, fired now

    @rule(a=st.sampled_from(agents), status=st.sampled_from(["online", "away", "offline"]))
    def agent_status(self, a: str, status: str) -> None:
        wire = self.desks[a]
        if wire is not None and not wire.dead:
            self.act(self.hub.handle(wire.session, p.SetStatus(status=status)))  # type: ignore[arg-type]

    def order(self, conv: str) -> int:
        """Conversation ids are random: draw from them in arrival order, or Hypothesis could not
        replay an example (the same index would pick another chat)."""
        return self.arrival.setdefault(conv, len(self.arrival))

    def _shown(self, a: str) -> list[str]:
        wire = self.desks[a]
        if wire is None or wire.dead:
            return []
        return sorted(wire.spells, key=self.order)

    @rule(a=st.sampled_from(agents), data=st.data())
    def agent_says(self, a: str, data: st.DataObject) -> None:
        shown = self._shown(a)
        if shown:
            conv = data.draw(st.sampled_from(shown))
            self.msg_n += 1
            frame = (p.Note if data.draw(st.booleans()) else p.Send)(conv=conv, msg_id=f"m{self.msg_n}",
                                                                     text=f"坐席的第{self.msg_n}句")  # fmt: skip
            self.act(self.hub.handle(self.desks[a].session, frame))  # type: ignore[union-attr,arg-type]

    def _hand_on(self, a: str, data: st.DataObject, how: str) -> None:
        shown = self._shown(a)
        if not shown:
            return
        conv = data.draw(st.sampled_from(shown))
        if how == "group":
            frame: Any = p.Transfer(conv=conv, group=data.draw(st.sampled_from(["general", "cards"])), note="转")
        elif how == "agent":
            frame = p.Transfer(conv=conv, agent=data.draw(st.sampled_from([x for x in self.agents if x != a])))
        else:
            frame = p.Close(conv=conv, wrapup="done")
        self.act(self.hub.handle(self.desks[a].session, frame))  # type: ignore[union-attr]

    @rule(a=st.sampled_from(agents), data=st.data())
    def agent_transfers_to_a_group(self, a: str, data: st.DataObject) -> None:
        self._hand_on(a, data, "group")

    @rule(a=st.sampled_from(agents), data=st.data())
    def agent_transfers_to_an_agent(self, a: str, data: st.DataObject) -> None:
        self._hand_on(a, data, "agent")

    @rule(a=st.sampled_from(agents), data=st.data())
    def agent_closes(self, a: str, data: st.DataObject) -> None:
        self._hand_on(a, data, "close")

    @rule(a=st.sampled_from(agents))
    def agent_link_drops(self, a: str) -> None:
        wire = self.desks[a]
        if wire is not None and not wire.dead:
            self.run(wire.close(1006))
            self.act(asyncio.sleep(0))

    @rule(a=st.sampled_from(agents))
    def agent_logs_in_again(self, a: str) -> None:
        """With its token and cursors, on a new socket (the old one, if alive, is replaced)."""
        self.act(self._login(a))

    @rule(a=st.sampled_from(agents))
    def agent_grace_ends(self, a: str) -> None:
        if a not in self.hub.agent_sessions:
            self.act(self._call(self.hub._agent_gone, a))  # the grace timer, fired now

    @rule(batches=st.sampled_from([1, 1, 2, None]))
    def commits_land(self, batches: int | None) -> None:
        """Some (or all) of the held-back group commits reach the disk."""

        async def go() -> None:
            await self.gate.release(batches)
            await self._settle()
            if batches is None:
                await self.gate.release(None)  # what the landed writes' callbacks wrote
                await self._settle()
                self.check_quiet()
            await self.gate.hold()

        self.run(go())
        self.raise_violations()

    # invariants ---------------------------------------------------------------------

    @invariant()
    def caps_and_one_agent_per_chat(self) -> None:
        self.raise_violations()
        self.hub.router.check_invariants()
        for conv in self.hub.convs.values():
            chat = self.hub.router.chats.get(conv.id)
            if chat is not None and chat.state == "assigned":
                assert conv.rec.agent_id == chat.agent, f"{conv.id}: hub says {conv.rec.agent_id}, router {chat.agent}"

    @invariant()
    def sockets_see_only_what_they_may(self) -> None:
        seen: dict[str, str] = {}
        for a, session in self.hub.agent_sessions.items():
            held = self.hub.router.agents[a].chats
            extra = session.visible - held
            assert not extra, f"{a}'s socket may see {sorted(extra)}, which it does not hold"
            for conv in session.visible:
                assert conv not in seen, f"{conv} visible to {seen[conv]} and {a}"
                seen[conv] = a
        for c in self.customers:
            if c.session is not None and not c.dead:
                assert c.session.visible <= {c.session.conv}, "a customer may see another chat"

    def check_quiet(self) -> None:
        """Everything is committed: the database, the router and the desks agree."""
        assert self.ro is not None
        for a in self.agents:
            held = self.hub.router.agents[a].chats
            n = self.ro.execute("SELECT COUNT(*) FROM conversations WHERE state='assigned' AND agent_id=?",
                                (a,)).fetchone()[0]  # fmt: skip
            assert n <= self.caps[a], f"{a} holds {n} chats in the database, max {self.caps[a]}"
            stored = {r[0] for r in self.ro.execute(
                "SELECT id FROM conversations WHERE state='assigned' AND agent_id=?", (a,))}  # fmt: skip
            assert stored == held, f"{a}: database says {sorted(stored)}, router {sorted(held)}"
            session = self.hub.agent_sessions.get(a)
            if session is not None:
                assert session.visible == held, f"{a} holds {sorted(held)} but sees {sorted(session.visible)}"
        orphans = self.ro.execute(
            "SELECT COUNT(*) FROM messages WHERE conv_id NOT IN (SELECT id FROM conversations)").fetchone()[0]
        assert orphans == 0


TestHubMachine = HubMachine.TestCase
TestHubMachine.settings = settings(max_examples=scaled(150), stateful_step_count=50, deadline=None,
                                   derandomize=True, suppress_health_check=list(HealthCheck))  # fmt: skip


# ---------------------------------------------------------------------------------
# 3. Deterministic reproductions of what the machine found (all fixed in f0db3d0)
# ---------------------------------------------------------------------------------


async def gated_hub(tmp_path: Path) -> tuple[HubServer, CommitGate]:
    server = await build_hub(hub_config(tmp_path)).start()
    gate = CommitGate(server.hub.store)
    await gate.release()
    return server, gate


async def online_agent(server: HubServer, user: str) -> Client:
    if user not in server.hub.users:
        await server.hub.add_user(user, user, "pw")
    a = await agent(server.url, user)
    await a.send(type="set_status", status="online")
    await a.expect("status", lambda f: f["status"] == "online")
    return a


async def test_a_relogin_shows_a_pending_chat_once_and_only_once_it_is_stored(tmp_path: Path) -> None:
    """Was: _on_login granted every chat the router gave the agent, including one whose assignment
    write was still pending, and Hub._assigned granted it again when the write landed."""
    server, gate = await gated_hub(tmp_path)
    try:
        a1 = await online_agent(server, "a1")
        a2 = await online_agent(server, "a2")
        from .helpers import customer

        c = await customer(server.url)
        await a1.expect("synced", lambda f: f["conv"] == c.conv)
        await c.say("你好")
        await gate.hold()
        await a1.send(type="transfer", conv=c.conv, agent="a2")
        await wait_until(lambda: c.conv in server.hub.router.agents["a2"].chats, what="handed over in memory")
        again = await Client.connect(server.url)  # a2's desk reconnects (token login: no write awaited)
        await again.send(type="login", user="a2", token=a2.token, cursors={})
        await again.expect("login_ok")
        await asyncio.sleep(0.2)
        shown_early = again.of("assigned", c.conv)
        await gate.release()
        await again.expect("synced", lambda f: f["conv"] == c.conv)
        await asyncio.sleep(0.3)
        assert not shown_early, "a2 was shown the chat before its assignment was stored"
        assert len(again.of("assigned", c.conv)) == 1, [f["type"] for f in again.frames]
        seqs = [f["seq"] for f in again.of("msg", c.conv)]
        assert seqs == sorted(set(seqs)), f"history delivered twice: {seqs}"
    finally:
        await gate.release()
        await server.stop()


async def test_a_chat_is_granted_once_when_its_agent_toggles_status_while_the_write_is_pending(
    tmp_path: Path,
) -> None:
    """Was: Hub._assigned only checked the chat's agent when a stale assignment write landed, so an
    agent that went offline and online before the write committed was granted the chat twice."""
    server, gate = await gated_hub(tmp_path)
    try:
        a1 = await online_agent(server, "a1")
        await gate.hold()
        c = await Client.connect(server.url)
        await c.send(type="hello", name="客户")
        await wait_until(lambda: server.hub.router.agents["a1"].chats, what="assigned in memory")
        await a1.send(type="set_status", status="offline")
        await a1.send(type="set_status", status="online")
        await a1.expect("status", lambda f: f["status"] == "online" and f["load"] == 1)
        await gate.release()
        conv = (await c.expect("welcome"))["conv"]
        await a1.expect("synced", lambda f: f["conv"] == conv)
        await asyncio.sleep(0.3)
        assert len(a1.of("assigned", conv)) == 1, [(f["type"], f.get("seq")) for f in a1.frames]
        seqs = [f["seq"] for f in a1.of("msg", conv)]
        assert seqs == sorted(set(seqs)), f"history delivered twice: {seqs}"
    finally:
        await gate.release()
        await server.stop()


async def test_unassigned_never_names_a_chat_the_agent_was_not_shown(tmp_path: Path) -> None:
    """Was: Hub._apply sent 'unassigned' for every Unassigned effect, even for a chat the socket was
    never shown (its assignment never became durable)."""
    server, gate = await gated_hub(tmp_path)
    try:
        a1 = await online_agent(server, "a1")
        await gate.hold()
        c = await Client.connect(server.url)
        await c.send(type="hello", name="客户")
        await wait_until(lambda: server.hub.router.agents["a1"].chats, what="assigned in memory")
        conv = next(iter(server.hub.router.agents["a1"].chats))
        await a1.send(type="set_status", status="away")
        await a1.send(type="set_status", status="offline")  # hands the chat back before it was shown
        await a1.expect("status", lambda f: f["status"] == "offline")
        await gate.release()
        await c.expect("welcome")
        await asyncio.sleep(0.3)
        told = [f["type"] for f in a1.frames if f.get("conv") == conv]
        assert "unassigned" not in told or "assigned" in told[: told.index("unassigned")], told
    finally:
        await gate.release()
        await server.stop()


async def test_the_gate_really_holds_writes(tmp_path: Path) -> None:
    """The machines' premise: with the gate shut, nothing reaches the file."""
    server, gate = await gated_hub(tmp_path)
    try:
        await gate.hold()
        c = await Client.connect(server.url)
        await c.send(type="hello", name="客户")
        await asyncio.sleep(0.2)
        ro = sqlite3.connect(f"file:{tmp_path / 'hub.db'}?mode=ro", uri=True)
        with contextlib.closing(ro):
            assert ro.execute("SELECT COUNT(*) FROM conversations").fetchone()[0] == 0
        assert not c.of("welcome")
        await gate.release()
        await c.expect("welcome")
    finally:
        await gate.release()
        await server.stop()
