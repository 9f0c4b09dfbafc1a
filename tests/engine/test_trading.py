"""Shorts, stops, sizing and portfolios against the bar-by-bar reference (reference.backtest_5b).

Two ways in: whole backtests through ``run`` (strategies, one asset or a portfolio), and the
execution model alone on random signal arrays (``trading.trade``), which reaches every branch
(four signal arrays, reversals on any bar, stops every few bars).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coinbt.engine import STRATEGIES, BacktestSpec, Bars, run
from coinbt.engine.result import REASONS
from coinbt.engine.trading import AssetSignals, Trading, trade
from tests.engine import reference
from tests.engine.gen import (
    float_series,
    make_bars,
    params_for,
    tick_series,
    to_reference,
)

RTOL = 1e-9
CASH = 10_000.0
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


@st.composite
def gappy_series(draw: st.DrawFn, min_size: int = 2, max_size: int = 80) -> Bars:
    """Wide bars that gap at the open by up to 6 %: opens beyond stops, SL and TP in one bar."""
    n = draw(st.integers(min_size, max_size))
    price = draw(st.floats(1.0, 1000.0))
    unit = st.floats(-0.06, 0.06, allow_nan=False, allow_infinity=False)
    gaps = draw(st.lists(unit, min_size=n, max_size=n))
    moves = draw(st.lists(unit, min_size=n, max_size=n))
    wicks = draw(st.lists(st.floats(0.0, 0.05), min_size=2 * n, max_size=2 * n))
    close, open_, high, low = [], [], [], []
    previous = price
    for i in range(n):
        o = previous * (1 + gaps[i])
        c = o * (1 + moves[i])
        open_.append(o)
        close.append(c)
        high.append(max(o, c) * (1 + wicks[2 * i]))
        low.append(min(o, c) * (1 - wicks[2 * i + 1]))
        previous = c
    return make_bars(close, open_, high, low)


SERIES = st.one_of(gappy_series(), float_series(max_size=80), tick_series(max_size=80))


@st.composite
def options(draw: st.DrawFn, n_assets: int = 1) -> reference.Options:
    direction = draw(st.sampled_from(["long", "short", "both"]))
    sl = draw(st.one_of(st.none(), st.sampled_from([0.005, 0.01, 0.02, 0.05, 0.3])))
    tp_choices = [0.005, 0.01, 0.03, 0.1] + ([1.5] if direction == "long" else [])
    tp = draw(st.one_of(st.none(), st.sampled_from(tp_choices)))
    trail = sl is not None and draw(st.booleans())
    kinds = ["all", "percent", "value", "amount", "target_percent"]
    if direction == "both":
        kinds.remove("percent")
    if n_assets > 1:
        kinds.remove("all")
    size_type = draw(st.sampled_from(kinds))
    size = {
        "all": None,
        "percent": draw(st.sampled_from([0.1, 0.5, 1.0])),
        "value": draw(st.sampled_from([100.0, 5_000.0, 50_000.0])),
        "amount": draw(st.sampled_from([0.5, 3.0, 1_000.0])),
        "target_percent": draw(st.sampled_from([0.1, 0.3, 1.0])),
    }[size_type]
    return reference.Options(direction, sl, tp, trail, size, size_type)


def spec_of(name: str, params: dict[str, Any], o: reference.Options, **kw: Any) -> BacktestSpec:
    return BacktestSpec(
        name,
        params,
        direction=o.direction,
        sl_stop=o.sl_stop,
        tp_stop=o.tp_stop,
        sl_trail=o.sl_trail,
        size=o.size,
        size_type=o.size_type,
        **kw,
    )


def assert_same(fills: Any, equity: Any, expected: reference.Outcome5b, cash: float = CASH) -> None:
    got = [
        (int(b), "buy" if s > 0 else "sell", REASONS[int(r)], int(a))
        for b, s, r, a in zip(fills.bar, fills.side, fills.reason, fills.asset, strict=True)
    ]
    assert got == [(f.bar, f.side, f.reason, f.asset) for f in expected.fills]
    if expected.fills:
        assert fills.price.tolist() == [f.price for f in expected.fills]  # exact
        np.testing.assert_allclose(fills.qty, [f.qty for f in expected.fills], rtol=RTOL)
        np.testing.assert_allclose(
            fills.fee, [f.fee for f in expected.fills], rtol=RTOL, atol=1e-12 * cash
        )
    scale = max(cash, float(np.max(np.abs(expected.equity))))
    np.testing.assert_allclose(equity, expected.equity, rtol=RTOL, atol=1e-9 * scale)


NAMES = ("sma_cross", "donchian_breakout", "rsi_reversion", "buy_and_hold")


@pytest.mark.parametrize("fill", ["next_open", "close"])
@pytest.mark.parametrize("name", NAMES)
def test_a_strategy_matches_the_reference(name: str, fill: str) -> None:
    @SETTINGS
    @given(bars=SERIES, params=params_for(name), o=options(), slip=st.sampled_from([0.0, 5.0]))
    def inner(bars: Bars, params: dict[str, Any], o: reference.Options, slip: float) -> None:
        if len(bars) < STRATEGIES[name].min_bars(params):
            return
        result = run(spec_of(name, params, o, fill=fill, slippage_bps=slip), bars)
        expected = reference.backtest_5b(
            name, result.params, [to_reference(bars)], o, slippage_bps=slip, fill=fill
        )
        assert_same(result.fills, result.equity, expected)
        assert result.num_trades == expected.opened

    inner()


@st.composite
def random_signals(draw: st.DrawFn, n: int, four: bool) -> tuple[list[bool], ...]:
    density = draw(st.sampled_from([0.05, 0.2, 0.5]))
    count = 4 if four else 2
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    arrays = [(rng.random(n) < density).tolist() for _ in range(count)]
    if not four:
        arrays += [arrays[1], arrays[0]]
    return tuple(arrays)


def _trading(o: reference.Options, fill: str, slip: float, fee: float = 10.0) -> Trading:
    return Trading(
        cash=CASH,
        fee_rate=fee / 10_000,
        slippage_rate=slip / 10_000,
        fill=fill,
        direction=o.direction,
        sl_stop=o.sl_stop,
        tp_stop=o.tp_stop,
        sl_trail=o.sl_trail,
        size=o.size,
        size_type=o.size_type,
    )


def _assets(bars: list[Bars], sigs: list[tuple[list[bool], ...]], four: bool) -> list[AssetSignals]:
    out = []
    for b, s in zip(bars, sigs, strict=True):
        arrays = [np.array(a, dtype=np.bool_) for a in s]
        out.append(
            AssetSignals(
                b.open,
                b.high,
                b.low,
                b.close,
                arrays[0],
                arrays[1],
                arrays[2] if four else None,
                arrays[3] if four else None,
            )
        )
    return out


@st.composite
def portfolio(draw: st.DrawFn, max_assets: int) -> list[Bars]:
    k = draw(st.integers(1, max_assets))
    first = draw(gappy_series(min_size=3, max_size=60))
    n = len(first)
    out = [first]
    for _ in range(k - 1):
        out.append(draw(gappy_series(min_size=n, max_size=n)))
    return out


@pytest.mark.parametrize("fill", ["next_open", "close"])
@pytest.mark.parametrize("four", [False, True], ids=["two-signals", "four-signals"])
def test_random_signals_on_portfolios_match_the_reference(fill: str, four: bool) -> None:
    @SETTINGS
    @given(data=st.data(), slip=st.sampled_from([0.0, 5.0]), fee=st.sampled_from([0.0, 10.0]))
    def inner(data: st.DataObject, slip: float, fee: float) -> None:
        assets = data.draw(portfolio(4))
        o = data.draw(options(len(assets)))
        sigs = [data.draw(random_signals(len(assets[0]), four)) for _ in assets]
        book = trade(_assets(assets, sigs, four), _trading(o, fill, slip, fee))
        expected = reference.backtest_5b(
            "",
            {},
            [to_reference(b) for b in assets],
            o,
            fee_bps=fee,
            slippage_bps=slip,
            fill=fill,
            signal_sets=sigs,  # type: ignore[arg-type]
        )
        assert_same(book, book.equity, expected)
        assert book.opened == expected.opened
        if len(assets) == 1:  # the portfolio loop on one asset too
            queue = trade(_assets(assets, sigs, four), _trading(o, fill, slip, fee), one_loop=False)
            assert_same(queue, queue.equity, expected)

    inner()


def test_defaults_keep_the_vectorized_fills_bit_for_bit() -> None:
    from coinbt.engine import synthetic

    bars = synthetic(5_000, seed=4)
    plain = run(BacktestSpec("sma_cross", {"fast": 5, "slow": 20}), bars)
    forced = trade(
        _assets(
            [bars],
            [
                tuple(
                    a.tolist()
                    for a in STRATEGIES["sma_cross"].signals(bars, {"fast": 5, "slow": 20})
                )
            ],
            False,
        ),
        _trading(reference.Options(), "next_open", 0.0),
    )
    assert plain.fills.bar.tolist() == forced.bar.tolist()
    np.testing.assert_allclose(plain.equity, forced.equity, rtol=1e-12)


def _shift_ts(bars: Bars, ms: int) -> Bars:
    return Bars(bars.ts + ms, bars.open, bars.high, bars.low, bars.close, bars.volume)


def test_a_portfolio_of_one_asset_is_the_single_asset_run() -> None:
    from coinbt.engine import synthetic

    bars = synthetic(4_000, seed=9)
    spec = BacktestSpec(
        "sma_cross",
        {"fast": 5, "slow": 20},
        direction="both",
        sl_stop=0.01,
        tp_stop=0.02,
        size=0.5,
        size_type="target_percent",
    )
    single = run(spec, bars)
    alone = run(spec, {"BTC": bars})
    assert single.fills.bar.tolist() == alone.fills.bar.tolist()
    assert single.fills.qty.tolist() == alone.fills.qty.tolist()
    assert single.equity.tolist() == alone.equity.tolist()
    assert alone.symbols == ("BTC",)


BAD_SPECS = [
    pytest.param({"direction": "sideways"}, "direction", id="direction"),
    pytest.param({"sl_stop": 1.0}, "sl_stop", id="sl-stop-100pct"),
    pytest.param({"sl_stop": 0.0}, "sl_stop", id="sl-stop-zero"),
    pytest.param({"sl_stop": "x"}, "sl_stop", id="sl-stop-text"),
    pytest.param({"tp_stop": -0.1}, "tp_stop", id="tp-stop-negative"),
    pytest.param({"tp_stop": 1.5, "direction": "short"}, "tp_stop", id="tp-stop-short"),
    pytest.param({"sl_trail": True}, "sl_trail", id="trail-without-sl"),
    pytest.param({"size": 0.5}, "size", id="size-with-all"),
    pytest.param({"size_type": "value"}, "size", id="value-without-size"),
    pytest.param({"size_type": "value", "size": 0.0}, "size", id="size-zero"),
    pytest.param({"size_type": "value", "size": -5.0}, "size", id="size-negative"),
    pytest.param({"size_type": "percent", "size": 1.5}, "size", id="percent-over-1"),
    pytest.param({"size_type": "lots", "size": 1.0}, "size_type", id="size-type"),
    pytest.param(
        {"size_type": "percent", "size": 0.5, "direction": "both"}, "size_type", id="percent-both"
    ),
]


@pytest.mark.parametrize(("fields", "where"), BAD_SPECS)
def test_bad_trading_options_name_the_field(fields: dict[str, Any], where: str) -> None:
    from coinbt.engine import validate_spec
    from coinbt.errors import SpecError

    with pytest.raises(SpecError) as caught:
        validate_spec(BacktestSpec("sma_cross", {}, **fields))
    assert where in [e.field for e in caught.value.errors]


def test_all_is_refused_for_several_assets_and_misaligned_data_is_named() -> None:
    from coinbt.engine import synthetic
    from coinbt.errors import SpecError

    a, b = synthetic(500, seed=1), synthetic(500, seed=2)
    with pytest.raises(SpecError) as caught:
        run(BacktestSpec("sma_cross", {}), {"A": a, "B": b})
    assert [e.field for e in caught.value.errors] == ["size_type"]
    holes = Bars(
        np.delete(b.ts, 100),
        *(np.delete(getattr(b, c), 100) for c in ("open", "high", "low", "close", "volume")),
    )
    spec = BacktestSpec("sma_cross", {}, size=0.5, size_type="target_percent")
    with pytest.raises(SpecError) as caught:
        run(spec, {"A": a, "B": holes})
    (error,) = caught.value.errors
    assert error.field == "data.datasets[1]"
    assert "'B'" in error.message
    assert "2024-01-01T01:40:00Z" in error.message


def replay(fills: Any, k: int, n: int, cash: float) -> tuple[np.ndarray, np.ndarray]:
    """Cash and each asset's position after every bar, from the fills alone."""
    q = np.zeros(k)
    cash_path, qty_path = np.empty(n), np.empty((n, k))
    j = 0
    for t in range(n):
        while j < len(fills.bar) and fills.bar[j] == t:
            signed = float(fills.side[j]) * float(fills.qty[j])
            cash -= signed * float(fills.price[j]) + float(fills.fee[j])
            q[int(fills.asset[j])] += signed
            j += 1
        cash_path[t], qty_path[t] = cash, q
    return cash_path, qty_path


@pytest.mark.parametrize("fill", ["next_open", "close"])
def test_equity_is_cash_plus_positions_and_the_future_is_never_read(fill: str) -> None:
    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        derandomize=True,
    )
    @given(data=st.data())
    def inner(data: st.DataObject) -> None:
        assets = data.draw(portfolio(3))
        o = data.draw(options(len(assets)))
        spec = spec_of("sma_cross", {"fast": 2, "slow": 5}, o, fill=fill, slippage_bps=3.0)
        named = {f"A{i}": b for i, b in enumerate(assets)}
        if len(assets[0]) < 6:
            return
        result = run(spec, named)
        n, k = len(assets[0]), len(assets)
        cash, qty = replay(result.fills, k, n, CASH)
        closes = np.stack([b.close for b in assets], axis=1)
        scale = 1e-9 * max(CASH, float(np.max(np.abs(result.equity))))
        np.testing.assert_allclose(
            result.equity, cash + (qty * closes).sum(axis=1), rtol=1e-9, atol=scale
        )
        # rewrite everything after bar `cut`: no fill up to `cut` may change
        cut = data.draw(st.integers(1, n - 1))
        changed = {}
        for name, b in named.items():
            o2 = data.draw(gappy_series(min_size=n, max_size=n))
            cols = [
                np.concatenate((getattr(b, c)[: cut + 1], getattr(o2, c)[cut + 1 :]))
                for c in ("open", "high", "low", "close")
            ]
            lo = np.minimum.reduce([cols[0], cols[3], cols[2]])
            hi = np.maximum.reduce([cols[0], cols[3], cols[1]])
            changed[name] = Bars(b.ts, cols[0], hi, lo, cols[3], b.volume)
        again = run(spec, changed)
        upto = result.fills.bar <= cut
        upto_again = again.fills.bar <= cut
        assert result.fills.bar[upto].tolist() == again.fills.bar[upto_again].tolist()
        assert result.fills.reason[upto].tolist() == again.fills.reason[upto_again].tolist()
        np.testing.assert_allclose(result.fills.qty[upto], again.fills.qty[upto_again], rtol=1e-12)
        np.testing.assert_array_equal(result.equity[:cut], again.equity[:cut])

    inner()


@pytest.mark.parametrize("fill", ["next_open", "close"])
def test_the_ledger_of_whole_fills_equals_the_fold(fill: str) -> None:
    from coinbt.engine.ledger import _fold, _whole_fills
    from coinbt.engine.result import Fills

    @SETTINGS
    @given(data=st.data())
    def inner(data: st.DataObject) -> None:
        assets = data.draw(portfolio(4))
        o = data.draw(options(len(assets)))
        sigs = [data.draw(random_signals(len(assets[0]), False)) for _ in assets]
        book = trade(_assets(assets, sigs, False), _trading(o, fill, 5.0))
        fills = Fills(
            book.bar, book.bar * 60_000, book.side, book.qty, book.price, book.fee,
            book.reason, book.asset,
        )  # fmt: skip
        symbols = [f"A{i}" for i in range(len(assets))]
        closes = [float(b.close[-1]) for b in assets]
        slow = _fold(fills, symbols, closes)
        fast = _whole_fills(fills, symbols, closes) or slow  # the array fold, at any size
        assert fast.positions == slow.positions
        for name in fast.trades.__dataclass_fields__:
            got, want = getattr(fast.trades, name), getattr(slow.trades, name)
            assert got.dtype == want.dtype, name
            np.testing.assert_array_equal(got, want, err_msg=name)

    inner()
