"""pandas interop (the optional extra ``coinbt[pandas]``): bars, results and sweeps as
DataFrames indexed by UTC time, and bars back from a DataFrame. pandas is imported only here, and
only when one of these is called; without it they raise ``MissingExtraError`` naming the extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from coinbt.errors import DataError, MissingExtraError

if TYPE_CHECKING:
    from coinbt.engine.data import Bars
    from coinbt.engine.result import BacktestResult
    from coinbt.engine.sweep import SweepResult

__all__ = ("ResultFrames", "bars_from_pandas", "bars_to_pandas", "result_frames", "sweep_frame")

COLUMNS = ("open", "high", "low", "close", "volume")
MS = 1_000_000  # nanoseconds per millisecond


class ResultFrames(NamedTuple):
    """A result's DataFrames: ``equity`` (per bar), ``fills``, ``trades`` (one per round trip)."""

    equity: Any
    fills: Any
    trades: Any


def pandas() -> Any:
    try:
        import pandas as pd
    except ImportError as e:
        raise MissingExtraError("pandas interop", "pandas", "pandas") from e
    return pd


def utc_index(ts: NDArray[np.int64], name: str = "time") -> Any:
    """Epoch milliseconds as a UTC ``DatetimeIndex`` (millisecond unit)."""
    pd = pandas()
    values = np.asarray(ts, dtype=np.int64).astype("datetime64[ms]")
    return pd.DatetimeIndex(values, name=name).tz_localize("UTC")


def epoch_ms(index: Any, what: str = "index") -> NDArray[np.int64]:
    """A DatetimeIndex (tz-aware: converted to UTC; naive: taken as UTC) as epoch ms; a time
    with a part below the millisecond is a ``DataError``."""
    pd = pandas()
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(f"the {what} must be a DatetimeIndex (or give a 'ts' column of epoch ms)")
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    ns = np.asarray(index.as_unit("ns").asi8, dtype=np.int64)
    if (ns % MS).any():
        raise DataError(f"the {what} has times finer than a millisecond")
    out: NDArray[np.int64] = ns // MS
    return out


def bars_to_pandas(bars: Bars) -> Any:
    """``open high low close volume`` indexed by ``time`` (UTC); ``attrs["interval_ms"]``."""
    pd = pandas()
    frame = pd.DataFrame(
        {name: np.array(getattr(bars, name)) for name in COLUMNS}, index=utc_index(bars.ts)
    )
    frame.attrs["interval_ms"] = bars.interval_ms
    return frame


def bars_from_pandas(frame: Any, interval_ms: int | None = None) -> Bars:
    """Bars from a DataFrame with ``open high low close volume`` columns (any case) and a
    DatetimeIndex, or a ``ts`` column of epoch ms. ``interval_ms``: given, else the frame's
    ``attrs["interval_ms"]``, else inferred. Validated like any bars (``DataError``)."""
    from coinbt.engine.data import Bars

    pd = pandas()
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame, got {type(frame).__name__}")
    by_lower = {str(c).lower(): c for c in frame.columns}
    missing = [c for c in COLUMNS if c not in by_lower]
    if missing:
        raise DataError(f"missing column(s) {', '.join(missing)}", column=missing[0])
    if "ts" in by_lower:
        ts = np.asarray(frame[by_lower["ts"]], dtype=np.int64)
    else:
        ts = epoch_ms(frame.index)
    if interval_ms is None:
        interval_ms = frame.attrs.get("interval_ms")
    o, h, lo, c, v = (np.asarray(frame[by_lower[c]], dtype=np.float64) for c in COLUMNS)
    return Bars(ts, o, h, lo, c, v, interval_ms=interval_ms)


def result_frames(result: BacktestResult) -> ResultFrames:
    """The equity curve (``equity``, ``drawdown``), the fills and the round-trip trades, each
    indexed by UTC time (docs/reports.md lists the columns)."""
    from coinbt.engine.ledger import ledger_of
    from coinbt.engine.result import REASONS

    pd = pandas()
    if result.bars is None:
        raise DataError("this result does not hold its bars' times (run it with engine.run)")
    ts = result.bars.ts
    equity = np.array(result.equity)
    peak = np.maximum.accumulate(equity)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, equity / peak - 1.0, 0.0)
    eq = pd.DataFrame({"equity": equity, "drawdown": dd}, index=utc_index(ts))
    f = result.fills
    symbols = result.symbols
    fills = pd.DataFrame(
        {
            "bar": np.array(f.bar),
            "symbol": [symbols[a] for a in f.asset.tolist()],
            "side": ["buy" if s > 0 else "sell" for s in f.side.tolist()],
            "qty": np.array(f.qty),
            "price": np.array(f.price),
            "fee": np.array(f.fee),
            "reason": [REASONS[r] for r in f.reason.tolist()],
        },
        index=utc_index(f.ts),
    )
    t = ledger_of(result).trades
    closed = t.exit_bar >= 0
    exit_ts = np.where(closed, ts[np.where(closed, t.exit_bar, 0)], 0)
    exit_time = utc_index(exit_ts, "exit_time").where(closed, pd.NaT)
    trades = pd.DataFrame(
        {
            "symbol": [symbols[a] for a in t.asset.tolist()],
            "side": ["long" if s > 0 else "short" for s in t.side.tolist()],
            "entry_bar": np.array(t.entry_bar),
            "entry_price": np.array(t.entry_price),
            "exit_time": exit_time,
            "exit_bar": _nullable(pd, t.exit_bar, closed),
            "exit_price": np.array(t.exit_price),
            "qty": np.array(t.qty),
            "pnl": np.array(t.pnl),
            "return": np.array(t.ret),
            "fees": np.array(t.fees),
            "duration_bars": _nullable(pd, t.exit_bar - t.entry_bar, closed),
            "exit_reason": ["open" if r < 0 else REASONS[r] for r in t.exit_reason.tolist()],
        },
        index=utc_index(ts[t.entry_bar], "entry_time"),
    )
    return ResultFrames(eq, fills, trades)


def _nullable(pd: Any, values: NDArray[np.int64], present: NDArray[np.bool_]) -> Any:
    """Integers with ``<NA>`` where not ``present`` (pandas' nullable Int64)."""
    return pd.arrays.IntegerArray(np.where(present, values, 0).astype(np.int64), ~present)


def sweep_frame(result: SweepResult) -> Any:
    """One row per evaluated combination, best first: the parameters, then every metric;
    ``attrs`` holds ``sort_by`` and ``descending``."""
    pd = pandas()
    columns = [*result.param_names, *result.metric_names]
    frame = pd.DataFrame([dict(r) for r in result.rows], columns=columns)
    frame.attrs["sort_by"] = result.sort_by
    frame.attrs["descending"] = result.descending
    return frame
