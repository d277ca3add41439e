"""Administration on the hub's database: staff accounts and the audit log.

Used by the ``desk`` CLI. Changes to an agent's groups or cap take effect at
the agent's next login (a supervisor can change them live from the monitor).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from pathlib import Path

import msgspec

from phrasebook import Phrase, UsageStats, derive_id, dump_csv, dump_yaml, load_csv, load_yaml

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


async def verify_audit(db: Path, anchors: Iterable[tuple[int, str]] = ()) -> tuple[bool, int, str]:
    store = await _open(db)
    try:
        return await store.verify_audit(anchors)
    finally:
        await store.close()


async def audit_head(db: Path) -> tuple[int, str]:
    store = await _open(db)
    try:
        return await store.audit_head()
    finally:
        await store.close()


# -- phrasebook ----------------------------------------------------------------


def read_phrase_file(path: Path) -> list[Phrase]:
    """A YAML or CSV phrase file (by extension); PhraseImportError names bad lines."""
    if path.suffix.lower() == ".csv":
        return load_csv(path)
    return load_yaml(path)


async def import_phrases(
    db: Path, path: Path, *, owner: str | None = None, replace: bool = False, by: str = "admin"
) -> tuple[int, int]:
    """Import phrases (team, or personal for `owner`); returns (written, deleted).
    With `replace`, phrases of that scope missing from the file are deleted.
    A running hub notices and pushes the changes to every desk."""
    phrases = read_phrase_file(path)
    now = time.time()
    if owner is not None:
        phrases = [
            msgspec.structs.replace(ph, scope="personal", owner=owner,
                                    id=derive_id("personal", owner, ph.code, ph.lang))
            for ph in phrases
        ]  # fmt: skip
    else:
        phrases = [msgspec.structs.replace(ph, scope="team", owner=None) for ph in phrases]
    store = await _open(db)
    try:
        if owner is not None and await store.get_user(owner) is None:
            raise AdminError(f"no user {owner!r}")
        existing = [ph for ph in await store.load_phrases()
                    if (ph.scope == "team" and owner is None) or (ph.owner == owner and owner)]  # fmt: skip
        keep = {ph.id for ph in phrases}
        deleted = 0
        if replace:
            for ph in existing:
                if ph.id not in keep:
                    store.delete_phrase(ph.id)
                    deleted += 1
        for ph in phrases:
            store.put_phrase(msgspec.structs.replace(ph, updated_at=ph.updated_at or now), by=by)
        await store.audit(by, "phrase_import", target=str(path.name),
                          detail={"count": len(phrases), "deleted": deleted, "owner": owner or ""})
        return len(phrases), deleted
    finally:
        await store.close()


async def export_phrases(db: Path, path: Path, *, owner: str | None = None) -> int:
    store = await _open(db)
    try:
        phrases = [ph for ph in await store.load_phrases()
                   if (ph.owner == owner if owner else ph.scope == "team")]  # fmt: skip
    finally:
        await store.close()
    if path.suffix.lower() == ".csv":
        dump_csv(phrases, path)
    else:
        dump_yaml(phrases, path)
    return len(phrases)


async def list_phrases(db: Path, agent: str | None = None) -> tuple[list[Phrase], UsageStats]:
    store = await _open(db)
    try:
        phrases = await store.load_phrases()
        usage = UsageStats.from_records(await store.load_usage())
    finally:
        await store.close()
    return [ph for ph in phrases if ph.scope == "team" or (agent and ph.owner == agent)], usage


async def top_misses(db: Path, limit: int = 30) -> list[tuple[str, int, float]]:
    store = await _open(db)
    try:
        return await store.top_misses(limit)
    finally:
        await store.close()
