"""The artifact outbox: one row per artifact of a completed run, in the service's database.

A worker records a run's artifacts (state ``pending``, the file left in the data directory's
``staging/``) *before* it reports the run as completed; the uploader moves each file into the store
and marks the row ``stored`` with the store's location. A pending row survives restarts, so an
artifact is retried until it is stored; it turns ``failed`` only when it can never be stored (its
staged file vanished or is damaged). Events hold logical keys only: where an artifact is lives
here, and moving artifacts between stores updates ``location`` without touching the log.

``location`` is ``local`` for the data directory's own ``artifacts/`` (so the data directory can
move), else the store's URL (``s3://bucket/prefix``, ``file:///dir``).

:class:`Outbox` is the interface; each backend keeps the table its own way
(``coinbt.backends.sqlite.outbox``, ``coinbt.backends.postgres.outbox`` shared by several
processes, ``coinbt.backends.memory.outbox``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from coinbt.clock import from_epoch_us
from coinbt.events import ArtifactRef

__all__ = (
    "LOCAL",
    "STATES",
    "ArtifactRow",
    "Outbox",
    "Staged",
)

Staged = tuple[str, ArtifactRef, Path]
"""An artifact of a run: its name, its reference (key, sha256, size), its staged file."""

LOCAL = "local"
STATES = ("pending", "stored", "failed")


@dataclass(frozen=True, slots=True)
class ArtifactRow:
    key: str
    task_id: str
    name: str
    sha256: str
    size: int
    state: str
    location: str | None
    staged: str | None
    attempts: int
    last_error: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> ArtifactRow:
        key, task_id, name, sha256, size, state, location, staged, attempts, error, c, u = row
        return cls(
            key=key,
            task_id=task_id,
            name=name,
            sha256=sha256,
            size=size,
            state=state,
            location=location,
            staged=staged,
            attempts=attempts,
            last_error=error,
            created_at=from_epoch_us(c),
            updated_at=from_epoch_us(u),
        )

    def to_builtins(self) -> dict[str, Any]:
        """The API representation (``GET /backtests/{id}/artifacts``)."""
        return {
            "name": self.name,
            "key": self.key,
            "sha256": self.sha256,
            "size": self.size,
            "state": self.state,
            "location": self.location,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "updated_at": self.updated_at.isoformat().replace("+00:00", "Z"),
        }


class Outbox(Protocol):
    """The artifacts of completed runs: where each one is, or how its upload is going.

    ``counts`` (rows per state) is kept in memory for /metrics and the uploader's bookkeeping;
    ``pending`` counts the rows this process uploads. Every method raises ``DatabaseError`` if
    the database fails.
    """

    data_dir: Path
    counts: dict[str, int]

    async def add(self, task_id: str, staged: Sequence[tuple[str, ArtifactRef, Path]]) -> None:
        """Record a run's artifacts as pending, each with its staged file (an existing key is
        left as it is)."""
        ...

    async def add_many(self, runs: Sequence[tuple[str, Sequence[Staged]]]) -> None:
        """``add`` for several runs (task id, its staged artifacts) in one transaction (a
        worker's batch of small tasks)."""
        ...

    async def discard(self, keys: Sequence[str]) -> None:
        """Forget pending artifacts (their run's outcome was refused)."""
        ...

    async def mark_stored(self, key: str, location: str) -> None: ...

    async def mark_stored_many(self, keys: Sequence[str], location: str) -> None:
        """``mark_stored`` for many keys in one transaction."""
        ...

    async def mark_retry(self, key: str, error: str) -> None:
        """An attempt failed and will be retried: count it and keep the error for display."""
        ...

    async def mark_failed(self, key: str, error: str) -> None:
        """The artifact can never be stored (no retry)."""
        ...

    async def relocate(self, key: str, old: str, new: str) -> bool:
        """Record that a stored artifact moved from location ``old`` to ``new``."""
        ...

    async def stored_elsewhere(self, location: str, after: str, limit: int) -> list[ArtifactRow]:
        """Stored artifacts not at ``location``, in key order after ``after`` (keyset paging)."""
        ...

    async def pending(self, limit: int) -> list[ArtifactRow]:
        """Pending artifacts this process uploads, the least tried first, then the oldest."""
        ...

    async def count_stored_at(self, location: str) -> int: ...

    async def get(self, key: str) -> ArtifactRow | None: ...

    async def for_task(self, task_id: str) -> list[ArtifactRow]: ...

    def staged_path(self, row: ArtifactRow) -> Path | None: ...

    async def adopt_orphans(self) -> int:
        """Take over the pending rows of processes that are gone, when their staged files are
        here; returns how many (always 0 where one process owns the database)."""
        ...


def staged_path(data_dir: Path, row: ArtifactRow) -> Path | None:
    return None if row.staged is None else data_dir / row.staged


def relative_to(data_dir: Path, path: Path) -> str:
    """``path`` relative to the data directory if it is inside, else absolute.

    Lexically first: staged files are made as ``data_dir / "staging" / ...``, and resolving
    symlinks costs a syscall per path component (measured: 0.5 ms a call, on the event loop).
    """
    try:
        return path.relative_to(data_dir).as_posix()
    except ValueError:
        pass
    try:
        return path.resolve().relative_to(data_dir.resolve()).as_posix()
    except ValueError:
        return os.fspath(path.resolve())
