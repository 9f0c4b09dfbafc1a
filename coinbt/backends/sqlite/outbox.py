"""The artifact outbox in the SQLite file: the ``artifacts`` table.

See :mod:`coinbt.artifacts.outbox` for what the outbox is; this is its one-process form.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from coinbt.artifacts.outbox import LOCAL, STATES, ArtifactRow, Staged, relative_to, staged_path
from coinbt.backends.sqlite._sqlutil import execute_values
from coinbt.backends.sqlite.migrations import connect_sync
from coinbt.clock import Clock, SystemClock, to_epoch_us
from coinbt.errors import DatabaseError
from coinbt.events import ArtifactRef, Completed, decode_row

__all__ = ("ArtifactOutbox", "backfill", "open_outbox")

_KEYS_PER_STATEMENT = 256

_COLUMNS = (
    "key, task_id, name, sha256, size, state, location, staged, attempts, last_error,"
    " created_at, updated_at"
)


class ArtifactOutbox:
    """The ``artifacts`` table, on its own connection (one statement at a time, off the loop).

    ``counts`` (rows per state) is kept in memory for /metrics and the uploader's bookkeeping.
    """

    def __init__(self, conn: sqlite3.Connection, data_dir: Path, clock: Clock) -> None:
        self._conn = conn
        self.data_dir = data_dir
        self._clock = clock
        self._limiter = anyio.CapacityLimiter(1)
        self.counts: dict[str, int] = dict.fromkeys(STATES, 0)

    async def _run(self, fn: Any, *args: Any) -> Any:
        def call() -> Any:
            try:
                return fn(*args)
            except sqlite3.Error as e:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise DatabaseError(f"the artifact table failed: {e}") from e

        return await anyio.to_thread.run_sync(call, limiter=self._limiter)

    def _now(self) -> int:
        return to_epoch_us(self._clock.now())

    def _load_counts(self) -> None:
        self.counts = dict.fromkeys(STATES, 0)
        for state, n in self._conn.execute(
            "SELECT state, COUNT(*) FROM artifacts GROUP BY state"
        ).fetchall():
            self.counts[state] = n

    # --- writes ----------------------------------------------------------------------------------

    async def add(self, task_id: str, staged: Sequence[tuple[str, ArtifactRef, Path]]) -> None:
        """Record a run's artifacts as pending, each with its staged file."""
        await self.add_many([(task_id, staged)])

    async def add_many(self, runs: Sequence[tuple[str, Sequence[Staged]]]) -> None:
        now = self._now()
        rows = [
            (
                ref.key,
                task_id,
                name,
                ref.sha256,
                ref.size,
                "pending",
                self._relative(path),
                now,
                now,
            )
            for task_id, staged in runs
            for name, ref, path in staged
        ]

        def insert() -> None:
            # One transaction (in autocommit each row was a transaction of its own, a WAL commit
            # each) and one statement per 256 rows (execute_values: executemany retakes the GIL
            # once per row, waiting out the busy event loop each time).
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            before = conn.total_changes
            execute_values(
                conn,
                "INSERT INTO artifacts (key, task_id, name, sha256, size, state, staged,"
                " created_at, updated_at)",
                9,
                rows,
                "ON CONFLICT (key) DO NOTHING",
            )
            added = conn.total_changes - before
            conn.execute("COMMIT")
            self.counts["pending"] += added

        await self._run(insert)

    async def discard(self, keys: Sequence[str]) -> None:
        """Forget pending artifacts (their run's outcome was refused)."""

        def delete() -> None:
            for key in keys:
                cursor = self._conn.execute(
                    "DELETE FROM artifacts WHERE key = ? AND state = 'pending'", (key,)
                )
                self.counts["pending"] -= cursor.rowcount

        await self._run(delete)

    async def mark_stored(self, key: str, location: str) -> None:
        await self._transition(
            key,
            "stored",
            "location = ?, staged = NULL, attempts = attempts + 1, last_error = NULL",
            (location,),
        )

    async def mark_stored_many(self, keys: Sequence[str], location: str) -> None:
        def update() -> None:
            now = self._now()
            self._conn.execute("BEGIN IMMEDIATE")
            changed = 0
            for start in range(0, len(keys), _KEYS_PER_STATEMENT):  # one statement per chunk
                part = keys[start : start + _KEYS_PER_STATEMENT]
                changed += self._conn.execute(
                    "UPDATE artifacts SET state = 'stored', location = ?, staged = NULL,"
                    " attempts = attempts + 1, last_error = NULL, updated_at = ?"
                    f" WHERE key IN ({', '.join('?' * len(part))}) AND state = 'pending'",
                    (location, now, *part),
                ).rowcount
            self._conn.execute("COMMIT")
            self.counts["pending"] -= changed
            self.counts["stored"] += changed

        await self._run(update)

    async def mark_retry(self, key: str, error: str) -> None:
        """An attempt failed and will be retried: count it and keep the error for display."""
        await self._run(
            lambda: self._conn.execute(
                "UPDATE artifacts SET attempts = attempts + 1, last_error = ?, updated_at = ?"
                " WHERE key = ? AND state = 'pending'",
                (error, self._now(), key),
            )
        )

    async def mark_failed(self, key: str, error: str) -> None:
        """The artifact can never be stored (no retry)."""
        await self._transition(key, "failed", "attempts = attempts + 1, last_error = ?", (error,))

    async def _transition(self, key: str, state: str, sets: str, params: tuple[Any, ...]) -> None:
        def update() -> None:
            cursor = self._conn.execute(
                f"UPDATE artifacts SET state = ?, {sets}, updated_at = ?"
                " WHERE key = ? AND state = 'pending'",
                (state, *params, self._now(), key),
            )
            if cursor.rowcount:
                self.counts["pending"] -= 1
                self.counts[state] += 1

        await self._run(update)

    async def relocate(self, key: str, old: str, new: str) -> bool:
        """Record that a stored artifact moved from location ``old`` to ``new``."""

        def update() -> bool:
            cursor = self._conn.execute(
                "UPDATE artifacts SET location = ?, updated_at = ?"
                " WHERE key = ? AND location = ? AND state = 'stored'",
                (new, self._now(), key, old),
            )
            return cursor.rowcount == 1

        moved: bool = await self._run(update)
        return moved

    # --- reads -----------------------------------------------------------------------------------

    async def stored_elsewhere(self, location: str, after: str, limit: int) -> list[ArtifactRow]:
        """Stored artifacts not at ``location``, in key order after ``after`` (keyset paging)."""
        return await self._select(
            "WHERE state = 'stored' AND location != ? AND key > ? ORDER BY key LIMIT ?",
            (location, after, limit),
        )

    async def pending(self, limit: int) -> list[ArtifactRow]:
        """Pending artifacts, the least tried first, then the oldest."""
        return await self._select(
            "WHERE state = 'pending' ORDER BY attempts, created_at, key LIMIT ?", (limit,)
        )

    async def count_stored_at(self, location: str) -> int:
        def count() -> int:
            row = self._conn.execute(
                "SELECT COUNT(*) FROM artifacts WHERE state = 'stored' AND location = ?",
                (location,),
            ).fetchone()
            return int(row[0])

        n: int = await self._run(count)
        return n

    async def get(self, key: str) -> ArtifactRow | None:
        rows = await self._select("WHERE key = ?", (key,))
        return rows[0] if rows else None

    async def for_task(self, task_id: str) -> list[ArtifactRow]:
        return await self._select("WHERE task_id = ? ORDER BY name", (task_id,))

    async def _select(self, where: str, params: tuple[Any, ...]) -> list[ArtifactRow]:
        def select() -> list[ArtifactRow]:
            rows = self._conn.execute(f"SELECT {_COLUMNS} FROM artifacts {where}", params)
            return [ArtifactRow.from_row(r) for r in rows.fetchall()]

        result: list[ArtifactRow] = await self._run(select)
        return result

    def staged_path(self, row: ArtifactRow) -> Path | None:
        return staged_path(self.data_dir, row)

    def _relative(self, path: Path) -> str:
        return relative_to(self.data_dir, path)

    async def adopt_orphans(self) -> int:
        return 0  # one process owns the file


def backfill(conn: sqlite3.Connection, now_us: int) -> int:
    """Give the artifacts of runs that completed before the outbox existed their rows (stored,
    in the data directory's local store, where coinbt kept them then). Runs once per database;
    returns the number of rows added."""
    state = conn.execute("SELECT upto, done FROM artifact_backfill WHERE id = 1").fetchone()
    if state is None or state[1]:
        return 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        upto, done = conn.execute(
            "SELECT upto, done FROM artifact_backfill WHERE id = 1"
        ).fetchone()
        added = 0
        if not done:
            cursor = conn.execute(
                "SELECT position, stream_id, version, type, schema, recorded_at,"
                " CAST(data AS BLOB), CAST(hash AS BLOB) FROM events"
                " WHERE type = 'Completed' AND position <= ? ORDER BY position",
                (upto,),
            )
            while rows := cursor.fetchmany(1000):
                values = []
                for row in rows:
                    stored = decode_row(row)
                    event = stored.event
                    assert isinstance(event, Completed)
                    created = row[5]
                    values += [
                        (
                            ref.key,
                            stored.stream_id,
                            name,
                            ref.sha256,
                            ref.size,
                            LOCAL,
                            created,
                            now_us,
                        )
                        for name, ref in event.artifacts.items()
                    ]
                before = conn.total_changes
                conn.executemany(
                    "INSERT INTO artifacts (key, task_id, name, sha256, size, state, location,"
                    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'stored', ?, ?, ?)"
                    " ON CONFLICT (key) DO NOTHING",
                    values,
                )
                added += conn.total_changes - before
            conn.execute("UPDATE artifact_backfill SET done = 1 WHERE id = 1")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return added


@asynccontextmanager
async def open_outbox(
    db: Path, data_dir: Path, clock: Clock | None = None
) -> AsyncIterator[ArtifactOutbox]:
    """The outbox of ``db`` (migrated already), backfilled once for runs older than it."""
    clock = clock or SystemClock()

    def connect() -> sqlite3.Connection:
        conn = connect_sync(db, check_same_thread=False)
        # NORMAL, not FULL: no fsync per outbox write. Safe because of WAL ordering: a run's rows
        # are added before its Completed event is appended, and that append's FULL commit fsyncs
        # the WAL up to and including them. A later state change lost to a power failure only
        # leaves a row pending: the uploader then finds the object already stored (or uploads
        # the staged file again), which is idempotent. (Measured: the per-artifact fsyncs halved
        # the tiny-task throughput of scripts/bench_tasks.py.)
        conn.execute("PRAGMA synchronous=NORMAL")
        try:
            backfill(conn, to_epoch_us(clock.now()))
        except BaseException:
            conn.close()
            raise
        return conn

    try:
        conn = await anyio.to_thread.run_sync(connect)
    except sqlite3.Error as e:
        raise DatabaseError(f"opening the artifact table of {db} failed: {e}") from e
    outbox = ArtifactOutbox(conn, data_dir, clock)
    try:
        await outbox._run(outbox._load_counts)
        yield outbox
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(conn.close, limiter=outbox._limiter)
