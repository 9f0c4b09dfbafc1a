"""A cancel kills only the process executing that task: the check and the kill happen in one step
of the worker's event loop (``kill_if_running``), on a real cluster."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.executor.conftest import CLUSTER_WORKERS, OpenDask
from tests.executor.helpers import LONG, alive, job

pytest.importorskip("distributed", reason="Dask is missing: pip install coinbt[distributed]")

from coinbt.executor._dask_task import kill_if_running


def _double(x: int) -> int:
    return 2 * x


async def test_a_task_whose_result_waits_on_the_worker_is_not_killed(open_dask: OpenDask) -> None:
    """The cancel that lands while the result is on its way back: the process is idle now."""
    async with open_dask() as executor:
        client: Any = executor.client
        with anyio.fail_after(30):
            future = client.submit(_double, 21, key="coinbt-test-finished", pure=False)
            assert await future == 42  # done: its result is held in the worker's memory
            [worker] = (await client.who_has([future]))[future.key]
            pids = await client.run(os.getpid, workers=[worker])
            answers = await client.run(
                kill_if_running, future.key, workers=[worker], on_error="return"
            )
        assert answers == {worker: None}
        assert alive(pids[worker])
        future.release()


async def test_a_task_executing_is_killed_and_only_its_process(
    open_dask: OpenDask, tmp_path: Path
) -> None:
    async with open_dask() as executor:
        client: Any = executor.client
        pids = await client.run(os.getpid)
        assert len(pids) == CLUSTER_WORKERS
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(executor.run, job(str(tmp_path / "t1"), LONG), lambda f: None)
                pid = await executor.wait_running("t1")
                tg.cancel_scope.cancel()
        assert not alive(pid)
        others = [p for p in pids.values() if p != pid]
        assert others
        assert all(alive(p) for p in others)  # the idle worker is untouched
