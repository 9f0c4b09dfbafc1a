"""What the TaskManager's mailbox takes, and what it answers (``coinbt.actors.task_manager``).

The requests below carry a :class:`~coinbt.actors.base.Reply`; the TaskManager turns each into the
scheduler's message (``coinbt.scheduler``). Append and load outcomes, and events followed on a
shared log, come back into the mailbox as the scheduler's own messages."""

from __future__ import annotations

from dataclasses import dataclass

from coinbt.actors.base import Reply
from coinbt.events import TaskSpec
from coinbt.lifecycle import Complete, Fail, TaskState
from coinbt.scheduler import Claim, Committed, Followed, Loaded, LoadFailed, Refused, Submitted

__all__ = (
    "CancelTask",
    "Claim",
    "ClaimTask",
    "FinishTask",
    "Message",
    "Outcomes",
    "RecoverTask",
    "Request",
    "RequeueTask",
    "SubmitBatch",
    "SubmitTask",
    "Submitted",
)


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
class RecoverTask:
    """``state`` (read from the log under the dead owner's lock) was left running by a process
    that is gone: re-queue it (or fail it)."""

    state: TaskState
    owner: str
    reply: Reply[int]


@dataclass(slots=True)
class Outcomes:
    """Append and load outcomes (``Committed``, ``Refused``, ``Loaded``, ``LoadFailed``) on their
    way back: while one such message waits in the mailbox, later outcomes join it, so a burst of
    commits costs the actor one message."""

    items: list[Committed | Refused | Loaded | LoadFailed]


Request = SubmitTask | SubmitBatch | CancelTask | ClaimTask | FinishTask | RequeueTask | RecoverTask

Message = Request | Outcomes | Followed
