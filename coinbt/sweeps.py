"""Sweep specs: decoding ``POST /sweeps`` bodies, expanding grids and checking every rule.

A sweep is a task whose :class:`~coinbt.events.TaskSpec` carries ``sweep``
(:class:`~coinbt.events.spec.SweepOptions`): the whole sweep spec is what ``Queued`` records.
The HTTP body is flat, like a backtest's spec with ``grid``, ``sort_by``, ``descending`` and
``walk_forward`` beside ``strategy`` and ``data`` (DESIGN section 11); :func:`decode_sweep` folds
those four into ``sweep``. Errors name the fields as the user wrote them (``grid.fast.step``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import msgspec

from coinbt import defaults
from coinbt.datasets import Catalog
from coinbt.errors import FieldError, SpecError
from coinbt.events import TaskSpec
from coinbt.events.spec import GridRange, ParamValue
from coinbt.specs import DataPlan, field_error, validate

__all__ = (
    "DEFAULT_MAX_COMBINATIONS",
    "SWEEP_FIELDS",
    "decode_sweep",
    "expand_grid",
    "sweep_grid",
    "trading_of",
    "validate_sweep",
)

DEFAULT_MAX_COMBINATIONS = defaults.MAX_COMBINATIONS
SWEEP_FIELDS = ("grid", "sort_by", "descending", "walk_forward")
"""The body's fields that make it a sweep (the rest is a backtest spec)."""

_json = msgspec.json.Decoder(dict[str, Any])


def decode_sweep(body: bytes) -> TaskSpec:
    """A ``POST /sweeps`` body as a task spec with ``sweep`` set. ``msgspec.DecodeError`` for
    malformed JSON (400); ``SpecError`` naming the field for a wrong shape (422)."""
    try:
        raw = _json.decode(body)
    except msgspec.ValidationError as e:
        raise SpecError("the body must be a JSON object: a sweep spec", field="") from e
    if "sweep" in raw:
        raise SpecError("give grid, sort_by and walk_forward at the top level", field="sweep")
    if "grid" not in raw:
        raise SpecError('a sweep needs a grid: {"fast": [5, 10], ...}', field="grid")
    options = {key: raw.pop(key) for key in SWEEP_FIELDS if key in raw}
    _check_axes(options["grid"])
    try:
        return msgspec.convert({**raw, "sweep": options}, TaskSpec)
    except msgspec.ValidationError as e:
        error = field_error(e)
        raise SpecError([FieldError(error.field.removeprefix("sweep."), error.message)]) from e


_Axis = list[ParamValue] | GridRange


def _check_axes(grid: object) -> None:
    """Each axis decoded on its own, so that an error names it (``grid.fast.step``): msgspec's
    own paths leave out mapping keys."""
    if not isinstance(grid, dict):
        return  # the whole decode names "grid"
    errors: list[FieldError] = []
    for key, axis in grid.items():
        try:
            msgspec.convert(axis, _Axis)
        except msgspec.ValidationError as e:
            error = field_error(e)
            where = error.field
            path = f"grid.{key}" + (where if not where or where.startswith("[") else f".{where}")
            errors.append(FieldError(path, error.message))
    if errors:
        raise SpecError(errors)


def expand_grid(
    grid: Mapping[str, list[ParamValue] | GridRange], max_values: int
) -> dict[str, list[ParamValue]]:
    """Each axis as a list: ranges expanded (``stop`` included). ``SpecError`` naming
    ``grid.NAME.step`` for a step of 0 or of the wrong sign, ``grid.NAME`` for an empty list or a
    range of more than ``max_values`` values, and ``grid`` for no axis at all."""
    if not grid:
        raise SpecError("name at least one parameter to sweep", field="grid")
    errors: list[FieldError] = []
    out: dict[str, list[ParamValue]] = {}
    for name, axis in grid.items():
        if not isinstance(axis, GridRange):
            if not axis:
                errors.append(FieldError(f"grid.{name}", "give at least one value"))
            out[name] = list(axis)
            continue
        try:
            out[name] = _expand_range(axis, max_values, f"grid.{name}")
        except SpecError as e:
            errors.extend(e.errors)
    if errors:
        raise SpecError(errors)
    return out


def _expand_range(axis: GridRange, max_values: int, field: str) -> list[ParamValue]:
    start, stop, step = axis.start, axis.stop, axis.step
    for key, value in (("start", start), ("stop", stop), ("step", step)):
        if not math.isfinite(value):
            raise SpecError("must be a finite number", field=f"{field}.{key}")
    if step == 0:
        raise SpecError("must not be 0", field=f"{field}.step")
    if (stop - start) * step < 0:
        direction = "positive" if stop > start else "negative"
        raise SpecError(
            f"must be {direction} to go from {start} to {stop}, got {step}", field=f"{field}.step"
        )
    steps = (stop - start) / step
    if not math.isfinite(steps):  # a span or a step so extreme that the count overflows
        raise SpecError(f"too many values; at most {max_values:,}", field=field)
    count = math.floor(steps + 1e-9) + 1
    if count > max_values:
        raise SpecError(f"{count:,} values; at most {max_values:,}", field=field)
    if all(isinstance(v, int) for v in (start, stop, step)):
        return [int(start + i * step) for i in range(count)]
    return [float(f"{start + i * step:.12g}") for i in range(count)]


def sweep_grid(spec: TaskSpec, max_combinations: int) -> dict[str, list[ParamValue]]:
    """The full grid of a sweep spec: its axes expanded, and the spec's ``params`` that the grid
    leaves out as one-value axes. ``SpecError`` (``grid``) past ``max_combinations``."""
    assert spec.sweep is not None
    grid = expand_grid(spec.sweep.grid, max_combinations)
    combinations = math.prod(len(values) for values in grid.values())
    if combinations > max_combinations:
        raise SpecError(
            f"{combinations:,} combinations; at most {max_combinations:,}", field="grid"
        )
    fixed = {k: [v] for k, v in spec.params.items() if k not in grid}
    return {**fixed, **grid}


async def validate_sweep(
    spec: TaskSpec, catalog: Catalog, *, max_bars: int, max_combinations: int
) -> DataPlan:
    """Check a sweep spec: the data, costs and limits as for a backtest, then the grid (every
    value typed and in range for the strategy, at least one valid combination, at most
    ``max_combinations``), ``sort_by``, and the walk-forward windows (at least one whole fold,
    each train window long enough for the grid). One ``SpecError`` naming the field."""
    from coinbt.engine.strategies import strategy_named
    from coinbt.executor.sweeps import plan_sweep

    assert spec.sweep is not None
    options = spec.sweep
    _checks_for_sweeps(spec)
    grid = sweep_grid(spec, max_combinations)
    _check_overridden(spec)
    # The data, costs and limits; a builtin strategy with its defaults (the grid may leave
    # them), a rules strategy with the grid's first values (its parameters are the names its
    # rules use).
    base = (
        {k: v[0] for k, v in grid.items() if k not in _TRADING_DEFAULTS}
        if spec.rules is not None
        else {}
    )
    plan = await validate(
        msgspec.structs.replace(spec, params=base, sweep=None), catalog, max_bars=max_bars
    )
    rules = (
        None
        if spec.rules is None
        else {k: v for k, v in msgspec.structs.asdict(spec.rules).items() if v is not None}
    )
    plan_sweep(
        spec.strategy,
        grid,
        plan.bars,
        1,
        rules=rules,
        trading=trading_of(spec),
        cash=spec.cash,
        fee_bps=spec.fee_bps,
        slippage_bps=spec.slippage_bps,
        fill=spec.fill,
        sort_by=options.sort_by,
    )
    if options.walk_forward is not None:
        import anyio

        from coinbt.engine.walkforward import parse_window, plan_folds

        wf = options.walk_forward
        train_ms = parse_window(wf.train, "walk_forward.train")
        test_ms = parse_window(wf.test, "walk_forward.test")
        ts, interval_ms = await anyio.to_thread.run_sync(_timestamps, spec, plan)
        if rules is not None:
            from coinbt.engine.rules import rules_strategy

            strategy = rules_strategy(rules, {k: v[0] for k, v in grid.items()})  # (no trading)
        else:
            strategy = strategy_named(spec.strategy)
        await anyio.to_thread.run_sync(
            lambda: plan_folds(strategy, grid, ts, interval_ms, train_ms, test_ms, wf.anchored)
        )
    return plan


_TRADING_DEFAULTS = {
    "direction": "long",
    "sl_stop": None,
    "tp_stop": None,
    "sl_trail": False,
    "size": None,
    "size_type": "all",
}


def trading_of(spec: TaskSpec) -> dict[str, Any]:
    """The spec's trading options that differ from the defaults (fixed for the whole sweep)."""
    return {
        name: getattr(spec, name, default)
        for name, default in _TRADING_DEFAULTS.items()
        if getattr(spec, name, default) != default
    }


def _checks_for_sweeps(spec: TaskSpec) -> None:
    """What a sweep cannot do: a portfolio (a sweep runs on one asset), and a walk-forward with
    shorts, stops or sizing (its out-of-sample runs use the long all-in model); refused by
    name rather than ignored."""
    from coinbt.specs import _n_assets

    assert spec.sweep is not None
    errors: list[FieldError] = []
    if _n_assets(spec) > 1:
        errors.append(FieldError("data", "a sweep runs on one asset, not a portfolio"))
    if spec.sweep.walk_forward is not None:
        errors += [
            FieldError(name, "a walk-forward runs long, all-in, without stops (for now)")
            for name in trading_of(spec)
        ]
        errors += [
            FieldError(f"grid.{name}", "a walk-forward grids strategy parameters (for now)")
            for name in spec.sweep.grid
            if name in _TRADING_DEFAULTS
        ]
    if errors:
        raise SpecError(errors)


def _check_overridden(spec: TaskSpec) -> None:
    """A builtin strategy's ``params`` that the grid also names are not run, but are recorded in
    ``Queued`` as given: each must still be typed and in range (``params.NAME``), as a
    backtest's would be."""
    from coinbt.engine.strategies import strategy_named
    from coinbt.engine.sweep import grid_values

    assert spec.sweep is not None
    overridden = {k: [v] for k, v in spec.params.items() if k in spec.sweep.grid}
    if spec.rules is not None or not overridden:
        return
    try:
        grid_values(strategy_named(spec.strategy), overridden)
    except SpecError as e:
        raise SpecError(
            [
                FieldError(f"params.{f.field.removeprefix('grid.').removesuffix('[0]')}", f.message)
                for f in e.errors
            ]
        ) from None


def _timestamps(spec: TaskSpec, plan: DataPlan) -> tuple[Any, int]:
    """The bars' timestamps and interval, without generating synthetic prices."""
    import numpy as np

    from coinbt.engine import load_bars, parse_interval
    from coinbt.engine.synthetic import DEFAULT_START_MS

    synthetic = spec.data.synthetic
    if synthetic is not None:
        interval = parse_interval(synthetic.interval)
        return DEFAULT_START_MS + interval * np.arange(synthetic.bars, dtype=np.int64), interval
    assert plan.dataset_path is not None
    bars = load_bars(plan.dataset_path).slice(plan.start_ms, plan.end_ms)
    return bars.ts, bars.interval_ms
