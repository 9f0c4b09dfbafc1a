"""The Worker's fault holes, each provoked on the real system (SQLite file, worker processes).

- The artifact outbox refuses the run's rows: the run is reported failed, not completed with
  artifacts nobody recorded (whose staged files would then be deleted).
- An Abort that comes while the worker resolves the task's data stops the run before it starts.
- An Abort of a run that ended already does not skip a later attempt of the same task.

The faults are injected at the edges: a SQLite trigger in the real database, and a gate or a
lost job in front of the real catalog and process executor.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from coinbt.actors.worker import Abort
from coinbt.datasets import Catalog, DatasetInfo
from coinbt.events import DataSpec, TaskSpec
from coinbt.executor._errors import JobLostError
from coinbt.executor.base import Executor, Job, JobResult
from coinbt.executor.local import open_local_executor
from coinbt.runtime import ExecutorFactory
from tests.backends.test_datasets import csv_of
from tests.system import OpenSystem, system_factory, tiny, types_of, wait_status

BeforeRun = Callable[[Job], Awaitable[None]]


class HookedExecutor:
    """The real local process executor, with a hook the test sets, awaited before each run."""

    def __init__(self, inner: Executor) -> None:
        self.inner = inner
        self.before_run: BeforeRun | None = None
        self.ran: list[tuple[str, int]] = []

    async def run(self, job: Job, on_progress: Callable[[float], Any]) -> JobResult:
        self.ran.append((job.task_id, job.attempt))
        if self.before_run is not None:
            await self.before_run(job)
        return await self.inner.run(job, on_progress)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def hooked() -> tuple[ExecutorFactory, list[HookedExecutor]]:
    made: list[HookedExecutor] = []

    @asynccontextmanager
    async def factory(workers: int) -> AsyncIterator[Executor]:
        async with open_local_executor(workers) as inner:
            executor = HookedExecutor(inner)
            made.append(executor)
            yield executor  # type: ignore[misc]

    return factory, made


class GatedCatalog:
    """The real catalog, whose ``get`` waits until the test opens the gate."""

    def __init__(self, inner: Catalog) -> None:
        self.inner = inner
        self.data_dir = inner.data_dir
        self.entered = anyio.Event()
        self.gate = anyio.Event()

    def path_of(self, info: DatasetInfo) -> Path:
        return self.inner.path_of(info)

    async def get(
        self, name: str, version: int | None = None, *, include_retired: bool = False
    ) -> DatasetInfo:
        self.entered.set()
        await self.gate.wait()
        return await self.inner.get(name, version, include_retired=include_retired)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def open_system(tmp_path: Path) -> OpenSystem:
    return system_factory(tmp_path)


def on_dataset(name: str) -> TaskSpec:
    return TaskSpec(
        strategy="sma_cross", params={"fast": 5, "slow": 20}, data=DataSpec(dataset=name)
    )


async def test_artifacts_the_outbox_refuses_fail_the_run_instead_of_vanishing(
    open_system: OpenSystem, tmp_path: Path
) -> None:
    async with open_system(workers=1) as system:
        db = system.config.db
        assert isinstance(db, Path)

        def refuse_artifacts() -> None:
            with sqlite3.connect(db) as conn:
                conn.execute(
                    "CREATE TRIGGER refuse BEFORE INSERT ON artifacts"
                    " BEGIN SELECT RAISE(ABORT, 'disk I/O error (injected)'); END"
                )

        await anyio.to_thread.run_sync(refuse_artifacts)
        view = await system.submit(tiny())
        assert await wait_status(system, view.task_id, "completed", "failed") == "failed"
        task = await system.task(view.task_id)
        assert task.error_type == "artifacts_unrecorded"
        assert task.error is not None
        assert "artifacts could not be recorded" in task.error
        assert "disk I/O error (injected)" in task.error
        assert await types_of(system, view.task_id) == ["Queued", "Started", "Failed"]
        await system.drain()
        staged = [p.name for p in (system.config.data_path / "staging").glob("*") if p.is_file()]
        assert staged == []  # no Completed names them: nothing is kept

        # Once the database takes rows again, runs complete with readable artifacts.
        def accept_artifacts() -> None:
            with sqlite3.connect(db) as conn:
                conn.execute("DROP TRIGGER refuse")

        await anyio.to_thread.run_sync(accept_artifacts)
        follow_up = await system.submit(tiny(seed=2))
        assert await wait_status(system, follow_up.task_id, "completed", "failed") == "completed"
        await system.drain()
        ts, equity = await system.equity(follow_up.task_id)
        assert len(ts) == len(equity) == 300


async def test_an_abort_while_the_data_is_resolved_stops_the_run(
    open_system: OpenSystem,
) -> None:
    factory, made = hooked()
    async with open_system(workers=1, executor=factory) as system:
        await system.catalog.import_bytes("BTCUSDT-1h", csv_of(300))
        gated = GatedCatalog(system.catalog)
        system.workers[0]._catalog = gated
        view = await system.submit(on_dataset("BTCUSDT-1h"))
        with anyio.fail_after(30):
            await gated.entered.wait()  # the worker is inside resolve(...)
        cancelled = await system.cancel(view.task_id)
        assert cancelled.status == "cancelled"
        gated.gate.set()
        # A task after it runs (one worker: in order), so the cancelled one had its turn.
        system.workers[0]._catalog = system.catalog
        follow_up = await system.submit(tiny())
        assert await wait_status(system, follow_up.task_id, "completed") == "completed"
        await system.drain()
        assert made[0].ran == [(follow_up.task_id, 1)]  # the cancelled run never started
        assert await types_of(system, view.task_id) == ["Queued", "Started", "Cancelled"]


async def test_an_abort_of_an_ended_run_does_not_skip_the_next_attempt(
    open_system: OpenSystem,
) -> None:
    """On a shared log, the TaskManager aborts a local run that another process re-queued; the
    abort may reach the worker after that run ended. The re-queued task, claimed again by the
    same worker, must still run (before, it was skipped after its Started and stayed running)."""
    factory, made = hooked()
    async with open_system(workers=1, executor=factory) as system:
        worker = system.workers[0]

        async def lose_the_first_attempt(job: Job) -> None:
            if job.attempt == 1:
                # The old run's abort arrives late (as after a re-queue seen on the shared log).
                worker.tell_nowait(Abort(job.task_id, job.attempt))
                raise JobLostError("the worker running it died (injected)")

        made[0].before_run = lose_the_first_attempt
        view = await system.submit(tiny())
        assert await wait_status(system, view.task_id, "completed", "failed") == "completed"
        assert made[0].ran == [(view.task_id, 1), (view.task_id, 2)]
        types = [t for t in await types_of(system, view.task_id) if t != "Filled"]
        assert types == ["Queued", "Started", "Queued", "Started", "Completed"]
