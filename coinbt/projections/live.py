"""Live progress of running tasks: worker-held state published next to the status read model.

Progress is not an event (DESIGN section 4): it is lost on restart and never replayed. Readers
overlay it on a running task's view; streams wait on :meth:`LiveProgress.changed_hint`.

On a shared PostgreSQL database each process also holds what the others last announced
(:class:`coinbt.backends.postgres.live.ProgressRelay`): every process's whole set of running tasks,
replaced at each announcement and forgotten when it is not renewed in time (a process that is
gone announces nothing).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

import anyio

__all__ = ("LiveProgress",)

_FINISHED_KEPT = 4096


class LiveProgress:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._values: dict[str, float] = {}  # the runs of this process
        self._remote: dict[str, tuple[dict[str, float], float]] = {}  # instance -> (values, until)
        self._clock = clock
        self._changed = anyio.Event()
        # The last progress of runs that ended, for reads until the outcome is in the read models
        # (the newest _FINISHED_KEPT): a task never shows less progress at the end than before.
        self._finished: OrderedDict[str, float] = OrderedDict()

    def set(self, task_id: str, fraction: float) -> None:
        self._finished.pop(task_id, None)
        self._values[task_id] = min(max(fraction, 0.0), 1.0)
        self._notify()

    def pop(self, task_id: str) -> None:
        if self._values.pop(task_id, None) is not None:
            self._notify()

    def finish(self, task_id: str) -> None:
        """The run of ``task_id`` ended: no longer running, but :meth:`get` keeps its last value."""
        value = self._values.pop(task_id, None)
        if value is not None:
            self._finished[task_id] = value
            while len(self._finished) > _FINISHED_KEPT:
                self._finished.popitem(last=False)
            self._notify()

    def get(self, task_id: str) -> float | None:
        value = self._values.get(task_id)
        if value is None and self._remote:
            value = self._others().get(task_id)
        if value is None:
            value = self._finished.get(task_id)
        return value

    def snapshot(self) -> dict[str, float]:
        """Every known run's progress, this process's and (on a shared database) the others'."""
        return {**self._others(), **self._values} if self._remote else dict(self._values)

    def local(self) -> dict[str, float]:
        """The progress of this process's own runs."""
        return dict(self._values)

    def replace_remote(self, instance: str, values: dict[str, float], valid_s: float) -> None:
        """What process ``instance`` announced: its runs now, believed for ``valid_s``."""
        clean = {task: min(max(v, 0.0), 1.0) for task, v in values.items()}
        self._remote[instance] = (clean, self._clock() + valid_s)
        self._notify()

    def changed_hint(self) -> anyio.Event:
        """Set at the next change (take it before reading the values)."""
        return self._changed

    def _others(self) -> dict[str, float]:
        now = self._clock()
        merged: dict[str, float] = {}
        for instance, (values, until) in list(self._remote.items()):
            if until < now:
                del self._remote[instance]
            else:
                merged.update(values)
        return merged

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()
