"""The TaskManager: the actor around the pure scheduler (``coinbt.scheduler``).

It receives a message, hands it to :func:`coinbt.scheduler.step` and performs the effects that come
back: appends run in its task group and tell their outcome back to the mailbox, loads likewise;
aborts and replies happen at once. Only ``handle`` (one message at a time) changes the scheduler.

**A shared log** (``liveness`` given: several processes on one PostgreSQL database): the log is
followed from the checkpoint of the start-up snapshot (``follow_log``: the events come back as
``Followed``), and the tasks of processes that are gone are recovered by ``watch_owners``, which
reads each afresh under the dead owner's lock and asks for ``RecoverTask``; the log's version
check makes exactly one process's recovery count.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import anyio
from anyio.abc import TaskGroup

from coinbt import defaults
from coinbt import scheduler as sched
from coinbt.actors._shared_log import follow_log, watch_owners
from coinbt.actors.base import Actor, Reply
from coinbt.actors.task_messages import (
    CancelTask,
    Claim,
    ClaimTask,
    FinishTask,
    Message,
    Outcomes,
    RecoverTask,
    RequeueTask,
    SubmitBatch,
    SubmitTask,
    Submitted,
)
from coinbt.clock import IdFactory
from coinbt.errors import CoinbtError, MailboxFullError, ShuttingDownError
from coinbt.events import StoredEvent
from coinbt.lifecycle import TaskState, fold
from coinbt.projections.base import ReadModels
from coinbt.scheduler import SMALL_BARS, keyed_task_id
from coinbt.store.base import EventStore
from coinbt.store.instances import Liveness

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
    "keyed_task_id",
)

log = logging.getLogger("coinbt.task_manager")

_RELOAD_BACKOFF_S = 0.5


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
        self.abort = abort
        self._catch_up = catch_up
        self._liveness = liveness
        self._heartbeat_s = heartbeat_s
        self._tg: TaskGroup | None = None
        self._recovered = False
        self._s = sched.Scheduler(
            ids,
            queue_capacity=queue_capacity,
            max_attempts=max_attempts,
            instance_id=None if liveness is None else liveness.instance_id,
            finished_cache=finished_cache,
        )
        self._outcomes: Outcomes | None = None  # the outcomes message waiting in the mailbox
        self._appends: list[sched.Append] = []  # decided, not yet sent to the store
        self._appending = False  # whether the task sending them runs
        self._changed: anyio.Event | None = None  # created by a waiter, set by the next step

    # --- what others may read --------------------------------------------------------------------

    @property
    def queue_capacity(self) -> int:
        return self._s.queue_capacity

    @property
    def max_attempts(self) -> int:
        return self._s.max_attempts

    @property
    def queue_depth(self) -> int:
        return len(self._s.queued)

    @property
    def running(self) -> dict[str, str]:
        """Tasks running on this process's workers (task id -> worker id)."""
        return dict(self._s.running)

    @property
    def idle(self) -> bool:
        """Nothing queued, running (here or, on a shared log, anywhere) or being appended."""
        return self._s.idle

    @property
    def instance_id(self) -> str | None:
        return self._s.instance_id

    def stop_dispatching(self) -> None:
        """Shutting down: take no new submissions and start nothing new. (Called between two
        messages on the actor's event loop: ``step`` is synchronous, so this is one more step.)"""
        self._step(sched.StopDispatching())
        self.on_drained()

    async def wait_no_running(self) -> None:
        """Return once no task runs on this process's workers."""
        while self._s.running:
            await self._next_step()

    async def wait_idle(self) -> None:
        """Return once :attr:`idle`."""
        while not self.idle:
            await self._next_step()

    async def _next_step(self) -> None:
        if self._changed is None:
            self._changed = anyio.Event()
        await self._changed.wait()

    # --- start-up --------------------------------------------------------------------------------

    async def on_start(self, tg: TaskGroup) -> None:
        self._tg = tg
        self._appends = []  # (decided by the scheduler that failed: forgotten with it)
        self._appending = False
        old = self._s
        if self._recovered:  # a restart after a failure: whoever waits for an answer asks again
            for handle in sched.unanswered(old):
                _reply(handle).fail(CoinbtError("the task manager restarted; ask again"))
        self._s = sched.Scheduler(
            old.ids,
            queue_capacity=old.queue_capacity,
            max_attempts=old.max_attempts,
            instance_id=old.instance_id,
            finished_cache=old.finished_cache,
            next_append=old.next_append,  # an outcome of a forgotten append must not match
        )
        if self._catch_up is not None:
            await self._catch_up()  # the read models must list every task before we trust them
        if self._liveness is None:
            # One process owns the log: whatever it left running died with it.
            views = await self._read_models.unfinished()
            states = [await self._load_state(view.task_id) for view in views]
            await self._start_up(sched.Snapshot(states, recover=not self._recovered))
        else:
            checkpoint, views = await self._read_models.unfinished_at()
            states = [await self._load_state(view.task_id) for view in views]
            await self._start_up(sched.Snapshot(states, followed=checkpoint))
            tg.start_soon(follow_log, self._store, checkpoint, self._deliver)
            tg.start_soon(
                watch_owners,
                self._liveness,
                self._heartbeat_s,
                lambda: self._s.remote,
                self._load_state,
                self._ask_recover,
            )
        self._recovered = True

    async def _start_up(self, snapshot: sched.Snapshot) -> None:
        """Take in the snapshot; its recovery appends are made before anything else, and one
        that fails fails the start (the supervisor then stops the system)."""
        effects = sched.step(self._s, snapshot)
        self._perform([e for e in effects if not isinstance(e, sched.Append)])
        for effect in effects:
            if isinstance(effect, sched.Append):
                stored = await self._store.append(
                    effect.stream, effect.events, effect.expected_version
                )
                self._step(sched.Committed(effect.append_id, [stored]))
        self.on_drained()

    async def _load_state(self, task_id: str) -> TaskState:
        events = await self._store.read_stream(task_id)
        return fold(task_id, [stored.event for stored in events])

    # --- the mailbox -----------------------------------------------------------------------------

    async def handle(self, message: Message) -> None:
        match message:
            case SubmitTask(spec=spec, idempotency_key=key, reply=reply, bars=bars):
                self._step(sched.SubmitAsked(reply, spec, key, bars))
            case SubmitBatch(specs=specs, reply=reply, bars=bars):
                self._step(sched.BatchAsked(reply, specs, bars))
            case ClaimTask(worker_id=worker_id, reply=reply, max_tasks=max_tasks):
                self._step(sched.ClaimAsked(reply, worker_id, max_tasks))
            case CancelTask(task_id=task_id, reason=reason, reply=reply):
                self._step(sched.CancelAsked(reply, task_id, reason))
            case FinishTask(task_id=task_id, started_version=version, outcome=outcome, reply=r):
                self._step(sched.WorkerDone(r, task_id, version, outcome))
            case RequeueTask(task_id=task_id, started_version=version, reason=reason, reply=r):
                self._step(sched.WorkerLost(r, task_id, version, reason))
            case RecoverTask(state=state, owner=owner, reply=reply):
                self._step(sched.RecoverAsked(reply, state, owner))
            case Outcomes(items=items):
                if self._outcomes is message:
                    self._outcomes = None  # from now on, outcomes need a message of their own
                for item in items:
                    self._step(item)
            case _:  # events followed
                self._step(message)

    def on_drained(self) -> None:
        """Have the decided single-stream appends sent to the store (see ``_send_appends``)."""
        if self._appends and not self._appending:
            assert self._tg is not None
            self._appending = True
            self._tg.start_soon(self._send_appends)

    def _step(self, message: sched.Message) -> None:
        self._perform(sched.step(self._s, message))

    def _perform(self, effects: list[sched.Effect]) -> None:
        for effect in effects:
            match effect:
                case sched.Reply(handle=handle, value=value):
                    _reply(handle).set(value)
                case sched.ReplyError(handle=handle, error=error):
                    _reply(handle).fail(error)
                case sched.Append():
                    self._appends.append(effect)
                case sched.AppendAll():
                    assert self._tg is not None
                    self._tg.start_soon(self._append_all, effect)
                case sched.Abort(worker_id=worker_id, task_id=task_id, attempt=attempt):
                    self.abort(worker_id, task_id, attempt)
                case sched.Load(task_id=task_id, retry=retry):
                    assert self._tg is not None
                    self._tg.start_soon(self._load, task_id, retry)
                case sched.Log(level=level, text=text):
                    log.log(level, "%s", text)
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    # --- performing effects (in the task group; outcomes come back through the mailbox) ----------

    async def _send_appends(self) -> None:
        """One task sends every single-stream append, in waves: all those decided so far go to
        the store in one call (each checked on its own: ``append_each``), and those decided
        while a wave is being committed form the next wave (the group-commit writer would have
        made them its next transaction anyway). One task per wave instead of one per append: a
        claim's Started and a worker's results, each told in a message of its own, cost the
        event loop a task each before (a third of the service's CPU per tiny task)."""
        try:
            while self._appends:
                effects, self._appends = self._appends, []
                appends = [(e.stream, e.events, e.expected_version) for e in effects]
                results: list[list[StoredEvent] | CoinbtError]
                try:
                    results = await self._store.append_each(appends)
                except CoinbtError as e:  # (an append without events: nothing was appended)
                    results = [e] * len(effects)
                for effect, result in zip(effects, results, strict=True):
                    if isinstance(result, CoinbtError):
                        await self._tell_back(sched.Refused(effect.append_id, result))
                    else:
                        await self._tell_back(sched.Committed(effect.append_id, [result]))
        finally:
            self._appending = False

    async def _append_all(self, effect: sched.AppendAll) -> None:
        outcome: sched.Committed | sched.Refused
        try:
            stored = await self._store.append_many(effect.appends)
        except CoinbtError as e:
            outcome = sched.Refused(effect.append_id, e)
        else:
            outcome = sched.Committed(effect.append_id, stored)
        await self._tell_back(outcome)

    async def _load(self, task_id: str, retry: bool) -> None:
        if retry:
            await anyio.sleep(_RELOAD_BACKOFF_S)  # the database was away a moment ago
        try:
            events = await self._store.read_stream(task_id)
        except CoinbtError as e:
            await self._tell_back(sched.LoadFailed(task_id, e))
            return
        state = fold(task_id, [stored.event for stored in events])
        await self._tell_back(sched.Loaded(state, events[-1].position if events else 0))

    async def _tell_back(
        self, outcome: sched.Committed | sched.Refused | sched.Loaded | sched.LoadFailed
    ) -> None:
        if self._outcomes is not None:  # a message is on its way: this outcome goes with it
            self._outcomes.items.append(outcome)
            return
        self._outcomes = message = Outcomes([outcome])
        try:
            try:
                self.tell_nowait(message)
            except MailboxFullError:
                await self.tell(message)
        except ShuttingDownError:
            log.info("stopping: %d outcomes are not recorded in memory", len(message.items))

    async def _deliver(self, events: list[StoredEvent]) -> None:
        await self.tell(sched.Followed(events))

    async def _ask_recover(self, state: TaskState, owner: str) -> int:
        position: int = await self.ask(partial(RecoverTask, state, owner))
        return position


def _reply(handle: object) -> Reply[Any]:
    assert isinstance(handle, Reply)
    return handle
