"""The tear sheet's numbers: benchmark, monthly returns, rolling Sharpe, trade statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from coinbt import engine
from coinbt.engine.ledger import ledger_of
from coinbt.report import analysis
from coinbt.report._svg import downsample, line_chart, nice_ticks

HOUR = 3_600_000


def run(bars: int = 3000, seed: int = 4) -> engine.BacktestResult:
    data = engine.synthetic(bars, seed=seed, interval="1h")
    return engine.run(engine.BacktestSpec("sma_cross", {"fast": 5, "slow": 20}), data)


def test_benchmark_is_buy_and_hold_measured_like_the_strategy() -> None:
    data = engine.synthetic(2000, seed=2, interval="1h")
    bench = analysis.benchmark(data.close, 10_000.0, 0.001, data.interval_ms)
    qty = 10_000.0 / (data.close[0] * 1.001)
    assert bench.equity[-1] == pytest.approx(qty * data.close[-1], rel=1e-12)
    assert bench.metrics["total_return"] == pytest.approx(qty * data.close[-1] / 10_000 - 1)
    peak = np.maximum.accumulate(np.concatenate(([10_000.0], bench.equity)))
    worst = float(np.min(np.concatenate(([10_000.0], bench.equity)) / peak))
    assert bench.metrics["max_drawdown"] == pytest.approx(1 - worst)
    assert bench.metrics["exposure"] == 1.0
    assert bench.metrics["num_trades"] == 1


def test_a_portfolio_benchmark_holds_an_equal_share_of_every_asset() -> None:
    many = engine.synthetic_portfolio(1000, 3, seed=7, interval="1h")
    closes = [bars.close for bars in many.values()]
    bench = analysis.benchmark(closes, 9_000.0, 0.001, HOUR)
    qty = [3_000.0 / (close[0] * 1.001) for close in closes]
    expected = sum(q * close for q, close in zip(qty, closes, strict=True))
    np.testing.assert_allclose(bench.equity, expected, rtol=1e-12)
    assert bench.equity[0] == pytest.approx(9_000.0 / 1.001)  # only the fees spent at bar 0
    assert bench.metrics["num_trades"] == 3
    assert bench.metrics["fees_paid"] == pytest.approx(sum(3_000.0 / 1.001 * 0.001 for _ in qty))
    first_only = analysis.benchmark(closes[0], 9_000.0, 0.001, HOUR)
    assert bench.metrics["total_return"] != pytest.approx(first_only.metrics["total_return"])
    # one asset, as an array or a list of one: the single-asset benchmark, bit for bit
    one = analysis.benchmark([closes[0]], 9_000.0, 0.001, HOUR)
    assert np.array_equal(one.equity, first_only.equity)
    assert one.metrics == first_only.metrics
    with pytest.raises(ValueError, match="bars x assets"):
        analysis.benchmark([], 9_000.0, 0.001, HOUR)


def test_monthly_returns_compound_to_the_total_return() -> None:
    result = run(bars=24 * 200)
    assert result.bars is not None
    monthly = analysis.monthly_returns(result.bars.ts, result.equity, 10_000.0)
    assert monthly.years == (2024,)
    got = [r for r in monthly.returns[0] if r is not None]
    assert len(got) == 7  # 200 days from Jan 1st reach July
    assert math.prod(1 + r for r in got) - 1 == pytest.approx(result.total_return, rel=1e-9)
    assert monthly.yearly[0] == pytest.approx(result.total_return, rel=1e-9)
    # January: the last equity of January over the starting cash
    jan_end = int(np.searchsorted(result.bars.ts, 1706745600000)) - 1  # 2024-02-01
    assert got[0] == pytest.approx(result.equity[jan_end] / 10_000.0 - 1)


def test_monthly_returns_span_years_with_gaps_as_none() -> None:
    ts = np.array([1_701_388_800_000, 1_704_067_200_000], dtype=np.int64)  # Dec 1st, Jan 1st
    monthly = analysis.monthly_returns(ts, np.array([110.0, 99.0]), 100.0)
    assert monthly.years == (2023, 2024)
    assert monthly.returns[0][11] == pytest.approx(0.1)
    assert monthly.returns[1][0] == pytest.approx(-0.1)
    assert monthly.returns[0][0] is None


def test_rolling_sharpe_equals_the_sharpe_of_each_window() -> None:
    result = run(bars=1000)
    window = 50
    rolling = analysis.rolling_sharpe(result.equity, window, HOUR)
    assert np.isnan(rolling[:window]).all()
    for end in (window, 400, 999):
        r = result.equity[end - window + 1 : end + 1] / result.equity[end - window : end] - 1
        sd = r.std(ddof=1)
        want = r.mean() / sd * math.sqrt(365 * 24) if sd > 0 else float("nan")
        if math.isnan(want):
            assert math.isnan(rolling[end])
        else:
            assert rolling[end] == pytest.approx(want, rel=1e-6, abs=1e-9)


def test_trade_stats_agree_with_the_engine_metrics() -> None:
    result = run()
    stats = analysis.trade_stats(ledger_of(result).trades, HOUR)
    m = result.metrics
    assert stats["trades"] == m["num_trades"]
    assert stats["closed"] == m["closed_trades"]
    assert stats["win_rate"] == pytest.approx(m["win_rate"])
    assert stats["profit_factor"] == pytest.approx(m["profit_factor"])
    assert stats["total_pnl"] == pytest.approx(result.final_equity - 10_000.0)
    assert sum(stats["exit_reasons"].values()) == stats["trades"]


def test_downsample_keeps_extremes_and_ends() -> None:
    values = np.sin(np.linspace(0, 60, 100_000)) + np.linspace(0, 1, 100_000)
    keep = downsample(len(values), 500, values)
    assert len(keep) <= 500
    assert keep[0] == 0
    assert keep[-1] == len(values) - 1
    assert values[keep].max() == values.max()
    assert values[keep].min() == values.min()


@pytest.mark.parametrize(("lo", "hi"), [(0.0, 1.0), (9_500.0, 14_300.0), (-0.63, 0.0), (1e-3, 1e6)])
def test_nice_ticks_cover_the_range(lo: float, hi: float) -> None:
    ticks = nice_ticks(lo, hi)
    assert 2 <= len(ticks) <= 11
    assert all(lo - 1e-9 <= t <= hi + 1e-9 for t in ticks)


def test_a_log_chart_spans_decades_a_linear_one_cannot_show() -> None:
    ts = np.arange(1000, dtype=np.int64) * HOUR
    values = np.geomspace(10_000.0, 200.0, 1000)  # a 98 % loss
    from coinbt.report._svg import Series

    log = line_chart(ts, [Series("s", values, "#000")], log=True)
    linear = line_chart(ts, [Series("s", values, "#000")])
    assert 'data-scale="log"' in log
    assert 'data-scale="linear"' in linear
    assert ">1,000</text>" in log  # a decade tick between 200 and 10,000
    assert ">1,000</text>" not in linear
