#!/usr/bin/env python
"""Benchmark `coinbt migrate artifacts`: moving stored artifacts from the local store to S3.

    .venv/bin/python scripts/bench_migrate.py                  # a table
    .venv/bin/python scripts/bench_migrate.py --tasks 1000     # more artifacts (2 per task)
    .venv/bin/python scripts/bench_migrate.py --json           # one JSON object

The artifacts come from real runs: the service runs --tasks tiny backtests on a fresh SQLite file
(each stores its equity curve and fills). The S3 endpoint is moto's server on loopback, reached
directly ("loopback") and through a proxy that delays every response by --latency-ms ("distant",
as a real object store in another place would be). Each move starts from a copy of the same data
directory and is timed alone, at each --concurrency.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).parents[1]))

from coinbt.artifacts.migrate import move_artifacts
from coinbt.events import DataSpec, SyntheticSpec, TaskSpec
from coinbt.runtime import Config, open_system
from tests.artifacts.s3server import MotoServer, admin_client, new_bucket, s3_options


class DelayProxy:
    """A TCP proxy on a free loopback port that holds every chunk the server sends back for
    ``latency_s``, as an object store in another place would (one thread pair per connection)."""

    def __init__(self, target_port: int, latency_s: float) -> None:
        self._target = ("127.0.0.1", target_port)
        self._latency_s = latency_s
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            upstream = socket.create_connection(self._target)
            threading.Thread(target=self._pump, args=(client, upstream, 0.0), daemon=True).start()
            threading.Thread(
                target=self._pump, args=(upstream, client, self._latency_s), daemon=True
            ).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, latency_s: float) -> None:
        try:
            while data := source.recv(1 << 16):
                if latency_s:
                    time.sleep(latency_s)  # the simulated distance, not a wait for a condition
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def close(self) -> None:
        self._listener.close()


async def make_artifacts(data_dir: Path, tasks: int) -> None:
    config = Config(db=data_dir / "coinbt.db", data_dir=data_dir, queue_capacity=tasks + 1)
    async with open_system(config) as system:
        async with anyio.create_task_group() as tg:
            for n in range(tasks):
                spec = TaskSpec(
                    strategy="sma_cross",
                    params={"fast": 5, "slow": 20},
                    data=DataSpec(synthetic=SyntheticSpec(bars=300, seed=n + 1)),
                )
                tg.start_soon(system.submit, spec)
        await system.drain()


def timed_move(source: Path, scratch: Path, endpoint: str, concurrency: int) -> dict[str, Any]:
    if scratch.exists():
        shutil.rmtree(scratch)
    shutil.copytree(source, scratch)
    bucket = new_bucket(endpoint)
    options = s3_options(endpoint, read_timeout=60.0)
    start = time.perf_counter()
    report = anyio.run(
        lambda: move_artifacts(
            scratch / "coinbt.db", f"s3://{bucket}", s3=options, concurrency=concurrency
        )
    )
    seconds = time.perf_counter() - start
    if not report.ok or report.moved == 0:
        raise SystemExit(f"bench_migrate: the move did not do its job: {report}")
    stored = admin_client(endpoint).list_objects_v2(Bucket=bucket)["KeyCount"]
    if stored != report.moved:
        raise SystemExit(f"bench_migrate: {report.moved} moved but {stored} in the bucket")
    return {"artifacts": report.moved, "seconds": seconds, "per_s": report.moved / seconds}


def run(tasks: int, concurrencies: list[int], latency_ms: float) -> dict[str, Any]:
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
    )
    moto = MotoServer()
    moto.start()
    results: dict[str, Any] = {"tasks": tasks, "latency_ms": latency_ms, "runs": []}
    try:
        with tempfile.TemporaryDirectory(prefix="coinbt-bench-") as tmp:
            source = Path(tmp) / "data"
            anyio.run(make_artifacts, source, tasks)
            proxy = DelayProxy(moto.port, latency_ms / 1000)
            try:
                for where, endpoint in (("loopback", moto.url), ("distant", proxy.url)):
                    for concurrency in concurrencies:
                        run_ = timed_move(source, Path(tmp) / "scratch", endpoint, concurrency)
                        results["runs"].append(
                            {"endpoint": where, "concurrency": concurrency, **run_}
                        )
            finally:
                proxy.close()
    finally:
        moto.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=300, help="tiny runs (2 artifacts each)")
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[1, 8, 32],
        help="artifacts in flight (default: 1 8 32)",
    )
    parser.add_argument(
        "--latency-ms", type=float, default=20.0, help="the distant endpoint's delay (20)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.tasks < 1 or min(args.concurrency) < 1 or args.latency_ms < 0:
        parser.error("--tasks and --concurrency must be at least 1, --latency-ms at least 0")
    results = run(args.tasks, args.concurrency, args.latency_ms)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
        return 0
    print(
        f"moving the artifacts of {results['tasks']:,} runs to S3 (moto); "
        f"distant = {results['latency_ms']:g} ms added per response"
    )
    print(f"{'endpoint':<9} {'concurrency':>11} {'artifacts':>9} {'seconds':>8} {'per s':>8}")
    for r in results["runs"]:
        print(
            f"{r['endpoint']:<9} {r['concurrency']:>11} {r['artifacts']:>9,} "
            f"{r['seconds']:>8.2f} {r['per_s']:>8,.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
