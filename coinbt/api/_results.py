"""A completed task's results loaded back from its artifacts and its ``Completed`` event: the
fills, the equity curve, the round trips (folded by the engine's ledger) and the bars it ran on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio
import numpy as np
from numpy.typing import NDArray

from coinbt.engine import Bars, Fills, Trades, ledger
from coinbt.errors import ArtifactNotFoundError, InvalidTransitionError
from coinbt.events import Completed, StoredEvent
from coinbt.lifecycle import Status
from coinbt.projections.status import TaskView
from coinbt.runtime import System

__all__ = ("Outcome", "load_bars", "load_outcome")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a completed task produced, and the event that recorded it."""

    view: TaskView
    completed: StoredEvent
    fills: Fills
    ts: NDArray[np.int64]  # every bar's time (epoch ms)
    equity: NDArray[np.float64]
    symbols: tuple[str, ...]
    last_closes: tuple[float, ...]

    @property
    def event(self) -> Completed:
        assert isinstance(self.completed.event, Completed)
        return self.completed.event

    def trades(self) -> Trades:
        return ledger(self.fills, self.symbols, self.last_closes).trades


async def load_outcome(system: System, task_id: str) -> Outcome:
    """The results of a completed task; ``InvalidTransitionError`` (400) naming the status for
    any other, ``ArtifactNotFoundError`` (404) when an artifact is missing."""
    view = await system.task(task_id)
    if view.status is not Status.COMPLETED:
        raise InvalidTransitionError(task_id, view.status, "export")
    events = await system.store.read_stream(task_id, after_version=view.version - 1)
    completed = events[-1] if events else None
    if completed is None or not isinstance(completed.event, Completed):
        raise ArtifactNotFoundError(f"tasks/{task_id}: no Completed event")
    event = completed.event
    ts, equity = await system.equity(task_id)
    array = await system.results.table(view, "fills")
    if event.positions:
        symbols = tuple(p.symbol for p in event.positions)
        closes = tuple(p.last_close for p in event.positions)
    else:
        symbols, closes = (event.symbol,), (event.last_close,)
    if array is not None:
        fills = await anyio.to_thread.run_sync(_fills_from_array, array, symbols)
    else:  # a log written before the fills artifact: the Filled events
        page = await system.fills(task_id, limit=max(1, view.num_fills))
        fills = _fills_from_rows(page.rows)
    return Outcome(view, completed, fills, ts, equity, symbols, closes)


def _fills_from_array(array: NDArray[Any], symbols: tuple[str, ...]) -> Fills:
    names = array.dtype.names or ()
    m = len(array)

    def column(name: str, dtype: Any) -> NDArray[Any]:
        out = (
            np.ascontiguousarray(array[name], dtype=dtype) if name in names else np.zeros(m, dtype)
        )
        out.setflags(write=False)
        return out

    if "symbol" in names and "asset" not in names:  # symbols by name: their index
        index = {s: i for i, s in enumerate(symbols)}
        asset = np.array([index.get(str(s), 0) for s in array["symbol"]], dtype=np.int16)
    else:
        asset = column("asset", np.int16)
    return Fills(
        column("bar", np.int64),
        column("ts", np.int64),
        column("side", np.int8),
        column("qty", np.float64),
        column("price", np.float64),
        column("fee", np.float64),
        column("reason", np.int8),
        asset,
    )


def _fills_from_rows(rows: list[dict[str, Any]]) -> Fills:
    z8 = np.zeros(len(rows), dtype=np.int8)
    return Fills(
        np.array([f["bar"] for f in rows], dtype=np.int64),
        np.array([f["ts"] for f in rows], dtype=np.int64),
        np.array([1 if f["side"] == "buy" else -1 for f in rows], dtype=np.int8),
        np.array([f["qty"] for f in rows], dtype=np.float64),
        np.array([f["price"] for f in rows], dtype=np.float64),
        np.array([f["fee"] for f in rows], dtype=np.float64),
        z8,
        np.zeros(len(rows), dtype=np.int16),
    )


async def load_assets(system: System, view: TaskView) -> list[tuple[str, Bars]]:
    """The bars the task ran on, per asset (symbol, bars): the same synthetic series (or
    portfolio of them), or its dataset's range (or its datasets', aligned on time)."""
    from coinbt import engine
    from coinbt.engine.portfolio import align
    from coinbt.specs import resolve

    spec = view.spec
    plan = await resolve(spec, system.catalog, max_bars=system.config.max_bars)

    def load() -> list[tuple[str, Bars]]:
        s = spec.data.synthetic
        if s is not None and s.symbols > 1:
            many = engine.synthetic_portfolio(
                s.bars, s.symbols, seed=s.seed, interval=s.interval, start_price=s.start_price
            )
            return list(many.items())
        if s is not None:
            bars = engine.synthetic(
                s.bars, seed=s.seed, interval=s.interval, start_price=s.start_price
            )
            return [(plan.symbol, bars)]
        if plan.assets:
            loaded = {
                sym: engine.load_bars(path).slice(plan.start_ms, plan.end_ms)
                for sym, path in plan.assets
            }
            symbols, aligned = align(loaded)
            return list(zip(symbols, aligned, strict=True))
        assert plan.dataset_path is not None
        bars = engine.load_bars(plan.dataset_path).slice(plan.start_ms, plan.end_ms)
        return [(plan.symbol, bars)]

    return await anyio.to_thread.run_sync(load)


async def load_bars(system: System, view: TaskView) -> Bars:
    """The (first asset's) bars the task ran on: its times and the benchmark's prices."""
    return (await load_assets(system, view))[0][1]
