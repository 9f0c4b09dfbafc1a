#!/usr/bin/env python
"""Benchmark sweeps, walk-forwards and batches as service tasks against the engine in-process.

    .venv/bin/python scripts/bench_sweeps.py            # a table
    .venv/bin/python scripts/bench_sweeps.py --json     # one JSON object

Workloads (each figure the best of --repeat rounds; the load average is printed, since a busy
machine changes everything):

  sweep      sma_cross, fast 1..30 x slow 31..60 (900 combinations) on 100,000 synthetic 1m bars:
             engine.sweep in this process (bars generated included) vs the same sweep through the
             service (POST /sweeps to Completed: validation, the log, chunks in worker processes,
             the deflated Sharpe's rerun of the best row, the artifacts), with 1 and 2 workers.
             Goal: the service within 1.3x of engine.sweep.
  walk       a 12-fold walk-forward (train 214d, test 40d; fast 5,10,20 x slow 50,100,200) on
             1,000,000 synthetic 1m bars: engine.walk_forward in this process vs the service.
  batch      1,000 tiny backtests (300 bars) queued: one POST /backtests with a JSON array vs
             1,000 POSTs one after the other (no workers: the time to queue, not to run).

The service runs on a fresh SQLite file in a temporary directory, its API through the ASGI app
in this process (no sockets). Every service sweep is checked equal to the in-process table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx

from coinbt import engine
from coinbt.api import create_app
from coinbt.lifecycle import TERMINAL
from coinbt.runtime import Config, System, open_system

GRID = {"fast": list(range(1, 31)), "slow": list(range(31, 61))}
WF_GRID = {"fast": [5, 10, 20], "slow": [50, 100, 200]}
SWEEP_BARS = 100_000
WF_BARS = 1_000_000


async def wait_completed(system: System, task_id: str) -> str:
    while True:
        seen = system.projector.position
        view = await system.task(task_id)
        if view.status in TERMINAL:
            return view.status
        await system.projector.wait_for(seen + 1)


def client(system: System) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(system))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")


async def service_run(system: System, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    async with client(system) as http:
        started = time.perf_counter()
        response = await http.post("/sweeps", json=body)
        assert response.status_code == 202, response.text
        task_id = response.json()["task_id"]
        status = await wait_completed(system, task_id)
        elapsed = time.perf_counter() - started
        assert status == "completed", (await system.task(task_id)).error
        await system.drain()
        done = (await http.get(f"/sweeps/{task_id}")).json()
    return elapsed, done


def sweep_body(bars: int, grid: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "strategy": "sma_cross",
        "data": {"synthetic": {"bars": bars, "seed": 1}},
        "grid": grid,
        **extra,
    }


async def bench_sweep(workdir: Path, repeat: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    best_local = float("inf")
    expected: engine.SweepResult | None = None
    for _ in range(repeat):
        started = time.perf_counter()
        expected = engine.sweep("sma_cross", GRID, engine.synthetic(SWEEP_BARS, seed=1))
        best_local = min(best_local, time.perf_counter() - started)
    assert expected is not None
    rows.append({"workload": "sweep 900 x 100k bars", "how": "engine.sweep", "seconds": best_local})
    for workers in (1, 2):
        config = Config(db=workdir / f"sweep-{workers}.db", workers=workers)
        async with open_system(config) as system:
            await service_run(system, sweep_body(2_000, {"fast": [5], "slow": [20]}))  # warm up
            best = float("inf")
            for _ in range(repeat):
                elapsed, done = await service_run(system, sweep_body(SWEEP_BARS, GRID))
                assert done["sweep"]["best"][0] == dict(expected.rows[0])
                assert done["sweep"]["evaluated"] == expected.evaluated
                best = min(best, elapsed)
        rows.append(
            {
                "workload": "sweep 900 x 100k bars",
                "how": f"service, {workers} worker process{'es' if workers > 1 else ''}",
                "seconds": best,
                "vs_engine": best / best_local,
            }
        )
    return rows


async def bench_walk(workdir: Path, repeat: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    best_local = float("inf")
    folds = 0
    for _ in range(repeat):
        started = time.perf_counter()
        result = engine.walk_forward(
            "sma_cross", WF_GRID, engine.synthetic(WF_BARS, seed=1), train="214d", test="40d"
        )
        best_local = min(best_local, time.perf_counter() - started)
        folds = len(result.folds)
    rows.append(
        {
            "workload": f"walk-forward {folds} folds x 1M bars",
            "how": "engine.walk_forward",
            "seconds": best_local,
        }
    )
    config = Config(db=workdir / "walk.db", workers=1)
    async with open_system(config) as system:
        best = float("inf")
        for _ in range(repeat):
            body = sweep_body(WF_BARS, WF_GRID, walk_forward={"train": "214d", "test": "40d"})
            elapsed, done = await service_run(system, body)
            assert len(done["sweep"]["walk_forward"]["folds"]) == folds
            best = min(best, elapsed)
    rows.append(
        {
            "workload": f"walk-forward {folds} folds x 1M bars",
            "how": "service, 1 worker process",
            "seconds": best,
            "vs_engine": best / best_local,
        }
    )
    return rows


async def bench_batch(workdir: Path, repeat: int) -> list[dict[str, Any]]:
    specs = [
        {"strategy": "sma_cross", "params": {"fast": 5, "slow": 20},
         "data": {"synthetic": {"bars": 300, "seed": n}}}
        for n in range(1, 1001)
    ]  # fmt: skip
    best_batch = best_single = float("inf")
    for round_ in range(repeat):
        config = Config(db=workdir / f"batch-{round_}.db", workers=0, queue_capacity=10_000)
        async with open_system(config) as system, client(system) as http:
            started = time.perf_counter()
            response = await http.post("/backtests", json=specs)
            best_batch = min(best_batch, time.perf_counter() - started)
            assert response.status_code == 202, response.text
            assert len(response.json()["tasks"]) == 1000
        config = Config(db=workdir / f"single-{round_}.db", workers=0, queue_capacity=10_000)
        async with open_system(config) as system, client(system) as http:
            started = time.perf_counter()
            for spec in specs:
                response = await http.post("/backtests", json=spec)
                assert response.status_code == 202, response.text
            best_single = min(best_single, time.perf_counter() - started)
    workload = "queue 1,000 tiny backtests"
    return [
        {"workload": workload, "how": "1,000 single POSTs", "seconds": best_single},
        {
            "workload": workload,
            "how": "one POST of a 1,000-spec array",
            "seconds": best_batch,
            "vs_single": best_batch / best_single,
        },
    ]


async def main(args: argparse.Namespace) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="coinbt-bench-sweeps-") as directory:
        workdir = Path(directory)
        if "sweep" in args.only:
            rows += await bench_sweep(workdir, args.repeat)
        if "walk" in args.only:
            rows += await bench_walk(workdir, args.repeat)
        if "batch" in args.only:
            rows += await bench_batch(workdir, args.repeat)
    return {"load_average": list(os.getloadavg()), "cpus": os.cpu_count(), "rows": rows}


def table(report: dict[str, Any]) -> str:
    lines = [
        f"load average {', '.join(f'{x:.1f}' for x in report['load_average'])} "
        f"on {report['cpus']} CPUs",
        f"{'workload':<36} {'how':<34} {'seconds':>8}  ratio",
    ]
    for row in report["rows"]:
        ratio = row.get("vs_engine", row.get("vs_single"))
        note = "" if ratio is None else f"{ratio:.2f}x"
        lines.append(f"{row['workload']:<36} {row['how']:<34} {row['seconds']:>8.3f}  {note}")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best is kept (3)")
    parser.add_argument(
        "--only", nargs="+", default=["sweep", "walk", "batch"], choices=["sweep", "walk", "batch"]
    )
    options = parser.parse_args()
    report = anyio.run(main, options)
    print(json.dumps(report) if options.json else table(report))
    sys.exit(0)
