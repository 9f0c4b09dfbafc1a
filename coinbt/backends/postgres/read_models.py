"""Read models in PostgreSQL: one writer per database (leader election), readers everywhere.

Several coinbt processes share one database, and so one set of read models (``tasks``,
``positions``, ``projection_checkpoints``). Exactly one of them projects at a time:

- **Election.** Each process keeps one dedicated connection for its projection. On it, the
  writer holds the session-level advisory lock ``(PROJECTOR_LOCK, 0)``
  (``pg_try_advisory_lock``). The others try again every ``retry_s``; when the writer's session
  ends (its process died, its connection broke), PostgreSQL releases the lock and the next try
  takes it. The writer writes on the same connection that holds the lock, so losing one loses
  both.
- **Compare-and-set.** A writer's transaction first moves the checkpoint row from the checkpoint
  it read when elected to the new one (``UPDATE ... WHERE position = expected``); if another
  writer moved it meanwhile (two writers for a moment, say after a network partition), nothing
  is written and the sink gives up. The lock makes writers take turns; the checkpoint row makes a
  stale one harmless.
- **Notification.** The same transaction runs ``pg_notify('coinbt_projection', checkpoint)``;
  every process LISTENs on its projection connection, so ``Projector.wait_for(position)`` returns
  in every process as soon as the views include ``position`` (read-your-writes on any process).
  A writer that stops cleanly releases the lock and announces ``vacant``: the others try at once.

The writer's connection runs with ``synchronous_commit = off``: the read models can always be
rebuilt from the log, so a page need not wait for a WAL flush (a crash of the server can only
roll them back to an earlier, consistent checkpoint), like SQLite's ``synchronous=NORMAL``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import anyio

from coinbt.backends.postgres.schema import DRIVER_ERRORS, PROJECTOR_LOCK, connect, describe
from coinbt.errors import DatabaseError, ProjectionConflictError
from coinbt.events import StoredEvent
from coinbt.projections.base import MAIN, UNFINISHED_SQL, status_counts
from coinbt.projections.fold import (
    PositionKey,
    ViewCache,
    decode_position,
    decode_task,
    encode_view,
    fold_page,
    touched,
)
from coinbt.projections.positions import PositionView
from coinbt.projections.status import TaskView

__all__ = ("CHANNEL", "PgProjection", "PgReadModelReader", "PgReadModelSink")

log = logging.getLogger("coinbt.projector")

CHANNEL = "coinbt_projection"
"""The NOTIFY channel of the read models; the payload is the new checkpoint, or ``vacant`` when
the writer stops."""
_VACANT = "vacant"

_MOVE_CHECKPOINT = f"""
WITH moved AS (
    UPDATE projection_checkpoints SET position = $2 WHERE name = $1 AND position = $3
    RETURNING position
)
SELECT pg_notify('{CHANNEL}', position::text) FROM moved
"""
_UPSERT_TASKS = """
INSERT INTO tasks (task_id, seq, status, idempotency_key, view)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::bytea[])
ON CONFLICT (task_id) DO UPDATE SET status = excluded.status, view = excluded.view
"""
_UPSERT_POSITIONS = """
INSERT INTO positions (task_id, symbol, view)
SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[])
ON CONFLICT (task_id, symbol) DO UPDATE SET view = excluded.view
"""


class PgReadModelSink:
    """Writes pages on the elected connection (see the module docstring)."""

    def __init__(self, conn: Any, name: str, checkpoint: int, where: str) -> None:
        self._conn = conn
        self._name = name
        self._checkpoint = checkpoint
        self._where = where
        self._lock = anyio.Lock()
        self._tasks: ViewCache[str, TaskView] = ViewCache(50_000)
        self._positions: ViewCache[PositionKey, PositionView] = ViewCache(50_000)
        self.usable = True

    @property
    def checkpoint(self) -> int:
        return self._checkpoint

    async def apply(self, events: Sequence[StoredEvent]) -> int:
        if not self.usable:
            raise DatabaseError(f"the read-model writer of {self._where} gave up its turn")
        async with self._lock:
            try:
                return await self._apply(events)
            except DRIVER_ERRORS as e:
                self.usable = False
                raise DatabaseError(f"updating the read models in {self._where} failed: {e}") from e
            except ProjectionConflictError:
                self.usable = False
                raise

    async def _apply(self, events: Sequence[StoredEvent]) -> int:
        conn = self._conn
        checkpoint = self._checkpoint
        task_ids, keys = touched(events, checkpoint)
        tasks = await self._load_tasks(task_ids)
        positions = await self._load_positions(keys)
        changes = fold_page(events, checkpoint, tasks.get, positions.get)
        if changes.checkpoint == checkpoint:
            return checkpoint
        async with conn.transaction():
            moved = await conn.fetch(_MOVE_CHECKPOINT, self._name, changes.checkpoint, checkpoint)
            if not moved:
                raise ProjectionConflictError(
                    f"another process moved the read models of {self._where} past {checkpoint}"
                )
            views = list(changes.tasks.values())
            await conn.execute(
                _UPSERT_TASKS,
                [v.task_id for v in views],
                [v.seq for v in views],
                [v.status for v in views],
                [v.idempotency_key for v in views],
                [encode_view(v) for v in views],
            )
            if changes.positions:
                rows = list(changes.positions.values())
                await conn.execute(
                    _UPSERT_POSITIONS,
                    [p.task_id for p in rows],
                    [p.symbol for p in rows],
                    [encode_view(p) for p in rows],
                )
        self._checkpoint = changes.checkpoint
        self._tasks.remember(changes.tasks)
        self._positions.remember(changes.positions)
        return changes.checkpoint

    async def _load_tasks(self, task_ids: set[str]) -> dict[str, TaskView]:
        found: dict[str, TaskView] = {}
        missing: list[str] = []
        for task_id in task_ids:
            view = self._tasks.get(task_id)
            if view is None:
                missing.append(task_id)
            else:
                found[task_id] = view
        if missing:
            rows = await self._conn.fetch(
                "SELECT view FROM tasks WHERE task_id = ANY($1::text[])", missing
            )
            for row in rows:
                view = decode_task(bytes(row[0]))
                found[view.task_id] = view
        return found

    async def _load_positions(self, keys: set[PositionKey]) -> dict[PositionKey, PositionView]:
        found: dict[PositionKey, PositionView] = {}
        missing: set[str] = set()
        for key in keys:
            position = self._positions.get(key)
            if position is None:
                missing.add(key[0])
            else:
                found[key] = position
        if missing:
            rows = await self._conn.fetch(
                "SELECT view FROM positions WHERE task_id = ANY($1::text[])", list(missing)
            )
            for row in rows:
                position = decode_position(bytes(row[0]))
                key = (position.task_id, position.symbol)
                if key in keys:
                    found.setdefault(key, position)
        return found


class PgProjection:
    """The election and the notifications of one process (see the module docstring)."""

    def __init__(self, dsn: str, *, retry_s: float = 1.0, name: str = MAIN) -> None:
        self.dsn = dsn
        self.retry_s = retry_s
        self._name = name
        self._where = f"PostgreSQL at {describe(dsn)}"
        self._conn: Any = None
        self._sink: PgReadModelSink | None = None
        self._lock = anyio.Lock()
        self._announced = 0
        self._vacant = False
        self._hint = anyio.Event()

    # --- notifications ---------------------------------------------------------------------------

    @property
    def announced(self) -> int:
        return self._announced

    def announced_hint(self) -> anyio.Event:
        return self._hint

    def _poke(self) -> None:
        self._hint.set()
        self._hint = anyio.Event()

    @property
    def vacant(self) -> bool:
        return self._vacant

    def _on_notification(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload == _VACANT:
            self._vacant = True
            self._poke()
            return
        try:
            position = int(payload)
        except ValueError:
            return
        if position > self._announced:
            self._announced = position
            self._poke()

    # --- the connection --------------------------------------------------------------------------

    async def _connection(self) -> Any:
        conn = self._conn
        if conn is not None and not conn.is_closed():
            return conn
        self._conn = None
        self._sink = None
        conn = await connect(self.dsn)
        try:
            await conn.execute("SET synchronous_commit = off")  # see the module docstring
            await conn.add_listener(CHANNEL, self._on_notification)
            conn.add_termination_listener(lambda _conn: self._poke())
        except DRIVER_ERRORS as e:
            conn.terminate()
            raise DatabaseError(f"listening to {self._where} failed: {e}") from e
        self._conn = conn
        self._poke()  # announcements may have been missed while nobody listened: read again
        return conn

    # --- the election ----------------------------------------------------------------------------

    async def lead(self) -> PgReadModelSink | None:
        async with self._lock:
            self._vacant = False
            sink = self._sink
            if sink is not None and sink.usable and not self._conn.is_closed():
                return sink
            if sink is not None:  # gave up (lost its connection, or lost a race): start over
                await self._drop()
            conn = await self._connection()
            try:
                elected = await conn.fetchval("SELECT pg_try_advisory_lock($1, 0)", PROJECTOR_LOCK)
                if not elected:
                    return None
                checkpoint = await conn.fetchval(
                    "SELECT position FROM projection_checkpoints WHERE name = $1", self._name
                )
            except DRIVER_ERRORS as e:
                await self._drop()
                raise DatabaseError(f"electing the projector on {self._where} failed: {e}") from e
            if checkpoint is None:
                await self._drop()
                raise DatabaseError(f"{self._where} has no {self._name!r} projection checkpoint")
            self._sink = PgReadModelSink(conn, self._name, int(checkpoint), self._where)
            log.info("this process now writes the read models (from position %d)", checkpoint)
            return self._sink

    async def resign(self) -> None:
        async with self._lock:
            if self._sink is not None:
                await self._drop()

    async def _step_down(self) -> None:
        """Release the writer's lock and say so, so that another process takes over at once
        (rather than at its next retry)."""
        conn = self._conn
        if self._sink is None or conn is None or conn.is_closed():
            return
        try:
            with anyio.move_on_after(5):
                await conn.execute("SELECT pg_advisory_unlock($1, 0)", PROJECTOR_LOCK)
                await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, _VACANT)
        except DRIVER_ERRORS:
            pass  # the connection goes anyway; the others notice at their next retry

    async def _drop(self) -> None:
        """Close the connection: its session's lock goes with it."""
        conn, self._conn, self._sink = self._conn, None, None
        if conn is not None:
            with anyio.CancelScope(shield=True):
                try:
                    await conn.close(timeout=5)
                except DRIVER_ERRORS:
                    conn.terminate()

    async def committed(self) -> int:
        async with self._lock:
            conn = await self._connection()
            try:
                value = await conn.fetchval(
                    "SELECT position FROM projection_checkpoints WHERE name = $1", self._name
                )
            except DRIVER_ERRORS as e:
                await self._drop()
                raise DatabaseError(f"reading the checkpoint in {self._where} failed: {e}") from e
        return int(value or 0)

    async def close(self) -> None:
        async with self._lock:
            with anyio.CancelScope(shield=True):
                await self._step_down()
            await self._drop()


class PgReadModelReader:
    """Queries of the read models, on a connection pool."""

    def __init__(self, pool: Any, where: str) -> None:
        self._pool = pool
        self._where = where

    async def _rows(self, sql: str, *args: Any) -> list[Any]:
        try:
            return list(await self._pool.fetch(sql, *args))
        except DRIVER_ERRORS as e:
            raise DatabaseError(f"reading the read models in {self._where} failed: {e}") from e

    async def task(self, task_id: str) -> TaskView | None:
        rows = await self._rows("SELECT view FROM tasks WHERE task_id = $1", task_id)
        return decode_task(bytes(rows[0][0])) if rows else None

    async def tasks(
        self, *, status: str | None = None, limit: int = 50, before_seq: int | None = None
    ) -> list[TaskView]:
        clauses: list[str] = []
        params: list[object] = []
        if status is not None:
            params.append(status)
            clauses.append(f"status = ${len(params)}")
        if before_seq is not None:
            params.append(before_seq)
            clauses.append(f"seq < ${len(params)}")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        params.append(limit)
        rows = await self._rows(
            f"SELECT view FROM tasks {where} ORDER BY seq DESC LIMIT ${len(params)}", *params
        )
        return [decode_task(bytes(r[0])) for r in rows]

    async def unfinished(self) -> list[TaskView]:
        rows = await self._rows(
            f"SELECT view FROM tasks WHERE status IN ({UNFINISHED_SQL}) ORDER BY seq"
        )
        return [decode_task(bytes(r[0])) for r in rows]

    async def unfinished_at(self) -> tuple[int, list[TaskView]]:
        try:
            async with (
                self._pool.acquire() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                checkpoint = await conn.fetchval(
                    "SELECT position FROM projection_checkpoints WHERE name = $1", MAIN
                )
                rows = await conn.fetch(
                    f"SELECT view FROM tasks WHERE status IN ({UNFINISHED_SQL}) ORDER BY seq"
                )
        except DRIVER_ERRORS as e:
            raise DatabaseError(f"reading the read models in {self._where} failed: {e}") from e
        return int(checkpoint or 0), [decode_task(bytes(r[0])) for r in rows]

    async def positions(self, task_id: str) -> list[PositionView]:
        rows = await self._rows(
            "SELECT view FROM positions WHERE task_id = $1 ORDER BY symbol", task_id
        )
        return [decode_position(bytes(r[0])) for r in rows]

    async def task_id_for_key(self, key: str) -> str | None:
        rows = await self._rows(
            "SELECT task_id FROM tasks WHERE idempotency_key = $1 ORDER BY seq LIMIT 1", key
        )
        return str(rows[0][0]) if rows else None

    async def counts(self) -> dict[str, int]:
        rows = await self._rows("SELECT status, COUNT(*) FROM tasks GROUP BY status")
        return status_counts(rows)

    async def checkpoint(self, name: str = MAIN) -> int:
        rows = await self._rows("SELECT position FROM projection_checkpoints WHERE name = $1", name)
        return int(rows[0][0]) if rows else 0
