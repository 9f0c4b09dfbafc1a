"""The scheduler's messages in, effects out, and what its replies carry (``coinbt.scheduler``).

Reply handles are opaque values (the TaskManager's :class:`~coinbt.actors.base.Reply`): the pure
code carries them to a :class:`Reply` or :class:`ReplyError` effect and never calls them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from coinbt.errors import CoinbtError
from coinbt.events import StoredEvent, TaskEvent, TaskSpec
from coinbt.lifecycle import Complete, Fail, TaskState

__all__ = (
    "Abort",
    "Append",
    "AppendAll",
    "BatchAsked",
    "CancelAsked",
    "Claim",
    "ClaimAsked",
    "Committed",
    "Effect",
    "Followed",
    "Load",
    "LoadFailed",
    "Loaded",
    "Log",
    "Message",
    "RecoverAsked",
    "Refused",
    "Reply",
    "ReplyError",
    "Snapshot",
    "StopDispatching",
    "SubmitAsked",
    "Submitted",
    "WorkerDone",
    "WorkerLost",
)


# --- what the replies carry ----------------------------------------------------------------------


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


# --- messages in ---------------------------------------------------------------------------------


@dataclass(slots=True)
class SubmitAsked:
    handle: object
    spec: TaskSpec
    idempotency_key: str | None = None
    bars: int | None = None  # the size of its data, if known (small tasks are batched)


@dataclass(slots=True)
class BatchAsked:
    """Several tasks queued together, in one atomic append: all of them or none."""

    handle: object
    specs: Sequence[TaskSpec]
    bars: Sequence[int | None]


@dataclass(slots=True)
class ClaimAsked:
    """A worker asks for work: one task, or up to ``max_tasks`` small ones."""

    handle: object
    worker_id: str
    max_tasks: int = 1


@dataclass(slots=True)
class CancelAsked:
    handle: object
    task_id: str
    reason: str
    tries: int = 0  # decided again after a refused append


@dataclass(slots=True)
class WorkerDone:
    """A worker's result, to append at the version it saw at ``Started``."""

    handle: object
    task_id: str
    started_version: int
    outcome: Complete | Fail


@dataclass(slots=True)
class WorkerLost:
    """The executor lost the worker running a started task: re-queue it (or fail it)."""

    handle: object
    task_id: str
    started_version: int
    reason: str


@dataclass(frozen=True, slots=True)
class Committed:
    """Append ``append_id`` is in the log: its stored events, one list per stream."""

    append_id: int
    stored: list[list[StoredEvent]]


@dataclass(frozen=True, slots=True)
class Refused:
    """Append ``append_id`` was not written (``ConcurrencyError``: another decider was first)."""

    append_id: int
    error: CoinbtError


@dataclass(frozen=True, slots=True)
class Loaded:
    """The answer to a :class:`Load`: the task's state folded from its stream (``status`` None if
    it has no events) and the position of its last event (0 if none)."""

    state: TaskState
    position: int


@dataclass(frozen=True, slots=True)
class LoadFailed:
    task_id: str
    error: CoinbtError


@dataclass(frozen=True, slots=True)
class Followed:
    """Events read from a shared log (appended by any process), in order, from where it left off."""

    events: Sequence[StoredEvent]


@dataclass(slots=True)
class RecoverAsked:
    """``state`` (read under the dead owner's lock) was left running by a process that is gone."""

    handle: object
    state: TaskState
    owner: str


@dataclass(frozen=True, slots=True)
class StopDispatching:
    """Shutting down: take no new submissions and start nothing new."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Start-up: the unfinished tasks as the log holds them, as of position ``followed`` (a shared
    log is followed from there). ``recover``: tasks left running died with this process's
    predecessor (one process owns the log) and are re-queued or failed."""

    states: Sequence[TaskState]
    followed: int = 0
    recover: bool = False


Message = (
    SubmitAsked
    | BatchAsked
    | ClaimAsked
    | CancelAsked
    | WorkerDone
    | WorkerLost
    | Committed
    | Refused
    | Loaded
    | LoadFailed
    | Followed
    | RecoverAsked
    | StopDispatching
    | Snapshot
)


# --- effects out ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Append:
    """Append ``events`` to ``stream`` at ``expected_version``; tell back Committed/Refused."""

    append_id: int
    stream: str
    events: Sequence[TaskEvent]
    expected_version: int


@dataclass(frozen=True, slots=True)
class AppendAll:
    """One atomic append to several new streams (a batch submission): all of them or none."""

    append_id: int
    appends: Sequence[tuple[str, Sequence[TaskEvent], int]]


@dataclass(frozen=True, slots=True)
class Abort:
    worker_id: str
    task_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class Reply:
    handle: object
    value: object


@dataclass(frozen=True, slots=True)
class ReplyError:
    handle: object
    error: CoinbtError


@dataclass(frozen=True, slots=True)
class Load:
    """Read the task's stream and tell back :class:`Loaded` (or :class:`LoadFailed`);
    ``retry``: the last read failed (wait a moment first)."""

    task_id: str
    retry: bool = False


@dataclass(frozen=True, slots=True)
class Log:
    level: int
    text: str


Effect = Append | AppendAll | Abort | Reply | ReplyError | Load | Log
