"""Split sweeps: the plan (validation and balance) and the local process executor."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest

from coinbt import engine
from coinbt.errors import SpecError
from coinbt.events import SyntheticSpec
from coinbt.executor.base import JobError
from coinbt.executor.local import open_local_executor
from coinbt.executor.sweeps import ChunkReport, plan_sweep, sweep_on
from tests.executor.helpers import LONG, alive

GRID = {"fast": list(range(5, 51, 5)), "slow": list(range(20, 201, 20))}


def test_the_plan_balances_valid_combinations_and_drops_hopeless_values() -> None:
    plan = plan_sweep("sma_cross", {"fast": [5, 10, 30], "slow": [3, 20, 40, 60, 80]}, 1000, 2)
    # Split along slow (the most values): valid combinations per value 0, 2, 3, 3, 3; the
    # largest go first to the least loaded chunk, slow=3 (never valid) to none.
    assert plan.chunks == (
        {"fast": [5, 10, 30], "slow": [40, 80]},
        {"fast": [5, 10, 30], "slow": [20, 60]},
    )
    assert plan.chunk_combinations == (6, 6)
    assert len(plan.valid) == 11
    assert plan.combinations == 15
    assert plan.skip_reasons == {"params.fast: must be less than slow": 4}

    ninety = plan_sweep("sma_cross", GRID, 1_000_000, 2)
    loads = [sum(1 for f in c["fast"] for s in c["slow"] if f < s) for c in ninety.chunks]
    assert loads == [45, 45]
    # More chunks than values: one value each, never an empty chunk.
    assert len(plan_sweep("sma_cross", {"fast": [5, 10], "slow": [50]}, 1000, 8).chunks) == 2


@pytest.mark.parametrize(
    ("grid", "options"),
    [
        pytest.param({"fast": [5], "speed": [1]}, {}, id="unknown-parameter"),
        pytest.param({"fast": [5, "x"]}, {}, id="bad-value"),
        pytest.param({"fast": [50], "slow": [20]}, {}, id="no-valid-combination"),
        pytest.param(GRID, {"sort_by": "luck"}, id="unknown-metric"),
        pytest.param(GRID, {"fee_bps": -1.0}, id="bad-cost"),
    ],
)
async def test_bad_sweeps_fail_like_engine_sweep_before_anything_runs(
    grid: dict[str, list[Any]], options: dict[str, Any]
) -> None:
    bars = engine.synthetic(1_000, seed=1)
    with pytest.raises(SpecError) as expected:
        engine.sweep("sma_cross", grid, bars, **options)
    async with open_local_executor(1) as executor:
        with pytest.raises(SpecError) as got:
            await sweep_on(executor, "sma_cross", grid, bars, **options)
        assert executor.started_processes == 1  # nothing ran, nothing was replaced
    assert got.value.errors == expected.value.errors


async def test_chunks_run_in_parallel_processes_and_report_where_time_went() -> None:
    reports: list[ChunkReport] = []
    bars = engine.synthetic(5_000, seed=2)
    with anyio.fail_after(30):
        async with open_local_executor(2) as executor:
            result = await sweep_on(
                executor, "sma_cross", GRID, bars, chunks=4, on_chunk=reports.append
            )
    assert result.to_dict() == engine.sweep("sma_cross", GRID, bars).to_dict()
    assert sorted(r.index for r in reports) == [0, 1, 2, 3]
    assert sum(r.evaluated for r in reports) == 90
    assert len({r.pid for r in reports}) == 2
    assert all(r.wall_s >= r.sweep_s > 0 for r in reports)


async def test_a_call_that_raises_fails_with_its_error_and_keeps_the_process() -> None:
    async with open_local_executor(2) as executor:
        with pytest.raises(JobError) as failed:
            await executor.run_call(
                "x", "coinbt.executor._sweep_chunk:run_chunk", {}, lambda f: None, bars="/nope"
            )
        assert executor.started_processes == 2  # an error is an answer, not a crash
    assert failed.value.error_type == "invalid_data"


async def test_cancelling_a_sweep_kills_its_local_processes() -> None:
    async with open_local_executor(2) as executor:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                run = partial(sweep_on, executor, "sma_cross", GRID, SyntheticSpec(bars=LONG))
                tg.start_soon(run)
                pids = [await executor.wait_running(f"sweep-{n}/2") for n in (1, 2)]
                tg.cancel_scope.cancel()
            for pid in pids:
                await executor.wait_exited(pid)
        assert not any(alive(pid) for pid in pids)
        assert executor.running_pids() == {}


SWEEP_ARGS = ("sweep", "--strategy", "sma_cross", "-g", "fast=5:50:5", "-g", "slow=20:200:20")


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from coinbt.cli import main

    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize(
    "data",
    [pytest.param(("--synthetic", "5000:3"), id="synthetic"), pytest.param(("--data",), id="csv")],
)
def test_coinbt_sweep_with_workers_prints_the_same_json(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, data: tuple[str, ...]
) -> None:
    if data == ("--data",):
        csv = tmp_path / "bars.csv"
        bars = engine.synthetic(3_000, seed=4)
        csv.write_text(
            "timestamp,open,high,low,close,volume\n"
            + "".join(
                f"{t},{o!r},{h!r},{lo!r},{c!r},{v!r}\n"
                for t, o, h, lo, c, v in zip(
                    *(column.tolist() for column in bars.to_arrays().values()), strict=True
                )
            )
        )
        data = ("--data", str(csv))
    single = _cli(capsys, *SWEEP_ARGS, *data, "--json", "--sort", "total_return")
    split = _cli(capsys, *SWEEP_ARGS, *data, "--json", "--sort", "total_return", "--workers", "2")
    assert single[0] == split[0] == 0, (single[2], split[2])
    assert split[1] == single[1]
    assert json.loads(split[1])["evaluated"] == 90


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param(("--workers", "0"), "--workers: 0: must be at least 1", id="workers"),
        pytest.param(("--chunks", "0"), "--chunks: 0: must be at least 1", id="chunks"),
        pytest.param(("--dask", "udp://x"), "--dask: 'udp://x': expected", id="dask-target"),
        pytest.param(("--dask", "local:2", "--sort", "luck"), "sort_by: unknown", id="early"),
    ],
)
def test_coinbt_sweep_refuses_bad_split_options(
    capsys: pytest.CaptureFixture[str], options: tuple[str, ...], message: str
) -> None:
    status, out, err = _cli(capsys, *SWEEP_ARGS, "--synthetic", "1000", *options)
    assert status == 2
    assert out == ""
    assert message in err


async def test_a_split_along_a_trading_axis_equals_engine_sweep() -> None:
    """sl_stop has the most values, so the grid is split along it; shorts and a fixed take
    profit apply to every chunk; the merged table is engine.sweep's, row for row."""
    grid = {"fast": [5, 10], "slow": [30, 60], "sl_stop": [0.01, 0.03, 0.05]}
    trading = {"direction": "both", "tp_stop": 0.08}
    bars = engine.synthetic(5_000, seed=3)
    expected = engine.sweep("sma_cross", grid, bars, **trading)
    plan = plan_sweep("sma_cross", grid, len(bars), 2, trading=trading)
    assert [sorted(c["sl_stop"]) for c in plan.chunks] != [grid["sl_stop"]]  # really split
    assert len(plan.valid) == expected.evaluated == 12
    async with open_local_executor(2) as executor:
        result = await sweep_on(executor, "sma_cross", grid, bars, trading=trading)
    assert result.to_dict() == expected.to_dict()
    with pytest.raises(SpecError) as info:
        plan_sweep("sma_cross", {"fast": [5], "sl_stop": [1.5]}, 1000, 2)
    assert info.value.errors[0].field == "grid.sl_stop"
