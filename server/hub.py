"""The hub: conversations, sequence numbers, delivery, and the bot seam.

The websocket layer (net.py) decodes frames and calls ``Hub.handle``; the
router (routing.py) decides who serves whom; the store makes things durable.
The hub ties them together with two rules:

* a message gets its sequence number when it is submitted; it is delivered
  once it is written (it then survives a crash of the hub) and acked to its
  sender once it is durable (it then survives a power cut), in submission
  order. A power cut can take back a message shown but not yet acked, and the
  next run can give its seq to another; so every message also carries the
  run of the hub that numbered it (``hub_epoch``), a client's cursor is (seq,
  epoch), and a cursor that names a message not stored gets a resync;
* a session sees a conversation only while it is in ``session.visible``:
  visibility is granted after the assignment is durable, and withdrawn at
  once when the assignment ends, so no frame reaches a socket whose principal
  may not see that conversation at that moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from . import protocol as p
from .auth import hash_password, new_id, new_token, token_hash, verify_password
from .board import BoardFeed
from .botstage import URGENT, BotContext, BotStage, BotTurn, NoBot
from .config import HubConfig
from .masking import mask_at_rest
from .metrics import Metrics
from .phrases import PhraseService
from .routing import (
    NORMAL,
    PRIORITY_NAMES,
    Assigned,
    Dequeued,
    Effect,
    Queued,
    Router,
    RoutingError,
    Unassigned,
    priority_class,
)
from .session import CLOSE_LOGGED_OUT, CLOSE_REPLACED, Session
from .stats import DayStats, day_start
from .store import ConversationRecord, MessageRecord, StoreError, UserRecord
from .store.sqlite import SQLiteStore

log = logging.getLogger("hub")

TEXTS = {
    "zh": {
        "joined": "客服 {agent} 已接入，为您服务。",
        "queued": "正在为您转接人工客服，请稍候。",
        "transfer": "正在为您转接至{target}，请稍候，您无需重复描述问题。",
        "requeued": "客服连接中断，已为您优先重新排队，请稍候。",
        "closed": "本次服务已结束，感谢您的咨询。请对本次服务进行评价。",
        "ended": "您已结束本次对话，感谢您的咨询。请对本次服务进行评价。",
        "idle": "由于长时间未收到您的消息，本次对话已结束。如需帮助，欢迎再次咨询。",
        "abandoned": "您已离开排队，本次对话已结束。",
        "group": "{group}专席",
    },
    "en": {
        "joined": "Agent {agent} has joined the chat.",
        "queued": "Connecting you to an agent, please wait.",
        "transfer": "Transferring you to {target}; you will not need to repeat yourself.",
        "requeued": "Your agent was disconnected; you are back at the front of the queue.",
        "closed": "This chat has ended. Thank you. Please rate our service.",
        "ended": "You ended the chat. Thank you. Please rate our service.",
        "idle": "This chat was closed after a long silence. Contact us again any time.",
        "abandoned": "You left the queue; this chat has ended.",
        "group": "the {group} team",
    },
}


def _t(lang: str, key: str, **kw: str) -> str:
    return TEXTS.get(lang, TEXTS["zh"])[key].format(**kw)


@dataclass(slots=True)
class Conversation:
    """A conversation the hub holds in memory (every one not closed)."""

    rec: ConversationRecord
    last_seq: int = 0  # the newest seq handed out (maybe not yet written)
    committed_seq: int = 0  # the newest seq written, so shown (maybe not yet synced)
    # (sender id, msg id) -> (seq, hub epoch, future or None once durable): dedupe of resends
    msg_ids: dict[tuple[str, str], tuple[int, int, asyncio.Future[None] | None]] = field(
        default_factory=dict
    )
    customer: Session | None = None
    watchers: set[Session] = field(default_factory=set)
    customer_last_at: float = 0.0
    unanswered_since: float | None = None  # oldest customer line the agent has not answered
    queue_sent: tuple[int, int | None] | None = None
    grace: asyncio.TimerHandle | None = None
    # Each assignment gets a new epoch; only the write of the current one may
    # show the chat, and only once it is durable (`durable_agent`).
    epoch: int = 0
    durable_agent: str | None = None

    @property
    def id(self) -> str:
        return self.rec.id


class Hub:
    def __init__(
        self,
        config: HubConfig,
        store: SQLiteStore | None = None,
        bot: BotStage | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store or SQLiteStore(config.db_path, synchronous=config.sqlite_synchronous)
        self.bot: BotStage = bot or NoBot(config.default_group)
        # The built-in bot is loaded from config.kb_path at start unless a bot
        # was handed in; the file's mtime tells the maintenance tick to reload.
        self._kb_owned = bot is None and config.kb_path is not None
        self._kb_mtime = 0.0
        self.clock = clock
        self.router = Router()
        self.convs: dict[str, Conversation] = {}
        self.by_token: dict[str, str] = {}  # customer token hash -> conv id
        self.users: dict[str, UserRecord] = {}  # staff seen since start
        self.agent_sessions: dict[str, Session] = {}
        self.supervisors: set[Session] = set()
        self.sessions: set[Session] = set()
        self.hands: dict[str, float] = {}  # agent id -> raised at
        self.logged_in_at: dict[str, float] = {}
        self._agent_grace: dict[str, asyncio.TimerHandle] = {}
        self._failures: dict[str, deque[float]] = {}
        self._attempts: dict[str, list[tuple[float, object]]] = {}  # logins being checked now
        self.revoked: set[str] = set()  # token hashes logged out since start
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.metrics = Metrics()
        self.board = BoardFeed(self)
        self.phrasebook = PhraseService(self)
        self.stats = DayStats(clock)
        self._maintainer: asyncio.Task[None] | None = None
        self.started = False
        self.hub_epoch = 0  # this run of the hub (set at start): numbers its messages with seqs

    # ------------------------------------------------------------------
    # life
    # ------------------------------------------------------------------

    async def start(self) -> None:
        await self.store.open()
        self.hub_epoch = await self.store.next_epoch()
        if self._kb_owned:
            ok, problem = await self.reload_kb(actor="hub")
            if not ok:
                raise RuntimeError(f"cannot load the knowledge base: {problem}")
        await self._restore()
        await self._log_audit_head()
        await self.phrasebook.load()
        self.stats.load(await self.store.conversations_since(day_start(self.clock())))
        self._sweeper = asyncio.create_task(self._sweep_idle(), name="idle-sweeper")
        self._maintainer = asyncio.create_task(self._maintain(), name="maintenance")
        # Objects from start-up live as long as the hub: keep them out of the
        # cyclic collector's way so its pauses stay short.
        gc.freeze()
        self.started = True

    async def stop(self) -> None:
        """Drain: every write submitted so far is made durable, then the store closes."""
        self.started = False
        for task in (self._sweeper, self._maintainer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for handle in self._agent_grace.values():
            handle.cancel()
        for conv in self.convs.values():
            if conv.grace is not None:
                conv.grace.cancel()
        self.board.stop()
        for task in list(self._tasks):
            task.cancel()
        await self.store.close()

    async def _restore(self) -> None:
        """Rebuild queues and assignments from the database after a (re)start."""
        now = self.clock()
        for user in await self.store.list_users():  # every agent is on the board from the start
            if user.role == "agent" and not user.disabled:
                await self._load_user(user.id)
        records = await self.store.open_conversations()
        ids = [r.id for r in records]
        seqs = await self.store.last_seqs(ids)
        sent = await self.store.message_ids(ids)
        for rec in records:
            conv = Conversation(rec, customer_last_at=now)
            conv.last_seq = conv.committed_seq = seqs.get(rec.id, 0)
            self.convs[rec.id] = conv
            self.by_token[rec.token_hash] = rec.id
            if rec.state == "bot":
                self.router.track(rec.id)
            elif rec.state == "queued":
                self.router.restore_queued(
                    rec.id, rec.grp, rec.klass, rec.asked_at, rec.front, rec.exclude_agent
                )
                self._start_customer_grace(conv)
            elif rec.state == "assigned" and rec.agent_id:
                user = await self._load_user(rec.agent_id)
                if user is None:  # the agent was deleted: the chat waits again
                    self.router.restore_queued(rec.id, rec.grp, rec.klass, rec.asked_at, True, None)
                    continue
                self.router.restore_assigned(rec.id, rec.grp, rec.klass, rec.agent_id, rec.assigned_at)
                conv.durable_agent = rec.agent_id  # it came from the database
        for (conv_id, sender, msg_id), (seq, epoch) in sent.items():
            self.convs[conv_id].msg_ids[(sender, msg_id)] = (seq, epoch, None)
        # Agents holding chats are not connected after a restart: their grace starts now.
        for agent in self.router.agents.values():
            if agent.chats:
                self._start_agent_grace(agent.id)
        log.info(
            "restored %d open conversations (%d waiting, %d assigned)",
            len(records),
            sum(1 for r in records if r.state == "queued"),
            sum(1 for r in records if r.state == "assigned"),
        )

    async def _load_user(self, user_id: str) -> UserRecord | None:
        user = await self.store.get_user(user_id)
        if user is None:
            return None
        self.users[user.id] = user
        if user.role == "agent":
            known = user.id in self.router.agents
            self._apply(self.router.upsert_agent(user.id, user.groups, user.max_chats, self.clock()))
            if not known:  # the hub's own view wins over a status write still in flight
                self.router.agents[user.id].status = user.status
            else:
                user.status = self.router.agents[user.id].status
        return user

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------
    # frames
    # ------------------------------------------------------------------

    async def handle(self, session: Session, frame: p.Frame) -> None:
        """Carry out one decoded client frame for `session`."""
        handler = getattr(self, _HANDLERS[type(frame)])
        if session.role == "" and not isinstance(frame, (p.Hello, p.Login)):
            session.error("not_logged_in", "send hello (customer) or login (staff) first", ref=_tag(frame))
            return
        allowed = _ROLES[type(frame)]
        if session.role and session.role not in allowed:
            session.error("forbidden", f"{session.role} may not send {_tag(frame)}", ref=_tag(frame))
            return
        try:
            await handler(session, frame)
        except RoutingError as exc:
            session.error(exc.code, str(exc), ref=_tag(frame), conv=getattr(frame, "conv", "") or "")

    def connected(self, session: Session) -> None:
        self.sessions.add(session)

    def disconnected(self, session: Session) -> None:
        """The socket is gone: start grace periods; nothing is dropped."""
        self.sessions.discard(session)
        session.closed = True
        now = self.clock()
        if session.role == "customer":
            conv = self.convs.get(session.conv)
            if conv is not None and conv.customer is session:
                conv.customer = None
                if conv.rec.state == "queued":
                    self._start_customer_grace(conv)
                elif conv.rec.state == "assigned":
                    self._to_agent(conv, p.Presence(conv=conv.id, online=False))
        elif session.role == "agent":
            agent_id = session.principal
            if self.agent_sessions.get(agent_id) is session:
                del self.agent_sessions[agent_id]
                self.router.disconnect(agent_id, now)
                self._start_agent_grace(agent_id)
                self.store.audit(agent_id, "disconnect", detail={"peer": session.peer})
                self.board.touch_agent(agent_id)
                self._refresh_agent_groups(agent_id)
        elif session.role == "supervisor":
            self.supervisors.discard(session)
        for conv in self.convs.values():
            conv.watchers.discard(session)

    # -- customers -------------------------------------------------------

    async def _on_hello(self, session: Session, f: p.Hello) -> None:
        if session.role == "customer":
            current = self.convs.get(session.conv)
            if current is not None and current.rec.state != "closed":
                session.error("invalid_state", "this connection already has an open chat", ref="hello")
                return
        elif session.role:
            session.error("forbidden", "staff sessions cannot start chats", ref="hello")
            return
        if f.resume_token:
            await self._resume_customer(session, f)
        else:
            self._start_chat(session, f)

    def _start_chat(self, session: Session, f: p.Hello) -> None:
        now = self.clock()
        token = new_token()
        rec = ConversationRecord(
            id=new_id("c"),
            # Every free-text field is masked like a message: a card number typed
            # as a name must not be stored or shown either.
            customer_name=mask_at_rest(f.name.strip()) or "customer",
            channel=mask_at_rest(f.channel),
            flags=sorted({mask_at_rest(flag) for flag in f.flags}),
            lang=f.lang,
            token_hash=token_hash(token),
            grp=self.config.default_group,
            created_at=now,
        )
        conv = Conversation(rec, customer_last_at=now, customer=session)
        self.convs[rec.id] = conv
        self.by_token[rec.token_hash] = rec.id
        self.router.track(rec.id)
        session.role, session.principal, session.conv, session.name = "customer", rec.id, rec.id, rec.customer_name
        session.visible.clear()
        self.metrics.chats_started += 1
        self.stats.chat_started()

        # Welcomed once the chat is durable (a token always names a stored
        # chat). The bot's greeting is written with it and shown at once: it
        # is held for this socket until then (never sent before the welcome).
        session.begin_sync(rec.id)

        def welcome(fut: asyncio.Future[None]) -> None:
            if fut.exception() is not None:
                session.drop_sync(rec.id)
                session.error("store_failed", "could not start the chat; try again", ref="hello")
                return
            session.visible.add(rec.id)
            session.send(p.Welcome(conv=rec.id, resume_token=token, resumed=False,
                                   state=rec.state, last_seq=0))  # type: ignore[arg-type]
            if rec.state == "queued":
                session.send(p.ConvState(conv=rec.id, state="queued", reason="queued"))
                conv.queue_sent = None
                self._refresh_queue(rec.grp)
            session.end_sync(rec.id, 0)

        self.store.insert_conversation(rec).add_done_callback(welcome)
        self._bot_turn(conv, self.bot.greet(self._bot_context(conv)))

    async def _resume_customer(self, session: Session, f: p.Hello) -> None:
        th = token_hash(f.resume_token or "")
        conv_id = self.by_token.get(th)
        conv = self.convs.get(conv_id) if conv_id else None
        rec = conv.rec if conv else await self.store.conversation_by_token(th)
        if rec is None:
            session.error("unknown_token", "resume token unknown: start a new chat with hello", ref="hello")
            return
        session.role, session.principal, session.conv, session.name = "customer", rec.id, rec.id, rec.customer_name
        session.visible.clear()
        last_known = conv.committed_seq if conv else (await self.store.last_seqs([rec.id])).get(rec.id, 0)
        if conv is not None:
            if conv.customer is not None and conv.customer is not session:
                conv.customer.kill(CLOSE_REPLACED, "resumed elsewhere")
            elif conv.customer is None and rec.state == "assigned":
                self._to_agent(conv, p.Presence(conv=conv.id, online=True))
            conv.customer = session
            conv.customer_last_at = self.clock()
            if conv.grace is not None:
                conv.grace.cancel()
                conv.grace = None
        session.visible.add(rec.id)
        session.send(p.Welcome(conv=rec.id, resume_token=f.resume_token or "", resumed=True,
                               state=rec.state, last_seq=last_known))  # type: ignore[arg-type]
        await self._replay(session, rec.id, f.last_seq, include_staff=False, epoch=f.last_epoch)
        if conv is not None:
            if rec.state == "assigned" and rec.agent_id:
                session.send(p.ConvState(conv=rec.id, state="assigned", agent_name=self._name(rec.agent_id)))
            elif rec.state == "queued":
                conv.queue_sent = None
                self._refresh_queue(rec.grp)

    async def _on_requesthuman(self, session: Session, f: p.RequestHuman) -> None:
        conv = self._customer_conv(session, f.conv, "request_human")
        if conv is None:
            return
        if conv.rec.state == "bot":
            handoff = dict(conv.rec.handoff) or {"group": self.config.default_group}
            handoff["reason"] = "customer_asked"
            self._handoff(conv, handoff)
        session.send(p.Ok(ref="request_human", conv=conv.id))

    async def _on_end(self, session: Session, f: p.End) -> None:
        conv = self._customer_conv(session, f.conv, "end")
        if conv is None:
            return
        if conv.rec.state == "closed":
            session.error("invalid_state", "the chat is already closed", ref="end", conv=conv.id)
            return
        self._close(conv, closed_by="customer", reason="customer_ended", notice="ended")

    async def _on_rate(self, session: Session, f: p.Rate) -> None:
        if session.conv != f.conv:
            self._forbidden(session, f.conv, "rate")
            return
        conv = self.convs.get(f.conv)
        rec = conv.rec if conv else await self.store.get_conversation(f.conv)
        if rec is None:
            self._forbidden(session, f.conv, "rate")
            return
        if rec.state != "closed":
            session.error("invalid_state", "rate the chat after it has ended", ref="rate", conv=f.conv)
            return
        if rec.rating:
            session.error("already_rated", "this chat has been rated", ref="rate", conv=f.conv)
            return
        prior = (rec.rating, rec.rating_comment, rec.rated_at)
        rec.rating, rec.rating_comment, rec.rated_at = f.score, mask_at_rest(f.comment), self.clock()
        fut = self.store.update_conversation(f.conv, rating=f.score, rating_comment=rec.rating_comment,
                                             rated_at=rec.rated_at)  # fmt: skip

        def counted(done: asyncio.Future[None]) -> None:
            if done.cancelled() or done.exception() is not None:  # not stored: the customer may rate again
                rec.rating, rec.rating_comment, rec.rated_at = prior
                return
            self.stats.rated(rec.last_agent, f.score)
            if rec.last_agent:
                self.board.touch_agent(rec.last_agent)
            self.metrics.ratings[f.score] = self.metrics.ratings.get(f.score, 0) + 1

        fut.add_done_callback(counted)
        _ok_when_stored(session, fut, "rate", f.conv, failed="not stored; rate again")

    # -- staff ------------------------------------------------------------

    async def _on_login(self, session: Session, f: p.Login) -> None:
        if session.role:
            session.error("invalid_state", "already logged in", ref="login")
            return
        now = self.clock()
        if self._throttled(f.user, session.peer, now):
            self.store.audit(f.user, "login_throttled", detail={"peer": session.peer})
            session.error("throttled", "too many failed logins; wait a minute and try again", ref="login")
            return
        # Count this attempt before the slow password check, so a burst of
        # parallel guesses meets the throttle too; a success takes it back.
        attempt = (now, object())
        self._attempts.setdefault(f.user, []).append(attempt)
        try:
            await self._login_checked(session, f, now)
        finally:
            with contextlib.suppress(ValueError):
                self._attempts[f.user].remove(attempt)

    async def _login_checked(self, session: Session, f: p.Login, now: float) -> None:
        user = await self._load_user(f.user)
        sess_id = ""
        ok = False
        if user is not None and not user.disabled:
            if f.token:
                found = await self.store.token_user(token_hash(f.token))
                if found is not None and found[0] == user.id:
                    ok, sess_id = True, found[1]
            elif f.password is not None:
                ok = await asyncio.to_thread(verify_password, f.password, user.pw_hash)
        if not ok or user is None:
            self._failures.setdefault(f.user, deque()).append(now)
            self._failures.setdefault("@" + session.peer, deque()).append(now)
            self.metrics.failed_logins += 1
            reason = "disabled" if user is not None and user.disabled else "bad_credentials"
            self.store.audit(f.user, "login_failed", detail={"peer": session.peer, "reason": reason})
            self.board.alert("failed_login", f.user)
            session.error("bad_credentials", "wrong user, password or token", ref="login")
            return
        token = f.token or new_token()
        th = token_hash(token)
        if not f.token:
            sess_id = new_id("s")
            await self.store.add_token(th, user.id, sess_id, now)  # valid before it is handed out
        if th in self.revoked:  # logged out while this login was being checked
            session.error("bad_credentials", "wrong user, password or token", ref="login")
            session.kill(CLOSE_LOGGED_OUT, "logged out")
            return
        session.role, session.principal, session.name, session.token_hash = user.role, user.id, user.name, th
        self.store.audit(user.id, "login", detail={"peer": session.peer, "session": sess_id,
                                                    "via": "token" if f.token else "password"})
        if user.role == "supervisor":
            self.supervisors.add(session)
            session.send(p.LoginOk(user=user.id, role="supervisor", name=user.name, token=token, session=sess_id))
            self.board.send_full(session)
            return
        old = self.agent_sessions.get(user.id)
        if old is not None and old is not session:
            old.kill(CLOSE_REPLACED, "logged in elsewhere")
        self.agent_sessions[user.id] = session
        self.logged_in_at.setdefault(user.id, now)
        grace = self._agent_grace.pop(user.id, None)
        if grace is not None:
            grace.cancel()
        agent = self.router.agents[user.id]
        session.send(p.LoginOk(user=user.id, role="agent", name=user.name, token=token, session=sess_id,
                               status=agent.status, max_chats=agent.max_chats,
                               groups=sorted(agent.groups)))  # type: ignore[arg-type]
        for conv_id in sorted(agent.chats):
            conv = self.convs.get(conv_id)
            if conv is not None and conv.durable_agent == user.id:  # pending ones come when stored
                self._grant(user.id, conv_id, after=f.cursors.get(conv_id, 0), resumed=conv_id in f.cursors,
                            epoch=f.epochs.get(conv_id, 0))
        for conv_id in f.cursors:
            if conv_id not in agent.chats:
                session.send(p.Unassigned(conv=conv_id, reason="not_yours"))
        self._apply(self.router.connect(user.id, now))
        self._send_status(user.id)
        self._refresh_agent_groups(user.id)
        self.board.touch_agent(user.id)

    def _throttled(self, user: str, peer: str, now: float) -> bool:
        window, limit = self.config.login_window_s, self.config.login_failures
        for key in (user, "@" + peer):
            q = self._failures.get(key, deque())
            while q and q[0] < now - window:
                q.popleft()
            # Logins of one user still being checked count as failures to come;
            # for an address they do not (a whole office may log in at once).
            pending = len(self._attempts.get(key, ())) if key == user else 0
            if len(q) + pending >= limit:
                return True
        return False

    async def _on_logout(self, session: Session, f: p.Logout) -> None:
        if session.role == "customer":
            session.error("forbidden", "customers end chats with end", ref="logout")
            return
        self.revoked.add(session.token_hash)
        self.store.revoke_token(session.token_hash, self.clock())
        self.store.audit(session.principal, "logout")
        await self.store.barrier()
        for other in list(self.sessions):
            if other.token_hash == session.token_hash:
                other.kill(CLOSE_LOGGED_OUT, "logged out")

    async def _on_setstatus(self, session: Session, f: p.SetStatus) -> None:
        agent_id = session.principal
        self._apply(self.router.set_status(agent_id, f.status, self.clock()))
        self.store.set_user_status(agent_id, f.status)
        self.store.audit(agent_id, "status", detail={"status": f.status})
        if agent_id in self.users:
            self.users[agent_id].status = f.status
        self._send_status(agent_id)
        self._refresh_agent_groups(agent_id)
        self.board.touch_agent(agent_id)

    async def _on_raisehand(self, session: Session, f: p.RaiseHand) -> None:
        agent_id = session.principal
        agent = self.router.agents.get(agent_id)
        if f.conv and (agent is None or f.conv not in agent.chats):
            # About a chat that is not (or no longer) this agent's: the hand still
            # goes up, but it names no chat, nor another agent's customer.
            f = p.RaiseHand(on=f.on, conv=None, note=f.note)
        if f.on:
            self.hands[agent_id] = self.clock()
            self.board.alert("raised_hand", agent_id, conv=f.conv or "")
        else:
            self.hands.pop(agent_id, None)
        self.store.audit(agent_id, "raise_hand" if f.on else "lower_hand",
                         target=f.conv or "", detail={"note": mask_at_rest(f.note)})
        self.board.touch_agent(agent_id)
        session.send(p.Ok(ref="raise_hand", conv=f.conv or ""))

    async def _on_note(self, session: Session, f: p.Note) -> None:
        conv = self._agent_conv(session, f.conv, "note")
        if conv is None or not self._check_len(session, f.text, p.MAX_NOTE_CHARS, f.msg_id, conv.id):
            return
        self._post(session, conv, f.msg_id, f.text, kind="note", sender="agent")

    async def _on_transfer(self, session: Session, f: p.Transfer) -> None:
        conv = self._agent_conv(session, f.conv, "transfer")
        if conv is None:
            return
        if (f.group is None) == (f.agent is None):
            session.error("bad_frame", "give exactly one of group or agent", ref="transfer", conv=f.conv)
            return
        now, agent_id = self.clock(), session.principal
        if f.group is not None:
            if f.group not in set(self.router.groups()) | {self.config.default_group}:
                session.error("unknown_group", f"no skill group {f.group!r}", ref="transfer", conv=f.conv)
                return
            effects = self.router.transfer_to_group(conv.id, f.group, now)
            target = _t(conv.rec.lang, "group", group=f.group)
        else:
            effects = self.router.transfer_to_agent(conv.id, f.agent or "", now)
            target = self._name(f.agent or "")
        note = mask_at_rest(f.note)
        conv.rec.transfers += 1
        conv.rec.handoff = {**conv.rec.handoff, "reason": "transfer", "transfer_note": note,
                            "transferred_from": self._name(agent_id)}
        writes = [self.store.update_conversation(conv.id, transfers=conv.rec.transfers, handoff=conv.rec.handoff),
                  self.store.add_transfer(conv.id, agent_id, f.group or "", f.agent or "", note, now)]
        self.store.audit(agent_id, "transfer", target=conv.id,
                         detail={"group": f.group or "", "agent": f.agent or ""})
        if note:
            self._append(conv, kind="note", sender="agent", sender_id=agent_id,
                         sender_name=self._name(agent_id), text=f"[转接备注] {note}")
        self._append(conv, kind="system", sender="system", text=_t(conv.rec.lang, "transfer", target=target))
        self._apply(effects, reasons={conv.id: "transferred"})
        # ok means the transfer is stored, and durable with the moves it caused
        writes.append(self.store.barrier())
        _ok_when_stored(session, asyncio.gather(*writes), "transfer", conv.id)

    async def _on_close(self, session: Session, f: p.Close) -> None:
        conv = self._agent_conv(session, f.conv, "close")
        if conv is None:
            return
        wrap = {"wrapup_code": f.wrapup, "wrapup_note": mask_at_rest(f.note)} if f.wrapup else {}
        fut = self._close(conv, closed_by=session.principal, reason="agent_closed", notice="closed", **wrap)
        self.store.audit(session.principal, "close", target=conv.id, detail={"wrapup": f.wrapup or ""})
        _ok_when_stored(session, fut, "close", conv.id)

    async def _on_wrapup(self, session: Session, f: p.Wrapup) -> None:
        await self.store.barrier()  # a close just sent must be visible to the read below
        rec = await self.store.get_conversation(f.conv)
        if rec is None or rec.closed_by != session.principal:
            self._forbidden(session, f.conv, "wrapup")
            return
        fut = self.store.update_conversation(f.conv, wrapup_code=f.code, wrapup_note=mask_at_rest(f.note))
        self.store.audit(session.principal, "wrapup", target=f.conv, detail={"code": f.code})
        _ok_when_stored(session, fut, "wrapup", f.conv)

    # -- phrasebook --------------------------------------------------------

    async def _on_phrasesget(self, session: Session, f: p.PhrasesGet) -> None:
        self.phrasebook.send_all(session)

    async def _on_phrasesave(self, session: Session, f: p.PhraseSave) -> None:
        self.phrasebook.save(session, f.phrase)

    async def _on_phrasedelete(self, session: Session, f: p.PhraseDelete) -> None:
        self.phrasebook.delete(session, f.id)

    async def _on_phraseused(self, session: Session, f: p.PhraseUsed) -> None:
        self.phrasebook.used(session, f.id, f.conv)

    async def _on_reveal(self, session: Session, f: p.Reveal) -> None:
        conv = self._agent_conv(session, f.conv, "reveal")
        if conv is None:
            return
        fut = self.store.audit(session.principal, "reveal", target=conv.id, detail={"seq": f.seq})
        _ok_when_stored(session, fut, "reveal", conv.id)

    async def _on_directoryget(self, session: Session, f: p.DirectoryGet) -> None:
        groups = set(self.router.groups()) | {self.config.default_group}
        kb = getattr(self.bot, "kb", None)
        if kb is not None:
            groups |= {e.group for e in kb.entries}
        agents = [
            p.DirectoryAgent(id=a.id, name=self._name(a.id), status=a.status, connected=a.connected,
                             load=len(a.chats), max_chats=a.max_chats, groups=sorted(a.groups))
            for a in sorted(self.router.agents.values(), key=lambda a: a.id)
        ]  # fmt: skip
        session.send(p.Directory(groups=[self.board.queue_row(g) for g in sorted(groups)], agents=agents))

    # -- supervisors ---------------------------------------------------------

    async def _on_watch(self, session: Session, f: p.Watch) -> None:
        conv = self.convs.get(f.conv)
        if not f.on:
            session.visible.discard(f.conv)
            session.drop_sync(f.conv)
            if conv is not None:
                conv.watchers.discard(session)
            session.send(p.Ok(ref="watch", conv=f.conv))
            return
        if conv is None:
            self._forbidden(session, f.conv, "watch")
            return
        conv.watchers.add(session)
        session.visible.add(conv.id)
        self.store.audit(session.principal, "watch", target=conv.id)
        self._send_watching(session, conv)
        session.begin_sync(conv.id)
        self.spawn(self._replay(session, conv.id, 0, include_staff=True))

    def _send_watching(self, session: Session, conv: Conversation) -> None:
        rec = conv.rec
        h = rec.handoff
        session.send(p.Watching(
            conv=rec.id, agent=rec.agent_id or "", state=rec.state, last_seq=conv.committed_seq,
            customer=p.CustomerInfo(name=rec.customer_name, channel=rec.channel, flags=rec.flags, lang=rec.lang,
                                    online=conv.customer is not None),
            handoff=p.HandoffInfo(reason=h.get("reason", ""), group=rec.grp, priority=PRIORITY_NAMES.get(rec.klass, "normal"),
                                  intents=list(h.get("intents", [])), bot_misses=int(h.get("bot_misses", 0)),
                                  transfer_note=h.get("transfer_note", ""), transferred_from=h.get("transferred_from", "")),
        ))  # fmt: skip

    async def _on_whisper(self, session: Session, f: p.Whisper) -> None:
        conv = self.convs.get(f.conv)
        if conv is None or conv.rec.state != "assigned" or session not in conv.watchers:
            self._forbidden(session, f.conv, f.msg_id)
            return
        if not self._check_len(session, f.text, p.MAX_NOTE_CHARS, f.msg_id, conv.id):
            return
        self.store.audit(session.principal, "whisper", target=conv.id, detail={"agent": conv.rec.agent_id or ""})
        self._post(session, conv, f.msg_id, f.text, kind="note", sender="supervisor")

    async def _on_reassign(self, session: Session, f: p.Reassign) -> None:
        conv = self.convs.get(f.conv)
        if conv is None:
            self._forbidden(session, f.conv, "reassign")
            return
        if f.waiting_only and conv.rec.state != "queued":
            holder = f" (now with {conv.rec.agent_id})" if conv.rec.agent_id else ""
            session.error("not_waiting", f"the chat no longer waits{holder}", ref="reassign", conv=conv.id)
            return
        effects = self.router.transfer_to_agent(conv.id, f.agent, self.clock(), reason="reassigned")
        conv.rec.transfers += 1
        moved = self.store.update_conversation(conv.id, transfers=conv.rec.transfers)
        self.store.audit(session.principal, "reassign", target=conv.id, detail={"agent": f.agent})
        self._apply(effects, reasons={conv.id: "reassigned"})
        _ok_when_stored(session, asyncio.gather(moved, self.store.barrier()), "reassign", conv.id)

    async def _on_agentset(self, session: Session, f: p.AgentSet) -> None:
        user = await self._load_user(f.agent)
        if user is None or user.role != "agent":
            session.error("unknown_agent", f"no agent {f.agent!r}", ref="agent_set")
            return
        now = self.clock()
        if f.max_chats is not None:
            user.max_chats = f.max_chats
            self.store.put_user(user)
            self._apply(self.router.upsert_agent(user.id, user.groups, f.max_chats, now))
        if f.status is not None:
            self._apply(self.router.set_status(user.id, f.status, now))
            self.store.set_user_status(user.id, f.status)
            user.status = f.status
        self.store.audit(session.principal, "agent_set", target=user.id,
                         detail={"status": f.status or "", "max_chats": f.max_chats})  # fmt: skip
        self._send_status(user.id)
        self._refresh_agent_groups(user.id)
        self.board.touch_agent(user.id)
        session.send(p.Ok(ref="agent_set"))

    async def _on_auditget(self, session: Session, f: p.AuditGet) -> None:
        await self.store.barrier()  # include every action taken before this request
        rows = await self.store.audit_page(f.limit, f.before_id, f.action)
        session.send(p.AuditRows(rows=[p.AuditEntry(id=r.id, ts=r.ts, actor=r.actor, action=r.action,
                                                    target=r.target, detail=r.detail) for r in rows]))  # fmt: skip

    async def _on_phrasestatsget(self, session: Session, f: p.PhraseStatsGet) -> None:
        today = await self.store.phrase_uses_since(day_start(self.clock()))
        total = self.phrasebook.usage.phrase_counts()
        ids = sorted(set(today) | set(total), key=lambda i: (-today.get(i, 0), -total.get(i, 0), i))[: f.limit]
        rows = []
        for pid in ids:
            ph = self.phrasebook.phrases.get(pid)
            rows.append((pid, ph.code if ph else "", ph.title if ph else "", today.get(pid, 0), total.get(pid, 0)))
        session.send(p.PhraseStats(rows=rows))

    # -- the bot's knowledge base -----------------------------------------

    async def _on_kbreload(self, session: Session, f: p.KbReload) -> None:
        ok, problem = await self.reload_kb(actor=session.principal)
        if ok:
            session.send(p.Ok(ref="kb_reload"))
        else:
            session.error("kb_invalid", problem, ref="kb_reload")

    async def _on_botmissesget(self, session: Session, f: p.BotMissesGet) -> None:
        session.send(p.BotMisses(rows=await self.store.top_misses(f.limit)))

    # -- both -------------------------------------------------------------

    async def _on_send(self, session: Session, f: p.Send) -> None:
        if session.role == "customer":
            conv = self._customer_conv(session, f.conv, "send", msg_id=f.msg_id)
            if conv is None:
                return
            if conv.rec.state == "closed":
                session.error("invalid_state", "the chat has ended", ref=f.msg_id, conv=conv.id)
                return
        else:
            conv = self._agent_conv(session, f.conv, "send", msg_id=f.msg_id)
            if conv is None:
                return
        if not self._check_len(session, f.text, p.MAX_TEXT_CHARS, f.msg_id, conv.id):
            return
        fresh = self._post(session, conv, f.msg_id, f.text, kind="text", sender=session.role)
        if not fresh:
            return
        now = self.clock()
        if session.role == "customer":
            conv.customer_last_at = now
            if conv.rec.state == "assigned" and conv.unanswered_since is None:
                conv.unanswered_since = now
                if conv.rec.agent_id:
                    self.board.touch_agent(conv.rec.agent_id)
            if conv.rec.state in ("bot", "queued"):
                question = mask_at_rest(f.text)
                self._bot_turn(conv, self.bot.answer(self._bot_context(conv), question), question)
        else:
            if conv.unanswered_since is not None:
                conv.unanswered_since = None
                self.board.touch_agent(session.principal)
            if conv.rec.first_response_at is None:
                conv.rec.first_response_at = now
                self.store.update_conversation(conv.id, first_response_at=now)
                self.metrics.first_response_s.append(now - conv.rec.assigned_at)
                self.stats.responded(session.principal, now - conv.rec.assigned_at)

    async def _on_typing(self, session: Session, f: p.Typing) -> None:
        if session.role == "customer":
            conv = self._customer_conv(session, f.conv, "typing")
            if conv is None:
                return
            conv.customer_last_at = self.clock()
            self._to_agent(conv, p.TypingEvent(conv=conv.id, who="customer", on=f.on))
        else:
            conv = self._agent_conv(session, f.conv, "typing")
            if conv is not None:
                self._to_customer(conv, p.TypingEvent(conv=conv.id, who="agent", on=f.on, name=session.name))

    # ------------------------------------------------------------------
    # messages
    # ------------------------------------------------------------------

    def _post(self, session: Session, conv: Conversation, msg_id: str, text: str, kind: str, sender: str) -> bool:
        """Store a client's message (once, whatever the resends); ack when durable.
        Returns False for a duplicate."""
        key = (session.principal if session.role != "customer" else "customer", msg_id)
        known = conv.msg_ids.get(key)
        if known is not None:
            seq, epoch, fut = known
            ack = p.Ack(conv=conv.id, msg_id=msg_id, seq=seq, duplicate=True, epoch=epoch)
            if fut is None or fut.done():
                session.send(ack)
            else:
                _then(fut, lambda: session.send(ack))
            return False
        received = time.perf_counter()

        def acked(ok: bool) -> None:
            if not ok:
                conv.msg_ids.pop(key, None)  # a resend may try again
                session.error("store_failed", "not stored; send again", ref=msg_id, conv=conv.id)
                return
            conv.msg_ids[key] = (seq, self.hub_epoch, None)
            session.send(p.Ack(conv=conv.id, msg_id=msg_id, seq=seq, epoch=self.hub_epoch))
            self.metrics.observe_ack(time.perf_counter() - received)

        seq, fut = self._append(
            conv, kind=kind, sender=sender, sender_id=key[0], sender_name=session.name,
            text=mask_at_rest(text), msg_id=msg_id, then=acked,
        )  # fmt: skip
        conv.msg_ids[key] = (seq, self.hub_epoch, fut)
        self.metrics.messages += 1
        return True

    def _append(
        self, conv: Conversation, *, kind: str, sender: str, text: str,
        sender_id: str = "", sender_name: str = "", msg_id: str = "",
        then: Callable[[bool], None] | None = None,
    ) -> tuple[int, asyncio.Future[None]]:  # fmt: skip
        """Store a message; once written, fan it out; once durable, `then(stored)` (the sender's ack)."""
        conv.last_seq += 1
        rec = MessageRecord(
            conv_id=conv.id, seq=conv.last_seq, msg_id=msg_id, kind=kind, sender=sender,
            sender_id=sender_id, sender_name=sender_name, text=text, ts=self.clock(),
            epoch=self.hub_epoch,
        )  # fmt: skip
        fut = self.store.append_message(rec, written=partial(self._shown, conv, rec))
        fut.add_done_callback(partial(self._stored, conv, rec, then))
        return rec.seq, fut

    def _stored(
        self, conv: Conversation, rec: MessageRecord, then: Callable[[bool], None] | None,
        fut: asyncio.Future[None],
    ) -> None:  # fmt: skip
        if fut.exception() is not None:
            log.error("message %s#%d not stored", conv.id, rec.seq)
        if then is not None:
            then(fut.exception() is None)

    def _shown(self, conv: Conversation, rec: MessageRecord) -> None:
        """Fan a written message out to everyone who may see it now."""
        conv.committed_seq = max(conv.committed_seq, rec.seq)
        data = p.encode(_msg_frame(rec))
        customer = conv.customer
        # (syncing without visible: a new chat's own socket before its welcome, see _start_chat)
        if rec.kind != "note" and customer is not None and (conv.id in customer.visible or customer.syncing(conv.id)):
            if rec.sender != "customer":
                customer.deliver(conv.id, rec.seq, data)
        agent = self.agent_sessions.get(conv.rec.agent_id or "")
        if agent is not None and conv.id in agent.visible and rec.sender_id != agent.principal:
            agent.deliver(conv.id, rec.seq, data)
        for watcher in conv.watchers:
            if conv.id in watcher.visible:
                watcher.deliver(conv.id, rec.seq, data)

    async def _replay(
        self, session: Session, conv_id: str, after: int, include_staff: bool, epoch: int = 0
    ) -> None:  # fmt: skip
        """Send what the client missed after its cursor (`after`, `epoch`), then
        ``synced``; live traffic is held meanwhile.

        The cursor must name a message as stored: the same seq from the same run
        of the hub. Otherwise (a forged cursor, or a message shown before a power
        cut took it back and this run gave its seq to another) the client is told
        to drop its copy and gets the whole history: never a silent partial one."""
        session.begin_sync(conv_id)
        conv = self.convs.get(conv_id)
        last, last_epoch = 0, 0
        try:
            # From the cursor's own row on: it checks the cursor, and (with the
            # notes, dropped below for customers) gives the epoch of the last seq.
            rows = await self._shown_rows(conv_id, conv, max(after - 1, 0))
            if conv_id not in session.visible:  # no longer this session's to see
                session.drop_sync(conv_id)
                return
            if after:
                here = rows[0] if rows and rows[0].seq == after else None
                if here is not None and here.epoch == epoch:
                    last, last_epoch = after, epoch
                else:
                    why = (f"message {after} is not the one you hold (a power cut took it back)"
                           if here is not None else f"cursor {after} is past the last message")  # fmt: skip
                    session.send(p.Resync(conv=conv_id, reason=why))
                    rows = await self._shown_rows(conv_id, conv, 0)
        except StoreError as exc:
            session.drop_sync(conv_id)
            session.error("store_failed", f"could not replay: {exc}", conv=conv_id)
            return
        if conv_id not in session.visible:
            session.drop_sync(conv_id)
            return
        for rec in rows:
            if rec.seq <= last:
                continue
            if include_staff or rec.kind != "note":
                session.push(p.encode(_msg_frame(rec)))
                if session.backlog > session.max_outbound // 2:
                    await session.flush()  # a long history must not trip the slow-client limit
            last, last_epoch = rec.seq, rec.epoch
        upto = session.end_sync(conv_id, last)
        if conv is not None:
            upto = max(upto, conv.committed_seq)
        if upto > last:  # live since the read: numbered by this run
            last, last_epoch = upto, self.hub_epoch
        session.send(p.Synced(conv=conv_id, last_seq=last, epoch=last_epoch))

    async def _shown_rows(self, conv_id: str, conv: Conversation | None, after: int) -> list[MessageRecord]:
        rows = await self.store.messages_after(conv_id, after, include_staff=True)
        if conv is not None:
            # Only what has been shown: a row can be read a moment before its
            # commit's callbacks ran; it comes live then (held back meanwhile).
            rows = [m for m in rows if m.seq <= conv.committed_seq]
        return rows

    # ------------------------------------------------------------------
    # bot, queues, assignment
    # ------------------------------------------------------------------

    def _bot_context(self, conv: Conversation) -> BotContext:
        rec = conv.rec
        position = self.router.position(rec.id) if rec.state == "queued" else None
        return BotContext(
            conv_id=rec.id, customer_name=rec.customer_name, flags=frozenset(rec.flags),
            lang=rec.lang, state=rec.state, queue_position=position,
            queue_eta_s=self.router.eta(rec.grp, position) if position else None,
            memory=rec.bot_memory,
        )  # fmt: skip

    def _bot_turn(self, conv: Conversation, turn: BotTurn, question: str = "") -> None:
        for text in turn.replies:
            self._append(conv, kind="bot", sender="bot", sender_name="bot", text=text)
        if turn.missed:
            self.metrics.bot_misses += 1
            if question.strip():
                self.store.record_miss(_miss_key(question), question.strip()[:200], self.clock())
        if turn.intents:
            intents = list(dict.fromkeys([*conv.rec.handoff.get("intents", []), *turn.intents]))
            conv.rec.handoff = {**conv.rec.handoff, "intents": intents}
        self.store.update_conversation(conv.id, bot_memory=conv.rec.bot_memory, handoff=conv.rec.handoff)
        if turn.handoff is not None and conv.rec.state == "bot":
            h = turn.handoff
            self._handoff(conv, {
                **conv.rec.handoff, "reason": h.reason, "group": h.group or self.config.default_group,
                "priority": h.priority, "intents": list(dict.fromkeys([*conv.rec.handoff.get("intents", []), *h.intents])),
                "bot_misses": int(conv.rec.bot_memory.get("misses", 0)),
            })  # fmt: skip

    def _handoff(self, conv: Conversation, handoff: dict[str, Any]) -> None:
        """Queue the chat for a person in the handoff's group."""
        now = self.clock()
        rec = conv.rec
        rec.handoff = handoff
        group = handoff.get("group") or self.config.default_group
        klass = priority_class(handoff.get("priority", "normal"), rec.flags)
        if handoff.get("priority") == URGENT:
            self.metrics.urgent_handoffs += 1
        self.metrics.handoffs += 1
        self.stats.asked_for_person()
        self.store.update_conversation(rec.id, handoff=handoff)
        self._append(conv, kind="system", sender="system", text=_t(rec.lang, "queued"))
        self._apply(self.router.enqueue(rec.id, group, klass, now))

    def _apply(self, effects: list[Effect], reasons: dict[str, str] | None = None) -> None:
        """Persist and announce what the router decided, in order."""
        now = self.clock()
        groups: dict[str, int] = {}  # group -> first queue position that may have moved
        for e in effects:
            conv = self.convs.get(e.conv)
            if conv is None:
                continue
            rec = conv.rec
            if isinstance(e, Assigned):
                if not rec.last_agent:
                    self.stats.first_assignment()
                rec.state, rec.agent_id, rec.assigned_at, rec.front = "assigned", e.agent, now, False
                rec.last_agent = e.agent
                conv.queue_sent = None
                fut = self.store.update_conversation(
                    rec.id, state="assigned", agent_id=e.agent, assigned_at=now, front=False, last_agent=e.agent
                )
                conv.epoch += 1
                conv.durable_agent = None
                _then(fut, partial(self._assigned, conv, e.agent, conv.epoch))
                self._append(conv, kind="system", sender="system",
                             text=_t(rec.lang, "joined", agent=self._name(e.agent)))
                self.metrics.assignments += 1
                self.board.touch_agent(e.agent)
            elif isinstance(e, Unassigned):
                session = self.agent_sessions.get(e.agent)
                conv.durable_agent = None
                if session is not None and rec.id in session.visible:  # never name a chat it was not shown
                    session.visible.discard(rec.id)
                    session.drop_sync(rec.id)
                    session.send(p.Unassigned(conv=rec.id, reason=(reasons or {}).get(rec.id, e.reason)))
                if rec.agent_id == e.agent:
                    rec.agent_id = None
                conv.unanswered_since = None
                self.board.touch_agent(e.agent)
                if e.reason == "requeued":
                    self._append(conv, kind="system", sender="system", text=_t(rec.lang, "requeued"))
            elif isinstance(e, Queued):
                chat = self.router.chats[rec.id]
                rec.state, rec.grp, rec.klass, rec.asked_at = "queued", e.group, chat.klass, chat.asked_at
                rec.front, rec.exclude_agent, rec.agent_id = e.front, chat.exclude, None
                self.store.update_conversation(
                    rec.id, state="queued", grp=e.group, klass=chat.klass, asked_at=chat.asked_at,
                    front=e.front, exclude_agent=chat.exclude, agent_id=None,
                )  # fmt: skip
                self._to_customer(conv, p.ConvState(conv=rec.id, state="queued",
                                                    reason=(reasons or {}).get(rec.id, "queued")))
                at = self.router.position(rec.id) or 1
                groups[e.group] = min(groups.get(e.group, at), at)
                if conv.customer is None and conv.grace is None:
                    # back in a queue with nobody there (the customer left while
                    # with an agent): it must not wait for an agent forever
                    self._start_customer_grace(conv)
                if not e.front:
                    self.stats.arrival(e.group, len(self.router.queues.get(e.group, ())))
            elif isinstance(e, Dequeued):
                if e.reason == "abandoned":
                    self.stats.abandoned_in(e.group)
                at = conv.queue_sent[0] if conv.queue_sent else 1
                groups[e.group] = min(groups.get(e.group, at), at)
        for group, start in groups.items():
            self._refresh_queue(group, start)
        if effects:
            self.board.touch_queues(groups)

    def _assigned(self, conv: Conversation, agent_id: str, epoch: int) -> None:
        """The assignment is durable: tell the agent and the customer."""
        if conv.rec.agent_id != agent_id or conv.epoch != epoch:
            return  # it moved on (or was assigned again) before this write landed
        conv.durable_agent = agent_id
        self._grant(agent_id, conv.id, after=0, resumed=False)
        self._to_customer(conv, p.ConvState(conv=conv.id, state="assigned", agent_name=self._name(agent_id)))
        for watcher in conv.watchers:
            if conv.id in watcher.visible:
                self._send_watching(watcher, conv)

    def _grant(self, agent_id: str, conv_id: str, after: int, resumed: bool, epoch: int = 0) -> None:
        """Show an assigned chat to its agent's session: the card, then history."""
        session = self.agent_sessions.get(agent_id)
        conv = self.convs.get(conv_id)
        if session is None or conv is None or conv_id in session.visible:
            return  # no one to show it to, or shown already
        rec = conv.rec
        h = rec.handoff
        session.visible.add(conv_id)
        session.send(p.Assigned(
            conv=conv_id,
            customer=p.CustomerInfo(name=rec.customer_name, channel=rec.channel, flags=rec.flags, lang=rec.lang,
                                    online=conv.customer is not None),
            handoff=p.HandoffInfo(
                reason=h.get("reason", ""), group=rec.grp, priority=PRIORITY_NAMES.get(rec.klass, "normal"),
                intents=list(h.get("intents", [])), bot_misses=int(h.get("bot_misses", 0)),
                transfer_note=h.get("transfer_note", ""), transferred_from=h.get("transferred_from", ""),
            ),
            last_seq=conv.committed_seq,
            resumed=resumed,
            queue_wait_s=round(max(0.0, rec.assigned_at - rec.asked_at), 1) if rec.asked_at else 0.0,
        ))  # fmt: skip
        session.begin_sync(conv_id)  # hold live messages from now until the replay is out
        self.spawn(self._replay(session, conv_id, after, include_staff=True, epoch=epoch))

    def _close(
        self, conv: Conversation, closed_by: str, reason: str, notice: str, **extra: Any
    ) -> asyncio.Future[None]:
        now = self.clock()
        rec = conv.rec
        self._append(conv, kind="system", sender="system", text=_t(rec.lang, notice))
        effects = self.router.close(rec.id, now, reason=reason)
        self.stats.closed(
            reason=reason, last_agent=rec.last_agent, asked=bool(rec.asked_at),
            handle_s=now - rec.assigned_at if rec.assigned_at and reason != "abandoned" else None,
            closed_by_agent=bool(rec.last_agent) and closed_by == rec.last_agent, transfers=rec.transfers,
        )  # fmt: skip
        rec.state, rec.closed_at, rec.closed_by, rec.close_reason = "closed", now, closed_by, reason
        rec.agent_id = None
        fields = {"state": "closed", "closed_at": now, "closed_by": closed_by,
                  "close_reason": reason, "agent_id": None, **extra}
        fut = self.store.update_conversation(rec.id, **fields)
        for k, v in extra.items():
            setattr(rec, k, v)
        self._apply(effects, reasons={rec.id: reason})
        if conv.grace is not None:
            conv.grace.cancel()
            conv.grace = None
        self.metrics.closed[reason] = self.metrics.closed.get(reason, 0) + 1

        def told(_: asyncio.Future[None]) -> None:
            self.convs.pop(rec.id, None)
            self.by_token.pop(rec.token_hash, None)
            self._to_customer(conv, p.ConvState(conv=rec.id, state="closed", reason=reason))
            for watcher in conv.watchers:
                if rec.id in watcher.visible:
                    watcher.send(p.ConvState(conv=rec.id, state="closed", reason=reason))
            if reason != "abandoned":
                self._to_customer(conv, p.RatingRequest(conv=rec.id))

        fut.add_done_callback(told)
        return fut

    def _refresh_queue(self, group: str, start: int = 1) -> None:
        """Tell waiting customers of `group` their new place and wait, if changed.
        Only places from `start` on can have moved, so an arrival at the back
        costs one update, not one per waiting customer."""
        slots, handle = self.router.eta_params(group)
        queue = self.router.queues.get(group, [])
        for position in range(start, len(queue) + 1):
            conv = self.convs.get(queue[position - 1][1])
            if conv is None:
                continue
            conv_id = conv.id
            eta = round(position * handle / slots) if slots else None
            if conv.queue_sent == (position, eta):
                continue
            conv.queue_sent = (position, eta)
            self._to_customer(conv, p.QueueStatus(conv=conv_id, group=group, position=position, eta_s=eta))

    def _refresh_agent_groups(self, agent_id: str) -> None:
        agent = self.router.agents.get(agent_id)
        if agent is not None:
            for group in agent.groups:
                self._refresh_queue(group)
            self.board.touch_queues(agent.groups)

    # ------------------------------------------------------------------
    # timers (grace periods and idle chats; dispatch never waits on these)
    # ------------------------------------------------------------------

    def _start_agent_grace(self, agent_id: str) -> None:
        old = self._agent_grace.pop(agent_id, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._agent_grace[agent_id] = loop.call_later(self.config.agent_grace_s, self._agent_gone, agent_id)

    def _agent_gone(self, agent_id: str) -> None:
        self._agent_grace.pop(agent_id, None)
        if agent_id in self.agent_sessions:
            return
        effects = self.router.grace_expired(agent_id, self.clock())
        if effects:
            self.store.audit("hub", "requeue", target=agent_id,
                             detail={"chats": [e.conv for e in effects if isinstance(e, Unassigned)]})
        self._apply(effects, reasons={e.conv: "agent_lost" for e in effects if isinstance(e, Queued)})
        self.board.touch_agent(agent_id)

    def _start_customer_grace(self, conv: Conversation) -> None:
        if conv.grace is not None:
            conv.grace.cancel()
        loop = asyncio.get_running_loop()
        conv.grace = loop.call_later(self.config.customer_grace_s, self._customer_gone, conv.id)

    def _customer_gone(self, conv_id: str) -> None:
        conv = self.convs.get(conv_id)
        if conv is None:
            return
        conv.grace = None
        if conv.customer is None and conv.rec.state == "queued":
            self._close(conv, closed_by="system", reason="abandoned", notice="abandoned")

    async def _maintain(self) -> None:
        """Pick up changes made outside the hub (phrasebook imported with the CLI),
        and log the audit log's head now and then."""
        anchored = time.monotonic()
        while True:
            await asyncio.sleep(self.config.maintenance_s)
            try:
                await self.phrasebook.check_external()
                if self._kb_owned and self._kb_changed():
                    await self.reload_kb(actor="file-change")
                if time.monotonic() - anchored >= self.config.audit_anchor_s:
                    anchored = time.monotonic()
                    await self._log_audit_head()
            except Exception:  # keep maintaining; the next tick retries
                log.exception("maintenance failed")

    async def _log_audit_head(self) -> None:
        """The audit chain has no secret: whoever can write the file could rewrite it
        consistently. Its head in the hub's log (shipped elsewhere) is an anchor that
        `desk audit verify --anchor ID:HASH` checks later."""
        entry, digest = await self.store.audit_head()
        log.info("audit head %d:%s", entry, digest)

    def _kb_changed(self) -> bool:
        try:
            return self.config.kb_path is not None and self.config.kb_path.stat().st_mtime != self._kb_mtime
        except OSError:
            return False

    async def reload_kb(self, actor: str = "admin") -> tuple[bool, str]:
        """Load the knowledge base again and swap the bot; a bad file keeps the old one."""
        from .bot import KBError, KnowledgeBot, load_kb

        path = self.config.kb_path
        if path is None:
            return False, "this hub runs without a knowledge base"
        try:
            mtime = path.stat().st_mtime
            kb = await asyncio.to_thread(load_kb, path)
            bot = await asyncio.to_thread(KnowledgeBot, kb)
        except (KBError, OSError) as exc:
            with contextlib.suppress(OSError):
                self._kb_mtime = path.stat().st_mtime  # do not retry a bad file every tick
            log.error("knowledge base not reloaded (%s): %s", actor, exc)
            self.store.audit(actor, "kb_reload_failed", target=str(path.name), detail={"error": str(exc)[:500]})
            return False, str(exc)
        self.bot, self._kb_mtime = bot, mtime
        for warning in kb.warnings:
            log.warning("knowledge base: %s", warning)
        log.info("knowledge base loaded: %d entries from %s", len(kb.entries), path)
        self.store.audit(actor, "kb_reload", target=str(path.name), detail={"entries": len(kb.entries)})
        return True, ""

    async def _sweep_idle(self) -> None:
        """Close chats whose customer has gone quiet (not those waiting on us)."""
        idle = self.config.customer_idle_s
        period = max(0.05, min(30.0, idle / 4))
        while True:
            await asyncio.sleep(period)
            now = self.clock()
            for conv in list(self.convs.values()):
                rec = conv.rec
                waiting_on_us = rec.state == "queued" or conv.unanswered_since is not None
                if rec.state != "closed" and not waiting_on_us and now - conv.customer_last_at > idle:
                    self._close(conv, closed_by="system", reason="idle", notice="idle")

    # ------------------------------------------------------------------
    # helpers
    # ------------------------------------------------------------------

    def _customer_conv(self, session: Session, conv_id: str, ref: str, msg_id: str = "") -> Conversation | None:
        conv = self.convs.get(conv_id)
        if session.conv != conv_id or conv is None:
            if session.conv == conv_id:
                session.error("invalid_state", "the chat has ended", ref=msg_id or ref, conv=conv_id)
            else:
                self._forbidden(session, conv_id, msg_id or ref)
            return None
        return conv

    def _agent_conv(self, session: Session, conv_id: str, ref: str, msg_id: str = "") -> Conversation | None:
        conv = self.convs.get(conv_id)
        if conv is None or conv.rec.agent_id != session.principal or conv_id not in session.visible:
            self._forbidden(session, conv_id, msg_id or ref)
            return None
        return conv

    def _forbidden(self, session: Session, conv_id: str, ref: str) -> None:
        # One answer for "no such chat" and "not yours": the reply must not
        # reveal whether someone else's conversation exists.
        self.metrics.forbidden += 1
        log.warning("session %s (%s %s) refused conversation %r", session.id, session.role,
                    session.principal, conv_id[:80])
        session.error("unknown_conversation", "no such conversation for you", ref=ref, conv=conv_id[:80])

    def _check_len(self, session: Session, text: str, limit: int, ref: str, conv: str) -> bool:
        if len(text) > limit:
            session.error("too_long", f"text is {len(text)} characters; the limit is {limit}", ref=ref, conv=conv)
            return False
        if not text.strip():
            session.error("bad_frame", "empty text", ref=ref, conv=conv)
            return False
        return True

    def _to_agent(self, conv: Conversation, frame: p.Frame) -> None:
        """To the agent holding the chat, if its desk may see it now."""
        agent = self.agent_sessions.get(conv.rec.agent_id or "")
        if agent is not None and conv.id in agent.visible:
            agent.send(frame)

    def _to_customer(self, conv: Conversation, frame: p.Frame) -> None:
        """A non-message frame for the conversation's customer, if it may see it."""
        if conv.customer is not None and conv.id in conv.customer.visible:
            conv.customer.send(frame)

    def _send_status(self, agent_id: str) -> None:
        session = self.agent_sessions.get(agent_id)
        agent = self.router.agents.get(agent_id)
        if session is not None and agent is not None:
            session.send(p.StatusEvent(status=agent.status, max_chats=agent.max_chats, load=len(agent.chats)))  # type: ignore[arg-type]

    def _name(self, user_id: str) -> str:
        user = self.users.get(user_id)
        return user.name if user else user_id

    # ------------------------------------------------------------------
    # administration (used by the CLI and tests)
    # ------------------------------------------------------------------

    async def add_user(
        self, user_id: str, name: str, password: str, role: str = "agent",
        groups: list[str] | None = None, max_chats: int = 5,
    ) -> UserRecord:  # fmt: skip
        user = UserRecord(
            id=user_id, role=role, name=name, pw_hash=await asyncio.to_thread(hash_password, password),
            groups=groups or [self.config.default_group], max_chats=max(0, min(5, max_chats)),
            created_at=self.clock(),
        )  # fmt: skip
        await self.store.put_user(user)
        return user


_ROLES: dict[type, frozenset[str]] = {
    p.Hello: frozenset({"customer"}),
    p.Login: frozenset({"agent", "supervisor"}),
    p.Logout: frozenset({"agent", "supervisor"}),
    p.Send: frozenset({"customer", "agent"}),
    p.Typing: frozenset({"customer", "agent"}),
    p.RequestHuman: frozenset({"customer"}),
    p.End: frozenset({"customer"}),
    p.Rate: frozenset({"customer"}),
    p.SetStatus: frozenset({"agent"}),
    p.Note: frozenset({"agent"}),
    p.Transfer: frozenset({"agent"}),
    p.Close: frozenset({"agent"}),
    p.Wrapup: frozenset({"agent"}),
    p.RaiseHand: frozenset({"agent"}),
    p.PhrasesGet: frozenset({"agent", "supervisor"}),
    p.PhraseSave: frozenset({"agent", "supervisor"}),
    p.PhraseDelete: frozenset({"agent", "supervisor"}),
    p.PhraseUsed: frozenset({"agent"}),
    p.KbReload: frozenset({"supervisor"}),
    p.BotMissesGet: frozenset({"supervisor"}),
    p.Reveal: frozenset({"agent"}),
    p.DirectoryGet: frozenset({"agent", "supervisor"}),
    p.Watch: frozenset({"supervisor"}),
    p.Whisper: frozenset({"supervisor"}),
    p.Reassign: frozenset({"supervisor"}),
    p.AgentSet: frozenset({"supervisor"}),
    p.AuditGet: frozenset({"supervisor"}),
    p.PhraseStatsGet: frozenset({"supervisor"}),
}


_HANDLERS = {t: f"_on_{t.__name__.lower()}" for t in _ROLES}


def _miss_key(question: str) -> str:
    """Count the same question once however it is punctuated or spaced."""
    return "".join(ch for ch in question.lower() if ch.isalnum())[:200] or question[:200]


def _tag(frame: p.Frame) -> str:
    return type(frame).__struct_config__.tag  # type: ignore[return-value]


def _msg_frame(rec: MessageRecord) -> p.Msg:
    return p.Msg(
        conv=rec.conv_id, seq=rec.seq, kind=rec.kind, sender=rec.sender, text=rec.text, ts=rec.ts,  # type: ignore[arg-type]
        msg_id=rec.msg_id, sender_id=rec.sender_id, sender_name=rec.sender_name, epoch=rec.epoch,
    )  # fmt: skip


def _ok_when_stored(session: Session, fut: asyncio.Future[Any], ref: str, conv: str,
                    failed: str = "done, but not stored: the hub's storage is failing (see its log)") -> None:
    """Answer ``ok`` once ``fut`` is stored, or ``store_failed`` (``failed`` says
    what that means for this action) if it could not be: the client is never
    left waiting for an answer that will not come."""

    def done(f: asyncio.Future[Any]) -> None:
        if f.cancelled() or f.exception() is not None:
            session.error("store_failed", failed, ref=ref, conv=conv)
        else:
            session.send(p.Ok(ref=ref, conv=conv))

    fut.add_done_callback(done)


def _then(fut: asyncio.Future[None], fn: Callable[[], None]) -> None:
    """Run `fn` once `fut` succeeds (in submission order with other writes)."""

    def done(f: asyncio.Future[None]) -> None:
        if f.exception() is None:
            fn()

    fut.add_done_callback(done)


__all__ = ["NORMAL", "Conversation", "Hub"]
