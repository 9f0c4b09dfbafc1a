"""Event stores: the interface, an in-memory store and the SQLite store."""

from coinbt.store.base import EventStore, VerifyReport
from coinbt.store.memory import MemoryEventStore
from coinbt.store.sqlite import SQLiteEventStore, open_sqlite_store, verify_file

__all__ = (
    "EventStore",
    "MemoryEventStore",
    "SQLiteEventStore",
    "VerifyReport",
    "open_sqlite_store",
    "verify_file",
)
