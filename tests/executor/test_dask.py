"""The Dask executor on a local cluster of two worker processes: results equal the local
executor's, cancel and timeout kill the process doing the work, a killed worker is a lost job, a
split sweep equals ``engine.sweep``, and the service re-queues a task whose worker was lost."""

from __future__ import annotations

import os
import signal
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from coinbt import engine
from coinbt.events import SyntheticSpec
from coinbt.executor.base import JobResult
from coinbt.executor.local import open_local_executor
from coinbt.executor.sweeps import sweep_on
from tests.executor.conftest import CLUSTER_WORKERS, OpenDask
from tests.executor.helpers import LONG, alive, job
from tests.system import system_factory, tiny, types_of

if TYPE_CHECKING:
    from distributed import LocalCluster

pytest.importorskip("distributed", reason="Dask is missing: pip install coinbt[distributed]")

from coinbt.executor.dask import DaskExecutor, JobLostError, open_dask_executor

GRID = {"fast": list(range(5, 51, 5)), "slow": list(range(20, 201, 20))}


def _ignore(fraction: float) -> None:
    pass


def _names(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def _same_run(got: JobResult, expected: JobResult) -> None:
    assert (got.positions, got.num_fills) == (expected.positions, expected.num_fills)
    assert got.metrics == expected.metrics
    assert got.result_digest == expected.result_digest
    assert (got.final_equity, got.last_close, got.bars) == (
        expected.final_equity,
        expected.last_close,
        expected.bars,
    )
    assert got.artifacts.keys() == expected.artifacts.keys()
    for name, artifact in got.artifacts.items():
        assert (artifact.sha256, artifact.size) == (
            expected.artifacts[name].sha256,
            expected.artifacts[name].size,
        )
        assert Path(artifact.path).read_bytes() == Path(expected.artifacts[name].path).read_bytes()


async def test_a_job_gives_the_local_executors_result_with_progress(
    open_dask: OpenDask, tmp_path: Path
) -> None:
    async with open_local_executor(1) as local:
        expected = await local.run(job(str(tmp_path / "local"), 300_000), _ignore)
    progress: dict[bool, list[float]] = {True: [], False: []}
    results: dict[bool, JobResult] = {}

    async def run(executor: DaskExecutor, transfer: bool) -> None:
        out = str(tmp_path / f"dask-{transfer}")
        results[transfer] = await executor.run(job(out, 300_000), progress[transfer].append)

    with anyio.fail_after(30):
        async with open_dask(transfer_files=False) as shared, open_dask() as remote:
            assert remote.transfer_files  # the default for a scheduler address
            async with anyio.create_task_group() as tg:
                tg.start_soon(run, shared, False)
                tg.start_soon(run, remote, True)
            assert shared.running_pids() == remote.running_pids() == {}
    for transfer, result in results.items():
        _same_run(result, expected)
        # Files are where the service asked for them, whether written there or sent back.
        assert result.artifacts["result"].path == str(tmp_path / f"dask-{transfer}-result.npz")
        # Progress from the remote process reached the caller, in order, below 100 %.
        assert progress[transfer], transfer
        assert progress[transfer] == sorted(progress[transfer])
        assert all(0 < p < 1 for p in progress[transfer])
    assert _names(tmp_path) == [  # and nothing else was left here
        f"{run}-result.npz" for run in ("dask-False", "dask-True", "local")
    ]


async def test_cancel_kills_the_remote_process(open_dask: OpenDask, tmp_path: Path) -> None:
    async with open_dask() as executor:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(executor.run, job(str(tmp_path / "t1"), LONG), _ignore)
                pid = await executor.wait_running("t1")
                assert executor.running_pids() == {"t1": pid}
                assert alive(pid)
                tg.cancel_scope.cancel()
        # run() returned only after the process doing the work was killed and reaped.
        assert not alive(pid)
        assert executor.running_pids() == {}
        # The nanny replaces it, and the next job runs.
        with anyio.fail_after(30):
            await executor.wait_for_workers(CLUSTER_WORKERS)
            result = await executor.run(job(str(tmp_path / "t2"), 5_000, task_id="t2"), _ignore)
        assert result.bars == 5_000


async def test_a_timeout_kills_the_remote_process(open_dask: OpenDask, tmp_path: Path) -> None:
    pids: list[int] = []
    async with open_dask() as executor:
        with anyio.fail_after(30):
            with anyio.move_on_after(60) as timeout:

                async def shorten_once_running() -> None:
                    pids.append(await executor.wait_running("t1"))
                    timeout.deadline = anyio.current_time() + 0.2

                async with anyio.create_task_group() as tg:
                    tg.start_soon(shorten_once_running)
                    await executor.run(job(str(tmp_path / "t1"), LONG), _ignore)
        assert timeout.cancelled_caught
        [pid] = pids
        assert not alive(pid)


async def test_a_killed_worker_is_a_lost_job(open_dask: OpenDask, tmp_path: Path) -> None:
    async with open_dask() as executor:

        async def kill_once_running() -> None:
            os.kill(await executor.wait_running("t1"), signal.SIGKILL)

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(kill_once_running)
                with pytest.raises(JobLostError) as lost:
                    await executor.run(job(str(tmp_path / "t1"), LONG), _ignore)
        assert lost.value.error_type == "worker_lost"
        assert executor.running_pids() == {}


async def test_a_split_sweep_equals_engine_sweep_and_the_local_executor(
    open_dask: OpenDask,
) -> None:
    spec = SyntheticSpec(bars=10_000, seed=7)
    bars = engine.synthetic(10_000, seed=7)
    expected = engine.sweep("sma_cross", GRID, bars)
    by_return: dict[str, Any] = {"sort_by": "total_return", "descending": False}
    expected_by_return = engine.sweep("sma_cross", GRID, bars, **by_return)
    progress: list[float] = []
    with anyio.fail_after(30):
        async with open_dask() as dask_executor, open_local_executor(2) as local:
            results = [
                await sweep_on(dask_executor, "sma_cross", GRID, spec, progress=progress.append),
                await sweep_on(dask_executor, "sma_cross", GRID, bars, chunks=3),
                await sweep_on(local, "sma_cross", GRID, spec),
                await sweep_on(local, "sma_cross", GRID, bars, chunks=3),
            ]
            ranked = await sweep_on(dask_executor, "sma_cross", GRID, spec, **by_return)
    for result in results:
        assert len(result.rows) == len(expected.rows) == 90
        for row, expected_row in zip(result.rows, expected.rows, strict=True):
            assert row == expected_row
        assert result.to_dict() == expected.to_dict()
    assert ranked.to_dict() == expected_by_return.to_dict()
    assert progress[-1] == 1.0
    assert progress == sorted(progress)


async def test_cancelling_a_sweep_kills_every_chunk(open_dask: OpenDask) -> None:
    async with open_dask() as executor:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                run = partial(sweep_on, executor, "sma_cross", GRID, SyntheticSpec(bars=LONG))
                tg.start_soon(run)
                pids = [await executor.wait_running(f"sweep-{n}/2") for n in (1, 2)]
                assert len(set(pids)) == 2  # one process each
                tg.cancel_scope.cancel()
        assert not any(alive(pid) for pid in pids)
        assert executor.running_pids() == {}


async def test_the_service_on_dask_requeues_the_task_of_a_lost_worker(
    dask_cluster: LocalCluster, tmp_path: Path
) -> None:
    address = dask_cluster.scheduler_address
    open_system = system_factory(tmp_path)
    with anyio.fail_after(40):
        async with open_system(
            workers=CLUSTER_WORKERS,
            executor=lambda workers: open_dask_executor(address, workers),
        ) as system:
            executor = system.executor
            assert isinstance(executor, DaskExecutor)
            await executor.wait_for_workers(CLUSTER_WORKERS)
            quick = await system.submit(tiny())
            await system.drain()
            assert (await system.task(quick.task_id)).status == "completed"
            _, equity = await system.equity(quick.task_id)  # the artifact came back and was stored
            assert len(equity) == 300

            spec = tiny(seed=3, bars=1_000_000, strategy="buy_and_hold", params={})
            view = await system.submit(spec)
            os.kill(await executor.wait_running(view.task_id), signal.SIGKILL)
            await system.drain()
            done = await system.task(view.task_id)
            assert done.status == "completed"
            assert done.attempt == 2
            expected = engine.run(
                engine.BacktestSpec("buy_and_hold", {}), engine.synthetic(1_000_000, seed=3)
            )
            assert done.result is not None
            assert done.result["result_digest"] == expected.digest()
            types = await types_of(system, view.task_id)
            assert types[:4] == ["Queued", "Started", "Queued", "Started"]
            assert types[-1] == "Completed"
            queued = [e.event for e in await system.store.read_stream(view.task_id)][2]
            assert queued.attempt == 2  # type: ignore[union-attr]


def test_coinbt_sweep_on_dask_prints_the_same_json(
    dask_cluster: LocalCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    from coinbt.cli import main

    argv = ["sweep", "--synthetic", "5000:3", "--strategy", "sma_cross", "--json"]
    argv += ["-g", "fast=5:50:5", "-g", "slow=20:200:20"]
    assert main(argv) == 0
    single = capsys.readouterr().out
    assert main([*argv, "--dask", dask_cluster.scheduler_address, "--chunks", "3"]) == 0
    assert capsys.readouterr().out == single
