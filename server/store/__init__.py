"""Storage behind a narrow async interface (``Store``); SQLite is the default."""

from .base import AuditRecord, ConversationRecord, MessageRecord, Store, StoreError, UserRecord
from .sqlite import SQLiteStore

__all__ = [
    "AuditRecord",
    "ConversationRecord",
    "MessageRecord",
    "SQLiteStore",
    "Store",
    "StoreError",
    "UserRecord",
]
