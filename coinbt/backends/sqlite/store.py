"""The event store on one SQLite file (aiosqlite): WAL, ``synchronous=FULL``, group commit.

Durability: the database runs in WAL mode with ``synchronous=FULL``, so every commit fsyncs the
write-ahead log before ``append`` returns; a committed append survives a process crash *and* a power
loss (given a disk that honours fsync). Appends are serialized by one writer task and by SQLite's
write lock (``BEGIN IMMEDIATE``); inside the lock the writer reads the head of the log and the
versions of the streams it appends to, so the version check holds even if another process writes
to the same file. ``UNIQUE (stream_id, version)`` backs the check; triggers refuse UPDATE and
DELETE.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import anyio

from coinbt.backends.sqlite._sqlutil import execute_values
from coinbt.backends.sqlite.migrations import LATEST, apply_migrations, connect_sync, schema_version
from coinbt.clock import Clock, SystemClock, from_epoch_us, to_epoch_us
from coinbt.errors import DatabaseError, SchemaTooNewError
from coinbt.events import (
    CURRENT_SCHEMA,
    GENESIS_HASH,
    StoredEvent,
    decode_row,
    decode_rows,
    type_code_sql,
)
from coinbt.store._batch import (
    Append,
    VersionCache,
    plan_batch,
)
from coinbt.store._follow import follow
from coinbt.store._verify import walk_chain
from coinbt.store._writer import GroupCommitAppends, GroupCommitWriter, Outcome
from coinbt.store.base import Progress, VerifyReport
from coinbt.store.metrics import Histogram

__all__ = ("SQLiteEventStore", "decode_row", "open_sqlite_store", "verify_file")

_COLUMNS = "position, stream_id, version, type, schema, recorded_at, data, hash"
# CAST: a tampered row may hold TEXT where a BLOB belongs; read it as bytes, let the codec judge.
_SELECT = (
    "SELECT position, stream_id, version, type, schema, recorded_at,"
    " CAST(data AS BLOB), CAST(hash AS BLOB) FROM events"
)
_PAGE = 5000


def _select_decoded() -> str:
    """``_SELECT`` with type codes (``type_code_sql``) for ``decode_rows``; rebuilt whenever
    ``CURRENT_SCHEMA`` changes (tests register older schemas)."""
    key = tuple(CURRENT_SCHEMA.items())
    sql = _select_cache.get(key)
    if sql is None:
        sql = _SELECT.replace(" type,", f" {type_code_sql()},", 1)
        _select_cache.clear()
        _select_cache[key] = sql
    return sql


_select_cache: dict[tuple[tuple[str, int], ...], str] = {}


class SQLiteEventStore(GroupCommitAppends):
    """The SQLite event store. Open it with :func:`open_sqlite_store`."""

    def __init__(
        self, path: Path, writer: sqlite3.Connection, reader: aiosqlite.Connection, clock: Clock
    ) -> None:
        self.path = path
        self._sync = _SyncWriter(path, writer, clock, self._notify)
        self._limiter = anyio.CapacityLimiter(1)
        self._reader = reader
        self._appended = anyio.Event()
        self._writer = GroupCommitWriter(self._commit)
        self.commit_latency = Histogram()

    # --- appending: GroupCommitAppends (coinbt.store._writer) ---------------------------------

    async def _commit(self, requests: list[Append]) -> list[Outcome]:
        # The whole transaction is one call on a worker thread: one hand-off per batch, not one per
        # statement (each hand-off is a trip through the GIL, which the event loop also wants).
        started = time.perf_counter()
        try:
            return await anyio.to_thread.run_sync(
                self._sync.commit, requests, limiter=self._limiter
            )
        finally:
            self.commit_latency.observe(time.perf_counter() - started)

    # --- reading ---------------------------------------------------------------------------------

    async def read_stream(
        self,
        stream_id: str,
        after_version: int = 0,
        *,
        after_position: int = 0,
        limit: int | None = None,
    ) -> list[StoredEvent]:
        rows = await self._fetch(
            f"{_select_decoded()} WHERE stream_id = ? AND version > ? AND position > ? "
            "ORDER BY version LIMIT ?",
            (stream_id, after_version, after_position, -1 if limit is None else limit),
        )
        return decode_rows(rows)

    async def read_all(self, after: int = 0, limit: int | None = None) -> list[StoredEvent]:
        rows = await self._fetch(
            f"{_select_decoded()} WHERE position > ? ORDER BY position LIMIT ?",
            (after, -1 if limit is None else limit),
        )
        return decode_rows(rows)

    async def read_all_raw(self, after: int = 0, limit: int = _PAGE) -> list[tuple[Any, ...]]:
        """Undecoded rows (for backups and bulk tools)."""
        rows = await self._fetch(
            f"{_SELECT} WHERE position > ? ORDER BY position LIMIT ?",
            (after, limit),
        )
        return [tuple(r) for r in rows]

    def appended_hint(self) -> anyio.Event:
        """An event set at the next commit (a hint to read again, never the data itself)."""
        return self._appended

    def subscribe(self, after: int = 0) -> AsyncIterator[StoredEvent]:
        return follow(self.read_all, self.appended_hint, after, _PAGE)

    async def stream_version(self, stream_id: str) -> int:
        rows = await self._fetch(
            "SELECT MAX(version) FROM events WHERE stream_id = ?", (stream_id,)
        )
        return int(rows[0][0] or 0)

    async def last_position(self) -> int:
        rows = await self._fetch("SELECT MAX(position) FROM events", ())
        return int(rows[0][0] or 0)

    async def stream_ids(self) -> list[str]:
        """Every stream, in the order of its first event."""
        rows = await self._fetch(
            "SELECT stream_id FROM events WHERE version = 1 ORDER BY position", ()
        )
        return [r[0] for r in rows]

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
        try:
            return list(await self._reader.execute_fetchall(sql, params))
        except sqlite3.Error as e:
            raise DatabaseError(f"reading {self.path} failed: {e}") from e

    # --- auditing --------------------------------------------------------------------------------

    async def verify(self, progress: Progress | None = None) -> VerifyReport:
        return await anyio.to_thread.run_sync(verify_file, self.path, progress)

    # --- lifecycle -------------------------------------------------------------------------------

    @property
    def stats(self) -> dict[str, int]:
        """Appends and transactions committed since open (group commit's effect)."""
        return {"appends": self._writer.appends, "transactions": self._writer.batches}


class _SyncWriter:
    """The writer's side of a batch, run on a worker thread with its own sqlite3 connection.

    It caches the head of the log and recent stream versions. The cache is only trusted while no
    other connection has committed (``PRAGMA data_version``, read inside the write lock), and a new
    stream is assumed to be at version 0 with ``UNIQUE (stream_id, version)`` as the backstop: on
    any constraint violation the batch is rolled back and planned again from fresh reads.
    """

    def __init__(
        self, path: Path, conn: sqlite3.Connection, clock: Clock, notify: Callable[[], None]
    ) -> None:
        self._path = path
        self._conn = conn
        self._clock = clock
        self._notify = notify
        self._head: tuple[int, bytes] | None = None
        self._versions = VersionCache()
        self._data_version = -1

    def commit(self, requests: list[Append]) -> list[Outcome]:
        try:
            try:
                outcomes = self._attempt(requests, trust_cache=True)
            except sqlite3.IntegrityError:
                self._forget()
                outcomes = self._attempt(requests, trust_cache=False)
        except sqlite3.Error as e:
            self._forget()
            raise DatabaseError(f"append to {self._path} failed: {e}") from e
        return outcomes

    def _forget(self) -> None:
        self._head = None
        self._versions.clear()

    def _attempt(self, requests: list[Append], *, trust_cache: bool) -> list[Outcome]:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            data_version = conn.execute("PRAGMA data_version").fetchone()[0]
            if data_version != self._data_version:  # someone else committed: trust nothing
                self._forget()
                self._data_version = data_version
            if self._head is None:
                row = conn.execute(
                    "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1"
                ).fetchone()
                self._head = (row[0], bytes(row[1])) if row else (0, GENESIS_HASH)
            versions = self._known_versions(requests, trust_cache)
            now_us = to_epoch_us(self._clock.now())
            plan = plan_batch(requests, *self._head, versions, from_epoch_us(now_us), now_us)
            self._insert(plan.rows)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self._head = (plan.head_position, plan.head_hash)
        self._versions.remember(versions)
        if plan.rows:
            self._notify()
        return list(plan.outcomes)

    def _known_versions(self, requests: list[Append], trust_cache: bool) -> dict[str, int]:
        versions, lookup = self._versions.split(requests, trust_cache)
        for start in range(0, len(lookup), 500):
            chunk = lookup[start : start + 500]
            rows = self._conn.execute(
                "SELECT stream_id, MAX(version) FROM events WHERE stream_id IN "
                f"({','.join('?' * len(chunk))}) GROUP BY stream_id",
                chunk,
            ).fetchall()
            versions.update((sid, int(v)) for sid, v in rows)
        return versions

    def _insert(self, rows: list[tuple[Any, ...]]) -> None:
        execute_values(self._conn, f"INSERT INTO events ({_COLUMNS})", 8, rows)


def verify_file(path: str | Path, progress: Progress | None = None) -> VerifyReport:
    """Walk the hash chain of the log in ``path`` (read-only, in the calling thread)."""
    conn = connect_sync(path, readonly=True)
    try:
        total = conn.execute("SELECT COALESCE(MAX(position), 0) FROM events").fetchone()[0]
        cursor = conn.execute(f"{_SELECT} ORDER BY position")
        return walk_chain(cursor, progress, total)
    except sqlite3.Error as e:
        raise DatabaseError(f"reading {path} failed: {e}") from e
    finally:
        conn.close()


def _check_schema(path: Path) -> None:
    conn = connect_sync(path, readonly=True)
    try:
        found = schema_version(conn)
    finally:
        conn.close()
    if found > LATEST:
        raise SchemaTooNewError(str(path), found, LATEST)
    if found < LATEST:
        raise DatabaseError(f"{path} is at schema {found}; run 'coinbt migrate --db {path}'")


def _connect_writer(path: Path) -> sqlite3.Connection:
    # Used from anyio's worker threads, one batch at a time (a CapacityLimiter of 1).
    return connect_sync(path, check_same_thread=False)


async def _connect(path: Path) -> aiosqlite.Connection:
    def connector() -> sqlite3.Connection:
        return connect_sync(path)

    try:
        return await aiosqlite.Connection(connector, iter_chunk_size=64)
    except sqlite3.Error as e:
        raise DatabaseError(f"cannot open {path}: {e}") from e


@asynccontextmanager
async def open_sqlite_store(
    path: str | Path, *, clock: Clock | None = None, migrate: bool = True
) -> AsyncIterator[SQLiteEventStore]:
    """Open (creating and migrating unless ``migrate=False``) the event store in ``path``.

    On exit, appends already queued are committed, then the connections close.
    """
    target = Path(path)
    if migrate:
        await anyio.to_thread.run_sync(apply_migrations, target)
    else:
        await anyio.to_thread.run_sync(_check_schema, target)
    writer = await anyio.to_thread.run_sync(_connect_writer, target)
    try:
        reader = await _connect(target)
    except BaseException:
        writer.close()
        raise
    store = SQLiteEventStore(target, writer, reader, clock or SystemClock())
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(store._writer.run)
            try:
                yield store
            finally:
                store._writer.close()
    finally:
        with anyio.CancelScope(shield=True):
            await reader.close()
            writer.close()
