"""The running system: one object that opens the stores, starts the actors and answers commands.

``open_system(config)`` opens the database (a SQLite file, or a PostgreSQL database that several
processes may share: ``coinbt.backend``) and the artifact store, starts the Projector (and lets
it catch up), the TaskManager (which recovers interrupted tasks), the Uploader (which retries
artifact uploads left pending) and the Workers, in one task group under one supervisor, with the
periodic log backups if configured. The :class:`System` it yields is what the HTTP API, the CLI
and the tests talk to; it only forwards commands to actors and reads the read models.
``drain()`` runs until idle.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import msgspec

from coinbt import defaults
from coinbt.actors.base import Supervisor
from coinbt.actors.projector import Projector
from coinbt.actors.task_manager import (
    CancelTask,
    SubmitBatch,
    SubmitTask,
    Submitted,
    TaskManager,
)
from coinbt.actors.uploader import Uploader
from coinbt.actors.worker import Abort, Worker
from coinbt.artifacts import ArtifactStore, LocalArtifactStore, S3Options, open_artifact_store
from coinbt.artifacts.locations import ArtifactLocations, open_locations
from coinbt.artifacts.outbox import ArtifactRow, Outbox
from coinbt.backend import Backend, is_dsn, open_backend
from coinbt.backends.postgres.live import ProgressRelay
from coinbt.backup import PeriodicBackups
from coinbt.clock import Clock, IdFactory, SystemClock, random_ids
from coinbt.datasets import Catalog
from coinbt.dburl import is_memory
from coinbt.errors import (
    ArtifactLostError,
    ArtifactPendingError,
    BackupError,
    FieldError,
    IdempotencyKeyReusedError,
    SpecError,
    TaskNotFoundError,
)
from coinbt.events import ArtifactRef, Queued, StoredEvent, TaskSpec
from coinbt.executor.base import Executor
from coinbt.executor.local import open_local_executor
from coinbt.lifecycle import Status
from coinbt.projections.base import ReadModels
from coinbt.projections.live import LiveProgress
from coinbt.projections.positions import PositionView
from coinbt.projections.status import TaskView
from coinbt.results import Page, Results
from coinbt.specs import DataPlan, validate
from coinbt.store.base import EventStore
from coinbt.store.instances import worker_id
from coinbt.sweep_table import SweepTable, TableCache, parse_table
from coinbt.sweeps import validate_sweep

__all__ = ("MAX_BATCH", "Config", "System", "indexed", "open_system")

log = logging.getLogger("coinbt")

MAX_BATCH = defaults.MAX_BATCH
"""The most specs one ``POST /backtests`` array may hold (DESIGN section 11)."""

ExecutorFactory = Callable[[int], AbstractAsyncContextManager[Executor]]


@dataclass
class Config:
    """How to run coinbt. Only ``db`` is required; everything else has a working default.

    ``db`` is a SQLite file, or a ``postgresql://`` DSN: a database several ``coinbt serve``
    processes (on several hosts) may share (docs/scale-out.md).
    """

    db: Path | str
    # datasets/, staging/, artifacts/; default: the SQLite file's directory, or ./coinbt-data
    # with PostgreSQL (shared storage for several hosts, unless artifacts go to S3 and no
    # imported datasets are used)
    data_dir: Path | None = None
    artifacts: ArtifactStore | None = None  # an open store; default: ``artifacts_url``
    artifacts_url: str | None = None  # s3://bucket/prefix or a directory; default: data_dir
    s3: S3Options | None = None  # endpoint, region...; default: the environment (docs/storage.md)
    upload_backoff_s: tuple[float, float] = defaults.UPLOAD_BACKOFF_S  # first, longest retry wait
    backup_to: str | None = None  # periodic log backups to this store URL...
    backup_every_s: float | None = defaults.BACKUP_EVERY_S  # ...this often
    workers: int | None = None  # default: the number of cores; 0 runs nothing (API only)
    queue_capacity: int = defaults.QUEUE_CAPACITY
    max_attempts: int = defaults.MAX_ATTEMPTS
    max_bars: int = defaults.MAX_BARS
    max_combinations: int = defaults.MAX_COMBINATIONS  # per sweep (POST /sweeps)
    shutdown_grace_s: float = defaults.SHUTDOWN_GRACE_S
    # PostgreSQL: how often a process checks for processes that are gone (to re-queue their
    # tasks and adopt their uploads) and whether it should take over the read models
    heartbeat_s: float = defaults.HEARTBEAT_S
    clock: Clock = field(default_factory=SystemClock)
    ids: IdFactory = random_ids
    executor: ExecutorFactory = open_local_executor

    @property
    def data_path(self) -> Path:
        if self.data_dir is not None:
            return self.data_dir
        if is_dsn(self.db) or is_memory(self.db):
            return Path("coinbt-data")
        return Path(self.db).parent


def _recorded(spec: TaskSpec, plan: DataPlan) -> TaskSpec:
    """``spec`` as ``Queued`` records it: parameters with defaults, the strategy's source, and
    the dataset version resolved, or a portfolio's every dataset version (docs/data.md,
    "Versions"), so that a rerun reads the same bars whatever was imported since."""
    spec = msgspec.structs.replace(spec, params=plan.params, source=plan.source)
    data = spec.data
    if data.dataset is not None and data.version is None:
        data = msgspec.structs.replace(data, version=plan.dataset_version)
    if data.datasets is not None and data.versions is None:
        data = msgspec.structs.replace(data, versions=list(plan.dataset_versions))
    return msgspec.structs.replace(spec, data=data)


def _chose_version(spec: TaskSpec) -> bool:
    return spec.data.version is not None or spec.data.versions is not None


def _comparable(spec: TaskSpec, with_version: bool) -> TaskSpec:
    spec = msgspec.structs.replace(spec, source=None)
    if not with_version:
        data = msgspec.structs.replace(spec.data, version=None, versions=None)
        spec = msgspec.structs.replace(spec, data=data)
    return spec


class System:
    """The facade over the actors and read models (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        store: EventStore,
        read: ReadModels,
        projector: Projector,
        task_manager: TaskManager,
        workers: list[Worker],
        catalog: Catalog,
        artifacts: ArtifactStore,
        progress: LiveProgress,
        executor: Executor | None,
        outbox: Outbox,
        uploader: Uploader,
        locations: ArtifactLocations,
        backups: PeriodicBackups | None,
    ) -> None:
        self.config = config
        self.store = store
        self.read = read
        self.projector = projector
        self.task_manager = task_manager
        self.workers = workers
        self.catalog = catalog
        self.artifacts = artifacts
        self.progress = progress
        self.executor = executor
        self.outbox = outbox
        self.uploader = uploader
        self.locations = locations
        self.backups = backups
        self._sweep_reads = TableCache()
        self.results = Results(store, self.artifact)

    # --- commands --------------------------------------------------------------------------------

    async def submit(self, spec: TaskSpec, idempotency_key: str | None = None) -> TaskView:
        """Validate and queue a backtest. Raises ``SpecError`` (every bad field) or
        ``QueueFullError``/``MailboxFullError`` (retry later); nothing is appended then."""
        if idempotency_key is not None:
            if not 1 <= len(idempotency_key) <= 200:
                raise SpecError("must be 1 to 200 characters", field="Idempotency-Key")
            existing = await self.read.task_id_for_key(idempotency_key)
        else:
            existing = None
        plan = await validate(spec, self.catalog, max_bars=self.config.max_bars)
        # Queued records the parameters that run (defaults filled in), the strategy's source and
        # the dataset version it uses (a later update must not change its data).
        chose_version = _chose_version(spec)
        spec = _recorded(spec, plan)
        if existing is not None:
            assert idempotency_key is not None
            await self._same_spec(existing, spec, idempotency_key, chose_version)
            return await self.task(existing)
        submitted: Submitted = await self.task_manager.ask(
            lambda reply: SubmitTask(spec, idempotency_key, reply, bars=plan.bars),
            wait_for_room=False,
        )
        if submitted.existing:
            assert idempotency_key is not None
            await self._same_spec(submitted.task_id, spec, idempotency_key, chose_version)
            await self.projector.wait_for(await self.store.last_position())
        else:
            await self.projector.wait_for(submitted.position)
        return await self.task(submitted.task_id)

    async def submit_batch(self, specs: list[TaskSpec]) -> list[TaskView]:
        """Validate every spec, then queue them all in one atomic append (DESIGN section 11).
        Raises one ``SpecError`` naming each bad field as ``[index].field``, or
        ``QueueFullError``/``MailboxFullError``; nothing is appended then."""
        if not 1 <= len(specs) <= MAX_BATCH:
            raise SpecError(f"a batch holds 1 to {MAX_BATCH:,} specs, got {len(specs):,}", field="")
        errors: list[FieldError] = []
        bars: list[int | None] = []
        specs = list(specs)
        for index, spec in enumerate(specs):
            try:
                plan = await validate(spec, self.catalog, max_bars=self.config.max_bars)
            except SpecError as e:
                errors.extend(
                    FieldError(indexed(index, f.field), f.message, f.column) for f in e.errors
                )
                bars.append(None)
            else:
                bars.append(plan.bars)
                specs[index] = _recorded(spec, plan)
        if errors:
            raise SpecError(errors)
        submitted: list[Submitted] = await self.task_manager.ask(
            lambda reply: SubmitBatch(specs, reply, bars), wait_for_room=False
        )
        await self.projector.wait_for(max(s.position for s in submitted))
        return [await self.task(s.task_id) for s in submitted]

    async def _same_spec(
        self, task_id: str, spec: TaskSpec, key: str, chose_version: bool = True
    ) -> None:
        """``IdempotencyKeyReusedError`` unless the key's task was queued with ``spec`` (its
        first ``Queued`` in the log says, whichever process appended it). Unless the submitter
        chose the dataset version, the one recorded is not compared (an update in between does
        not make a retry another request)."""
        first = await self.store.read_stream(task_id, limit=1)
        if not first or not isinstance(first[0].event, Queued):
            raise IdempotencyKeyReusedError(key, task_id)
        recorded = first[0].event.spec  # the source may name another coinbt version: not compared
        if _comparable(recorded, chose_version) != _comparable(spec, chose_version):
            raise IdempotencyKeyReusedError(key, task_id)

    async def submit_sweep(self, spec: TaskSpec) -> TaskView:
        """Validate and queue a sweep (a spec with ``sweep``; DESIGN section 11): a task like
        any other. Raises ``SpecError`` naming the field; nothing is appended then."""
        if spec.sweep is None:
            raise SpecError("a sweep needs a grid", field="grid")
        plan = await validate_sweep(
            spec,
            self.catalog,
            max_bars=self.config.max_bars,
            max_combinations=self.config.max_combinations,
        )
        # Queued records the strategy's source and the dataset version (the fixed parameters
        # stay as given: the grid fills in the rest).
        spec = msgspec.structs.replace(_recorded(spec, plan), params=spec.params)
        submitted: Submitted = await self.task_manager.ask(
            lambda reply: SubmitTask(spec, None, reply), wait_for_room=False
        )
        await self.projector.wait_for(submitted.position)
        return await self.task(submitted.task_id)

    async def sweep(self, task_id: str) -> TaskView:
        """A sweep task's view; ``TaskNotFoundError`` for an unknown id or a backtest."""
        view = await self.task(task_id)
        if view.spec.sweep is None:
            raise TaskNotFoundError(task_id)
        return view

    async def sweep_summary(self, view: TaskView) -> dict[str, Any] | None:
        """A completed sweep's summary (best rows, deflated Sharpe, walk-forward folds); None
        before it completed."""
        ref = view.artifacts.get("summary")
        if ref is None:
            return None
        key = f"summary:{ref.key}"
        cached = self._sweep_reads.get(key)
        if cached is None:
            import json

            cached = json.loads(await self.artifact(ref))
            self._sweep_reads.put(key, cached)
        return cached  # type: ignore[no-any-return]

    async def sweep_table(self, view: TaskView) -> SweepTable | None:
        """A completed sweep's whole table (its ``rows`` artifact, parsed once and cached)."""
        ref = view.artifacts.get("rows")
        if ref is None:
            return None
        key = f"rows:{ref.key}"
        cached = self._sweep_reads.get(key)
        if cached is None:
            data = await self.artifact(ref)
            cached = await anyio.to_thread.run_sync(parse_table, data)
            self._sweep_reads.put(key, cached)
        return cached  # type: ignore[no-any-return]

    async def cancel(self, task_id: str, reason: str = "cancelled by user") -> TaskView:
        """Cancel a queued or running task (DESIGN section 3). ``InvalidTransitionError`` for a
        completed or failed one, ``TaskNotFoundError`` for an unknown id; cancelling a cancelled
        task changes nothing."""
        position: int = await self.task_manager.ask(
            lambda reply: CancelTask(task_id, reason, reply)
        )
        await self.projector.wait_for(position or await self.store.last_position())
        return await self.task(task_id)

    async def drain(self) -> None:
        """Return once no task is queued or running, every append is projected and every
        artifact stored (burst mode, for tests and scripts) -- or, while the artifact store
        fails, waiting for a retry (the artifacts stay pending)."""
        while True:
            await self.task_manager.wait_idle()
            for worker in self.workers:
                await worker.wait_uploads()
            await self.uploader.wait_settled()
            last = await self.store.last_position()
            await self.projector.wait_for(last)
            if self.task_manager.idle and await self.store.last_position() == last:
                return

    # --- reads -----------------------------------------------------------------------------------

    async def task(self, task_id: str) -> TaskView:
        view = await self.read.task(task_id)
        if view is None:
            raise TaskNotFoundError(task_id)
        return view

    def task_json(self, view: TaskView) -> dict[str, Any]:
        """The API representation with the live progress of a running task."""
        live = self.progress.get(view.task_id) if view.status is Status.RUNNING else None
        return view.to_builtins(progress=live)

    async def positions(self, task_id: str) -> list[PositionView]:
        await self.task(task_id)
        return await self.read.positions(task_id)

    async def task_events(
        self, task_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[StoredEvent]:
        events = await self.store.read_stream(task_id, after_position=after, limit=limit)
        if not events and after == 0:
            raise TaskNotFoundError(task_id)
        if not events:
            await self.task(task_id)
        return events

    async def fills(self, task_id: str, *, offset: int = 0, limit: int = 100) -> Page:
        """The task's fills ``offset`` to ``offset + limit`` and their total (coinbt.results)."""
        return await self.results.fills(await self.task(task_id), offset, limit)

    async def trades(self, task_id: str, *, offset: int = 0, limit: int | None = 100) -> Page:
        """The task's round-trip trades ``offset`` to ``offset + limit`` and their total."""
        return await self.results.trades(await self.task(task_id), offset, limit)

    async def equity(self, task_id: str) -> tuple[Any, Any]:
        """(ts, equity) arrays of a completed task's equity curve."""
        return await self.results.equity(await self.task(task_id))

    async def artifact(self, ref: ArtifactRef) -> bytes:
        """An artifact's bytes from whichever store holds it, checked against its sha256.
        ``ArtifactPendingError`` while its upload is pending; ``ArtifactLostError`` if it can
        never be stored."""
        row = await self.outbox.get(ref.key)
        if row is None:  # no record of where it is: try the configured store
            return await self.artifacts.get_bytes(ref.key, ref.sha256)
        if row.state == "pending":
            raise ArtifactPendingError(
                ref.key, row.attempts, row.last_error, retry_after_s=max(1.0, self.uploader.delay)
            )
        if row.state == "failed" or row.location is None:
            raise ArtifactLostError(ref.key, row.last_error or "unknown reason")
        store = await self.locations.get(row.location)
        return await store.get_bytes(ref.key, ref.sha256)

    async def artifact_states(self, task_id: str) -> list[ArtifactRow]:
        """Where each of the task's artifacts is, or how its upload is going."""
        await self.task(task_id)
        return await self.outbox.for_task(task_id)


def indexed(index: int, field: str) -> str:
    """The field path of ``field`` inside element ``index`` of a batch: ``[3].params.fast``."""
    if not field:
        return f"[{index}]"
    return f"[{index}]{field}" if field.startswith("[") else f"[{index}].{field}"


@asynccontextmanager
async def _executor(config: Config, workers: int) -> AsyncIterator[Executor | None]:
    if workers == 0:
        yield None
        return
    async with config.executor(workers) as executor:
        yield executor


@asynccontextmanager
async def open_system(config: Config) -> AsyncIterator[System]:
    """Start everything; on exit, stop taking commands, let running backtests finish for up to
    ``shutdown_grace_s`` (the rest are re-queued at the next start), and close the stores.

    An error raised inside the ``async with`` block comes out as itself, not wrapped in the
    exception groups of the task groups it passed through.
    """
    try:
        async with _open_system(config) as system:
            yield system
    except BaseExceptionGroup as group:
        single = _single(group)
        if single is None:
            raise
        raise single from None


def _single(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The one exception inside nested one-member groups, or None."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        if len(error.exceptions) != 1:
            return None
        error = error.exceptions[0]
    return error


@asynccontextmanager
async def _artifact_store(config: Config, locations: ArtifactLocations) -> AsyncIterator[str]:
    """Open the configured artifact store; yields its location."""
    if config.artifacts is not None:
        yield locations.add(config.artifacts)
    elif config.artifacts_url is not None:
        async with open_artifact_store(config.artifacts_url, s3=config.s3) as store:
            yield locations.add(store)
    else:
        yield locations.add(LocalArtifactStore(config.data_path / "artifacts"))


@asynccontextmanager
async def _open_system(config: Config) -> AsyncIterator[System]:
    data = config.data_path
    data.mkdir(parents=True, exist_ok=True)
    staging = data / "staging"
    staging.mkdir(parents=True, exist_ok=True)
    workers_count = defaults.worker_count() if config.workers is None else config.workers
    if config.backup_to is not None and is_memory(config.db):
        raise BackupError("--db memory: keeps nothing to back up")
    if config.backup_to is not None and is_dsn(config.db):
        raise BackupError(
            "periodic backups copy a SQLite file; back up a PostgreSQL database with its own "
            "tools (pg_dump, pg_basebackup, WAL archiving)"
        )

    async with (
        open_backend(config.db, data, clock=config.clock, retry_s=config.heartbeat_s) as backend,
        open_locations(data, config.s3) as locations,
        _artifact_store(config, locations) as location,
        AsyncExitStack() as stack,
    ):
        artifacts = await locations.get(location)
        backups: PeriodicBackups | None = None
        if config.backup_to is not None and config.backup_every_s is not None:
            backup_store = await stack.enter_async_context(
                open_artifact_store(config.backup_to, s3=config.s3)
            )
            backups = PeriodicBackups(
                Path(config.db), backup_store, config.backup_every_s, clock=config.clock
            )
        shared = backend.liveness is not None
        uploader = Uploader(
            backend.outbox,
            artifacts,
            location,
            backoff_s=config.upload_backoff_s,
            adopt_every_s=config.heartbeat_s if shared else None,
        )
        async with _executor(config, workers_count) as executor:
            system = _assemble(
                config, backend, executor, workers_count, uploader, locations, staging, backups
            )
            supervisor = Supervisor(clock=config.clock)
            async with anyio.create_task_group() as tg:
                await tg.start(supervisor.run, system.projector)
                await tg.start(supervisor.run, system.task_manager)
                await tg.start(supervisor.run, uploader)
                for worker in system.workers:
                    await tg.start(supervisor.run, worker)
                if backend.liveness is not None:  # progress of runs in the other processes
                    relay = ProgressRelay(
                        str(config.db), system.progress, backend.liveness.instance_id
                    )
                    await tg.start(relay.run)
                if backups is not None:
                    tg.start_soon(backups.run)
                try:
                    yield system
                finally:
                    with anyio.CancelScope(shield=True):
                        await _shutdown(system, config.shutdown_grace_s)
                    if executor is not None:
                        executor.prepare_close()
                    tg.cancel_scope.cancel()


def _assemble(
    config: Config,
    backend: Backend,
    executor: Executor | None,
    workers_count: int,
    uploader: Uploader,
    locations: ArtifactLocations,
    staging: Path,
    backups: PeriodicBackups | None,
) -> System:
    """Build the actors (not started yet) and the facade over them."""
    store = backend.store
    progress = LiveProgress()
    projector = Projector(store, backend.projection)

    async def catch_up() -> None:
        await projector.wait_for(await store.last_position())

    task_manager = TaskManager(
        store,
        backend.read,
        config.ids,
        queue_capacity=config.queue_capacity,
        max_attempts=config.max_attempts,
        catch_up=catch_up,
        liveness=backend.liveness,
        heartbeat_s=config.heartbeat_s,
    )
    instance = None if backend.liveness is None else backend.liveness.instance_id
    workers = (
        []
        if executor is None
        else [
            Worker(
                worker_id(instance, n),
                task_manager,
                executor,
                backend.outbox,
                uploader,
                backend.catalog,
                staging,
                progress,
                max_bars=config.max_bars,
            )
            for n in range(1, workers_count + 1)
        ]
    )
    by_id = {w.worker_id: w for w in workers}

    def abort(worker_id: str, task_id: str, attempt: int) -> None:
        worker = by_id.get(worker_id)
        if worker is not None:
            worker.tell_nowait(Abort(task_id, attempt))

    task_manager.abort = abort
    return System(
        config,
        store,
        backend.read,
        projector,
        task_manager,
        workers,
        backend.catalog,
        uploader.store,
        progress,
        executor,
        backend.outbox,
        uploader,
        locations,
        backups,
    )


async def _shutdown(system: System, grace_s: float) -> None:
    system.task_manager.stop_dispatching()
    with anyio.move_on_after(grace_s):
        await system.task_manager.wait_no_running()
    for worker in system.workers:
        with anyio.move_on_after(grace_s):
            await worker.wait_uploads()
    with anyio.move_on_after(grace_s):  # what is not stored by then stays pending for next time
        await system.uploader.wait_settled()
    last = await system.store.last_position()
    with anyio.move_on_after(grace_s):
        await system.projector.wait_for(last)
