"""The scheduler's value and its step function (re-exported by ``coinbt.scheduler``)."""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from coinbt import defaults
from coinbt.errors import (
    CoinbtError,
    ConcurrencyError,
    InvalidTransitionError,
    QueueFullError,
    ShuttingDownError,
    TaskNotFoundError,
)
from coinbt.events import Cancelled, Completed, Failed, StoredEvent, TaskEvent, TaskSpec
from coinbt.lifecycle import Cancel, Recover, Start, Status, Submit, TaskState, decide, evolve
from coinbt.scheduler.messages import (
    Abort,
    Append,
    AppendAll,
    BatchAsked,
    CancelAsked,
    Claim,
    ClaimAsked,
    Committed,
    Effect,
    Followed,
    Load,
    Loaded,
    LoadFailed,
    Log,
    Message,
    RecoverAsked,
    Refused,
    Reply,
    ReplyError,
    Snapshot,
    StopDispatching,
    SubmitAsked,
    Submitted,
    WorkerDone,
    WorkerLost,
)

__all__ = ("CANCEL_TRIES", "SMALL_BARS", "Scheduler", "keyed_task_id", "step", "unanswered")

SMALL_BARS = defaults.SMALL_BARS
"""Tasks on at most this many bars run in milliseconds: a worker may claim many at once (one
group commit starts them all). A larger task is claimed alone."""

CANCEL_TRIES = 5
"""How often a cancel refused by the log (another process changed the task) is decided again."""

_RELOAD_TRIES = 5


# --- the value -----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Claimed:
    """The grants of one claim, answered once every Started is committed or refused."""

    handle: object
    granted: list[Claim | None]
    remaining: int


@dataclass(frozen=True, slots=True)
class _Then:
    """What an append's outcome means (its continuation, as data)."""

    kind: str  # submit | keyed | batch | cancel | finish | start | plain
    handle: object = None
    task_ids: tuple[str, ...] = ()
    state: TaskState | None = None  # finish: the state once recorded; keyed: the queued state
    cancel: CancelAsked | None = None
    worker_id: str | None = None  # cancel: the local worker to abort once recorded
    attempt: int = 0
    claimed: _Claimed | None = None
    index: int = 0
    small: bool = False


@dataclass(slots=True)
class _Pending:
    effect: Append | AppendAll
    then: _Then
    reload: bool = True  # a refusal reloads the task(s) from the log


@dataclass(slots=True)
class _Loading:
    tries: int = 0
    then: list[Effect] = field(default_factory=list)  # emitted once the load is applied


_Waits = CancelAsked | SubmitAsked | WorkerDone | WorkerLost
"""Messages decided only once the task has no append or load on its way."""


@dataclass(slots=True)
class Scheduler:
    """Everything the TaskManager knows. Build one per (re)start; only :func:`step` changes it."""

    ids: Callable[[], str]
    queue_capacity: int = defaults.QUEUE_CAPACITY
    max_attempts: int = defaults.MAX_ATTEMPTS
    instance_id: str | None = None  # set on a shared log: worker ids start with "<instance>/"
    finished_cache: int = defaults.FINISHED_CACHE
    states: dict[str, TaskState] = field(default_factory=dict)
    # Finished tasks, oldest first, with the position of their terminal event once known (on a
    # shared log only those whose terminal event has been followed may be forgotten).
    finished: OrderedDict[str, int | None] = field(default_factory=OrderedDict)
    queue: deque[str] = field(default_factory=deque)
    queued: set[str] = field(default_factory=set)
    small: set[str] = field(default_factory=set)  # queued tasks known to be small
    running: dict[str, str] = field(default_factory=dict)  # task -> worker, this process's
    remote: dict[str, str] = field(default_factory=dict)  # task -> worker, other processes'
    claims: deque[ClaimAsked] = field(default_factory=deque)
    keys: dict[str, str] = field(default_factory=dict)
    followed: int = 0
    stopping: bool = False
    next_append: int = 0
    pending: dict[int, _Pending] = field(default_factory=dict)
    in_flight: dict[str, int] = field(default_factory=dict)  # task -> its append in flight
    waiting: dict[str, deque[int]] = field(default_factory=dict)  # task -> appends behind it
    loading: dict[str, _Loading] = field(default_factory=dict)
    blocked: dict[str, list[_Waits]] = field(default_factory=dict)

    @property
    def shared(self) -> bool:
        return self.instance_id is not None

    @property
    def busy(self) -> bool:
        """Whether any append or load is on its way."""
        return bool(self.in_flight) or bool(self.loading)

    @property
    def idle(self) -> bool:
        """Nothing queued, running (here or elsewhere), being appended or loaded."""
        return not self.queued and not self.running and not self.remote and not self.busy

    def task_busy(self, task_id: str) -> bool:
        return task_id in self.in_flight or task_id in self.loading

    def is_local(self, worker_id: str) -> bool:
        if self.instance_id is None:
            return True
        return "/" in worker_id and worker_id.split("/", 1)[0] == self.instance_id


def unanswered(s: Scheduler) -> list[object]:
    """Every reply handle ``s`` still owes an answer (a restart answers them: ask again)."""
    handles: list[object] = [claim.handle for claim in s.claims]
    for pending in s.pending.values():
        then = pending.then
        handles.append(then.claimed.handle if then.claimed is not None else then.handle)
    for loading in s.loading.values():
        handles += [e.handle for e in loading.then if isinstance(e, ReplyError)]
    for messages in s.blocked.values():
        handles += [m.handle for m in messages]
    unique: dict[int, object] = {id(h): h for h in handles if h is not None}
    return list(unique.values())


def keyed_task_id(key: str) -> str:
    """The id of the task submitted with idempotency key ``key``: the same in every process.
    32 hex characters, like the random ids (``coinbt.clock.random_ids``)."""
    return hashlib.sha256(b"coinbt idempotency key\0" + key.encode()).hexdigest()[:32]


# --- the function --------------------------------------------------------------------------------


def step(s: Scheduler, message: Message) -> list[Effect]:
    """Apply ``message`` to ``s`` and return the effects to perform, in order."""
    out: list[Effect] = []
    match message:
        case SubmitAsked():
            _submit(s, message, out)
        case BatchAsked():
            _submit_batch(s, message, out)
        case ClaimAsked():
            s.claims.append(message)
        case CancelAsked():
            _cancel(s, message, None, out)
        case WorkerDone():
            _finish(s, message, out)
        case WorkerLost():
            _requeue(s, message, out)
        case Committed():
            _committed(s, message, out)
        case Refused():
            _refused(s, message, out)
        case Loaded():
            _loaded(s, message.state, message.position, out)
        case LoadFailed():
            _load_failed(s, message, out)
        case Followed(events=events):
            _follow(s, events, out)
        case RecoverAsked():
            _recover(s, message, out)
        case StopDispatching():
            s.stopping = True
        case Snapshot():
            _snapshot(s, message, out)
    _dispatch(s, out)
    return out


def _evolve_all(state: TaskState, events: Sequence[TaskEvent]) -> TaskState:
    for event in events:
        state = evolve(state, event)
    return state


# --- appends: per task, in decision order --------------------------------------------------------


def _append(
    s: Scheduler,
    task_id: str,
    events: Sequence[TaskEvent],
    expected_version: int,
    then: _Then,
    out: list[Effect],
    *,
    reload: bool = True,
) -> None:
    s.next_append += 1
    append_id = s.next_append
    s.pending[append_id] = _Pending(
        Append(append_id, task_id, events, expected_version), then, reload
    )
    if task_id in s.in_flight or task_id in s.loading:
        s.waiting.setdefault(task_id, deque()).append(append_id)
    else:
        s.in_flight[task_id] = append_id
        out.append(s.pending[append_id].effect)


def _advance(s: Scheduler, task_id: str, out: list[Effect]) -> None:
    """The task's append settled (and any reload is applied): emit the next one, or, with none
    left, decide what waited for the task to be quiet."""
    if task_id in s.in_flight or task_id in s.loading:
        return
    behind = s.waiting.get(task_id)
    if behind:
        append_id = behind.popleft()
        if not behind:
            del s.waiting[task_id]
        s.in_flight[task_id] = append_id
        out.append(s.pending[append_id].effect)
        return
    for message in s.blocked.pop(task_id, None) or ():
        _redo(s, message, None, out)


def _redo(s: Scheduler, message: _Waits, loaded: TaskState | None, out: list[Effect]) -> None:
    match message:
        case CancelAsked():
            _cancel(s, message, loaded, out)
        case SubmitAsked():
            _submit(s, message, out)
        case WorkerDone():
            _finish(s, message, out)
        case WorkerLost():
            _requeue(s, message, out)


def _settled(s: Scheduler, append_id: int) -> tuple[_Pending | None, tuple[str, ...]]:
    pending = s.pending.pop(append_id, None)
    if pending is None:  # an append of a scheduler that was replaced (a restart)
        return None, ()
    effect = pending.effect
    streams = (
        (effect.stream,) if isinstance(effect, Append) else tuple(a[0] for a in effect.appends)
    )
    for task_id in streams:
        if s.in_flight.get(task_id) == append_id:
            del s.in_flight[task_id]
    return pending, streams


def _committed(s: Scheduler, message: Committed, out: list[Effect]) -> None:
    pending, streams = _settled(s, message.append_id)
    if pending is None:
        return
    then = pending.then
    position = message.stored[-1][-1].position
    match then.kind:
        case "submit":
            out.append(Reply(then.handle, Submitted(then.task_ids[0], position)))
        case "plain":
            if then.handle is not None:
                out.append(Reply(then.handle, position))
        case "keyed":
            assert then.state is not None
            task_id = then.task_ids[0]
            if task_id not in s.states:  # (following the log may have been quicker)
                _track(s, then.state)
                if then.small:
                    s.small.add(task_id)
            out.append(Reply(then.handle, Submitted(task_id, position)))
        case "batch":
            value = [
                Submitted(task_id, part[-1].position)
                for task_id, part in zip(then.task_ids, message.stored, strict=True)
            ]
            out.append(Reply(then.handle, value))
        case "cancel":
            if then.worker_id is not None:
                out.append(Abort(then.worker_id, then.task_ids[0], then.attempt))
            out.append(Reply(then.handle, position))
        case "finish":
            assert then.state is not None
            _settle(s, then.state, position)
            out.append(Reply(then.handle, position))
        case "start":
            assert then.claimed is not None
            then.claimed.granted[then.index] = _granted(then.task_ids[0], then.state)
            _claim_settled(then.claimed, out)
    for task_id in streams:
        _advance(s, task_id, out)


def _granted(task_id: str, started: TaskState | None) -> Claim:
    assert started is not None
    assert started.spec is not None
    return Claim(task_id, started.spec, started.attempt, started.version)


def _claim_settled(claimed: _Claimed, out: list[Effect]) -> None:
    claimed.remaining -= 1
    if claimed.remaining == 0:  # every Started is committed (or refused): answer
        out.append(Reply(claimed.handle, [c for c in claimed.granted if c is not None]))


def _refused(s: Scheduler, message: Refused, out: list[Effect]) -> None:
    pending, streams = _settled(s, message.append_id)
    if pending is None:
        return
    error = message.error
    later = _refusal(s, pending.then, error, out)  # answered once the reload is applied
    reload = pending.reload
    for task_id in streams:
        # What waits behind it was decided on the state it would have made: refused with it
        # (the log's version check alone would not do: a version can match by coincidence).
        for append_id in s.waiting.pop(task_id, ()):
            later += _refusal(s, s.pending.pop(append_id).then, error, out)
            reload = True
    if reload:
        level = logging.INFO if s.shared else logging.WARNING
        for task_id in streams:
            out.append(Log(level, f"append to {task_id} refused ({error}); reloading its state"))
            _reload(s, task_id, out)
        s.loading[streams[-1]].then += later
    else:
        out += later
    for task_id in streams:
        _advance(s, task_id, out)


def _refusal(s: Scheduler, then: _Then, error: CoinbtError, out: list[Effect]) -> list[Effect]:
    """Answer what a refused append meant; what must wait for the reload is returned."""
    match then.kind:
        case "keyed":
            task_id = then.task_ids[0]
            if isinstance(error, ConcurrencyError):
                # Another process submitted this key first: its task is the answer.
                out.append(Reply(then.handle, Submitted(task_id, 0, existing=True)))
            else:
                key = then.state.idempotency_key if then.state is not None else None
                if key is not None and s.keys.get(key) == task_id and task_id not in s.states:
                    del s.keys[key]
                out.append(ReplyError(then.handle, error))
        case "cancel":
            cancel = then.cancel
            assert cancel is not None
            if isinstance(error, ConcurrencyError) and cancel.tries < CANCEL_TRIES:
                # Another process changed the task first: decide again on what the log holds.
                cancel.tries += 1
                s.blocked.setdefault(cancel.task_id, []).append(cancel)
            else:
                return [ReplyError(then.handle, error)]
        case "start":
            assert then.claimed is not None
            _claim_settled(then.claimed, out)  # another process started it first: not granted
        case "batch":
            out.append(ReplyError(then.handle, error))
        case _:
            if then.handle is not None:
                return [ReplyError(then.handle, error)]
    return []


def _reload(s: Scheduler, task_id: str, out: list[Effect]) -> None:
    if task_id not in s.loading:
        s.loading[task_id] = _Loading()
        out.append(Load(task_id))


def _loaded(s: Scheduler, state: TaskState, position: int, out: list[Effect]) -> None:
    task_id = state.task_id
    loading = s.loading.pop(task_id, None)
    if loading is None:
        return  # (a restart forgot why it was asked)
    current = s.states.get(task_id)
    newer = s.shared and current is not None and current.version > state.version
    if newer and loading.tries < _RELOAD_TRIES:
        # Following the log applied newer events meanwhile: read again.
        loading.tries += 1
        s.loading[task_id] = loading
        out.append(Load(task_id))
        return
    if current is None:
        # A cancel of a task this process does not hold: decide it on the log's state.
        if state.is_terminal:
            _settle(s, state, position)
        out += loading.then
        _unblock(s, task_id, state, out, None)
        return
    s.queued.discard(task_id)
    s.running.pop(task_id, None)
    s.remote.pop(task_id, None)
    if state.status is None:  # its first append never committed
        s.states.pop(task_id, None)
    else:
        _track(s, state)
        if state.is_terminal:
            _settle(s, state, position)
        else:
            s.finished.pop(task_id, None)
    out += loading.then
    _advance(s, task_id, out)


def _load_failed(s: Scheduler, m: LoadFailed, out: list[Effect]) -> None:
    """What waited for the load gets the error. A task held here is read again (its state in
    memory may be one the log refused: nothing is decided on it until the log is read)."""
    task_id = m.task_id
    out.append(Log(logging.ERROR, f"cannot load task {task_id}: {m.error}"))
    loading = s.loading.get(task_id)
    if loading is None:
        return
    out += loading.then
    loading.then = []
    for message in s.blocked.pop(task_id, None) or ():
        out.append(ReplyError(message.handle, m.error))
    if task_id in s.states:
        out.append(Load(task_id, retry=True))
    else:
        del s.loading[task_id]
        _advance(s, task_id, out)


def _unblock(
    s: Scheduler, task_id: str, loaded: TaskState, out: list[Effect], error: CoinbtError | None
) -> None:
    """Decide the cancels that waited for a load of a task not held in memory."""
    if task_id in s.in_flight or task_id in s.waiting or task_id in s.loading:
        return
    for message in s.blocked.pop(task_id, None) or ():
        if error is not None:
            out.append(ReplyError(message.handle, error))
        else:
            _redo(s, message, loaded, out)


# --- submissions ---------------------------------------------------------------------------------


def _refuse_new(s: Scheduler, handle: object, count: int, out: list[Effect]) -> bool:
    if s.stopping:
        out.append(ReplyError(handle, ShuttingDownError("the service is shutting down")))
        return True
    if len(s.queued) + count > s.queue_capacity:
        out.append(ReplyError(handle, QueueFullError(s.queue_capacity)))
        return True
    return False


def _submit(s: Scheduler, m: SubmitAsked, out: list[Effect]) -> None:
    key = m.idempotency_key
    if key is not None and key in s.keys:
        task_id = s.keys[key]
        if s.task_busy(task_id):  # answer once its first append has settled
            s.blocked.setdefault(task_id, []).append(m)
        else:
            out.append(Reply(m.handle, Submitted(task_id, 0, existing=True)))
        return
    if _refuse_new(s, m.handle, 1, out):
        return
    small = m.bars is not None and m.bars <= SMALL_BARS
    if key is not None:
        # Its task id comes from the key, so the log settles a race between processes (one
        # Queued at version 0 per stream). It joins the queue only once that Queued is in the
        # log: until then the stream may be another process's (a refusal reloads nothing).
        task_id = keyed_task_id(key)
        events = decide(TaskState(task_id), Submit(m.spec, key))
        queued = _evolve_all(TaskState(task_id), events)
        s.keys[key] = task_id
        then = _Then("keyed", m.handle, (task_id,), state=queued, small=small)
        _append(s, task_id, events, 0, then, out, reload=False)
        return
    task_id = s.ids()
    events = decide(TaskState(task_id), Submit(m.spec, None))
    _track(s, _evolve_all(TaskState(task_id), events))
    if small:
        s.small.add(task_id)
    _append(s, task_id, events, 0, _Then("submit", m.handle, (task_id,)), out)


def _submit_batch(s: Scheduler, m: BatchAsked, out: list[Effect]) -> None:
    """Queue every spec with one atomic append (DESIGN section 11): the tasks join the queue at
    once, in order; if the append is refused each is reloaded (and, having no events, forgotten)."""
    if _refuse_new(s, m.handle, len(m.specs), out):
        return
    appends: list[tuple[str, Sequence[TaskEvent], int]] = []
    for spec, bars in zip(m.specs, m.bars, strict=True):
        task_id = s.ids()
        events = decide(TaskState(task_id), Submit(spec, None))
        _track(s, _evolve_all(TaskState(task_id), events))
        if bars is not None and bars <= SMALL_BARS:
            s.small.add(task_id)
        appends.append((task_id, events, 0))
    s.next_append += 1
    effect = AppendAll(s.next_append, appends)
    task_ids = tuple(task_id for task_id, _, _ in appends)
    s.pending[effect.append_id] = _Pending(effect, _Then("batch", m.handle, task_ids))
    for task_id in task_ids:
        s.in_flight[task_id] = effect.append_id
    out.append(effect)


# --- cancel, results, losses, recovery -----------------------------------------------------------


def _cancel(s: Scheduler, m: CancelAsked, loaded: TaskState | None, out: list[Effect]) -> None:
    task_id = m.task_id
    if s.task_busy(task_id):
        # The state in memory runs ahead of the log while an append is on its way (a Started, a
        # Completed, another cancel): decide only on what the log recorded, once it settled.
        s.blocked.setdefault(task_id, []).append(m)
        return
    state = s.states.get(task_id) or loaded
    if state is None:  # not in memory: load it, then decide
        s.blocked.setdefault(task_id, []).append(m)
        _reload(s, task_id, out)
        return
    try:
        events = decide(state, Cancel(m.reason))
    except CoinbtError as e:
        out.append(ReplyError(m.handle, e))
        return
    if not events:  # already cancelled (in the log): idempotent, nothing appended
        out.append(Reply(m.handle, 0))
        return
    worker_id = s.running.get(task_id) if state.status is Status.RUNNING else None
    _settle(s, _evolve_all(state, events))
    then = _Then(
        "cancel", m.handle, (task_id,), cancel=m, worker_id=worker_id, attempt=state.attempt
    )
    _append(s, task_id, events, state.version, then, out)


def _finish(s: Scheduler, m: WorkerDone, out: list[Effect]) -> None:
    task_id = m.task_id
    if s.task_busy(task_id):  # (a cancel on its way): decide on what the log records
        s.blocked.setdefault(task_id, []).append(m)
        return
    state = s.states.get(task_id)
    if state is None:
        out.append(ReplyError(m.handle, TaskNotFoundError(task_id)))
        return
    try:
        events = decide(state, m.outcome)
    except CoinbtError as e:  # cancelled meanwhile: the result is discarded
        out.append(ReplyError(m.handle, e))
        return
    # The worker is done with it; the task itself is settled only once the outcome is in the
    # log (a cancel meanwhile waits for that, and is answered from what was recorded).
    s.running.pop(task_id, None)
    then = _Then("finish", m.handle, (task_id,), state=_evolve_all(state, events))
    _append(s, task_id, events, m.started_version, then, out)


def _requeue(s: Scheduler, m: WorkerLost, out: list[Effect]) -> None:
    task_id = m.task_id
    if s.task_busy(task_id):
        s.blocked.setdefault(task_id, []).append(m)
        return
    state = s.states.get(task_id)
    if state is None:
        out.append(ReplyError(m.handle, TaskNotFoundError(task_id)))
        return
    events = decide(state, Recover(s.max_attempts))
    if not events:  # not running any more (cancelled meanwhile): nothing to re-queue
        error = InvalidTransitionError(task_id, str(state.status), "requeue")
        out.append(ReplyError(m.handle, error))
        return
    requeued = _evolve_all(state, events)
    text = f"task {task_id} lost its worker ({m.reason}): now {requeued.status}"
    out.append(Log(logging.WARNING, text))
    s.running.pop(task_id, None)
    _enqueue_recovered(s, requeued)
    _append(s, task_id, events, m.started_version, _Then("plain", m.handle, (task_id,)), out)


def _recover(s: Scheduler, m: RecoverAsked, out: list[Effect]) -> None:
    loaded = m.state
    task_id = loaded.task_id
    events = decide(loaded, Recover(s.max_attempts))
    if not events:
        out.append(Reply(m.handle, 0))
        return
    recovered = _evolve_all(loaded, events)
    text = f"task {task_id} was running in {m.owner}, which is gone: now {recovered.status}"
    out.append(Log(logging.WARNING, text))
    current = s.states.get(task_id)
    if current is None or current.version <= loaded.version:
        s.remote.pop(task_id, None)
        _enqueue_recovered(s, recovered)
    _append(s, task_id, events, loaded.version, _Then("plain", m.handle, (task_id,)), out)


def _snapshot(s: Scheduler, m: Snapshot, out: list[Effect]) -> None:
    s.followed = m.followed
    for state in m.states:
        if state.is_terminal:  # it ended since the snapshot (a shared log)
            _settle(s, state, m.followed)
            continue
        if m.recover and state.status is Status.RUNNING:
            # Left running by a process that died: re-queue (attempt + 1) or fail.
            events = decide(state, Recover(s.max_attempts))
            recovered = _evolve_all(state, events)
            text = f"recovered interrupted task {state.task_id}: now {recovered.status}"
            out.append(Log(logging.WARNING, text))
            _append(s, state.task_id, events, state.version, _Then("plain"), out)
            state = recovered
            if state.is_terminal:
                _settle(s, state)
                continue
        _track(s, state)


# --- the queue -----------------------------------------------------------------------------------


def _track(s: Scheduler, state: TaskState) -> None:
    task_id = state.task_id
    s.states[task_id] = state
    if state.idempotency_key is not None:
        s.keys[state.idempotency_key] = task_id
    if state.status is Status.QUEUED and task_id not in s.queued:
        s.queued.add(task_id)
        s.queue.append(task_id)
        spec = state.spec
        if spec is not None and _is_small(spec):
            s.small.add(task_id)
    elif state.status is Status.RUNNING and state.worker_id is not None:
        if s.is_local(state.worker_id):
            s.running.setdefault(task_id, state.worker_id)
        else:
            s.remote[task_id] = state.worker_id


def _is_small(spec: TaskSpec) -> bool:
    synthetic = spec.data.synthetic
    return synthetic is not None and synthetic.bars <= SMALL_BARS


def _enqueue_recovered(s: Scheduler, state: TaskState) -> None:
    if state.is_terminal:
        _settle(s, state)
    else:  # it had its turn already: first in line
        s.states[state.task_id] = state
        s.queued.add(state.task_id)
        s.queue.appendleft(state.task_id)


def _dispatch(s: Scheduler, out: list[Effect]) -> None:
    """Give queued tasks, oldest first, to waiting workers: a large task alone, or a run of
    consecutive small tasks up to the claim's ``max_tasks``."""
    while not s.stopping and s.claims and s.queue:
        claim = s.claims.popleft()
        batch: list[str] = []
        while s.queue and len(batch) < claim.max_tasks:
            task_id = s.queue[0]
            if task_id not in s.queued:
                s.queue.popleft()  # cancelled or started elsewhere while queued
                continue
            if batch and task_id not in s.small:
                break  # a large task waits for a claim of its own
            s.queue.popleft()
            s.queued.discard(task_id)  # (a reloaded task may be in the deque twice)
            batch.append(task_id)
            if task_id not in s.small:
                break
        if not batch:
            s.claims.appendleft(claim)
            return
        _start(s, batch, claim, out)


def _start(s: Scheduler, task_ids: list[str], claim: ClaimAsked, out: list[Effect]) -> None:
    claimed = _Claimed(claim.handle, [None] * len(task_ids), len(task_ids))
    for index, task_id in enumerate(task_ids):
        state = s.states[task_id]
        events = decide(state, Start(claim.worker_id))
        started = _evolve_all(state, events)
        s.queued.discard(task_id)
        s.small.discard(task_id)
        s.running[task_id] = claim.worker_id
        s.states[task_id] = started
        then = _Then("start", None, (task_id,), state=started, claimed=claimed, index=index)
        _append(s, task_id, events, state.version, then, out)


def _settle(s: Scheduler, state: TaskState, position: int | None = None) -> None:
    """Record a decided state; a finished task leaves the queue and the running sets."""
    task_id = state.task_id
    s.states[task_id] = state
    if state.is_terminal:
        s.queued.discard(task_id)
        s.running.pop(task_id, None)
        s.remote.pop(task_id, None)
        s.finished[task_id] = position
        s.finished.move_to_end(task_id)
        _evict(s)


def _evict(s: Scheduler) -> None:
    """Forget the oldest finished tasks beyond the cache. On a shared log, only those whose
    terminal event has been followed: an event of a forgotten task that is still to be
    followed would otherwise look like a new task."""
    while len(s.finished) > s.finished_cache:
        task_id, position = next(iter(s.finished.items()))
        if s.shared and (position is None or position > s.followed):
            return
        if s.task_busy(task_id) or task_id in s.waiting:
            return
        s.finished.popitem(last=False)
        s.states.pop(task_id, None)


# --- following a shared log ----------------------------------------------------------------------


def _follow(s: Scheduler, events: Sequence[StoredEvent], out: list[Effect]) -> None:
    for stored in events:
        _apply_followed(s, stored, out)
        s.followed = stored.position
    _evict(s)


def _apply_followed(s: Scheduler, stored: StoredEvent, out: list[Effect]) -> None:
    task_id = stored.stream_id
    state = s.states.get(task_id)
    if state is None:
        if stored.version != 1:
            return  # it ended before we started following: nothing changes it any more
        state = TaskState(task_id=task_id)
    if stored.version <= state.version:
        # Appended here (already in the state), or in conflict with an append in flight
        # (which the log will refuse, reloading the task).
        if task_id in s.finished and isinstance(stored.event, Completed | Failed | Cancelled):
            s.finished[task_id] = stored.position
        return
    if stored.version > state.version + 1:  # a gap: read the task again
        _reload(s, task_id, out)
        return
    after = evolve(state, stored.event)
    local_worker = s.running.get(task_id)
    if after.is_terminal:
        if local_worker is not None:  # ended elsewhere (a cancel): stop the run here
            out.append(Abort(local_worker, task_id, state.attempt))
        _settle(s, after, stored.position)
    elif after.status is Status.QUEUED:
        s.running.pop(task_id, None)
        s.remote.pop(task_id, None)
        if local_worker is not None:  # re-queued elsewhere: this run's result is void
            out.append(Abort(local_worker, task_id, state.attempt))
        if state.status is Status.RUNNING:
            _enqueue_recovered(s, after)
        else:
            _track(s, after)
    else:  # running (Started, or a Filled on the way to Completed)
        s.queued.discard(task_id)
        s.small.discard(task_id)
        _track(s, after)
