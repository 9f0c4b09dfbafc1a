"""The pure scheduler (``coinbt.scheduler``) with no event loop: single transitions, then a
hypothesis state machine that races submissions, claims, worker results and losses, cancels, append
outcomes in any order (some refused by the log's version check, some failing), a rival process
appending to the same streams, and restarts, against an in-memory log with version checks.

Invariants: at most one terminal event per task, and exactly one once everything has run; every
reply agrees with the log (a cancel answered "cancelled at p" has Cancelled at p, one answered
"completed" has Completed or Failed as the task's terminal event); no Started is granted twice;
the log's versions have no gaps; and, once quiet, the scheduler's states are the log's."""

from __future__ import annotations

import ast
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from coinbt import scheduler
from coinbt.errors import (
    CoinbtError,
    ConcurrencyError,
    DatabaseError,
    InvalidTransitionError,
    QueueFullError,
    ShuttingDownError,
    TaskNotFoundError,
)
from coinbt.events import (
    Cancelled,
    Completed,
    Failed,
    Queued,
    Started,
    StoredEvent,
    TaskEvent,
)
from coinbt.lifecycle import Cancel, Complete, Fail, Start, Status, TaskState, decide, fold
from coinbt.scheduler import (
    SMALL_BARS,
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
    Message,
    RecoverAsked,
    Refused,
    Reply,
    ReplyError,
    Scheduler,
    Snapshot,
    StopDispatching,
    SubmitAsked,
    Submitted,
    WorkerDone,
    WorkerLost,
    keyed_task_id,
    step,
    unanswered,
)
from tests.factories import completed, spec

EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
TERMINAL_EVENTS = (Completed, Failed, Cancelled)


class MemoryLog:
    """Streams with optimistic version checks, like the real stores (no hashes, no I/O)."""

    def __init__(self) -> None:
        self.events: list[StoredEvent] = []
        self.streams: dict[str, list[StoredEvent]] = {}

    def version(self, stream: str) -> int:
        return len(self.streams.get(stream, ()))

    def append(
        self, appends: Sequence[tuple[str, Sequence[TaskEvent], int]]
    ) -> list[list[StoredEvent]]:
        for stream, _, expected in appends:
            if self.version(stream) != expected:
                raise ConcurrencyError(stream, expected, self.version(stream))
        stored: list[list[StoredEvent]] = []
        for stream, events, _ in appends:
            part = []
            for event in events:
                version = self.version(stream) + 1
                record = StoredEvent(len(self.events) + 1, stream, version, EPOCH, event, "")
                self.events.append(record)
                self.streams.setdefault(stream, []).append(record)
                part.append(record)
            stored.append(part)
        return stored

    def state(self, stream: str) -> TaskState:
        return fold(stream, [stored.event for stored in self.streams.get(stream, ())])

    def at(self, position: int) -> StoredEvent:
        assert 1 <= position <= len(self.events), position
        return self.events[position - 1]

    def terminal(self, stream: str) -> TaskEvent | None:
        events = [s.event for s in self.streams.get(stream, ()) if _terminal(s.event)]
        return events[-1] if events else None


def _terminal(event: TaskEvent) -> bool:
    return isinstance(event, TERMINAL_EVENTS)


def perform(log: MemoryLog, effect: Append | AppendAll | Load, fail: bool = False) -> Message:
    """What the TaskManager does with an effect (``fail``: the database is away)."""
    if isinstance(effect, Load):
        if fail:
            return LoadFailed(effect.task_id, DatabaseError("the database is away"))
        events = log.streams.get(effect.task_id, [])
        return Loaded(log.state(effect.task_id), events[-1].position if events else 0)
    if fail:
        return Refused(effect.append_id, DatabaseError("disk full"))
    appends = (
        [(effect.stream, effect.events, effect.expected_version)]
        if isinstance(effect, Append)
        else effect.appends
    )
    try:
        return Committed(effect.append_id, log.append(appends))
    except ConcurrencyError as e:
        return Refused(effect.append_id, e)


@dataclass(eq=False)
class Handle:
    """A reply handle as the pure code sees it: an opaque value."""

    kind: str
    task_id: str | None = None
    worker_id: str | None = None
    outcome: type[TaskEvent] | None = None
    claim: Claim | None = None  # a worker's report: the run it reports on


def _counter(prefix: str = "t") -> Any:
    count = [0]

    def ids() -> str:
        count[0] += 1
        return f"{prefix}{count[0]}"

    return ids


# --- purity --------------------------------------------------------------------------------------

_IMPURE = {"anyio", "asyncio", "aiosqlite", "psycopg", "threading", "time", "os", "random", "uuid"}


@pytest.mark.parametrize("path", sorted(Path(scheduler.__file__).parent.glob("*.py")), ids=str)
def test_the_scheduler_imports_no_event_loop_no_io_no_clock(path: Path) -> None:
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            imported.add(node.module.split(".")[0])
    assert imported & _IMPURE == set()


# --- single transitions --------------------------------------------------------------------------


def _only(effects: list[Effect], kind: type[Any]) -> Any:
    found = [e for e in effects if isinstance(e, kind)]
    assert len(found) == 1, effects
    return found[0]


def _replies(effects: list[Effect]) -> dict[object, object]:
    out: dict[object, object] = {}
    for effect in effects:
        if isinstance(effect, Reply):
            out[effect.handle] = effect.value
        elif isinstance(effect, ReplyError):
            out[effect.handle] = effect.error
    return out


def _commit(s: Scheduler, log: MemoryLog, effect: Effect) -> list[Effect]:
    assert isinstance(effect, Append | AppendAll | Load)
    return step(s, perform(log, effect))


def _running_task(s: Scheduler, log: MemoryLog) -> Claim:
    """Submit one task and have worker w1 claim it; its Started is committed."""
    effects = step(s, SubmitAsked("submit", spec(), None, 300))
    step(s, perform(log, _only(effects, Append)))
    effects = step(s, ClaimAsked("claim", "w1"))
    effects = _commit(s, log, _only(effects, Append))
    claims = _replies(effects)["claim"]
    assert isinstance(claims, list)
    assert len(claims) == 1
    claim: Claim = claims[0]
    return claim


def test_a_submission_is_answered_once_its_queued_event_is_in_the_log() -> None:
    s, log = Scheduler(_counter()), MemoryLog()
    effects = step(s, SubmitAsked("h", spec(), None, 300))
    append = _only(effects, Append)
    assert (append.stream, append.expected_version) == ("t1", 0)
    assert isinstance(append.events[0], Queued)
    assert not _replies(effects)  # not before the log has it
    assert _replies(_commit(s, log, append)) == {"h": Submitted("t1", 1)}
    assert s.queued == {"t1"}


def test_appends_of_one_task_leave_in_decision_order() -> None:
    s, log = Scheduler(_counter()), MemoryLog()
    queued = _only(step(s, SubmitAsked("h", spec(), None, 300)), Append)
    # Claimed at once: the Started waits for the Queued's outcome.
    assert not [e for e in step(s, ClaimAsked("claim", "w1")) if isinstance(e, Append)]
    effects = _commit(s, log, queued)
    started = _only(effects, Append)
    assert isinstance(started.events[0], Started)
    assert started.expected_version == 1
    effects = _commit(s, log, started)
    assert _replies(effects)["claim"] == [Claim("t1", spec(), 1, 2)]


def test_a_cancel_waits_for_a_completion_in_flight_and_answers_completed() -> None:
    """The race of issue 15: the Completed is on its way when the cancel comes."""
    s, log = Scheduler(_counter()), MemoryLog()
    claim = _running_task(s, log)
    done = _only(step(s, WorkerDone("done", "t1", claim.version, Complete(completed()))), Append)
    assert step(s, CancelAsked("cancel", "t1", "user")) == []  # waits: nothing decided
    replies = _replies(_commit(s, log, done))
    assert replies["done"] == 3
    assert isinstance(replies["cancel"], InvalidTransitionError)
    assert isinstance(log.terminal("t1"), Completed)


def test_a_cancel_decided_first_refuses_the_result_and_aborts_the_worker() -> None:
    s, log = Scheduler(_counter()), MemoryLog()
    claim = _running_task(s, log)
    cancel = _only(step(s, CancelAsked("cancel", "t1", "user")), Append)
    # The result waits for the cancel's outcome too (if that failed, the result would count).
    assert step(s, WorkerDone("done", "t1", claim.version, Complete(completed()))) == []
    effects = _commit(s, log, cancel)
    assert Abort("w1", "t1", 1) in effects
    replies = _replies(effects)
    assert replies["cancel"] == 3
    assert isinstance(replies["done"], InvalidTransitionError)
    assert isinstance(log.at(3).event, Cancelled)
    assert s.running == {}


def test_a_refused_cancel_is_decided_again_on_what_the_log_holds() -> None:
    s, log = Scheduler(_counter()), MemoryLog()
    _running_task(s, log)
    cancel = _only(step(s, CancelAsked("cancel", "t1", "user")), Append)
    log.append([("t1", [completed()], 2)])  # another process recorded the result first
    effects = _commit(s, log, cancel)
    load = _only(effects, Load)
    assert not _replies(effects)
    effects = _commit(s, log, load)
    assert isinstance(_replies(effects)["cancel"], InvalidTransitionError)
    assert s.states["t1"].status is Status.COMPLETED


def test_a_refused_result_is_answered_after_the_task_is_reloaded() -> None:
    s, log = Scheduler(_counter()), MemoryLog()
    claim = _running_task(s, log)
    done = _only(step(s, WorkerDone("done", "t1", claim.version, Fail("x", "boom"))), Append)
    effects = step(s, perform(log, done, fail=True))
    load = _only(effects, Load)
    assert not _replies(effects)
    assert isinstance(_replies(_commit(s, log, load))["done"], DatabaseError)
    assert s.states["t1"].status is Status.RUNNING  # the log still says so: the worker may retry


def test_a_failed_reload_answers_what_waited_and_reads_the_task_again() -> None:
    """The refused state must not stay in memory: the task would be lost until a restart."""
    s, log = Scheduler(_counter()), MemoryLog()
    _only(step(s, SubmitAsked("submit", spec(), None, 300)), Append)
    step(s, Committed(1, log.append([("t1", [Queued(spec=spec(), attempt=1)], 0)])))
    cancel = _only(step(s, CancelAsked("cancel", "t1", "user")), Append)
    load = _only(step(s, perform(log, cancel, fail=True)), Load)
    effects = step(s, perform(log, load, fail=True))
    assert isinstance(_replies(effects)["cancel"], DatabaseError)
    again = _only(effects, Load)
    assert again.retry
    _commit(s, log, again)
    assert s.states["t1"].status is Status.QUEUED
    assert s.queued == {"t1"}


def test_a_cancel_of_a_task_not_in_memory_is_decided_on_the_log() -> None:
    s, log = Scheduler(_counter()), MemoryLog()
    load = _only(step(s, CancelAsked("cancel", "nope", "user")), Load)
    assert isinstance(_replies(_commit(s, log, load))["cancel"], TaskNotFoundError)
    log.append([("old", [Queued(spec=spec(), attempt=1), Cancelled(reason="x")], 0)])
    load = _only(step(s, CancelAsked("again", "old", "user")), Load)
    assert _replies(_commit(s, log, load)) == {"again": 0}  # cancelled already: idempotent


def test_small_tasks_are_claimed_together_and_a_large_one_alone() -> None:
    s, log = Scheduler(_counter()), MemoryLog()
    bars = [300, 300, SMALL_BARS + 1, 300]
    batch = _only(step(s, BatchAsked("batch", [spec(bars=b) for b in bars], bars)), AppendAll)
    submitted = [Submitted(f"t{n}", n) for n in range(1, 5)]
    assert _replies(_commit(s, log, batch))["batch"] == submitted
    starts = [e for e in step(s, ClaimAsked("c1", "w1", 8)) if isinstance(e, Append)]
    assert [a.stream for a in starts] == ["t1", "t2"]  # the large t3 waits for a claim of its own
    starts = [e for e in step(s, ClaimAsked("c2", "w2", 8)) if isinstance(e, Append)]
    assert [a.stream for a in starts] == ["t3"]


def test_a_second_submission_of_a_key_waits_for_the_first_and_names_its_task() -> None:
    s, log = Scheduler(_counter()), MemoryLog()
    first = _only(step(s, SubmitAsked("a", spec(), "key", 300)), Append)
    assert first.stream == keyed_task_id("key")
    assert step(s, SubmitAsked("b", spec(), "key", 300)) == []
    replies = _replies(_commit(s, log, first))
    assert replies == {
        "a": Submitted(first.stream, 1),
        "b": Submitted(first.stream, 0, existing=True),
    }


def test_a_key_taken_by_another_process_answers_that_task() -> None:
    s, log = Scheduler(_counter()), MemoryLog()
    first = _only(step(s, SubmitAsked("a", spec(), "key", 300)), Append)
    log.append([(first.stream, [Queued(spec=spec(), attempt=1, idempotency_key="key")], 0)])
    effects = _commit(s, log, first)
    assert not [e for e in effects if isinstance(e, Load)]  # the stream is another's: no reload
    assert _replies(effects) == {"a": Submitted(first.stream, 0, existing=True)}


@pytest.mark.parametrize(
    ("setup", "error"),
    [
        pytest.param(lambda s: step(s, StopDispatching()), ShuttingDownError, id="stopping"),
        pytest.param(lambda s: None, QueueFullError, id="queue-full"),
    ],
)
def test_a_submission_beyond_the_queue_or_while_stopping_is_refused(
    setup: Any, error: type[CoinbtError]
) -> None:
    s = Scheduler(_counter(), queue_capacity=0)
    setup(s)
    assert isinstance(_replies(step(s, SubmitAsked("h", spec(), None, 300)))["h"], error)
    assert s.states == {}


def test_start_up_requeues_what_a_dead_process_left_running() -> None:
    s, log = Scheduler(_counter(), max_attempts=2), MemoryLog()
    log.append([("a", [Queued(spec=spec(), attempt=1), Started(worker_id="w1", attempt=1)], 0)])
    log.append([("b", [Queued(spec=spec(), attempt=2), Started(worker_id="w1", attempt=2)], 0)])
    effects = step(s, Snapshot([log.state("a"), log.state("b")], recover=True))
    appends = [e for e in effects if isinstance(e, Append)]
    assert [(a.stream, type(a.events[0])) for a in appends] == [("a", Queued), ("b", Failed)]
    assert list(s.queue) == ["a"]


def test_small_tasks_loaded_at_start_up_are_still_claimed_together() -> None:
    s, log = Scheduler(_counter()), MemoryLog()
    for task_id, bars in (("a", 300), ("b", 300), ("c", SMALL_BARS + 1), ("d", 300)):
        log.append([(task_id, [Queued(spec=spec(bars=bars), attempt=1)], 0)])
    step(s, Snapshot([log.state(t) for t in "abcd"], recover=True))
    starts = [e for e in step(s, ClaimAsked("c1", "w1", 8)) if isinstance(e, Append)]
    assert [a.stream for a in starts] == ["a", "b"]  # the large c waits for a claim of its own


def test_what_a_scheduler_still_owes_is_listed_for_a_restart() -> None:
    s, log = Scheduler(_counter()), MemoryLog()
    queued = _only(step(s, SubmitAsked("submit", spec(), None, 300)), Append)
    step(s, CancelAsked("cancel", "t1", "user"))  # waits for the Queued
    step(s, ClaimAsked("claim", "w1"))
    assert set(unanswered(s)) == {"submit", "cancel", "claim"}
    step(s, perform(log, queued))  # answers the submission, decides the cancel
    assert set(unanswered(s)) == {"cancel", "claim"}


def test_a_lost_worker_requeues_its_task_first_in_line() -> None:
    s, log = Scheduler(_counter()), MemoryLog()
    claim = _running_task(s, log)
    step(s, SubmitAsked("other", spec(), None, 300))
    effects = step(s, WorkerLost("lost", "t1", claim.version, "worker died"))
    assert isinstance(_only(effects, Append).events[0], Queued)
    assert s.queue[0] == "t1"


def _shared_running(s: Scheduler, log: MemoryLog, worker: str) -> tuple[StoredEvent, ...]:
    """A task queued and started on ``worker``, as another process appended it, followed here."""
    log.append([("t1", [Queued(spec=spec(), attempt=1), Started(worker_id=worker, attempt=1)], 0)])
    step(s, Followed(log.events))
    return tuple(log.events)


def test_on_a_shared_log_a_task_started_elsewhere_leaves_the_queue_and_runs_remotely() -> None:
    s, log = Scheduler(_counter(), instance_id="a"), MemoryLog()
    _shared_running(s, log, "b/w1")
    assert s.remote == {"t1": "b/w1"}
    assert not s.queued
    assert s.running == {}


def test_a_cancel_followed_from_another_process_aborts_the_run_here() -> None:
    s, log = Scheduler(_counter(), instance_id="a"), MemoryLog()
    _shared_running(s, log, "a/w1")
    assert s.running == {"t1": "a/w1"}
    log.append([("t1", [Cancelled(reason="elsewhere")], 2)])
    effects = step(s, Followed(log.events[2:]))
    assert effects == [Abort("a/w1", "t1", 1)]
    assert s.running == {}
    assert s.states["t1"].status is Status.CANCELLED


def test_a_gap_in_what_is_followed_reloads_the_task() -> None:
    s, log = Scheduler(_counter(), instance_id="a"), MemoryLog()
    _shared_running(s, log, "b/w1")
    log.append([("t1", [completed()], 2)])
    log.append([("t2", [Queued(spec=spec(), attempt=1)], 0)])
    # The event at version 3 is skipped (as if lost): version 4 of t1 would be a gap.
    step(s, Followed(log.events[3:]))
    gap = StoredEvent(99, "t1", 4, EPOCH, Cancelled(reason="x"), "")
    assert step(s, Followed([gap])) == [Load("t1")]


def test_a_dead_owners_task_is_recovered_once_and_first_in_line() -> None:
    s, log = Scheduler(_counter("n"), instance_id="a"), MemoryLog()
    _shared_running(s, log, "gone/w1")
    step(s, SubmitAsked("other", spec(), None, 300))
    effects = step(s, RecoverAsked("recover", log.state("t1"), "gone"))
    append = _only(effects, Append)
    assert (append.stream, append.expected_version) == ("t1", 2)
    assert s.queue[0] == "t1"
    assert s.remote == {}
    assert _replies(_commit(s, log, append)) == {"recover": 3}
    # Another process recovered it first: nothing to do.
    stale = log.state("t1")
    assert _replies(step(s, RecoverAsked("again", stale, "gone"))) == {"again": 0}


# --- the model -----------------------------------------------------------------------------------

WORKERS = ("w1", "w2")


class SchedulerModel(RuleBasedStateMachine):
    shared = False

    def __init__(self) -> None:
        super().__init__()
        self.log = MemoryLog()
        self.ids = _counter()
        self.instances = 0
        self.s = self._fresh()
        self.effects: list[Append | AppendAll | Load] = []  # decided, not performed yet
        self.inbox: list[Message] = []  # outcomes performed, not delivered yet
        self.grants: list[tuple[Claim, str]] = []  # runs a worker has not reported yet
        self.granted: set[tuple[str, int]] = set()  # every Started granted (task, version)
        self.asked: set[Handle] = set()
        self.answered: set[Handle] = set()
        self.checked = 0  # log events checked by the terminal invariant
        self.followed = 0

    def _fresh(self) -> Scheduler:
        self.instances += 1
        instance = f"a{self.instances}" if self.shared else None
        return Scheduler(
            self.ids, queue_capacity=12, max_attempts=3, instance_id=instance, finished_cache=3
        )

    def worker(self, name: str) -> str:
        return name if self.s.instance_id is None else f"{self.s.instance_id}/{name}"

    # --- performing effects and checking answers ------------------------------------------------

    def step(self, message: Message) -> None:
        handle = getattr(message, "handle", None)
        if isinstance(handle, Handle) and handle not in self.answered:
            self.asked.add(handle)
        for effect in step(self.s, message):
            match effect:
                case Append() | AppendAll() | Load():
                    self.effects.append(effect)
                case Reply(handle=handle, value=value):
                    self.answer(handle, value, None)
                case ReplyError(handle=handle, error=error):
                    self.answer(handle, None, error)
                case Abort(task_id=task_id, attempt=attempt):
                    self.grants = [
                        (c, w)
                        for c, w in self.grants
                        if (c.task_id, c.attempt) != (task_id, attempt)
                    ]

    def answer(self, handle: object, value: object, error: CoinbtError | None) -> None:
        assert isinstance(handle, Handle)
        assert handle not in self.answered, "answered twice"
        self.answered.add(handle)
        log = self.log
        match handle.kind:
            case "submit":
                if error is not None:
                    assert isinstance(error, QueueFullError | DatabaseError), error
                    return
                assert isinstance(value, Submitted)
                if value.existing:
                    assert isinstance(log.streams[value.task_id][0].event, Queued)
                else:
                    assert log.at(value.position).stream_id == value.task_id
                    assert isinstance(log.at(value.position).event, Queued)
            case "batch":
                if error is not None:
                    assert isinstance(error, QueueFullError | DatabaseError), error
                    return
                assert isinstance(value, list)
                for submitted in value:
                    assert log.at(submitted.position).stream_id == submitted.task_id
            case "claim":
                assert error is None, error
                assert isinstance(value, list)
                for claim in value:
                    started = log.streams[claim.task_id][claim.version - 1].event
                    assert isinstance(started, Started)
                    assert started.worker_id == handle.worker_id
                    assert (claim.task_id, claim.version) not in self.granted, "granted twice"
                    self.granted.add((claim.task_id, claim.version))
                    assert handle.worker_id is not None
                    self.grants.append((claim, handle.worker_id))
            case "cancel":
                self.check_cancel(handle, value, error)
            case "finish" | "lost" | "recover":
                if error is not None:
                    assert isinstance(
                        error,
                        InvalidTransitionError
                        | TaskNotFoundError
                        | ConcurrencyError
                        | DatabaseError,
                    ), error
                    if isinstance(error, DatabaseError) and handle.claim is not None:
                        # The log could not take it: the worker reports again (Worker._report).
                        assert handle.worker_id is not None
                        self.grants.append((handle.claim, handle.worker_id))
                    return
                assert isinstance(value, int)
                if value:
                    assert log.at(value).stream_id == handle.task_id
                    if handle.outcome is not None:
                        assert isinstance(log.at(value).event, handle.outcome)

    def check_cancel(self, handle: Handle, value: object, error: CoinbtError | None) -> None:
        """Every answer to a cancel agrees with what the log holds."""
        task_id = handle.task_id
        assert task_id is not None
        terminal = self.log.terminal(task_id)
        if error is None:
            assert isinstance(value, int)
            if value:  # cancelled at this position
                assert self.log.at(value).stream_id == task_id
                assert isinstance(self.log.at(value).event, Cancelled)
            else:  # cancelled before
                assert isinstance(terminal, Cancelled)
        elif isinstance(error, InvalidTransitionError):  # "it is completed / failed"
            assert isinstance(terminal, Completed | Failed), (terminal, error)
        elif isinstance(error, TaskNotFoundError):
            assert task_id not in self.log.streams
        else:  # the log could not say (it kept refusing, or is away): no claim on the outcome
            assert isinstance(error, ConcurrencyError | DatabaseError), error

    # --- rules -----------------------------------------------------------------------------------

    @rule(
        bars=st.sampled_from([300, SMALL_BARS + 1]),
        key=st.none() | st.sampled_from(["k1", "k2"]),
    )
    def submit(self, bars: int, key: str | None) -> None:
        self.step(SubmitAsked(Handle("submit"), spec(bars=bars), key, bars))

    @rule(count=st.integers(1, 3))
    def submit_batch(self, count: int) -> None:
        self.step(BatchAsked(Handle("batch"), [spec()] * count, [300] * count))

    @rule(name=st.sampled_from(WORKERS), max_tasks=st.sampled_from([1, 4]))
    def claim(self, name: str, max_tasks: int) -> None:
        worker = self.worker(name)
        self.step(ClaimAsked(Handle("claim", worker_id=worker), worker, max_tasks))

    @rule(pick=st.integers(0, 1000), fail=st.integers(0, 9))
    def perform(self, pick: int, fail: int) -> None:
        if self.effects:
            effect = self.effects.pop(pick % len(self.effects))
            self.inbox.append(perform(self.log, effect, fail=fail == 0))

    @rule(pick=st.integers(0, 1000))
    def deliver(self, pick: int) -> None:
        if self.inbox:
            self.step(self.inbox.pop(pick % len(self.inbox)))

    @rule(count=st.integers(1, 8))
    def settle(self, count: int) -> None:
        """The common case: the oldest effects are performed and their outcomes delivered."""
        for _ in range(count):
            if self.effects:
                self.step(perform(self.log, self.effects.pop(0)))

    @rule(pick=st.integers(0, 1000), complete=st.booleans())
    def worker_done(self, pick: int, complete: bool) -> None:
        if self.grants:
            claim, worker = self.grants.pop(pick % len(self.grants))
            outcome = Complete(completed()) if complete else Fail("boom", "RuntimeError")
            kind = Completed if complete else Failed
            handle = Handle("finish", claim.task_id, worker, outcome=kind, claim=claim)
            self.step(WorkerDone(handle, claim.task_id, claim.version, outcome))

    @rule(pick=st.integers(0, 1000))
    def worker_lost(self, pick: int) -> None:
        if self.grants:
            claim, worker = self.grants.pop(pick % len(self.grants))
            handle = Handle("lost", claim.task_id, worker, claim=claim)
            self.step(WorkerLost(handle, claim.task_id, claim.version, "worker died"))

    @rule(pick=st.integers(0, 1000))
    def cancel(self, pick: int) -> None:
        known = [*sorted(set(self.log.streams) | set(self.s.states)), "unknown"]
        task_id = known[pick % len(known)]
        self.step(CancelAsked(Handle("cancel", task_id), task_id, "user"))

    @rule(pick=st.integers(0, 1000), action=st.sampled_from(["cancel", "start", "finish"]))
    def rival(self, pick: int, action: str) -> None:
        """Another process decides on a stream from the log and appends at its version."""
        if not self.log.streams or (action != "cancel" and not self.shared):
            return
        streams = sorted(self.log.streams)
        task_id = streams[pick % len(streams)]
        state = self.log.state(task_id)
        try:
            if action == "cancel":
                events = decide(state, Cancel("rival"))
            elif action == "start":
                events = decide(state, Start("b/w1"))
            elif state.worker_id == "b/w1":
                events = decide(state, Complete(completed()))
            else:
                return
        except CoinbtError:
            return
        if events:
            self.log.append([(task_id, events, state.version)])

    @rule(count=st.integers(1, 6))
    def follow(self, count: int) -> None:
        if self.shared and self.followed < len(self.log.events):
            events = self.log.events[self.followed : self.followed + count]
            self.followed += len(events)
            self.step(Followed(events))

    @rule(chance=st.integers(0, 9))
    def restart(self, chance: int) -> None:
        """The process dies: what it had not performed is lost, its workers with it; a fresh
        scheduler starts from the log. (Rarely: a restart forgets all the interesting races.)"""
        if chance != 7:
            return
        self.effects.clear()
        self.inbox.clear()
        self.grants.clear()
        self.answered.update(h for h in unanswered(self.s) if isinstance(h, Handle))
        self.s = self._fresh()
        states = [self.log.state(t) for t in sorted(self.log.streams)]
        unfinished = [state for state in states if not state.is_terminal]
        self.followed = len(self.log.events)
        if self.shared:
            self.step(Snapshot(unfinished, followed=self.followed))
        else:
            self.step(Snapshot(unfinished, recover=True))
        # The TaskManager makes the recovery appends before anything else (one that fails
        # fails the start: then this restart did not happen, as far as the log knows).
        while self.effects:
            self.step(perform(self.log, self.effects.pop(0)))

    @rule(pick=st.integers(0, 1000))
    def recover_dead_owner(self, pick: int) -> None:
        """On a shared log: a task running on a dead instance's worker is recovered."""
        dead = [
            (task_id, worker)
            for task_id, worker in sorted(self.s.remote.items())
            if not worker.startswith(("b/", f"{self.s.instance_id}/"))
        ]
        if dead:
            task_id, worker = dead[pick % len(dead)]
            state = self.log.state(task_id)
            if state.status is Status.RUNNING and state.worker_id == worker:
                owner = worker.split("/", 1)[0]
                self.step(RecoverAsked(Handle("recover", task_id), state, owner))

    # --- invariants ------------------------------------------------------------------------------

    @invariant()
    def at_most_one_terminal_event_and_nothing_after_it(self) -> None:
        for stored in self.log.events[self.checked :]:
            stream = self.log.streams[stored.stream_id]
            assert stored.version == stream.index(stored) + 1  # gap-free versions
            earlier = stream[: stored.version - 1]
            assert not any(_terminal(e.event) for e in earlier), "an event after the end"
        self.checked = len(self.log.events)

    @invariant()
    def every_request_is_answered_or_still_owed(self) -> None:
        """No reply is lost: what was asked and not answered is what the scheduler still owes."""
        owed = set(unanswered(self.s))
        assert owed == {h for h in self.asked if h not in self.answered}

    def teardown(self) -> None:
        """Let everything run to the end: every task then has exactly one terminal event, and
        the scheduler holds the log's state of every task it knows."""
        for _ in range(2000):
            if self.inbox:
                self.step(self.inbox.pop(0))
            elif self.effects:
                self.inbox.append(perform(self.log, self.effects.pop(0)))
            elif self.grants:
                claim, worker = self.grants.pop(0)
                handle = Handle("finish", claim.task_id, worker, outcome=Completed, claim=claim)
                self.step(WorkerDone(handle, claim.task_id, claim.version, Complete(completed())))
            elif self.shared and self.followed < len(self.log.events):
                self.follow(1000)
            elif not self._finish_rivals_and_dead() and not self._claim_queued():
                break
        else:
            raise AssertionError("the scheduler did not come to rest")
        for task_id, stream in self.log.streams.items():
            ends = [s.event for s in stream if _terminal(s.event)]
            assert len(ends) == 1, (task_id, [type(s.event).__name__ for s in stream])
        for task_id, state in self.s.states.items():
            assert state == self.log.state(task_id), task_id
        assert self.s.idle

    def _finish_rivals_and_dead(self) -> bool:
        progressed = False
        for task_id in sorted(self.log.streams):
            state = self.log.state(task_id)
            if state.status is not Status.RUNNING or state.worker_id is None:
                continue
            if state.worker_id == "b/w1":  # the rival's run finishes
                self.log.append([(task_id, [completed()], state.version)])
                progressed = True
            elif not self.s.is_local(state.worker_id):  # a dead instance's run is recovered
                owner = state.worker_id.split("/", 1)[0]
                self.step(RecoverAsked(Handle("recover", task_id), state, owner))
                progressed = True
        return progressed

    def _claim_queued(self) -> bool:
        if not self.s.queued or self.s.claims:
            return False
        self.claim("w1", 4)
        return True


class SharedLogModel(SchedulerModel):
    shared = True


MODEL_SETTINGS = settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

TestSchedulerModel = SchedulerModel.TestCase
TestSchedulerModel.settings = MODEL_SETTINGS
TestSharedLogModel = SharedLogModel.TestCase
TestSharedLogModel.settings = MODEL_SETTINGS
