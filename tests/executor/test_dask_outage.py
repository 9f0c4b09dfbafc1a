"""A lost Dask scheduler, for real: a scheduler and a worker in processes of their own, killed and
started again on the same port while the service runs.

While the scheduler is gone the executor is unavailable (``/health`` degraded, ``/metrics``
``coinbt_executor_up 0``), tasks stay queued without a ``Started`` or a used attempt, the job that
was running is re-queued once; when a scheduler answers again (long after the Dask client gave up
on its own) work resumes without a restart.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest

from tests.api.helpers import asgi_client
from tests.system import system_factory, tiny, types_of, wait_status

pytest.importorskip("distributed", reason="Dask is missing: pip install coinbt[distributed]")

from coinbt.executor.dask import DaskExecutor, open_dask_executor

ENV = {
    **os.environ,
    # CLUSTER_CONFIG, for a cluster the service does not start itself (docs/distributed.md)
    "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0",
    "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.0",
}


SCHEDULER_UP = b"Scheduler at:"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def _process(*args: str, ready: bytes = b"") -> Iterator[subprocess.Popen[bytes]]:
    """A process group of its own (a worker's nanny starts a child): killed whole at the end.
    Its log is read (and drained) by a thread; ``ready``: a line of it to wait for first."""
    child = subprocess.Popen(
        [sys.executable, "-m", *args],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    seen = threading.Event()

    def drain() -> None:
        assert child.stderr is not None
        for line in child.stderr:
            if ready and ready in line:
                seen.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        if ready and not seen.wait(timeout=30):
            raise AssertionError(f"{args[0]} did not log {ready!r}")
        yield child
    finally:
        _kill(child)
        reader.join(timeout=30)
        assert child.stderr is not None
        child.stderr.close()


def _kill(child: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    child.wait(timeout=30)


def _scheduler(port: int) -> list[str]:
    return [
        "distributed.cli.dask_scheduler",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-dashboard",
        "--no-show",
    ]


def _worker(port: int) -> list[str]:
    return [
        "distributed.cli.dask_worker",
        f"tcp://127.0.0.1:{port}",
        "--nthreads",
        "1",
        "--nworkers",
        "1",
        "--no-dashboard",
        "--host",
        "127.0.0.1",
    ]


async def test_a_lost_scheduler_keeps_tasks_queued_and_work_resumes_when_it_returns(
    tmp_path: Path,
) -> None:
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    open_system = system_factory(tmp_path)
    with (
        _process(*_scheduler(port), ready=SCHEDULER_UP) as scheduler,
        _process(*_worker(port)) as worker,
    ):
        with anyio.fail_after(55):
            async with (
                open_system(
                    workers=1,
                    # the Dask client gives up after 2 s: the service must outlast that
                    executor=lambda n: open_dask_executor(address, 1, connect_timeout_s=2.0),
                ) as system,
                asgi_client(system) as http,
            ):
                executor = system.executor
                assert isinstance(executor, DaskExecutor)
                await executor.wait_for_workers(1)
                before = await system.submit(tiny(seed=1))
                await wait_status(system, before.task_id, "completed")

                # A run in progress when the scheduler and its worker die.
                long = tiny(seed=2, bars=3_000_000, strategy="buy_and_hold", params={})
                running = await system.submit(long)
                await executor.wait_running(running.task_id)
                _kill(scheduler)
                _kill(worker)
                await executor.wait_until(lambda: executor.unavailable is not None)
                await wait_status(system, running.task_id, "queued")  # lost: re-queued once

                waiting = await system.submit(tiny(seed=3))
                # The client gave up and the service's own tries fail, again and again ...
                await executor.wait_until(lambda: executor.failed_connects >= 1)
                health = (await http.get("/health")).json()
                assert (health["status"], health["executor"]) == ("degraded", "unavailable")
                assert "coinbt_executor_up 0" in (await http.get("/metrics")).text
                # ... and no task was started meanwhile: no Started, no attempt used.
                assert await types_of(system, waiting.task_id) == ["Queued"]
                assert await types_of(system, running.task_id) == ["Queued", "Started", "Queued"]
                assert (await system.task(running.task_id)).attempt == 2

                with _process(*_scheduler(port)), _process(*_worker(port)):
                    await executor.wait_until(lambda: executor.unavailable is None)
                    await executor.wait_for_workers(1)
                    for task in (waiting, running):
                        await wait_status(system, task.task_id, "completed", "failed")
                    types = await types_of(system, waiting.task_id)
                    assert types[:2] == ["Queued", "Started"]
                    assert types[-1] == "Completed"
                    assert types.count("Started") == 1
                    view = await system.task(running.task_id)
                    assert (view.status, view.attempt) == ("completed", 2)
                    assert executor.reconnects >= 1
                    health = (await http.get("/health")).json()
                    assert (health["status"], health["executor"]) == ("ok", "ok")
                    assert "coinbt_executor_up 1" in (await http.get("/metrics")).text
