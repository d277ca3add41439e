from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.config import HubConfig
from server.net import HubServer, build_hub


def hub_config(tmp_path: Path, **kw: object) -> HubConfig:
    defaults: dict[str, object] = dict(
        db_path=tmp_path / "hub.db", port=0, agent_grace_s=30.0, customer_grace_s=30.0,
        customer_idle_s=600.0, sqlite_synchronous="FULL", rate_per_s=200.0, rate_burst=400,
        board_interval_s=0.05,
    )  # fmt: skip
    defaults.update(kw)
    return HubConfig(**defaults)  # type: ignore[arg-type]


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubServer]:
    server = await build_hub(hub_config(tmp_path)).start()
    try:
        yield server
    finally:
        await server.stop()
