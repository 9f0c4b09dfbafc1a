"""The functions a rule may call: coinbt's own (the engine's exact indicators and helpers) and
TA-Lib's long tail (generated from ``talib.abstract``, see ``_talib.py``).

Every function is causal: its value at bar ``i`` depends on bars ``<= i`` only
(tests/engine/rules/test_causal.py rewrites the future of every entry).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from coinbt.engine import indicators as ind
from coinbt.engine.indicators import IndicatorCache
from coinbt.engine.strategies import TIE_RTOL

__all__ = ("COLUMNS", "Arg", "ArgKind", "Context", "Function", "catalogue", "functions_json")

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
Value = Any  # a float array, a bool array, a float or a bool
ArgKind = Literal["series", "value", "bool", "window", "integer", "number"]
"""``series``: a float series; ``value``: a float series or a number; ``bool``: a boolean series
or constant; ``window``: a positive integer (a literal or a parameter name), at most the number of
bars; ``integer``: an integer literal or parameter within a range; ``number``: a number (literal,
parameter or arithmetic of them)."""

COLUMNS = ("open", "high", "low", "close", "volume")
MAX_WINDOW = 10_000_000


@dataclass(frozen=True, slots=True)
class Arg:
    name: str
    kind: ArgKind
    default: float | int | None = None  # None: required
    minimum: float | None = None
    maximum: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.kind}
        if self.default is not None:
            out["default"] = self.default
        if self.kind == "window":
            out["minimum"] = 1 if self.minimum is None else self.minimum
            out["maximum"] = "bars"
        else:
            if self.minimum is not None:
                out["minimum"] = self.minimum
            if self.maximum is not None:
                out["maximum"] = self.maximum
        return out


class Context:
    """What an evaluation reads: the bars' columns and the engine's shared indicator cache."""

    def __init__(self, cache: IndicatorCache, columns: dict[str, FloatArray], n: int) -> None:
        self.cache = cache
        self.columns = columns
        self.n = n
        self.memo: dict[tuple[object, ...], object] = {}  # one evaluation's shared intermediates

    def column(self, name: str) -> FloatArray:
        return self.columns[name]

    def is_column(self, x: Value, name: str) -> bool:
        col = self.columns.get(name)
        return col is not None and x is col


Impl = Callable[[Context, Sequence[Value]], Value]


@dataclass(frozen=True, slots=True)
class Function:
    """One catalogue entry. ``inputs`` are the bar columns it reads implicitly (TA-Lib's price
    inputs); ``args`` what the rule passes; ``returns`` ``series`` or ``bool``."""

    name: str
    args: tuple[Arg, ...]
    returns: Literal["series", "bool"]
    description: str
    impl: Impl = field(repr=False)
    inputs: tuple[str, ...] = ()
    source: Literal["coinbt", "talib"] = "coinbt"
    output: str | None = None

    @property
    def signature(self) -> str:
        parts = []
        for a in self.args:
            parts.append(a.name if a.default is None else f"{a.name}={a.default}")
        return f"{self.name}({', '.join(parts)})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "signature": self.signature,
            "source": self.source,
            "inputs": list(self.inputs),
            "params": [a.to_dict() for a in self.args],
            "outputs": [self.output or "value"],
            "returns": "boolean series" if self.returns == "bool" else "series",
            "description": self.description,
        }


# --- helpers ----------------------------------------------------------------------------------


def _series(ctx: Context, x: Value) -> FloatArray:
    if isinstance(x, np.ndarray):
        return x
    return np.full(ctx.n, float(x))


def _nan(n: int) -> FloatArray:
    return np.full(n, np.nan)


def _shift(x: FloatArray, k: int) -> FloatArray:
    out = _nan(len(x))
    if k < len(x):
        out[k:] = x[: len(x) - k]
    return out


def above(a: Value, b: Value) -> Value:
    """``a`` above ``b`` with the engine's tie rule (strategies.TIE_RTOL)."""
    return (a - b) > TIE_RTOL * np.abs(b)


def below(a: Value, b: Value) -> Value:
    return (a - b) < -TIE_RTOL * np.abs(b)


def _cross_states(ctx: Context, x: Value, y: Value) -> tuple[BoolArray, BoolArray, BoolArray]:
    """``x`` above ``y``, below it (the tie rule), and both defined: computed once per pair,
    so cross_above and cross_below of the same two series share the work (as sma_cross does)."""
    key = ("cross", id(x), id(y))
    found = ctx.memo.get(key)
    if found is None:
        diff = np.subtract(x, y)  # a new array: negated in place below
        if not isinstance(diff, np.ndarray) or diff.shape != (ctx.n,):
            diff = np.full(ctx.n, diff, dtype=np.float64)
        tol = np.abs(y)
        if isinstance(tol, np.ndarray):
            tol *= TIE_RTOL  # the same operations, in the same order, as strategies._crosses
        else:
            tol = tol * TIE_RTOL
        up = diff > tol
        defined = diff == diff  # NaN where either is undefined
        np.negative(diff, out=diff)
        down = diff > tol
        # x and y are kept in the entry: alive, their ids cannot be reused by other objects
        found = ctx.memo[key] = (up, down, defined, x, y)
    up, down, defined = found[:3]  # type: ignore[index]
    return up, down, defined


def _became(ctx: Context, state: BoolArray, defined: BoolArray) -> BoolArray:
    """True at ``i`` where ``state`` holds at ``i`` (so both are defined there) but not at
    ``i-1``, both defined at ``i-1``."""
    out = np.zeros(ctx.n, dtype=np.bool_)
    if ctx.n > 1:
        np.greater(state[1:], state[:-1], out=out[1:])
        out[1:] &= defined[:-1]
    return out


def _cross_above(ctx: Context, a: Sequence[Value]) -> Value:
    up, _, defined = _cross_states(ctx, a[0], a[1])
    return _became(ctx, up, defined)


def _cross_below(ctx: Context, a: Sequence[Value]) -> Value:
    _, down, defined = _cross_states(ctx, a[0], a[1])
    return _became(ctx, down, defined)


def _rising(ctx: Context, a: Sequence[Value]) -> Value:
    x, k = a
    result: BoolArray = above(x, _shift(x, int(k)))
    return result


def _falling(ctx: Context, a: Sequence[Value]) -> Value:
    x, k = a
    result: BoolArray = below(x, _shift(x, int(k)))
    return result


def _sma(ctx: Context, a: Sequence[Value]) -> Value:
    x, w = a
    if ctx.is_column(x, "close"):
        return ctx.cache.sma(int(w))
    return ind.rolling_mean(x, int(w))


def _ema(ctx: Context, a: Sequence[Value]) -> Value:
    x, w = a
    if ctx.is_column(x, "close"):
        return ctx.cache.ema(int(w))
    return _nan_prefix_ema(x, int(w))


def _nan_prefix_ema(x: FloatArray, w: int) -> FloatArray:
    """The engine's EMA started at the first bar where ``x`` is defined (an EMA of an
    indicator, whose first bars are NaN)."""
    defined = np.flatnonzero(~np.isnan(x))
    out = _nan(len(x))
    if len(defined):
        start = int(defined[0])
        out[start:] = ind.ema(x[start:], w)
    return out


def _rsi(ctx: Context, a: Sequence[Value]) -> Value:
    x, w = a
    if ctx.is_column(x, "close"):
        return ctx.cache.rsi(int(w))
    return ind.wilder_rsi(x, int(w))


def _bands(ctx: Context, x: FloatArray, w: int) -> tuple[FloatArray, FloatArray]:
    if ctx.is_column(x, "close"):
        return ctx.cache.bands(w)
    return ind.rolling_mean_std(x, w)


def _bb_upper(ctx: Context, a: Sequence[Value]) -> Value:
    mean, sd = _bands(ctx, a[0], int(a[1]))
    return mean + float(a[2]) * sd


def _bb_middle(ctx: Context, a: Sequence[Value]) -> Value:
    return _bands(ctx, a[0], int(a[1]))[0]


def _bb_lower(ctx: Context, a: Sequence[Value]) -> Value:
    mean, sd = _bands(ctx, a[0], int(a[1]))
    return mean - float(a[2]) * sd


def _highest(ctx: Context, a: Sequence[Value]) -> Value:
    x, w = a
    if ctx.is_column(x, "high"):
        return ctx.cache.highest(int(w))
    return ind.rolling_max(x, int(w))


def _lowest(ctx: Context, a: Sequence[Value]) -> Value:
    x, w = a
    if ctx.is_column(x, "low"):
        return ctx.cache.lowest(int(w))
    return ind.rolling_min(x, int(w))


def _shift_fn(ctx: Context, a: Sequence[Value]) -> Value:
    return _shift(a[0], int(a[1]))


def _change(ctx: Context, a: Sequence[Value]) -> Value:
    x = a[0]
    result: FloatArray = x - _shift(x, int(a[1]))
    return result


def _pct_change(ctx: Context, a: Sequence[Value]) -> Value:
    x = a[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        result: FloatArray = x / _shift(x, int(a[1])) - 1.0
    return result


def _abs(ctx: Context, a: Sequence[Value]) -> Value:
    return np.abs(a[0])


def _min(ctx: Context, a: Sequence[Value]) -> Value:
    return np.minimum(a[0], a[1])


def _max(ctx: Context, a: Sequence[Value]) -> Value:
    return np.maximum(a[0], a[1])


def _s(name: str) -> Arg:
    return Arg(name, "series")


def _w(name: str, default: int | None = None, minimum: int = 1) -> Arg:
    return Arg(name, "window", default, minimum)


def _core() -> list[Function]:
    from coinbt.engine.rules import _talib_core as t

    return [
        Function(
            "sma",
            (_s("x"), _w("window")),
            "series",
            "simple moving average of x over `window` bars (the engine's exact SMA; "
            "NaN before bar window-1)",
            _sma,
        ),
        Function(
            "ema",
            (_s("x"), _w("window")),
            "series",
            "exponential moving average, alpha = 2/(window+1), seeded with the simple mean "
            "of the first `window` values (the engine's EMA)",
            _ema,
        ),
        Function(
            "wma",
            (_s("x"), _w("window", None, 2)),
            "series",
            "linearly weighted moving average over `window` bars (TA-Lib WMA)",
            t.wma,
        ),
        Function(
            "rsi",
            (_s("x"), _w("period", 14)),
            "series",
            "Wilder's RSI over `period` bars, 0..100 (the engine's RSI)",
            _rsi,
        ),
        Function(
            "macd",
            (_s("x"), _w("fast", 12, 2), _w("slow", 26, 2), _w("signal", 9)),
            "series",
            "MACD line: EMA(fast) - EMA(slow) of x (TA-Lib MACD)",
            t.macd,
        ),
        Function(
            "macd_signal",
            (_s("x"), _w("fast", 12, 2), _w("slow", 26, 2), _w("signal", 9)),
            "series",
            "MACD signal line: EMA(signal) of the MACD line (TA-Lib MACD)",
            t.macd_signal,
        ),
        Function(
            "bb_upper",
            (_s("x"), _w("window", 20), Arg("k", "number", 2.0)),
            "series",
            "upper Bollinger band: rolling mean + k * population standard deviation "
            "(the engine's bands)",
            _bb_upper,
        ),
        Function(
            "bb_middle",
            (_s("x"), _w("window", 20)),
            "series",
            "middle Bollinger band: the rolling mean (the engine's bands)",
            _bb_middle,
        ),
        Function(
            "bb_lower",
            (_s("x"), _w("window", 20), Arg("k", "number", 2.0)),
            "series",
            "lower Bollinger band: rolling mean - k * population standard deviation",
            _bb_lower,
        ),
        Function(
            "atr",
            (_w("period", 14),),
            "series",
            "average true range of the bars over `period` (TA-Lib ATR, Wilder smoothing)",
            t.atr,
            inputs=("high", "low", "close"),
        ),
        Function(
            "stoch_k",
            (_w("k", 14), _w("smooth", 3)),
            "series",
            "slow stochastic %K: fast %K over `k` bars smoothed by an SMA of `smooth` "
            "(TA-Lib STOCH)",
            t.stoch_k,
            inputs=("high", "low", "close"),
        ),
        Function(
            "stoch_d",
            (_w("k", 14), _w("smooth", 3), _w("d", 3)),
            "series",
            "stochastic %D: an SMA of `d` bars of stoch_k (TA-Lib STOCH)",
            t.stoch_d,
            inputs=("high", "low", "close"),
        ),
        Function(
            "adx",
            (_w("period", 14, 2),),
            "series",
            "average directional index over `period` (TA-Lib ADX)",
            t.adx,
            inputs=("high", "low", "close"),
        ),
        Function(
            "cci",
            (_w("period", 20, 2),),
            "series",
            "commodity channel index over `period` (TA-Lib CCI)",
            t.cci,
            inputs=("high", "low", "close"),
        ),
        Function(
            "obv",
            (),
            "series",
            "on-balance volume (TA-Lib OBV on close and volume)",
            t.obv,
            inputs=("close", "volume"),
        ),
        Function(
            "highest",
            (_s("x"), _w("window")),
            "series",
            "max(x[i-window+1 .. i]), the current bar included (a Donchian upper channel "
            "of the previous bars is shift(highest(high, w), 1))",
            _highest,
        ),
        Function(
            "lowest",
            (_s("x"), _w("window")),
            "series",
            "min(x[i-window+1 .. i]), the current bar included",
            _lowest,
        ),
        Function(
            "shift",
            (_s("x"), _w("bars", 1)),
            "series",
            "x `bars` bars ago (NaN for the first bars); only the past can be shifted in",
            _shift_fn,
        ),
        Function("change", (_s("x"), _w("bars", 1)), "series", "x - shift(x, bars)", _change),
        Function(
            "pct_change", (_s("x"), _w("bars", 1)), "series", "x / shift(x, bars) - 1", _pct_change
        ),
        Function("abs", (Arg("x", "value"),), "series", "absolute value", _abs),
        Function(
            "min",
            (Arg("a", "value"), Arg("b", "value")),
            "series",
            "element-wise minimum (NaN if either is)",
            _min,
        ),
        Function(
            "max",
            (Arg("a", "value"), Arg("b", "value")),
            "series",
            "element-wise maximum (NaN if either is)",
            _max,
        ),
        Function(
            "cross_above",
            (Arg("a", "value"), Arg("b", "value")),
            "bool",
            "a crosses above b at bar i: a > b at i and a <= b at i-1, both defined at "
            "i-1 and i (values within 1e-10 relative count as equal, as in sma_cross)",
            _cross_above,
        ),
        Function(
            "cross_below",
            (Arg("a", "value"), Arg("b", "value")),
            "bool",
            "a crosses below b at bar i: a < b at i and a >= b at i-1, both defined at "
            "i-1 and i (the same tie rule)",
            _cross_below,
        ),
        Function(
            "rising",
            (_s("x"), _w("bars", 1)),
            "bool",
            "x above x `bars` bars ago (tie rule as cross_above)",
            _rising,
        ),
        Function(
            "falling",
            (_s("x"), _w("bars", 1)),
            "bool",
            "x below x `bars` bars ago (tie rule as cross_below)",
            _falling,
        ),
    ]


_CATALOGUE: dict[str, Function] | None = None


def catalogue() -> dict[str, Function]:
    """Every function by name: coinbt's own, then TA-Lib's (``ta_<name>`` where coinbt's own
    has the name: ``ta_ema`` is TA-Lib's EMA, ``ema`` the engine's)."""
    global _CATALOGUE
    if _CATALOGUE is None:
        from coinbt.engine.rules._talib import talib_functions

        found = {f.name: f for f in _core()}
        for f in talib_functions():
            if f.name in found:  # coinbt's own keeps the name; TA-Lib's stays reachable
                f = replace(f, name=f"ta_{f.name}")
            found.setdefault(f.name, f)
        _CATALOGUE = found
    return _CATALOGUE


def functions_json() -> list[dict[str, Any]]:
    """The catalogue as served by ``GET /functions``."""
    return [f.to_dict() for f in catalogue().values()]
