"""Naming the database: a SQLite file's path, a PostgreSQL DSN, or ``memory:`` (nothing kept; no
imports beyond stdlib, so the command line can parse ``--db`` cheaply)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

__all__ = ("DSN_SCHEMES", "MEMORY", "describe_db", "is_dsn", "is_memory", "parse_db")

DSN_SCHEMES = ("postgresql://", "postgres://")
MEMORY = "memory:"
"""The URL of a fresh memory backend (``coinbt.backends.memory``)."""


def is_memory(db: object) -> bool:
    """Whether ``db`` names a fresh memory backend."""
    return isinstance(db, str) and db == MEMORY


def is_dsn(db: str | Path) -> bool:
    """Whether ``db`` names a PostgreSQL database (a DSN) rather than a SQLite file."""
    return isinstance(db, str) and db.startswith(DSN_SCHEMES)


def parse_db(value: str) -> Path | str:
    """A ``--db`` value: a DSN or ``memory:`` stays a string, anything else is a path."""
    return value if is_dsn(value) or is_memory(value) else Path(value)


def describe_db(db: str | Path) -> str:
    """``db`` for messages: a DSN without its password."""
    if not is_dsn(db):
        return str(db)
    try:
        parts = urlsplit(str(db))
        if parts.password is None:
            return str(db)
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
    except ValueError:
        return "the given DSN"
