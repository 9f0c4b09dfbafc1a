"""The append transaction of the PostgreSQL event store: one group-commit batch per transaction.

Inside the transaction, in this order:

1. ``SELECT position, hash FROM event_head FOR UPDATE`` takes the row lock that serializes every
   append of every process, and returns the head of the log as of the lock holder's commit
   (PostgreSQL re-reads a locked row's newest committed version once the lock is granted).
2. The versions of the batch's streams are read in a *separate* statement, so its snapshot is
   taken after the lock was granted and sees every earlier append.
3. ``plan_batch`` checks each append's expected version in order and chains the hashes.
4. One statement inserts the rows, moves the head and queues a NOTIFY (big batches: a binary
   COPY, then one statement for the head and the NOTIFY); COMMIT delivers the notification.

The writer caches recent stream versions. They are trusted only when the locked head is the
head this writer itself left (nobody else committed since), and a new stream is assumed to be at
version 0 with ``UNIQUE (stream_id, version)`` as the backstop: on a unique violation the batch is
rolled back and planned again from fresh reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from coinbt.backends.postgres.schema import DRIVER_ERRORS, connect, describe
from coinbt.clock import Clock, from_epoch_us, to_epoch_us
from coinbt.errors import DatabaseError
from coinbt.store._batch import Append, Row, VersionCache, plan_batch
from coinbt.store._writer import Outcome

__all__ = ("CHANNEL", "PgWriter")

CHANNEL = "coinbt_events"
"""The NOTIFY channel; the payload is the new head position (a hint only)."""

_LOCK_HEAD = "SELECT position, hash FROM event_head FOR UPDATE"
_VERSIONS = (
    "SELECT stream_id, MAX(version) FROM events WHERE stream_id = ANY($1::text[]) "
    "GROUP BY stream_id"
)
_WRITE = f"""
WITH inserted AS (
    INSERT INTO events (position, stream_id, version, type, schema, recorded_at, data, hash)
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[], $5::int[],
                         $6::bigint[], $7::bytea[], $8::bytea[])
), head AS (
    UPDATE event_head SET position = $9, hash = $10
)
SELECT pg_notify('{CHANNEL}', $9::text)
"""
# Big batches go in by binary COPY instead: measured, it halves the client CPU of a 1,000-row
# batch (asyncpg's array encoder checks every element's type), and it saves nothing on small
# batches, where one statement fewer is worth more.
_COPY_ROWS = 128
_COLUMNS = ("position", "stream_id", "version", "type", "schema", "recorded_at", "data", "hash")
_MOVE_HEAD = f"""
WITH head AS (
    UPDATE event_head SET position = $1, hash = $2
)
SELECT pg_notify('{CHANNEL}', $1::text)
"""


class PgWriter:
    """Commits batches on its own connection, one at a time (the GroupCommitWriter's commit)."""

    def __init__(self, dsn: str, conn: Any, clock: Clock, notify: Callable[[], None]) -> None:
        self._dsn = dsn
        self._conn = conn
        self._clock = clock
        self._notify = notify
        self._left_head: int | None = None  # the head position this writer's last commit left
        self._versions = VersionCache()

    @property
    def server_pid(self) -> int | None:
        """The backend process id of the writer's connection (its NOTIFYs carry it)."""
        return None if self._conn.is_closed() else int(self._conn.get_server_pid())

    async def commit(self, requests: list[Append]) -> list[Outcome]:
        try:
            try:
                return await self._attempt(requests, trust_cache=True)
            except asyncpg.UniqueViolationError:
                self._forget()
                return await self._attempt(requests, trust_cache=False)
        except DRIVER_ERRORS as e:
            # The outcome of a COMMIT cut off by a lost connection is unknown, as with any
            # database; the callers get DatabaseError and the next batch reconnects.
            self._forget()
            raise DatabaseError(f"append to PostgreSQL at {describe(self._dsn)} failed: {e}") from e

    async def close(self) -> None:
        await self._conn.close(timeout=5)

    def _forget(self) -> None:
        self._left_head = None
        self._versions.clear()

    async def _attempt(self, requests: list[Append], *, trust_cache: bool) -> list[Outcome]:
        if self._conn.is_closed():
            self._conn = await connect(self._dsn)
        conn = self._conn
        # READ COMMITTED whatever the server's default: each statement takes a fresh snapshot,
        # so the versions read after the lock see every append committed before it was granted.
        async with conn.transaction(isolation="read_committed"):
            head = await conn.fetchrow(_LOCK_HEAD)
            if head is None:
                raise DatabaseError(f"the head row of the log in {describe(self._dsn)} is missing")
            head_position, head_hash = int(head[0]), bytes(head[1])
            if head_position != self._left_head:  # someone else appended: trust nothing
                self._forget()
            versions = await self._known_versions(conn, requests, trust_cache)
            now_us = to_epoch_us(self._clock.now())
            plan = plan_batch(
                requests, head_position, head_hash, versions, from_epoch_us(now_us), now_us
            )
            if len(plan.rows) >= _COPY_ROWS:
                await conn.copy_records_to_table("events", records=plan.rows, columns=_COLUMNS)
                await conn.execute(_MOVE_HEAD, plan.head_position, plan.head_hash)
            elif plan.rows:
                await conn.execute(_WRITE, *_columns(plan.rows), plan.head_position, plan.head_hash)
        self._left_head = plan.head_position
        self._versions.remember(versions)
        if plan.rows:
            self._notify()
        return list(plan.outcomes)

    async def _known_versions(
        self, conn: Any, requests: list[Append], trust_cache: bool
    ) -> dict[str, int]:
        versions, lookup = self._versions.split(requests, trust_cache)
        if lookup:
            for sid, version in await conn.fetch(_VERSIONS, lookup):
                versions[sid] = int(version)
        return versions


def _columns(rows: list[Row]) -> list[list[Any]]:
    """The rows as eight column arrays, for ``unnest``."""
    return [list(column) for column in zip(*rows, strict=True)]
