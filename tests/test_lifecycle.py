"""The lifecycle core: every transition of DESIGN section 3, and exactly one terminal event per task
in any interleaving of cancel / complete / fail / restart by racing deciders."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coinbt.backends.memory import MemoryEventStore
from coinbt.errors import ConcurrencyError, InvalidTransitionError, TaskNotFoundError
from coinbt.events import Cancelled, Failed, Queued, Started, TaskEvent, event_type
from coinbt.lifecycle import (
    Cancel,
    Command,
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
from tests.factories import completed, filled, queued, spec, started

COMPLETE = Complete(completed=completed())


def state_in(status: Status | None, attempt: int = 1) -> TaskState:
    history: list[TaskEvent] = []
    if status is not None:
        history.append(Queued(spec=spec(), attempt=1, idempotency_key="k"))
    for n in range(2, attempt + 1):
        history += [Started(worker_id="w", attempt=n - 1), Queued(spec=spec(), attempt=n)]
    if status not in (None, Status.QUEUED):
        history.append(Started(worker_id="w", attempt=attempt))
    match status:
        case Status.COMPLETED:
            history += [COMPLETE.completed]
        case Status.FAILED:
            history.append(Failed(error="x", error_type="RuntimeError"))
        case Status.CANCELLED:
            history.append(Cancelled(reason="x"))
    state = fold("t-1", history)
    assert state.status == status
    return state


@pytest.mark.parametrize(
    ("status", "command", "expected"),
    [
        pytest.param(None, Submit(spec()), ["Queued"], id="submit-new"),
        pytest.param(Status.QUEUED, Start("w-1"), ["Started"], id="start-queued"),
        pytest.param(Status.RUNNING, COMPLETE, ["Completed"], id="complete"),
        pytest.param(Status.RUNNING, Fail("boom", "RuntimeError"), ["Failed"], id="fail-running"),
        pytest.param(Status.QUEUED, Cancel(), ["Cancelled"], id="cancel-queued"),
        pytest.param(Status.RUNNING, Cancel(), ["Cancelled"], id="cancel-running"),
        pytest.param(Status.CANCELLED, Cancel(), [], id="cancel-cancelled-is-noop"),
        pytest.param(Status.RUNNING, Recover(3), ["Queued"], id="recover-running"),
        pytest.param(Status.QUEUED, Recover(3), [], id="recover-queued-noop"),
        pytest.param(Status.COMPLETED, Recover(3), [], id="recover-completed-noop"),
        pytest.param(Status.CANCELLED, Recover(3), [], id="recover-cancelled-noop"),
    ],
)
def test_allowed_transitions(status: Status | None, command: Command, expected: list[str]) -> None:
    events = decide(state_in(status), command)
    assert [event_type(e) for e in events] == expected


@pytest.mark.parametrize(
    ("status", "command"),
    [
        pytest.param(Status.COMPLETED, Cancel(), id="cancel-completed"),
        pytest.param(Status.FAILED, Cancel(), id="cancel-failed"),
        pytest.param(Status.QUEUED, Submit(spec()), id="submit-twice"),
        pytest.param(Status.RUNNING, Start("w"), id="start-running"),
        pytest.param(Status.CANCELLED, Start("w"), id="start-cancelled"),
        pytest.param(Status.QUEUED, COMPLETE, id="complete-queued"),
        pytest.param(Status.CANCELLED, COMPLETE, id="complete-cancelled"),
        pytest.param(Status.COMPLETED, COMPLETE, id="complete-twice"),
        pytest.param(Status.CANCELLED, Fail("x", "y"), id="fail-cancelled"),
    ],
)
def test_refused_transitions_name_the_status(status: Status, command: Command) -> None:
    with pytest.raises(InvalidTransitionError) as info:
        decide(state_in(status), command)
    assert info.value.status == status
    assert str(status) in str(info.value)


@pytest.mark.parametrize("command", [Cancel(), Start("w"), COMPLETE, Recover(3)])
def test_commands_on_a_missing_task(command: Command) -> None:
    with pytest.raises(TaskNotFoundError):
        decide(TaskState(task_id="nope"), command)


def test_recovery_requeues_with_the_next_attempt_and_the_same_spec() -> None:
    state = state_in(Status.RUNNING, attempt=2)
    [event] = decide(state, Recover(max_attempts=3))
    assert isinstance(event, Queued)
    assert event.attempt == 3
    assert event.spec == state.spec
    assert event.idempotency_key == "k"
    assert evolve(state, event).status is Status.QUEUED


def test_recovery_past_max_attempts_fails_interrupted() -> None:
    [event] = decide(state_in(Status.RUNNING, attempt=3), Recover(max_attempts=3))
    assert isinstance(event, Failed)
    assert event.error_type == "interrupted"
    assert "interrupted" in event.error


def test_evolve_counts_versions() -> None:
    state = state_in(Status.COMPLETED)
    assert state.version == 3  # Queued, Started, Completed


def test_an_old_logs_filled_events_count_as_versions() -> None:
    state = fold("t", [queued(), started(), filled(1, "buy"), filled(5, "sell"), completed()])
    assert (state.status, state.version) == (Status.COMPLETED, 5)


# --- racing deciders ------------------------------------------------------------------------------

ACTORS = ("manager", "worker-a", "worker-b")
step = st.tuples(
    st.sampled_from(ACTORS),
    st.sampled_from(["read", "start", "complete", "fail", "cancel", "restart"]),
)


async def _scenario(steps: list[tuple[str, str]]) -> list[str]:
    """Deciders act on snapshots read at arbitrary earlier moments and append at the version they
    saw: stale decisions must lose. A restart drops every snapshot and recovers from the log."""
    store = MemoryEventStore()
    await store.append("t", decide(TaskState(task_id="t"), Submit(spec())), 0)
    snapshots: dict[str, TaskState] = {}

    async def current() -> TaskState:
        return fold("t", [s.event for s in await store.read_stream("t")])

    async def act(actor: str, command: Command) -> None:
        state = snapshots.get(actor) or await current()
        try:
            events = decide(state, command)
            if events:
                await store.append("t", events, state.version)
        except (InvalidTransitionError, ConcurrencyError):
            pass
        snapshots.pop(actor, None)

    commands: dict[str, Any] = {
        "start": lambda actor: Start(actor),
        "complete": lambda _: COMPLETE,
        "fail": lambda _: Fail("boom", "RuntimeError"),
        "cancel": lambda _: Cancel("racing"),
    }
    for actor, op in steps:
        if op == "read":
            snapshots[actor] = await current()
        elif op == "restart":
            snapshots.clear()
            await act("manager", Recover(max_attempts=3))
        else:
            await act(actor, commands[op](actor))
        _check_history([s.event for s in await store.read_stream("t")])
    # Settle: whatever is still live runs to completion.
    for command in (Start("settler"), COMPLETE):
        await act("settler", command)
    history = [s.event for s in await store.read_stream("t")]
    _check_history(history)
    return [event_type(e) for e in history]


def _check_history(history: list[TaskEvent]) -> None:
    """An independent statement of the lifecycle's allowed sequences."""
    allowed = {
        None: {"Queued"},
        "Queued": {"Started", "Cancelled"},
        "Started": {"Filled", "Completed", "Failed", "Cancelled", "Queued"},
        "Filled": {"Filled", "Completed"},
    }
    previous: str | None = None
    attempts = []
    for event in history:
        name = event_type(event)
        assert previous in allowed, f"{name} after terminal {previous}"
        assert name in allowed[previous], f"{name} after {previous}"
        if isinstance(event, Queued):
            attempts.append(event.attempt)
        previous = name
    assert attempts == list(range(1, len(attempts) + 1))
    assert len(attempts) <= 3


@settings(max_examples=400, deadline=None)
@given(st.lists(step, max_size=25))
def test_exactly_one_terminal_event_in_any_interleaving(steps: list[tuple[str, str]]) -> None:
    history = anyio.run(_scenario, steps)
    terminal = [name for name in history if name in ("Completed", "Failed", "Cancelled")]
    assert len(terminal) == 1
    assert history[-1] == terminal[0]
