"""Read models in memory: the same tables as SQLite's, as dicts of encoded views.

Views are stored encoded (msgpack, as in the databases), so a reader never shares a mutable
object with the writer and ``verify`` compares the same bytes the other backends compare. One
process owns them: :class:`MemoryProjection` always leads. :func:`verify_read_models` and
:func:`rebuild_read_models` replay the log into fresh tables, as the SQLite and PostgreSQL ones do.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio
import anyio.lowlevel

from coinbt.events import StoredEvent
from coinbt.lifecycle import UNFINISHED
from coinbt.projections.base import MAIN, status_counts
from coinbt.projections.fold import (
    PositionKey,
    decode_position,
    decode_task,
    encode_view,
    fold_page,
)
from coinbt.projections.positions import PositionView
from coinbt.projections.replay import ReplayReport, view_differences
from coinbt.projections.status import TaskView
from coinbt.store.base import EventStore, Progress

__all__ = (
    "MemoryProjection",
    "MemoryReadModelReader",
    "MemoryReadModelSink",
    "ReadModelTables",
    "rebuild_read_models",
    "verify_read_models",
)

_PAGE = 5000


@dataclass
class ReadModelTables:
    """The ``tasks``, ``positions`` and ``projection_checkpoints`` tables."""

    tasks: dict[str, bytes] = field(default_factory=dict)  # task id -> msgpack TaskView
    positions: dict[PositionKey, bytes] = field(default_factory=dict)
    checkpoints: dict[str, int] = field(default_factory=dict)

    def rows(self) -> dict[str, dict[str, bytes]]:
        """Each table's stored views by key, as ``view_differences`` compares them."""
        return {
            "tasks": dict(self.tasks),
            "positions": {f"{t}/{s}": blob for (t, s), blob in self.positions.items()},
        }


class MemoryReadModelSink:
    """Folds pages into the tables; a page's views and checkpoint change together (no await
    between them, so no reader sees half a page)."""

    def __init__(self, tables: ReadModelTables, name: str = MAIN) -> None:
        self._tables = tables
        self._name = name

    @property
    def checkpoint(self) -> int:
        return self._tables.checkpoints.get(self._name, 0)

    async def apply(self, events: Sequence[StoredEvent]) -> int:
        await anyio.lowlevel.checkpoint()
        return self.apply_now(events)

    def apply_now(self, events: Sequence[StoredEvent]) -> int:
        tables = self._tables
        changes = fold_page(events, self.checkpoint, self._task, self._position)
        if changes.checkpoint == self.checkpoint:
            return self.checkpoint
        for task_id, view in changes.tasks.items():
            tables.tasks[task_id] = encode_view(view)
        for key, position in changes.positions.items():
            tables.positions[key] = encode_view(position)
        tables.checkpoints[self._name] = changes.checkpoint
        return changes.checkpoint

    def _task(self, task_id: str) -> TaskView | None:
        blob = self._tables.tasks.get(task_id)
        return None if blob is None else decode_task(blob)

    def _position(self, key: PositionKey) -> PositionView | None:
        blob = self._tables.positions.get(key)
        return None if blob is None else decode_position(blob)


class MemoryProjection:
    """The read models in memory: the one process is always the writer."""

    retry_s = 1.0

    def __init__(self, tables: ReadModelTables) -> None:
        self._tables = tables
        self._sink: MemoryReadModelSink | None = None
        self._never = anyio.Event()

    async def lead(self) -> MemoryReadModelSink:
        if self._sink is None:
            self._sink = MemoryReadModelSink(self._tables)
        return self._sink

    async def resign(self) -> None:
        self._sink = None

    async def committed(self) -> int:
        return self._tables.checkpoints.get(MAIN, 0)

    @property
    def announced(self) -> int:
        return 0  # no other process writes these read models

    @property
    def vacant(self) -> bool:
        return False

    def announced_hint(self) -> anyio.Event:
        return self._never

    async def close(self) -> None:
        pass


class MemoryReadModelReader:
    """The queries of :class:`~coinbt.projections.base.ReadModels` over the tables."""

    def __init__(self, tables: ReadModelTables) -> None:
        self._tables = tables

    def _views(self) -> list[TaskView]:
        return sorted(map(decode_task, self._tables.tasks.values()), key=lambda v: v.seq)

    async def task(self, task_id: str) -> TaskView | None:
        await anyio.lowlevel.checkpoint()
        blob = self._tables.tasks.get(task_id)
        return None if blob is None else decode_task(blob)

    async def tasks(
        self, *, status: str | None = None, limit: int = 50, before_seq: int | None = None
    ) -> list[TaskView]:
        await anyio.lowlevel.checkpoint()
        views = [
            v
            for v in reversed(self._views())
            if (status is None or v.status == status) and (before_seq is None or v.seq < before_seq)
        ]
        return views[:limit]

    async def unfinished(self) -> list[TaskView]:
        await anyio.lowlevel.checkpoint()
        return [v for v in self._views() if v.status in UNFINISHED]

    async def unfinished_at(self) -> tuple[int, list[TaskView]]:
        await anyio.lowlevel.checkpoint()
        # No await between the two reads: one snapshot.
        checkpoint = self._tables.checkpoints.get(MAIN, 0)
        return checkpoint, [v for v in self._views() if v.status in UNFINISHED]

    async def positions(self, task_id: str) -> list[PositionView]:
        await anyio.lowlevel.checkpoint()
        found = [(s, blob) for (t, s), blob in self._tables.positions.items() if t == task_id]
        return [decode_position(blob) for _, blob in sorted(found)]

    async def task_id_for_key(self, key: str) -> str | None:
        await anyio.lowlevel.checkpoint()
        for view in self._views():
            if view.idempotency_key == key:
                return view.task_id
        return None

    async def counts(self) -> dict[str, int]:
        await anyio.lowlevel.checkpoint()
        found = Counter(decode_task(blob).status for blob in self._tables.tasks.values())
        return status_counts(found.items())

    async def checkpoint(self, name: str = MAIN) -> int:
        await anyio.lowlevel.checkpoint()
        return self._tables.checkpoints.get(name, 0)


async def _replay(
    store: EventStore, upto: int | None, progress: Progress | None
) -> tuple[int, ReadModelTables]:
    """The log (up to ``upto``, default all) folded into fresh tables; (events, tables)."""
    if upto is None:
        upto = await store.last_position()
    tables = ReadModelTables()
    sink = MemoryReadModelSink(tables)
    count = 0
    while sink.checkpoint < upto:
        events = [e for e in await store.read_all(sink.checkpoint, _PAGE) if e.position <= upto]
        if not events:
            break
        sink.apply_now(events)
        count += len(events)
        if progress is not None:
            progress(count, upto)
    if progress is not None and count == 0:
        progress(0, upto)
    return count, tables


async def verify_read_models(
    store: EventStore,
    tables: ReadModelTables,
    *,
    max_differences: int = 20,
    progress: Progress | None = None,
) -> ReplayReport:
    """Replay the log up to the live checkpoint and compare the views row by row."""
    checkpoint = tables.checkpoints.get(MAIN, 0)
    live = tables.rows()
    events, rebuilt = await _replay(store, checkpoint, progress)
    rebuilt_rows = rebuilt.rows()
    return ReplayReport(
        events=events,
        checkpoint=checkpoint,
        tasks=len(rebuilt_rows["tasks"]),
        positions=len(rebuilt_rows["positions"]),
        differences=view_differences(live, rebuilt_rows, max_differences),
    )


async def rebuild_read_models(
    store: EventStore, tables: ReadModelTables, *, progress: Progress | None = None
) -> ReplayReport:
    """Replay the whole log and put the result in place of the live tables."""
    events, rebuilt = await _replay(store, None, progress)
    tables.tasks, tables.positions = rebuilt.tasks, rebuilt.positions
    tables.checkpoints[MAIN] = rebuilt.checkpoints.get(MAIN, 0)
    return ReplayReport(
        events=events,
        checkpoint=tables.checkpoints[MAIN],
        tasks=len(tables.tasks),
        positions=len(tables.positions),
    )
