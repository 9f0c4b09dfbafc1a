#!/usr/bin/env python
"""coinbt against RQ on the same workload, in the same run: N tiny backtests until all completed.

    .venv/bin/python scripts/bench_rq.py            # a table
    .venv/bin/python scripts/bench_rq.py --json     # one JSON object

Both sides run the same work per task: ``coinbt.executor._child.execute`` (an sma_cross 10/30
run on 300 synthetic bars, its ledger, metrics and digest, its artifact files written to disk).

coinbt: the service in this process (SQLite, durable appends), started before the clock (its
worker processes up and warm), the N specs submitted as one batch
(``System.submit_batch``, DESIGN section 11), ``workers`` backtest processes, until every task is
completed (Queued, Started, Completed in the log, fsync per commit), projected into the read
models, its artifacts recorded in the outbox and moved into the artifact store. A worker runs a
claim of small tasks in one round trip to its process (``run_batch``: the same ``execute`` per
job). "cpu" is the service process (``time.process_time``) and the worker processes' whole lives
(``RUSAGE_CHILDREN`` once they are reaped: start-up imports included).

RQ: RQ 3 with Redis, installed by this script (``redis-server`` from Debian's packages if it is
missing; RQ in its own virtualenv under ``~/.cache/coinbt-bench/rq``). ``workers`` ``SimpleWorker``
processes (at nice 10, like coinbt's worker processes) are started and each given a warm-up job
first, so that, like coinbt's, they are up and have imported the engine when the clock starts.
Then the same N jobs are enqueued with ``enqueue_many`` by a client process (each runs
``execute``; its result, a ``JobResult``, is pickled into Redis), timed from the moment the
client began enqueuing (after its imports: coinbt's submit runs in a process already up) until
the last job ended (the latest ``ended_at`` RQ recorded). The workers are then killed: in burst
mode an RQ 3.0 worker with redis-py 8 lingers ~60 s after its last job. Redis runs with its
defaults minus persistence (no RDB, no AOF): RQ's queue is not durable here, coinbt's log is.
"cpu" is the enqueuing processes and the workers' whole lives (not redis-server).

``--no-rq`` runs coinbt alone; ``--profile FILE`` writes a cProfile of the service process.

Also the 10M-bar check: a real ``coinbt serve``, ``coinbt submit --synthetic 10000000 --wait``
(sma_cross 5/20): the events the task added, and how long after its Completed was recorded the
command returned.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parents[1]
VENV = Path.home() / ".cache" / "coinbt-bench" / "rq"


def ensure_redis() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    subprocess.run(["apt-get", "update", "-q"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "redis-server"],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    found = shutil.which("redis-server")
    if not found:
        raise SystemExit("redis-server is not installed and apt-get could not install it")
    return found


def ensure_rq_venv() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    probe = subprocess.run([str(python), "-c", "import rq, numpy, msgspec"], check=False)
    if probe.returncode != 0:
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "rq>=3,<4", "redis", "numpy", "msgspec"],
            check=True,
        )
    return python


# coinbt's worker processes run at nice 10 (coinbt.executor._child): RQ's workers get the same
# priority, so a host busy with other work slows both sides alike.
_NICE = ["nice", "-n", "10"] if shutil.which("nice") else []


def enqueue(
    url: str, queue: str, first: int, n: int, out: str, env: dict[str, str], python: Path
) -> tuple[datetime, float]:
    """Enqueue jobs ``first`` to ``first + n`` with ``enqueue_many`` from a client process;
    when it began (after its imports) and how long it took."""
    done = subprocess.run(
        [str(python), "-c", _ENQUEUE, url, queue, str(first), str(n), out],
        check=True, env=env, capture_output=True, text=True,
    )  # fmt: skip
    began, seconds = done.stdout.split()
    return datetime.fromisoformat(began), float(seconds)


def _wait_jobs(port: int, queue: str, n: int, procs: list[subprocess.Popen[bytes]]) -> None:
    """Wait until ``n`` jobs of ``queue`` finished or failed (polling Redis: a benchmark)."""
    while _zcard(port, f"rq:finished:{queue}") + _zcard(port, f"rq:failed:{queue}") < n:
        if all(p.poll() is not None for p in procs):
            raise SystemExit("every RQ worker exited before the jobs were done")
        time.sleep(0.02)


def _zcard(port: int, key: str) -> int:
    """ZCARD ``key`` on the Redis at ``port`` (a raw RESP request: no client in this venv)."""
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(f"*2\r\n$5\r\nZCARD\r\n${len(key)}\r\n{key}\r\n".encode())
        reply = conn.recv(64)
    return int(reply[1:].split(b"\r\n")[0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_ENQUEUE = """
import sys, time
from datetime import UTC, datetime
from redis import Redis
from rq import Queue
from coinbt.events import SyntheticSpec
from coinbt.executor.base import Job
url, queue, out = sys.argv[1], sys.argv[2], sys.argv[5]
first, n = int(sys.argv[3]), int(sys.argv[4])
q = Queue(queue, connection=Redis.from_url(url))
started_at, start = datetime.now(UTC), time.perf_counter()
jobs = [
    Queue.prepare_data(
        "coinbt.executor._child.execute",
        args=(Job(task_id=f"t{i}", attempt=1, strategy="sma_cross",
                  params={"fast": 10, "slow": 30}, cash=10000.0, fee_bps=10.0,
                  slippage_bps=0.0, fill="next_open", symbol="SYNTH",
                  out_dir=f"{out}/t{i}", synthetic=SyntheticSpec(bars=300, seed=i + 1)),),
        result_ttl=600,
    )
    for i in range(first, first + n)
]
q.enqueue_many(jobs)
print(started_at.isoformat(), time.perf_counter() - start)
"""


_FINISHED = """
import sys
from datetime import UTC
from redis import Redis
from rq import Queue
from rq.job import Job
connection = Redis.from_url(sys.argv[1])
q = Queue("bench", connection=connection)
jobs = Job.fetch_many(q.finished_job_registry.get_job_ids(), connection=connection)
last = max(job.ended_at for job in jobs if job is not None)
print(q.finished_job_registry.count, q.failed_job_registry.count,
      last.replace(tzinfo=last.tzinfo or UTC).isoformat())
"""


def run_rq(tasks: int, workers: int) -> dict[str, Any]:
    redis_server = ensure_redis()
    python = ensure_rq_venv()
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        redis = subprocess.Popen(
            [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", tmp],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            ping = [str(python), "-c", f"import redis; redis.Redis.from_url({url!r}).ping()"]
            for _ in range(100):
                if subprocess.run(ping, check=False, capture_output=True).returncode == 0:
                    break
                time.sleep(0.05)
            children = _children_cpu()
            procs = [
                subprocess.Popen(
                    [
                        *_NICE,
                        str(VENV / "bin" / "rq"),
                        "worker",
                        "--url",
                        url,
                        "--worker-class",
                        "rq.SimpleWorker",
                        "--quiet",
                        "warm",
                        "bench",
                    ],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for _ in range(workers)
            ]
            # Warm, like coinbt's worker processes when its clock starts: each worker has
            # started and run one job (importing the engine) before the timed batch.
            enqueue(url, "warm", tasks, workers, tmp, env, python)
            _wait_jobs(port, "warm", workers, procs)
            started_at, enqueued = enqueue(url, "bench", 0, tasks, tmp, env, python)
            _wait_jobs(port, "bench", tasks, procs)
            # Done: stop them. (Burst mode is no help: an RQ 3.0 worker with redis-py 8 lingers
            # ~60 s after its last job, in its pubsub thread's sleep.)
            for p in procs:
                p.kill()
                p.wait()
            cpu = _children_cpu() - children  # the enqueuing processes and the workers
            check = subprocess.run([str(python), "-c", _FINISHED, url], check=True,
                                   capture_output=True, text=True)  # fmt: skip
            finished, failed, last = check.stdout.split()
            elapsed = (datetime.fromisoformat(last) - started_at).total_seconds()
        finally:
            redis.terminate()
            redis.wait()
    return {
        "tasks": tasks,
        "workers": workers,
        "seconds": elapsed,
        "enqueue_seconds": enqueued,
        "cpu_seconds": cpu,
        "tasks_per_s": tasks / elapsed,
        "finished": int(finished),
        "failed": int(failed),
    }


async def run_coinbt(tasks: int, workers: int, profile: str | None = None) -> dict[str, Any]:
    from coinbt.events import DataSpec, SyntheticSpec, TaskSpec
    from coinbt.runtime import Config, open_system

    specs = [
        TaskSpec(
            strategy="sma_cross",
            params={"fast": 10, "slow": 30},
            data=DataSpec(synthetic=SyntheticSpec(bars=300, seed=n + 1)),
        )
        for n in range(tasks)
    ]
    profiler = cProfile.Profile() if profile else None
    with tempfile.TemporaryDirectory() as tmp:
        config = Config(db=Path(tmp) / "bench.db", workers=workers, queue_capacity=tasks + 1)
        children = _children_cpu()
        async with open_system(config) as system:
            first = await system.store.last_position()
            if profiler is not None:
                profiler.enable()
            start, cpu = time.perf_counter(), time.process_time()
            await system.submit_batch(specs)
            submitted = time.perf_counter() - start
            await system.drain()
            elapsed = time.perf_counter() - start
            cpu = time.process_time() - cpu
            if profiler is not None:
                profiler.disable()
            counts = await system.read.counts()
            events = await system.store.last_position() - first
        # The worker processes have exited and been reaped: their whole lives (start-up too).
        workers_cpu = _children_cpu() - children
    assert counts["completed"] == tasks, counts
    if profiler is not None:
        profiler.dump_stats(profile)
    return {
        "tasks": tasks,
        "workers": workers,
        "seconds": elapsed,
        "submit_seconds": submitted,
        "service_cpu_seconds": cpu,
        "workers_cpu_seconds": workers_cpu,
        "tasks_per_s": tasks / elapsed,
        "events": events,
    }


def _children_cpu() -> float:
    """CPU seconds (user + system) of this process's children that have been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def large_run(bars: int) -> dict[str, Any]:
    """A real server, ``coinbt submit --wait`` of one sma_cross 5/20 run on ``bars`` bars."""
    import httpx

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        server = await anyio.open_process(
            [sys.executable, "-m", "coinbt", "serve", "--db", f"{tmp}/c.db", "--port", "0",
             "--workers", "1", "--log-level", "warning"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        try:
            assert server.stdout is not None
            line = b""
            while b"serving on" not in line:
                line += await server.stdout.receive()
            url = line.decode().split("serving on ")[1].split()[0].rstrip("/")
            start = time.perf_counter()
            done = await anyio.run_process(
                [sys.executable, "-m", "coinbt", "submit", "--url", url, "--synthetic",
                 f"{bars}:1", "--strategy", "sma_cross", "-p", "fast=5", "-p", "slow=20",
                 "--wait", "--json"],
                check=True, env=env,
            )  # fmt: skip
            returned = datetime.now(UTC)
            wall = time.perf_counter() - start
            lines = [x for x in done.stdout.decode().splitlines() if x.strip().startswith("{")]
            task = json.loads(lines[-1])
            async with httpx.AsyncClient(base_url=url) as http:
                events = (await http.get(f"/backtests/{task['task_id']}/events")).json()["events"]
        finally:
            server.terminate()
            await server.wait()
    completed = datetime.fromisoformat(events[-1]["recorded_at"].replace("Z", "+00:00"))
    return {
        "bars": bars,
        "status": task["status"],
        "events": len(events),
        "types": [e["type"] for e in events],
        "num_fills": task["num_fills"],
        "submit_wait_seconds": wall,
        "returned_after_completed_s": (returned - completed).total_seconds(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--large", type=int, default=10_000_000, help="bars; 0 to skip")
    parser.add_argument("--no-rq", action="store_true", help="coinbt alone (no ratio)")
    parser.add_argument(
        "--profile", metavar="FILE", help="cProfile the coinbt service process into FILE"
    )
    args = parser.parse_args()
    results: dict[str, Any] = {
        "coinbt": anyio.run(run_coinbt, args.tasks, args.workers, args.profile),
    }
    if not args.no_rq:
        results["rq"] = run_rq(args.tasks, args.workers)
        results["ratio"] = results["coinbt"]["tasks_per_s"] / results["rq"]["tasks_per_s"]
    if args.large:
        results["large"] = anyio.run(large_run, args.large)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    c = results["coinbt"]
    print(f"{'system':<8} {'tasks':>6} {'workers':>7} {'seconds':>8} {'tasks/s':>8}  notes")
    print(
        f"{'coinbt':<8} {c['tasks']:>6} {c['workers']:>7} {c['seconds']:>8.2f} "
        f"{c['tasks_per_s']:>8,.0f}  one batch submit in {c['submit_seconds']:.2f} s; "
        f"{c['events']:,} events; cpu: service {c['service_cpu_seconds']:.2f} s, "
        f"workers {c['workers_cpu_seconds']:.2f} s"
    )
    if "rq" in results:
        r = results["rq"]
        print(
            f"{'rq':<8} {r['tasks']:>6} {r['workers']:>7} {r['seconds']:>8.2f} "
            f"{r['tasks_per_s']:>8,.0f}  enqueued in {r['enqueue_seconds']:.2f} s; "
            f"{r['finished']} finished, {r['failed']} failed; "
            f"cpu: enqueue + workers {r['cpu_seconds']:.2f} s"
        )
        print(f"coinbt / rq: {results['ratio']:.2f}x")
    if args.large:
        g = results["large"]
        print(
            f"{g['bars']:,}-bar sma_cross 5/20: {g['status']}, {g['events']} events "
            f"({', '.join(g['types'])}), {g['num_fills']:,} fills in the artifact; "
            f"submit --wait took {g['submit_wait_seconds']:.2f} s and returned "
            f"{g['returned_after_completed_s']:.3f} s after Completed was recorded"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
