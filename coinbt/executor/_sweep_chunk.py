"""One chunk of a split sweep, run in a worker process (see ``coinbt.executor.sweeps``)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ("run_chunk",)


def run_chunk(
    args: Mapping[str, Any], progress: Callable[[float], None], bars: object
) -> dict[str, Any]:
    """``engine.sweep`` on the chunk's grid. ``bars`` is a ``Bars`` object, the path of a bars file,
    or None for ``args["synthetic"]`` (generated here: the same bytes on every machine). Returns
    the rows and counts, with the seconds spent getting the data and sweeping."""
    from coinbt import engine

    start = time.perf_counter()
    if bars is None:
        s = args["synthetic"]
        data = engine.synthetic(
            s["bars"], seed=s["seed"], interval=s["interval"], start_price=s["start_price"]
        )
    elif isinstance(bars, str):
        data = engine.load_bars(bars)
    else:
        assert isinstance(bars, engine.Bars)
        data = bars
    loaded = time.perf_counter()
    result = engine.sweep(
        args["strategy"],
        args["grid"],
        data,
        cash=args["cash"],
        fee_bps=args["fee_bps"],
        slippage_bps=args["slippage_bps"],
        fill=args["fill"],
        sort_by=args["sort_by"],
        descending=args["descending"],
        progress=progress,
    )
    return {
        "rows": [dict(row) for row in result.rows],
        "evaluated": result.evaluated,
        "skipped": result.skipped,
        "data_s": loaded - start,
        "sweep_s": time.perf_counter() - loaded,
        "pid": os.getpid(),
    }
