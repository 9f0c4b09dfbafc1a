"""The vectorized engine against the plain-Python bar-by-bar reference (reference.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coinbt.engine import STRATEGIES, BacktestResult, BacktestSpec, Bars, run, synthetic
from coinbt.errors import SpecError
from tests.engine import reference
from tests.engine.gen import STRATEGY_NAMES, float_series, params_for, tick_series, to_reference

RTOL = 1e-9
FILLS = ("next_open", "close")
COSTS = st.sampled_from([(0.0, 0.0), (10.0, 0.0), (10.0, 5.0), (75.0, 20.0)])
SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


def assert_matches(result: BacktestResult, expected: reference.Outcome, cash: float) -> None:
    fills = result.fills
    got = list(
        zip(fills.bar.tolist(), ["buy" if s > 0 else "sell" for s in fills.side], strict=True)
    )
    assert got == [(bar, side) for bar, side, *_ in expected.fills]
    if expected.fills:
        want = np.array([f[2:] for f in expected.fills])
        np.testing.assert_allclose(fills.qty, want[:, 0], rtol=RTOL)
        np.testing.assert_allclose(fills.price, want[:, 1], rtol=RTOL)
        np.testing.assert_allclose(fills.fee, want[:, 2], rtol=RTOL, atol=1e-12 * cash)
    np.testing.assert_allclose(result.equity, expected.equity, rtol=RTOL, atol=1e-9 * cash)
    assert result.final_qty == pytest.approx(expected.qty[-1], rel=RTOL)


def check(
    name: str, params: dict[str, Any], bars: Bars, fill: str, fee: float, slip: float
) -> None:
    spec = BacktestSpec(name, params, cash=10_000.0, fee_bps=fee, slippage_bps=slip, fill=fill)
    if len(bars) < STRATEGIES[name].min_bars(params):
        with pytest.raises(SpecError, match="needs at least"):
            run(spec, bars)
        return
    result = run(spec, bars)
    expected = reference.backtest(
        name,
        result.params,
        to_reference(bars),
        cash=10_000.0,
        fee_bps=fee,
        slippage_bps=slip,
        fill=fill,
    )
    assert_matches(result, expected, 10_000.0)


@pytest.mark.parametrize("fill", FILLS)
@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_matches_reference_on_tick_prices(name: str, fill: str) -> None:
    @SETTINGS
    @given(bars=tick_series(), params=params_for(name), costs=COSTS)
    def inner(bars: Bars, params: dict[str, Any], costs: tuple[float, float]) -> None:
        check(name, params, bars, fill, *costs)

    inner()


@pytest.mark.parametrize("fill", FILLS)
@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_matches_reference_on_float_prices(name: str, fill: str) -> None:
    @SETTINGS
    @given(bars=float_series(), params=params_for(name), costs=COSTS)
    def inner(bars: Bars, params: dict[str, Any], costs: tuple[float, float]) -> None:
        check(name, params, bars, fill, *costs)

    inner()


SYNTHETIC_CASES = [
    pytest.param("sma_cross", {"fast": 10, "slow": 30}, id="sma_cross-10-30"),
    pytest.param("sma_cross", {"fast": 1, "slow": 7}, id="sma_cross-1-7"),
    pytest.param("ema_cross", {"fast": 12, "slow": 26}, id="ema_cross-12-26"),
    pytest.param("rsi_reversion", {"period": 14, "lower": 30, "upper": 70}, id="rsi-14"),
    pytest.param("rsi_reversion", {"period": 3, "lower": 20, "upper": 85}, id="rsi-3"),
    pytest.param("bollinger_breakout", {"window": 20, "k": 2.0}, id="bollinger-20"),
    pytest.param("bollinger_breakout", {"window": 5, "k": 0.5}, id="bollinger-5"),
    pytest.param("donchian_breakout", {"window": 20, "exit_window": 10}, id="donchian-20-10"),
    pytest.param("donchian_breakout", {"window": 3, "exit_window": 8}, id="donchian-3-8"),
    pytest.param("buy_and_hold", {}, id="buy_and_hold"),
]


@pytest.mark.parametrize("fill", FILLS)
@pytest.mark.parametrize(("name", "params"), SYNTHETIC_CASES)
def test_matches_reference_on_synthetic_series(
    name: str, params: dict[str, Any], fill: str
) -> None:
    bars = synthetic(3_000, seed=7)
    check(name, params, bars, fill, 10.0, 3.0)


def test_matches_reference_on_a_long_series_crossing_row_boundaries() -> None:
    # 20,000 bars cross many blocks of the anchored rolling sums and several equity chunks' worth
    # of fills; windows of 200 and 1,000 use multi-row layouts.
    bars = synthetic(20_000, seed=3, interval="5m")
    check("sma_cross", {"fast": 200, "slow": 1000}, bars, "next_open", 10.0, 0.0)
    check("bollinger_breakout", {"window": 100, "k": 1.0}, bars, "close", 10.0, 0.0)
