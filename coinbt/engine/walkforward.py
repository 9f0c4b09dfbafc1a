"""Walk-forward analysis: optimize on a train window, trade the next test window, move on.

Folds are laid out on the bars' timestamps (docs/sweeps.md has a picture):

- fold k's test window is ``[t0 + train + k*test, t0 + train + (k+1)*test)``;
- its train window is the ``train`` before it (rolling), or everything from ``t0`` (anchored);
- only whole test windows count (the last one must end at or before the data does).

On each fold the grid is swept on the train bars, the best row by ``sort_by`` is picked, and
those parameters run on the test window. The out-of-sample run starts flat with the sweep's
cash at the first test bar; its indicators see the bars just before it (as many as the
parameters need: the strategy's lookback), so no test bar is lost to warm-up, and no signal
before the first test bar can open a position. The folds' out-of-sample equity curves are
stitched into one (each fold starting where the previous ended) and measured as one curve.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from coinbt.engine.backtest import execute
from coinbt.engine.data import Bars, parse_interval
from coinbt.engine.indicators import IndicatorCache
from coinbt.engine.metrics import CURVE_METRICS, curve_metrics
from coinbt.engine.spec import BacktestSpec, validate_spec
from coinbt.engine.strategies import Strategy, strategy_named
from coinbt.engine.sweep import grid_values, sweep
from coinbt.errors import SpecError

__all__ = (
    "CURVE_METRICS",
    "Fold",
    "FoldWindow",
    "WalkForwardResult",
    "curve_metrics",
    "fold_windows",
    "parse_window",
    "plan_folds",
    "walk_forward",
)

FloatArray = NDArray[np.float64]


def parse_window(text: object, field: str) -> int:
    """A window length such as ``"180d"`` or ``"12h"`` in milliseconds; ``SpecError`` naming
    ``field`` otherwise (units: m, h, d, w)."""
    if not isinstance(text, str):
        raise SpecError(f"must be a duration like '180d' or '12h', got {text!r}", field=field)
    try:
        return _window_ms(text)
    except SpecError as e:
        raise SpecError(
            f"must be a duration like '180d' or '12h' (units: m, h, d, w), got {text!r}",
            field=field,
        ) from e


def _window_ms(text: str) -> int:
    stripped = text.strip()
    if stripped.endswith("w") or stripped.endswith("d"):  # windows may exceed a bar's 366 days
        number = stripped[:-1].strip()
        if number.isascii() and number.isdigit() and 0 < int(number) <= 100_000:
            return int(number) * (604_800_000 if stripped.endswith("w") else 86_400_000)
    return parse_interval(text)


@dataclass(frozen=True, slots=True)
class FoldWindow:
    """Bar indexes of one fold: train ``[train_start, train_end)``, test ``[train_end,
    test_end)`` (the test window starts where the train window ends)."""

    train_start: int
    train_end: int
    test_end: int


def fold_windows(
    ts: NDArray[np.int64], interval_ms: int, train_ms: int, test_ms: int, anchored: bool
) -> list[FoldWindow]:
    """The folds that fit in ``ts`` (bars of ``interval_ms``; see the module docstring)."""
    if len(ts) == 0 or train_ms <= 0 or test_ms <= 0:
        return []
    t0 = int(ts[0])
    data_end = int(ts[-1]) + interval_ms  # the end of the last bar
    folds: list[FoldWindow] = []
    k = 0
    while True:
        test_start_ms = t0 + train_ms + k * test_ms
        test_end_ms = test_start_ms + test_ms
        if test_end_ms > data_end:
            return folds
        train_start_ms = t0 if anchored else test_start_ms - train_ms
        train_start, train_end, test_end = (
            int(np.searchsorted(ts, t, side="left"))
            for t in (train_start_ms, test_start_ms, test_end_ms)
        )
        if train_end > train_start and test_end > train_end:
            folds.append(FoldWindow(train_start, train_end, test_end))
        k += 1


@dataclass(frozen=True, slots=True)
class Fold:
    """One fold: its windows (bar indexes and epoch ms), the parameters chosen on train, the
    best train row's metrics (in sample) and the test window's (out of sample)."""

    index: int
    window: FoldWindow
    train_start_ms: int
    test_start_ms: int
    test_end_ms: int  # the last test bar's timestamp + the interval
    params: dict[str, Any]
    in_sample: dict[str, Any]
    out_of_sample: dict[str, Any]
    evaluated: int  # combinations evaluated on train

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "train": [self.window.train_start, self.window.train_end],
            "test": [self.window.train_end, self.window.test_end],
            "train_start_ms": self.train_start_ms,
            "test_start_ms": self.test_start_ms,
            "test_end_ms": self.test_end_ms,
            "params": dict(self.params),
            "in_sample": dict(self.in_sample),
            "out_of_sample": dict(self.out_of_sample),
            "evaluated": self.evaluated,
        }


@dataclass(frozen=True, slots=True, eq=False)
class WalkForwardResult:
    """Every fold, the stitched out-of-sample equity (``ts``, ``equity``) and its metrics, and
    the in-sample vs out-of-sample degradation (docs/sweeps.md)."""

    strategy: str
    sort_by: str
    anchored: bool
    folds: tuple[Fold, ...]
    ts: NDArray[np.int64]
    equity: FloatArray
    metrics: dict[str, float | None]
    degradation: dict[str, float | None]

    def to_dict(self, *, with_equity: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "strategy": self.strategy,
            "sort_by": self.sort_by,
            "anchored": self.anchored,
            "folds": [f.to_dict() for f in self.folds],
            "metrics": dict(self.metrics),
            "degradation": dict(self.degradation),
        }
        if with_equity:
            out["ts"] = self.ts.tolist()
            out["equity"] = self.equity.tolist()
        return out


def walk_forward(
    strategy: str | Strategy,
    grid: Mapping[str, Sequence[object]],
    bars: Bars,
    *,
    train: str | int,
    test: str | int,
    anchored: bool = False,
    cash: float = 10_000.0,
    fee_bps: float = 10.0,
    slippage_bps: float = 0.0,
    fill: str = "next_open",
    sort_by: str = "sharpe",
    descending: bool = True,
    progress: Callable[[float], None] | None = None,
) -> WalkForwardResult:
    """Walk-forward analysis of ``grid`` on ``bars`` (module docstring). ``train`` and ``test``
    are durations (``"180d"``) or milliseconds.

    Raises ``SpecError`` like :func:`~coinbt.engine.sweep` for a bad grid, and naming
    ``walk_forward.train``/``walk_forward.test`` when no whole fold fits in the data or a train
    window has too few bars for every combination of the grid.
    """
    strat = strategy if isinstance(strategy, Strategy) else strategy_named(strategy)
    train_ms = train if isinstance(train, int) else parse_window(train, "walk_forward.train")
    test_ms = test if isinstance(test, int) else parse_window(test, "walk_forward.test")
    windows = plan_folds(strat, grid, bars.ts, bars.interval_ms, train_ms, test_ms, anchored)
    rules = strat.provenance.get("rules")  # a rules strategy's text (None otherwise)
    validate_spec(
        BacktestSpec(strat.name, strat.defaults(), cash, fee_bps, slippage_bps, fill, rules)
    )
    folds: list[Fold] = []
    pieces: list[FloatArray] = []
    level = cash
    for index, window in enumerate(windows):
        train_bars = _rows(bars, window.train_start, window.train_end)
        table = sweep(
            strat,
            grid,
            train_bars,
            cash=cash,
            fee_bps=fee_bps,
            slippage_bps=slippage_bps,
            fill=fill,
            sort_by=sort_by,
            descending=descending,
        )
        best = table.rows[0]
        params = {name: best[name] for name in table.param_names}
        equity = _out_of_sample(strat, params, bars, window, cash, fee_bps, slippage_bps, fill)
        out_metrics = curve_metrics(equity, cash, bars.interval_ms)
        pieces.append(equity * (level / cash))
        level = float(pieces[-1][-1])
        interval = bars.interval_ms
        folds.append(
            Fold(
                index=index,
                window=window,
                train_start_ms=int(bars.ts[window.train_start]),
                test_start_ms=int(bars.ts[window.train_end]),
                test_end_ms=int(bars.ts[window.test_end - 1]) + interval,
                params=params,
                in_sample={k: v for k, v in best.items() if k not in params},
                out_of_sample=out_metrics,
                evaluated=table.evaluated,
            )
        )
        if progress is not None:
            progress((index + 1) / len(windows))
    stitched = np.concatenate(pieces)
    ts = bars.ts[windows[0].train_end : windows[-1].test_end]
    metrics = curve_metrics(stitched, cash, bars.interval_ms)
    return WalkForwardResult(
        strategy=strat.name,
        sort_by=sort_by,
        anchored=anchored,
        folds=tuple(folds),
        ts=ts,
        equity=stitched,
        metrics=metrics,
        degradation=degradation(folds, metrics),
    )


def plan_folds(
    strategy: Strategy,
    grid: Mapping[str, Sequence[object]],
    ts: NDArray[np.int64],
    interval_ms: int,
    train_ms: int,
    test_ms: int,
    anchored: bool,
) -> list[FoldWindow]:
    """The folds, checked: at least one whole fold, and every train window long enough for
    the grid's smallest lookback. ``SpecError`` naming the field otherwise."""
    values = grid_values(strategy, grid)
    windows = fold_windows(ts, interval_ms, train_ms, test_ms, anchored)
    if not windows:
        span_days = (int(ts[-1]) - int(ts[0])) / 86_400_000 if len(ts) else 0.0
        raise SpecError(
            f"no whole train + test window fits in the data ({span_days:.1f} days of bars): "
            "shorten train or test",
            field="walk_forward.train",
        )
    shortest = min(w.train_end - w.train_start for w in windows)
    needed = _smallest_lookback(strategy, values)
    if needed is not None and shortest < needed:
        raise SpecError(
            f"a train window holds {shortest:,} bars; the grid needs at least {needed:,} "
            "for its smallest combination",
            field="walk_forward.train",
        )
    return windows


def _smallest_lookback(strategy: Strategy, values: Mapping[str, list[Any]]) -> int | None:
    """The fewest bars any valid combination of the grid needs (None if none is valid)."""
    import itertools

    keys = list(values)
    smallest: int | None = None
    for combo in itertools.product(*values.values()):
        params, errors = strategy.check(dict(zip(keys, combo, strict=True)))
        if errors:
            continue
        needed, _ = strategy.lookback_fn(params)
        smallest = needed if smallest is None else min(smallest, needed)
    return smallest


def _rows(bars: Bars, start: int, end: int) -> Bars:
    return Bars._trusted(
        bars.ts[start:end],
        bars.open[start:end],
        bars.high[start:end],
        bars.low[start:end],
        bars.close[start:end],
        bars.volume[start:end],
        interval_ms=bars.interval_ms,
    )


def _out_of_sample(
    strategy: Strategy,
    params: dict[str, Any],
    bars: Bars,
    window: FoldWindow,
    cash: float,
    fee_bps: float,
    slippage_bps: float,
    fill: str,
) -> FloatArray:
    """The test window's equity: ``params`` run on the test bars with the lookback before them
    as warm-up, every signal before the first test bar dropped (the run starts flat)."""
    needed, _ = strategy.lookback_fn(params)
    start = max(0, window.train_end - max(needed, 1))
    warmup = window.train_end - start
    rules = strategy.provenance.get("rules")  # a rules strategy's text (None otherwise)
    valid = validate_spec(
        BacktestSpec(strategy.name, params, cash, fee_bps, slippage_bps, fill, rules)
    )

    def signals(cache: IndicatorCache, p: Mapping[str, Any]) -> Any:
        arrays = strategy.signal_fn(cache, p)
        masked = []
        for array in arrays:
            copy = np.array(array, copy=True)
            copy[:warmup] = False
            masked.append(copy)
        return tuple(masked)

    masked_strategy = dataclasses.replace(strategy, signal_fn=signals, signals_fn=None)
    valid = dataclasses.replace(valid, strategy=masked_strategy)
    window_bars = _rows(bars, start, window.test_end)
    result = execute(valid, window_bars, IndicatorCache.of(window_bars))
    return np.asarray(result.equity[warmup:], dtype=np.float64)


def degradation(
    folds: Sequence[Fold], stitched: Mapping[str, float | None]
) -> dict[str, float | None]:
    """In-sample vs out-of-sample: the mean of the folds' best train Sharpe and CAGR, the
    stitched out-of-sample ones, and their ratios (``sharpe_ratio``: OOS / IS Sharpe;
    ``efficiency``: OOS / IS CAGR, Pardo's walk-forward efficiency). None where undefined, and
    the ratios when the in-sample value is not positive."""

    def mean(key: str) -> float | None:
        values = [f.in_sample.get(key) for f in folds]
        numbers = [float(v) for v in values if v is not None]
        return sum(numbers) / len(numbers) if numbers else None

    is_sharpe, is_cagr = mean("sharpe"), mean("cagr")
    oos_sharpe, oos_cagr = stitched.get("sharpe"), stitched.get("cagr")

    def ratio(out: float | None, inside: float | None) -> float | None:
        if out is None or inside is None or inside <= 0:
            return None  # a ratio to a losing in-sample result means nothing
        value = out / inside
        return value if math.isfinite(value) else None

    return {
        "in_sample_sharpe": is_sharpe,
        "out_of_sample_sharpe": oos_sharpe,
        "sharpe_ratio": ratio(oos_sharpe, is_sharpe),
        "in_sample_cagr": is_cagr,
        "out_of_sample_cagr": oos_cagr,
        "efficiency": ratio(oos_cagr, is_cagr),
    }
