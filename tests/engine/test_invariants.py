"""Properties every backtest must have, on generated price series."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coinbt.engine import STRATEGIES, BacktestResult, BacktestSpec, Bars, run
from tests.engine.gen import STRATEGY_NAMES, make_bars, params_for, tick_series

SETTINGS = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


def _run(
    name: str, params: dict[str, Any], bars: Bars, fill: str, **costs: float
) -> BacktestResult | None:
    if len(bars) < STRATEGIES[name].min_bars(params):
        return None
    return run(BacktestSpec(name, params, fill=fill, **costs), bars)


def replay_cash(result: BacktestResult, cash: float) -> tuple[list[float], list[float]]:
    """Cash and position after each bar, rebuilt from the fills alone."""
    by_bar = {int(b): i for i, b in enumerate(result.fills.bar)}
    qty = 0.0
    cash_path, qty_path = [], []
    for t in range(len(result.equity)):
        if t in by_bar:
            f = result.fills[by_bar[t]]
            if f.side == "buy":
                cash -= f.qty * f.price + f.fee
                qty = f.qty
            else:
                cash += f.qty * f.price - f.fee
                qty = 0.0
        cash_path.append(cash)
        qty_path.append(qty)
    return cash_path, qty_path


@pytest.mark.parametrize("fill", ["next_open", "close"])
@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_accounting_invariants(name: str, fill: str) -> None:
    @SETTINGS
    @given(bars=tick_series(), params=params_for(name), fee=st.sampled_from([0.0, 10.0, 100.0]))
    def inner(bars: Bars, params: dict[str, Any], fee: float) -> None:
        result = _run(name, params, bars, fill, fee_bps=fee, slippage_bps=2.0)
        if result is None:
            return
        cash, qty = replay_cash(result, 10_000.0)
        scale = 1e-9 * max(10_000.0, float(np.max(result.equity)))
        assert min(cash) >= -scale  # never spends more than it has
        np.testing.assert_allclose(
            result.equity, np.array(cash) + np.array(qty) * bars.close, rtol=1e-9, atol=scale
        )
        sides = [f.side for f in result.fills]
        assert sides == ["buy", "sell"] * (len(sides) // 2) + ["buy"] * (len(sides) % 2)
        assert result.num_fills == len(sides)
        assert result.num_trades == (len(sides) + 1) // 2 == result.metrics["num_trades"]
        assert (result.final_qty > 0) == (len(sides) % 2 == 1)
        assert result.metrics["closed_trades"] == len(sides) // 2
        assert np.all(np.diff(result.fills.bar) > 0)
        assert np.all(result.fills.qty > 0)
        assert np.all(result.fills.fee >= 0)
        if fill == "next_open":
            assert np.all(result.fills.bar >= 1)
        assert result.metrics["fees_paid"] == pytest.approx(float(np.sum(result.fills.fee)))
        assert 0.0 <= result.max_drawdown <= 1.0
        assert all(v is None or np.isfinite(v) for v in result.metrics.values())

    inner()


def _tail_changed(bars: Bars, keep: int, keep_open: bool, seed: int) -> Bars:
    """``bars`` with every bar after ``keep`` replaced by a different random walk (and, if
    ``keep_open``, bar ``keep + 1`` keeping its open): later data only.
    """
    rng = np.random.default_rng(seed)
    o, h, lo, c = (a.copy() for a in (bars.open, bars.high, bars.low, bars.close))
    n = len(c)
    start = keep + 1
    price = float(c[keep])
    for i in range(start, n):
        first_kept = keep_open and i == start
        o[i] = o[i] if first_kept else price * (1 + rng.normal(0, 0.01))
        c[i] = o[i] * (1 + rng.normal(0, 0.03))
        h[i] = max(o[i], c[i]) * (1 + abs(rng.normal(0, 0.01)))
        lo[i] = min(o[i], c[i]) * (1 - abs(rng.normal(0, 0.01)))
        price = c[i]
    return make_bars(c.tolist(), o.tolist(), h.tolist(), lo.tolist())


@pytest.mark.parametrize("fill", ["next_open", "close"])
@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_no_fill_uses_a_later_bar(name: str, fill: str) -> None:
    """Rewriting the future leaves every fill and equity value up to now bit-for-bit unchanged.

    With next_open, a fill at bar t+1 uses bar t's signal and bar t+1's open, so bars after t are
    rewritten except that open; with close, a fill at bar t uses bar t only.
    """

    @SETTINGS
    @given(
        bars=tick_series(min_size=10),
        params=params_for(name),
        cut=st.floats(0.2, 0.9),
        seed=st.integers(0, 2**32),
    )
    def inner(bars: Bars, params: dict[str, Any], cut: float, seed: int) -> None:
        t = int(cut * (len(bars) - 2))
        changed = _tail_changed(bars, t, keep_open=fill == "next_open", seed=seed)
        a = _run(name, params, bars, fill)
        b = _run(name, params, changed, fill)
        if a is None or b is None:
            return
        last = t + 1 if fill == "next_open" else t
        for r, other in ((a, b), (b, a)):
            upto = int(np.searchsorted(r.fills.bar, last, side="right"))
            assert [tuple(f) for f in list(r.fills)[:upto]] == [
                tuple(f) for f in list(other.fills)[:upto]
            ]
        assert np.array_equal(a.equity[: t + 1], b.equity[: t + 1])

    inner()


def test_the_last_bar_signal_is_not_filled_with_next_open() -> None:
    close = [10.0, 10.0, 10.0, 11.0]  # SMA1 crosses above SMA2 on the last bar
    bars = make_bars(close, close, close, close)
    spec = BacktestSpec("sma_cross", {"fast": 1, "slow": 2})
    assert run(spec, bars).num_fills == 0
    assert run(BacktestSpec("sma_cross", {"fast": 1, "slow": 2}, fill="close"), bars).num_fills == 1


def test_an_entry_while_long_and_an_exit_while_flat_are_ignored() -> None:
    from coinbt.engine.simulate import signal_bars

    entries = np.array([0, 1, 0, 1, 0, 0, 0, 1, 1, 0], dtype=bool)
    exits = np.array([1, 0, 0, 0, 1, 1, 0, 1, 0, 1], dtype=bool)
    # bar 0: exit while flat (ignored); 1: entry; 3: entry while long (ignored); 4: exit;
    # 5: exit while flat (ignored); 7: both (neither); 8: entry; 9: exit
    assert signal_bars(entries, exits).tolist() == [1, 4, 8, 9]
