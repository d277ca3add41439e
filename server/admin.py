"""Administration on the hub's database: staff accounts and the audit log.

Used by the ``desk`` CLI. Changes to an agent's groups or cap take effect at
the agent's next login (a supervisor can change them live from the monitor).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from .auth import hash_password
from .routing import HARD_MAX_CHATS
from .store import SQLiteStore, UserRecord


class AdminError(Exception):
    pass


async def _open(db: Path) -> SQLiteStore:
    store = SQLiteStore(db)
    await store.open()
    return store


async def add_user(
    db: Path, user_id: str, name: str, password: str, role: str = "agent",
    groups: list[str] | None = None, max_chats: int = HARD_MAX_CHATS,
) -> UserRecord:  # fmt: skip
    if role not in ("agent", "supervisor"):
        raise AdminError(f"role must be agent or supervisor, not {role!r}")
    if not 0 <= max_chats <= HARD_MAX_CHATS:
        raise AdminError(f"max chats must be between 0 and {HARD_MAX_CHATS}")
    if len(password) < 4:
        raise AdminError("password too short (at least 4 characters)")
    store = await _open(db)
    try:
        if await store.get_user(user_id) is not None:
            raise AdminError(f"user {user_id!r} exists; use 'desk user set'")
        user = UserRecord(
            id=user_id, role=role, name=name, pw_hash=await asyncio.to_thread(hash_password, password),
            groups=groups or ["general"], max_chats=max_chats, created_at=time.time(),
        )  # fmt: skip
        await store.put_user(user)
        await store.audit("admin", "user_add", target=user_id, detail={"role": role, "groups": user.groups})
        return user
    finally:
        await store.close()


async def set_user(
    db: Path, user_id: str, *, name: str | None = None, password: str | None = None,
    groups: list[str] | None = None, max_chats: int | None = None, disabled: bool | None = None,
) -> UserRecord:  # fmt: skip
    store = await _open(db)
    try:
        user = await store.get_user(user_id)
        if user is None:
            raise AdminError(f"no user {user_id!r}")
        changes: dict[str, object] = {}
        if name is not None:
            user.name = changes["name"] = name
        if password is not None:
            user.pw_hash = await asyncio.to_thread(hash_password, password)
            changes["password"] = "changed"
        if groups is not None:
            user.groups = groups
            changes["groups"] = groups
        if max_chats is not None:
            if not 0 <= max_chats <= HARD_MAX_CHATS:
                raise AdminError(f"max chats must be between 0 and {HARD_MAX_CHATS}")
            user.max_chats = changes["max_chats"] = max_chats
        if disabled is not None:
            user.disabled = changes["disabled"] = disabled
        await store.put_user(user)
        await store.audit("admin", "user_set", target=user_id, detail=changes)
        return user
    finally:
        await store.close()


async def list_users(db: Path) -> list[UserRecord]:
    store = await _open(db)
    try:
        return await store.list_users()
    finally:
        await store.close()


async def verify_audit(db: Path) -> tuple[bool, int, str]:
    store = await _open(db)
    try:
        return await store.verify_audit()
    finally:
        await store.close()
