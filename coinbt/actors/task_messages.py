"""What the TaskManager's mailbox takes, and what it answers (``coinbt.actors.task_manager``)."""

from __future__ import annotations

from dataclasses import dataclass

from coinbt.actors.base import Reply
from coinbt.events import StoredEvent, TaskSpec
from coinbt.lifecycle import Complete, Fail, TaskState

__all__ = (
    "CancelTask",
    "Claim",
    "ClaimTask",
    "FinishTask",
    "Followed",
    "Loaded",
    "Message",
    "RecoverTask",
    "RequeueTask",
    "SubmitBatch",
    "SubmitTask",
    "Submitted",
)


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
class SubmitBatch:
    """Several tasks queued together, in one atomic append: all of them or none."""

    specs: list[TaskSpec]
    reply: Reply[list[Submitted]]
    bars: list[int | None]  # per spec, as in SubmitTask


@dataclass(slots=True)
class CancelTask:
    task_id: str
    reason: str
    reply: Reply[int]  # position to wait for (0: nothing appended, already cancelled)
    loaded: TaskState | None = None
    tries: int = 0  # decided again after a refused append (another process changed the task)


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
class Loaded:
    """A task's state loaded from the log by a helper, handed back through the mailbox."""

    state: TaskState
    then: CancelTask


@dataclass(slots=True)
class Followed:
    """Events read from the log (appended by any process), in order, from where it left off."""

    events: list[StoredEvent]


@dataclass(slots=True)
class RecoverTask:
    """``state`` (read from the log under the dead owner's lock) was left running by a process
    that is gone: re-queue it (or fail it)."""

    state: TaskState
    owner: str
    reply: Reply[int]


Message = (
    SubmitTask
    | SubmitBatch
    | CancelTask
    | ClaimTask
    | FinishTask
    | RequeueTask
    | Loaded
    | Followed
    | RecoverTask
)
