"""Re-execution audits: run a completed task again from what the log recorded, compare digests.

The hash chain proves the log was not changed after the fact; a rerun proves the recorded result
follows from the recorded inputs. For a completed task it takes the spec of its last ``Queued``
(strategy, parameters, costs, the dataset and its version, or the synthetic series), resolves the
data as the worker did, builds the job with the worker's own recipe and runs it on a process
executor, like the service (a sweep runs its chunks as the worker does and its summary's digest
is compared). The result digest (sha256 of the canonical result: fills, equity
curve, metrics) must equal ``Completed.result_digest``. On a mismatch the first difference is
named: a metric, the final equity, or else the fills or curve the digest covers.
"""

from __future__ import annotations

import math
import random
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from coinbt.actors.task_messages import Claim
from coinbt.datasets import Catalog
from coinbt.errors import CoinbtError, TaskNotFoundError
from coinbt.events import Completed, Queued, StoredEvent
from coinbt.executor.base import Executor, JobError, JobResult
from coinbt.specs import resolve
from coinbt.store.base import EventStore

__all__ = ("RerunResult", "completed_task_ids", "rerun_task", "sample")

_PAGE = 5_000


@dataclass(frozen=True, slots=True)
class RerunResult:
    task_id: str
    recorded: str  # Completed.result_digest
    rerun: str | None  # None when the rerun could not run (see ``difference``)
    difference: str | None  # the first difference; None when the digests match

    @property
    def ok(self) -> bool:
        return self.difference is None


async def completed_task_ids(store: EventStore) -> list[str]:
    """Every task with a ``Completed`` event, in log order."""
    ids: list[str] = []
    after = 0
    while page := await store.read_all(after, _PAGE):
        ids += [e.stream_id for e in page if e.type == "Completed"]
        after = page[-1].position
    return ids


def sample(task_ids: Sequence[str], n: int, seed: int | None = None) -> list[str]:
    """``n`` of ``task_ids`` chosen at random (all of them if there are fewer), in log order."""
    if n >= len(task_ids):
        return list(task_ids)
    chosen = set(random.Random(seed).sample(range(len(task_ids)), n))
    return [t for i, t in enumerate(task_ids) if i in chosen]


async def rerun_task(
    store: EventStore, catalog: Catalog, executor: Executor, task_id: str
) -> RerunResult:
    """Run a completed task again and compare. ``TaskNotFoundError`` for an unknown task;
    ``CoinbtError`` naming the status if it did not complete."""
    from coinbt.actors.worker import _job  # the worker's own recipe, so the job is the same
    from coinbt.executor.sweep_task import run_sweep_task

    events = await store.read_stream(task_id)
    if not events:
        raise TaskNotFoundError(task_id)
    queued, completed = _inputs(task_id, events)
    spec = queued.spec
    try:
        plan = await resolve(spec, catalog, max_bars=sys.maxsize, recorded=True)
    except CoinbtError as e:
        return RerunResult(task_id, completed.result_digest, None, f"its data: {e}")
    with tempfile.TemporaryDirectory(prefix="coinbt-rerun-") as scratch:
        out = Path(scratch) / f"{task_id}-{queued.attempt}"
        try:
            if spec.sweep is None:
                job = _job(Claim(task_id, spec, queued.attempt, 0), plan, out)
                result = await executor.run(job, lambda fraction: None)
            else:  # a sweep: its chunks run as the worker runs them, the summary digest compared
                result = await run_sweep_task(executor, task_id, spec, plan, out, lambda f: None)
        except JobError as e:
            return RerunResult(task_id, completed.result_digest, None, f"the rerun failed: {e}")
    difference = None
    if result.result_digest != completed.result_digest:
        difference = first_difference(completed, result)
    return RerunResult(task_id, completed.result_digest, result.result_digest, difference)


def _inputs(task_id: str, events: list[StoredEvent]) -> tuple[Queued, Completed]:
    queued: Queued | None = None
    completed: Completed | None = None
    for stored in events:
        match stored.event:
            case Queued() as q:
                queued = q
            case Completed() as c:
                completed = c
    if completed is None or queued is None:
        raise _NotCompletedError(task_id, events[-1].type)
    return queued, completed


class _NotCompletedError(CoinbtError):
    code = "not_completed"

    def __init__(self, task_id: str, last: str) -> None:
        super().__init__(f"task {task_id!r} did not complete (its last event is {last})")


def first_difference(recorded: Completed, rerun: JobResult) -> str:
    """The first thing that differs between a recorded result and a rerun's."""
    for name in sorted(set(recorded.metrics) | set(rerun.metrics)):
        a, b = recorded.metrics.get(name), rerun.metrics.get(name)
        if not _same(a, b):
            return f"metric {name}: recorded {a!r}, rerun {b!r}"
    if not _same(recorded.final_equity, rerun.final_equity):
        return f"final_equity: recorded {recorded.final_equity!r}, rerun {rerun.final_equity!r}"
    return (
        f"result digest: recorded {recorded.result_digest}, rerun {rerun.result_digest} "
        "(metrics and final equity agree: the fills or the equity curve differ)"
    )


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b
