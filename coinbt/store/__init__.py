"""Event stores: the interface, an in-memory store, the SQLite store and the PostgreSQL store.

The PostgreSQL names are imported on first use: they need the ``postgres`` extra (asyncpg).
"""

from typing import TYPE_CHECKING, Any

from coinbt.store.base import EventStore, VerifyReport
from coinbt.store.memory import MemoryEventStore
from coinbt.store.sqlite import SQLiteEventStore, open_sqlite_store, verify_file

if TYPE_CHECKING:
    from coinbt.store.postgres import PostgresEventStore, migrate_postgres, open_postgres_store

__all__ = (
    "EventStore",
    "MemoryEventStore",
    "PostgresEventStore",
    "SQLiteEventStore",
    "VerifyReport",
    "migrate_postgres",
    "open_postgres_store",
    "open_sqlite_store",
    "verify_file",
)

_POSTGRES = frozenset({"PostgresEventStore", "migrate_postgres", "open_postgres_store"})


def __getattr__(name: str) -> Any:
    if name not in _POSTGRES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from coinbt.store import postgres
    except ModuleNotFoundError as e:
        if e.name != "asyncpg":
            raise
        raise ImportError(
            "the PostgreSQL event store needs asyncpg: pip install 'coinbt[postgres]'"
        ) from e
    return getattr(postgres, name)
