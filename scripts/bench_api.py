#!/usr/bin/env python
"""Benchmark the HTTP API: latency and throughput of GET /backtests/{id}, idle and under load.

    .venv/bin/python scripts/bench_api.py            # a table
    .venv/bin/python scripts/bench_api.py --json     # one JSON object

Three runs, each with C concurrent clients (default 8) issuing requests back to back for S seconds
against a server started as its own process (`coinbt serve`, uvicorn, 2 workers):
  bare    : a bare Starlette endpoint returning a small JSON object, same uvicorn settings
            (the ceiling: what the framework and server cost)
  idle    : GET /backtests/{id} of a completed task, nothing else running
  loaded  : the same while both workers run heavy backtests (sma_cross 200/1000 on 5M synthetic
            bars, several queued so both stay busy the whole time)
The load generator is this process (httpx, asyncio), on the same 2 cores as the server.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.streams.buffered
import httpx

BARE_APP = textwrap.dedent(
    """
    import sys, uvicorn
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    BODY = b'{"task_id":"t","status":"completed","progress":1.0}'

    async def one(request):
        return Response(BODY, media_type="application/json")

    app = Starlette(routes=[Route("/backtests/{task_id}", one)])
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                access_log=False, lifespan="off")
    """
)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_coinbt(db: Path, workers: int) -> tuple[subprocess.Popen[str], str]:
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "coinbt",
            "serve",
            "--db",
            str(db),
            "--port",
            "0",
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    if "serving on" not in line:
        raise SystemExit(f"coinbt serve did not start: {line!r}")
    return child, line.split()[4].rstrip("/")


def _start_bare() -> tuple[subprocess.Popen[str], str]:
    port = _free_port()
    child = subprocess.Popen([sys.executable, "-c", BARE_APP, str(port)], text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/backtests/t", timeout=1)
            return child, url
        except httpx.TransportError:
            time.sleep(0.05)
    raise SystemExit("the bare Starlette server did not start")


async def _load(url: str, path: str, clients: int, seconds: float) -> dict[str, Any]:
    """``clients`` keep-alive connections, each issuing GETs back to back.

    A minimal HTTP/1.1 client on raw streams, not httpx: the load generator shares the machine's
    two cores with the server, and httpx costs ten times more CPU per request.
    """
    host, port = url.removeprefix("http://").split(":")
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: keep-alive\r\n\r\n".encode()
    latencies: list[float] = []
    errors = 0

    async def get(
        stream: anyio.abc.SocketStream, buffered: anyio.streams.buffered.BufferedByteReceiveStream
    ) -> int:
        await stream.send(request)
        head = await buffered.receive_until(b"\r\n\r\n", 65536)
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await buffered.receive_exactly(length)
        return status

    async def client(stop_at: float) -> None:
        nonlocal errors
        async with await anyio.connect_tcp(host, int(port)) as stream:
            buffered = anyio.streams.buffered.BufferedByteReceiveStream(stream)
            for _ in range(20):  # warm-up
                await get(stream, buffered)
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                status = await get(stream, buffered)
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    errors += 1

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(clients):
            tg.start_soon(client, started + seconds)
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "max_ms": latencies[-1] * 1000,
    }


HEAVY = {
    "strategy": "sma_cross",
    "params": {"fast": 200, "slow": 1000},
    "data": {"synthetic": {"bars": 5_000_000, "seed": 11}},
}
TINY = {
    "strategy": "sma_cross",
    "params": {"fast": 5, "slow": 20},
    "data": {"synthetic": {"bars": 300, "seed": 1}},
}


def _wait_status(http: httpx.Client, task_id: str, statuses: tuple[str, ...]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if http.get(f"/backtests/{task_id}").json()["status"] in statuses:
            return
        time.sleep(0.05)
    raise SystemExit(f"task {task_id} never reached {statuses}")


def measure(url: str, path: str, args: argparse.Namespace) -> dict[str, Any]:
    return anyio.run(_load, url, path, args.clients, args.seconds)


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    bare, bare_url = _start_bare()
    try:
        results["bare"] = measure(bare_url, "/backtests/t", args)
    finally:
        bare.terminate()
        bare.wait()
    with tempfile.TemporaryDirectory() as tmp:
        server, url = _start_coinbt(Path(tmp) / "bench.db", args.workers)
        try:
            with httpx.Client(base_url=url, timeout=30) as http:
                task_id = http.post("/backtests", json=TINY).json()["task_id"]
                _wait_status(http, task_id, ("completed",))
                path = f"/backtests/{task_id}"
                results["idle"] = measure(url, path, args)
                heavy = [
                    http.post("/backtests", json=HEAVY).json()["task_id"]
                    for _ in range(args.workers * 4)
                ]
                _wait_status(http, heavy[args.workers - 1], ("running",))
                running = http.get("/backtests?status=running").json()["tasks"]
                results["loaded"] = measure(url, path, args)
                after = http.get("/backtests?status=running").json()["tasks"]
                results["loaded"]["running_before"] = len(running)
                results["loaded"]["running_after"] = len(after)
                for task in heavy:
                    http.delete(f"/backtests/{task}")
        finally:
            server.terminate()
            server.wait(timeout=60)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    results = run_all(args)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
        return 0
    print(f"{'run':<8} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, r in results.items():
        print(
            f"{name:<8} {r['requests']:>9,} {r['rps']:>8,.0f} {r['p50_ms']:>8.2f} "
            f"{r['p99_ms']:>8.2f} {r['max_ms']:>8.1f}"
        )
    loaded, idle, bare = results["loaded"], results["idle"], results["bare"]
    print(
        f"\nloaded p99 / idle p99 = {loaded['p99_ms'] / idle['p99_ms']:.2f}x;  "
        f"idle throughput / bare = {idle['rps'] / bare['rps']:.2f};  "
        f"workers running during the loaded run: {loaded['running_before']} -> "
        f"{loaded['running_after']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
