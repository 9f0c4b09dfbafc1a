"""What a tear sheet shows beyond the engine's metrics: a buy-and-hold benchmark, monthly
returns, rolling Sharpe, drawdown and trade statistics. Pure numpy, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from coinbt.engine.ledger import OPEN, Trades
from coinbt.engine.metrics import Metrics, metrics_of, periods_per_year
from coinbt.engine.result import REASONS

__all__ = (
    "Benchmark",
    "MonthlyReturns",
    "benchmark",
    "drawdown",
    "monthly_returns",
    "rolling_sharpe",
    "rolling_window",
    "trade_stats",
)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Benchmark:
    """Buying with all the cash at the first bar's close (the fee paid) and holding to the end;
    for a portfolio, an equal share of the cash in each asset."""

    equity: FloatArray
    metrics: Metrics


def benchmark(
    close: FloatArray | Sequence[FloatArray], cash: float, fee_rate: float, interval_ms: int
) -> Benchmark:
    """Buy and hold, measured by the engine's own metric definitions (one entry per asset at
    bar 0). ``close`` is one asset's closes, or a portfolio's: a sequence of aligned close
    arrays (or a 2-D array, one column per asset), each bought with ``cash / assets``."""
    closes = np.asarray(close, dtype=np.float64)
    if closes.ndim == 1:
        closes = closes[:, np.newaxis]
    elif not isinstance(close, np.ndarray):
        closes = closes.T  # a sequence of per-asset arrays: one column each
    if closes.ndim != 2 or closes.shape[0] == 0 or closes.shape[1] == 0:
        raise ValueError(f"closes of shape {closes.shape}: expected bars x assets")
    assets = closes.shape[1]
    price = closes[0]
    qty = (cash / assets) / (price * (1.0 + fee_rate))
    equity = closes @ qty
    fees = qty * price * fee_rate
    metrics = metrics_of(
        equity,
        cash,
        interval_ms,
        num_trades=assets,
        trade_pnl=np.empty(0),
        trade_returns=np.empty(0),
        held_bars=len(closes),
        fees=fees,
    )
    return Benchmark(equity, metrics)


def drawdown(equity: FloatArray) -> FloatArray:
    """``equity / running peak - 1``: 0 at a new high, -0.25 a quarter below the peak."""
    peak = np.maximum.accumulate(equity)
    with np.errstate(divide="ignore", invalid="ignore"):
        out: FloatArray = np.where(peak > 0, equity / peak - 1.0, 0.0)
    return out


@dataclass(frozen=True, slots=True)
class MonthlyReturns:
    """``returns[i][m]``: the return of month ``m`` (0 = January) of ``years[i]``, None where the
    data does not reach; ``yearly[i]`` the year's return over the months it has."""

    years: tuple[int, ...]
    returns: tuple[tuple[float | None, ...], ...]
    yearly: tuple[float, ...]


def monthly_returns(ts: IntArray, equity: FloatArray, cash: float) -> MonthlyReturns:
    """Each calendar month's (UTC) return: its last equity over the previous month's last
    equity (the starting cash for the first month), minus 1."""
    months = np.asarray(ts, dtype=np.int64).astype("datetime64[ms]").astype("datetime64[M]")
    month_no = months.astype(np.int64)  # months since 1970-01
    last = np.flatnonzero(np.append(month_no[1:] != month_no[:-1], True))
    ends = np.asarray(equity, dtype=np.float64)[last]
    starts = np.concatenate(([cash], ends[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        rets = np.where(starts > 0, ends / starts - 1.0, 0.0)
    keys = month_no[last]
    first_year = int(keys[0] // 12) + 1970
    last_year = int(keys[-1] // 12) + 1970
    years = tuple(range(first_year, last_year + 1))
    table: list[list[float | None]] = [[None] * 12 for _ in years]
    for key, r in zip(keys.tolist(), rets.tolist(), strict=True):
        table[key // 12 + 1970 - first_year][key % 12] = r
    yearly = tuple(math.prod(1.0 + r for r in row if r is not None) - 1.0 for row in table)
    return MonthlyReturns(years, tuple(tuple(row) for row in table), yearly)


def rolling_window(interval_ms: int, n: int) -> int:
    """Bars in 30 days (30 bars for an unknown interval); a tenth of the data when 30 days is
    more than a third of it (at least 2)."""
    window = 30 * DAY_MS // interval_ms if interval_ms > 0 else 30
    if window > n // 3:
        window = n // 10
    return int(max(2, window))


def rolling_sharpe(equity: FloatArray, window: int, interval_ms: int) -> FloatArray:
    """Annualized Sharpe of the per-bar returns over the last ``window`` bars (NaN before the
    window fills or where the returns do not vary)."""
    equity = np.asarray(equity, dtype=np.float64)
    n = len(equity)
    out = np.full(n, np.nan)
    if n < window + 1 or window < 2:
        return out
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(equity[:-1] > 0, equity[1:] / equity[:-1] - 1.0, 0.0)
    c1 = np.concatenate(([0.0], np.cumsum(r)))
    c2 = np.concatenate(([0.0], np.cumsum(r * r)))
    s1 = c1[window:] - c1[:-window]
    s2 = c2[window:] - c2[:-window]
    mean = s1 / window
    var = np.maximum(s2 / window - mean * mean, 0.0) * window / (window - 1)
    sd = np.sqrt(var)
    ppy = periods_per_year(interval_ms) or 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = np.where(sd > 1e-12 * np.abs(mean) + 1e-15, mean / sd * math.sqrt(ppy), np.nan)
    out[window:] = sharpe
    return out


def trade_stats(trades: Trades, interval_ms: int) -> dict[str, Any]:
    """Counts, win rate, average win and loss, profit factor, expectancy, best and worst, average
    duration, and counts by side and exit reason (open trades counted apart, not in the ratios)."""
    closed = trades.exit_reason != OPEN
    pnl = trades.pnl[closed]
    ret = trades.ret[closed]
    duration = (trades.exit_bar - trades.entry_bar)[closed]
    wins = pnl[pnl > 0]
    losses = pnl[pnl <= 0]
    gross_loss = -float(losses.sum())
    reasons: dict[str, int] = {}
    for code in trades.exit_reason.tolist():
        name = "open" if code == OPEN else REASONS[code]
        reasons[name] = reasons.get(name, 0) + 1
    n = len(pnl)
    return {
        "trades": len(trades),
        "closed": n,
        "open": len(trades) - n,
        "long": int(np.count_nonzero(trades.side > 0)),
        "short": int(np.count_nonzero(trades.side < 0)),
        "win_rate": len(wins) / n if n else None,
        "avg_win": float(wins.mean()) if len(wins) else None,
        "avg_loss": float(losses.mean()) if len(losses) else None,
        "profit_factor": float(wins.sum()) / gross_loss if gross_loss > 0 else None,
        "expectancy": float(pnl.mean()) if n else None,
        "avg_return": float(ret.mean()) if n else None,
        "best_return": float(ret.max()) if n else None,
        "worst_return": float(ret.min()) if n else None,
        "total_pnl": float(trades.pnl.sum()),
        "avg_bars": float(duration.mean()) if n else None,
        "avg_hours": float(duration.mean()) * interval_ms / 3_600_000
        if n and interval_ms
        else None,
        "exit_reasons": reasons,
    }


def symbols_of(trades: Trades, symbols: Sequence[str]) -> list[str]:
    return [symbols[a] for a in trades.asset.tolist()]
