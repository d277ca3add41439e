"""The websocket layer, kept thin: decode, rate-limit, hand to the hub.

HTTP on the same port: ``GET /healthz`` and ``GET /metrics``. Oversized
frames are refused by websockets itself with close code 1009.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from http import HTTPStatus

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from .botstage import BotStage
from .config import HubConfig
from .hub import Hub
from .protocol import FrameError, decode_client
from .session import CLOSE_GOING_AWAY, CLOSE_POLICY, Session

log = logging.getLogger("hub.net")


class HubServer:
    """A hub and its listening socket. ``build_hub`` makes one; the CLI and
    the tests use the same factory, so tests run what users run."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.server: Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://{self.hub.config.host}:{self.port}/"

    async def start(self) -> HubServer:
        await self.hub.start()
        cfg = self.hub.config
        self.server = await serve(
            self._handler,
            cfg.host,
            cfg.port,
            process_request=self._http,
            max_size=cfg.max_frame_bytes,
            origins=cfg.origins,  # type: ignore[arg-type]
            max_queue=8,
            # Chat frames are small: per-message deflate saves little on them
            # and costs CPU per frame and a compressor per connection.
            compression=None,
            ping_interval=20,
            ping_timeout=20,
        )
        self.port = self.server.sockets[0].getsockname()[1]
        log.info("hub listening on %s (db %s)", self.url, cfg.db_path)
        return self

    async def stop(self) -> None:
        """Graceful stop: close every socket with 1001, then drain the store."""
        if self.server is not None:
            self.server.close(close_connections=True)
            await self.server.wait_closed()
            self.server = None
        await self.hub.stop()

    async def serve_until_signalled(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        with contextlib.suppress(NotImplementedError, AttributeError):
            # kill -HUP <hub>: reload the knowledge base now (the admin command)
            loop.add_signal_handler(signal.SIGHUP, lambda: self.hub.spawn(self.hub.reload_kb("sighup")))
        await stop.wait()
        log.info("signal received: draining")
        await self.stop()

    # -- HTTP -------------------------------------------------------------

    async def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/healthz":
            ok = self.hub.started and await self.hub.store.ping()
            status = HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE
            return connection.respond(status, "ok\n" if ok else "unavailable\n")
        if path == "/metrics":
            response = connection.respond(HTTPStatus.OK, self.hub.metrics.render(self.hub))
            response.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
            return response
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        return None

    # -- websocket ----------------------------------------------------------

    async def _handler(self, ws: ServerConnection) -> None:
        hub, cfg = self.hub, self.hub.config
        host = ws.remote_address[0] if ws.remote_address else ""
        session = Session(ws, peer=str(host), max_outbound=cfg.max_outbound_bytes)  # type: ignore[arg-type]
        session.tokens, session.refilled_at = float(cfg.rate_burst), time.monotonic()
        hub.connected(session)
        try:
            async for raw in ws:
                if session.closed:
                    continue  # keep reading so the close handshake can finish
                if not self._allow(session):
                    continue
                if isinstance(raw, bytes):
                    hub.metrics.bad_frames += 1
                    session.error("binary_not_supported", "send JSON in text frames")
                    continue
                try:
                    frame = decode_client(raw)
                except FrameError as exc:
                    hub.metrics.bad_frames += 1
                    session.error(exc.code, exc.message)
                    continue
                session.frames_in += 1
                try:
                    await hub.handle(session, frame)
                except Exception:
                    log.exception("session %s: frame %s failed", session.id, type(frame).__name__)
                    session.error("internal", "the hub could not carry this out; nothing was stored")
        except ConnectionClosed:
            pass
        finally:
            hub.disconnected(session)

    def _allow(self, session: Session) -> bool:
        """Token bucket per connection; a client that keeps flooding is cut off."""
        cfg = self.hub.config
        now = time.monotonic()
        session.tokens = min(cfg.rate_burst, session.tokens + (now - session.refilled_at) * cfg.rate_per_s)
        session.refilled_at = now
        if session.tokens >= 1.0:
            session.tokens -= 1.0
            return True
        session.strikes += 1
        self.hub.metrics.rate_limited += 1
        if session.strikes >= cfg.flood_strikes:
            session.kill(CLOSE_POLICY, "flooding")
        elif session.strikes == 1 or session.strikes % 10 == 0:
            session.error("rate_limited", f"more than {cfg.rate_per_s:g} frames/s: frame dropped")
        return False


def build_hub(config: HubConfig, bot: BotStage | None = None) -> HubServer:
    """The one factory for a hub: the CLI, the demo and the tests all use it.
    With ``config.kb_path`` and no `bot`, the built-in knowledge-base bot answers first."""
    return HubServer(Hub(config, bot=bot))


__all__ = ["CLOSE_GOING_AWAY", "HubServer", "build_hub"]
