#!/usr/bin/env python
"""Benchmark a split sweep: one process vs the local process executor vs a Dask LocalCluster.

    .venv/bin/python scripts/bench_sweep.py            # a table
    .venv/bin/python scripts/bench_sweep.py --json     # one JSON object

The workload: sma_cross, fast 5..50 step 5 x slow 20..200 step 20 (90 valid pairs, 10 skipped)
on 1,000,000 synthetic 1m bars. Baseline: engine.sweep in this process. Then each executor with
1 and 2 workers (one chunk per worker), with the data given two ways:

  gen   : a SyntheticSpec: every worker generates the same bars itself (no transfer)
  ship  : the bars generated here once, then staged for the workers (a temporary file for local
          processes, a broadcast scatter for Dask) -- generation here is counted in the time

Columns: wall = seconds until the merged table is back (the executor is opened and warmed up by
a small sweep beforehand: "start" is the seconds that took, once); data = the slowest chunk's
seconds to get its bars (generate or load; 0 when Dask hands over the scattered object); sim = the
slowest chunk's engine.sweep; other = wall - the slowest chunk's data+sim: staging, transfer,
scheduling, merge. Every table is checked equal to the baseline's, row for row. Each figure is
the best of --repeat rounds (a round runs every configuration once, all executors opened
beforehand). The load average is printed because a busy machine changes everything: worker
processes run at nice 10, below any unniced neighbour.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any

import anyio

from coinbt import engine
from coinbt.events import SyntheticSpec
from coinbt.executor.local import open_local_executor
from coinbt.executor.sweeps import ChunkReport, SweepExecutor, sweep_on

GRID = {"fast": list(range(5, 51, 5)), "slow": list(range(20, 201, 20))}
SEED = 1


def baseline(bars: int) -> tuple[dict[str, Any], engine.SweepResult]:
    start = time.perf_counter()
    data = engine.synthetic(bars, seed=SEED)
    generated = time.perf_counter()
    result = engine.sweep("sma_cross", GRID, data)
    done = time.perf_counter()
    row = {
        "executor": "single process",
        "workers": 1,
        "data": "gen",
        "wall_s": done - start,
        "data_s": generated - start,
        "sim_s": done - generated,
        "other_s": 0.0,
    }
    return row, result


async def start(
    open_executor: Callable[[int], AbstractAsyncContextManager[Any]],
    workers: int,
    stack: AsyncExitStack,
) -> tuple[SweepExecutor, float]:
    """An open executor, warmed up (imports and first calls in every worker); seconds taken."""
    opened = time.perf_counter()
    executor: SweepExecutor = await stack.enter_async_context(open_executor(workers))
    await sweep_on(executor, "sma_cross", GRID, engine.synthetic(1_000, seed=SEED))
    await sweep_on(executor, "sma_cross", GRID, SyntheticSpec(bars=1_000))
    return executor, time.perf_counter() - opened


async def once(
    sweeper: SweepExecutor, bars: int, expected: engine.SweepResult, mode: str
) -> dict[str, Any]:
    reports: list[ChunkReport] = []
    begin = time.perf_counter()
    data: engine.Bars | SyntheticSpec = (
        SyntheticSpec(bars=bars, seed=SEED) if mode == "gen" else engine.synthetic(bars, seed=SEED)
    )
    result = await sweep_on(sweeper, "sma_cross", GRID, data, on_chunk=reports.append)
    wall = time.perf_counter() - begin
    assert result.to_dict() == expected.to_dict(), mode
    slowest = max(reports, key=lambda r: r.data_s + r.sweep_s)
    return {
        "data": mode,
        "wall_s": wall,
        "data_s": max(r.data_s for r in reports),
        "sim_s": max(r.sweep_s for r in reports),
        "other_s": wall - slowest.data_s - slowest.sweep_s,
        "chunks": len(reports),
        "processes": len({r.pid for r in reports}),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every executor is opened first; then each round runs every configuration once, in the
    same order, so that a busy spell on the machine hits them all alike."""
    load_before = os.getloadavg()[0]
    openers: list[tuple[str, Callable[[int], AbstractAsyncContextManager[Any]]]] = [
        ("local processes", open_local_executor)
    ]
    if not args.no_dask:
        from coinbt.executor.dask import open_dask_executor

        openers.append(("dask LocalCluster", lambda n: open_dask_executor(None, n)))
    tries: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    async with AsyncExitStack() as stack:
        executors = []
        for name, opener in openers:
            for workers in args.workers:
                executor, started = await start(opener, workers, stack)
                executors.append((name, workers, executor, started))
        for _ in range(args.repeat):
            single, expected = baseline(args.bars)
            tries.setdefault(("single process", 1, "gen"), []).append(single)
            for name, workers, executor, started in executors:
                for mode in ("gen", "ship"):
                    row = await once(executor, args.bars, expected, mode)
                    row.update(executor=name, workers=workers, start_s=started)
                    tries.setdefault((name, workers, mode), []).append(row)
    rows = [min(runs, key=lambda row: float(row["wall_s"])) for runs in tries.values()]
    base = rows[0]["wall_s"]
    for row in rows:
        row["speedup"] = base / row["wall_s"]
    return {
        "bars": args.bars,
        "combinations": expected.evaluated,
        "cpus": os.cpu_count(),
        "repeat": args.repeat,
        "load_average": [load_before, os.getloadavg()[0]],
        "python": sys.version.split()[0],
        "rows": rows,
    }


def table(report: dict[str, Any]) -> str:
    lines = [
        f"sma_cross sweep, {report['combinations']} pairs on {report['bars']:,} synthetic bars, "
        f"{report['cpus']} CPUs, load average {report['load_average'][0]:.1f} -> "
        f"{report['load_average'][1]:.1f}; best of {report['repeat']}, seconds",
        "",
        f"{'executor':<18} {'workers':>7} {'data':>5} {'wall':>7} {'speedup':>7} "
        f"{'data':>7} {'sim':>7} {'other':>7} {'start':>7}",
    ]
    for row in report["rows"]:
        start = f"{row['start_s']:7.2f}" if "start_s" in row else f"{'-':>7}"
        lines.append(
            f"{row['executor']:<18} {row['workers']:>7} {row['data']:>5} {row['wall_s']:7.2f} "
            f"{row['speedup']:6.2f}x {row['data_s']:7.2f} {row['sim_s']:7.2f} "
            f"{row['other_s']:7.2f} {start}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--bars", type=int, default=1_000_000, help="bars (default 1,000,000)")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="worker counts (default 1 2)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, best kept (1)")
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask LocalCluster")
    args = parser.parse_args()
    report = anyio.run(run, args)
    print(json.dumps(report, indent=2) if args.json else table(report))
    return 0


if __name__ == "__main__":  # a LocalCluster's worker processes re-import this module
    sys.exit(main())
