"""What to run: :class:`BacktestSpec` and its validation."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from coinbt.engine._params import Number
from coinbt.engine.rules.strategy import RULES_STRATEGY, rules_strategy
from coinbt.engine.strategies import Strategy, find_strategy, strategy_names
from coinbt.errors import FieldError, SpecError

__all__ = (
    "DIRECTIONS",
    "FILL_MODES",
    "SIZE_TYPES",
    "BacktestSpec",
    "Direction",
    "FillMode",
    "SizeType",
    "ValidSpec",
    "validate_spec",
)

FillMode = Literal["next_open", "close"]
FILL_MODES: tuple[FillMode, ...] = ("next_open", "close")
Direction = Literal["long", "short", "both"]
DIRECTIONS: tuple[Direction, ...] = ("long", "short", "both")
SizeType = Literal["all", "percent", "value", "amount", "target_percent"]
SIZE_TYPES: tuple[SizeType, ...] = ("all", "percent", "value", "amount", "target_percent")
_MAX_BPS = 10_000.0


@dataclass(frozen=True, slots=True)
class BacktestSpec:
    """One backtest: a strategy and its parameters, starting cash, costs, the fill rule,
    direction, stops and sizing.

    ``fee_bps`` and ``slippage_bps`` are in basis points (10 = 0.1 %); ``fill`` is ``"next_open"``
    (a signal at bar t fills at bar t+1's open) or ``"close"`` (at bar t's close). ``direction``
    is ``"long"``, ``"short"`` or ``"both"`` (stop and reverse); ``sl_stop`` / ``tp_stop`` are
    fractions of the entry fill price (None: no stop), ``sl_trail`` makes the stop loss trail the
    best price since entry; ``size_type`` is ``"all"`` (no ``size``), ``"percent"`` (of cash),
    ``"value"`` (cash amount), ``"amount"`` (units) or ``"target_percent"`` (of equity), with
    ``size`` its value (docs/engine.md). Nothing is checked until :func:`validate_spec` or ``run``.
    """

    strategy: str
    params: Mapping[str, Any] = field(default_factory=dict)
    cash: float = 10_000.0
    fee_bps: float = 10.0
    slippage_bps: float = 0.0
    fill: str = "next_open"
    rules: Mapping[str, str] | None = None  # with strategy="rules": entry, exit[, short_*]
    direction: str = "long"
    sl_stop: float | None = None
    tp_stop: float | None = None
    sl_trail: bool = False
    size: float | None = None
    size_type: str = "all"

    def to_dict(self) -> dict[str, Any]:
        """The spec's fields; the trading options only when they differ from the defaults, so a
        plain spec keeps its old shape."""
        out: dict[str, Any] = {
            "strategy": self.strategy,
            "params": dict(self.params),
            "cash": self.cash,
            "fee_bps": self.fee_bps,
            "slippage_bps": self.slippage_bps,
            "fill": self.fill,
        }
        if self.rules is not None:
            out["rules"] = dict(self.rules)
        for name, default in _TRADING_DEFAULTS:
            value = getattr(self, name)
            if value != default or type(value) is not type(default):
                out[name] = value
        return out


_TRADING_DEFAULTS: tuple[tuple[str, object], ...] = (
    ("direction", "long"),
    ("sl_stop", None),
    ("tp_stop", None),
    ("sl_trail", False),
    ("size", None),
    ("size_type", "all"),
)


@dataclass(frozen=True, slots=True)
class ValidSpec:
    """A checked spec: the strategy object, complete parameters and costs as rates."""

    strategy: Strategy
    params: dict[str, Number]
    cash: float
    fee_rate: float
    slippage_rate: float
    fill: FillMode
    spec: BacktestSpec
    direction: Direction = "long"
    sl_stop: float | None = None
    tp_stop: float | None = None
    sl_trail: bool = False
    size: float | None = None
    size_type: SizeType = "all"

    @property
    def plain(self) -> bool:
        """Long only, all-in, no stops: today's vectorized model applies (bit for bit)."""
        return (
            self.direction == "long"
            and self.sl_stop is None
            and self.tp_stop is None
            and self.size_type == "all"
        )


def _number(value: object, name: str, errors: list[FieldError]) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        errors.append(FieldError(name, f"must be a number, got {value!r}"))
        return None
    number = float(value)
    if not math.isfinite(number):
        errors.append(FieldError(name, f"must be a finite number, got {value!r}"))
        return None
    return number


def validate_spec(spec: BacktestSpec, n_bars: int | None = None, *, n_assets: int = 1) -> ValidSpec:
    """Check every field of ``spec``; raise :class:`SpecError` naming each bad field.

    Rules: a known ``strategy``; valid ``params`` (``params.<name>``: types, ranges, rules such as
    fast < slow); ``cash`` > 0; ``0 <= fee_bps < 10000``; ``0 <= slippage_bps < 10000``; ``fill``
    one of next_open, close; ``direction``, stops and sizing as DESIGN.md section 5b says
    (``sl_trail`` needs ``sl_stop``; ``size`` only and always with a size_type other than
    ``all``; ``percent`` not with ``both``; ``all`` not for ``n_assets`` > 1). With ``n_bars``,
    the data must be long enough for the strategy's longest window (the error names that
    parameter, e.g. ``params.slow``).
    """
    errors: list[FieldError] = []
    strategy = find_strategy(spec.strategy)
    params: dict[str, Number] = {}
    if spec.strategy == RULES_STRATEGY:
        try:
            strategy = rules_strategy(spec.rules, spec.params, n_bars)
        except SpecError as e:
            errors.extend(e.errors)
    elif spec.rules is not None:
        errors.append(FieldError("rules", 'rules go with "strategy": "rules"'))
    if strategy is None:
        if spec.strategy != RULES_STRATEGY:
            known = ", ".join([*strategy_names(), RULES_STRATEGY])
            errors.append(
                FieldError("strategy", f"unknown strategy {spec.strategy!r} (known: {known})")
            )
    else:
        params, param_errors = strategy.check(spec.params)
        errors.extend(param_errors)
    cash = _number(spec.cash, "cash", errors)
    if cash is not None and cash <= 0:
        errors.append(FieldError("cash", f"must be positive, got {spec.cash!r}"))
    rates = []
    for name in ("fee_bps", "slippage_bps"):
        bps = _number(getattr(spec, name), name, errors)
        if bps is not None and bps < 0:
            errors.append(FieldError(name, f"must not be negative, got {bps!r}"))
        elif bps is not None and bps >= _MAX_BPS:
            errors.append(FieldError(name, f"must be below 10000 (100 %), got {bps!r}"))
        rates.append(0.0 if bps is None else bps / _MAX_BPS)
    if spec.fill not in FILL_MODES:
        errors.append(FieldError("fill", f"must be next_open or close, got {spec.fill!r}"))
    trading = _check_trading(spec, errors)
    if n_assets > 1 and trading[5] == "all" and spec.size_type == "all":
        errors.append(
            FieldError(
                "size_type",
                f"all (every position spends all the cash) cannot share one account between "
                f"{n_assets} assets: use target_percent, percent, value or amount",
            )
        )
    if strategy is not None and not errors and n_bars is not None:  # (rules: checked above)
        needed, param = strategy.lookback_fn(params)
        if n_bars < needed:
            where = f"params.{param}" if param else "data"
            value = f" = {params[param]}" if param else ""
            errors.append(
                FieldError(
                    where,
                    f"{strategy.name} with {param or 'these parameters'}{value} needs at least "
                    f"{needed} bars; the data has {n_bars}",
                )
            )
    if errors or strategy is None or cash is None:
        raise SpecError(errors)
    fill: FillMode = "close" if spec.fill == "close" else "next_open"
    return ValidSpec(strategy, params, cash, rates[0], rates[1], fill, spec, *trading)


def _optional_fraction(value: object, name: str, errors: list[FieldError]) -> float | None:
    if value is None:
        return None
    number = _number(value, name, errors)
    if number is not None and number <= 0:
        errors.append(FieldError(name, f"must be positive, got {value!r}"))
        return None
    return number


def _check_trading(
    spec: BacktestSpec, errors: list[FieldError]
) -> tuple[Direction, float | None, float | None, bool, float | None, SizeType]:
    """Direction, stops and sizing (DESIGN.md section 5b); problems go to ``errors``."""
    direction: Direction = "long"
    if spec.direction in DIRECTIONS:
        direction = spec.direction
    else:
        errors.append(
            FieldError("direction", f"must be long, short or both, got {spec.direction!r}")
        )
    sl = _optional_fraction(spec.sl_stop, "sl_stop", errors)
    if sl is not None and sl >= 1:
        errors.append(FieldError("sl_stop", f"must be below 1 (100 %), got {spec.sl_stop!r}"))
        sl = None
    tp = _optional_fraction(spec.tp_stop, "tp_stop", errors)
    if tp is not None and tp >= 1 and direction != "long":
        errors.append(
            FieldError(
                "tp_stop",
                f"must be below 1 (100 %) when the direction can be short, got {spec.tp_stop!r}",
            )
        )
        tp = None
    trail = spec.sl_trail
    if not isinstance(trail, bool):
        errors.append(FieldError("sl_trail", f"must be true or false, got {trail!r}"))
        trail = False
    elif trail and spec.sl_stop is None:
        errors.append(FieldError("sl_trail", "a trailing stop needs sl_stop (the distance)"))
    size_type: SizeType = "all"
    if spec.size_type in SIZE_TYPES:
        size_type = spec.size_type
    else:
        known = ", ".join(SIZE_TYPES)
        errors.append(FieldError("size_type", f"must be one of {known}, got {spec.size_type!r}"))
    size: float | None = None
    if size_type == "all":
        if spec.size is not None:
            errors.append(
                FieldError(
                    "size", "size_type all spends all the cash: give no size, or a size_type"
                )
            )
    elif spec.size is None:
        errors.append(FieldError("size", f"size_type {size_type} needs a size"))
    else:
        size = _optional_fraction(spec.size, "size", errors)
        if size is not None and size_type in ("percent", "target_percent") and size > 1:
            errors.append(
                FieldError("size", f"a {size_type} size must be at most 1 (100 %), got {size!r}")
            )
    if size_type == "percent" and direction == "both":
        errors.append(
            FieldError(
                "size_type",
                "percent cannot size a reversal (direction both): use value, amount or "
                "target_percent",
            )
        )
    return direction, sl, tp, bool(trail), size, size_type
