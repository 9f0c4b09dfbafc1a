"""Performance metrics of an equity curve and its trades (formulas in docs/engine.md)."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from coinbt.engine.simulate import Simulation

__all__ = (
    "CURVE_METRICS",
    "METRIC_NAMES",
    "YEAR_MS",
    "Metrics",
    "compute_metrics",
    "curve_metrics",
    "metrics_of",
    "periods_per_year",
)

YEAR_MS = 365 * 86_400_000
"""A year for annualization: crypto trades every day."""

CURVE_METRICS = (
    "final_equity",
    "total_return",
    "cagr",
    "annual_volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
)
"""The metrics of an equity curve alone (the out-of-sample side of a walk-forward)."""

METRIC_NAMES = (
    "final_equity",
    "total_return",
    "cagr",
    "annual_volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "num_trades",
    "closed_trades",
    "win_rate",
    "profit_factor",
    "avg_trade_return",
    "best_trade",
    "worst_trade",
    "exposure",
    "fees_paid",
)

Metrics = dict[str, float | int | None]
FloatArray = NDArray[np.float64]


def periods_per_year(interval_ms: int) -> float | None:
    """Bars per 365-day year (None for an unknown interval, 0)."""
    return YEAR_MS / interval_ms if interval_ms > 0 else None


_sum = np.add.reduce  # the ufunc methods directly: ndarray.sum() adds a Python-level wrapper
_min = np.minimum.reduce
_max = np.maximum.reduce


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _returns_through_zero(path: FloatArray) -> FloatArray:
    """Ratios of consecutive values, 1 after a 0 (equity can reach 0 only by float underflow)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios: FloatArray = path[1:] / path[:-1]
    ratios[~np.isfinite(ratios)] = 1.0
    return ratios


def compute_metrics(sim: Simulation, cash: float, interval_ms: int) -> Metrics:
    """Every metric in :data:`METRIC_NAMES`: floats or ints, None where undefined (never NaN)."""
    closed = len(sim.growth)
    trade_returns = sim.growth - 1.0
    pnl = sim.entry_cash[:closed] * trade_returns
    return metrics_of(
        sim.equity,
        cash,
        interval_ms,
        num_trades=(len(sim.side) + 1) // 2,
        trade_pnl=pnl,
        trade_returns=trade_returns,
        held_bars=sim.held_bars,
        fees=sim.fee,
    )


def metrics_of(
    equity: FloatArray,
    cash: float,
    interval_ms: int,
    *,
    num_trades: int,
    trade_pnl: FloatArray,
    trade_returns: FloatArray,
    held_bars: int,
    fees: FloatArray,
) -> Metrics:
    """The metrics of an equity curve and its closed trades' PnL and returns (any model)."""
    n = len(equity)
    curve = curve_metrics(equity, cash, interval_ms)

    closed = len(trade_returns)
    win_rate = profit_factor = avg_trade = best = worst = None
    if closed:
        pnl = trade_pnl
        gains = float(_sum(np.maximum(pnl, 0.0)))
        losses = -float(_sum(np.minimum(pnl, 0.0)))
        win_rate = int(np.count_nonzero(pnl > 0.0)) / closed
        profit_factor = gains / losses if losses > 0 else None
        avg_trade = float(_sum(trade_returns)) / closed
        best = float(_max(trade_returns))
        worst = float(_min(trade_returns))

    return {
        **curve,
        "num_trades": num_trades,
        "closed_trades": closed,
        "win_rate": win_rate,
        "profit_factor": profit_factor,
        "avg_trade_return": avg_trade,
        "best_trade": best,
        "worst_trade": worst,
        "exposure": held_bars / n,
        "fees_paid": float(_sum(fees)),
    }


def curve_metrics(equity: FloatArray, cash: float, interval_ms: int) -> dict[str, float | None]:
    """The metrics of an equity curve alone (:data:`CURVE_METRICS`), from a start at ``cash``:
    final equity, total return, CAGR, annualized volatility, Sharpe, Sortino, max drawdown and
    Calmar (docs/engine.md); None where undefined. ``metrics_of`` and walk-forward's stitched
    curve both use it, so the definitions exist once.
    """
    n = len(equity)
    if n == 0:
        return dict.fromkeys(CURVE_METRICS)
    final = float(equity[-1])
    path = np.concatenate(((cash,), equity))  # the starting cash, then every bar's equity
    returns = path[1:] / path[:-1] if _min(equity) > 0.0 else _returns_through_zero(path)
    returns -= 1.0
    mean = float(_sum(returns)) / n
    work = returns - mean
    work *= work
    sd = math.sqrt(float(_sum(work)) / (n - 1)) if n > 1 else 0.0
    np.minimum(returns, 0.0, out=work)
    work *= work
    down_dev = math.sqrt(float(_sum(work)) / n)
    ppy = periods_per_year(interval_ms)
    root = math.sqrt(ppy) if ppy else 0.0

    peak = np.maximum.accumulate(path)
    np.divide(path, peak, out=peak)
    max_drawdown = max(0.0, 1.0 - float(_min(peak)))

    growth = final / cash
    cagr: float | None = None
    if ppy:
        try:
            cagr = math.exp(math.log(growth) * ppy / n) - 1.0 if growth > 0 else -1.0
        except OverflowError:
            cagr = None
    return {
        "final_equity": _finite(final),
        "total_return": _finite(growth - 1.0),
        "cagr": None if cagr is None else _finite(cagr),
        "annual_volatility": _finite(sd * root) if root and n > 1 else None,
        "sharpe": _finite(mean / sd * root) if root and sd > 0 else None,
        "sortino": _finite(mean / down_dev * root) if root and down_dev > 0 else None,
        "max_drawdown": max_drawdown,
        "calmar": _finite(cagr / max_drawdown) if cagr is not None and max_drawdown > 0 else None,
    }
