"""Sweeps and walk-forwards as service tasks on a Dask cluster (``--executor dask://...``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest

from coinbt import engine
from coinbt.sweeps import decode_sweep
from tests.executor.conftest import CLUSTER_WORKERS
from tests.system import system_factory

if TYPE_CHECKING:
    from distributed import LocalCluster

pytest.importorskip("distributed", reason="Dask is missing: pip install coinbt[distributed]")

from coinbt.executor.dask import DaskExecutor, open_dask_executor

GRID = {"fast": [5, 10, 20], "slow": [30, 60]}


async def test_a_sweep_and_a_walk_forward_run_on_dask(
    dask_cluster: LocalCluster, tmp_path: Path
) -> None:
    address = dask_cluster.scheduler_address
    body = {
        "strategy": "sma_cross",
        "data": {"synthetic": {"bars": 8_000, "seed": 2, "interval": "1h"}},
        "grid": GRID,
    }
    with anyio.fail_after(50):
        async with system_factory(tmp_path)(
            workers=CLUSTER_WORKERS,
            executor=lambda workers: open_dask_executor(address, workers),
        ) as system:
            executor = system.executor
            assert isinstance(executor, DaskExecutor)
            await executor.wait_for_workers(CLUSTER_WORKERS)
            grid = await system.submit_sweep(decode_sweep(json.dumps(body).encode()))
            walk = {**body, "walk_forward": {"train": "90d", "test": "30d"}}
            forward = await system.submit_sweep(decode_sweep(json.dumps(walk).encode()))
            await system.drain()
            bars = engine.synthetic(8_000, seed=2, interval="1h")

            view = await system.task(grid.task_id)
            assert view.status == "completed", view.error
            summary = await system.sweep_summary(view)
            assert summary is not None
            expected = engine.sweep("sma_cross", GRID, bars)
            assert summary["best"] == [dict(row) for row in expected.rows]

            view = await system.task(forward.task_id)
            assert view.status == "completed", view.error
            summary = await system.sweep_summary(view)
            assert summary is not None
            expected_wf = engine.walk_forward("sma_cross", GRID, bars, train="90d", test="30d")
            assert summary["walk_forward"]["metrics"] == expected_wf.metrics
            _, equity = await system.equity(forward.task_id)
            assert len(equity) == len(expected_wf.equity)
