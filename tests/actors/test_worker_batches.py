"""A worker runs a claim of small tasks in one round trip to one worker process (run_batch).

Provoked on the real system (SQLite file, worker processes); the executor is the real local one
behind a recorder that can hold a batch at a gate or make it fail, so a cancel or a lost batch
happens at a chosen moment.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from coinbt.executor.base import BatchExecutor, Job, JobError, JobResult
from coinbt.executor.local import LocalProcessExecutor, open_local_executor
from coinbt.runtime import ExecutorFactory, System
from tests.executor.helpers import job
from tests.system import OpenSystem, system_factory, tiny, types_of

BATCH = 5


class RecordingExecutor:
    """The real local process executor; records each round trip, and can hold a batch at a gate
    (``gated``) or fail it (``fail_batches``) before it reaches the process."""

    def __init__(self, inner: LocalProcessExecutor) -> None:
        self.inner = inner
        self.batches: list[list[str]] = []
        self.singles: list[str] = []
        self.gated = False
        self.entered = anyio.Event()
        self.gate = anyio.Event()
        self.fail_batches = False

    async def run(self, job: Job, on_progress: Callable[[float], Any]) -> JobResult:
        self.singles.append(job.task_id)
        return await self.inner.run(job, on_progress)

    async def run_batch(self, jobs: Sequence[Job]) -> list[JobResult | JobError]:
        self.batches.append([j.task_id for j in jobs])
        if self.gated:
            self.entered.set()
            await self.gate.wait()
        if self.fail_batches:
            raise JobError("worker_crashed", "the worker process died (injected)")
        return await self.inner.run_batch(jobs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def recording() -> tuple[ExecutorFactory, list[RecordingExecutor]]:
    made: list[RecordingExecutor] = []

    @asynccontextmanager
    async def factory(workers: int) -> AsyncIterator[Any]:
        async with open_local_executor(workers) as inner:
            executor = RecordingExecutor(inner)
            made.append(executor)
            yield executor

    return factory, made


@pytest.fixture
def open_system(tmp_path: Path) -> OpenSystem:
    return system_factory(tmp_path)


async def _submit(system: System, **fields: Any) -> list[str]:
    """``BATCH`` tiny tasks in one atomic append: the waiting worker's claim takes them all."""
    views = await system.submit_batch([tiny(seed=s, **fields) for s in range(1, BATCH + 1)])
    return [v.task_id for v in views]


async def test_a_claim_of_small_tasks_runs_in_one_round_trip(open_system: OpenSystem) -> None:
    factory, made = recording()
    async with open_system(workers=1, executor=factory) as system:
        assert isinstance(made[0], BatchExecutor)
        ids = await _submit(system)
        await system.drain()
        assert made[0].batches == [ids]
        assert made[0].singles == []
        for task_id in ids:
            assert await types_of(system, task_id) == ["Queued", "Started", "Completed"]
            ts, equity = await system.equity(task_id)
            assert len(ts) == len(equity) == 300
        views = [await system.task(task_id) for task_id in ids]
    digests = {(v.result or {}).get("result_digest") for v in views}
    assert None not in digests
    assert len(digests) == BATCH  # five seeds, five different runs


async def test_the_next_claim_is_taken_while_a_batch_runs(open_system: OpenSystem) -> None:
    """While a batch of small tasks runs, its worker already holds its next claim (their Started
    committed meanwhile), so it goes on without waiting between batches."""
    factory, made = recording()
    async with open_system(workers=1, executor=factory) as system:
        made[0].gated = True
        views = await system.submit_batch([tiny(seed=s) for s in range(1, 71)])
        ids = [v.task_id for v in views]
        with anyio.fail_after(30):
            await made[0].entered.wait()  # the first claim's batch (64 tasks) is held
            while True:  # ... and the other 6 are claimed (Started) meanwhile
                seen = system.projector.position
                if (await system.read.counts())["running"] == 70:
                    break
                await system.projector.wait_for(seen + 1)
        assert made[0].batches == [ids[:64]]
        made[0].gate.set()
        await system.drain()
        assert made[0].batches == [ids[:64], ids[64:]]
        assert (await system.read.counts())["completed"] == 70


async def test_a_task_cancelled_while_its_batch_runs_stays_cancelled(
    open_system: OpenSystem,
) -> None:
    factory, made = recording()
    async with open_system(workers=1, executor=factory) as system:
        made[0].gated = True
        ids = await _submit(system)
        with anyio.fail_after(30):
            await made[0].entered.wait()  # the batch was claimed: every task is running
        cancelled = await system.cancel(ids[1])
        assert cancelled.status == "cancelled"
        made[0].gate.set()
        await system.drain()
        assert await types_of(system, ids[1]) == ["Queued", "Started", "Cancelled"]
        assert await system.artifact_states(ids[1]) == []  # its result was dropped
        for task_id in ids[:1] + ids[2:]:
            assert (await system.task(task_id)).status == "completed"
        staged = [p for p in (system.config.data_path / "staging").iterdir() if p.is_file()]
        assert staged == []


async def test_a_failed_batch_runs_its_tasks_one_at_a_time(open_system: OpenSystem) -> None:
    factory, made = recording()
    async with open_system(workers=1, executor=factory) as system:
        made[0].fail_batches = True
        ids = await _submit(system)
        await system.drain()
        assert made[0].batches == [ids]
        assert made[0].singles == ids  # each then ran alone, with its own outcome
        for task_id in ids:
            assert await types_of(system, task_id) == ["Queued", "Started", "Completed"]


async def test_a_batch_past_its_timeout_runs_its_tasks_one_at_a_time(
    open_system: OpenSystem,
) -> None:
    factory, made = recording()
    async with open_system(workers=1, executor=factory) as system:
        await system.submit(tiny())  # the worker process is up before the clock runs
        await system.drain()
        made[0].singles.clear()
        made[0].gated = True  # the gate never opens: the batch's deadline passes
        ids = await _submit(system, timeout_s=1.0)
        await system.drain()
        assert made[0].singles == ids
        for task_id in ids:
            assert (await system.task(task_id)).status == "completed"


async def test_run_batch_answers_each_job_in_order(tmp_path: Path) -> None:
    good = [job(str(tmp_path / f"j{n}"), 300, task_id=f"j{n}", seed=n) for n in (1, 2)]
    bad = Job(**{**_fields(good[0]), "task_id": "bad", "strategy": "no_such_strategy"})
    async with open_local_executor(1) as executor:
        with anyio.fail_after(30):
            results = await executor.run_batch([good[0], bad, good[1]])
            alone = await executor.run(
                job(str(tmp_path / "alone"), 300, task_id="alone", seed=2), lambda f: None
            )
        assert executor.running_pids() == {}
    first, failed, last = results
    assert isinstance(first, JobResult)
    assert isinstance(last, JobResult)
    assert isinstance(failed, JobError)
    assert "no_such_strategy" in str(failed)
    assert last.result_digest == alone.result_digest  # the same run as one sent alone
    assert first.result_digest != last.result_digest


def _fields(j: Job) -> dict[str, Any]:
    return {name: getattr(j, name) for name in j.__struct_fields__}
