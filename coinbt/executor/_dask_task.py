"""What the Dask executor runs on the cluster: a job or a call in a worker, and the kill in a nanny.

A task tells the client it started (worker address and process id) and how far it is, as
structured events on the client's topic (``Worker.log_event``: worker -> scheduler -> client, in
order on one stream). Failures of the job come back as values (``["error", type, message]``), so
a failed backtest never looks like a Dask failure and no exception class has to be unpickled on
the client.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
from distributed import get_worker

from coinbt.errors import CoinbtError
from coinbt.executor._calls import invoke
from coinbt.executor._child import PROGRESS_EVERY_S, execute
from coinbt.executor.base import Job

__all__ = ("kill_if_running", "kill_worker_process", "run_call", "run_job", "worker_pid")

_encoder = msgspec.msgpack.Encoder()
_job_decoder = msgspec.msgpack.Decoder(Job)
_thread = threading.local()


class _Reporter:
    """Sends ``started`` once, then progress at most every ``PROGRESS_EVERY_S``."""

    def __init__(self, topic: str, key: str) -> None:
        self._worker = get_worker()
        self._topic = topic
        self._key = key
        self._last = time.monotonic()

    def started(self) -> None:
        self._worker.log_event(
            self._topic,
            {
                "kind": "started",
                "key": self._key,
                "worker": self._worker.address,
                "pid": os.getpid(),
            },
        )

    def __call__(self, fraction: float) -> None:
        now = time.monotonic()
        if fraction >= 1.0 or now - self._last < PROGRESS_EVERY_S:
            return  # the result itself says 100 %
        self._last = now
        self._worker.log_event(
            self._topic, {"kind": "progress", "key": self._key, "fraction": float(fraction)}
        )


def _lower_priority(nice: bool) -> None:
    """On the service's own machine (a local cluster), run backtests at nice 10 like the local
    executor does. Linux sets the nice value per thread: once per executor thread."""
    if nice and not getattr(_thread, "niced", False):
        _thread.niced = True
        try:
            os.nice(10)
        except (OSError, AttributeError):
            pass


def _failure(e: Exception) -> list[Any]:
    if isinstance(e, CoinbtError):
        return ["error", e.code, str(e)]
    return ["error", type(e).__name__, str(e) or repr(e)]


def run_job(topic: str, key: str, nice: bool, job_bytes: bytes, transfer: bool) -> list[Any]:
    """Run one backtest: ``["done", JobResult (msgpack), files]`` or ``["error", type, message]``.

    With ``transfer``, the artifact files are written to the worker's scratch directory and come
    back as ``files``, ``{name: (suffix, bytes)}``: the service writes each to
    ``<out_dir><suffix>``. Otherwise they are written at the job's ``out_dir``, which must then be
    a directory shared with the service.
    """
    reporter = _Reporter(topic, key)
    reporter.started()
    _lower_priority(nice)
    job = _job_decoder.decode(job_bytes)
    if transfer:
        scratch = Path(get_worker().local_directory) / "coinbt"
        scratch.mkdir(exist_ok=True)
        job = msgspec.structs.replace(job, out_dir=str(scratch / key))
    try:
        result = execute(job, reporter)
    except Exception as e:
        return _failure(e)
    files: dict[str, tuple[str, bytes]] = {}
    if transfer:
        for name, artifact in result.artifacts.items():
            path = Path(artifact.path)
            files[name] = (path.name.removeprefix(key), path.read_bytes())
            path.unlink(missing_ok=True)
    return ["done", _encoder.encode(result), files]


def run_call(
    topic: str, key: str, nice: bool, fn: str, args: dict[str, Any], bars: object
) -> list[Any]:
    """Call ``fn`` (see ``coinbt.executor._calls``): ``["done", value]`` or ``["error", ...]``."""
    reporter = _Reporter(topic, key)
    reporter.started()
    _lower_priority(nice)
    try:
        return ["done", invoke(fn, args, reporter, bars)]
    except Exception as e:
        return _failure(e)


def kill_if_running(key: str, dask_worker: Any = None) -> None:
    """Run in a worker process (``client.run``): SIGKILL this process at once if it is executing
    the task ``key``, else return. The check and the kill happen in one step of the worker's event
    loop, where its tasks change state: a task that has just finished (its result on the way back)
    is left alone, and so is the next task the process runs."""
    state = getattr(dask_worker, "state", None)
    task = state.tasks.get(key) if state is not None else None
    if task is not None and task.state in ("executing", "long-running"):
        os.kill(os.getpid(), signal.SIGKILL)


def worker_pid(dask_worker: Any = None) -> int | None:
    """Run in a nanny (``client.run(..., nanny=True)``): the process id of its worker now."""
    process = getattr(getattr(dask_worker, "process", None), "process", None)
    return None if process is None else int(process.pid)


async def kill_worker_process(pid: int | None = None, dask_worker: Any = None) -> int | None:
    """Run in a worker's nanny (``client.run(..., nanny=True)``): SIGKILL the worker process if it
    is still ``pid`` (any, if None) and wait until it has exited; the nanny then starts a fresh
    one. Returns the killed process id, or None if there was nothing to kill."""
    worker_process = getattr(dask_worker, "process", None)
    process = getattr(worker_process, "process", None)
    if process is None or (pid is not None and process.pid != pid):
        return None
    killed: int = process.pid
    await process.kill()
    await process.join(timeout=10)
    return killed
