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

__all__ = ("FILL_MODES", "BacktestSpec", "FillMode", "ValidSpec", "validate_spec")

FillMode = Literal["next_open", "close"]
FILL_MODES: tuple[FillMode, ...] = ("next_open", "close")
_MAX_BPS = 10_000.0


@dataclass(frozen=True, slots=True)
class BacktestSpec:
    """One backtest: a strategy and its parameters, starting cash, costs and the fill rule.

    ``fee_bps`` and ``slippage_bps`` are in basis points (10 = 0.1 %); ``fill`` is ``"next_open"``
    (a signal at bar t fills at bar t+1's open) or ``"close"`` (at bar t's close). Nothing is
    checked until :func:`validate_spec` or ``run``.
    """

    strategy: str
    params: Mapping[str, Any] = field(default_factory=dict)
    cash: float = 10_000.0
    fee_bps: float = 10.0
    slippage_bps: float = 0.0
    fill: str = "next_open"
    rules: Mapping[str, str] | None = None  # with strategy="rules": entry, exit[, short_*]

    def to_dict(self) -> dict[str, Any]:
        out = {
            "strategy": self.strategy,
            "params": dict(self.params),
            "cash": self.cash,
            "fee_bps": self.fee_bps,
            "slippage_bps": self.slippage_bps,
            "fill": self.fill,
        }
        if self.rules is not None:
            out["rules"] = dict(self.rules)
        return out


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


def _number(value: object, name: str, errors: list[FieldError]) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        errors.append(FieldError(name, f"must be a number, got {value!r}"))
        return None
    number = float(value)
    if not math.isfinite(number):
        errors.append(FieldError(name, f"must be a finite number, got {value!r}"))
        return None
    return number


def validate_spec(spec: BacktestSpec, n_bars: int | None = None) -> ValidSpec:
    """Check every field of ``spec``; raise :class:`SpecError` naming each bad field.

    Rules: a known ``strategy``; valid ``params`` (``params.<name>``: types, ranges, rules such as
    fast < slow); ``cash`` > 0; ``0 <= fee_bps < 10000``; ``0 <= slippage_bps < 10000``; ``fill``
    one of next_open, close. With ``n_bars``, the data must be long enough for the strategy's
    longest window (the error names that parameter, e.g. ``params.slow``).
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
    return ValidSpec(strategy, params, cash, rates[0], rates[1], fill, spec)
