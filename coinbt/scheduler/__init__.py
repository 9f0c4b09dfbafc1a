"""The scheduler as a value and one pure function: ``step(scheduler, message) -> effects``.

The TaskManager (``coinbt.actors.task_manager``) is a shell around it: it hands every message of its
mailbox to :func:`step` and performs the effects that come back (appends, aborts, replies, loads).
Nothing here awaits, reads a clock, touches a file or calls a reply: reply handles are opaque values
carried to a :class:`Reply` effect. :func:`step` changes the :class:`Scheduler` in place (copying
the state of 10,000 tasks per message would cost more than the rest of the service); only the actor
calls it, one message at a time, so it behaves like ``evolve`` returning a new value.

What it holds: each known task's :class:`~coinbt.lifecycle.TaskState` (and which finished ones are
cached), the run queue, the small tasks among it, what runs here and (on a shared log) elsewhere,
the workers waiting for work, idempotency keys, the log position followed, and per task the append
in flight and those waiting behind it.

**Appends.** A decision is applied at once (optimistically: a started task leaves the queue) and its
events leave as an :class:`Append` effect carrying the version the decision saw. Appends of one task
reach the log in decision order: while one is in flight the next waits here and is emitted when the
outcome (:class:`Committed` or :class:`Refused`, by append id) comes back through the mailbox. A
refusal reloads the task from the log (:class:`Load`, answered by :class:`Loaded`) before the task
moves on.

**A cancel's answer is decided only by what the log recorded.** While a task has an append in
flight or waiting, or a reload under way, a cancel waits; it is decided once none is left, on
the state the log's outcomes produced, so its answer (cancelled at position p, "it is
completed", not found) agrees with the log. A cancel refused by the log (another process changed
the task) is decided again on the reloaded state.
"""

from coinbt.scheduler._core import (
    CANCEL_TRIES,
    SMALL_BARS,
    Scheduler,
    keyed_task_id,
    step,
    unanswered,
)
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

__all__ = (
    "CANCEL_TRIES",
    "SMALL_BARS",
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
    "Scheduler",
    "Snapshot",
    "StopDispatching",
    "SubmitAsked",
    "Submitted",
    "WorkerDone",
    "WorkerLost",
    "keyed_task_id",
    "step",
    "unanswered",
)
