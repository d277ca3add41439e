"""One simulated customer: a scripted person behind a HubClient.

The script is ordinary sequential code (talk to the bot, ask for a person,
wait, answer the agent, rate) that waits on frames through ``_until``. Every
frame goes through ``_observe`` first, so the chat's state, counters and
latencies stay right whatever the script is waiting for (an agent may close
the chat at any moment, a link may drop and resume).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from desk.client import HubClient
from server import protocol as p

from .scenarios import Scenario, Score, channel, customer_name, pick

# What a waiting customer asks the bot, and what they say to a silent agent.
WAIT_LINES = {"zh": ["还要等多久？", "前面还有几个人？", "排到我了吗？"],
              "en": ["How long do I have to wait?", "How many people are ahead of me?"]}  # fmt: skip
NUDGE_LINES = {
    "zh": ["在吗？", "你好，还在吗？", "请问还在处理吗？"],
    "en": ["Hello, are you still there?"],
}
PICK_FIRST = {"zh": "1", "en": "1"}
# The bot lists topics and asks for a number (server/bot/engine.py "offer").
_OFFER_MARKS = ("回复序号", "reply with the number")
CLOSE_TIMEOUT = 3.0


@dataclass(frozen=True, slots=True)
class Timing:
    """How human the customer is. Human delays are divided by `speed`; waits on
    the network (the bot's reply, an ack) are real time whatever the speed."""

    speed: float = 1.0
    load: bool = False  # benchmark: no human delays, one message per `msg_interval`
    msg_interval: float = 2.0
    reply_timeout: float = 10.0  # real seconds to wait for the bot or the hub
    connect_timeout: float = 10.0
    # The hub allows ~20 frames/s per connection; a person never gets close,
    # and half of it leaves room for the client's own resends after a reconnect.
    min_gap: float = 0.1
    typing_every: float = 2.0  # at most one typing indicator per 2 s (docs/PROTOCOL.md)

    def human(self, seconds: float) -> float:
        return 0.0 if self.load else seconds / self.speed

    def patience(self, seconds: float) -> float:
        # A benchmark measures the hub; customers walking away would blur it.
        return math.inf if self.load else seconds / self.speed


@dataclass
class ChatRecord:
    """What happened to one simulated customer's chat (the summary's raw data)."""

    index: int
    scenario: str
    name: str
    conv: str = ""
    started: bool = False  # the hub welcomed a new chat
    state: str = "new"  # as the customer last saw it: bot | queued | assigned | closed
    handed_off: bool = False  # went to the queue (asked, or the bot handed off)
    asked_human: bool = False
    assigned: bool = False  # a person took it
    left_queue: bool = False  # gave up waiting: closed the app for good
    gave_up_on_agent: bool = False  # the agent went silent; ended the chat
    closed: bool = False
    close_reason: str = ""  # the hub's reason, or "abandoned" for left_queue
    rating_requested: bool = False
    rating: str = ""  # set once the hub confirmed the rating
    sent: int = 0
    acked: int = 0
    received: Counter[str] = field(default_factory=Counter)  # by sender: bot, agent, system
    typing_sent: int = 0
    ack_ms: list[float] = field(default_factory=list)
    reply_s: list[float] = field(default_factory=list)  # customer message -> agent reply
    first_response_s: list[float] = field(default_factory=list)  # agent joined -> first line
    queue_wait_s: list[float] = field(default_factory=list)  # handoff -> agent joined
    errors: Counter[str] = field(default_factory=Counter)
    reconnects: int = 0

    @property
    def outcome(self) -> str:
        """Exactly one of: failed, bot, person, abandoned, open."""
        if not self.started:
            return "failed"
        if self.left_queue:
            return "abandoned"
        if not self.closed:
            return "open"
        if self.assigned:
            return "person"
        # Closed while waiting, never served: it was abandoned whoever closed it.
        return "abandoned" if self.handed_off else "bot"


class SimCustomer:
    """Runs one scenario against the hub; `rec` is filled in as it goes."""

    def __init__(self, url: str, scenario: Scenario, index: int, rng: random.Random,
                 timing: Timing, end_on_stop: bool = False) -> None:  # fmt: skip
        self.sc = scenario
        self.end_on_stop = end_on_stop  # stopped mid-chat: end it (as closing the chat window does)
        self.rng = rng
        self.t = timing
        self.rec = ChatRecord(
            index=index, scenario=scenario.name, name=customer_name(scenario, rng)
        )
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        hello = p.Hello(name=self.rec.name, channel=channel(scenario, rng), flags=list(scenario.flags),
                        lang=scenario.lang)  # fmt: skip
        self.client = HubClient(url, self.inbox.put_nowait, hello=hello, on_status=self._status)
        self._gone = False  # the link is gone for good (final close, or we left)
        self._sent_at: dict[str, float] = {}
        self._last_frame = 0.0
        self._last_typing = -math.inf
        self._last_msg = -math.inf
        self._bot_msgs = 0
        self._bot_texts: list[str] = []
        self._unread_agent: list[str] = []
        self._awaiting_reply: float | None = None
        self._handoff_at: float | None = None
        self._assigned_at: float | None = None
        self._first_line_pending = False
        self._rated = False
        self._target: int | None = None  # answers to give agents in this chat
        self._given = 0
        self.finished = False  # run() has returned (or was stopped)

    # -- the script -------------------------------------------------------------

    async def run(self) -> ChatRecord:
        runner = asyncio.create_task(self._run_client(), name=f"sim-client-{self.rec.index}")
        try:
            if not await self._until(lambda: self.rec.started, self.t.connect_timeout):
                self.rec.errors["no_welcome"] += 1
                return self.rec
            await self._talk_to_bot()
            await self._with_people()
            await self._rate()
        finally:
            self._gone = True
            # Frames already received count, even if the run was stopped first.
            while not self.inbox.empty():
                self._observe(self.inbox.get_nowait())
            # Bounded: a customer that cannot say goodbye must not hold up the summary.
            if self.end_on_stop and self.rec.conv and self.rec.state != "closed":
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.client.send(p.End(conv=self.rec.conv)), CLOSE_TIMEOUT)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.client.close(), CLOSE_TIMEOUT)
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner
            self.rec.reconnects = self.client.state.reconnects
            self.finished = True
        return self.rec

    async def _talk_to_bot(self) -> None:
        sc, rng = self.sc, self.rng
        # The bot greets first; a person glances at it before typing.
        await self._until(
            lambda: self._bot_msgs > 0 or self.rec.state != "bot", self.t.reply_timeout
        )
        await self._pause(self.t.human(rng.uniform(2.0, 6.0)), lambda: self.rec.state != "bot")
        lines = sc.opening if sc.human_after is None else sc.opening[: sc.human_after]
        for line in lines:
            if self.rec.state != "bot" or self._gone:
                return
            await self._ask_bot(pick(line, rng))
            if self.rec.state == "bot" and self._offered():
                await self._ask_bot(PICK_FIRST[sc.lang])  # the first topic listed is usually it
        if self.rec.state != "bot" or self._gone:
            return
        if sc.human_after is not None:
            await self._ask_for_person()
            return
        # Satisfied: thank the bot and leave.
        await self._ask_bot(pick(rng.choice(sc.thanks), rng))
        if self.rec.state == "bot":
            await self._pause(self.t.human(rng.uniform(1.0, 3.0)))
            await self._end()

    async def _ask_bot(self, text: str) -> None:
        seen = self._bot_msgs
        if not await self._say(text):
            return
        if not await self._until(lambda: self._bot_msgs > seen or self.rec.state != "bot",
                                 self.t.reply_timeout):  # fmt: skip
            self.rec.errors["bot_silent"] += 1
            return
        # The bot's replies come as a burst; read them all before typing again.
        while True:
            before = self._bot_msgs
            await self._pause(0.15, lambda: False)
            if self._bot_msgs == before:
                break
        chars = sum(len(t) for t in self._bot_texts[seen:])
        await self._pause(self.t.human(min(15.0, chars / 25.0) + self.rng.uniform(0.5, 2.0)))

    async def _ask_for_person(self) -> None:
        self.rec.asked_human = True
        self._handoff_at = time.monotonic()
        if not self.sc.human_lines or self.rng.random() < self.sc.button:
            await self._send(p.RequestHuman(conv=self.rec.conv))  # the app's 人工 button
        else:
            await self._ask_bot(pick(self.rng.choice(self.sc.human_lines), self.rng))
        if not await self._until(lambda: self.rec.state != "bot", self.t.reply_timeout):
            # The bot did not read it as a request: press the button instead.
            await self._send(p.RequestHuman(conv=self.rec.conv))
            await self._until(lambda: self.rec.state != "bot", self.t.reply_timeout)

    async def _with_people(self) -> None:
        while not self._gone and self.rec.state in ("queued", "assigned"):
            if self.rec.state == "queued":
                if not await self._wait_in_queue():
                    return
            else:
                await self._talk_to_agent()

    async def _wait_in_queue(self) -> bool:
        """Wait for an agent; False if patience ran out (the customer left)."""
        rng = self.rng
        start = time.monotonic()
        deadline = start + self.t.patience(self.sc.patience_s(rng))
        # About half of the people ask the bot how long it will take, once,
        # if there is time to type it before they would give up anyway.
        ask = rng.choice(WAIT_LINES[self.sc.lang])
        room = deadline - start - self.t.human(len(ask) / self.sc.typing_cps)
        ask_at = (
            start + room * rng.uniform(0.3, 0.7) if rng.random() < 0.5 and room > 0 else math.inf
        )
        while self.rec.state == "queued" and not self._gone:
            now = time.monotonic()
            if now >= deadline:
                self.rec.left_queue = True
                self.rec.close_reason = "abandoned"  # what the hub records after its grace
                self._gone = True
                await self.client.close()
                return False
            await self._until(lambda: self.rec.state != "queued", min(deadline, ask_at) - now)
            if self.rec.state == "queued" and time.monotonic() >= ask_at:
                ask_at = math.inf
                await self._say(ask)
        return True

    async def _talk_to_agent(self) -> None:
        sc, rng = self.sc, self.rng
        # Drawn once per chat: after a transfer the customer goes on where they
        # were (the next agent has the history) rather than starting over.
        if self._target is None:
            self._target = sc.exchange_count(rng)
        target = self._target
        nudged = False
        first = True
        while self.rec.state == "assigned" and not self._gone:
            # Give the agent a moment to greet; then speak up (most people do).
            wait = (
                self.t.human(rng.uniform(3.0, 8.0))
                if first
                else self.t.patience(sc.patience_s(rng))
            )
            got = await self._until(
                lambda: bool(self._unread_agent) or self.rec.state != "assigned", wait
            )
            if self.rec.state != "assigned" or self._gone:
                return
            if not got and first:
                first = False
                await self._say(sc.reply(self._given, rng))
                self._given += 1
                continue
            first = False
            if not got:
                if not nudged:
                    nudged = True
                    await self._say(rng.choice(NUDGE_LINES[sc.lang]))
                    continue
                self.rec.gave_up_on_agent = True
                await self._end()
                return
            # Read what the agent wrote; lines that arrive meanwhile are read too.
            chars = sum(len(t) for t in self._unread_agent)
            await self._pause(self.t.human(min(20.0, chars / 20.0) + rng.uniform(1.0, 4.0)))
            self._unread_agent.clear()
            if self.rec.state != "assigned":
                return
            if self._given < target:
                await self._say(sc.reply(self._given, rng))
                self._given += 1
                continue
            await self._say(pick(rng.choice(sc.thanks), rng))
            await self._finish_with_agent()
            return

    async def _finish_with_agent(self) -> None:
        """After thanking: end the chat, or let the agent close it."""
        rng = self.rng
        if rng.random() < self.sc.ends:
            await self._pause(self.t.human(rng.uniform(1.0, 3.0)))
            if self.rec.state == "assigned":
                await self._end()
            return
        linger = self.t.patience(60.0)
        deadline = time.monotonic() + (linger if math.isfinite(linger) else 10.0)
        answered = False
        while self.rec.state == "assigned" and not self._gone:
            left = deadline - time.monotonic()
            if left <= 0:
                await self._end()  # the agent never closed it
                return
            await self._until(
                lambda: bool(self._unread_agent) or self.rec.state != "assigned", left
            )
            if self._unread_agent and self.rec.state == "assigned":
                self._unread_agent.clear()
                if not answered:  # "anything else?" gets one answer
                    answered = True
                    await self._pause(self.t.human(rng.uniform(2.0, 5.0)))
                    await self._say(
                        "没有了，谢谢" if self.sc.lang == "zh" else "No, that's all. Thanks"
                    )

    async def _end(self) -> None:
        if self.rec.state == "closed" or self._gone:
            return
        await self._send(p.End(conv=self.rec.conv))
        await self._until(lambda: self.rec.state == "closed", self.t.reply_timeout)

    async def _rate(self) -> None:
        rec, rng = self.rec, self.rng
        if self._gone or not rec.closed or rec.close_reason == "abandoned":
            return
        if not await self._until(lambda: rec.rating_requested, self.t.reply_timeout):
            return
        if rng.random() >= self.sc.rate:
            return  # many people just close the window
        score: Score = "dissatisfied" if rec.gave_up_on_agent else self.sc.score(rng)
        comments = self.sc.comments.get(score)
        comment = rng.choice(comments) if comments and rng.random() < 0.5 else ""
        await self._pause(self.t.human(rng.uniform(2.0, 6.0)))
        await self._send(p.Rate(conv=rec.conv, score=score, comment=comment))
        if await self._until(lambda: self._rated, self.t.reply_timeout):
            rec.rating = score

    # -- sending ---------------------------------------------------------------------

    async def _say(self, text: str) -> bool:
        """Type and send a message; False if the chat closed meanwhile."""
        if self.t.load:
            wait = self._last_msg + self.t.msg_interval - time.monotonic()
            if wait > 0:
                await self._pause(wait)
        else:
            typing = self.t.human(len(text) / self.sc.typing_cps)
            # Indicators only reach an agent; the bot does not watch them.
            if (self.rec.state == "assigned" and typing >= 1.0
                    and time.monotonic() - self._last_typing >= self.t.typing_every):  # fmt: skip
                self._last_typing = time.monotonic()
                if await self._send(p.Typing(conv=self.rec.conv, on=True), retry=False):
                    self.rec.typing_sent += 1
            await self._pause(typing)
        if self.rec.state == "closed" or self._gone:
            return False
        await self._pace()
        msg_id = await self.client.send_text(self.rec.conv, text)
        now = time.monotonic()
        self._sent_at[msg_id] = time.perf_counter()
        self._last_msg = now
        self.rec.sent += 1
        if self.rec.state == "assigned" and self._awaiting_reply is None:
            self._awaiting_reply = now
        return True

    async def _send(self, frame: p.Frame, retry: bool = True) -> bool:
        """Send a control frame (HubClient only queues messages for resending);
        if the link is down, wait for the resume and try once more."""
        await self._pace()
        if await self.client.send(frame):
            return True
        if retry and await self._until(
            lambda: self.client.state.status == "online", self.t.reply_timeout
        ):
            await self._pace()
            if await self.client.send(frame):
                return True
        self.rec.errors["not_sent"] += 1
        return False

    async def _pace(self) -> None:
        wait = self._last_frame + self.t.min_gap - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last_frame = time.monotonic()

    # -- waiting and watching ------------------------------------------------------------

    async def _until(self, cond: Callable[[], bool], timeout: float) -> bool:
        """Observe frames until `cond()` holds (True), or `timeout` passes or the
        link is gone for good (False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if math.isfinite(timeout) else math.inf
        while not cond():
            if self._gone and self.inbox.empty():
                return False
            left = deadline - loop.time()
            if left <= 0:
                return cond()
            try:
                frame = await asyncio.wait_for(self.inbox.get(), None if math.isinf(left) else left)
            except TimeoutError:
                return cond()
            self._observe(frame)
        return True

    async def _pause(self, seconds: float, interrupt: Callable[[], bool] | None = None) -> None:
        """A human pause that still watches frames; cut short if the chat closes."""
        if seconds <= 0:
            return
        stop = interrupt or (lambda: self.rec.state == "closed")
        await self._until(stop, seconds)

    def _offered(self) -> bool:
        last = self._bot_texts[-1].lower() if self._bot_texts else ""
        return any(mark in last for mark in _OFFER_MARKS)

    def _status(self, status: str) -> None:
        if status == "closed":
            self._gone = True
            self.inbox.put_nowait(None)  # wake whoever waits

    async def _run_client(self) -> None:
        try:
            await self.client.run()
        except Exception as exc:  # unreachable hub, bad URL: the script sees _gone
            self.rec.errors[type(exc).__name__] += 1
        finally:
            self._gone = True
            self.inbox.put_nowait(None)

    def _observe(self, frame: Any) -> None:
        rec = self.rec
        now = time.monotonic()
        if isinstance(frame, p.Msg):
            rec.received[frame.sender] += 1
            if frame.sender == "bot":
                self._bot_msgs += 1
                self._bot_texts.append(frame.text)
            elif frame.sender == "agent":
                self._unread_agent.append(frame.text)
                if self._first_line_pending and self._assigned_at is not None:
                    rec.first_response_s.append(now - self._assigned_at)
                    self._first_line_pending = False
                if self._awaiting_reply is not None:
                    rec.reply_s.append(now - self._awaiting_reply)
                    self._awaiting_reply = None
        elif isinstance(frame, p.Ack):
            sent = self._sent_at.pop(frame.msg_id, None)
            if sent is not None:  # the first ack of it (a resend may be acked again)
                rec.acked += 1
                rec.ack_ms.append((time.perf_counter() - sent) * 1000.0)
        elif isinstance(frame, p.ConvState):
            self._set_state(frame.state, frame.reason, now)
        elif isinstance(frame, p.Welcome):
            if not frame.resumed:
                if rec.started and frame.conv != rec.conv:
                    rec.errors["chat_restarted"] += 1  # the hub forgot our token
                rec.conv, rec.started = frame.conv, True
                rec.state = "new"
            self._set_state(frame.state, "", now)
        elif isinstance(frame, p.RatingRequest):
            rec.rating_requested = True
        elif isinstance(frame, p.Ok):
            if frame.ref == "rate":
                self._rated = True
        elif isinstance(frame, p.Error):
            rec.errors[frame.code] += 1

    def _set_state(self, state: str, reason: str, now: float) -> None:
        rec = self.rec
        if state == rec.state:
            return
        if state in ("queued", "assigned") and not rec.handed_off:
            rec.handed_off = True
            if self._handoff_at is None:
                self._handoff_at = now  # the bot handed off by itself
        if state == "queued":
            self._handoff_at = now if rec.state == "assigned" else (self._handoff_at or now)
            self._awaiting_reply = None
        elif state == "assigned":
            rec.assigned = True
            rec.queue_wait_s.append(now - (self._handoff_at or now))
            self._assigned_at = now
            self._first_line_pending = True
        elif state == "closed":
            rec.closed = True
            rec.close_reason = reason or rec.close_reason or "closed"
            self._awaiting_reply = None
        rec.state = state
