"""Real websocket clients for tests, and a poll helper (no sleeps as asserts)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

TIMEOUT = 5.0  # one scale factor for every wait in the suite
_ids = itertools.count(1)


class Client:
    """A test client that records every frame the hub sends it."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self._new = asyncio.Event()
        self._reader = asyncio.create_task(self._read())
        self.closed_code: int | None = None
        self.conv = ""
        self.token = ""

    @classmethod
    async def connect(cls, url: str, **kw: Any) -> Client:
        return cls(await connect(url, **kw))

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self.frames.append(json.loads(raw))
                self._new.set()
        except Exception:
            pass
        finally:
            self.closed_code = self.ws.close_code
            self._new.set()

    async def send(self, **frame: Any) -> None:
        await self.ws.send(json.dumps(frame, ensure_ascii=False))

    async def raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def expect(
        self, type_: str, pred: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float = TIMEOUT, start: int = 0,
    ) -> dict[str, Any]:  # fmt: skip
        """The first frame of `type_` (matching `pred`) at or after index `start`."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for f in self.frames[start:]:
                if f.get("type") == type_ and (pred is None or pred(f)):
                    return f
            if self.closed_code is not None:
                raise AssertionError(f"closed ({self.closed_code}) before {type_}; got {self.frames}")
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"no {type_} frame within {timeout}s; got {self.frames[-10:]}")
            self._new.clear()
            try:
                await asyncio.wait_for(self._new.wait(), left)
            except TimeoutError:
                pass

    def of(self, type_: str, conv: str | None = None) -> list[dict[str, Any]]:
        return [f for f in self.frames if f.get("type") == type_ and (conv is None or f.get("conv") == conv)]

    def cursor(self, conv: str) -> tuple[int, int]:
        """(seq, epoch) this client holds for `conv`, as desk/client.py keeps it."""
        seq, epoch = 0, 0
        for f in self.frames:
            if f.get("conv") != conv:
                continue
            kind = f.get("type")
            if kind in ("msg", "ack") and f["seq"] > seq:
                seq, epoch = f["seq"], f.get("epoch", 0)
            elif kind == "synced" and f["last_seq"] >= seq:
                seq, epoch = f["last_seq"], f.get("epoch", 0)
            elif kind == "resync":
                seq, epoch = 0, 0
        return seq, epoch

    def texts(self, conv: str | None = None) -> list[str]:
        return [f["text"] for f in self.of("msg", conv)]

    async def say(self, text: str, conv: str | None = None, msg_id: str | None = None) -> dict[str, Any]:
        """Send a message and wait for its ack."""
        mid = msg_id or f"m{next(_ids)}"
        await self.send(type="send", conv=conv or self.conv, msg_id=mid, text=text)
        return await self.expect("ack", lambda f: f["msg_id"] == mid)

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()


async def customer(url: str, name: str = "王先生", **hello: Any) -> Client:
    c = await Client.connect(url)
    await c.send(type="hello", name=name, **hello)
    w = await c.expect("welcome")
    c.conv, c.token = w["conv"], w["resume_token"]
    return c


async def agent(url: str, user: str, password: str = "pw", **login: Any) -> Client:
    c = await Client.connect(url)
    await c.send(type="login", user=user, password=password, **login)
    ok = await c.expect("login_ok")
    c.token = ok["token"]
    return c


async def wait_until(pred: Callable[[], bool], timeout: float = TIMEOUT, what: str = "") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what or pred}")
        await asyncio.sleep(0.01)
