"""A finished run's fills, round-trip trades and equity curve, read from its artifacts.

A run's ``Completed`` records one columnar artifact, ``result`` (an ``.npz`` holding the equity,
fills and trades tables: ``coinbt.engine.columns``), with its sha256; a run recorded before that
records the three tables as three artifacts (``equity``, ``fills``, ``trades``), and a sweep its
``equity``: both forms are read. Artifacts are read through the artifact outbox, so a pending
upload answers ``ArtifactPendingError`` (503) and a lost one ``ArtifactLostError`` (404). A task
of an old log keeps its fills as ``Filled`` events: they are served from the log, and its trades
are folded from them by the same ledger the engine uses. A task that has not completed has no
fills or trades yet (an empty page) and no equity curve (``ArtifactNotFoundError``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import numpy as np
from numpy.typing import NDArray

from coinbt.engine.columns import fill_rows, load_array, load_arrays, trade_rows, trades_array
from coinbt.engine.ledger import ledger
from coinbt.engine.result import REASONS, Fills
from coinbt.errors import ArtifactNotFoundError
from coinbt.events import ArtifactRef, Filled
from coinbt.lifecycle import Status
from coinbt.projections.status import TaskView
from coinbt.store.base import EventStore

__all__ = ("Page", "Results")

_CACHED_BYTES = 64 * 1024 * 1024  # decoded artifacts kept (paging through fills reads once)


@dataclass(frozen=True, slots=True)
class Page:
    total: int
    rows: list[dict[str, Any]]


class Results:
    def __init__(self, store: EventStore, artifact: Callable[[ArtifactRef], Awaitable[bytes]]):
        self._store = store
        self._artifact = artifact
        self._cache: OrderedDict[str, dict[str, NDArray[Any]]] = OrderedDict()  # key -> tables
        self._cached = 0  # bytes

    async def fills(self, view: TaskView, offset: int, limit: int) -> Page:
        """Fills ``offset`` to ``offset + limit``: ``{"bar", "ts", "side", "qty", "price",
        "fee", "reason", "symbol"}`` (an old log's also carry their event's ``position``)."""
        if view.fills_logged:
            return await self._logged_fills(view, offset, limit)
        array = await self.table(view, "fills")
        if array is None:
            return Page(0, [])
        return Page(len(array), fill_rows(array, symbols_of(view), offset, limit))

    async def trades(self, view: TaskView, offset: int, limit: int | None) -> Page:
        """Round trips ``offset`` to ``offset + limit`` in the shape of ``Trades.to_dicts``."""
        array = await self.table(view, "trades")
        if array is not None:
            pass
        elif view.status is not Status.COMPLETED:
            return Page(0, [])
        else:  # completed before trades were an artifact: fold its fills
            array = await self._folded_trades(view)
        return Page(len(array), trade_rows(array, symbols_of(view), offset, limit))

    async def equity(self, view: TaskView) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        array = await self.table(view, "equity")
        if array is None:
            raise ArtifactNotFoundError(
                f"tasks/{view.task_id}: no equity curve (status {view.status})"
            )
        return array["ts"], array["equity"]

    async def table(self, view: TaskView, name: str) -> NDArray[Any] | None:
        """The run's ``equity``, ``fills`` or ``trades`` table: from its ``result`` artifact,
        or from the artifact of that name (a run recorded before ``result``, or a sweep's
        equity); None if the run recorded neither."""
        ref = view.artifacts.get("result")
        if ref is not None:
            return (await self._tables(ref, None)).get(name)
        ref = view.artifacts.get(name)
        if ref is None:
            return None
        return (await self._tables(ref, name))[name]

    async def _tables(self, ref: ArtifactRef, name: str | None) -> dict[str, NDArray[Any]]:
        """The tables of an artifact by name: a ``result`` (``name`` None) holds several, an
        older one-table artifact (``.npy``) the one table ``name``."""
        tables = self._cache.get(ref.key)
        if tables is not None:
            self._cache.move_to_end(ref.key)
            return tables
        data = await self._artifact(ref)  # checked against ref.sha256
        tables = await anyio.to_thread.run_sync(_decode, data, name)
        size = sum(array.nbytes for array in tables.values())
        if size <= _CACHED_BYTES // 4:  # a 10M-bar equity curve (160 MB) is not kept
            self._cache[ref.key] = tables
            self._cached += size
            while self._cached > _CACHED_BYTES:
                _, dropped = self._cache.popitem(last=False)
                self._cached -= sum(array.nbytes for array in dropped.values())
        return tables

    async def _logged_fills(self, view: TaskView, offset: int, limit: int) -> Page:
        total = view.num_fills
        if offset >= total:
            return Page(total, [])
        # The Filled events are contiguous in the stream, just before Completed.
        events = await self._store.read_stream(
            view.task_id,
            after_version=view.version - total - 1 + offset,
            limit=min(limit, total - offset),
        )
        rows = []
        for stored in events:
            fill = stored.event
            if isinstance(fill, Filled):
                rows.append(
                    {
                        "position": stored.position,
                        "bar": fill.bar,
                        "ts": fill.ts,
                        "side": fill.side,
                        "qty": fill.qty,
                        "price": fill.price,
                        "fee": fill.fee,
                        "reason": REASONS[0],
                        "symbol": fill.symbol,
                    }
                )
        return Page(total, rows)

    async def _folded_trades(self, view: TaskView) -> NDArray[Any]:
        if view.fills_logged:
            page = await self._logged_fills(view, 0, view.num_fills)
            rows: Sequence[dict[str, Any]] = page.rows
        else:
            array = await self.table(view, "fills")
            rows = [] if array is None else fill_rows(array, symbols_of(view))
        symbols = symbols_of(view)
        fills = _fills(rows, symbols)
        last_close = float((view.result or {}).get("last_close", 0.0) or 0.0)
        book = ledger(fills, symbols, [last_close] * len(symbols))
        bar_ts = dict(zip(fills.bar.tolist(), fills.ts.tolist(), strict=True))
        return trades_array(
            book.trades,
            lambda bars: np.array([bar_ts[b] for b in bars.tolist()], dtype=np.int64),
        )


def _decode(data: bytes, name: str | None) -> dict[str, NDArray[Any]]:
    return load_arrays(data) if name is None else {name: load_array(data)}


def symbols_of(view: TaskView) -> list[str]:
    """The run's assets in asset order (the index the artifacts' ``asset`` column holds)."""
    result = view.result or {}
    symbols = result.get("symbols")
    if symbols:
        return list(symbols)
    return [str(result.get("symbol", ""))]


def _fills(rows: Sequence[dict[str, Any]], symbols: Sequence[str]) -> Fills:
    index = {symbol: i for i, symbol in enumerate(symbols)}
    return Fills(
        bar=np.array([r["bar"] for r in rows], dtype=np.int64),
        ts=np.array([r["ts"] for r in rows], dtype=np.int64),
        side=np.array([1 if r["side"] == "buy" else -1 for r in rows], dtype=np.int8),
        qty=np.array([r["qty"] for r in rows], dtype=np.float64),
        price=np.array([r["price"] for r in rows], dtype=np.float64),
        fee=np.array([r["fee"] for r in rows], dtype=np.float64),
        reason=np.array([REASONS.index(r["reason"]) for r in rows], dtype=np.int8),
        asset=np.array([index.get(r["symbol"], 0) for r in rows], dtype=np.int16),
    )
