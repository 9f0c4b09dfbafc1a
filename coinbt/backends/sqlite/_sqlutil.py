"""SQLite helpers shared by the writers of the log and of the read models."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Sequence
from typing import Any

__all__ = ("execute_values",)

_cache: dict[tuple[str, int, int, str], str] = {}


def execute_values(
    conn: sqlite3.Connection,
    head: str,
    columns: int,
    rows: Sequence[Sequence[Any]],
    tail: str = "",
    *,
    chunk: int = 256,
) -> None:
    """``head VALUES (?, ...), (?, ...) tail`` for ``rows``, up to ``chunk`` rows a statement.

    Why not ``executemany``: sqlite3 releases and retakes the GIL around every step, once per row
    with executemany, and a thread retaking the GIL from a busy event loop waits a whole switch
    interval each time (measured: 450 ms instead of 10 ms for 1,000 rows). One statement per chunk
    pays that a few times per batch.
    """
    one = "(" + ", ".join("?" * columns) + ")"
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        key = (head, columns, len(part), tail)
        sql = _cache.get(key)
        if sql is None:
            sql = f"{head} VALUES {', '.join([one] * len(part))} {tail}"
            if len(part) in (1, chunk):
                _cache[key] = sql
        conn.execute(sql, list(itertools.chain.from_iterable(part)))
