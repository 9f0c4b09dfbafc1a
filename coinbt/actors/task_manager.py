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

**A shared log** (``liveness`` given: several processes on one PostgreSQL database). Correctness
still comes from the log's version check alone; what changes is what the in-memory state knows:

- The TaskManager *follows the log* from the checkpoint its start-up snapshot was taken at, and
  evolves its states with every event: a ``Queued`` from another process enqueues the task here
  too (any process's worker may run it), a ``Started`` elsewhere takes it off this queue, a
  terminal event settles it, and one that ends (or re-queues) a task running *here* aborts the
  local worker. An event at or below the version already in memory was appended here (or
  conflicts with an append in flight, which will be refused and reloaded): it is skipped.
- Two processes deciding on one task at once: the second append is refused
  (``ConcurrencyError``) and reloads the task. A claim that loses is simply not granted (the
  worker asks again); a cancel is decided again on the reloaded state (a few times at most).
- *Recovery*: a task running in the log may be running in another, live process. Worker ids
  start with their process's instance id; a task is re-queued (``Recover``) only once its owner's
  instance lock can be taken (``Liveness.take_if_dead``: that process is gone), at start and
  every ``heartbeat_s``. The survivor holding the dead owner's lock reads each task afresh from
  the log and appends at that version, so exactly one process recovers it.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

import anyio
from anyio.abc import TaskGroup

from coinbt import defaults
from coinbt.actors._chains import AppendChains
from coinbt.actors._shared_log import follow_log, watch_owners
from coinbt.actors.base import Actor, Reply
from coinbt.actors.task_messages import (
    CancelTask,
    Claim,
    ClaimTask,
    FinishTask,
    Followed,
    Loaded,
    Message,
    RecoverTask,
    RequeueTask,
    SubmitBatch,
    SubmitTask,
    Submitted,
)
from coinbt.clock import IdFactory
from coinbt.errors import (
    CoinbtError,
    ConcurrencyError,
    InvalidTransitionError,
    QueueFullError,
    ShuttingDownError,
    TaskNotFoundError,
)
from coinbt.events import Cancelled, Completed, Failed, StoredEvent, TaskEvent, TaskSpec
from coinbt.lifecycle import (
    Cancel,
    Recover,
    Start,
    Status,
    Submit,
    TaskState,
    decide,
    evolve,
    fold,
)
from coinbt.projections.base import ReadModels
from coinbt.store.base import EventStore
from coinbt.store.instances import Liveness, owner_of

__all__ = (
    "SMALL_BARS",
    "CancelTask",
    "Claim",
    "ClaimTask",
    "FinishTask",
    "RequeueTask",
    "SubmitBatch",
    "SubmitTask",
    "Submitted",
    "TaskManager",
)

log = logging.getLogger("coinbt.task_manager")

SMALL_BARS = defaults.SMALL_BARS
"""Tasks on at most this many bars run in milliseconds: a worker may claim many at once (one
group commit starts them all). A larger task is claimed alone."""

_CANCEL_TRIES = 5


def _is_small(spec: TaskSpec) -> bool:
    synthetic = spec.data.synthetic
    return synthetic is not None and synthetic.bars <= SMALL_BARS


class TaskManager(Actor[Message]):
    name = "task-manager"

    def __init__(
        self,
        store: EventStore,
        read_models: ReadModels,
        ids: IdFactory,
        *,
        queue_capacity: int = defaults.QUEUE_CAPACITY,
        max_attempts: int = defaults.MAX_ATTEMPTS,
        abort: Callable[[str, str, int], None] = lambda worker_id, task_id, attempt: None,
        catch_up: Callable[[], Awaitable[None]] | None = None,
        liveness: Liveness | None = None,
        heartbeat_s: float = defaults.HEARTBEAT_S,
        mailbox: int = defaults.MAILBOX,
        finished_cache: int = defaults.FINISHED_CACHE,
    ) -> None:
        super().__init__(capacity=mailbox)
        self._store = store
        self._read_models = read_models
        self._ids = ids
        self.queue_capacity = queue_capacity
        self.max_attempts = max_attempts
        self.abort = abort
        self._catch_up = catch_up
        self._liveness = liveness
        self._heartbeat_s = heartbeat_s
        self._finished_cache = finished_cache
        self._tg: TaskGroup | None = None
        self._chains = AppendChains(store, self._refused, self._touch)
        self._recovered = False
        self._stopping = False
        self._reset()

    def _reset(self) -> None:
        self._states: dict[str, TaskState] = {}
        # Finished tasks, oldest first, with the position of their terminal event once it has
        # been followed (None until then; a shared log keeps those: see ``_evict``).
        self._finished: OrderedDict[str, int | None] = OrderedDict()
        self._queue: deque[str] = deque()
        self._queued: set[str] = set()
        self._running: dict[str, str] = {}  # task id -> worker id, for this process's workers
        self._remote: dict[str, str] = {}  # task id -> worker id, running in other processes
        self._claims: deque[ClaimTask] = deque()
        self._keys: dict[str, str] = {}
        self._small: set[str] = set()  # queued tasks known to be small
        self._followed = 0  # the log position the state includes every event up to (shared)
        self._changed = anyio.Event()

    # --- what others may read --------------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        return len(self._queued)

    @property
    def running(self) -> dict[str, str]:
        """Tasks running on this process's workers (task id -> worker id)."""
        return dict(self._running)

    @property
    def idle(self) -> bool:
        """Nothing queued, running (here or, on a shared log, anywhere) or being appended."""
        return not self._queued and not self._running and not self._remote and not self._chains.busy

    @property
    def instance_id(self) -> str | None:
        return None if self._liveness is None else self._liveness.instance_id

    def stop_dispatching(self) -> None:
        """Shutting down: take no new submissions and start nothing new."""
        self._stopping = True

    async def wait_no_running(self) -> None:
        """Return once no task runs on this process's workers."""
        while self._running:
            await self._changed.wait()

    async def wait_idle(self) -> None:
        """Return once :attr:`idle`."""
        while not self.idle:
            await self._changed.wait()

    def _touch(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def _is_local(self, worker_id: str) -> bool:
        return self._liveness is None or owner_of(worker_id) == self._liveness.instance_id

    # --- start-up and recovery -------------------------------------------------------------------

    async def on_start(self, tg: TaskGroup) -> None:
        self._tg = tg
        self._chains.bind(tg)
        if self._recovered:  # a restart after a failure: waiting workers must ask again
            for claim in self._claims:
                claim.reply.fail(CoinbtError("the task manager restarted; ask again"))
        self._reset()
        if self._catch_up is not None:
            await self._catch_up()  # the read models must list every task before we trust them
        if self._liveness is None:
            await self._start_alone()
        else:
            await self._start_shared(tg)
        self._recovered = True
        self._touch()

    async def _start_alone(self) -> None:
        """One process owns the log: whatever it left running died with it."""
        for view in await self._read_models.unfinished():
            state = await self._load(view.task_id)
            if state.status is Status.RUNNING and not self._recovered:
                # Left running by a process that died: re-queue (attempt + 1) or fail.
                events = decide(state, Recover(self.max_attempts))
                await self._store.append(state.task_id, events, state.version)
                state = _evolve_all(state, events)
                log.warning("recovered interrupted task %s: now %s", state.task_id, state.status)
            self._track(state)

    async def _start_shared(self, tg: TaskGroup) -> None:
        """Load the unfinished tasks as of one snapshot of the read models, then follow the log
        from that snapshot's checkpoint; tasks of dead processes are recovered by the watcher."""
        checkpoint, views = await self._read_models.unfinished_at()
        self._followed = checkpoint
        for view in views:
            state = await self._load(view.task_id)
            if state.is_terminal:  # it ended since the snapshot
                self._settle(state, checkpoint)
            else:
                self._track(state)
        tg.start_soon(follow_log, self._store, checkpoint, self._deliver)
        assert self._liveness is not None
        tg.start_soon(
            watch_owners,
            self._liveness,
            self._heartbeat_s,
            lambda: self._remote,
            self._load,
            self._ask_recover,
        )

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
            if self._liveness is not None and state.spec is not None and _is_small(state.spec):
                self._small.add(task_id)
        elif state.status is Status.RUNNING and state.worker_id is not None:
            if self._is_local(state.worker_id):
                self._running.setdefault(task_id, state.worker_id)
            else:
                self._remote[task_id] = state.worker_id

    # --- commands --------------------------------------------------------------------------------

    async def handle(self, message: Message) -> None:
        match message:
            case SubmitTask():
                self._submit(message)
            case SubmitBatch():
                self._submit_batch(message)
            case ClaimTask():
                self._claims.append(message)
            case CancelTask():
                self._cancel(message)
            case Loaded(state=state, then=then):
                if state.task_id not in self._states:
                    then.loaded = state
                self._cancel(then)
            case FinishTask():
                self._finish(message)
            case RequeueTask():
                self._requeue(message)
            case Followed(events=events):
                self._follow(events)
            case RecoverTask():
                self._recover(message)
        self._dispatch()

    def _submit(self, message: SubmitTask) -> None:
        key = message.idempotency_key
        if key is not None and key in self._keys:
            task_id = self._keys[key]
            self._chains.after(
                task_id, lambda: message.reply.set(Submitted(task_id, 0, existing=True))
            )
            return
        if self._stopping:
            message.reply.fail(ShuttingDownError("the service is shutting down"))
            return
        if len(self._queued) >= self.queue_capacity:
            message.reply.fail(QueueFullError(self.queue_capacity))
            return
        if key is not None:
            self._submit_keyed(message, key)
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

        self._chains.append(task_id, events, 0, done)

    def _submit_batch(self, message: SubmitBatch) -> None:
        """Queue every spec of a batch with one atomic append (DESIGN section 11): the tasks
        join the queue at once, in order; if the append fails they are dropped again (the
        refusal reloads each, and a task with no events is forgotten)."""
        if self._stopping:
            message.reply.fail(ShuttingDownError("the service is shutting down"))
            return
        if len(self._queued) + len(message.specs) > self.queue_capacity:
            message.reply.fail(QueueFullError(self.queue_capacity))
            return
        appends: list[tuple[str, Sequence[TaskEvent]]] = []
        for spec, bars in zip(message.specs, message.bars, strict=True):
            task_id = self._ids()
            state = TaskState(task_id=task_id)
            events = decide(state, Submit(spec, None))
            self._track(_evolve_all(state, events))
            if bars is not None and bars <= SMALL_BARS:
                self._small.add(task_id)
            appends.append((task_id, events))

        def done(stored: list[list[StoredEvent]] | None, error: CoinbtError | None) -> None:
            if error is not None:
                message.reply.fail(error)
                return
            assert stored is not None
            message.reply.set(
                [
                    Submitted(task_id, part[-1].position)
                    for (task_id, _), part in zip(appends, stored, strict=True)
                ]
            )

        self._chains.append_new(appends, done)

    def _submit_keyed(self, message: SubmitTask, key: str) -> None:
        """A submission with an idempotency key: its task id comes from the key, so the log
        itself settles a race between processes (one ``Queued`` at version 0 per stream). The
        task joins the queue only once that ``Queued`` is in the log: until then the stream may
        be another process's. A refusal means it is: this process learns of that task by
        following the log (it may already be running it), so the refusal reloads nothing."""
        task_id = keyed_task_id(key)
        state = TaskState(task_id=task_id)
        events = decide(state, Submit(message.spec, key))
        queued = _evolve_all(state, events)
        self._keys[key] = task_id  # a second submission here waits for this one's append
        small = message.bars is not None and message.bars <= SMALL_BARS

        def done(stored: list[StoredEvent] | None, error: CoinbtError | None) -> None:
            if error is None:
                assert stored is not None
                if task_id not in self._states:  # (following the log may have been quicker)
                    self._track(queued)
                    if small:
                        self._small.add(task_id)
                    self._touch()
                    self._dispatch()
                message.reply.set(Submitted(task_id, stored[-1].position))
            elif isinstance(error, ConcurrencyError):
                # Another process submitted this key first: its task is the answer.
                message.reply.set(Submitted(task_id, 0, existing=True))
            else:
                self._keys.pop(key, None)
                message.reply.fail(error)

        self._chains.append(task_id, events, 0, done, reload=False)

    def _cancel(self, message: CancelTask) -> None:
        task_id = message.task_id
        if self._chains.pending(task_id):
            # The state in memory runs ahead of the log while an append is on its way (a
            # Completed, another cancel): decide only on what the log recorded, once it settled.
            self._chains.after(task_id, partial(self._retell, message))
            return
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
        if not events:  # already cancelled (in the log): idempotent, nothing appended
            message.reply.set(0)
            return
        worker_id = self._running.get(task_id) if state.status is Status.RUNNING else None
        self._settle(_evolve_all(state, events))

        def done(stored: list[StoredEvent] | None, error: CoinbtError | None) -> None:
            if error is not None:
                if not self._decide_again(message, error):
                    message.reply.fail(error)
                return
            assert stored is not None
            if worker_id is not None:
                self.abort(worker_id, task_id, state.attempt)
            message.reply.set(stored[-1].position)

        self._chains.append(task_id, events, state.version, done)

    def _retell(self, message: CancelTask) -> None:
        """Decide ``message`` again through the mailbox (the actor's state is only its own)."""
        message.loaded = None
        try:
            self.tell_nowait(message)
        except CoinbtError as e:
            message.reply.fail(e)

    def _decide_again(self, message: CancelTask, error: CoinbtError) -> bool:
        """Another process changed the task first (the state is reloaded by now): decide the
        cancel again on what the log holds."""
        if not isinstance(error, ConcurrencyError) or message.tries >= _CANCEL_TRIES:
            return False
        message.tries += 1
        message.loaded = None
        try:
            self.tell_nowait(message)
        except CoinbtError:
            return False
        return True

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
            self.tell_nowait(Loaded(state, message))
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
        # The worker is done with it; the task itself is settled only once the outcome is in the
        # log (a cancel meanwhile waits for that, and is answered from what was recorded).
        self._running.pop(task_id, None)
        finished = _evolve_all(state, events)
        answer = _answer(message.reply)

        def done(stored: list[StoredEvent] | None, error: CoinbtError | None) -> None:
            if error is None:
                assert stored is not None
                self._settle(finished, stored[-1].position)
            answer(stored, error)

        self._chains.append(task_id, events, message.started_version, done)

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
        self._enqueue_recovered(requeued)
        self._chains.append(task_id, events, message.started_version, _answer(message.reply))

    def _enqueue_recovered(self, state: TaskState) -> None:
        if state.is_terminal:
            self._settle(state)
        else:  # it had its turn already: first in line
            self._states[state.task_id] = state
            self._queued.add(state.task_id)
            self._queue.appendleft(state.task_id)

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
                    self._queue.popleft()  # cancelled or started elsewhere while queued
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
                if error is None:  # else another process started it first: not granted
                    claims[index] = granted
                remaining[0] -= 1
                if remaining[0] == 0:  # every Started is committed (or refused): answer
                    claim.reply.set([c for c in claims if c is not None])

            self._chains.append(task_id, events, state.version, done)

    def _settle(self, state: TaskState, position: int | None = None) -> None:
        """Record a decided state; a finished task leaves the queue and the running sets."""
        task_id = state.task_id
        self._states[task_id] = state
        if state.is_terminal:
            self._queued.discard(task_id)
            self._running.pop(task_id, None)
            self._remote.pop(task_id, None)
            self._finished[task_id] = position
            self._finished.move_to_end(task_id)
            self._evict()

    def _evict(self) -> None:
        """Forget the oldest finished tasks beyond the cache. On a shared log, only those whose
        terminal event has been followed: an event of a forgotten task that is still to be
        followed would otherwise look like a new task."""
        while len(self._finished) > self._finished_cache:
            task_id, position = next(iter(self._finished.items()))
            if self._liveness is not None and (position is None or position > self._followed):
                return
            self._finished.popitem(last=False)
            self._states.pop(task_id, None)

    # --- following a shared log ------------------------------------------------------------------

    def _follow(self, events: list[StoredEvent]) -> None:
        for stored in events:
            self._apply_followed(stored)
            self._followed = stored.position
        self._evict()
        self._touch()

    def _apply_followed(self, stored: StoredEvent) -> None:
        task_id = stored.stream_id
        state = self._states.get(task_id)
        if state is None:
            if stored.version != 1:
                return  # it ended before we started following: nothing changes it any more
            state = TaskState(task_id=task_id)
        if stored.version <= state.version:
            # Appended here (already in the state), or in conflict with an append in flight
            # (which the log will refuse, reloading the task).
            if task_id in self._finished and _is_terminal(stored):
                self._finished[task_id] = stored.position
            return
        if stored.version > state.version + 1:  # a gap: read the task again
            assert self._tg is not None
            self._tg.start_soon(self._reload, task_id)
            return
        self._evolve_followed(state, evolve(state, stored.event), stored.position)

    def _evolve_followed(self, before: TaskState, after: TaskState, position: int) -> None:
        """Apply another process's event (``before`` -> ``after``) to the queues."""
        task_id = after.task_id
        local_worker = self._running.get(task_id)
        if after.is_terminal:
            if local_worker is not None:  # ended elsewhere (a cancel): stop the run here
                self.abort(local_worker, task_id, before.attempt)
            self._settle(after, position)
        elif after.status is Status.QUEUED:
            self._running.pop(task_id, None)
            self._remote.pop(task_id, None)
            if local_worker is not None:  # re-queued elsewhere: this run's result is void
                self.abort(local_worker, task_id, before.attempt)
            if before.status is Status.RUNNING:
                self._enqueue_recovered(after)
            else:
                self._track(after)
        else:  # running (Started, or a Filled on the way to Completed)
            self._queued.discard(task_id)
            self._small.discard(task_id)
            self._track(after)

    async def _deliver(self, events: list[StoredEvent]) -> None:
        await self.tell(Followed(events))

    async def _ask_recover(self, state: TaskState, owner: str) -> int:
        position: int = await self.ask(partial(RecoverTask, state, owner))
        return position

    def _recover(self, message: RecoverTask) -> None:
        loaded = message.state
        task_id = loaded.task_id
        events = decide(loaded, Recover(self.max_attempts))
        if not events:
            message.reply.set(0)
            return
        recovered = _evolve_all(loaded, events)
        log.warning(
            "task %s was running in %s, which is gone: now %s",
            task_id,
            message.owner,
            recovered.status,
        )
        current = self._states.get(task_id)
        if current is None or current.version <= loaded.version:
            self._remote.pop(task_id, None)
            self._enqueue_recovered(recovered)
        self._chains.append(task_id, events, loaded.version, _answer(message.reply))

    # --- appending (the chains: coinbt/actors/_chains.py) ------------------------------------

    async def _refused(self, task_id: str, error: CoinbtError) -> None:
        # Expected on a shared log (another process decided first), a surprise alone.
        level = logging.INFO if self._liveness is not None else logging.WARNING
        log.log(level, "append to %s refused (%s); reloading its state", task_id, error)
        await self._reload(task_id)

    async def _reload(self, task_id: str) -> None:
        """Replace the task's state with the log's."""
        try:
            for _ in range(5):
                events = await self._store.read_stream(task_id)
                state = fold(task_id, [stored.event for stored in events])
                current = self._states.get(task_id)
                # Following a shared log may have applied newer events meanwhile: read again.
                if self._liveness is None or current is None or current.version <= state.version:
                    break
        except CoinbtError:
            log.exception("cannot reload task %s", task_id)
            return
        self._queued.discard(task_id)
        self._running.pop(task_id, None)
        self._remote.pop(task_id, None)
        if state.status is None:  # its first append never committed
            self._states.pop(task_id, None)
            return
        self._track(state)
        if state.is_terminal:
            self._settle(state, events[-1].position)
        else:
            self._finished.pop(task_id, None)
        self._touch()


def _answer(reply: Reply[int]) -> Callable[[list[StoredEvent] | None, CoinbtError | None], None]:
    """An append's ``done``: the position of its last event, or the error."""

    def done(stored: list[StoredEvent] | None, error: CoinbtError | None) -> None:
        if error is not None:
            reply.fail(error)
        else:
            assert stored is not None
            reply.set(stored[-1].position)

    return done


def _is_terminal(stored: StoredEvent) -> bool:
    return isinstance(stored.event, Completed | Failed | Cancelled)


def keyed_task_id(key: str) -> str:
    """The id of the task submitted with idempotency key ``key``: the same in every process.
    32 hex characters, like the random ids (``coinbt.clock.random_ids``)."""
    return hashlib.sha256(b"coinbt idempotency key\0" + key.encode()).hexdigest()[:32]


def _evolve_all(state: TaskState, events: Sequence[TaskEvent]) -> TaskState:
    for event in events:
        state = evolve(state, event)
    return state
