"""Backtests and sweep chunks on a Dask distributed cluster: :func:`open_dask_executor`.

Why Dask distributed and not Ray: it is pure Python from PyPI (``pip install coinbt[distributed]``,
no native wheels to match, no object store daemon), its client speaks asyncio natively
(``Client(asynchronous=True)`` runs in the service's own event loop), a ``LocalCluster`` starts in
process for tests and single machines, and every worker process runs under a *nanny* that
replaces it when it dies, which is what stopping a job for real needs. Ray would give actors and
an object store we do not need, for a heavier install and a separate daemon per machine.

How the protocol of :class:`~coinbt.executor.base.Executor` maps onto Dask:

- **Run**: a job is one task (``coinbt.executor._dask_task.run_job``) with a unique key, run by
  ``coinbt.executor._child.execute`` on a worker. Workers should have one thread each
  (``dask worker --nthreads 1``): one process per job, so killing a process kills one job.
- **Progress**: the task sends structured events on a topic of this client
  (``Worker.log_event`` -> scheduler -> ``Client.subscribe_topic``): ``started`` with the worker's
  address and process id, then ``progress`` at most every 50 ms. The end is the task's result.
- **Cancel and timeout**: ``Future.cancel()`` alone cannot stop a running task (a thread cannot
  be killed), so when the caller is cancelled the executor asks the worker process to SIGKILL
  itself *if it is executing that task* (``kill_if_running``: the check and the kill are one
  step of the worker's event loop, so a task whose result is on its way back, or the next task
  of that process, is never killed), waits through the nanny until the process has exited, and
  then releases the task so it never runs again; the nanny starts a fresh worker. If the task had
  not started yet it is just released. If a released task starts anyway (a race with the
  scheduler), its ``started`` event makes the executor kill that worker too.
- **Lost scheduler**: a supervisor checks the client's connection. While it is down the
  executor is *unavailable* (``unavailable`` says why; ``/health`` and ``/metrics`` show it):
  ``run`` refuses at once with ``ExecutorUnavailableError`` and the service's workers claim no
  task (queued tasks stay queued: no ``Started``, no attempt used). Jobs that were running are
  lost (re-queued, attempt + 1). The Dask client reconnects on its own for ``connect_timeout_s``;
  when it gives up and closes, the supervisor connects a new client, backing off from 0.5 s to
  30 s between tries, forever. Once connected, work resumes: no restart.
- **Lost worker**: when the scheduler removes a worker (its process was killed, its machine went
  away) while it ran one of our jobs (the executor follows the scheduler's events of each worker
  running one), when the task fails with ``KilledWorker``, or when Dask starts it a second time
  elsewhere, the job fails with :class:`JobLostError` (``error_type == "worker_lost"``) and the
  service re-queues the task (attempt + 1). The local cluster is started with
  :data:`CLUSTER_CONFIG` (``allowed-failures: 0``, ``worker-saturation: 1.0``): Dask itself never
  silently re-runs a job and never queues a second job behind a running one; give a shared
  cluster the same settings (docs/distributed.md).
- **Artifacts**: the job writes its files on the worker. With ``transfer_files`` (the default
  for a remote scheduler) it writes them to the worker's scratch directory and their bytes come
  back with the result, to be written where the service wanted them: nothing shared is needed.
  Without it (the default for a local cluster: same machine), files are written in place, which
  needs the service's data directory mounted at the same path on every worker.
- **Datasets**: an imported dataset is read by the worker from the path the service knows:
  remote workers need the data directory mounted at the same path (synthetic data needs nothing).

Needs an asyncio event loop (Dask has no trio support).
"""

from __future__ import annotations

import itertools
import logging
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import anyio
import dask
import msgspec
from anyio.abc import TaskGroup
from distributed import Client, LocalCluster
from distributed.client import FutureCancelledError
from distributed.scheduler import KilledWorker

from coinbt import defaults
from coinbt.executor import _dask_task
from coinbt.executor._errors import ExecutorUnavailableError, JobLostError
from coinbt.executor.base import Job, JobError, JobResult, ProducedArtifact

if TYPE_CHECKING:
    from coinbt.engine import Bars

__all__ = (
    "CLUSTER_CONFIG",
    "DaskExecutor",
    "JobLostError",
    "executor_factory",
    "open_dask_executor",
    "parse_dask_target",
    "start_local_cluster",
)

log = logging.getLogger("coinbt.executor.dask")

CLUSTER_CONFIG: dict[str, Any] = {
    # A worker that dies while running a task fails the task (KilledWorker) instead of Dask
    # re-running it elsewhere: the service decides about a re-run (attempt + 1).
    "distributed.scheduler.allowed-failures": 0,
    # One task per worker thread, none queued behind it on the worker: killing a worker process
    # to stop a job never takes a second job down with it.
    "distributed.scheduler.worker-saturation": 1.0,
    # Dask sets MALLOC_TRIM_THRESHOLD_=65536 in worker processes (to hand memory back to the OS);
    # that turns off glibc's adaptive mmap threshold, so every large numpy temporary is a fresh
    # mmap with page faults: the engine ran 2 to 6 times slower (docs/distributed.md).
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
}
KILL_TIMEOUT_S = 30.0
STATUS_EVERY_S = 0.25  # how often the supervisor looks at the client's connection
RECONNECT_FIRST_S = 0.5  # the first wait between tries to connect a new client; doubles ...
RECONNECT_MAX_S = 30.0  # ... up to this
_ABANDONED_KEPT = 1024

_encoder = msgspec.msgpack.Encoder()
_result_decoder = msgspec.msgpack.Decoder(JobResult)


@dataclass(eq=False)
class _Run:
    """One submitted task, as far as the client knows."""

    name: str
    on_progress: Callable[[float], Any]
    worker: str | None = None  # from its ``started`` event
    pid: int | None = None
    lost: str | None = None  # why the job is lost, once it is
    worker_gone: bool = False  # the worker that ran it has left the cluster
    progress: float = 0.0  # the highest fraction reported: progress never goes back
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)


class DaskExecutor:
    """Runs jobs (and sweep chunks) as Dask tasks; see the module docstring. Open with
    :func:`open_dask_executor`."""

    def __init__(
        self,
        client: Client,
        tg: TaskGroup,
        *,
        workers: int,
        transfer_files: bool,
        nice: bool = False,
        address: str | None = None,
        connect_timeout_s: float = 30.0,
    ) -> None:
        self.workers = workers
        self.transfer_files = transfer_files
        self.address = address or str(cast(Any, client).scheduler.address)
        self.connect_timeout_s = connect_timeout_s
        self.reconnects = 0  # new clients connected after the first gave up
        self.failed_connects = 0  # tries to connect a new client that failed
        self._unavailable: str | None = None
        self._up = anyio.Event()
        self._up.set()
        # distributed's Client is only partly typed, and in asynchronous mode its methods return
        # coroutines where the annotations say values: treat it as Any.
        self._client: Any = cast(Any, client)
        self._tg = tg
        self._nice = nice
        self._topic = f"coinbt-{client.id}"
        self._prefix = re.sub(r"[^A-Za-z0-9]", "", str(client.id).removeprefix("Client-"))  # unique
        self._counter = itertools.count(1)
        self._runs: dict[str, _Run] = {}
        self._abandoned: OrderedDict[str, None] = OrderedDict()
        self._changed = anyio.Event()
        self._watched: set[str] = set()  # workers whose events we follow
        self._client.subscribe_topic(self._topic, self._on_task_event)

    # --- availability ----------------------------------------------------------------------------

    @property
    def unavailable(self) -> str | None:
        """Why no job can run now (the scheduler is lost), or None."""
        return self._unavailable

    async def wait_available(self) -> None:
        """Return once the scheduler is connected."""
        while self._unavailable is not None:
            await self._up.wait()

    async def supervise(self) -> None:
        """Watch the client's connection for as long as the executor is open (see the module
        docstring, "Lost scheduler")."""
        delay = RECONNECT_FIRST_S
        while True:
            await anyio.sleep(STATUS_EVERY_S)
            status = self._client.status
            if status == "running":
                if self._unavailable is not None:
                    self._subscribe()  # a restarted scheduler knows none of our topics
                    self._set_available()
                continue
            self._set_unavailable(f"the Dask scheduler at {self.address} is lost ({status})")
            if status in ("connecting", "newly-created"):
                continue  # the client is reconnecting on its own (for connect_timeout_s)
            try:  # it gave up and closed: a new client, with backoff
                client: Any = await _connect(self.address, self.connect_timeout_s)
            except ExecutorUnavailableError as e:
                self.failed_connects += 1
                self._unavailable = str(e)
                self._touch()
                log.warning("%s; trying again in %.1f s", e, delay)
                await anyio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)
                continue
            old, self._client = self._client, client
            self.reconnects += 1
            delay = RECONNECT_FIRST_S
            with anyio.CancelScope(shield=True):
                try:
                    await old.close()
                except Exception as e:  # it is closed already, as far as we care
                    log.debug("closing the old Dask client: %r", e)
            self._subscribe()
            self._set_available()

    def _subscribe(self) -> None:
        self._topic = f"coinbt-{self._client.id}"
        self._watched.clear()
        self._client.subscribe_topic(self._topic, self._on_task_event)

    def _set_unavailable(self, reason: str) -> None:
        if self._unavailable is None:
            log.warning("executor unavailable: %s; running jobs are lost", reason)
            self._unavailable = reason
            self._up = anyio.Event()
            for run in self._runs.values():
                self._lose(run, reason)
            self._touch()

    def _set_available(self) -> None:
        log.info("executor available again: the Dask scheduler at %s is connected", self.address)
        self._unavailable = None
        self._up.set()
        self._touch()

    @property
    def client(self) -> Client:
        client: Client = self._client
        return client

    # --- the Executor protocol -------------------------------------------------------------------

    async def run(self, job: Job, on_progress: Callable[[float], Any]) -> JobResult:
        transfer = self.transfer_files
        encoded, files = await self._submit(
            job.task_id, _dask_task.run_job, (_encoder.encode(job), transfer), on_progress
        )
        result = _result_decoder.decode(encoded)
        if not transfer:
            return result
        placed = {name: Path(job.out_dir + files[name][0]) for name in result.artifacts}
        try:
            await anyio.to_thread.run_sync(_write_files, placed, files)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_remove_files, list(placed.values()))
            raise
        artifacts = {
            name: ProducedArtifact(path=str(placed[name]), sha256=a.sha256, size=a.size)
            for name, a in result.artifacts.items()
        }
        return msgspec.structs.replace(result, artifacts=artifacts)

    def running_pids(self) -> dict[str, int]:
        """Task id (or call name) -> process id of the worker running it (on its own host)."""
        return {run.name: run.pid for run in self._runs.values() if run.pid is not None}

    def prepare_close(self) -> None:
        """Nothing to prepare: nannies replace killed workers, and closing the executor closes
        its client (and the local cluster it started)."""

    # --- sweeps (coinbt.executor.sweeps) ---------------------------------------------------------

    async def run_call(
        self,
        name: str,
        fn: str,
        args: Mapping[str, Any],
        on_progress: Callable[[float], Any],
        *,
        bars: object = None,
    ) -> Any:
        """Call ``fn`` (``"coinbt.module:function"``) on a worker, stopped like a job when the
        caller is cancelled; ``bars`` is what :meth:`stage_bars` yielded, or None."""
        [value] = await self._submit(name, _dask_task.run_call, (fn, dict(args), bars), on_progress)
        return value

    @asynccontextmanager
    async def stage_bars(self, bars: Bars) -> AsyncIterator[Any]:
        """Send ``bars`` to every worker once (``scatter(broadcast=True)``); yields the future the
        tasks take as an argument."""
        future = await self._client.scatter(bars, broadcast=True, hash=False)
        try:
            yield future
        finally:
            future.release()

    # --- for tests and tools ---------------------------------------------------------------------

    async def wait_running(self, name: str) -> int:
        """Wait until the task or call ``name`` has started on a worker; its process id."""
        while True:
            for run in self._runs.values():
                if run.name == name and run.pid is not None:
                    return run.pid
            await self._changed.wait()

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition()`` holds, looking again at each change of a run or of the
        connection (``unavailable``, ``reconnects``, ``failed_connects``)."""
        while not condition():
            await self._changed.wait()

    async def wait_for_workers(self, count: int) -> None:
        """Wait until the cluster has ``count`` workers (after a kill, the nanny restarts one)."""
        await self._client.wait_for_workers(count)

    # --- internals -------------------------------------------------------------------------------

    async def _submit(
        self,
        name: str,
        fn: Callable[..., list[Any]],
        args: tuple[Any, ...],
        on_progress: Callable[[float], Any],
    ) -> list[Any]:
        if self._unavailable is not None:
            raise ExecutorUnavailableError(self._unavailable)
        key = f"coinbt-{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}-{self._prefix}-{next(self._counter)}"
        future = self._client.submit(fn, self._topic, key, self._nice, *args, key=key, pure=False)
        run = self._runs[key] = _Run(name, on_progress)  # before any event can arrive for it
        value: list[Any] | None = None
        try:
            value = await self._wait(future, run)
        finally:
            del self._runs[key]
            self._touch()
            if value is None:  # cancelled, timed out or lost: stop the work for real
                self._abandoned[key] = None
                while len(self._abandoned) > _ABANDONED_KEPT:
                    self._abandoned.popitem(last=False)
                with anyio.CancelScope(shield=True):
                    await self._stop(future, run)
            else:
                future.release()
        if value[0] == "error":
            raise JobError(str(value[1]), str(value[2]))
        return value[1:]

    async def _wait(self, future: Any, run: _Run) -> list[Any]:
        with run.scope:  # cancelled when the worker running it is lost (see _lose)
            try:
                value: list[Any] = await future
            except KilledWorker as e:
                run.worker_gone = True
                raise JobLostError(f"the Dask worker running it died ({e})") from e
            except FutureCancelledError as e:
                if self._client.status != "running":  # the client lost the scheduler: say so
                    # now, before the service hands out the next task (the supervisor looks later)
                    self._set_unavailable(f"the Dask scheduler at {self.address} is lost")
                raise JobLostError(f"Dask cancelled it ({e})") from e
            except Exception as e:  # Dask itself failed (our tasks return their errors)
                raise JobError("executor_error", f"{type(e).__name__}: {e}") from e
            return value
        raise JobLostError(run.lost or "the Dask worker running it was lost")

    async def _stop(self, future: Any, run: _Run) -> None:
        """Kill the worker process running ``future`` (if any), then release it."""
        if self._unavailable is not None or self._client.status != "running":
            return  # the scheduler is gone, and with it the task (its workers stop on their own)
        where: str | None
        try:
            if run.worker is not None and not run.worker_gone:
                where, pid = run.worker, run.pid
            else:  # not started (as far as we know), or its worker died
                where, pid = await self._processing_on(future.key), None
            if where is not None:
                await self._kill(where, future.key, pid)
            await self._client.cancel([future], force=True)
        except Exception:
            log.exception("stopping Dask task %s failed", future.key)

    async def _processing_on(self, key: str) -> str | None:
        processing: dict[str, list[str]] = await self._client.scheduler.processing(workers=None)
        for worker, keys in processing.items():
            if key in keys:
                return worker
        return None

    async def _kill(self, worker: str, key: str, pid: int | None) -> None:
        """Kill the process of ``worker`` if it is executing ``key`` (``pid``, when known), and
        wait until it has exited; leave it alone if it is not (finished, or never started)."""
        client = self._client
        try:
            with anyio.fail_after(KILL_TIMEOUT_S):
                # Its nanny's address first: once the process is dead the scheduler forgets the
                # worker, and the nanny is how we wait until the process has exited.
                identity = await client.scheduler.identity()
                nanny = identity.get("workers", {}).get(worker, {}).get("nanny")
                if pid is None and nanny is not None:
                    pids = await client.run(_dask_task.worker_pid, workers=[nanny])
                    pid = pids.get(nanny)
                answers = await client.run(
                    _dask_task.kill_if_running, key, workers=[worker], on_error="return"
                )
                if not isinstance(answers.get(worker), BaseException):
                    return  # it answered (it was not executing the task) or is unknown: no kill
                if pid is not None and nanny is not None:  # it killed itself: wait until gone
                    await client.run(_dask_task.kill_worker_process, pid=pid, workers=[nanny])
        except Exception as e:
            log.warning("could not kill the process of Dask worker %s: %r", worker, e)

    def _on_task_event(self, event: tuple[float, Any]) -> None:
        _, message = event
        if not isinstance(message, dict):
            return
        key = message.get("key")
        run = self._runs.get(key) if isinstance(key, str) else None
        kind = message.get("kind")
        if kind == "started":
            worker, pid = str(message["worker"]), int(message["pid"])
            if run is None:
                if key in self._abandoned:  # released, but it started anyway: stop it
                    self._tg.start_soon(self._kill, worker, str(key), pid)
                return
            previous = run.worker
            run.worker, run.pid = worker, pid
            self._watch(worker)
            self._touch()
            if previous is not None and previous != worker:
                # Dask re-ran it elsewhere (a scheduler that allows failures): the worker that
                # ran it first is gone. Stop this run too; the service re-queues the task.
                self._lose(run, f"the Dask worker {previous} running it was lost")
        elif kind == "progress" and run is not None:
            fraction = float(message["fraction"])
            if fraction > run.progress:
                run.progress = fraction
                run.on_progress(fraction)

    def _watch(self, worker: str) -> None:
        """Follow the scheduler's events about ``worker``, to hear at once if it is removed."""
        if worker not in self._watched:
            self._watched.add(worker)
            self._client.subscribe_topic(worker, partial(self._on_worker_event, worker))

    def _on_worker_event(self, worker: str, event: tuple[float, Any]) -> None:
        _, message = event
        if not isinstance(message, dict) or message.get("action") != "remove-worker":
            return
        self._watched.discard(worker)
        self._client.unsubscribe_topic(worker)
        for run in self._runs.values():
            if run.worker == worker:
                run.worker_gone = True
                self._lose(run, f"the Dask worker {worker} running it was lost")

    def _lose(self, run: _Run, reason: str) -> None:
        if run.lost is None:
            run.lost = reason
            run.scope.cancel()

    def _touch(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def aclose(self) -> None:
        for topic in (self._topic, *self._watched):
            try:
                self._client.unsubscribe_topic(topic)
            except Exception:  # not subscribed, or the client is closed: nothing to undo
                pass


def _write_files(paths: dict[str, Path], files: Mapping[str, tuple[str, bytes]]) -> None:
    for name, path in paths.items():
        path.write_bytes(files[name][1])


def _remove_files(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def start_local_cluster(workers: int, *, asynchronous: bool = False) -> LocalCluster:
    """A ``LocalCluster`` of ``workers`` single-threaded worker processes under nannies, with
    :data:`CLUSTER_CONFIG`. Synchronous: started on return, in a thread of its own (tests,
    scripts). Asynchronous: ``await`` it in the running loop. Worker processes are started with
    multiprocessing's *spawn*: a script that starts one needs ``if __name__ == "__main__":``."""
    cluster_class: Any = LocalCluster  # untyped constructor
    with dask.config.set(CLUSTER_CONFIG):
        cluster: LocalCluster = cluster_class(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            asynchronous=asynchronous,
            dashboard_address=":0",  # any free port: with None it still takes 8787
            worker_dashboard_address=None,
        )
    return cluster


async def _connect(address: str, timeout_s: float) -> Client:
    client_class: Any = Client  # untyped constructor; awaitable in asynchronous mode
    try:
        client: Client = await client_class(
            address, asynchronous=True, timeout=timeout_s, set_as_default=False
        )
    except (OSError, TimeoutError) as e:
        raise ExecutorUnavailableError(f"cannot reach the Dask scheduler at {address}: {e}") from e
    return client


@asynccontextmanager
async def open_dask_executor(
    address: str | None = None,
    workers: int | None = None,
    *,
    transfer_files: bool | None = None,
    connect_timeout_s: float = 30.0,
) -> AsyncIterator[DaskExecutor]:
    """Connect to the Dask scheduler at ``address`` (``tcp://host:8786``), or with no address
    start a local cluster of ``workers`` single-threaded processes (default: the number of
    cores) for the life of the executor.

    ``workers`` is how many jobs this executor expects to run at once (sweeps split into that
    many chunks); for a remote scheduler it defaults to the cluster's worker threads.
    ``transfer_files`` (default: only for a remote scheduler) brings artifact bytes back with
    the results instead of sharing a directory. Raises ``ExecutorUnavailableError`` if the
    scheduler cannot be reached.
    """
    async with AsyncExitStack() as stack:
        local = address is None
        if address is None:
            count = workers or defaults.worker_count()
            # Read by the cluster while it runs: a LocalCluster closes for good the nanny of a
            # worker away for lost-worker-timeout (15 s), which a killed worker's replacement can
            # take on a loaded machine; the cluster would shrink with each kill.
            stack.enter_context(dask.config.set({"distributed.deploy.lost-worker-timeout": "1h"}))
            cluster: Any = start_local_cluster(count, asynchronous=True)
            with dask.config.set(CLUSTER_CONFIG):  # the scheduler and nannies start here
                await cluster
            stack.push_async_callback(cluster.close)
            address = str(cluster.scheduler_address)
            workers = count
        client: Any = await _connect(address, connect_timeout_s)
        opened: list[DaskExecutor] = []  # it may replace the client (a lost scheduler)
        stack.push_async_callback(lambda: (opened[0].client if opened else client).close())
        if workers is None:
            info = client.scheduler_info()
            workers = max(1, sum(int(w.get("nthreads", 1)) for w in info["workers"].values()))
        tg = await stack.enter_async_context(anyio.create_task_group())
        executor = DaskExecutor(
            client,
            tg,
            workers=workers,
            transfer_files=not local if transfer_files is None else transfer_files,
            nice=local,
            address=address,
            connect_timeout_s=connect_timeout_s,
        )
        opened.append(executor)
        tg.start_soon(executor.supervise)
        try:
            yield executor
        finally:
            await executor.aclose()
            tg.cancel_scope.cancel()


def parse_dask_target(text: str) -> tuple[str | None, int | None]:
    """``(address, workers)`` from a command-line target: ``tcp://HOST:PORT``, ``tls://...`` or
    ``dask://HOST:PORT`` (a scheduler), or ``local``, ``local:N``, ``dask+local://`` or
    ``dask+local://N`` (a local cluster, N processes). ``ValueError`` for anything else."""
    text = text.strip()
    local = re.fullmatch(r"(?:local|dask\+local://)(?::?(\d+))?", text)
    if local is not None:
        count = int(local.group(1)) if local.group(1) else None
        if count is not None and count < 1:
            raise ValueError(f"{text!r}: a local cluster needs at least one worker")
        return None, count
    remote = re.fullmatch(r"(dask|tcp|tls)://([^/\s:]+|\[[0-9a-fA-F:]+\]):(\d{1,5})/?", text)
    if remote is None:
        raise ValueError(
            f"{text!r}: expected tcp://HOST:PORT, dask://HOST:PORT, local:N or dask+local://N"
        )
    scheme = "tcp" if remote.group(1) == "dask" else remote.group(1)
    return f"{scheme}://{remote.group(2)}:{remote.group(3)}", None


def executor_factory(target: str) -> Callable[[int], Any]:
    """A ``Config.executor`` factory for ``coinbt serve --executor``: ``dask://HOST:PORT`` or
    ``dask+local://[N]`` (default N: the service's worker count). ``ValueError`` if malformed."""
    address, count = parse_dask_target(target)

    def factory(workers: int) -> Any:
        return open_dask_executor(address, count or workers)

    return factory
