"""The storage seam: a narrow async interface the hub talks to.

SQLite (``sqlite.py``) is the embedded default. A server database for a
deployment that outgrows one machine implements the same ``Store`` protocol;
nothing else in the hub knows which one it has.

Writes return a future at once and keep their submission order: the hub
submits in event order and acts (acks, fan-out) when the future resolves,
which happens only after the write is durable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import msgspec

from phrasebook import Phrase, UsageRecord


class UserRecord(msgspec.Struct, kw_only=True):
    id: str
    role: str  # agent | supervisor
    name: str
    pw_hash: str
    disabled: bool = False
    max_chats: int = 5
    groups: list[str] = []
    status: str = "offline"  # the agent's last chosen status, restored after a restart
    created_at: float = 0.0


class ConversationRecord(msgspec.Struct, kw_only=True):
    id: str
    customer_name: str
    channel: str = "web"
    flags: list[str] = []
    lang: str = "zh"
    token_hash: str = ""
    state: str = "bot"  # bot | queued | assigned | closed
    grp: str = ""
    klass: int = 2
    asked_at: float = 0.0
    agent_id: str | None = None
    assigned_at: float = 0.0
    front: bool = False
    exclude_agent: str | None = None
    created_at: float = 0.0
    closed_at: float | None = None
    close_reason: str = ""
    closed_by: str = ""
    bot_memory: dict[str, Any] = {}
    handoff: dict[str, Any] = {}
    transfers: int = 0
    wrapup_code: str = ""
    wrapup_note: str = ""
    rating: str = ""
    rating_comment: str = ""
    first_response_at: float | None = None
    last_agent: str = ""  # the last agent who held it (figures count it for them)
    rated_at: float | None = None


class MessageRecord(msgspec.Struct, kw_only=True):
    conv_id: str
    seq: int
    msg_id: str = ""
    kind: str  # text | bot | system | note
    sender: str  # customer | agent | bot | system | supervisor
    sender_id: str = ""
    sender_name: str = ""
    text: str
    ts: float
    epoch: int = 0  # the run of the hub that numbered it (see Hub.epoch)


class AuditRecord(msgspec.Struct, kw_only=True):
    id: int
    ts: float
    actor: str
    action: str
    target: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str


class StoreError(Exception):
    """The store could not do what was asked (disk full, broken file...)."""


class Store(Protocol):
    """What the hub needs from a database."""

    async def open(self) -> None: ...

    async def close(self) -> None:
        """Finish every pending write, then release the database."""
        ...

    # -- writes: a future that resolves once the write is durable ----------
    def put_user(self, user: UserRecord) -> asyncio.Future[None]: ...

    def insert_conversation(self, conv: ConversationRecord) -> asyncio.Future[None]: ...

    def update_conversation(self, conv_id: str, **fields: Any) -> asyncio.Future[None]: ...

    def append_message(
        self, msg: MessageRecord, written: Callable[[], None] | None = None
    ) -> asyncio.Future[None]:
        """`written()` runs once the message is committed (readable, and kept
        if the hub process dies), which may be before it is durable against
        a power cut, when the future resolves."""
        ...

    async def next_epoch(self) -> int:
        """A number for this run of the hub, durably stored, larger than any
        before it, and not reused after a restored backup or a lost write."""
        ...

    def add_transfer(
        self, conv_id: str, from_agent: str, to_group: str, to_agent: str, note: str, ts: float
    ) -> asyncio.Future[None]: ...

    def add_token(self, token_hash: str, user_id: str, session: str, ts: float) -> asyncio.Future[None]: ...

    def revoke_token(self, token_hash: str, ts: float) -> asyncio.Future[None]: ...

    def audit(
        self, actor: str, action: str, target: str = "", detail: dict[str, Any] | None = None
    ) -> asyncio.Future[None]: ...

    def barrier(self) -> asyncio.Future[None]:
        """Resolves when everything submitted before it is durable."""
        ...

    def record_miss(self, question: str, sample: str, ts: float) -> asyncio.Future[None]:
        """Count a question the bot could not answer (`question` normalised)."""
        ...

    async def top_misses(self, limit: int = 50) -> list[tuple[str, int, float]]: ...

    def put_phrase(self, phrase: Phrase, by: str) -> asyncio.Future[None]: ...

    def delete_phrase(self, phrase_id: str) -> asyncio.Future[None]: ...

    def put_usage(self, rec: UsageRecord, conv_id: str, ts: float) -> asyncio.Future[None]: ...

    async def load_phrases(self) -> list[Phrase]: ...

    async def load_usage(self) -> list[UsageRecord]: ...

    async def phrases_rev(self) -> int:
        """A counter every phrase write bumps (the hub polls it for CLI edits)."""
        ...

    # -- reads --------------------------------------------------------------
    async def get_user(self, user_id: str) -> UserRecord | None: ...

    async def list_users(self) -> list[UserRecord]: ...

    async def token_user(self, token_hash: str) -> tuple[str, str] | None:
        """(user id, session) for a live token, None if unknown or revoked."""
        ...

    async def get_conversation(self, conv_id: str) -> ConversationRecord | None: ...

    async def conversation_by_token(self, token_hash: str) -> ConversationRecord | None: ...

    async def open_conversations(self) -> list[ConversationRecord]: ...

    async def last_seqs(self, conv_ids: Iterable[str]) -> dict[str, int]: ...

    async def message_ids(self, conv_ids: Iterable[str]) -> dict[tuple[str, str, str], tuple[int, int]]:
        """(conv, sender id, msg id) -> (seq, epoch), for dedupe across a restart."""
        ...

    async def messages_after(
        self, conv_id: str, after_seq: int, include_staff: bool
    ) -> list[MessageRecord]: ...

    async def audit_entries(self, limit: int = 100, after_id: int = 0) -> list[AuditRecord]: ...

    async def verify_audit(self, anchors: Iterable[tuple[int, str]] = ()) -> tuple[bool, int, str]:
        """(intact, entries checked, first problem)."""
        ...

    async def audit_head(self) -> tuple[int, str]: ...

    async def ping(self) -> bool:
        """True if a write goes through now."""
        ...
