"""The SQLite backend: the event log and everything beside it in one file, owned by one process."""

from coinbt.backends.sqlite.store import SQLiteEventStore, open_sqlite_store, verify_file

__all__ = ("SQLiteEventStore", "open_sqlite_store", "verify_file")
