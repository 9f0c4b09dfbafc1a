"""The execution model: entry and exit signals to fills and an equity curve, vectorized.

Long-only, all-in (DESIGN.md section 5). The position alternates flat -> long -> flat, so the
signals that change it are found with array operations, and the cash after each round trip is a
running product: ``cash_j = cash_{j-1} * growth_j``, ``growth_j = sell*(1-fee) / (buy*(1+fee))``.
Only per-trade and per-bar array work; no Python loop over bars.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ("CHUNK_BARS", "Simulation", "simulate")

CHUNK_BARS = 1 << 17
"""Bars per chunk of the equity curve; progress is reported between chunks of long runs."""

BUY, SELL = 1, -1

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]
Progress = Callable[[float], None]


@dataclass(frozen=True, slots=True)
class Simulation:
    """What the execution model produced (arrays owned by the caller from here on)."""

    bar: IntArray  # per fill: the bar it filled on
    side: NDArray[np.int8]  # BUY (1) or SELL (-1)
    qty: FloatArray
    price: FloatArray  # the fill price, slippage included
    fee: FloatArray
    equity: FloatArray  # per bar: cash + qty * close, after that bar's fills
    entry_cash: FloatArray  # per entry: the cash it spent (fee included)
    growth: FloatArray  # per closed round trip: cash after the exit / cash before the entry
    held_bars: int  # bars that closed with a position
    final_cash: float
    final_qty: float


def signal_bars(entries: BoolArray, exits: BoolArray) -> IntArray:
    """The bars whose signal changes the position: entry, exit, entry, ... (starting flat).

    An entry while long or an exit while flat is ignored; a bar with both an entry and an exit
    signal is treated as having neither.
    """
    change = entries.view(np.int8) - exits.view(np.int8)
    bars = change.nonzero()[0]
    if len(bars) == 0:
        return bars
    wanted = change[bars]
    previous = np.empty_like(wanted)
    previous[0] = SELL  # flat before the first bar
    previous[1:] = wanted[:-1]
    result: IntArray = bars[wanted != previous]
    return result


def _sides(m: int) -> NDArray[np.int8]:
    if m <= len(_SIDE_PATTERN):
        return _SIDE_PATTERN[:m]
    side = np.full(m, SELL, dtype=np.int8)
    side[0::2] = BUY
    side.setflags(write=False)
    return side


_SIDE_PATTERN = np.tile(np.array([BUY, SELL], dtype=np.int8), 1 << 16)
_SIDE_PATTERN.setflags(write=False)


def simulate(
    entries: BoolArray,
    exits: BoolArray,
    open_: FloatArray,
    close: FloatArray,
    *,
    cash: float,
    fee_rate: float,
    slippage_rate: float,
    fill: str,
    progress: Progress | None = None,
    span: tuple[float, float] = (0.0, 1.0),
) -> Simulation:
    """Fill the signals and build the equity curve.

    ``fill="next_open"``: a signal at bar t fills at bar t+1's open (none on the last bar);
    ``fill="close"``: at bar t's close. A buy pays ``price * (1 + slippage_rate)``, a sell receives
    ``price * (1 - slippage_rate)``; an entry buys ``qty = cash / (price * (1 + fee_rate))`` and
    pays ``qty * price * fee_rate`` in fees (its cash becomes exactly 0); an exit sells everything
    for ``qty * price * (1 - fee_rate)``. ``progress`` (if given) is called between chunks of a long
    equity curve with fractions in ``span``.
    """
    n = len(close)
    fill_bars = signal_bars(entries, exits)
    if fill == "next_open":
        fill_bars += 1
        if len(fill_bars) and fill_bars[-1] == n:
            fill_bars = fill_bars[:-1]
        price = open_[fill_bars]
    else:
        price = close[fill_bars]
    m = len(fill_bars)
    n_buys, n_sells = (m + 1) // 2, m // 2
    buy_price, sell_price = price[0::2], price[1::2]  # views: price becomes the fill price
    buy_price *= 1.0 + slippage_rate
    sell_price *= 1.0 - slippage_rate
    buy_cost = buy_price * (1.0 + fee_rate)  # cash spent per unit bought
    growth = sell_price * (1.0 - fee_rate)
    growth /= buy_cost[:n_sells]
    cash_path = np.concatenate(((cash,), growth))  # cash while flat: before each entry, after
    np.multiply.accumulate(cash_path, out=cash_path)  # each exit: a running product
    qty = cash_path[:n_buys] / buy_cost
    fill_qty = qty.repeat(2)[:m]
    fee = fill_qty * price
    fee *= fee_rate

    # Segment j holds the state after j fills: flat with cash, or long with qty and no cash.
    seg_cash = cash_path.repeat(2)[: m + 1]
    seg_cash[1::2] = 0.0
    seg_qty = np.zeros(m + 1)
    seg_qty[1::2] = qty
    bounds = np.concatenate(((0,), fill_bars, (n,)))
    lengths = bounds[1:] - bounds[:-1]
    equity = _equity(close, bounds, lengths, seg_cash, seg_qty, progress, span)
    return Simulation(
        bar=fill_bars,
        side=_sides(m),
        qty=fill_qty,
        price=price,
        fee=fee,
        equity=equity,
        entry_cash=cash_path[:n_buys],
        growth=growth,
        held_bars=int(np.add.reduce(lengths[1::2])),
        final_cash=float(seg_cash[-1]),
        final_qty=float(seg_qty[-1]),
    )


def _equity(
    close: FloatArray,
    bounds: IntArray,
    lengths: IntArray,
    seg_cash: FloatArray,
    seg_qty: FloatArray,
    progress: Progress | None,
    span: tuple[float, float],
) -> FloatArray:
    n = len(close)
    if n <= CHUNK_BARS:
        equity = seg_qty.repeat(lengths)
        equity *= close
        equity += seg_cash.repeat(lengths)
        return equity
    equity = np.empty(n)
    low, high = span
    for a in range(0, n, CHUNK_BARS):
        b = min(a + CHUNK_BARS, n)
        first = int(np.searchsorted(bounds, a, side="right")) - 1
        last = int(np.searchsorted(bounds, b, side="left"))
        edges = np.clip(bounds[first : last + 1], a, b)
        counts = np.diff(edges)
        part = equity[a:b]
        np.multiply(np.repeat(seg_qty[first:last], counts), close[a:b], out=part)
        part += np.repeat(seg_cash[first:last], counts)
        if progress is not None:
            progress(low + (high - low) * b / n)
    return equity
