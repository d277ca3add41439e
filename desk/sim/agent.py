"""A stand-in agent for demos and benchmarks with no people at the desks.

It logs in, goes online, greets each chat it is given, answers each customer
message with a stock line after a human-ish delay, and closes the chat once
the customer thanks it or after a few replies. Real agents, or the tests'
own scripted agent, are the better judges of the hub; this one only keeps
handed-off chats moving so the simulator can show every outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass
from typing import Any

from desk.client import HubClient
from server import protocol as p
from server.bot.triggers import is_closing

from .customer import Timing

LINES = {
    "zh": {
        "greet": "您好，我是{name}，很高兴为您服务，请问有什么可以帮您？",
        "replies": [
            "好的，我这边马上为您查询，请稍等。",
            "请问您方便提供一下卡号后四位吗？请勿发送完整卡号和密码。",
            "明白，您的情况我已经记录下来了。",
            "已经为您登记好了，处理结果会以短信通知您。",
            "您可以在手机银行「我的」→「卡管理」里查看进度。",
            "这边看到交易状态正常，一般1-3个工作日内会有结果。",
        ],
        "bye": "不客气，请问还有其他可以帮您的吗？没有的话我先结束本次会话，祝您生活愉快！",
    },
    "en": {
        "greet": "Hello, this is {name}. How can I help you today?",
        "replies": [
            "Sure, let me check that for you, one moment please.",
            "Could you give me the last four digits of the card? Never the full number or PIN.",
            "Thank you, I have noted the details.",
            "Done: you will get a text message with the result.",
        ],
        "bye": "You're welcome. If there is nothing else, I'll close this chat now. Have a nice day!",
    },
}


@dataclass
class _Chat:
    lang: str
    wrapup: str
    replies_left: int
    synced: bool = False
    busy: bool = False  # a reply is being typed
    pending: bool = False  # the customer wrote while it was
    closing: bool = False


class SimAgent:
    """One scripted agent on its own HubClient connection."""

    def __init__(
        self, url: str, user: str, password: str, rng: random.Random, timing: Timing
    ) -> None:
        self.user = user
        self.rng = rng
        self.t = timing
        self.name = user
        self.client = HubClient(url, self._on_frame, login=p.Login(user=user, password=password))
        self.chats: dict[str, _Chat] = {}
        self.error = ""
        self.closed_chats = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_frame = 0.0
        self._gap = asyncio.Lock()

    async def start(self) -> None:
        """Connect, log in and go online; raises if the login fails."""
        self._runner = asyncio.create_task(self.client.run(), name=f"sim-agent-{self.user}")
        try:
            await self.client.wait_online(self.t.connect_timeout)
        except TimeoutError:
            await self.stop()
            raise RuntimeError(
                f"agent {self.user}: could not log in ({self.error or 'no answer'})"
            ) from None

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.client.close()
        self._runner.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._runner

    # -- frames ----------------------------------------------------------------

    async def _on_frame(self, frame: Any) -> None:
        if isinstance(frame, p.LoginOk):
            self.name = frame.name
            self._spawn(self._send(p.SetStatus(status="online")))
        elif isinstance(frame, p.Assigned):
            intents = frame.handoff.intents
            self.chats[frame.conv] = _Chat(
                lang=frame.customer.lang if frame.customer.lang in LINES else "zh",
                wrapup=(intents[0] if intents else frame.handoff.group or "general")[:64],
                replies_left=self.rng.randint(2, 4), synced=False,
            )  # fmt: skip
            if frame.resumed:
                self.chats[frame.conv].synced = True  # we greeted it before the link dropped
        elif isinstance(frame, p.Synced):
            chat = self.chats.get(frame.conv)
            if chat is not None and not chat.synced:
                chat.synced = True
                self._spawn(self._reply(frame.conv, greet=True))
        elif isinstance(frame, p.Msg):
            chat = self.chats.get(frame.conv)
            if chat is None or not chat.synced or frame.sender != "customer":
                return
            if is_closing(frame.text) or chat.replies_left <= 0:
                chat.closing = True
            if chat.busy:
                chat.pending = True
            else:
                self._spawn(self._reply(frame.conv))
        elif isinstance(frame, p.Unassigned):
            self.chats.pop(frame.conv, None)
        elif isinstance(frame, p.Error) and frame.code in ("bad_credentials", "throttled"):
            self.error = frame.message

    async def _reply(self, conv: str, greet: bool = False) -> None:
        chat = self.chats.get(conv)
        if chat is None or chat.busy:
            return
        chat.busy = True
        try:
            while True:
                chat.pending = False
                await asyncio.sleep(self.t.human(self.rng.uniform(3.0, 10.0)))
                if self.chats.get(conv) is not chat:
                    return  # closed or taken away meanwhile
                lines = LINES[chat.lang]
                if greet:
                    text, greet = lines["greet"].format(name=self.name), False
                elif chat.closing:
                    text = lines["bye"]
                else:
                    text = self.rng.choice(lines["replies"])
                    chat.replies_left -= 1
                await self._pace()
                await self.client.send_text(conv, text)
                if chat.closing:
                    await asyncio.sleep(self.t.human(self.rng.uniform(2.0, 5.0)))
                    if self.chats.get(conv) is chat:
                        await self._send(p.Close(conv=conv, wrapup=chat.wrapup))
                        self.closed_chats += 1
                    return
                if not chat.pending:  # the customer wrote while we typed: answer that too
                    return
        finally:
            chat.busy = False

    # -- sending ------------------------------------------------------------------

    async def _send(self, frame: p.Frame) -> None:
        await self._pace()
        await self.client.send(frame)

    async def _pace(self) -> None:
        # Up to five chats share this connection: keep well under 20 frames/s.
        async with self._gap:
            wait = self._last_frame + self.t.min_gap - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._last_frame = time.monotonic()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
