#!/usr/bin/env python
"""Benchmark the service core: submit N backtests concurrently, time until all are completed.

    .venv/bin/python scripts/bench_tasks.py                # a table (SQLite)
    .venv/bin/python scripts/bench_tasks.py --json         # one JSON object
    .venv/bin/python scripts/bench_tasks.py --postgres     # also on a throwaway PostgreSQL server
    .venv/bin/python scripts/bench_tasks.py --db postgresql://user@host/empty_database

Every lifecycle event is durable (SQLite WAL, synchronous=FULL; PostgreSQL synchronous_commit=on,
and --postgres starts its server with PostgreSQL's durable defaults, fsync on, like
bench_store.py), read models are projected, and artifacts stored, exactly as in the service.
"cpu s" is the CPU time of the service's own process (event loop and its threads: deciding,
appending, projecting, serving reads), not of the worker processes or of the PostgreSQL server.
Workloads:
  tiny      : 1,000 sma_cross backtests on 300 synthetic bars
  100k      : 50 sma_cross backtests on 100,000 synthetic bars
  lifecycle : 1,000 submits then 1,000 cancels with no workers: the log, the projection and
              the read-your-writes round trip of each command alone, no backtest at all
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from _postgres_option import add_postgres_options, postgres_dsn

from coinbt.events import DataSpec, SyntheticSpec, TaskSpec
from coinbt.runtime import Config, open_system


def spec(bars: int, seed: int) -> TaskSpec:
    return TaskSpec(
        strategy="sma_cross",
        params={"fast": 10, "slow": 30},
        data=DataSpec(synthetic=SyntheticSpec(bars=bars, seed=seed)),
    )


def _config(db: Path | str, tmp: Path, **fields: Any) -> Config:
    return Config(db=db, data_dir=tmp / "data", **fields)


async def workload(db: Path | str, tasks: int, bars: int, workers: int | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        config = _config(db, Path(tmp), workers=workers, queue_capacity=tasks + 1)
        async with open_system(config) as system:
            before = await system.read.counts()
            first = await system.store.last_position()
            start, cpu = time.perf_counter(), time.process_time()
            async with anyio.create_task_group() as tg:
                for n in range(tasks):
                    tg.start_soon(system.submit, spec(bars, n + 1))
            submitted = time.perf_counter() - start
            await system.drain()
            elapsed = time.perf_counter() - start
            cpu = time.process_time() - cpu
            counts = await system.read.counts()
            events = await system.store.last_position() - first
            stats = getattr(system.store, "stats", {"transactions": 0})
    assert counts["completed"] - before["completed"] == tasks, counts
    return {
        "tasks": tasks,
        "bars": bars,
        "workers": system.config.workers or len(system.workers),
        "seconds": elapsed,
        "service_cpu_seconds": cpu,
        "submit_seconds": submitted,
        "tasks_per_s": tasks / elapsed,
        "events": events,
        "events_per_s": events / elapsed,
        "transactions": stats["transactions"],
    }


async def lifecycle(db: Path | str, tasks: int) -> dict[str, Any]:
    """Submits, then cancels, each answered after its event is committed and projected."""
    with tempfile.TemporaryDirectory() as tmp:
        config = _config(db, Path(tmp), workers=0, queue_capacity=tasks + 1)
        async with open_system(config) as system:
            first = await system.store.last_position()
            ids: list[str] = []

            async def submit(n: int) -> None:
                ids.append((await system.submit(spec(300, n + 1))).task_id)

            start, cpu = time.perf_counter(), time.process_time()
            async with anyio.create_task_group() as tg:
                for n in range(tasks):
                    tg.start_soon(submit, n)
            submitted = time.perf_counter() - start
            async with anyio.create_task_group() as tg:
                for task_id in ids:
                    tg.start_soon(system.cancel, task_id)
            elapsed = time.perf_counter() - start
            cpu = time.process_time() - cpu
            events = await system.store.last_position() - first
            stats = getattr(system.store, "stats", {"transactions": 0})
    return {
        "tasks": tasks,
        "bars": 0,
        "workers": 0,
        "seconds": elapsed,
        "service_cpu_seconds": cpu,
        "submit_seconds": submitted,
        "cancel_seconds": elapsed - submitted,
        "tasks_per_s": tasks / elapsed,
        "events": events,
        "events_per_s": events / elapsed,
        "transactions": stats["transactions"],
    }


async def workloads(db: Path | str, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "tiny": await workload(db, args.tiny, 300, args.workers),
        "100k": await workload(db, args.large, 100_000, args.workers),
        "lifecycle": await lifecycle(db, args.tiny),
    }


async def main_async(args: argparse.Namespace, dsn: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        results = {"sqlite": await workloads(Path(tmp) / "bench.db", args)}
    if dsn is not None:
        results["postgresql"] = await workloads(dsn, args)
    return results


def print_table(results: dict[str, dict[str, Any]]) -> None:
    print(
        f"{'store':<11} {'workload':<10} {'tasks':>6} {'bars':>8} {'seconds':>8} "
        f"{'cpu s':>6} {'tasks/s':>8} {'events/s':>9} {'txns':>6}  notes"
    )
    for store, runs in results.items():
        for name, r in runs.items():
            notes = f"submitted in {r['submit_seconds']:.2f} s"
            if "cancel_seconds" in r:
                notes += f", cancelled in {r['cancel_seconds']:.2f} s"
            print(
                f"{store:<11} {name:<10} {r['tasks']:>6} {r['bars']:>8,} {r['seconds']:>8.2f} "
                f"{r['service_cpu_seconds']:>6.2f} {r['tasks_per_s']:>8,.0f} "
                f"{r['events_per_s']:>9,.0f} {r['transactions']:>6}  {notes}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--tiny", type=int, default=1000, help="tiny tasks (default 1000)")
    parser.add_argument("--large", type=int, default=50, help="100k-bar tasks (default 50)")
    parser.add_argument("--workers", type=int, default=None, help="default: the number of cores")
    add_postgres_options(parser)
    args = parser.parse_args()
    with postgres_dsn(args) as dsn:
        results = anyio.run(main_async, args, dsn)
    if args.json:
        # SQLite alone keeps the original shape: the workloads at the top level.
        json.dump(results if dsn else results["sqlite"], sys.stdout, indent=2)
        print()
        return 0
    print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
