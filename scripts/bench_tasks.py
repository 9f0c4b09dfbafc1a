#!/usr/bin/env python
"""Benchmark the service core: submit N backtests concurrently, time until all are completed.

    .venv/bin/python scripts/bench_tasks.py            # a table
    .venv/bin/python scripts/bench_tasks.py --json     # one JSON object

Every lifecycle event is durable (SQLite WAL, synchronous=FULL), read models are projected, and
artifacts stored, exactly as in the service. Workloads:
  tiny  : 1,000 sma_cross backtests on 300 synthetic bars
  100k  : 50 sma_cross backtests on 100,000 synthetic bars
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

from coinbt.events import DataSpec, SyntheticSpec, TaskSpec
from coinbt.runtime import Config, open_system


def spec(bars: int, seed: int) -> TaskSpec:
    return TaskSpec(
        strategy="sma_cross",
        params={"fast": 10, "slow": 30},
        data=DataSpec(synthetic=SyntheticSpec(bars=bars, seed=seed)),
    )


async def workload(tasks: int, bars: int, workers: int | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        config = Config(db=Path(tmp) / "bench.db", workers=workers, queue_capacity=tasks + 1)
        async with open_system(config) as system:
            start = time.perf_counter()
            async with anyio.create_task_group() as tg:
                for n in range(tasks):
                    tg.start_soon(system.submit, spec(bars, n + 1))
            submitted = time.perf_counter() - start
            await system.drain()
            elapsed = time.perf_counter() - start
            counts = await system.read.counts()
            events = await system.store.last_position()
            stats = system.store.stats
    assert counts["completed"] == tasks, counts
    return {
        "tasks": tasks,
        "bars": bars,
        "workers": system.config.workers or len(system.workers),
        "seconds": elapsed,
        "submit_seconds": submitted,
        "tasks_per_s": tasks / elapsed,
        "events": events,
        "events_per_s": events / elapsed,
        "transactions": stats["transactions"],
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "tiny": await workload(args.tiny, 300, args.workers),
        "100k": await workload(args.large, 100_000, args.workers),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--tiny", type=int, default=1000, help="tiny tasks (default 1000)")
    parser.add_argument("--large", type=int, default=50, help="100k-bar tasks (default 50)")
    parser.add_argument("--workers", type=int, default=None, help="default: the number of cores")
    args = parser.parse_args()
    results = anyio.run(main_async, args)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
        return 0
    print(f"{'workload':<8} {'tasks':>6} {'bars':>8} {'seconds':>8} {'tasks/s':>9} {'events/s':>9}")
    for name, r in results.items():
        print(
            f"{name:<8} {r['tasks']:>6} {r['bars']:>8,} {r['seconds']:>8.2f} "
            f"{r['tasks_per_s']:>9,.0f} {r['events_per_s']:>9,.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
