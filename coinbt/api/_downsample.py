"""Downsampling an equity curve for charts without losing its extremes."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

__all__ = ("downsample", "drawdown")


def drawdown(equity: Any) -> Any:
    """``equity / running peak - 1`` (0 at a new high, -0.25 for 25 % below the peak)."""
    peak = np.maximum.accumulate(equity)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(peak > 0, equity / peak - 1.0, 0.0)
    return out


def downsample(n: int, points: int, *series: Any) -> Any:
    """Indexes into ``n`` samples keeping at most ``points``: for each bucket the samples where
    each ``series`` has its minimum and maximum, plus the first and last sample, in order."""
    if points <= 0 or n <= points:
        return np.arange(n)
    per_bucket = 2 * len(series)
    buckets = max(1, (points - 2) // per_bucket)
    edges = np.linspace(1, n - 1, buckets + 1).astype(np.int64)
    keep = [np.array([0, n - 1])]
    for values in series:
        for start, end in itertools.pairwise(edges.tolist()):
            if end <= start:
                continue
            chunk = values[start:end]
            keep.append(np.array([start + int(np.argmin(chunk)), start + int(np.argmax(chunk))]))
    return np.unique(np.concatenate(keep))
