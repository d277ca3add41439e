"""A bare websockets relay: the baseline the hub is measured against.

Clients connect to /room/<name>; every text frame is forwarded as is to the
other members of the room. No parsing, no storage, no acks.
"""

from __future__ import annotations

import asyncio
import sys

from websockets.asyncio.server import ServerConnection, serve

rooms: dict[str, set[ServerConnection]] = {}


async def handler(ws: ServerConnection) -> None:
    room = rooms.setdefault(ws.request.path if ws.request else "/", set())
    room.add(ws)
    try:
        async for message in ws:
            for other in room:
                if other is not ws:
                    await other.send(message)
    finally:
        room.discard(ws)


async def main(port: int) -> None:
    async with serve(handler, "127.0.0.1", port, max_size=64 * 1024, compression=None) as server:
        print(f"relay listening on ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
