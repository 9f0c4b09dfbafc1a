"""Live progress of running tasks: worker-held state published next to the status read model.

Progress is not an event (DESIGN section 4): it is lost on restart and never replayed. Readers
overlay it on a running task's view; streams wait on :meth:`LiveProgress.changed_hint`.
"""

from __future__ import annotations

import anyio

__all__ = ("LiveProgress",)


class LiveProgress:
    def __init__(self) -> None:
        self._values: dict[str, float] = {}
        self._changed = anyio.Event()

    def set(self, task_id: str, fraction: float) -> None:
        self._values[task_id] = min(max(fraction, 0.0), 1.0)
        self._notify()

    def pop(self, task_id: str) -> None:
        if self._values.pop(task_id, None) is not None:
            self._notify()

    def get(self, task_id: str) -> float | None:
        return self._values.get(task_id)

    def snapshot(self) -> dict[str, float]:
        return dict(self._values)

    def changed_hint(self) -> anyio.Event:
        """Set at the next change (take it before reading the values)."""
        return self._changed

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()
