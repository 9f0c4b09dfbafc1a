"""The artifact outbox in memory: the ``artifacts`` table as a dict of rows, one process."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import anyio.lowlevel

from coinbt.artifacts.outbox import STATES, ArtifactRow, Staged, relative_to, staged_path
from coinbt.clock import Clock, from_epoch_us, to_epoch_us
from coinbt.events import ArtifactRef

__all__ = ("MemoryOutbox",)


class MemoryOutbox:
    """:class:`~coinbt.artifacts.outbox.Outbox` over ``rows`` (key -> row), which the caller may
    keep to open the same outbox again."""

    def __init__(self, rows: dict[str, ArtifactRow], data_dir: Path, clock: Clock) -> None:
        self._rows = rows
        self.data_dir = data_dir
        self._clock = clock
        self.counts: dict[str, int] = dict.fromkeys(STATES, 0)
        for row in rows.values():
            self.counts[row.state] += 1

    def _now(self) -> datetime:
        return from_epoch_us(to_epoch_us(self._clock.now()))  # microseconds, as the tables keep

    def _pending(self, key: str) -> ArtifactRow | None:
        row = self._rows.get(key)
        return row if row is not None and row.state == "pending" else None

    async def add(self, task_id: str, staged: Sequence[tuple[str, ArtifactRef, Path]]) -> None:
        await self.add_many([(task_id, staged)])

    async def add_many(self, runs: Sequence[tuple[str, Sequence[Staged]]]) -> None:
        await anyio.lowlevel.checkpoint()
        now = self._now()
        for task_id, staged in runs:  # no await between them: all at once
            self._add(task_id, staged, now)

    def _add(self, task_id: str, staged: Sequence[Staged], now: datetime) -> None:
        for name, ref, path in staged:
            if ref.key in self._rows:
                continue
            self._rows[ref.key] = ArtifactRow(
                key=ref.key,
                task_id=task_id,
                name=name,
                sha256=ref.sha256,
                size=ref.size,
                state="pending",
                location=None,
                staged=relative_to(self.data_dir, path),
                attempts=0,
                last_error=None,
                created_at=now,
                updated_at=now,
            )
            self.counts["pending"] += 1

    async def discard(self, keys: Sequence[str]) -> None:
        await anyio.lowlevel.checkpoint()
        for key in keys:
            if self._pending(key) is not None:
                del self._rows[key]
                self.counts["pending"] -= 1

    def _finish(self, key: str, state: str, location: str | None, error: str | None) -> None:
        row = self._pending(key)
        if row is None:
            return
        self._rows[key] = dataclasses.replace(
            row,
            state=state,
            location=location,
            staged=None if state == "stored" else row.staged,
            attempts=row.attempts + 1,
            last_error=error,
            updated_at=self._now(),
        )
        self.counts["pending"] -= 1
        self.counts[state] += 1

    async def mark_stored(self, key: str, location: str) -> None:
        await anyio.lowlevel.checkpoint()
        self._finish(key, "stored", location, None)

    async def mark_stored_many(self, keys: Sequence[str], location: str) -> None:
        await anyio.lowlevel.checkpoint()
        for key in keys:  # no await between them: all at once
            self._finish(key, "stored", location, None)

    async def mark_retry(self, key: str, error: str) -> None:
        await anyio.lowlevel.checkpoint()
        row = self._pending(key)
        if row is not None:
            self._rows[key] = dataclasses.replace(
                row, attempts=row.attempts + 1, last_error=error, updated_at=self._now()
            )

    async def mark_failed(self, key: str, error: str) -> None:
        await anyio.lowlevel.checkpoint()
        row = self._pending(key)
        if row is not None:
            self._finish(key, "failed", row.location, error)

    async def relocate(self, key: str, old: str, new: str) -> bool:
        await anyio.lowlevel.checkpoint()
        row = self._rows.get(key)
        if row is None or row.state != "stored" or row.location != old:
            return False
        self._rows[key] = dataclasses.replace(row, location=new, updated_at=self._now())
        return True

    async def stored_elsewhere(self, location: str, after: str, limit: int) -> list[ArtifactRow]:
        await anyio.lowlevel.checkpoint()
        found = [
            row
            for key, row in sorted(self._rows.items())
            if row.state == "stored" and row.location != location and key > after
        ]
        return found[:limit]

    async def pending(self, limit: int) -> list[ArtifactRow]:
        await anyio.lowlevel.checkpoint()
        rows = [row for row in self._rows.values() if row.state == "pending"]
        rows.sort(key=lambda r: (r.attempts, r.created_at, r.key))
        return rows[:limit]

    async def count_stored_at(self, location: str) -> int:
        await anyio.lowlevel.checkpoint()
        return sum(r.state == "stored" and r.location == location for r in self._rows.values())

    async def get(self, key: str) -> ArtifactRow | None:
        await anyio.lowlevel.checkpoint()
        return self._rows.get(key)

    async def for_task(self, task_id: str) -> list[ArtifactRow]:
        await anyio.lowlevel.checkpoint()
        return sorted(
            (r for r in self._rows.values() if r.task_id == task_id), key=lambda r: r.name
        )

    def staged_path(self, row: ArtifactRow) -> Path | None:
        return staged_path(self.data_dir, row)

    async def adopt_orphans(self) -> int:
        return 0  # one process owns the outbox
