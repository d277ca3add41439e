"""A lossy loopback link for fault drills, and the drills' shared knobs.

``LossyProxy`` listens on 127.0.0.1 and forwards every accepted TCP
connection to the hub (its upstream, which may change: a restarted hub
listens on a new port). It can hurt any link the way real networks do:

* ``delay``: each chunk waits a random few milliseconds (order is kept);
* ``reset``: both ends are aborted (RST), mid-frame if it falls there;
* ``close``: both ends get a FIN;
* ``half_open``: the client's end is aborted, the hub's end is left open
  and silent (the hub does not know yet), and is closed later;
* ``blackhole``: both ends stay open but nothing gets through in either
  direction (bytes are dropped), then both are aborted.

A chaos task picks a random link every few tens of milliseconds and applies a
random fault, from a seeded ``random.Random`` so a run's choice of faults can
be replayed (timing, of course, varies). The proxy counts what it did.

The drills (``tests/test_reliability_*.py``) scale with ``DESK_SOAK``: unset,
they run their short default versions; ``DESK_SOAK=1`` (or a number, a
multiplier) runs the long versions (``bench/soak.py``). With
``DESK_FIGURES=DIR`` each drill writes its figures to ``DIR/<drill>.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FAULTS = ("reset", "close", "half_open", "blackhole")


def soak_factor() -> float:
    """1.0 for the default suite; DESK_SOAK=1 means 10x, DESK_SOAK=N means N x."""
    raw = os.environ.get("DESK_SOAK", "").strip()
    if not raw:
        return 1.0
    try:
        value = float(raw)
    except ValueError:
        return 10.0
    return 10.0 if value == 1 else max(1.0, value)


def scaled(default: int) -> int:
    return max(1, round(default * soak_factor()))


def record_figures(drill: str, figures: dict[str, Any]) -> None:
    """Write a drill's figures where bench/soak.py (or a person) asked for them."""
    target = os.environ.get("DESK_FIGURES", "").strip()
    if not target:
        return
    out = Path(target)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"drill": drill, "soak_factor": soak_factor(), "at": time.time(), **figures}
    (out / f"{drill}.json").write_text(json.dumps(payload, ensure_ascii=False, indent=2, sort_keys=True))


@dataclass(eq=False)
class Link:
    """One client connection through the proxy and its upstream twin."""

    id: int
    client_r: asyncio.StreamReader
    client_w: asyncio.StreamWriter
    hub_r: asyncio.StreamReader | None = None
    hub_w: asyncio.StreamWriter | None = None
    dropping: bool = False  # blackholed: read and discard
    dead: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    bytes_up: int = 0
    bytes_down: int = 0
    opened_at: float = field(default_factory=time.monotonic)


class LossyProxy:
    def __init__(
        self,
        upstream_port: int | None,
        *,
        seed: int = 0,
        max_delay_s: float = 0.0,
        host: str = "127.0.0.1",
    ) -> None:
        self.host = host
        self.upstream_port = upstream_port
        self.rng = random.Random(seed)
        self.max_delay_s = max_delay_s
        self.links: dict[int, Link] = {}
        self.faults: Counter[str] = Counter()
        self.accepted = 0
        self.refused = 0  # connections that found no hub behind the proxy
        self._next = 0
        self._server: asyncio.Server | None = None
        self._chaos: asyncio.Task[None] | None = None
        self._later: set[asyncio.Task[None]] = set()
        self.port = 0

    # -- life -----------------------------------------------------------------

    async def start(self) -> LossyProxy:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/"

    async def stop(self) -> None:
        await self.stop_chaos()
        if self._server is not None:
            self._server.close()
            self._server = None
        for link in list(self.links.values()):
            self._kill(link)
        for task in list(self._later):
            task.cancel()
        await asyncio.sleep(0)

    def set_upstream(self, port: int | None) -> None:
        """Point new connections at a (re)started hub; None: nobody home."""
        self.upstream_port = port

    # -- chaos -------------------------------------------------------------------

    def start_chaos(
        self,
        every_s: tuple[float, float] = (0.05, 0.25),
        faults: Iterable[str] = FAULTS,
        min_age_s: float = 0.05,
    ) -> None:
        """Hurt a random link at random intervals until ``stop_chaos``."""
        kinds = tuple(faults)
        self._chaos = asyncio.create_task(self._chaos_loop(every_s, kinds, min_age_s))

    async def stop_chaos(self) -> None:
        if self._chaos is not None:
            self._chaos.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._chaos
            self._chaos = None

    async def _chaos_loop(self, every_s: tuple[float, float], kinds: tuple[str, ...], min_age_s: float) -> None:
        while True:
            await asyncio.sleep(self.rng.uniform(*every_s))
            now = time.monotonic()
            # Let a link live a moment first, or nothing would ever get through.
            live = [lk for lk in self.links.values() if not lk.dead and not lk.dropping
                    and now - lk.opened_at >= min_age_s]  # fmt: skip
            if not live:
                continue
            link = self.rng.choice(sorted(live, key=lambda lk: lk.id))
            self.hurt(link, self.rng.choice(kinds))

    def hurt(self, link: Link, fault: str) -> None:
        """Apply one fault to one link now."""
        if link.dead:
            return
        self.faults[fault] += 1
        if fault == "reset":
            self._kill(link)
        elif fault == "close":
            self._kill(link, graceful=True)
        elif fault == "half_open":
            _abort(link.client_w)
            link.dropping = True  # the hub's end hears nothing more, and says nothing
            self._after(self.rng.uniform(0.1, 1.0), lambda: self._kill(link))
        elif fault == "blackhole":
            link.dropping = True
            self._after(self.rng.uniform(0.1, 1.0), lambda: self._kill(link))
        else:
            raise ValueError(f"unknown fault {fault!r}")

    def heal(self) -> None:
        """End every hurt link now (blackholed or half open), so clients reconnect."""
        for link in list(self.links.values()):
            if link.dropping:
                self._kill(link)

    def _after(self, delay: float, fn: Any) -> None:
        async def later() -> None:
            await asyncio.sleep(delay)
            fn()

        task = asyncio.create_task(later())
        self._later.add(task)
        task.add_done_callback(self._later.discard)

    def drop_all(self) -> int:
        """Reset every link (e.g. the hub behind it was killed)."""
        n = 0
        for link in list(self.links.values()):
            if not link.dead:
                self._kill(link)
                n += 1
        return n

    # -- plumbing -----------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._next += 1
        link = Link(self._next, reader, writer)
        self.accepted += 1
        if self.upstream_port is None:
            self.refused += 1
            _abort(writer)
            return
        try:
            link.hub_r, link.hub_w = await asyncio.open_connection(self.host, self.upstream_port)
        except OSError:
            self.refused += 1
            _abort(writer)
            return
        self.links[link.id] = link
        link.tasks = [
            asyncio.create_task(self._pump(link, reader, link.hub_w, up=True)),
            asyncio.create_task(self._pump(link, link.hub_r, writer, up=False)),
        ]

    async def _pump(self, link: Link, src: asyncio.StreamReader, dst: asyncio.StreamWriter, up: bool) -> None:
        try:
            while not link.dead:
                chunk = await src.read(65536)
                if not chunk:
                    break
                if link.dropping:
                    continue
                if self.max_delay_s:
                    await asyncio.sleep(self.rng.uniform(0, self.max_delay_s))
                    if link.dead or link.dropping:
                        continue
                dst.write(chunk)
                if up:
                    link.bytes_up += len(chunk)
                else:
                    link.bytes_down += len(chunk)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if not link.dropping:  # a blackholed link stays up until its timer ends it
                self._kill(link, graceful=True)

    def _kill(self, link: Link, graceful: bool = False) -> None:
        if link.dead:
            return
        link.dead = True
        self.links.pop(link.id, None)
        for w in (link.client_w, link.hub_w):
            if w is None:
                continue
            if graceful:
                with contextlib.suppress(Exception):
                    w.close()
            else:
                _abort(w)
        current = asyncio.current_task()
        for task in link.tasks:
            if task is not current:
                task.cancel()


def _abort(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.transport.abort()
