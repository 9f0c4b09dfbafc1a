#!/usr/bin/env python
"""Benchmark the event store: durable appends (group commit) and decoded replay, in events/s.

    .venv/bin/python scripts/bench_store.py            # a table
    .venv/bin/python scripts/bench_store.py --json     # one JSON object
    .venv/bin/python scripts/bench_store.py --postgres # also on a temporary PostgreSQL server
    .venv/bin/python scripts/bench_store.py --db postgresql://user@host/empty_db

Workloads (on a fresh SQLite file in a temporary directory, synchronous=FULL; with --postgres or
--db, the same again on PostgreSQL, synchronous_commit=on; --postgres starts a throwaway server
with PostgreSQL's durable defaults (fsync on) like the tests do, --db needs an empty database):
  concurrent-1   : 1,000 concurrent appenders, each appending single events to its own stream
  serial-1       : one appender, single-event appends (what no group commit would give)
  batch-100      : one appender, 100-event appends
  replay-decoded : read the whole log back as typed events (read_all pages), events/s
  verify         : walk the whole hash chain, events/s

Each row also gives this process's CPU time per event (all its threads; a PostgreSQL server's
work is not in it): on a shared host the wall-clock rate depends on who else runs, the CPU
cost much less.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import anyio
from _postgres_option import add_postgres_options, postgres_dsn

from coinbt.backends.postgres import open_postgres_store
from coinbt.backends.sqlite import open_sqlite_store
from coinbt.events import Cancelled, DataSpec, Queued, SyntheticSpec, TaskEvent, TaskSpec

OpenStore = Callable[[], AbstractAsyncContextManager[Any]]

SPEC = TaskSpec(
    strategy="sma_cross",
    params={"fast": 10, "slow": 30},
    data=DataSpec(synthetic=SyntheticSpec(bars=100_000, seed=1)),
)


def _event(n: int) -> TaskEvent:
    return Queued(spec=SPEC, attempt=1) if n % 2 == 0 else Cancelled(reason=f"reason {n}")


async def concurrent_single(
    open_store: OpenStore, appenders: int, per_appender: int
) -> dict[str, Any]:
    async with open_store() as store:
        start, cpu = time.perf_counter(), time.process_time()

        async def appender(worker: int) -> None:
            for n in range(per_appender):
                await store.append(f"c{worker}", [_event(n)], n)

        async with anyio.create_task_group() as tg:
            for worker in range(appenders):
                tg.start_soon(appender, worker)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        stats = store.stats
    events = appenders * per_appender
    return {
        "events": events,
        "seconds": elapsed,
        "events_per_s": events / elapsed,
        "cpu_us_per_event": cpu / events * 1e6,
        "transactions": stats["transactions"],
        "events_per_transaction": events / stats["transactions"],
    }


async def serial(open_store: OpenStore, appends: int, size: int) -> dict[str, Any]:
    async with open_store() as store:
        start, cpu = time.perf_counter(), time.process_time()
        for n in range(appends):
            await store.append(f"s{size}-{n}", [_event(i) for i in range(size)], 0)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    events = appends * size
    return {
        "events": events,
        "seconds": elapsed,
        "events_per_s": events / elapsed,
        "cpu_us_per_event": cpu / events * 1e6,
        "latency_ms": elapsed / appends * 1000,
    }


async def replay(open_store: OpenStore) -> dict[str, Any]:
    async with open_store() as store:
        timings, cpu_times = [], []
        count = 0
        for _ in range(3):
            start, cpu = time.perf_counter(), time.process_time()
            count, after = 0, 0
            while page := await store.read_all(after, 10_000):
                count += len(page)
                after = page[-1].position
            timings.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu)
        elapsed = statistics.median(timings)
        start = time.perf_counter()
        report = await store.verify()
        verify_s = time.perf_counter() - start
    assert report.ok, report
    return {
        "events": count,
        "seconds": elapsed,
        "events_per_s": count / elapsed,
        "cpu_us_per_event": statistics.median(cpu_times) / count * 1e6,
        "verify_events_per_s": report.checked / verify_s,
    }


async def workloads(open_store: OpenStore, args: argparse.Namespace) -> dict[str, Any]:
    async with open_store() as store:
        if await store.last_position():
            raise SystemExit("the benchmark needs an empty log (a new database for --db)")
    results = {
        "concurrent-1": await concurrent_single(open_store, args.appenders, args.per_appender),
        "serial-1": await serial(open_store, args.serial, 1),
        "batch-100": await serial(open_store, args.batches, 100),
    }
    results["replay-decoded"] = await replay(open_store)
    return results


async def main_async(args: argparse.Namespace, dsn: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        results = {"sqlite": await workloads(lambda: open_sqlite_store(path), args)}
    if dsn is not None:
        results["postgresql"] = await workloads(lambda: open_postgres_store(dsn), args)
    return results


def print_table(results: dict[str, dict[str, Any]]) -> None:
    print(
        f"{'store':<11} {'workload':<16} {'events':>9} {'seconds':>8} {'events/s':>11}"
        f" {'cpu µs/event':>12}  notes"
    )
    for store, workloads in results.items():
        for name, r in workloads.items():
            notes = ""
            if "events_per_transaction" in r:
                notes = f"{r['events_per_transaction']:.0f} events/transaction"
            elif "latency_ms" in r:
                notes = f"{r['latency_ms']:.2f} ms/append"
            elif "verify_events_per_s" in r:
                notes = f"verify {r['verify_events_per_s']:,.0f} events/s"
            rate = f"{r['events_per_s']:>11,.0f} {r['cpu_us_per_event']:>12.2f}"
            print(f"{store:<11} {name:<16} {r['events']:>9,} {r['seconds']:>8.2f} {rate}  {notes}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--appenders", type=int, default=1000)
    parser.add_argument("--per-appender", type=int, default=100)
    parser.add_argument("--serial", type=int, default=500)
    parser.add_argument("--batches", type=int, default=1000)
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
