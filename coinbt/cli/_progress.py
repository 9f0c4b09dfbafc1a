"""Progress of long commands (``replay``, ``audit verify``, ``sweep``...) on standard error.

On a terminal: one line rewritten in place, at most ten times a second, and cleared at the end,
so the command's own output (standard output) reads the same with or without it. Anywhere else
(a pipe, a log file, CI): nothing, so logs hold results, not carriage returns.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ("ProgressLine",)


class ProgressLine:
    """One progress line, fed from one thread at a time (the one doing the work, which may be a
    worker thread) through :meth:`count` or :meth:`fraction`."""

    def __init__(
        self,
        label: str,
        stream: TextIO | None = None,
        *,
        unit: str = "events",
        interval_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._label = label
        self._unit = unit
        self._stream = sys.stderr if stream is None else stream
        self._enabled = self._stream.isatty()
        self._interval_s = interval_s
        self._clock = clock
        self._next = 0.0
        self._shown = False

    def count(self, done: int, total: int) -> None:
        """``done`` of ``total`` (events, artifacts: the unit); a ``coinbt.store.base.Progress``."""
        if self._due(done >= total):
            line = f"{done:,} of {total:,} {self._unit}"
            if total > 0:
                line += f" ({min(done, total) * 100 // total}%)"
            self._show(line)

    def fraction(self, done: float) -> None:
        """An engine progress callback: the fraction of the work done, 0 to 1."""
        if self._due(done >= 1.0):
            self._show(f"{int(min(max(done, 0.0), 1.0) * 100)}%")

    def _due(self, final: bool) -> bool:
        if not self._enabled:
            return False
        now = self._clock()
        if now < self._next and not final:
            return False
        self._next = now + self._interval_s
        return True

    def _show(self, text: str) -> None:
        self._stream.write(f"\r\x1b[K{self._label}: {text}")
        self._stream.flush()
        self._shown = True

    def close(self) -> None:
        """Clear the line (if one was shown)."""
        if self._shown:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._shown = False

    def __enter__(self) -> ProgressLine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
