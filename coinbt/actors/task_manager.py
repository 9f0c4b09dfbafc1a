"""The TaskManager: the only place that decides lifecycle transitions.

It holds the state of every unfinished task (and a cache of recently finished ones), the run queue
and the workers waiting for work. Each command is decided at once against the in-memory state with
``coinbt.lifecycle.decide``; the state moves on optimistically and the append runs in the
background, so the mailbox never waits on the disk and many decisions share one group commit.
Appends of one task are chained (each waits for the one before), so they reach the log in decision
order; each carries the version its decision saw, so the log's check refuses anything stale, and a
refused append reloads the task's state from the log.

Worker results are appended at the version the worker saw at ``Started`` (DESIGN section 3): if
anything was recorded since (a cancel), the result is refused and discarded. A run whose executor
lost its worker comes back as ``RequeueTask`` and is decided like recovery after a restart
(``Recover``): queued again at the head of the queue (attempt + 1), or failed past max_attempts.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import anyio
from anyio.abc import TaskGroup

from coinbt.actors.base import Actor, Reply
from coinbt.clock import IdFactory
from coinbt.errors import (
    CoinbtError,
    InvalidTransitionError,
    QueueFullError,
    ShuttingDownError,
    TaskNotFoundError,
)
from coinbt.events import StoredEvent, TaskEvent, TaskSpec
from coinbt.lifecycle import (
    Cancel,
    Complete,
    Fail,
    Recover,
    Start,
    Status,
    Submit,
    TaskState,
    decide,
    evolve,
    fold,
)
from coinbt.projections.sqlite import ReadModelReader
from coinbt.store.base import EventStore

__all__ = (
    "CancelTask",
    "Claim",
    "ClaimTask",
    "FinishTask",
    "RequeueTask",
    "SubmitTask",
    "Submitted",
    "TaskManager",
)

log = logging.getLogger("coinbt.task_manager")

SMALL_BARS = 50_000
"""Tasks on at most this many bars run in milliseconds: a worker may claim many at once (one
group commit starts them all). A larger task is claimed alone."""


@dataclass(frozen=True, slots=True)
class Submitted:
    task_id: str
    position: int  # the position of its Queued event (wait for the projection to reach it)
    existing: bool = False  # an earlier submission with the same idempotency key


@dataclass(frozen=True, slots=True)
class Claim:
    task_id: str
    spec: TaskSpec
    attempt: int
    version: int  # the stream's version after Started: results are appended at it


@dataclass(slots=True)
class SubmitTask:
    spec: TaskSpec
    idempotency_key: str | None
    reply: Reply[Submitted]
    bars: int | None = None  # the size of its data, if known (small tasks are batched)


@dataclass(slots=True)
class CancelTask:
    task_id: str
    reason: str
    reply: Reply[int]  # position to wait for (0: nothing appended, already cancelled)
    loaded: TaskState | None = None


@dataclass(slots=True)
class ClaimTask:
    """A worker asks for work: one task, or up to ``max_tasks`` small ones (see ``SMALL_BARS``)."""

    worker_id: str
    reply: Reply[list[Claim]]
    max_tasks: int = 1


@dataclass(slots=True)
class FinishTask:
    task_id: str
    started_version: int
    outcome: Complete | Fail
    reply: Reply[int]


@dataclass(slots=True)
class RequeueTask:
    """The executor lost the worker running a started task: re-queue it (or fail it)."""

    task_id: str
    started_version: int
    reason: str
    reply: Reply[int]


@dataclass(slots=True)
class _Loaded:
    """A task's state loaded from the log by a helper, handed back through the mailbox."""

    state: TaskState
    then: CancelTask


Message = SubmitTask | CancelTask | ClaimTask | FinishTask | RequeueTask | _Loaded


@dataclass(slots=True)
class _Chain:
    """The tail of one task's chain of appends."""

    done: anyio.Event = field(default_factory=anyio.Event)


class TaskManager(Actor[Message]):
    name = "task-manager"

    def __init__(
        self,
        store: EventStore,
        read_models: ReadModelReader,
        ids: IdFactory,
        *,
        queue_capacity: int = 10_000,
        max_attempts: int = 3,
        abort: Callable[[str, str], None] = lambda worker_id, task_id: None,
        catch_up: Callable[[], Awaitable[None]] | None = None,
        mailbox: int = 4096,
        finished_cache: int = 10_000,
    ) -> None:
        super().__init__(capacity=mailbox)
        self._store = store
        self._read_models = read_models
        self._ids = ids
        self.queue_capacity = queue_capacity
        self.max_attempts = max_attempts
        self.abort = abort
        self._catch_up = catch_up
        self._finished_cache = finished_cache
        self._tg: TaskGroup | None = None
        self._recovered = False
        self._stopping = False
        self._reset()

    def _reset(self) -> None:
        self._states: dict[str, TaskState] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._queue: deque[str] = deque()
        self._queued: set[str] = set()
        self._running: dict[str, str] = {}  # task id -> worker id
        self._claims: deque[ClaimTask] = deque()
        self._keys: dict[str, str] = {}
        self._small: set[str] = set()  # queued tasks known to be small
        self._chains: dict[str, _Chain] = {}
        self._changed = anyio.Event()

    # --- what others may read --------------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        return len(self._queued)

    @property
    def running(self) -> dict[str, str]:
        return dict(self._running)

    @property
    def idle(self) -> bool:
        return not self._queued and not self._running and not self._chains

    def stop_dispatching(self) -> None:
        """Shutting down: take no new submissions and start nothing new."""
        self._stopping = True

    async def wait_no_running(self) -> None:
        while self._running:
            await self._changed.wait()

    async def wait_idle(self) -> None:
        """Return once nothing is queued, running or being appended."""
        while not self.idle:
            await self._changed.wait()

    def _touch(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    # --- start-up and recovery -------------------------------------------------------------------

    async def on_start(self, tg: TaskGroup) -> None:
        self._tg = tg
        if self._recovered:  # a restart after a failure: waiting workers must ask again
            for claim in self._claims:
                claim.reply.fail(CoinbtError("the task manager restarted; ask again"))
        self._reset()
        if self._catch_up is not None:
            await self._catch_up()  # the read models must list every task before we trust them
        for view in await self._read_models.unfinished():
            state = await self._load(view.task_id)
            if state.status is Status.RUNNING and not self._recovered:
                # Left running by a process that died: re-queue (attempt + 1) or fail.
                events = decide(state, Recover(self.max_attempts))
                await self._store.append(state.task_id, events, state.version)
                state = _evolve_all(state, events)
                log.warning("recovered interrupted task %s: now %s", state.task_id, state.status)
            self._track(state)
        self._recovered = True
        self._touch()

    async def _load(self, task_id: str) -> TaskState:
        events = await self._store.read_stream(task_id)
        return fold(task_id, [stored.event for stored in events])

    def _track(self, state: TaskState) -> None:
        task_id = state.task_id
        self._states[task_id] = state
        if state.idempotency_key is not None:
            self._keys[state.idempotency_key] = task_id
        if state.status is Status.QUEUED and task_id not in self._queued:
            self._queued.add(task_id)
            self._queue.append(task_id)
        elif state.status is Status.RUNNING and state.worker_id is not None:
            self._running.setdefault(task_id, state.worker_id)

    # --- commands --------------------------------------------------------------------------------

    async def handle(self, message: Message) -> None:
        match message:
            case SubmitTask():
                self._submit(message)
            case ClaimTask():
                self._claims.append(message)
            case CancelTask():
                self._cancel(message)
            case _Loaded(state=state, then=then):
                if state.task_id not in self._states:
                    then.loaded = state
                self._cancel(then)
            case FinishTask():
                self._finish(message)
            case RequeueTask():
                self._requeue(message)
        self._dispatch()

    def _submit(self, message: SubmitTask) -> None:
        key = message.idempotency_key
        if key is not None and key in self._keys:
            task_id = self._keys[key]
            self._after_chain(
                task_id, lambda: message.reply.set(Submitted(task_id, 0, existing=True))
            )
            return
        if self._stopping:
            message.reply.fail(ShuttingDownError("the service is shutting down"))
            return
        if len(self._queued) >= self.queue_capacity:
            message.reply.fail(QueueFullError(self.queue_capacity))
            return
        task_id = self._ids()
        state = TaskState(task_id=task_id)
        events = decide(state, Submit(message.spec, key))
        self._track(_evolve_all(state, events))
        if message.bars is not None and message.bars <= SMALL_BARS:
            self._small.add(task_id)

        def done(stored: list[StoredEvent] | None, error: CoinbtError | None) -> None:
            if error is not None:
                message.reply.fail(error)
            else:
                assert stored is not None
                message.reply.set(Submitted(task_id, stored[-1].position))

        self._append(task_id, events, 0, done)

    def _cancel(self, message: CancelTask) -> None:
        task_id = message.task_id
        state = self._states.get(task_id) or message.loaded
        if state is None:  # not in memory: load it off the mailbox, then come back
            assert self._tg is not None
            self._tg.start_soon(self._load_then, message)
            return
        try:
            events = decide(state, Cancel(message.reason))
        except CoinbtError as e:
            message.reply.fail(e)
            return
        if not events:  # already cancelled: idempotent, nothing appended
            self._after_chain(task_id, lambda: message.reply.set(0))
            return
        worker_id = self._running.get(task_id) if state.status is Status.RUNNING else None
        self._settle(_evolve_all(state, events))

        def done(stored: list[StoredEvent] | None, error: CoinbtError | None) -> None:
            if error is not None:
                message.reply.fail(error)
                return
            assert stored is not None
            if worker_id is not None:
                self.abort(worker_id, task_id)
            message.reply.set(stored[-1].position)

        self._append(task_id, events, state.version, done)

    async def _load_then(self, message: CancelTask) -> None:
        try:
            state = await self._load(message.task_id)
        except CoinbtError as e:
            message.reply.fail(e)
            return
        if state.status is None:
            message.reply.fail(TaskNotFoundError(message.task_id))
            return
        try:
            self.tell_nowait(_Loaded(state, message))
        except CoinbtError as e:
            message.reply.fail(e)

    def _finish(self, message: FinishTask) -> None:
        task_id = message.task_id
        state = self._states.get(task_id)
        if state is None:
            message.reply.fail(TaskNotFoundError(task_id))
            return
        try:
            events = decide(state, message.outcome)
        except CoinbtError as e:  # cancelled meanwhile: the result is discarded
            message.reply.fail(e)
            return
        self._settle(_evolve_all(state, events))

        def done(stored: list[StoredEvent] | None, error: CoinbtError | None) -> None:
            if error is not None:
                message.reply.fail(error)
            else:
                assert stored is not None
                message.reply.set(stored[-1].position)

        self._append(task_id, events, message.started_version, done)

    def _requeue(self, message: RequeueTask) -> None:
        task_id = message.task_id
        state = self._states.get(task_id)
        if state is None:
            message.reply.fail(TaskNotFoundError(task_id))
            return
        events = decide(state, Recover(self.max_attempts))
        if not events:  # not running any more (cancelled meanwhile): nothing to re-queue
            message.reply.fail(InvalidTransitionError(task_id, str(state.status), "requeue"))
            return
        requeued = _evolve_all(state, events)
        log.warning(
            "task %s lost its worker (%s): now %s", task_id, message.reason, requeued.status
        )
        self._running.pop(task_id, None)
        if requeued.is_terminal:
            self._settle(requeued)
        else:  # it had its turn already: first in line
            self._states[task_id] = requeued
            self._queued.add(task_id)
            self._queue.appendleft(task_id)

        def done(stored: list[StoredEvent] | None, error: CoinbtError | None) -> None:
            if error is not None:
                message.reply.fail(error)
            else:
                assert stored is not None
                message.reply.set(stored[-1].position)

        self._append(task_id, events, message.started_version, done)

    def _dispatch(self) -> None:
        """Give queued tasks, oldest first, to waiting workers: a large task alone, or a run of
        consecutive small tasks up to the claim's ``max_tasks``."""
        while not self._stopping and self._claims and self._queue:
            claim = self._claims.popleft()
            if claim.reply.done:  # the worker stopped waiting
                continue
            batch: list[str] = []
            while self._queue and len(batch) < claim.max_tasks:
                task_id = self._queue[0]
                if task_id not in self._queued:
                    self._queue.popleft()  # cancelled while queued
                    continue
                if batch and task_id not in self._small:
                    break  # a large task waits for a claim of its own
                self._queue.popleft()
                batch.append(task_id)
                if task_id not in self._small:
                    break
            if not batch:
                self._claims.appendleft(claim)
                return
            self._start(batch, claim)

    def _start(self, task_ids: list[str], claim: ClaimTask) -> None:
        claims: list[Claim | None] = [None] * len(task_ids)
        remaining = [len(task_ids)]
        for index, task_id in enumerate(task_ids):
            state = self._states[task_id]
            events = decide(state, Start(claim.worker_id))
            started = _evolve_all(state, events)
            self._queued.discard(task_id)
            self._small.discard(task_id)
            self._running[task_id] = claim.worker_id
            self._states[task_id] = started
            assert started.spec is not None
            granted = Claim(task_id, started.spec, started.attempt, started.version)

            def done(
                stored: list[StoredEvent] | None,
                error: CoinbtError | None,
                index: int = index,
                granted: Claim = granted,
            ) -> None:
                if error is None:
                    claims[index] = granted
                remaining[0] -= 1
                if remaining[0] == 0:  # every Started is committed (or refused): answer
                    claim.reply.set([c for c in claims if c is not None])

            self._append(task_id, events, state.version, done)

    def _settle(self, state: TaskState) -> None:
        """Record a decided state; a finished task leaves the queue and the running set."""
        task_id = state.task_id
        self._states[task_id] = state
        if state.is_terminal:
            self._queued.discard(task_id)
            self._running.pop(task_id, None)
            self._finished[task_id] = None
            self._finished.move_to_end(task_id)
            while len(self._finished) > self._finished_cache:
                old, _ = self._finished.popitem(last=False)
                self._states.pop(old, None)

    # --- appending -------------------------------------------------------------------------------

    def _append(
        self,
        task_id: str,
        events: Sequence[TaskEvent],
        expected_version: int,
        done: Callable[[list[StoredEvent] | None, CoinbtError | None], None],
    ) -> None:
        previous = self._chains.get(task_id)
        chain = _Chain()
        self._chains[task_id] = chain
        assert self._tg is not None
        self._tg.start_soon(
            self._run_append, task_id, events, expected_version, previous, chain, done
        )

    async def _run_append(
        self,
        task_id: str,
        events: Sequence[TaskEvent],
        expected_version: int,
        previous: _Chain | None,
        chain: _Chain,
        done: Callable[[list[StoredEvent] | None, CoinbtError | None], None],
    ) -> None:
        try:
            if previous is not None:
                await previous.done.wait()
            try:
                stored = await self._store.append(task_id, events, expected_version)
            except CoinbtError as e:
                log.warning("append to %s refused (%s); reloading its state", task_id, e)
                await self._reload(task_id)
                done(None, e)
            else:
                done(stored, None)
        finally:
            chain.done.set()
            if self._chains.get(task_id) is chain:
                del self._chains[task_id]
            self._touch()

    async def _reload(self, task_id: str) -> None:
        try:
            state = await self._load(task_id)
        except CoinbtError:
            log.exception("cannot reload task %s", task_id)
            return
        self._queued.discard(task_id)
        self._running.pop(task_id, None)
        if state.status is not None:
            self._track(state)
            if state.is_terminal:
                self._settle(state)

    def _after_chain(self, task_id: str, then: Callable[[], None]) -> None:
        """Run ``then`` once the task's pending appends (if any) have committed."""
        chain = self._chains.get(task_id)
        if chain is None:
            then()
            return

        async def wait() -> None:
            await chain.done.wait()
            then()

        assert self._tg is not None
        self._tg.start_soon(wait)


def _evolve_all(state: TaskState, events: Sequence[TaskEvent]) -> TaskState:
    for event in events:
        state = evolve(state, event)
    return state
