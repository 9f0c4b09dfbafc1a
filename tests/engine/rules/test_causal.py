"""Every catalogue function is causal: rewriting the bars after bar m leaves its values at bars
<= m unchanged, bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coinbt.engine import Bars, synthetic
from coinbt.engine.indicators import IndicatorCache
from coinbt.engine.rules import catalogue
from coinbt.engine.rules._eval import context
from coinbt.engine.rules.catalogue import Function

N = 600
CUTS = (80, 300, 599)
FUNCTIONS = sorted(catalogue())


def _bars(seed: int) -> Bars:
    return synthetic(N, seed=seed, interval="1h")


def _rewritten(bars: Bars, cut: int) -> Bars:
    """The same bars up to ``cut``, different ones after it."""
    other = synthetic(N, seed=999, interval="1h", start_price=float(bars.close[cut]) * 1.3)
    cols = {}
    for name in ("open", "high", "low", "close", "volume"):
        col = np.array(getattr(bars, name))
        col[cut + 1 :] = np.array(getattr(other, name))[cut + 1 :]
        cols[name] = col
    return Bars(bars.ts, **cols, interval_ms=bars.interval_ms)


def _args(f: Function, bars: Bars) -> list[object]:
    out: list[object] = []
    series = [bars.close, bars.high, bars.low]
    for arg in f.args:
        if arg.kind == "series":
            out.append(np.array(series[len(out) % 3]) if arg.name != "periods" else np.full(N, 9.0))
        elif arg.kind == "value":
            out.append(np.array(bars.open))
        elif arg.kind == "window":
            out.append(max(int(arg.minimum or 1), int(arg.default or 5)))
        elif arg.kind == "integer":
            out.append(int(arg.default or 0))
        else:
            out.append(float(arg.default if arg.default is not None else 1.5))
    return out


def _values(f: Function, bars: Bars) -> np.ndarray:
    cache = IndicatorCache.of(bars)
    result = f.impl(context(cache), _args(f, bars))
    return np.asarray(np.broadcast_to(result, (N,)))


@pytest.mark.parametrize("name", FUNCTIONS)
def test_the_past_does_not_see_the_future(name: str) -> None:
    f = catalogue()[name]
    bars = _bars(3)
    full = _values(f, bars)
    assert full.shape == (N,)
    for cut in CUTS:
        changed = _values(f, _rewritten(bars, cut))
        a, b = full[: cut + 1], changed[: cut + 1]
        if a.dtype == np.float64:
            assert a.view(np.int64).tolist() == b.view(np.int64).tolist(), f"{name} at {cut}"
        else:
            assert a.tolist() == b.tolist(), f"{name} at {cut}"


def test_the_catalogue_holds_the_design_list_and_talib() -> None:
    names = set(catalogue())
    design = {
        *("sma", "ema", "wma", "rsi", "macd", "macd_signal", "bb_upper", "bb_middle"),
        *("bb_lower", "atr", "stoch_k", "stoch_d", "adx", "cci", "obv", "highest", "lowest"),
        *("shift", "change", "pct_change", "abs", "min", "max", "cross_above", "cross_below"),
        *("rising", "falling"),
    }
    assert design <= names
    talib = {n for n, f in catalogue().items() if f.source == "talib"}
    assert {"kama", "bbands_upperband", "cdlengulfing", "mfi", "natr"} <= talib


def test_the_docs_list_every_function() -> None:
    docs = (Path(__file__).parents[3] / "docs" / "strategies.md").read_text()
    missing = [f.signature for f in catalogue().values() if f"`{f.signature}`" not in docs]
    assert missing == []
