#!/usr/bin/env python
"""Benchmark GET /health latency while many event streams are open on a long log.

    .venv/bin/python scripts/bench_streams.py                  # a table
    .venv/bin/python scripts/bench_streams.py --json           # one JSON object

A `coinbt serve --workers 0` process (its own process, real uvicorn) gets a log of EVENTS events
(queued tasks, submitted in batches of 1,000), then three runs, each timing HEALTH sequential
`GET /health` requests:
  none      : no stream open
  at-end    : STREAMS streams opened without `after` (they start at the end: nothing to send)
  catch-up  : STREAMS streams opened with `after=0`: each replays the whole log, read as fast as
              this process can (at most 4 pages of 500 events are read at once, and every stream
              yields between pages)
Streams are read by this process (httpx, asyncio); /health is timed from a thread of it, on the
same cores as the server.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx

SSE = {"Accept": "text/event-stream"}


def _spec(seed: int) -> dict[str, Any]:
    return {
        "strategy": "sma_cross",
        "params": {"fast": 5, "slow": 20},
        "data": {"synthetic": {"bars": 300, "seed": seed}},
    }


def _start(db: Path) -> tuple[subprocess.Popen[str], str]:
    child = subprocess.Popen(
        [
            *(sys.executable, "-m", "coinbt", "serve", "--db", str(db), "--port", "0"),
            *("--workers", "0", "--log-level", "warning", "--queue-capacity", "10000000"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    return child, line.split()[4].rstrip("/")


async def _fill(url: str, events: int) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        done = 0
        while done < events:
            batch = [_spec(done + i) for i in range(min(1000, events - done))]
            response = await http.post("/backtests", json=batch)
            response.raise_for_status()
            done += len(batch)


def _health_sync(url: str, count: int) -> list[float]:
    times = []
    with httpx.Client(base_url=url, timeout=120) as http:
        for _ in range(count):
            start = time.perf_counter()
            http.get("/health").raise_for_status()
            times.append(time.perf_counter() - start)
    return times


async def _health(url: str, count: int) -> list[float]:
    """Timed from a thread of its own: the streams' reading in this loop does not delay it."""
    return await anyio.to_thread.run_sync(_health_sync, url, count)


async def _with_streams(url: str, streams: int, after: str | None, health: int) -> list[float]:
    received = [0]
    limits = httpx.Limits(max_connections=streams + 10)
    async with httpx.AsyncClient(base_url=url, timeout=None, limits=limits) as http:
        opened = anyio.Event()
        count = [0]

        async def stream() -> None:
            path = "/events" if after is None else f"/events?after={after}"
            async with http.stream("GET", path, headers=SSE) as response:
                count[0] += 1
                if count[0] == streams:
                    opened.set()
                async for chunk in response.aiter_bytes():
                    received[0] += len(chunk)

        async with anyio.create_task_group() as tg:
            for _ in range(streams):
                tg.start_soon(stream)
            await opened.wait()
            times = await _health(url, health)
            tg.cancel_scope.cancel()
    return times


def _row(name: str, times: list[float]) -> dict[str, Any]:
    ordered = sorted(times)
    return {
        "run": name,
        "requests": len(times),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


async def run_all(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        child, url = _start(Path(tmp) / "bench.db")
        try:
            await _fill(url, args.events)
            rows = [
                _row("none", await _health(url, args.health)),
                _row("at-end", await _with_streams(url, args.streams, None, args.health)),
                _row("catch-up", await _with_streams(url, args.streams, "0", args.health)),
            ]
        finally:
            child.terminate()
            child.wait(timeout=60)
    return {"events": args.events, "streams": args.streams, "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--events", type=int, default=50_000, help="log length (50000)")
    parser.add_argument("--streams", type=int, default=100, help="streams open (100, the limit)")
    parser.add_argument("--health", type=int, default=50, help="GET /health per run (50)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    result = anyio.run(run_all, args)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"GET /health with {args.streams} event streams on a log of {args.events:,} events")
    print(f"{'run':<10} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for row in result["rows"]:
        print(
            f"{row['run']:<10} {row['requests']:>8} {row['p50_ms']:>8} "
            f"{row['p99_ms']:>8} {row['max_ms']:>8}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
