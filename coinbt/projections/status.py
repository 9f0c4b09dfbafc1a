"""The status read model: one :class:`TaskView` per task, folded from its events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from coinbt.events import (
    ArtifactRef,
    Cancelled,
    Completed,
    Failed,
    Filled,
    Queued,
    Started,
    StoredEvent,
    TaskSpec,
)
from coinbt.lifecycle import Status

__all__ = ("TaskView", "apply_status")


class TaskView(msgspec.Struct, frozen=True, gc=False):
    """What a user reads about a task. ``seq`` (the position of its first event) orders lists.

    ``progress`` here is 0 until the task ends (1 when completed); the live progress of a running
    task is held by its worker and overlaid by the read side (it is not an event).
    """

    task_id: str
    seq: int
    status: Status
    attempt: int
    spec: TaskSpec
    created_at: datetime
    version: int
    progress: float = 0.0
    error: str | None = None
    error_type: str | None = None
    reason: str | None = None
    result: dict[str, Any] | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    idempotency_key: str | None = None
    worker_id: str | None = None
    num_fills: int = 0
    artifacts: dict[str, ArtifactRef] = {}
    fills_logged: bool = False  # its fills are Filled events (an old log), not an artifact

    def to_builtins(self, progress: float | None = None) -> dict[str, Any]:
        """The API representation (DESIGN section 6), with live ``progress`` if given."""
        return {
            "task_id": self.task_id,
            "status": self.status,
            "attempt": self.attempt,
            "progress": self.progress if progress is None else progress,
            "error": self.error,
            "error_type": self.error_type,
            "reason": self.reason,
            "spec": msgspec.to_builtins(self.spec),
            "result": self.result,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "idempotency_key": self.idempotency_key,
            "num_fills": self.num_fills,
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def apply_status(view: TaskView | None, stored: StoredEvent) -> TaskView:
    """The view after ``stored`` (``view`` is None before the task's first event)."""
    event = stored.event
    replace = msgspec.structs.replace
    if view is None:
        if not isinstance(event, Queued):
            raise ValueError(f"task {stored.stream_id} starts with {stored.type}, not Queued")
        return TaskView(
            task_id=stored.stream_id,
            seq=stored.position,
            status=Status.QUEUED,
            attempt=event.attempt,
            spec=event.spec,
            created_at=stored.recorded_at,
            version=stored.version,
            idempotency_key=event.idempotency_key,
        )
    version = stored.version
    match event:
        case Filled():
            return replace(view, version=version, num_fills=view.num_fills + 1, fills_logged=True)
        case Queued(attempt=attempt):
            return replace(
                view,
                version=version,
                status=Status.QUEUED,
                attempt=attempt,
                progress=0.0,
                started_at=None,
                worker_id=None,
            )
        case Started(worker_id=worker_id, attempt=attempt):
            return replace(
                view,
                version=version,
                status=Status.RUNNING,
                attempt=attempt,
                started_at=stored.recorded_at,
                worker_id=worker_id,
            )
        case Completed():
            num_fills = view.num_fills if view.fills_logged else event.num_fills
            return replace(
                view,
                num_fills=num_fills,
                version=version,
                status=Status.COMPLETED,
                progress=1.0,
                finished_at=stored.recorded_at,
                artifacts=event.artifacts,
                result={
                    "metrics": event.metrics,
                    "final_equity": event.final_equity,
                    "result_digest": event.result_digest,
                    "num_fills": num_fills,
                    "symbol": event.symbol,
                    "symbols": [p.symbol for p in event.positions] or [event.symbol],
                    "last_close": event.last_close,
                    "artifacts": {name: ref.key for name, ref in event.artifacts.items()},
                },
            )
        case Failed(error=error, error_type=error_type):
            return replace(
                view,
                version=version,
                status=Status.FAILED,
                error=error,
                error_type=error_type,
                finished_at=stored.recorded_at,
            )
        case Cancelled(reason=reason):
            return replace(
                view,
                version=version,
                status=Status.CANCELLED,
                reason=reason,
                finished_at=stored.recorded_at,
            )
    raise TypeError(f"unknown event {event!r}")  # pragma: no cover
