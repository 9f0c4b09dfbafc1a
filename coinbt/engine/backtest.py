"""Running one backtest: validate, signal, simulate, measure."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from coinbt.engine.data import Bars
from coinbt.engine.indicators import IndicatorCache
from coinbt.engine.ledger import ledger
from coinbt.engine.metrics import compute_metrics, metrics_of
from coinbt.engine.portfolio import align
from coinbt.engine.result import BacktestResult, Fills
from coinbt.engine.simulate import CHUNK_BARS, simulate
from coinbt.engine.spec import BacktestSpec, ValidSpec, validate_spec
from coinbt.engine.trading import AssetSignals, Trading, trade

__all__ = ("Progress", "run")

Progress = Callable[[float], None]

_SIGNALS_DONE = 0.4
_EQUITY_DONE = 0.9


def run(
    spec: BacktestSpec,
    bars: Bars | Mapping[str, Bars] | Sequence[Bars],
    progress: Progress | None = None,
) -> BacktestResult:
    """Run ``spec`` on ``bars`` (DESIGN.md sections 5 and 5b).

    ``bars`` is one asset's :class:`Bars`, or a portfolio: a mapping of symbol to bars (or a
    list; assets named ``"0"``, ``"1"``, ...) sharing one cash account. A portfolio is aligned on
    the timestamps all its assets cover; a bar missing inside that range raises
    :class:`~coinbt.errors.SpecError` naming the asset (``data.datasets[i]``) and the time.

    Raises :class:`~coinbt.errors.SpecError` naming each bad field (including a window longer than
    the data). ``progress``, if given, is called with fractions of the work done (increasing,
    ending at 1.0): once at the end of a short run, and between chunks of a long one (at least
    ~10 times for a million bars). An exception raised by ``progress`` (such as
    :class:`~coinbt.errors.RunCancelledError`) stops the run and propagates.
    """
    if not isinstance(bars, Bars):
        symbols, aligned = align(bars)
        valid = validate_spec(spec, len(aligned[0]), n_assets=len(aligned))
        return execute_portfolio(valid, symbols, aligned, progress)
    valid = validate_spec(spec, len(bars))
    return execute(valid, bars, IndicatorCache.of(bars), progress)


def execute(
    valid: ValidSpec, bars: Bars, cache: IndicatorCache, progress: Progress | None = None
) -> BacktestResult:
    """Run a validated spec with a (possibly shared) indicator cache: ``run`` and ``sweep``
    both come here, so a sweep's rows equal single runs.
    """
    if not valid.plain:  # shorts, stops or sizing: the short signals matter too
        signals = _unpack(valid.strategy.all_signals(cache, valid.params))
        result = _traded(valid, ("",), [bars], [signals])
        if progress is not None:
            progress(1.0)
        return result
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
        bars=bars,
    )
    if progress is not None:
        progress(1.0)
    return result


def _zeros(m: int, dtype: type[np.generic]) -> NDArray[Any]:
    out = np.zeros(m, dtype=dtype)
    out.setflags(write=False)
    return out


def execute_portfolio(
    valid: ValidSpec, symbols: tuple[str, ...], bars: list[Bars], progress: Progress | None = None
) -> BacktestResult:
    """Run a validated spec on aligned assets sharing one cash account."""
    signals = []
    for b in bars:
        cache = IndicatorCache.of(b)
        signals.append(_unpack(valid.strategy.all_signals(cache, valid.params)))
    result = _traded(valid, symbols, bars, signals)
    if progress is not None:
        progress(1.0)
    return result


def _unpack(value: Any) -> AssetSignals:
    """A strategy's signals: ``(entries, exits)``, ``(entries, exits, short_entries,
    short_exits)`` or an object with those attributes. (Bars are attached by the caller.)"""
    if isinstance(value, tuple):
        parts = list(value) + [None] * (4 - len(value))
    else:
        parts = [getattr(value, k, None) for k in _SIGNALS]
    return AssetSignals(_EMPTY, _EMPTY, _EMPTY, _EMPTY, *parts)


_SIGNALS = ("entries", "exits", "short_entries", "short_exits")
_EMPTY: NDArray[np.float64] = np.empty(0)


def _traded(
    valid: ValidSpec, symbols: tuple[str, ...], bars: list[Bars], signals: list[AssetSignals]
) -> BacktestResult:
    options = Trading(
        cash=valid.cash,
        fee_rate=valid.fee_rate,
        slippage_rate=valid.slippage_rate,
        fill=valid.fill,
        direction=valid.direction,
        sl_stop=valid.sl_stop,
        tp_stop=valid.tp_stop,
        sl_trail=valid.sl_trail,
        size=valid.size,
        size_type=valid.size_type,
    )
    assets = [
        AssetSignals(
            b.open, b.high, b.low, b.close, s.entries, s.exits, s.short_entries, s.short_exits
        )
        for b, s in zip(bars, signals, strict=True)
    ]
    book = trade(assets, options)
    ts = bars[0].ts[book.bar]
    for arr in (book.bar, book.side, book.qty, book.price, book.fee, book.reason, book.asset):
        arr.setflags(write=False)
    book.equity.setflags(write=False)
    ts.setflags(write=False)
    fills = Fills(book.bar, ts, book.side, book.qty, book.price, book.fee, book.reason, book.asset)
    last_closes = tuple(float(b.close[-1]) for b in bars)
    trades = ledger(fills, symbols, last_closes).trades
    closed = trades.exit_bar >= 0
    metrics = metrics_of(
        book.equity,
        valid.cash,
        bars[0].interval_ms,
        num_trades=book.opened,
        trade_pnl=trades.pnl[closed],
        trade_returns=trades.ret[closed],
        held_bars=book.held_bars,
        fees=book.fee,
    )
    final_equity = float(book.equity[-1])
    return BacktestResult(
        spec=valid.spec,
        params=dict(valid.params),
        fills=fills,
        equity=book.equity,
        metrics=metrics,
        final_equity=final_equity,
        total_return=final_equity / valid.cash - 1.0,
        max_drawdown=float(metrics["max_drawdown"] or 0.0),
        num_fills=len(fills),
        num_trades=book.opened,
        total_fees=float(metrics["fees_paid"] or 0.0),
        final_qty=book.final_qty[0],
        final_cash=book.final_cash,
        last_close=last_closes[0],
        symbols=symbols,
        last_closes=last_closes if len(bars) > 1 else (),
        bars=bars[0],
        assets=tuple(bars) if len(bars) > 1 else (),
    )
