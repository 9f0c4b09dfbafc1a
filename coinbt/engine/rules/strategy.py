"""A rule set (``spec.rules`` and its numeric ``params``) as a :class:`Strategy`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from coinbt.engine._params import Number, Param
from coinbt.engine.indicators import IndicatorCache
from coinbt.engine.rules._compile import Compiled, RuleSyntaxError, compile_rule
from coinbt.engine.rules._eval import evaluate
from coinbt.engine.rules.catalogue import COLUMNS, MAX_WINDOW
from coinbt.engine.signals import Signals
from coinbt.engine.strategies import BoolArray, Params, Strategy
from coinbt.errors import FieldError, SpecError

__all__ = ("RULES_STRATEGY", "RULE_FIELDS", "check_rules", "rules_strategy")

RULES_STRATEGY = "rules"
RULE_FIELDS = ("entry", "exit", "short_entry", "short_exit")
_REQUIRED = ("entry", "exit")
_NUMBER_LIMIT = 1e15


def _numbers(params: object, errors: list[FieldError]) -> dict[str, int | float]:
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        errors.append(FieldError("params", "must be an object of numbers"))
        return {}
    out: dict[str, int | float] = {}
    for key, value in params.items():
        if not isinstance(key, str) or not key.isidentifier() or key.startswith("_"):
            errors.append(FieldError(f"params.{key}", "a parameter name is a plain identifier"))
        elif key in COLUMNS or key.lower() in ("true", "false"):
            errors.append(FieldError(f"params.{key}", f"{key!r} is taken (a column or a constant)"))
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            errors.append(FieldError(f"params.{key}", f"must be a number, got {value!r}"))
        elif isinstance(value, float) and not abs(value) <= _NUMBER_LIMIT:
            errors.append(FieldError(f"params.{key}", f"must be a finite number, got {value!r}"))
        else:
            out[key] = value
    return out


def check_rules(
    rules: object, params: object, n_bars: int | None = None
) -> tuple[dict[str, Compiled], dict[str, int | float], list[FieldError]]:
    """Every rule compiled, the parameters, and every problem (``rules.entry`` with a column)."""
    errors: list[FieldError] = []
    values = _numbers(params, errors)
    compiled: dict[str, Compiled] = {}
    if not isinstance(rules, Mapping):
        errors.append(
            FieldError("rules", 'the "rules" strategy needs "rules": {"entry": ..., "exit": ...}')
        )
        return compiled, values, errors
    for key in rules:
        if key not in RULE_FIELDS:
            expected = ", ".join(RULE_FIELDS)
            errors.append(FieldError(f"rules.{key}", f"unknown rule (expected: {expected})"))
    for key in RULE_FIELDS:
        text = rules.get(key)
        if text is None:
            if key in _REQUIRED:
                errors.append(FieldError(f"rules.{key}", "missing: give a condition"))
            continue
        try:
            compiled[key] = compile_rule(text, values, n_bars)
        except RuleSyntaxError as e:
            errors.append(FieldError(f"rules.{key}", e.message, e.column))
    if ("short_entry" in compiled) != ("short_exit" in compiled) and not errors:
        missing = "short_exit" if "short_entry" in compiled else "short_entry"
        errors.append(FieldError(f"rules.{missing}", "short rules come in pairs: give both"))
    return compiled, values, errors


def _params(compiled: Mapping[str, Compiled], values: Mapping[str, Number]) -> tuple[Param, ...]:
    windows: dict[str, int] = {}
    ranges: dict[str, tuple[float, float]] = {}
    for c in compiled.values():
        for name, (least, _) in c.param_windows.items():
            windows[name] = max(least, windows.get(name, least))
        for name, span in c.param_ranges.items():
            old = ranges.get(name, span)
            ranges[name] = (max(span[0], old[0]), min(span[1], old[1]))
    out: list[Param] = []
    for name, value in values.items():
        if name in windows:
            out.append(Param(name, "integer", value, windows[name], MAX_WINDOW, "a window (bars)"))
        elif name in ranges:
            lowest, highest = ranges[name]
            out.append(Param(name, "integer", value, int(lowest), int(highest), "a whole number"))
        elif isinstance(value, int):
            limit = int(_NUMBER_LIMIT)
            out.append(Param(name, "integer", value, -limit, limit, "a rule parameter"))
        else:
            out.append(
                Param(name, "number", value, -_NUMBER_LIMIT, _NUMBER_LIMIT, "a rule parameter")
            )
    return tuple(out)


def _lookback(compiled: Mapping[str, Compiled]) -> Any:
    literal = max((v for c in compiled.values() for v, _ in c.literal_windows), default=1)
    names = sorted({n for c in compiled.values() for n in c.param_windows})

    def lookback(p: Params) -> tuple[int, str | None]:
        needed, which = literal, None
        for name in names:
            if int(p[name]) > needed:
                needed, which = int(p[name]), name
        return needed, which

    return lookback


def describe_rules(rules: Mapping[str, str]) -> str:
    return "; ".join(f"{k}: {rules[k]}" for k in RULE_FIELDS if rules.get(k) is not None)


def rules_strategy(rules: object, params: object, n_bars: int | None = None) -> Strategy:
    """The :class:`Strategy` running ``rules`` with ``params`` as its parameters (their values
    the defaults, so a sweep grids over them); :class:`SpecError` naming every bad field."""
    compiled, values, errors = check_rules(rules, params, n_bars)
    if errors:
        raise SpecError(errors)
    assert isinstance(rules, Mapping)
    keys = tuple(compiled)
    nodes = tuple(compiled[k].node for k in keys)

    def all_signals(cache: IndicatorCache, p: Params) -> Signals:
        arrays = dict(zip(keys, evaluate(nodes, p, cache), strict=True))
        return Signals(
            arrays["entry"], arrays["exit"], arrays.get("short_entry"), arrays.get("short_exit")
        )

    long_nodes = (compiled["entry"].node, compiled["exit"].node)

    def signal_fn(cache: IndicatorCache, p: Params) -> tuple[BoolArray, BoolArray]:
        entries, exits = evaluate(long_nodes, p, cache)  # the short rules are not needed
        return entries, exits

    text = {k: str(rules[k]) for k in keys}
    return Strategy(
        name=RULES_STRATEGY,
        description=describe_rules(text),
        params=_params(compiled, values),
        signal_fn=signal_fn,
        lookback_fn=_lookback(compiled),
        source="rules",
        provenance={"source": "rules", "rules": text},
        signals_fn=all_signals,
    )
