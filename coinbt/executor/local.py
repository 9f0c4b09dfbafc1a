"""The default executor: a fixed set of worker processes, one job at a time each.

Each slot is a fresh interpreter (``python -m coinbt.executor._child``) that talks over a socket
pair with multiprocessing's message framing. Not ``multiprocessing.Process``: its children
re-import the caller's ``__main__``, which breaks any script or notebook without an
``if __name__ == "__main__"`` guard; a plain subprocess imports only coinbt. The event loop never
blocks on a process: it waits for the pipe to be readable (``anyio.wait_readable``) and reads
small messages (progress, a summary and the fills; equity curves travel as files). Besides
backtests, a process can run a plain function (:meth:`LocalProcessExecutor.run_call`: the chunks
of a split sweep, ``coinbt.executor.sweeps``). Cancelling a job kills its process at once
(SIGKILL) and a fresh process replaces it in the background. Worker processes also die with the
service (Linux ``PR_SET_PDEATHSIG``), so none is ever orphaned.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import msgspec
from anyio.abc import TaskGroup

from coinbt import defaults
from coinbt.executor.base import Job, JobError, JobResult

if TYPE_CHECKING:
    from coinbt.engine import Bars

__all__ = ("LocalProcessExecutor", "open_local_executor")

log = logging.getLogger("coinbt.executor")

_encoder = msgspec.msgpack.Encoder()
_message_decoder = msgspec.msgpack.Decoder()


def _no_progress(fraction: float) -> None:
    del fraction


class _Slot:
    __slots__ = ("conn", "process", "task_id")

    def __init__(self, process: subprocess.Popen[bytes], conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.task_id: str | None = None

    @property
    def pid(self) -> int:
        return self.process.pid


class LocalProcessExecutor:
    """``workers`` processes; :meth:`run` waits for a free one. Open with
    :func:`open_local_executor`."""

    def __init__(self, workers: int, tg: TaskGroup) -> None:
        if workers < 1:
            raise ValueError("an executor needs at least one worker process")
        self.workers = workers
        self._tg = tg
        self._idle_send, self._idle = anyio.create_memory_object_stream[_Slot](workers)
        self._running: dict[str, _Slot] = {}
        self._started = anyio.Event()
        self._exited: dict[int, anyio.Event] = {}
        self._dying: set[_Slot] = set()
        self._closing = False
        self.started_processes = 0

    def running_pids(self) -> dict[str, int]:
        return {task_id: slot.pid for task_id, slot in self._running.items()}

    @property
    def unavailable(self) -> str | None:
        return None  # its processes are its own: replaced as they die

    async def wait_available(self) -> None:
        return

    async def wait_running(self, task_id: str) -> int:
        """Wait until ``task_id`` runs in a process; returns the process id."""
        while task_id not in self._running:
            await self._started.wait()
        return self._running[task_id].pid

    async def _spawn(self) -> None:
        # Shielded throughout: a process we started is always either handed out or waited for.
        with anyio.CancelScope(shield=True):
            # Started from the event loop's thread (a fork/exec: milliseconds), not a worker
            # thread: the child's PR_SET_PDEATHSIG fires when the *thread* that started it ends,
            # and anyio ends worker threads idle for 10 s, which SIGKILLed idle processes.
            slot = self._start_process()
            await _ready(slot)
            if self._closing:
                _kill(slot)
                await anyio.to_thread.run_sync(_wait, slot)
                return
            self._idle_send.send_nowait(slot)

    def _start_process(self) -> _Slot:
        parent, child = socket.socketpair()
        try:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "coinbt.executor._child",
                    str(child.fileno()),
                    str(os.getpid()),  # the child exits when this process dies
                ],
                pass_fds=[child.fileno()],
                stdin=subprocess.DEVNULL,
            )
        finally:
            child.close()
        self.started_processes += 1
        return _Slot(process, Connection(parent.detach()))

    async def start(self) -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(self.workers):
                tg.start_soon(self._spawn)

    async def run(self, job: Job, on_progress: Callable[[float], Any]) -> JobResult:
        value = await self._exchange([job.task_id], _encoder.encode(job), on_progress)
        return msgspec.convert(value, JobResult)

    async def run_batch(self, jobs: Sequence[Job]) -> list[JobResult | JobError]:
        """Run small ``jobs`` one after another in one worker process, with one message each
        way: per job (in order) its result, or the ``JobError`` it raised (the others still
        run). No progress is reported. Cancelling the caller kills the process, stopping every
        job of the batch; a crash raises ``JobError`` for the whole batch."""
        request = _encoder.encode(["batch", jobs])
        values = await self._exchange([job.task_id for job in jobs], request, _no_progress)
        return [
            msgspec.convert(value[1], JobResult)
            if value[0] == "ok"
            else JobError(str(value[1]), str(value[2]))
            for value in values
        ]

    async def run_call(
        self,
        name: str,
        fn: str,
        args: Mapping[str, Any],
        on_progress: Callable[[float], Any],
        *,
        bars: object = None,
    ) -> Any:
        """Call ``fn`` (``"coinbt.module:function"``) in a worker process, like :meth:`run`:
        ``name`` stands for the task id in :meth:`running_pids`; ``bars`` is what
        :meth:`stage_bars` yielded, or None. Raises ``JobError`` if the function raised."""
        request = _encoder.encode(["call", fn, args, bars])
        return await self._exchange([name], request, on_progress)

    @asynccontextmanager
    async def stage_bars(self, bars: Bars) -> AsyncIterator[str]:
        """Make ``bars`` readable by the worker processes: a temporary bars file (its path)."""
        from coinbt.engine import save_bars

        with tempfile.TemporaryDirectory(prefix="coinbt-bars-") as directory:
            path = os.path.join(directory, "bars.npz")
            await anyio.to_thread.run_sync(save_bars, path, bars)
            yield path

    async def _exchange(
        self, names: Sequence[str], request: bytes, on_progress: Callable[[float], Any]
    ) -> Any:
        slot = await self._idle.receive()
        slot.task_id = names[0]
        for name in names:
            self._running[name] = slot
        self._started.set()
        self._started = anyio.Event()
        healthy = False
        try:
            slot.conn.send_bytes(request)
            while True:
                await anyio.wait_readable(slot.conn)
                message = _message_decoder.decode(slot.conn.recv_bytes())
                kind = message[0]
                if kind == "progress":
                    on_progress(float(message[1]))
                    continue
                healthy = True
                if kind == "done":
                    return message[1]
                raise JobError(str(message[1]), str(message[2]))
        except (EOFError, OSError) as e:
            code = slot.process.poll()
            raise JobError(
                "worker_crashed",
                f"the worker process running the backtest died (exit code {code})",
            ) from e
        finally:
            for name in names:
                del self._running[name]
            slot.task_id = None
            if healthy:
                self._idle_send.send_nowait(slot)
            else:  # cancelled, timed out or crashed: this process is done for
                _kill(slot)
                self._reap(slot)
                if not self._closing:
                    self._tg.start_soon(self._spawn)

    def _reap(self, slot: _Slot) -> None:
        exited = self._exited.setdefault(slot.pid, anyio.Event())
        self._dying.add(slot)

        async def reap() -> None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_wait, slot)
            self._dying.discard(slot)
            exited.set()

        self._tg.start_soon(reap)

    async def wait_exited(self, pid: int) -> None:
        """Wait until the killed worker process ``pid`` has exited and been reaped."""
        await self._exited.setdefault(pid, anyio.Event()).wait()

    def prepare_close(self) -> None:
        self._closing = True

    async def aclose(self) -> None:
        self._closing = True
        self._idle_send.close()
        slots = [slot async for slot in self._idle]
        self._idle.close()
        slots += [*self._running.values(), *self._dying]
        for slot in slots:
            _kill(slot)
        with anyio.CancelScope(shield=True):
            for slot in slots:
                await anyio.to_thread.run_sync(_wait, slot)


READY_TIMEOUT_S = 60.0


async def _ready(slot: _Slot) -> None:
    """Wait until the new process has imported the engine and says ``["ready"]`` (so its first
    job does not wait for that), for at most ``READY_TIMEOUT_S``. A process that dies or stays
    silent meanwhile is handed out all the same: its first job then fails as a crashed worker
    (and the process is replaced), as it would have without this wait."""
    with anyio.move_on_after(READY_TIMEOUT_S):
        try:
            await anyio.wait_readable(slot.conn)
            message = _message_decoder.decode(slot.conn.recv_bytes())
        except (EOFError, OSError, msgspec.DecodeError):
            return
        if message != ["ready"]:
            log.error("worker process %d said %r before its first job", slot.pid, message)


def _kill(slot: _Slot) -> None:
    try:
        slot.conn.close()
    except OSError:
        pass
    if slot.process.poll() is None:
        try:
            slot.process.kill()
        except OSError:
            pass


def _wait(slot: _Slot) -> None:
    try:
        slot.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        log.error("worker process %d did not exit", slot.pid)


@asynccontextmanager
async def open_local_executor(workers: int | None = None) -> AsyncIterator[LocalProcessExecutor]:
    """Start ``workers`` processes (default: the number of cores) and stop them on exit."""
    count = workers or defaults.worker_count()
    async with anyio.create_task_group() as tg:
        executor = LocalProcessExecutor(count, tg)
        try:
            await executor.start()
            yield executor
        finally:
            await executor.aclose()
            tg.cancel_scope.cancel()
