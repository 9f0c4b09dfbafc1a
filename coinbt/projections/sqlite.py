"""Read models in SQLite: the projector's writer (sync, on a worker thread) and the async reader.

The writer folds a batch of events into task and position views and writes the changed views and
the projection's checkpoint (the last position applied) in one transaction, so a restart resumes
exactly after the last applied event. Its connection uses ``synchronous=NORMAL``: the read models
can always be rebuilt from the log, so they need not pay an fsync per batch; a power loss can only
roll them back to an earlier, consistent checkpoint.
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import aiosqlite
import msgspec

from coinbt.errors import DatabaseError
from coinbt.events import Completed, Filled, StoredEvent
from coinbt.projections.positions import PositionView, apply_fill, mark
from coinbt.projections.status import TaskView, apply_status
from coinbt.store.sqlutil import execute_values

__all__ = ("MAIN", "TERMINAL_STATUSES", "ReadModelReader", "ReadModelWriter")

MAIN = "main"
TERMINAL_STATUSES = ("completed", "failed", "cancelled")

_encoder = msgspec.msgpack.Encoder()
_task_decoder = msgspec.msgpack.Decoder(TaskView)
_position_decoder = msgspec.msgpack.Decoder(PositionView)


def decode_task(blob: bytes) -> TaskView:
    return _task_decoder.decode(blob)


def decode_position(blob: bytes) -> PositionView:
    return _position_decoder.decode(blob)


class ReadModelWriter:
    """Applies events to the read-model tables of one SQLite connection (one thread at a time)."""

    def __init__(
        self, conn: sqlite3.Connection, name: str = MAIN, cache_size: int = 50_000
    ) -> None:
        self._conn = conn
        self._name = name
        self._cache_size = cache_size
        self._tasks: OrderedDict[str, TaskView] = OrderedDict()
        self._positions: OrderedDict[tuple[str, str], PositionView] = OrderedDict()
        conn.execute("PRAGMA synchronous=NORMAL")
        row = conn.execute(
            "SELECT position FROM projection_checkpoints WHERE name = ?", (name,)
        ).fetchone()
        self.checkpoint: int = row[0] if row else 0

    def apply(self, events: Iterable[StoredEvent]) -> int:
        """Fold ``events`` (those after the checkpoint) and commit; returns the new checkpoint."""
        checkpoint = self.checkpoint
        tasks: dict[str, TaskView] = {}
        positions: dict[tuple[str, str], PositionView] = {}
        for stored in events:
            if stored.position <= checkpoint:
                continue  # already applied: exactly once
            task_id = stored.stream_id
            view = tasks.get(task_id) or self._task(task_id)
            tasks[task_id] = apply_status(view, stored)
            event = stored.event
            if isinstance(event, Filled):
                key = (task_id, event.symbol)
                current = positions.get(key) or self._position(key)
                positions[key] = apply_fill(current, task_id, event)
            elif isinstance(event, Completed) and event.symbol:
                key = (task_id, event.symbol)
                current = positions.get(key) or self._position(key)
                if current is not None:
                    positions[key] = mark(current, event)
            checkpoint = stored.position
        if checkpoint == self.checkpoint:
            return checkpoint
        self._write(tasks, positions, checkpoint)
        return checkpoint

    def _write(
        self,
        tasks: dict[str, TaskView],
        positions: dict[tuple[str, str], PositionView],
        checkpoint: int,
    ) -> None:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                execute_values(
                    conn,
                    "INSERT INTO tasks (task_id, seq, status, idempotency_key, view)",
                    5,
                    [
                        (v.task_id, v.seq, v.status, v.idempotency_key, _encoder.encode(v))
                        for v in tasks.values()
                    ],
                    "ON CONFLICT (task_id) DO UPDATE SET status = excluded.status, "
                    "view = excluded.view",
                )
                if positions:
                    execute_values(
                        conn,
                        "INSERT INTO positions (task_id, symbol, view)",
                        3,
                        [(p.task_id, p.symbol, _encoder.encode(p)) for p in positions.values()],
                        "ON CONFLICT (task_id, symbol) DO UPDATE SET view = excluded.view",
                    )
                conn.execute(
                    "INSERT INTO projection_checkpoints (name, position) VALUES (?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                    (self._name, checkpoint),
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            self._tasks.clear()
            self._positions.clear()
            raise DatabaseError(f"updating the read models failed: {e}") from e
        self.checkpoint = checkpoint
        _remember(self._tasks, tasks, self._cache_size)
        _remember(self._positions, positions, self._cache_size)

    def _task(self, task_id: str) -> TaskView | None:
        view = self._tasks.get(task_id)
        if view is None:
            row = self._conn.execute(
                "SELECT view FROM tasks WHERE task_id = ?", (task_id,)
            ).fetchone()
            view = decode_task(row[0]) if row else None
        return view

    def _position(self, key: tuple[str, str]) -> PositionView | None:
        position = self._positions.get(key)
        if position is None:
            row = self._conn.execute(
                "SELECT view FROM positions WHERE task_id = ? AND symbol = ?", key
            ).fetchone()
            position = decode_position(row[0]) if row else None
        return position


def _remember(cache: OrderedDict[Any, Any], changed: dict[Any, Any], size: int) -> None:
    for key, value in changed.items():
        cache[key] = value
        cache.move_to_end(key)
    while len(cache) > size:
        cache.popitem(last=False)


class ReadModelReader:
    """Async queries of the read models (an aiosqlite connection of its own)."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return list(await self._conn.execute_fetchall(sql, params))
        except sqlite3.Error as e:
            raise DatabaseError(f"reading the read models failed: {e}") from e

    async def task(self, task_id: str) -> TaskView | None:
        rows = await self._rows("SELECT view FROM tasks WHERE task_id = ?", (task_id,))
        return decode_task(rows[0][0]) if rows else None

    async def tasks(
        self, *, status: str | None = None, limit: int = 50, before_seq: int | None = None
    ) -> list[TaskView]:
        """Newest first; ``before_seq`` continues a page (the cursor)."""
        clauses: list[str] = []
        params: list[object] = []
        if status is not None:
            clauses.append("status = ?")
            params.append(status)
        if before_seq is not None:
            clauses.append("seq < ?")
            params.append(before_seq)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self._rows(
            f"SELECT view FROM tasks {where} ORDER BY seq DESC LIMIT ?", [*params, limit]
        )
        return [decode_task(r[0]) for r in rows]

    async def unfinished(self) -> list[TaskView]:
        """Queued and running tasks, oldest first."""
        rows = await self._rows(
            "SELECT view FROM tasks WHERE status IN ('queued', 'running') ORDER BY seq"
        )
        return [decode_task(r[0]) for r in rows]

    async def positions(self, task_id: str) -> list[PositionView]:
        rows = await self._rows(
            "SELECT view FROM positions WHERE task_id = ? ORDER BY symbol", (task_id,)
        )
        return [decode_position(r[0]) for r in rows]

    async def task_id_for_key(self, key: str) -> str | None:
        rows = await self._rows(
            "SELECT task_id FROM tasks WHERE idempotency_key = ? ORDER BY seq LIMIT 1", (key,)
        )
        return rows[0][0] if rows else None

    async def counts(self) -> dict[str, int]:
        rows = await self._rows("SELECT status, COUNT(*) FROM tasks GROUP BY status")
        counts = dict.fromkeys(("queued", "running", *TERMINAL_STATUSES), 0)
        counts.update(dict(rows))
        return counts

    async def checkpoint(self, name: str = MAIN) -> int:
        rows = await self._rows(
            "SELECT position FROM projection_checkpoints WHERE name = ?", (name,)
        )
        return int(rows[0][0]) if rows else 0
