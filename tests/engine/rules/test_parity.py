"""Rules that restate a builtin strategy give exactly its fills (the same indicators, the same
tie rule)."""

from __future__ import annotations

import numpy as np
import pytest

from coinbt.engine import BacktestResult, BacktestSpec, run, synthetic

BARS = synthetic(200_000, seed=7)
SMA_RULES = {
    "entry": "cross_above(sma(close, fast), sma(close, slow))",
    "exit": "cross_below(sma(close, fast), sma(close, slow))",
}


def _same_fills(a: BacktestResult, b: BacktestResult) -> None:
    assert len(a.fills) > 10
    for name in ("bar", "side", "qty", "price", "fee"):
        np.testing.assert_array_equal(getattr(a.fills, name), getattr(b.fills, name))
    np.testing.assert_array_equal(a.equity, b.equity)
    assert a.metrics == b.metrics


@pytest.mark.parametrize(
    ("fast", "slow", "fill"),
    [
        pytest.param(10, 30, "next_open", id="10-30"),
        pytest.param(3, 7, "close", id="3-7-close"),
        pytest.param(50, 200, "next_open", id="50-200"),
    ],
)
def test_sma_cross_as_a_rule_gives_the_builtin_fills(fast: int, slow: int, fill: str) -> None:
    params = {"fast": fast, "slow": slow}
    builtin = run(BacktestSpec("sma_cross", params, fill=fill), BARS)
    rules = run(BacktestSpec("rules", params, fill=fill, rules=SMA_RULES), BARS)
    _same_fills(builtin, rules)


def test_a_flat_market_gives_no_rounding_crosses() -> None:
    """Equal averages in a flat stretch are ties (TIE_RTOL), as in the builtin."""
    prices = np.concatenate(
        [np.linspace(100, 120, 300), np.full(500, 120.0), np.linspace(120, 90, 300)]
    )
    from coinbt.engine import Bars

    n = len(prices)
    bars = Bars(
        np.arange(n) * 60_000, prices, prices, prices, prices, np.ones(n), interval_ms=60_000
    )
    params = {"fast": 7, "slow": 31}
    builtin = run(BacktestSpec("sma_cross", params), bars)
    rules = run(BacktestSpec("rules", params, rules=SMA_RULES), bars)
    np.testing.assert_array_equal(builtin.fills.bar, rules.fills.bar)


def test_ema_cross_and_donchian_as_rules() -> None:
    ema = run(BacktestSpec("ema_cross", {"fast": 12, "slow": 26}), BARS)
    ema_rules = {
        "entry": "cross_above(ema(close, 12), ema(close, 26))",
        "exit": "cross_below(ema(close, 12), ema(close, 26))",
    }
    _same_fills(ema, run(BacktestSpec("rules", rules=ema_rules), BARS))
    donchian = run(BacktestSpec("donchian_breakout", {"window": 20, "exit_window": 10}), BARS)
    donchian_rules = {
        "entry": "close > shift(highest(high, 20), 1)",
        "exit": "close < shift(lowest(low, 10), 1)",
    }
    _same_fills(donchian, run(BacktestSpec("rules", rules=donchian_rules), BARS))
