"""Parameter sweeps: every combination of a grid, sharing indicators, sorted by a metric."""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from coinbt.engine._params import Number, ParamError
from coinbt.engine.backtest import Progress, execute
from coinbt.engine.data import Bars
from coinbt.engine.indicators import IndicatorCache
from coinbt.engine.metrics import METRIC_NAMES
from coinbt.engine.spec import BacktestSpec, ValidSpec, validate_spec
from coinbt.engine.strategies import Strategy, strategy_named
from coinbt.errors import FieldError, SpecError

__all__ = ("SweepResult", "grid_values", "skip_reason", "sweep")


@dataclass(frozen=True, slots=True, eq=False)
class SweepResult:
    """The evaluated combinations, best first: each row holds the parameters, then the metrics.

    ``skipped`` counts the combinations that break a rule between parameters (such as
    ``fast >= slow``) or need more bars than the data has; ``skip_reasons`` counts them by reason.
    Rows whose ``sort_by`` metric is None (undefined) come last.
    """

    strategy: str
    param_names: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]
    evaluated: int
    skipped: int
    skip_reasons: dict[str, int]
    sort_by: str
    descending: bool

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def metric_names(self) -> tuple[str, ...]:
        return METRIC_NAMES

    @property
    def best(self) -> dict[str, Any] | None:
        return dict(self.rows[0]) if self.rows else None

    def to_dicts(self) -> list[dict[str, Any]]:
        """The rows (copies), best first."""
        return [dict(row) for row in self.rows]

    def to_pandas(self) -> Any:
        """The rows as a DataFrame, best first (the ``coinbt[pandas]`` extra)."""
        from coinbt.engine._frames import sweep_frame

        return sweep_frame(self)

    def to_dict(self, top: int | None = None) -> dict[str, Any]:
        rows = self.rows if top is None else self.rows[:top]
        return {
            "strategy": self.strategy,
            "params": list(self.param_names),
            "sort_by": self.sort_by,
            "descending": self.descending,
            "evaluated": self.evaluated,
            "skipped": self.skipped,
            "skip_reasons": dict(self.skip_reasons),
            "rows": [dict(row) for row in rows],
        }


def grid_values(
    strategy: Strategy, grid: Mapping[str, Sequence[object]]
) -> dict[str, list[Number]]:
    """Each grid parameter's distinct values, coerced and range-checked by the strategy;
    ``SpecError`` naming ``grid.<name>[i]`` otherwise. (Also used to split a grid across
    workers: coinbt.executor.sweeps.)"""
    if not isinstance(grid, Mapping):
        raise SpecError("must map parameter names to lists of values", field="grid")
    known = {p.name: p for p in strategy.params}
    errors: list[FieldError] = []
    values: dict[str, list[Number]] = {}
    for key, options in grid.items():
        param = known.get(key)
        if param is None and key in TRADING_GRID:
            values[key] = _trading_values(key, options, errors)
            continue
        if param is None:
            expected = ", ".join(known) if known else "none"
            errors.append(FieldError(f"grid.{key}", f"unknown parameter (expected: {expected})"))
            continue
        if isinstance(options, (str, bytes)) or not isinstance(options, Sequence) or not options:
            errors.append(FieldError(f"grid.{key}", "must be a non-empty list of values"))
            continue
        checked: list[Number] = []
        for i, option in enumerate(options):
            try:
                number = param.coerce(option)
            except ParamError as e:
                errors.append(FieldError(f"grid.{key}[{i}]", str(e)))
                continue
            if number not in checked:
                checked.append(number)
        values[key] = checked
    if errors:
        raise SpecError(errors)
    return values


TRADING_GRID = ("sl_stop", "tp_stop", "size")
"""Spec fields a grid may vary besides the strategy's parameters."""


def _trading_values(key: str, options: object, errors: list[FieldError]) -> list[Number]:
    if isinstance(options, (str, bytes)) or not isinstance(options, Sequence) or not options:
        errors.append(FieldError(f"grid.{key}", "must be a non-empty list of values"))
        return []
    checked: list[Number] = []
    for i, option in enumerate(options):
        if isinstance(option, bool) or not isinstance(option, (int, float)):
            errors.append(FieldError(f"grid.{key}[{i}]", f"must be a number, got {option!r}"))
        elif not math.isfinite(option) or option <= 0:
            errors.append(FieldError(f"grid.{key}[{i}]", f"must be positive, got {option!r}"))
        elif float(option) not in checked:
            checked.append(float(option))
    return checked


def skip_reason(error: FieldError) -> str:
    """A skip reason without the values, so that equal reasons are counted together."""
    message = re.sub(r"\s*\([^)]*\)", "", error.message.split(", got")[0])
    return f"{error.field}: {message}"


def sweep(
    strategy: str | Strategy,
    grid: Mapping[str, Sequence[object]],
    bars: Bars,
    *,
    cash: float = 10_000.0,
    fee_bps: float = 10.0,
    slippage_bps: float = 0.0,
    fill: str = "next_open",
    sort_by: str = "sharpe",
    descending: bool = True,
    progress: Progress | None = None,
    direction: str = "long",
    sl_stop: float | None = None,
    tp_stop: float | None = None,
    sl_trail: bool = False,
    size: float | None = None,
    size_type: str = "all",
) -> SweepResult:
    """Backtest every combination of ``grid`` (parameters not in it keep their defaults).

    Besides the strategy's parameters, a grid may vary ``sl_stop``, ``tp_stop`` and ``size``
    (the other trading options are fixed for the whole sweep: ``direction`` ... ``size_type``);
    those columns come after the parameters in each row.

    Each distinct indicator (say, each SMA window) is computed once and shared; every combination
    runs through the same code as :func:`~coinbt.engine.run`, so a row equals the single run.
    Combinations that break a rule between parameters or need more bars than the data has are
    skipped and counted. Raises :class:`SpecError` for an unknown strategy, parameter, metric or
    cost, a value of the wrong type or out of range (``grid.fast[2]``), or no valid combination.
    ``progress`` is called after each combination with the fraction done.
    """
    strat = strategy if isinstance(strategy, Strategy) else strategy_named(strategy)
    values = grid_values(strat, grid)
    rules = strat.provenance.get("rules")  # a rules strategy: its text goes into each spec
    options: dict[str, Any] = {
        "direction": direction,
        "sl_stop": sl_stop,
        "tp_stop": tp_stop,
        "sl_trail": sl_trail,
        "size": size,
        "size_type": size_type,
    }
    base = BacktestSpec(
        strat.name, strat.defaults(), cash, fee_bps, slippage_bps, fill, rules, **options
    )
    validate_spec(base)
    trading_keys = [k for k in values if k in TRADING_GRID]
    trading_combos = [
        dict(zip(trading_keys, combo, strict=True))
        for combo in itertools.product(*(values.pop(k) for k in trading_keys))
    ]
    checked = [_valid_options(base, combo) for combo in trading_combos]
    names = tuple(p.name for p in strat.params) + tuple(trading_keys)
    if sort_by not in METRIC_NAMES and sort_by not in names:
        raise SpecError(
            f"unknown metric or parameter {sort_by!r} (metrics: {', '.join(METRIC_NAMES)})",
            field="sort_by",
        )
    keys = list(values)
    combos = [
        (dict(zip(keys, combo, strict=True)), t)
        for combo in itertools.product(*values.values())
        for t in range(len(trading_combos))
    ]
    cache = IndicatorCache.of(bars)
    rows: list[dict[str, Any]] = []
    reasons: dict[str, int] = {}
    for i, (combo, t) in enumerate(combos):
        params, errors = strat.check(combo)
        needed, param = strat.lookback_fn(params) if not errors else (0, None)
        if not errors and len(bars) < needed:
            errors = [FieldError(f"params.{param}", f"needs at least {needed} bars")]
        if errors:
            reason = skip_reason(errors[0])
            reasons[reason] = reasons.get(reason, 0) + 1
        else:
            spec = dataclasses.replace(checked[t].spec, params=params)
            valid = dataclasses.replace(checked[t], strategy=strat, params=params, spec=spec)
            result = execute(valid, bars, cache)
            rows.append({**params, **trading_combos[t], **result.metrics})
        if progress is not None:
            progress((i + 1) / len(combos))
    skipped = len(combos) - len(rows)
    if not rows:
        summary = "; ".join(f"{n} x {reason}" for reason, n in reasons.items())
        raise SpecError(f"no valid parameter combination ({summary})", field="grid")
    ranked = [row for row in rows if row[sort_by] is not None]
    ranked.sort(key=lambda row: row[sort_by], reverse=descending)
    ranked.extend(row for row in rows if row[sort_by] is None)
    return SweepResult(
        strategy=strat.name,
        param_names=names,
        rows=tuple(ranked),
        evaluated=len(rows),
        skipped=skipped,
        skip_reasons=reasons,
        sort_by=sort_by,
        descending=descending,
    )


def _valid_options(base: BacktestSpec, combo: Mapping[str, Number]) -> ValidSpec:
    """``base`` with one combination of trading grid values, validated; a value that breaks a
    rule (``sl_stop`` >= 1, a percent ``size`` > 1, ...) is named as ``grid.<key>``."""
    spec = dataclasses.replace(base, **combo)  # type: ignore[arg-type]
    try:
        return validate_spec(spec)
    except SpecError as e:
        raise SpecError(
            [
                FieldError(f"grid.{x.field}" if x.field in combo else x.field, x.message)
                for x in e.errors
            ]
        ) from e
