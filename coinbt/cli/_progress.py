"""Progress of long commands (``replay``, ``audit verify``) on standard error.

On a terminal: one line rewritten in place, at most ten times a second, and cleared at the end,
so the command's own output (standard output) reads the same with or without it. Anywhere else
(a pipe, a log file, CI): nothing, so logs hold results, not carriage returns.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ("EventCounter",)


class EventCounter:
    """A ``coinbt.store.base.Progress``: ``counter(done, total)``, from one thread at a time
    (the one doing the work, which may be a worker thread)."""

    def __init__(
        self,
        label: str,
        stream: TextIO | None = None,
        *,
        interval_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._label = label
        self._stream = sys.stderr if stream is None else stream
        self._enabled = self._stream.isatty()
        self._interval_s = interval_s
        self._clock = clock
        self._next = 0.0
        self._shown = False

    def __call__(self, done: int, total: int) -> None:
        if not self._enabled:
            return
        now = self._clock()
        if now < self._next and done < total:
            return
        self._next = now + self._interval_s
        line = f"{self._label}: {done:,} of {total:,} events"
        if total > 0:
            line += f" ({min(done, total) * 100 // total}%)"
        self._stream.write(f"\r\x1b[K{line}")
        self._stream.flush()
        self._shown = True

    def close(self) -> None:
        """Clear the line (if one was shown)."""
        if self._shown:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._shown = False

    def __enter__(self) -> EventCounter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
