"""Every metric against its formula in docs/engine.md, on cases small enough to do by hand."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from coinbt.engine import METRIC_NAMES, BacktestSpec, run
from coinbt.engine.metrics import compute_metrics
from coinbt.engine.simulate import simulate
from tests.engine.gen import make_bars

DAY = 86_400_000


def daily(close: list[float]):  # type: ignore[no-untyped-def]
    bars = make_bars(close, close, close, close)
    return bars.with_interval(DAY)


def test_buy_and_hold_metrics_by_hand() -> None:
    bars = daily([100.0, 110.0, 99.0, 121.0])
    spec = BacktestSpec("buy_and_hold", cash=1_000.0, fee_bps=0.0, fill="close")
    m = run(spec, bars).metrics
    assert list(m) == list(METRIC_NAMES)
    # equity 1000, 1100, 990, 1210 after buying 10 units at bar 0's close
    returns = [0.0, 0.1, -0.1, 1210 / 990 - 1]  # from the starting cash, bar by bar
    mean, sd = statistics.fmean(returns), statistics.stdev(returns)
    downside = math.sqrt(sum(min(r, 0.0) ** 2 for r in returns) / 4)
    cagr = 1.21 ** (365 / 4) - 1  # 4 daily bars are 4/365 of a year
    assert m["final_equity"] == pytest.approx(1210.0)
    assert m["total_return"] == pytest.approx(0.21)
    assert m["cagr"] == pytest.approx(cagr)
    assert m["annual_volatility"] == pytest.approx(sd * math.sqrt(365))
    assert m["sharpe"] == pytest.approx(mean / sd * math.sqrt(365))
    assert m["sortino"] == pytest.approx(mean / downside * math.sqrt(365))
    assert m["max_drawdown"] == pytest.approx(0.1)  # 1100 -> 990
    assert m["calmar"] == pytest.approx(cagr / 0.1)
    assert m["num_trades"] == 1
    assert m["closed_trades"] == 0
    for undefined in ("win_rate", "profit_factor", "avg_trade_return", "best_trade", "worst_trade"):
        assert m[undefined] is None  # only closed round trips count, and there are none
    assert m["exposure"] == 1.0
    assert m["fees_paid"] == 0.0


def test_closed_trade_metrics_by_hand() -> None:
    close = np.array([100.0, 105.0, 110.0, 110.0, 104.0, 99.0, 100.0, 120.0, 150.0, 140.0])
    entries = np.zeros(10, dtype=bool)
    exits = np.zeros(10, dtype=bool)
    entries[[0, 3, 6]] = True
    exits[[2, 5, 8]] = True
    sim = simulate(
        entries, exits, close, close, cash=1_000.0, fee_rate=0.0, slippage_rate=0.0, fill="close"
    )
    m = compute_metrics(sim, 1_000.0, DAY)
    # +10 % (1000 -> 1100), -10 % (1100 -> 990), +50 % (990 -> 1485)
    assert m["closed_trades"] == 3
    assert m["win_rate"] == pytest.approx(2 / 3)
    assert m["profit_factor"] == pytest.approx((100 + 495) / 110)
    assert m["avg_trade_return"] == pytest.approx((0.1 - 0.1 + 0.5) / 3)
    assert m["best_trade"] == pytest.approx(0.5)
    assert m["worst_trade"] == pytest.approx(-0.1)
    assert m["exposure"] == pytest.approx(6 / 10)  # bars 0-1, 3-4, 6-7 close while long
    assert m["final_equity"] == pytest.approx(1485.0)


def test_fees_and_slippage_reduce_trade_returns() -> None:
    close = np.array([100.0, 100.0, 100.0])
    entries = np.array([True, False, False])
    exits = np.array([False, True, False])
    sim = simulate(
        entries,
        exits,
        close,
        close,
        cash=1_000.0,
        fee_rate=0.001,
        slippage_rate=0.0005,
        fill="close",
    )
    m = compute_metrics(sim, 1_000.0, DAY)
    growth = (100 * 0.9995 * 0.999) / (100 * 1.0005 * 1.001)
    assert m["worst_trade"] == pytest.approx(growth - 1)
    assert m["profit_factor"] == 0.0
    assert m["win_rate"] == 0.0
    assert m["fees_paid"] == pytest.approx(sum(sim.fee))


def test_flat_equity_leaves_ratio_metrics_undefined() -> None:
    flat = run(
        BacktestSpec("donchian_breakout", {"window": 2, "exit_window": 2}), daily([100.0] * 3)
    ).metrics
    assert flat["num_trades"] == 0
    assert flat["sharpe"] is None
    assert flat["sortino"] is None
    assert flat["calmar"] is None
    assert flat["annual_volatility"] == 0.0
    assert flat["max_drawdown"] == 0.0
    assert flat["total_return"] == 0.0
    assert flat["cagr"] == 0.0


def test_unknown_interval_leaves_annualized_metrics_undefined() -> None:
    bars = daily([100.0, 110.0, 99.0, 121.0]).with_interval(0)
    m = run(BacktestSpec("buy_and_hold", fill="close"), bars).metrics
    assert m["cagr"] is None
    assert m["sharpe"] is None
    assert m["annual_volatility"] is None
    assert m["total_return"] is not None


def test_an_absurd_cagr_is_none_not_infinite() -> None:
    bars = make_bars([1.0, 1000.0], [1.0, 1000.0], [1.0, 1000.0], [1.0, 1000.0]).with_interval(1)
    m = run(BacktestSpec("buy_and_hold", fee_bps=0, fill="close"), bars).metrics
    assert m["total_return"] == pytest.approx(999.0)
    assert m["cagr"] is None  # (1000) ** (a year in 2 ms) overflows
    assert m["calmar"] is None
