"""The read-model contract: one suite, run against every backend (memory, SQLite, PostgreSQL).

A writer (the sink the Projector drives) folds pages of the log exactly once, with its checkpoint;
a reader answers every query the service makes; ``replay --verify`` proves the live read models
equal a rebuild, and a rebuild repairs them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import anyio
import asyncpg  # type: ignore[import-untyped]
import msgspec
import pytest

from coinbt.backend import Backend
from coinbt.backends import memory
from coinbt.backends.memory import MemoryDatabase
from coinbt.backends.postgres.rebuild import rebuild_read_models_pg, verify_read_models_pg
from coinbt.backends.sqlite.rebuild import rebuild_read_models, verify_read_models
from coinbt.clock import ManualClock
from coinbt.events import Queued
from coinbt.projections.base import ReadModelSink
from coinbt.projections.fold import decode_task
from coinbt.projections.replay import ReplayReport
from coinbt.store.base import Progress
from tests.backends import KINDS, Database, OpenBackend, backend_factory
from tests.factories import cancelled, completed, failed, filled, queued, spec, started


@pytest.fixture(params=KINDS)
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock
) -> tuple[OpenBackend, Database]:
    return backend_factory(request, tmp_path, clock)


async def _sink(backend: Backend) -> ReadModelSink:
    sink = await backend.projection.lead()
    assert sink is not None, "the only process is the writer"
    return sink


async def _project(backend: Backend, sink: ReadModelSink, page: int = 3) -> int:
    """Apply the whole log in pages of ``page`` events."""
    while events := await backend.store.read_all(sink.checkpoint, page):
        await sink.apply(events)
    return sink.checkpoint


async def _history(backend: Backend) -> None:
    """a: completed with two fills; b: running; c: queued (with a key); d: cancelled;
    e: failed; f: queued, then re-queued after its run was interrupted."""
    store = backend.store
    await store.append("a", [queued(), started()], 0)
    await store.append("b", [queued()], 0)
    await store.append("c", [Queued(spec=spec(seed=3), attempt=1, idempotency_key="k-3")], 0)
    await store.append("a", [filled(1, "buy"), filled(2, "sell"), completed()], 2)
    await store.append("b", [started()], 1)
    await store.append("d", [queued(), cancelled()], 0)
    await store.append("e", [queued(), started(), failed()], 0)
    await store.append("f", [queued(), started(), queued(attempt=2)], 0)


async def test_views_and_queries(backend: tuple[OpenBackend, Database]) -> None:
    open_backend, _ = backend
    async with open_backend() as b:
        await _history(b)
        sink = await _sink(b)
        last = await b.store.last_position()
        assert await _project(b, sink) == last
        read = b.read
        assert await read.checkpoint() == last

        a = await read.task("a")
        assert a is not None
        assert (a.status, a.num_fills, a.version, a.seq) == ("completed", 2, 5, 1)
        assert await read.task("nope") is None
        assert [(p.symbol, p.trades, p.is_open) for p in await read.positions("a")] == [
            ("SYNTH", 1, False)
        ]
        assert await read.positions("b") == []

        assert [v.task_id for v in await read.tasks()] == ["f", "e", "d", "c", "b", "a"]
        newest = await read.tasks(limit=2)
        assert [v.task_id for v in newest] == ["f", "e"]
        older = await read.tasks(limit=10, before_seq=newest[-1].seq)
        assert [v.task_id for v in older] == ["d", "c", "b", "a"]
        assert [v.task_id for v in await read.tasks(status="queued")] == ["f", "c"]
        assert [v.task_id for v in await read.unfinished()] == ["b", "c", "f"]
        checkpoint, views = await read.unfinished_at()
        assert checkpoint == last
        assert [(v.task_id, v.status, v.attempt) for v in views] == [
            ("b", "running", 1),
            ("c", "queued", 1),
            ("f", "queued", 2),
        ]
        assert await read.task_id_for_key("k-3") == "c"
        assert await read.task_id_for_key("k-4") is None
        assert await read.counts() == {
            "queued": 2,
            "running": 1,
            "completed": 1,
            "failed": 1,
            "cancelled": 1,
        }


async def test_each_event_is_applied_exactly_once(
    backend: tuple[OpenBackend, Database],
) -> None:
    open_backend, _ = backend
    async with open_backend() as b:
        await _history(b)
        sink = await _sink(b)
        everything = await b.store.read_all()
        first = everything[:4]
        assert await sink.apply(first) == first[-1].position
        # The same page again, then one overlapping the applied part: nothing twice.
        assert await sink.apply(first) == first[-1].position
        assert await sink.apply(everything[2:]) == everything[-1].position
        a = await b.read.task("a")
        assert a is not None
        assert a.num_fills == 2
        [position] = await b.read.positions("a")
        assert (position.trades, position.fees) == (1, pytest.approx(0.30))
    async with open_backend() as b:  # a restart resumes after the checkpoint
        sink = await _sink(b)
        assert sink.checkpoint == everything[-1].position
        await b.store.append("g", [queued()], 0)
        assert await _project(b, sink) == everything[-1].position + 1
        assert (await b.read.counts())["queued"] == 3


async def _verify(db: Database, progress: Progress | None = None) -> ReplayReport:
    if isinstance(db, MemoryDatabase):
        return await memory.verify_read_models(db.store, db.read_models, progress=progress)
    if isinstance(db, Path):
        return await anyio.to_thread.run_sync(lambda: verify_read_models(db, progress=progress))
    return await verify_read_models_pg(db, progress=progress)


async def _rebuild(db: Database, progress: Progress | None = None) -> ReplayReport:
    if isinstance(db, MemoryDatabase):
        return await memory.rebuild_read_models(db.store, db.read_models, progress=progress)
    if isinstance(db, Path):
        return await anyio.to_thread.run_sync(lambda: rebuild_read_models(db, progress=progress))
    return await rebuild_read_models_pg(db, progress=progress)


async def _rewrite_view(db: Database, task_id: str, change: Callable[[bytes], bytes]) -> None:
    """Replace one task's stored view with ``change(view)``, behind the projector's back."""
    if isinstance(db, MemoryDatabase):
        db.read_models.tasks[task_id] = change(db.read_models.tasks[task_id])
        return
    if isinstance(db, Path):
        conn = sqlite3.connect(db, isolation_level=None)
        blob = conn.execute("SELECT view FROM tasks WHERE task_id = ?", (task_id,)).fetchone()[0]
        conn.execute("UPDATE tasks SET view = ? WHERE task_id = ?", (change(blob), task_id))
        conn.close()
        return
    conn = await asyncpg.connect(db)
    try:
        blob = await conn.fetchval("SELECT view FROM tasks WHERE task_id = $1", task_id)
        await conn.execute("UPDATE tasks SET view = $1 WHERE task_id = $2", change(blob), task_id)
    finally:
        await conn.close()


async def _drift(db: Database, task_id: str) -> None:
    """Change one read-model row behind the projector's back."""

    def failed(blob: bytes) -> bytes:
        return msgspec.msgpack.encode(msgspec.structs.replace(decode_task(blob), status="failed"))

    await _rewrite_view(db, task_id, failed)


async def test_verify_finds_a_drifted_row_and_a_rebuild_repairs_it(
    backend: tuple[OpenBackend, Database],
) -> None:
    open_backend, db = backend
    async with open_backend() as b:
        await _history(b)
        sink = await _sink(b)
        await _project(b, sink)
        last = sink.checkpoint
        heard: list[tuple[int, int]] = []
        report = await _verify(db, lambda done, total: heard.append((done, total)))
        assert report.ok, report.differences
        assert heard[-1] == (last, last)
        assert [done for done, _ in heard] == sorted(done for done, _ in heard)
        assert (report.events, report.checkpoint, report.tasks, report.positions) == (
            last,
            last,
            6,
            1,
        )
        await _drift(db, "b")
        report = await _verify(db)
        assert not report.ok
        [difference] = report.differences
        assert (difference.table, difference.key) == ("tasks", "b")
        assert difference.live["status"] == "failed"
        assert difference.rebuilt["status"] == "running"
        heard.clear()
        rebuilt = await _rebuild(db, lambda done, total: heard.append((done, total)))
        assert (rebuilt.events, rebuilt.checkpoint, rebuilt.tasks) == (last, last, 6)
        assert heard[-1] == (last, last)
        assert (await _verify(db)).ok
        view = await b.read.task("b")
        assert view is not None
        assert view.status == "running"


async def test_a_view_stored_in_another_byte_order_is_no_difference(
    backend: tuple[OpenBackend, Database],
) -> None:
    """verify compares values: the same view encoded with its fields in another order is equal."""
    open_backend, db = backend
    async with open_backend() as b:
        await _history(b)
        await _project(b, await _sink(b))

    def reordered(blob: bytes) -> bytes:
        fields = msgspec.msgpack.decode(blob)
        again = msgspec.msgpack.encode(dict(reversed(fields.items())))
        assert again != blob
        assert decode_task(again) == decode_task(blob)
        return again

    await _rewrite_view(db, "b", reordered)
    report = await _verify(db)
    assert report.ok, report.differences
    await _drift(db, "b")
    assert [d.key for d in (await _verify(db)).differences] == ["b"]
