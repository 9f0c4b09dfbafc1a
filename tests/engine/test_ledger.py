"""The ledger: positions and round trips folded from fills, for long, short, reversals and
partial closes; ``cash0 + realized + unrealized = final equity`` exactly (to rounding)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coinbt import engine
from coinbt.engine.ledger import OPEN, ledger
from coinbt.engine.result import REASONS, Fills


def _fills(rows: list[tuple[int, int, int, float, float, float, int]]) -> Fills:
    """rows: (bar, asset, side, qty, price, fee, reason)."""
    cols = list(zip(*rows, strict=True)) if rows else [[]] * 7
    bar, asset, side, qty, price, fee, reason = cols
    return Fills(
        bar=np.array(bar, dtype=np.int64),
        ts=np.array(bar, dtype=np.int64) * 60_000,
        side=np.array(side, dtype=np.int8),
        qty=np.array(qty, dtype=np.float64),
        price=np.array(price, dtype=np.float64),
        fee=np.array(fee, dtype=np.float64),
        reason=np.array(reason, dtype=np.int8),
        asset=np.array(asset, dtype=np.int16),
    )


def _equity(cash0: float, fills: Fills, closes: list[float]) -> float:
    cash = cash0
    qty = [0.0] * len(closes)
    for side, q, p, f, a in zip(
        fills.side, fills.qty, fills.price, fills.fee, fills.asset, strict=True
    ):
        cash -= side * q * p + f
        qty[a] += side * q
    return cash + sum(q * c for q, c in zip(qty, closes, strict=True))


def test_a_long_round_trip_books_its_fees_in_realized_pnl() -> None:
    fills = _fills([(1, 0, 1, 2.0, 100.0, 0.2, 0), (5, 0, -1, 2.0, 110.0, 0.22, 2)])
    book = ledger(fills, ("BTC",), (120.0,))
    (pos,) = book.positions
    assert pos.qty == 0.0
    assert pos.realized_pnl == pytest.approx(2 * 10 - 0.42)
    assert pos.unrealized_pnl == 0.0
    assert pos.fees == pytest.approx(0.42)
    assert pos.trades == 1
    (trade,) = book.trades.to_dicts(ts=np.arange(10, dtype=np.int64) * 60_000, symbols=("BTC",))
    assert trade["side"] == "long"
    assert trade["exit_reason"] == "take_profit"
    assert trade["pnl"] == pytest.approx(pos.realized_pnl)
    assert trade["duration_bars"] == 4
    assert trade["exit_ts"] == 5 * 60_000


def test_a_short_covered_higher_loses_and_a_sell_larger_than_the_holding_reverses() -> None:
    # short 1 at 100, cover 1 at 105 (a loss), then a sell of 3 while long 1 = close 1 + short 2
    fills = _fills(
        [
            (1, 0, -1, 1.0, 100.0, 0.1, 0),
            (2, 0, 1, 1.0, 105.0, 0.105, 1),
            (3, 0, 1, 1.0, 100.0, 0.1, 0),
            (4, 0, -1, 3.0, 90.0, 0.27, 0),
        ]
    )
    book = ledger(fills, ("X",), (80.0,))
    (pos,) = book.positions
    assert pos.qty == pytest.approx(-2.0)
    assert pos.avg_entry_price == pytest.approx(90.0)
    # realized: short -5 - 0.205; long -10 - 0.1 - 0.09 (its share of the reversal fee)
    assert pos.realized_pnl == pytest.approx(-5.205 - 10.19)
    # unrealized of the short 2 from 90 marked at 80, less its share of the fee (0.18)
    assert pos.unrealized_pnl == pytest.approx(20.0 - 0.18)
    assert pos.trades == 3
    trades = book.trades.to_dicts(symbols=("X",))
    assert [t["side"] for t in trades] == ["short", "long", "short"]
    assert [t["exit_reason"] for t in trades] == ["stop_loss", "signal", "open"]
    assert trades[2]["exit_bar"] is None
    assert book.trades.exit_reason[2] == OPEN
    total = pos.realized_pnl + pos.unrealized_pnl
    assert 1000.0 + total == pytest.approx(_equity(1000.0, fills, [80.0]), rel=1e-12)


def test_a_partial_cover_keeps_the_trade_open() -> None:
    fills = _fills([(1, 0, -1, 4.0, 50.0, 0.0, 0), (2, 0, 1, 1.0, 40.0, 0.0, 0)])
    book = ledger(fills, ("X",), (45.0,))
    (pos,) = book.positions
    assert pos.qty == pytest.approx(-3.0)
    assert pos.realized_pnl == pytest.approx(10.0)
    assert pos.unrealized_pnl == pytest.approx(15.0)
    (trade,) = book.trades.to_dicts()
    assert trade["exit_reason"] == "open"
    assert trade["qty"] == pytest.approx(4.0)
    assert trade["pnl"] == pytest.approx(25.0)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2),  # asset
            st.sampled_from([1, -1]),
            st.floats(0.001, 50.0),
            st.floats(1.0, 1000.0),
            st.floats(0.0, 0.01),
            st.integers(0, len(REASONS) - 1),
        ),
        max_size=40,
    ),
    st.lists(st.floats(1.0, 1000.0), min_size=3, max_size=3),
)
def test_cash_plus_realized_plus_unrealized_is_final_equity(
    rows: list[tuple[int, int, float, float, float, int]], closes: list[float]
) -> None:
    fills = _fills([(i, a, s, q, p, q * p * f, r) for i, (a, s, q, p, f, r) in enumerate(rows)])
    book = ledger(fills, ("A", "B", "C"), closes)
    total = sum(p.realized_pnl + p.unrealized_pnl for p in book.positions)
    expected = _equity(10_000.0, fills, closes)
    assert math.isclose(10_000.0 + total, expected, rel_tol=1e-9, abs_tol=1e-6)
    assert sum(p.trades for p in book.positions) == len(book.trades)
    assert math.isclose(float(book.trades.pnl.sum()), total, rel_tol=1e-9, abs_tol=1e-6)


def test_the_engines_long_runs_satisfy_the_identity() -> None:
    bars = engine.synthetic(20_000, seed=3)
    result = engine.run(engine.BacktestSpec("sma_cross", {"fast": 5, "slow": 20}), bars)
    book = engine.ledger_of(result)
    (pos,) = book.positions
    assert len(book.trades) == result.num_trades == pos.trades
    assert 10_000.0 + pos.realized_pnl + pos.unrealized_pnl == pytest.approx(
        result.final_equity, rel=1e-9
    )
    assert pos.qty == pytest.approx(result.final_qty)
