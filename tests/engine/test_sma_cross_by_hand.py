"""sma_cross on a ten-bar series whose signals and fills are worked out by hand below."""

from __future__ import annotations

import pytest

from coinbt.engine import BacktestSpec, run
from tests.engine.gen import make_bars

#            bar:  0     1     2     3     4     5     6     7     8     9
CLOSE = [10.0, 10.0, 10.0, 12.0, 14.0, 13.0, 11.0, 9.0, 10.0, 12.0]
OPEN = [10.0, 10.0, 10.0, 10.0, 12.0, 14.0, 13.0, 11.0, 9.0, 10.0]  # the previous close
# SMA2 from bar 1:      10    10    11    13    13.5  12    10    9.5   11
# SMA3 from bar 2:            10    10.67 12    13    12.67 11    10    10.33
# SMA2 - SMA3:                 0    +0.33 +1    +0.5  -0.67 -1    -0.5  +0.67
# entry (crosses above, the bar before <= ): bars 3 and 9; exit (crosses below): bar 6.
FEE = 0.001  # 10 bps
CASH = 1_000.0


def bars():  # type: ignore[no-untyped-def]
    high = [max(o, c) for o, c in zip(OPEN, CLOSE, strict=True)]
    low = [min(o, c) for o, c in zip(OPEN, CLOSE, strict=True)]
    return make_bars(CLOSE, OPEN, high, low)


def test_next_open_fills_at_the_following_open_and_drops_the_last_bar_signal() -> None:
    result = run(BacktestSpec("sma_cross", {"fast": 2, "slow": 3}, cash=CASH), bars())
    qty = CASH / (12.0 * (1 + FEE))  # entry signal at bar 3 -> bar 4's open, 12
    proceeds = qty * 11.0 * (1 - FEE)  # exit signal at bar 6 -> bar 7's open, 11
    fills = [(f.bar, f.side, f.qty, f.price, f.fee) for f in result.fills]
    assert fills == [
        (4, "buy", pytest.approx(qty), 12.0, pytest.approx(qty * 12.0 * FEE)),
        (7, "sell", pytest.approx(qty), 11.0, pytest.approx(qty * 11.0 * FEE)),
    ]  # the entry signal on bar 9, the last bar, is not filled
    assert result.num_trades == 1
    assert result.final_qty == 0.0
    assert result.final_equity == pytest.approx(proceeds)
    assert result.equity[3] == CASH
    assert result.equity[4] == pytest.approx(qty * 14.0)  # long from bar 4's open
    assert result.equity[6] == pytest.approx(qty * 11.0)
    assert result.equity[7] == pytest.approx(proceeds)
    assert result.total_fees == pytest.approx(qty * 12.0 * FEE + qty * 11.0 * FEE)
    assert result.metrics["win_rate"] == 0.0
    assert result.metrics["closed_trades"] == 1
    assert result.metrics["avg_trade_return"] == pytest.approx(proceeds / CASH - 1)


def test_close_fills_at_the_signal_bar_close_and_marks_the_open_position() -> None:
    spec = BacktestSpec(
        "sma_cross", {"fast": 2, "slow": 3}, cash=CASH, slippage_bps=50.0, fill="close"
    )
    result = run(spec, bars())
    buy1 = 12.0 * 1.005  # bar 3's close, slippage against the buyer
    qty1 = CASH / (buy1 * (1 + FEE))
    sell = 11.0 * 0.995  # bar 6's close
    cash = qty1 * sell * (1 - FEE)
    buy2 = 12.0 * 1.005  # bar 9's close
    qty2 = cash / (buy2 * (1 + FEE))
    assert [(f.bar, f.side) for f in result.fills] == [(3, "buy"), (6, "sell"), (9, "buy")]
    assert [f.price for f in result.fills] == pytest.approx([buy1, sell, buy2])
    assert [f.qty for f in result.fills] == pytest.approx([qty1, qty1, qty2])
    assert result.num_trades == 2  # the open one counts
    assert result.metrics["closed_trades"] == 1
    assert result.final_qty == pytest.approx(qty2)
    assert result.final_cash == 0.0
    # marked at the last close, not sold: equity = qty * close[9]
    assert result.final_equity == pytest.approx(qty2 * 12.0)
    assert result.last_close == 12.0


def test_equal_averages_are_not_a_cross() -> None:
    # SMA2 == SMA3 at bar 2 (both 10): "fast[i-1] <= slow[i-1]" holds there, so bar 3 enters, but
    # equality itself (bars 0-2, flat) never does.
    flat = make_bars([10.0] * 8, [10.0] * 8, [10.0] * 8, [10.0] * 8)
    assert run(BacktestSpec("sma_cross", {"fast": 2, "slow": 3}), flat).num_fills == 0
