"""The strategy registry: each strategy's rule, parameters, schema and vectorized signals.

A strategy turns bars into two boolean arrays, ``entries`` and ``exits``: a signal at bar ``i`` uses
data up to and including bar ``i``'s close. The simulation (``simulate.py``) decides what a signal
does (an entry while long or an exit while flat is ignored).

Ties: comparing two floating-point quantities ``a`` and ``b`` that are computed (moving averages,
bands, RSI), ``a`` is *above* ``b`` when ``a - b > TIE_RTOL * |b|`` and *below* when
``a - b < -TIE_RTOL * |b|``; in between they are equal. This makes the rules independent of the
summation order (a flat market gives equal averages, not rounding noise that crosses back and
forth).
Comparisons of raw prices (Donchian channels) are exact.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from coinbt.engine._params import Number, Param, ParamError
from coinbt.engine.data import Bars
from coinbt.engine.indicators import IndicatorCache
from coinbt.engine.signals import Signals
from coinbt.errors import FieldError, SpecError

__all__ = ("STRATEGIES", "TIE_RTOL", "Param", "Strategy", "find_strategy", "strategy_names")

TIE_RTOL = 1e-10
"""Relative tolerance under which two computed quantities count as equal (see the module doc)."""

BoolArray = NDArray[np.bool_]
FloatArray = NDArray[np.float64]
Params = Mapping[str, Number]
SignalFn = Callable[[IndicatorCache, Params], tuple[BoolArray, BoolArray]]


def _no_rules(params: Params) -> list[FieldError]:
    return []


@dataclass(frozen=True)
class Strategy:
    """A named long-only rule with typed parameters. ``description`` states the rule exactly."""

    name: str
    description: str
    params: tuple[Param, ...]
    signal_fn: SignalFn = field(repr=False)
    lookback_fn: Callable[[Params], tuple[int, str | None]] = field(repr=False)
    rules_fn: Callable[[Params], list[FieldError]] = field(default=_no_rules, repr=False)
    source: str = "builtin"  # "builtin", "plugin" or "rules" (DESIGN.md section 10)
    provenance: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    signals_fn: Callable[[IndicatorCache, Params], Signals] | None = field(
        default=None, repr=False
    )  # all four signals (the short ones optional); None: signal_fn's two, no short signals

    def defaults(self) -> dict[str, Number]:
        return {p.name: p.default for p in self.params}

    def schema(self) -> dict[str, object]:
        """A JSON-schema-like object describing the parameters (for the API and the dashboard)."""
        return {
            "type": "object",
            "title": self.name,
            "description": self.description,
            "properties": {p.name: p.schema() for p in self.params},
            "required": [],
            "additionalProperties": False,
        }

    def check(
        self, params: Mapping[str, object] | None, prefix: str = "params."
    ) -> tuple[dict[str, Number], list[FieldError]]:
        """The parameters with defaults filled in, and every problem (not raised)."""
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            return {}, [FieldError(prefix.rstrip("."), "must be an object of parameters")]
        errors: list[FieldError] = []
        known = {p.name: p for p in self.params}
        for key in params:
            if key not in known:
                expected = ", ".join(known) if known else "none"
                message = f"unknown parameter for {self.name} (expected: {expected})"
                errors.append(FieldError(f"{prefix}{key}", message))
        values: dict[str, Number] = {}
        for p in self.params:
            try:
                values[p.name] = p.coerce(params[p.name]) if p.name in params else p.default
            except ParamError as e:
                errors.append(FieldError(f"{prefix}{p.name}", str(e)))
        if not errors:
            errors = [FieldError(prefix + e.field, e.message) for e in self.rules_fn(values)]
        return values, errors

    def validate(self, params: Mapping[str, object] | None = None) -> dict[str, Number]:
        """The parameters with defaults filled in; :class:`SpecError` (``params.<name>``) if any
        is unknown, of the wrong type (a bool is not an int), out of range, or breaks a rule
        between parameters (such as ``fast < slow``).
        """
        values, errors = self.check(params)
        if errors:
            raise SpecError(errors)
        return values

    def min_bars(self, params: Mapping[str, object] | None = None) -> int:
        """The fewest bars on which the rule can produce a signal."""
        return self.lookback_fn(self.validate(params))[0]

    def signals(
        self, bars: Bars | IndicatorCache, params: Mapping[str, object] | None = None
    ) -> tuple[BoolArray, BoolArray]:
        """``(entries, exits)``: boolean arrays as long as the bars (parameters validated)."""
        cache = bars if isinstance(bars, IndicatorCache) else _cache(bars)
        return self.signal_fn(cache, self.validate(params))

    def all_signals(self, cache: IndicatorCache, params: Params) -> Signals:
        """Every signal for validated ``params``: entries and exits, and the short signals where
        the strategy has them (None otherwise)."""
        if self.signals_fn is not None:
            return self.signals_fn(cache, params)
        entries, exits = self.signal_fn(cache, params)
        return Signals(entries, exits)


def _cache(bars: Bars) -> IndicatorCache:
    return IndicatorCache.of(bars)


# --- comparisons ------------------------------------------------------------------------------


def _above(a: FloatArray, b: FloatArray | float) -> BoolArray:
    result: BoolArray = (a - b) > TIE_RTOL * np.abs(b)
    return result


def _below(a: FloatArray, b: FloatArray | float) -> BoolArray:
    result: BoolArray = (a - b) < -TIE_RTOL * np.abs(b)
    return result


def _became(state: BoolArray, start: int, n: int) -> BoolArray:
    """True at ``i > start`` where ``state`` (given from bar ``start``) is true at ``i`` and
    false at ``i - 1``.
    """
    out = np.zeros(n, dtype=np.bool_)
    if start + 1 < n:
        np.greater(state[1:], state[:-1], out=out[start + 1 :])
    return out


def _crosses(a: FloatArray, b: FloatArray, start: int) -> tuple[BoolArray, BoolArray]:
    """Where ``a`` crosses above ``b`` and where it crosses below, both defined from ``start``."""
    n = len(a)
    entries = np.zeros(n, dtype=np.bool_)
    exits = np.zeros(n, dtype=np.bool_)
    if start + 1 < n:
        diff = a[start:] - b[start:]
        tol = np.abs(b[start:])
        tol *= TIE_RTOL
        above = diff > tol
        np.negative(diff, out=diff)
        below = diff > tol
        np.greater(above[1:], above[:-1], out=entries[start + 1 :])
        np.greater(below[1:], below[:-1], out=exits[start + 1 :])
    return entries, exits


# --- the strategies -------------------------------------------------------------------------


def _fast_slow(kind: str, fast: int, slow: int, max_window: int) -> tuple[Param, ...]:
    return (
        Param("fast", "integer", fast, 1, max_window, f"window of the fast {kind}, in bars"),
        Param("slow", "integer", slow, 2, max_window, f"window of the slow {kind}, in bars"),
    )


def _fast_below_slow(p: Params) -> list[FieldError]:
    if p["fast"] >= p["slow"]:
        return [FieldError("fast", f"must be less than slow ({p['slow']}), got {p['fast']}")]
    return []


def _sma_cross(c: IndicatorCache, p: Params) -> tuple[BoolArray, BoolArray]:
    slow = int(p["slow"])
    return _crosses(c.sma(int(p["fast"])), c.sma(slow), slow - 1)


def _ema_cross(c: IndicatorCache, p: Params) -> tuple[BoolArray, BoolArray]:
    slow = int(p["slow"])
    return _crosses(c.ema(int(p["fast"])), c.ema(slow), slow - 1)


def _rsi_reversion(c: IndicatorCache, p: Params) -> tuple[BoolArray, BoolArray]:
    period = int(p["period"])
    n = len(c.close)
    rsi = c.rsi(period)[period:]
    entries = _became(_below(rsi, float(p["lower"])), period, n)
    exits = _became(_above(rsi, float(p["upper"])), period, n)
    return entries, exits


def _lower_below_upper(p: Params) -> list[FieldError]:
    if p["lower"] >= p["upper"]:
        return [FieldError("lower", f"must be less than upper ({p['upper']}), got {p['lower']}")]
    return []


def _bollinger(c: IndicatorCache, p: Params) -> tuple[BoolArray, BoolArray]:
    window = int(p["window"])
    n = len(c.close)
    entries = np.zeros(n, dtype=np.bool_)
    exits = np.zeros(n, dtype=np.bool_)
    if window <= n:
        mean, sd = c.bands(window)
        close, mean, sd = c.close[window - 1 :], mean[window - 1 :], sd[window - 1 :]
        entries[window - 1 :] = _above(close, mean + float(p["k"]) * sd)
        exits[window - 1 :] = _below(close, mean)
    return entries, exits


def _donchian(c: IndicatorCache, p: Params) -> tuple[BoolArray, BoolArray]:
    n = len(c.close)
    entries = np.zeros(n, dtype=np.bool_)
    exits = np.zeros(n, dtype=np.bool_)
    window, exit_window = int(p["window"]), int(p["exit_window"])
    if window < n:
        np.greater(c.close[window:], c.highest(window)[window - 1 : -1], out=entries[window:])
    if exit_window < n:
        channel = c.lowest(exit_window)[exit_window - 1 : -1]
        np.less(c.close[exit_window:], channel, out=exits[exit_window:])
    return entries, exits


def _buy_and_hold(c: IndicatorCache, p: Params) -> tuple[BoolArray, BoolArray]:
    n = len(c.close)
    entries = np.zeros(n, dtype=np.bool_)
    entries[:1] = True
    return entries, np.zeros(n, dtype=np.bool_)


_MAX_WINDOW = 1_000_000

_STRATEGY_LIST = (
    Strategy(
        name="sma_cross",
        description=(
            "Simple moving-average crossover, long only. SMA_w[i] = mean(close[i-w+1..i]), defined "
            "from bar w-1. Entry at bar i when SMA_fast[i] > SMA_slow[i] and SMA_fast[i-1] <= "
            "SMA_slow[i-1]; exit when SMA_fast[i] < SMA_slow[i] and SMA_fast[i-1] >= SMA_slow[i-1] "
            "(both averages defined at i-1 and i; values within 1e-10 relative count as equal). "
            "Requires fast < slow."
        ),
        params=_fast_slow("simple moving average", 10, 30, _MAX_WINDOW),
        signal_fn=_sma_cross,
        lookback_fn=lambda p: (int(p["slow"]) + 1, "slow"),
        rules_fn=_fast_below_slow,
    ),
    Strategy(
        name="ema_cross",
        description=(
            "Exponential moving-average crossover, long only. EMA_w uses alpha = 2/(w+1), starts "
            "at bar w-1 as the simple mean of the first w closes, then EMA[i] = alpha*close[i] + "
            "(1-alpha)*EMA[i-1]. Entry when EMA_fast crosses above EMA_slow (EMA_fast[i] > "
            "EMA_slow[i] and EMA_fast[i-1] <= EMA_slow[i-1]); exit when it crosses below; both "
            "defined at i-1 and i, values within 1e-10 relative count as equal. "
            "Requires fast < slow."
        ),
        params=_fast_slow("exponential moving average", 12, 26, _MAX_WINDOW),
        signal_fn=_ema_cross,
        lookback_fn=lambda p: (int(p["slow"]) + 1, "slow"),
        rules_fn=_fast_below_slow,
    ),
    Strategy(
        name="rsi_reversion",
        description=(
            "RSI mean reversion, long only. Wilder's RSI over `period` bars (defined from bar "
            "period; average gain and loss seeded with simple means of the first `period` "
            "changes, then avg[i] = (avg[i-1]*(period-1) + x[i])/period; RSI = 100*G/(G+L), 50 "
            "when both are 0). Entry when RSI crosses below `lower` (RSI[i] < lower and "
            "RSI[i-1] >= lower); exit when it crosses above `upper` (RSI[i] > upper and "
            "RSI[i-1] <= upper); within 1e-10 relative of a level counts as on it. "
            "Requires lower < upper."
        ),
        params=(
            Param("period", "integer", 14, 2, _MAX_WINDOW, "RSI period, in bars"),
            Param(
                "lower",
                "number",
                30.0,
                0.0,
                100.0,
                "oversold level: entry when RSI crosses below it",
                exclusive_minimum=True,
            ),
            Param(
                "upper",
                "number",
                70.0,
                0.0,
                100.0,
                "overbought level: exit when RSI crosses above it",
                exclusive_minimum=True,
            ),
        ),
        signal_fn=_rsi_reversion,
        lookback_fn=lambda p: (int(p["period"]) + 2, "period"),
        rules_fn=_lower_below_upper,
    ),
    Strategy(
        name="bollinger_breakout",
        description=(
            "Bollinger-band breakout, long only. mid[i] = mean(close[i-w+1..i]) and sd[i] its "
            "population standard deviation, from bar w-1; upper = mid + k*sd. Entry at bar i when "
            "close[i] > upper[i]; exit when close[i] < mid[i] (values within 1e-10 relative count "
            "as equal). Entries while long are ignored, so a long stays open until the close "
            "falls below the middle band."
        ),
        params=(
            Param("window", "integer", 20, 2, _MAX_WINDOW, "band window, in bars"),
            Param(
                "k",
                "number",
                2.0,
                0.0,
                10.0,
                "band width in standard deviations",
                exclusive_minimum=True,
            ),
        ),
        signal_fn=_bollinger,
        lookback_fn=lambda p: (int(p["window"]), "window"),
    ),
    Strategy(
        name="donchian_breakout",
        description=(
            "Donchian-channel breakout, long only, with no look-ahead: the channels use the "
            "PREVIOUS bars only. Entry at bar i (i >= window) when close[i] > max(high[i-window.."
            "i-1]); exit at bar i (i >= exit_window) when close[i] < min(low[i-exit_window..i-1]). "
            "Exact comparisons of prices."
        ),
        params=(
            Param(
                "window",
                "integer",
                20,
                1,
                _MAX_WINDOW,
                "entry channel: highest high of the previous `window` bars",
            ),
            Param(
                "exit_window",
                "integer",
                10,
                1,
                _MAX_WINDOW,
                "exit channel: lowest low of the previous `exit_window` bars",
            ),
        ),
        signal_fn=_donchian,
        lookback_fn=lambda p: (
            max(int(p["window"]), int(p["exit_window"])) + 1,
            "window" if p["window"] >= p["exit_window"] else "exit_window",
        ),
    ),
    Strategy(
        name="buy_and_hold",
        description=(
            "Buy and hold: a single entry signal at the first bar (bar 0) and no exit; with "
            "fill=next_open it fills at bar 1's open, with fill=close at bar 0's close. The "
            "position is marked at the last close."
        ),
        params=(),
        signal_fn=_buy_and_hold,
        lookback_fn=lambda p: (1, None),
    ),
)

STRATEGIES: dict[str, Strategy] = {s.name: s for s in _STRATEGY_LIST}
"""Every strategy by name."""


def find_strategy(name: object) -> Strategy | None:
    """The builtin or plugin strategy called ``name`` (plugins: ``coinbt.engine.plugins``)."""
    if not isinstance(name, str):
        return None
    found = STRATEGIES.get(name)
    if found is None:
        from coinbt.engine.plugins import plugins

        found = plugins().get(name)
    return found


def strategy_names() -> list[str]:
    """The builtin strategies' names, then the plugins'."""
    from coinbt.engine.plugins import plugins

    return [*STRATEGIES, *plugins()]


def strategy_named(name: object, field_name: str = "strategy") -> Strategy:
    """The strategy called ``name``, or :class:`SpecError` listing the known ones."""
    found = find_strategy(name)
    if found is None:
        known = ", ".join(strategy_names())
        raise SpecError(f"unknown strategy {name!r} (known: {known})", field=field_name)
    return found


def describe(strategy: Strategy) -> dict[str, Any]:
    """Name, description and parameter schema (for ``GET /strategies``)."""
    return {"name": strategy.name, "description": strategy.description, "schema": strategy.schema()}
