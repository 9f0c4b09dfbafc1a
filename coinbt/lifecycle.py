"""The task lifecycle as pure functions: ``decide(state, command) -> events`` and
``evolve(state, event) -> state`` (DESIGN section 3). No event loop, no I/O.

::

    queued --> running --> completed
       |          |------> failed
       |          |------> cancelled
       |          '------> queued   (recovery after a restart: attempt + 1, up to max_attempts)
       '------> cancelled

Whoever appends the decided events must do so at ``state.version`` (the version the decision saw),
so two racing decisions (a cancel and a completion) cannot both be recorded.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

import msgspec

from coinbt import defaults
from coinbt.errors import InvalidTransitionError, TaskNotFoundError
from coinbt.events import (
    Cancelled,
    Completed,
    Failed,
    Filled,
    Queued,
    Started,
    TaskEvent,
    TaskSpec,
)

__all__ = (
    "TERMINAL",
    "UNFINISHED",
    "Cancel",
    "Command",
    "Complete",
    "Fail",
    "Recover",
    "Start",
    "Status",
    "Submit",
    "TaskState",
    "decide",
    "evolve",
    "fold",
)


class Status(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})
UNFINISHED = (Status.QUEUED, Status.RUNNING)
"""The statuses a task can leave (the rest are ``TERMINAL``), in lifecycle order."""


class TaskState(msgspec.Struct, frozen=True):
    """What the lifecycle needs to know of one task. ``status`` is None before it exists."""

    task_id: str
    version: int = 0
    status: Status | None = None
    attempt: int = 0
    spec: TaskSpec | None = None
    idempotency_key: str | None = None
    worker_id: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL


# --- commands ------------------------------------------------------------------------------------


class Submit(msgspec.Struct, frozen=True):
    spec: TaskSpec
    idempotency_key: str | None = None


class Start(msgspec.Struct, frozen=True):
    worker_id: str


class Complete(msgspec.Struct, frozen=True):
    completed: Completed


class Fail(msgspec.Struct, frozen=True):
    error: str
    error_type: str


class Cancel(msgspec.Struct, frozen=True):
    reason: str = "cancelled by user"


class Recover(msgspec.Struct, frozen=True):
    """On start-up: a task left running by a dead process is re-queued or failed."""

    max_attempts: int = defaults.MAX_ATTEMPTS


Command = Submit | Start | Complete | Fail | Cancel | Recover


def decide(state: TaskState, command: Command) -> list[TaskEvent]:
    """The events ``command`` produces in ``state`` (possibly none).

    Raises ``TaskNotFoundError`` for a command on a task that does not exist and
    ``InvalidTransitionError`` for one its status does not allow.
    """
    status = state.status
    match command:
        case Submit(spec=spec, idempotency_key=key):
            if status is not None:
                raise InvalidTransitionError(state.task_id, status, "submit")
            return [Queued(spec=spec, attempt=1, idempotency_key=key)]
        case _ if status is None:
            raise TaskNotFoundError(state.task_id)
        case Cancel(reason=reason):
            if status is Status.CANCELLED:
                return []  # cancel is idempotent
            if status in UNFINISHED:
                return [Cancelled(reason=reason)]
            raise InvalidTransitionError(state.task_id, status, "cancel")
        case Start(worker_id=worker_id):
            _require(state, Status.QUEUED, "start")
            return [Started(worker_id=worker_id, attempt=state.attempt)]
        case Complete(completed=completed):
            _require(state, Status.RUNNING, "complete")
            return [completed]
        case Fail(error=error, error_type=error_type):
            _require(state, Status.RUNNING, "fail")
            return [Failed(error=error, error_type=error_type)]
        case Recover(max_attempts=max_attempts):
            if status is not Status.RUNNING:
                return []
            if state.attempt + 1 > max_attempts:
                return [
                    Failed(
                        error=(
                            f"interrupted: the service stopped during attempt {state.attempt} "
                            f"of {max_attempts}"
                        ),
                        error_type="interrupted",
                    )
                ]
            assert state.spec is not None
            return [
                Queued(
                    spec=state.spec,
                    attempt=state.attempt + 1,
                    idempotency_key=state.idempotency_key,
                )
            ]
    raise TypeError(f"unknown command {command!r}")  # pragma: no cover


def _require(state: TaskState, wanted: Status, action: str) -> None:
    if state.status is not wanted:
        raise InvalidTransitionError(state.task_id, str(state.status), action)


def evolve(state: TaskState, event: TaskEvent) -> TaskState:
    """The state after ``event``; every event bumps the version."""
    version = state.version + 1
    match event:
        case Queued(spec=spec, attempt=attempt, idempotency_key=key):
            return msgspec.structs.replace(
                state,
                version=version,
                status=Status.QUEUED,
                attempt=attempt,
                spec=spec,
                idempotency_key=key if key is not None else state.idempotency_key,
                worker_id=None,
            )
        case Started(worker_id=worker_id, attempt=attempt):
            return msgspec.structs.replace(
                state, version=version, status=Status.RUNNING, attempt=attempt, worker_id=worker_id
            )
        case Filled():
            return msgspec.structs.replace(state, version=version)
        case Completed():
            return msgspec.structs.replace(state, version=version, status=Status.COMPLETED)
        case Failed():
            return msgspec.structs.replace(state, version=version, status=Status.FAILED)
        case Cancelled():
            return msgspec.structs.replace(state, version=version, status=Status.CANCELLED)
    raise TypeError(f"unknown event {event!r}")  # pragma: no cover


def fold(task_id: str, events: Iterable[TaskEvent]) -> TaskState:
    """The state of a task after all its events."""
    state = TaskState(task_id=task_id)
    for event in events:
        state = evolve(state, event)
    return state
