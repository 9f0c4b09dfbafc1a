"""Running one backtest: validate, signal, simulate, measure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from coinbt.engine.data import Bars
from coinbt.engine.indicators import IndicatorCache
from coinbt.engine.metrics import compute_metrics
from coinbt.engine.result import BacktestResult, Fills
from coinbt.engine.simulate import CHUNK_BARS, simulate
from coinbt.engine.spec import BacktestSpec, ValidSpec, validate_spec

__all__ = ("Progress", "run")

Progress = Callable[[float], None]

_SIGNALS_DONE = 0.4
_EQUITY_DONE = 0.9


def run(spec: BacktestSpec, bars: Bars, progress: Progress | None = None) -> BacktestResult:
    """Run ``spec`` on ``bars`` (DESIGN.md section 5 semantics).

    Raises :class:`~coinbt.errors.SpecError` naming each bad field (including a window longer than
    the data). ``progress``, if given, is called with fractions of the work done (increasing,
    ending at 1.0): once at the end of a short run, and between chunks of a long one (at least
    ~10 times for a million bars). An exception raised by ``progress`` (such as
    :class:`~coinbt.errors.RunCancelledError`) stops the run and propagates.
    """
    valid = validate_spec(spec, len(bars))
    return execute(valid, bars, IndicatorCache.of(bars), progress)


def execute(
    valid: ValidSpec, bars: Bars, cache: IndicatorCache, progress: Progress | None = None
) -> BacktestResult:
    """Run a validated spec with a (possibly shared) indicator cache: ``run`` and ``sweep``
    both come here, so a sweep's rows equal single runs.
    """
    entries, exits = valid.strategy.signal_fn(cache, valid.params)
    long_run = len(bars) > CHUNK_BARS
    if progress is not None and long_run:
        progress(_SIGNALS_DONE)
    sim = simulate(
        entries,
        exits,
        bars.open,
        bars.close,
        cash=valid.cash,
        fee_rate=valid.fee_rate,
        slippage_rate=valid.slippage_rate,
        fill=valid.fill,
        progress=progress if long_run else None,
        span=(_SIGNALS_DONE, _EQUITY_DONE),
    )
    metrics = compute_metrics(sim, valid.cash, bars.interval_ms)
    for arr in (sim.bar, sim.side, sim.qty, sim.price, sim.fee, sim.equity):
        arr.setflags(write=False)
    ts = bars.ts[sim.bar]
    ts.setflags(write=False)
    m = len(sim.bar)
    fills = Fills(
        sim.bar, ts, sim.side, sim.qty, sim.price, sim.fee, _zeros(m, np.int8), _zeros(m, np.int16)
    )
    final_equity = float(sim.equity[-1])
    result = BacktestResult(
        spec=valid.spec,
        params=dict(valid.params),
        fills=fills,
        equity=sim.equity,
        metrics=metrics,
        final_equity=final_equity,
        total_return=final_equity / valid.cash - 1.0,
        max_drawdown=float(metrics["max_drawdown"] or 0.0),  # always a float
        num_fills=len(fills),
        num_trades=(len(fills) + 1) // 2,
        total_fees=float(metrics["fees_paid"] or 0.0),  # always a float
        final_qty=sim.final_qty,
        final_cash=sim.final_cash,
        last_close=float(bars.close[-1]),
    )
    if progress is not None:
        progress(1.0)
    return result


def _zeros(m: int, dtype: type[np.generic]) -> NDArray[Any]:
    out = np.zeros(m, dtype=dtype)
    out.setflags(write=False)
    return out
