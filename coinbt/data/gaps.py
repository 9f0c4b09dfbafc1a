"""Gaps in a bar series: spacings longer than its interval (docs/data.md)."""

from __future__ import annotations

import msgspec
import numpy as np
from numpy.typing import NDArray

__all__ = ("Gap", "GapReport", "find_gaps", "gap_report")


class Gap(msgspec.Struct, frozen=True):
    after_ms: int  # the last bar before the hole
    before_ms: int  # the first bar after it
    missing: int  # bars that would fit in between at the dataset's interval


class GapReport(msgspec.Struct, frozen=True):
    """How many gaps, and the largest one (``at_ms``: the bar before it). All 0 if none."""

    count: int = 0
    missing: int = 0  # bars missing in all gaps together
    largest_ms: int = 0
    at_ms: int = 0


def gap_report(ts: NDArray[np.int64], interval_ms: int) -> GapReport:
    """Summarize the spacings of ``ts`` longer than ``interval_ms`` (no gaps if it is 0)."""
    if len(ts) < 2 or interval_ms <= 0:
        return GapReport()
    spacing = np.diff(ts)
    holes = spacing > interval_ms
    count = int(holes.sum())
    if count == 0:
        return GapReport()
    largest = int(spacing.argmax())
    missing = int(((spacing[holes] - 1) // interval_ms).sum())
    return GapReport(
        count=count, missing=missing, largest_ms=int(spacing[largest]), at_ms=int(ts[largest])
    )


def find_gaps(ts: NDArray[np.int64], interval_ms: int, limit: int = 20) -> list[Gap]:
    """The ``limit`` largest gaps, largest first (ties: earliest first)."""
    if len(ts) < 2 or interval_ms <= 0:
        return []
    spacing = np.diff(ts)
    where = np.flatnonzero(spacing > interval_ms)
    order = where[np.argsort(-spacing[where], kind="stable")][:limit]
    return [
        Gap(
            after_ms=int(ts[i]),
            before_ms=int(ts[i + 1]),
            missing=int((spacing[i] - 1) // interval_ms),
        )
        for i in order.tolist()
    ]
