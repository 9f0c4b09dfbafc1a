#!/usr/bin/env python
"""Benchmark the audit commands on a realistic log: replay, replay --verify, audit verify.

    .venv/bin/python scripts/bench_audit.py                 # a table: 50,000 tasks, 650,000 events
    .venv/bin/python scripts/bench_audit.py --tasks 200000  # a bigger log
    .venv/bin/python scripts/bench_audit.py --json          # one JSON object

The log is built on a fresh SQLite file (durable appends, group commit): each task is Queued,
Started, filled 10 times (buy, sell, ...) and Completed, 13 events per task, as the service writes
them. Then, in this order, each timed alone, as the CLI runs them:
  audit verify   : walk the whole hash chain (coinbt audit verify)
  replay         : fold the whole log into fresh read models and swap them in (coinbt replay)
  replay verify  : fold up to the checkpoint and compare with the live read models row by row
                   (coinbt replay --verify)
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

from coinbt.backends.sqlite import open_sqlite_store, verify_file
from coinbt.backends.sqlite.rebuild import rebuild_read_models, verify_read_models
from coinbt.events import (
    Completed,
    DataSpec,
    Filled,
    Queued,
    Started,
    SyntheticSpec,
    TaskEvent,
    TaskSpec,
)

FILLS = 10


def task_events(n: int) -> list[TaskEvent]:
    spec = TaskSpec(
        strategy="sma_cross",
        params={"fast": 10, "slow": 30},
        data=DataSpec(synthetic=SyntheticSpec(bars=100_000, seed=n + 1)),
    )
    fills: list[TaskEvent] = [
        Filled(
            bar=10 * i + 1,
            ts=1_700_000_000_000 + 60_000 * i,
            side="buy" if i % 2 == 0 else "sell",
            qty=0.5,
            price=100.0 + i,
            fee=0.05,
            symbol="SYNTH",
        )
        for i in range(FILLS)
    ]
    completed = Completed(
        metrics={"total_return": 0.01, "sharpe": 1.2, "max_drawdown": -0.05, "trades": FILLS // 2},
        result_digest=f"{n:064x}",
        symbol="SYNTH",
        last_close=110.0,
        final_equity=10_100.0,
    )
    return [Queued(spec=spec), Started(worker_id="w1", attempt=1), *fills, completed]


async def build(db: Path, tasks: int, appenders: int = 64) -> int:
    async with open_sqlite_store(db) as store:

        async def appender(first: int) -> None:
            for n in range(first, tasks, appenders):
                await store.append(f"task-{n:08d}", task_events(n), 0)

        async with anyio.create_task_group() as tg:
            for first in range(appenders):
                tg.start_soon(appender, first)
        return await store.last_position()


def timed(fn: Any, *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - start


def check(holds: bool, report: object) -> None:
    """Every timed command must also have done its job, or its time means nothing."""
    if not holds:
        raise SystemExit(f"bench_audit: unexpected result: {report}")


def run(tasks: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="coinbt-bench-") as tmp:
        db = Path(tmp) / "audit.db"
        events, build_s = timed(anyio.run, build, db, tasks)
        verified, verify_s = timed(verify_file, db)
        check(verified.ok and verified.checked == events, verified)
        rebuilt, replay_s = timed(rebuild_read_models, db)
        check(rebuilt.events == events and rebuilt.tasks == tasks, rebuilt)
        checked, check_s = timed(verify_read_models, db)
        check(checked.ok and checked.events == events, checked)
    return {
        "tasks": tasks,
        "events": events,
        "build": {"seconds": build_s, "events_per_s": events / build_s},
        "audit verify": {"seconds": verify_s, "events_per_s": events / verify_s},
        "replay": {"seconds": replay_s, "events_per_s": events / replay_s},
        "replay verify": {"seconds": check_s, "events_per_s": events / check_s},
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--tasks", type=int, default=50_000, help="tasks in the log (13 events each)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.tasks < 1:
        parser.error("--tasks must be at least 1")
    results = run(args.tasks)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
        return 0
    print(f"a log of {results['tasks']:,} tasks, {results['events']:,} events (SQLite)")
    print(f"{'workload':<16} {'seconds':>8} {'events/s':>11}")
    for name in ("build", "audit verify", "replay", "replay verify"):
        r = results[name]
        print(f"{name:<16} {r['seconds']:>8.2f} {r['events_per_s']:>11,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
