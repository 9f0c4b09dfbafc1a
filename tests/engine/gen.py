"""Hypothesis generators of valid OHLC price series and of strategy parameters."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from coinbt.engine import Bars
from tests.engine import reference

START_MS = 1_704_067_200_000


def make_bars(close: list[float], open_: list[float], high: list[float], low: list[float]) -> Bars:
    n = len(close)
    ts = START_MS + 60_000 * np.arange(n)
    return Bars(ts, open_, high, low, close, np.full(n, 5.0), interval_ms=60_000)


def to_reference(bars: Bars) -> reference.Bars:
    return reference.Bars(
        bars.open.tolist(), bars.high.tolist(), bars.low.tolist(), bars.close.tolist()
    )


@st.composite
def tick_series(draw: st.DrawFn, min_size: int = 2, max_size: int = 120) -> Bars:
    """Prices on a 0.01 grid moving a few ticks per bar (flat stretches and exact ties included)."""
    n = draw(st.integers(min_size, max_size))
    price = draw(st.sampled_from([1.0, 7.5, 100.0, 2500.0]))
    scale = max(0.01, round(price / 1000, 2))
    moves = draw(st.lists(st.integers(-12, 12), min_size=n, max_size=n))
    wicks = draw(st.lists(st.integers(0, 5), min_size=2 * n, max_size=2 * n))
    close, open_, high, low = [], [], [], []
    previous = price
    for i, move in enumerate(moves):
        o = previous
        c = max(0.01, round(o + move * scale, 2))
        open_.append(o)
        close.append(c)
        high.append(round(max(o, c) + wicks[2 * i] * scale, 2))
        low.append(max(0.005, round(min(o, c) - wicks[2 * i + 1] * scale, 2)))
        previous = c
    return make_bars(close, open_, high, low)


def _snap(move: float) -> float:
    return 0.0 if abs(move) < 1e-6 else move


@st.composite
def float_series(draw: st.DrawFn, min_size: int = 2, max_size: int = 120) -> Bars:
    """Arbitrary float prices: a multiplicative walk with returns up to 5 % and gaps at the open.

    A move is either 0 (an exact tie) or at least 1e-6: a move of ~1e-10 would put two averages
    exactly on the edge of the 1e-10 tie band, where any two summation orders may disagree (real
    prices move by whole ticks, 1e-8 of the price or more).
    """
    n = draw(st.integers(min_size, max_size))
    price = draw(st.floats(0.5, 50_000.0))
    steps = st.floats(-0.05, 0.05, allow_nan=False, allow_infinity=False).map(_snap)
    moves = draw(st.lists(steps, min_size=n, max_size=n))
    gaps = draw(st.lists(st.floats(-0.002, 0.002).map(_snap), min_size=n, max_size=n))
    close, open_, high, low = [], [], [], []
    previous = price
    for move, gap in zip(moves, gaps, strict=True):
        o = previous * (1 + gap)
        c = o * (1 + move)
        open_.append(o)
        close.append(c)
        high.append(max(o, c) * 1.001)
        low.append(min(o, c) * 0.999)
        previous = c
    return make_bars(close, open_, high, low)


def params_for(name: str) -> st.SearchStrategy[dict[str, Any]]:
    """Valid parameters of each strategy, with small windows so short series get signals."""
    if name in ("sma_cross", "ema_cross"):
        return st.integers(1, 8).flatmap(
            lambda fast: st.fixed_dictionaries(
                {"fast": st.just(fast), "slow": st.integers(fast + 1, fast + 15)}
            )
        )
    if name == "rsi_reversion":
        return st.fixed_dictionaries(
            {
                "period": st.integers(2, 10),
                "lower": st.sampled_from([20.0, 30.0, 40.0, 45.5]),
                "upper": st.sampled_from([55.0, 60.0, 70.0, 80.0]),
            }
        )
    if name == "bollinger_breakout":
        return st.fixed_dictionaries(
            {"window": st.integers(2, 15), "k": st.sampled_from([0.5, 1.0, 1.5, 2.0, 2.5])}
        )
    if name == "donchian_breakout":
        return st.fixed_dictionaries(
            {"window": st.integers(1, 12), "exit_window": st.integers(1, 12)}
        )
    return st.just({})


STRATEGY_NAMES = (
    "sma_cross",
    "ema_cross",
    "rsi_reversion",
    "bollinger_breakout",
    "donchian_breakout",
    "buy_and_hold",
)
