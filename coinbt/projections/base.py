"""The read-model interfaces every backend honours (memory, SQLite, PostgreSQL).

- :class:`ReadModels`: the queries the API, the CLI and the TaskManager make.
- :class:`ReadModelSink`: the writer the Projector drives (fold a page, commit the views and the
  checkpoint in one transaction).
- :class:`Projection`: who may write. On SQLite the one process always does; on PostgreSQL one
  process per database at a time (leader election), and the others learn that the read models
  advanced from a notification.

One contract suite (``tests/backends/test_read_models.py``) runs against every implementation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import anyio

from coinbt.events import StoredEvent
from coinbt.lifecycle import UNFINISHED, Status
from coinbt.projections.positions import PositionView
from coinbt.projections.status import TaskView

__all__ = ("MAIN", "UNFINISHED_SQL", "Projection", "ReadModelSink", "ReadModels", "status_counts")

MAIN = "main"
"""The name of the projection's checkpoint row."""

UNFINISHED_SQL = ", ".join(f"'{status}'" for status in UNFINISHED)
"""``status IN (...)`` of the tasks not yet finished: SQL text built from ``lifecycle.Status``."""


def status_counts(rows: Iterable[tuple[Any, Any]]) -> dict[str, int]:
    """``(status, count)`` rows as ``counts()`` answers them: every ``Status``, 0 if none."""
    counts = dict.fromkeys(map(str, Status), 0)
    counts.update({str(status): int(n) for status, n in rows})
    return counts


class ReadModels(Protocol):
    """Queries of the read models (every method raises ``DatabaseError`` if the database fails)."""

    async def task(self, task_id: str) -> TaskView | None: ...

    async def tasks(
        self, *, status: str | None = None, limit: int = 50, before_seq: int | None = None
    ) -> list[TaskView]:
        """Newest first; ``before_seq`` continues a page (the cursor)."""
        ...

    async def unfinished(self) -> list[TaskView]:
        """Queued and running tasks, oldest first."""
        ...

    async def unfinished_at(self) -> tuple[int, list[TaskView]]:
        """The checkpoint and the unfinished tasks as of that checkpoint (one snapshot)."""
        ...

    async def positions(self, task_id: str) -> list[PositionView]: ...

    async def task_id_for_key(self, key: str) -> str | None: ...

    async def counts(self) -> dict[str, int]:
        """Tasks per status (every status present, 0 if none)."""
        ...

    async def checkpoint(self, name: str = MAIN) -> int: ...


class ReadModelSink(Protocol):
    """Writes folded pages; each ``apply`` is one transaction with the checkpoint."""

    @property
    def checkpoint(self) -> int:
        """The last position applied."""
        ...

    async def apply(self, events: Sequence[StoredEvent]) -> int:
        """Fold the events after the checkpoint and commit; returns the new checkpoint.
        Raises ``DatabaseError`` (nothing is written then; the sink is unusable on PostgreSQL
        if another writer moved the checkpoint)."""
        ...


class Projection(Protocol):
    """Where the read models are written, and by whom."""

    retry_s: float
    """How often a process that is not the writer checks whether it should become one."""

    async def lead(self) -> ReadModelSink | None:
        """The sink if this process is (or has just become) the one writer, else None."""
        ...

    async def resign(self) -> None:
        """Stop writing (the sink is unusable afterwards); another process may take over."""
        ...

    async def committed(self) -> int:
        """The checkpoint as committed now (whoever wrote it)."""
        ...

    @property
    def announced(self) -> int:
        """The highest checkpoint another process announced (0 if none)."""
        ...

    @property
    def vacant(self) -> bool:
        """Whether the writer announced that it stopped (since the last ``lead``)."""
        ...

    def announced_hint(self) -> anyio.Event:
        """Set at the next announcement (take it before reading ``announced`` or ``vacant``)."""
        ...

    async def close(self) -> None: ...
