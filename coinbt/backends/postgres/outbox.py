"""The artifact outbox in PostgreSQL: one ``artifacts`` table for every process on the database.

A pending row belongs to the process that staged its file (``owner``, its instance id): only
that process's uploader takes it, so two uploaders never race for one file, and a file staged
on one host is never looked for on another. When a process is gone (its instance lock can be
taken, ``coinbt.backends.postgres.instances``), :meth:`PgArtifactOutbox.adopt_orphans` hands its
pending
rows to a live process whose data directory has their staged files (the same machine after a
restart, or any machine when the data directory is shared); rows whose files no live process
can see stay pending, and are shown as such.

``counts`` holds the table's stored and failed rows as of start plus this process's changes,
and the pending rows this process owns (the ones its uploader will move).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from coinbt.artifacts.outbox import STATES, ArtifactRow, Staged, relative_to, staged_path
from coinbt.backends.postgres.schema import DRIVER_ERRORS
from coinbt.clock import Clock, SystemClock, to_epoch_us
from coinbt.errors import DatabaseError
from coinbt.events import ArtifactRef
from coinbt.store.instances import Liveness

__all__ = ("PgArtifactOutbox",)

_COLUMNS = (
    "key, task_id, name, sha256, size, state, location, staged, attempts, last_error,"
    " created_at, updated_at"
)


class PgArtifactOutbox:
    """See the module docstring. ``liveness`` is this process's instance."""

    def __init__(self, pool: Any, data_dir: Path, liveness: Liveness, clock: Clock | None = None):
        self._pool = pool
        self.data_dir = data_dir
        self._liveness = liveness
        self._owner = liveness.instance_id
        self._clock = clock or SystemClock()
        self.counts: dict[str, int] = dict.fromkeys(STATES, 0)

    async def load_counts(self) -> None:
        rows = await self._fetch(
            "SELECT state, COUNT(*) FROM artifacts WHERE state <> 'pending' OR owner = $1"
            " GROUP BY state",
            self._owner,
        )
        self.counts = dict.fromkeys(STATES, 0)
        for state, n in rows:
            self.counts[str(state)] = int(n)

    def _now(self) -> int:
        return to_epoch_us(self._clock.now())

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        try:
            return list(await self._pool.fetch(sql, *args))
        except DRIVER_ERRORS as e:
            raise DatabaseError(f"the artifact table failed: {e}") from e

    async def _execute(self, sql: str, *args: Any) -> int:
        """Run one statement; the number of rows it changed."""
        try:
            status: str = await self._pool.execute(sql, *args)
        except DRIVER_ERRORS as e:
            raise DatabaseError(f"the artifact table failed: {e}") from e
        return int(status.rsplit(" ", 1)[-1])

    # --- writes ----------------------------------------------------------------------------------

    async def add(self, task_id: str, staged: Sequence[tuple[str, ArtifactRef, Path]]) -> None:
        await self.add_many([(task_id, staged)])

    async def add_many(self, runs: Sequence[tuple[str, Sequence[Staged]]]) -> None:
        now = self._now()
        rows = [
            (ref.key, task_id, name, ref.sha256, ref.size, relative_to(self.data_dir, path))
            for task_id, staged in runs
            for name, ref, path in staged
        ]
        added = await self._execute(
            "INSERT INTO artifacts (key, task_id, name, sha256, size, state, staged, created_at,"
            " updated_at, owner)"
            " SELECT k, t, n, h, s, 'pending', p, $3, $3, $4"
            " FROM unnest($1::text[], $2::text[], $5::text[], $6::text[], $7::bigint[],"
            " $8::text[]) AS r(k, t, n, h, s, p) ON CONFLICT (key) DO NOTHING",
            [r[0] for r in rows],
            [r[1] for r in rows],
            now,
            self._owner,
            [r[2] for r in rows],
            [r[3] for r in rows],
            [r[4] for r in rows],
            [r[5] for r in rows],
        )
        self.counts["pending"] += added

    async def discard(self, keys: Sequence[str]) -> None:
        removed = await self._execute(
            "DELETE FROM artifacts WHERE key = ANY($1::text[]) AND state = 'pending'"
            " AND owner = $2",
            list(keys),
            self._owner,
        )
        self.counts["pending"] -= removed

    async def mark_stored(self, key: str, location: str) -> None:
        await self._transition(
            key,
            "stored",
            "location = $4, staged = NULL, attempts = attempts + 1, last_error = NULL",
            location,
        )

    async def mark_stored_many(self, keys: Sequence[str], location: str) -> None:
        # One statement per key (each keeps its owner check); a network round trip each, which
        # is what the server costs anyway.
        for key in keys:
            await self.mark_stored(key, location)

    async def mark_retry(self, key: str, error: str) -> None:
        await self._execute(
            "UPDATE artifacts SET attempts = attempts + 1, last_error = $1, updated_at = $2"
            " WHERE key = $3 AND state = 'pending'",
            error,
            self._now(),
            key,
        )

    async def mark_failed(self, key: str, error: str) -> None:
        await self._transition(key, "failed", "attempts = attempts + 1, last_error = $4", error)

    async def _transition(self, key: str, state: str, sets: str, value: str) -> None:
        # RETURNING the old owner: only this process's pending rows are in its count.
        rows = await self._fetch(
            f"WITH old AS (SELECT key, owner FROM artifacts WHERE key = $3 AND state = 'pending'"
            f" FOR UPDATE) UPDATE artifacts a SET state = $1, {sets}, updated_at = $2, owner = NULL"
            " FROM old WHERE a.key = old.key RETURNING old.owner",
            state,
            self._now(),
            key,
            value,
        )
        if rows:
            if rows[0][0] == self._owner:
                self.counts["pending"] -= 1
            self.counts[state] += 1

    async def relocate(self, key: str, old: str, new: str) -> bool:
        moved = await self._execute(
            "UPDATE artifacts SET location = $1, updated_at = $2"
            " WHERE key = $3 AND location = $4 AND state = 'stored'",
            new,
            self._now(),
            key,
            old,
        )
        return moved == 1

    async def adopt_orphans(self) -> int:
        owners = await self._fetch(
            "SELECT DISTINCT owner FROM artifacts WHERE state = 'pending' AND owner <> $1",
            self._owner,
        )
        adopted = 0
        for (owner,) in owners:
            if owner is None:
                continue
            async with self._liveness.take_if_dead(str(owner)) as dead:
                if not dead:
                    continue
                rows = await self._select(
                    "WHERE state = 'pending' AND owner = $1 ORDER BY key", str(owner)
                )
                here = [row.key for row in rows if await _is_file(self.staged_path(row))]
                if here:
                    n = await self._execute(
                        "UPDATE artifacts SET owner = $1 WHERE key = ANY($2::text[])"
                        " AND state = 'pending' AND owner = $3",
                        self._owner,
                        here,
                        str(owner),
                    )
                    self.counts["pending"] += n
                    adopted += n
        return adopted

    # --- reads -----------------------------------------------------------------------------------

    async def stored_elsewhere(self, location: str, after: str, limit: int) -> list[ArtifactRow]:
        return await self._select(
            "WHERE state = 'stored' AND location <> $1 AND key > $2 ORDER BY key LIMIT $3",
            location,
            after,
            limit,
        )

    async def pending(self, limit: int) -> list[ArtifactRow]:
        return await self._select(
            "WHERE state = 'pending' AND owner = $1 ORDER BY attempts, created_at, key LIMIT $2",
            self._owner,
            limit,
        )

    async def count_stored_at(self, location: str) -> int:
        rows = await self._fetch(
            "SELECT COUNT(*) FROM artifacts WHERE state = 'stored' AND location = $1", location
        )
        return int(rows[0][0])

    async def get(self, key: str) -> ArtifactRow | None:
        rows = await self._select("WHERE key = $1", key)
        return rows[0] if rows else None

    async def for_task(self, task_id: str) -> list[ArtifactRow]:
        return await self._select("WHERE task_id = $1 ORDER BY name", task_id)

    async def _select(self, where: str, *args: Any) -> list[ArtifactRow]:
        rows = await self._fetch(f"SELECT {_COLUMNS} FROM artifacts {where}", *args)
        return [ArtifactRow.from_row(tuple(row)) for row in rows]

    def staged_path(self, row: ArtifactRow) -> Path | None:
        return staged_path(self.data_dir, row)


async def _is_file(path: Path | None) -> bool:
    return path is not None and await anyio.Path(path).is_file()
