"""Parameter sweeps split across an executor's workers: :func:`sweep_on`.

The grid is split along one parameter (the one with the most values): each of its values goes to
one chunk, balanced by the number of valid combinations (largest first, to the least loaded
chunk). Every chunk is an ordinary ``engine.sweep`` on a smaller grid, run in a worker process
(the local executor's processes, or Dask workers). The merged table is put back into the order
of the full grid's combinations and sorted the way ``engine.sweep`` sorts (a stable sort by the
metric, undefined values last), so it equals the single-process table row for row. Cancelling the
caller cancels every chunk, which stops its process.

The data goes to the workers either as a :class:`~coinbt.events.SyntheticSpec` (each worker
generates the same bytes itself: nothing to transfer) or as ``Bars`` in memory (staged once by
the executor: a temporary file for local processes, a broadcast ``scatter`` for Dask).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Protocol

import anyio

from coinbt.engine import METRIC_NAMES, BacktestSpec, Bars, Strategy, SweepResult, validate_spec
from coinbt.engine.strategies import strategy_named
from coinbt.engine.sweep import TRADING_GRID, grid_values, skip_reason
from coinbt.errors import FieldError, SpecError
from coinbt.events import SyntheticSpec
from coinbt.executor.base import JobError

__all__ = ("ChunkReport", "SweepExecutor", "SweepPlan", "plan_sweep", "sweep_on")

CHUNK_FUNCTION = "coinbt.executor._sweep_chunk:run_chunk"
_LOST = frozenset({"worker_crashed", "worker_lost"})  # the chunk did not fail: its process died


class SweepExecutor(Protocol):
    """What :func:`sweep_on` needs of an executor (the local one and Dask's have it)."""

    @property
    def workers(self) -> int: ...

    def stage_bars(self, bars: Bars) -> AbstractAsyncContextManager[Any]: ...

    async def run_call(
        self,
        name: str,
        fn: str,
        args: Mapping[str, Any],
        on_progress: Callable[[float], Any],
        *,
        bars: object = None,
    ) -> Any: ...


@dataclass(frozen=True, slots=True)
class SweepPlan:
    """How a sweep is split: validated, with everything the merge needs."""

    strategy: str
    param_names: tuple[str, ...]
    keys: tuple[str, ...]  # the grid's parameters, in grid order
    chunks: tuple[dict[str, list[Any]], ...]  # one grid per chunk
    chunk_combinations: tuple[int, ...]  # combinations per chunk (valid or not)
    valid: tuple[tuple[Any, ...], ...]  # the valid combinations' grid values, in grid order
    combinations: int
    skip_reasons: dict[str, int]


@dataclass(frozen=True, slots=True)
class ChunkReport:
    """One finished chunk: where its time went (seconds) and which process ran it."""

    index: int
    evaluated: int
    data_s: float  # generating or loading the bars in the worker
    sweep_s: float  # engine.sweep itself
    wall_s: float  # from submitting to the result being back (includes transfer and queueing)
    pid: int


def plan_sweep(
    strategy: str | Strategy,
    grid: Mapping[str, Sequence[object]],
    bars: int,
    chunks: int,
    *,
    cash: float = 10_000.0,
    fee_bps: float = 10.0,
    slippage_bps: float = 0.0,
    fill: str = "next_open",
    sort_by: str = "sharpe",
    rules: Mapping[str, str] | None = None,
    trading: Mapping[str, Any] | None = None,
) -> SweepPlan:
    """Validate a sweep the way ``engine.sweep`` does (the same ``SpecError``s, in the same order)
    and split it into at most ``chunks`` chunks for data of ``bars`` bars. ``rules``: the
    conditions of a ``rules`` strategy, whose parameters are the grid's. ``trading``: the
    trading options fixed for the sweep (``direction`` ... ``size_type``); the grid may vary
    ``sl_stop``, ``tp_stop`` and ``size`` too (``engine.sweep``'s ``TRADING_GRID``)."""
    strat = _strategy(strategy, grid, rules)
    if rules is None and strategy_named(strat.name) is not strat:
        raise SpecError("a split sweep runs registered strategies only", field="strategy")
    values = grid_values(strat, grid)
    base = BacktestSpec(
        strat.name, strat.defaults(), cash, fee_bps, slippage_bps, fill, rules, **(trading or {})
    )
    validate_spec(base)
    trading_keys = [k for k in values if k in TRADING_GRID]
    trading_combos = list(itertools.product(*(range(len(values[k])) for k in trading_keys)))
    for t in trading_combos:  # a bad stop or size is an error, as in engine.sweep
        _check_options(base, {k: values[k][i] for k, i in zip(trading_keys, t, strict=True)})
    names = tuple(p.name for p in strat.params) + tuple(trading_keys)
    if sort_by not in METRIC_NAMES and sort_by not in names:
        raise SpecError(
            f"unknown metric or parameter {sort_by!r} (metrics: {', '.join(METRIC_NAMES)})",
            field="sort_by",
        )
    keys = tuple(values)
    strategy_keys = [k for k in keys if k not in TRADING_GRID]
    # Which combinations engine.sweep will skip, and why (the same checks, in the same order:
    # the strategy's combinations, and inside each every trading combination).
    valid: list[tuple[Any, ...]] = []
    valid_per_position: list[list[int]] = [[0] * len(values[k]) for k in keys]
    axis_of = {k: a for a, k in enumerate(keys)}
    reasons: dict[str, int] = {}
    total = 0
    indexes = [range(len(values[k])) for k in strategy_keys]
    for position in itertools.product(*indexes):
        total += len(trading_combos)
        combo = {k: values[k][i] for k, i in zip(strategy_keys, position, strict=True)}
        params, errors = strat.check(combo)
        needed, param = strat.lookback_fn(params) if not errors else (0, None)
        if not errors and bars < needed:
            errors = [FieldError(f"params.{param}", f"needs at least {needed} bars")]
        if errors:
            reason = skip_reason(errors[0])
            reasons[reason] = reasons.get(reason, 0) + len(trading_combos)
            continue
        for t in trading_combos:
            chosen = {**params, **{k: values[k][i] for k, i in zip(trading_keys, t, strict=True)}}
            valid.append(tuple(chosen[k] for k in keys))
            for k, i in (
                *zip(strategy_keys, position, strict=True),
                *zip(trading_keys, t, strict=True),
            ):
                valid_per_position[axis_of[k]][i] += 1
    if not valid:
        summary = "; ".join(f"{n} x {reason}" for reason, n in reasons.items())
        raise SpecError(f"no valid parameter combination ({summary})", field="grid")
    grids, sizes = _split(values, keys, valid_per_position, max(1, chunks))
    return SweepPlan(
        strategy=strat.name,
        param_names=names,
        keys=keys,
        chunks=tuple(grids),
        chunk_combinations=tuple(sizes),
        valid=tuple(valid),
        combinations=total,
        skip_reasons=reasons,
    )


def _check_options(base: BacktestSpec, combo: Mapping[str, Any]) -> None:
    """``engine.sweep``'s check of one combination of trading grid values (``grid.sl_stop``)."""
    try:
        validate_spec(dataclasses.replace(base, **combo))
    except SpecError as e:
        raise SpecError(
            [
                FieldError(f"grid.{x.field}" if x.field in combo else x.field, x.message)
                for x in e.errors
            ]
        ) from e


def _strategy(
    strategy: str | Strategy, grid: Mapping[str, Sequence[object]], rules: Mapping[str, str] | None
) -> Strategy:
    """The strategy a sweep runs: a registered one, or the rules strategy over the grid's
    parameters (each one's first value its default)."""
    if isinstance(strategy, Strategy):
        return strategy
    if rules is None:
        return strategy_named(strategy)
    from coinbt.engine.rules import rules_strategy

    firsts = {k: v[0] for k, v in grid.items() if isinstance(v, Sequence) and v}
    return rules_strategy(rules, firsts)


def _split(
    values: Mapping[str, list[Any]],
    keys: tuple[str, ...],
    valid_per_position: list[list[int]],
    chunks: int,
) -> tuple[list[dict[str, list[Any]]], list[int]]:
    """Split along the parameter with the most values: its values with at least one valid
    combination go to chunks, largest first onto the least loaded one."""
    if not keys:
        return [{}], [1]
    axis = max(range(len(keys)), key=lambda a: (len(values[keys[a]]), -a))
    split_key = keys[axis]
    weights = valid_per_position[axis]
    useful = [i for i, w in enumerate(weights) if w > 0]
    count = min(chunks, len(useful))
    loads = [0] * count
    members: list[list[int]] = [[] for _ in range(count)]
    for i in sorted(useful, key=lambda i: (-weights[i], i)):
        target = min(range(count), key=lambda c: (loads[c], c))
        loads[target] += weights[i]
        members[target].append(i)
    others = 1
    for k in keys:
        if k != split_key:
            others *= len(values[k])
    grids: list[dict[str, list[Any]]] = []
    sizes: list[int] = []
    for chosen in members:
        chosen.sort()
        grids.append(
            {k: [values[k][i] for i in chosen] if k == split_key else list(values[k]) for k in keys}
        )
        sizes.append(len(chosen) * others)
    return grids, sizes


async def sweep_on(
    executor: SweepExecutor,
    strategy: str | Strategy,
    grid: Mapping[str, Sequence[object]],
    data: Bars | SyntheticSpec,
    *,
    chunks: int | None = None,
    cash: float = 10_000.0,
    fee_bps: float = 10.0,
    slippage_bps: float = 0.0,
    fill: str = "next_open",
    sort_by: str = "sharpe",
    descending: bool = True,
    progress: Callable[[float], Any] | None = None,
    on_chunk: Callable[[ChunkReport], Any] | None = None,
    name: str = "sweep",
    reruns: int = 2,
    rules: Mapping[str, str] | None = None,
    trading: Mapping[str, Any] | None = None,
) -> SweepResult:
    """``engine.sweep`` split into ``chunks`` chunks (default: the executor's worker count) run
    on ``executor``'s workers; the same :class:`~coinbt.engine.SweepResult`, row for row.

    Raises ``SpecError`` before anything runs, exactly where ``engine.sweep`` would, and
    ``JobError`` if a chunk fails (the others are stopped). A chunk whose process died or whose
    Dask worker was lost is run again, up to ``reruns`` times: a lost chunk is re-run, not lost.
    ``progress(fraction)`` and ``on_chunk(report)`` are called on the event loop as chunks
    advance and finish. The chunks run as ``{name}-{i}/{n}`` (unique among concurrent sweeps
    when ``name`` is, as the executor's ``running_pids`` needs).
    """
    size = len(data) if isinstance(data, Bars) else data.bars
    plan = plan_sweep(
        strategy,
        grid,
        size,
        chunks if chunks is not None else executor.workers,
        cash=cash,
        fee_bps=fee_bps,
        slippage_bps=slippage_bps,
        fill=fill,
        sort_by=sort_by,
        rules=rules,
        trading=trading,
    )
    base: dict[str, Any] = {
        "strategy": plan.strategy,
        "cash": cash,
        "fee_bps": fee_bps,
        "slippage_bps": slippage_bps,
        "fill": fill,
        "sort_by": sort_by,
        "descending": descending,
    }
    if rules is not None:
        base["rules"] = dict(rules)
    if trading:
        base["trading"] = dict(trading)
    if isinstance(data, SyntheticSpec):
        base["synthetic"] = {
            "bars": data.bars,
            "seed": data.seed,
            "interval": data.interval,
            "start_price": data.start_price,
        }
    done = [0.0] * len(plan.chunks)
    total = sum(plan.chunk_combinations)
    outputs: list[dict[str, Any] | None] = [None] * len(plan.chunks)
    failure: list[JobError] = []
    staging: AbstractAsyncContextManager[Any] = (
        executor.stage_bars(data) if isinstance(data, Bars) else nullcontext(None)
    )

    async def run_chunk(index: int, staged: object) -> None:
        def report(fraction: float) -> None:
            done[index] = fraction * plan.chunk_combinations[index]
            if progress is not None:
                progress(sum(done) / total)

        started = time.perf_counter()
        for attempt in range(reruns + 1):
            try:
                output = await executor.run_call(
                    f"{name}-{index + 1}/{len(plan.chunks)}",
                    CHUNK_FUNCTION,
                    {**base, "grid": plan.chunks[index]},
                    report,
                    bars=staged,
                )
                break
            except JobError as e:
                if e.error_type in _LOST and attempt < reruns:
                    report(0.0)
                    continue
                if not failure:
                    failure.append(e)
                tg.cancel_scope.cancel()
                return
        outputs[index] = output
        report(1.0)
        if on_chunk is not None:
            on_chunk(
                ChunkReport(
                    index=index,
                    evaluated=int(output["evaluated"]),
                    data_s=float(output["data_s"]),
                    sweep_s=float(output["sweep_s"]),
                    wall_s=time.perf_counter() - started,
                    pid=int(output["pid"]),
                )
            )

    async with staging as staged, anyio.create_task_group() as tg:
        for index in range(len(plan.chunks)):
            tg.start_soon(run_chunk, index, staged)
    if failure:
        raise failure[0]
    return merge(plan, [o for o in outputs if o is not None], sort_by, descending)


def merge(
    plan: SweepPlan, outputs: Sequence[Mapping[str, Any]], sort_by: str, descending: bool
) -> SweepResult:
    """The chunks' rows as one table, in ``engine.sweep``'s order."""
    by_values: dict[tuple[Any, ...], dict[str, Any]] = {}
    for output in outputs:
        for row in output["rows"]:
            by_values[tuple(row[k] for k in plan.keys)] = dict(row)
    if len(by_values) != len(plan.valid) or any(v not in by_values for v in plan.valid):
        raise RuntimeError(
            f"the chunks evaluated {len(by_values)} combinations, the plan has {len(plan.valid)}"
        )
    rows = [by_values[v] for v in plan.valid]
    ranked = [row for row in rows if row[sort_by] is not None]
    ranked.sort(key=lambda row: row[sort_by], reverse=descending)
    ranked.extend(row for row in rows if row[sort_by] is None)
    return SweepResult(
        strategy=plan.strategy,
        param_names=plan.param_names,
        rows=tuple(ranked),
        evaluated=len(rows),
        skipped=plan.combinations - len(rows),
        skip_reasons=dict(plan.skip_reasons),
        sort_by=sort_by,
        descending=descending,
    )
