"""Resampling bars to a coarser interval (docs/data.md, "Resample").

A coarse bar covers ``[t, t + interval)`` where ``t`` is a multiple of the interval counted from
1970-01-01T00:00Z (weeks from Monday 1970-01-05), so 1h bars start on the hour and 1d bars at
midnight UTC. Its open is the first fine bar's open, high the highest high, low the lowest low,
close the last close: these are exact. Volume is the float64 sum of the volumes (numpy's pairwise
summation: within a few units in the last place of the exact sum). A bucket with no fine
bars (a gap) yields no bar; the first and last buckets may be partial.
"""

from __future__ import annotations

import numpy as np

from coinbt.engine import Bars
from coinbt.errors import DataError

__all__ = ("resample",)

_WEEK_MS = 604_800_000
_MONDAY_MS = 4 * 86_400_000  # 1970-01-05, the first Monday after the epoch


def resample(bars: Bars, interval_ms: int) -> Bars:
    """``bars`` aggregated to ``interval_ms``: a multiple of their own interval, larger than it.
    Raises :class:`DataError` otherwise."""
    own = bars.interval_ms
    if interval_ms <= 0:
        raise DataError("the target interval must be positive")
    if own > 0 and (interval_ms <= own or interval_ms % own):
        raise DataError(
            f"the target interval ({interval_ms} ms) must be a larger multiple of the data's "
            f"interval ({own} ms)"
        )
    origin = _MONDAY_MS if interval_ms % _WEEK_MS == 0 else 0
    keys = (bars.ts - origin) // interval_ms
    starts = np.concatenate(([0], np.flatnonzero(np.diff(keys)) + 1))
    ends = np.append(starts[1:], len(keys))
    return Bars._trusted(
        keys[starts] * interval_ms + origin,
        bars.open[starts],
        np.maximum.reduceat(bars.high, starts),
        np.minimum.reduceat(bars.low, starts),
        bars.close[ends - 1],
        np.add.reduceat(bars.volume, starts),
        interval_ms=interval_ms,
    )
