"""One chunk of a split sweep, run in a worker process (see ``coinbt.executor.sweeps``)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ("deflate_best", "run_chunk", "run_walk_forward")


def run_chunk(
    args: Mapping[str, Any], progress: Callable[[float], None], bars: object
) -> dict[str, Any]:
    """``engine.sweep`` on the chunk's grid. ``bars`` is a ``Bars`` object, the path of a bars file,
    or None for ``args["synthetic"]`` (generated here: the same bytes on every machine). Returns
    the rows and counts, with the seconds spent getting the data and sweeping."""
    from coinbt import engine

    start = time.perf_counter()
    data = _bars(args, bars)
    loaded = time.perf_counter()
    result = engine.sweep(
        _strategy(args),
        args["grid"],
        data,
        **_search(args),
        progress=progress,
        **args.get("trading", {}),
    )
    return {
        "rows": [dict(row) for row in result.rows],
        "evaluated": result.evaluated,
        "skipped": result.skipped,
        "data_s": loaded - start,
        "sweep_s": time.perf_counter() - loaded,
        "pid": os.getpid(),
    }


def _strategy(args: Mapping[str, Any]) -> Any:
    """The strategy name, or for ``args["rules"]`` the rules strategy over the grid's
    parameters (the same one in every chunk: each chunk's grid has every parameter)."""
    rules = args.get("rules")
    if rules is None:
        return args["strategy"]
    from coinbt.engine.rules import rules_strategy

    return rules_strategy(rules, {k: v[0] for k, v in args["grid"].items()})


def _bars(args: Mapping[str, Any], bars: object) -> Any:
    from coinbt import engine

    if bars is None:
        s = args["synthetic"]
        return engine.synthetic(
            s["bars"], seed=s["seed"], interval=s["interval"], start_price=s["start_price"]
        )
    if isinstance(bars, str):
        return engine.load_bars(bars)
    assert isinstance(bars, engine.Bars)
    return bars


def deflate_best(
    args: Mapping[str, Any], progress: Callable[[float], None], bars: object
) -> dict[str, Any]:
    """The deflated Sharpe ratio of a sweep's best row (``args["params"]``), every trial's
    annualized Sharpe in ``args["sharpes"]``: the best row is run again for its returns."""
    import math

    from coinbt import engine
    from coinbt.engine.metrics import periods_per_year
    from coinbt.engine.overfit import deflated_sharpe, equity_returns

    data = _bars(args, bars)
    ppy = periods_per_year(data.interval_ms)
    if not ppy:
        return {}
    root = math.sqrt(ppy)
    spec = engine.BacktestSpec(
        args["strategy"],
        dict(args["params"]),
        args["cash"],
        args["fee_bps"],
        args["slippage_bps"],
        args["fill"],
        args.get("rules"),
        **{**args.get("trading", {}), **args.get("trading_values", {})},
    )
    result = engine.run(spec, data)
    sharpes = [None if s is None else s / root for s in args["sharpes"]]
    dsr = deflated_sharpe(equity_returns(result.equity, args["cash"]), sharpes)
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v)
        for k, v in dsr.to_dict().items()
    }


def run_walk_forward(
    args: Mapping[str, Any], progress: Callable[[float], None], bars: object
) -> dict[str, Any]:
    """``engine.walk_forward``; the stitched out-of-sample equity is written as a structured
    ``(ts, equity)`` .npy file to ``args["equity_path"]`` (like a backtest's equity curve)."""
    import hashlib
    import io

    import numpy as np

    from coinbt import engine

    data = _bars(args, bars)
    result = engine.walk_forward(
        _strategy(args),
        args["grid"],
        data,
        train=args["train"],
        test=args["test"],
        anchored=args["anchored"],
        **_search(args),
        progress=progress,
    )
    curve = np.empty(len(result.equity), dtype=[("ts", "<i8"), ("equity", "<f8")])
    curve["ts"] = result.ts
    curve["equity"] = result.equity
    buffer = io.BytesIO()
    np.save(buffer, curve, allow_pickle=False)
    payload = buffer.getbuffer()
    with open(args["equity_path"], "wb") as f:
        f.write(payload)
    return {
        **result.to_dict(),
        "equity_sha256": hashlib.sha256(payload).hexdigest(),
        "equity_size": len(payload),
        "bars": len(data),
    }


def _search(args: Mapping[str, Any]) -> dict[str, Any]:
    """The costs and ranking a sweep and a walk-forward take alike from a chunk's ``args``."""
    keys = ("cash", "fee_bps", "slippage_bps", "fill", "sort_by", "descending")
    return {key: args[key] for key in keys}
