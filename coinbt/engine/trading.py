"""The execution model for shorts, stops, sizing and portfolios (DESIGN.md section 5b).

A loop over trades, not bars: for each position, the bar it ends on is found with numpy over the
remaining bars (the next exit signal with a bisection, the first bar that reaches a stop with a
blocked scan), so the Python work grows with the number of fills. Several assets share one cash
account: their events are taken in bar order, on each bar the closing fills (exits, covers,
stops) before the opening ones (entries, reversals), each group in asset order.

Each asset's fill *bars* follow from its own signals and stops; only the quantities depend on
the shared cash (and a buy that cash cannot pay for at all is rejected, which the loop handles
as it comes).
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from dataclasses import dataclass
from itertools import chain

import numpy as np
from numpy.typing import NDArray

__all__ = ("MIN_UNITS", "AssetSignals", "Book", "Trading", "trade")

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

MIN_UNITS = 1e-8
"""Orders for fewer units than this are rejected."""

SIGNAL, STOP_LOSS, TAKE_PROFIT, TRAILING_STOP = 0, 1, 2, 3  # indexes into result.REASONS
LONG, SHORT = 1, -1
_NEVER = 1 << 62


@dataclass(frozen=True, slots=True)
class Trading:
    """The options of one run (validated): rates as fractions, stops None when off."""

    cash: float
    fee_rate: float
    slippage_rate: float
    fill: str
    direction: str
    sl_stop: float | None
    tp_stop: float | None
    sl_trail: bool
    size: float | None
    size_type: str


@dataclass(frozen=True, slots=True)
class AssetSignals:
    """One asset's bars and its strategy's signals (at the bar they are computed on)."""

    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    entries: BoolArray
    exits: BoolArray
    short_entries: BoolArray | None = None
    short_exits: BoolArray | None = None


@dataclass(frozen=True, slots=True)
class Book:
    """What the model produced: fills in time order (closing before opening on a bar) and the
    portfolio's equity curve."""

    bar: IntArray
    side: NDArray[np.int8]
    qty: FloatArray
    price: FloatArray
    fee: FloatArray
    reason: NDArray[np.int8]
    asset: NDArray[np.int16]
    equity: FloatArray
    final_cash: float
    final_qty: tuple[float, ...]
    held_bars: int  # bars that closed with any position open
    opened: int  # positions opened (a reversal opens one)


class _Asset:
    """One asset's fill-bar candidates and its stop search."""

    def __init__(self, s: AssetSignals, t: Trading) -> None:
        n = len(s.close)
        self.n = n
        self.open, self.high, self.low = s.open, s.high, s.low
        self.close_mode = t.fill == "close"
        le, lx = s.entries, s.exits
        se = s.exits if s.short_entries is None else s.short_entries
        sx = s.entries if s.short_exits is None else s.short_exits
        if not self.close_mode:  # a signal at bar t fills at bar t+1's open
            le, lx, se, sx = (_shift(a) for a in (le, lx, se, sx))
        self.base = s.close if self.close_mode else s.open
        d = t.direction
        if d == "long":
            open_long = le & ~lx
            exit_long = lx & ~le
            open_short = exit_short = np.zeros(n, dtype=np.bool_)
            rev_long = rev_short = open_short
        elif d == "short":
            open_short = se & ~sx
            exit_short = sx & ~se
            open_long = exit_long = np.zeros(n, dtype=np.bool_)
            rev_long = rev_short = open_long
        else:
            open_long = le & ~se
            open_short = se & ~le
            rev_long, rev_short = open_short, open_long  # reversal out of long / out of short
            exit_long = (lx & ~le) | open_short
            exit_short = (sx & ~se) | open_long
        long_bars, short_bars = np.flatnonzero(open_long), np.flatnonzero(open_short)
        merged = np.concatenate((long_bars, short_bars))
        sides = np.concatenate(
            (np.full(len(long_bars), LONG, np.int8), np.full(len(short_bars), SHORT, np.int8))
        )
        order = np.argsort(merged, kind="stable")
        self.open_bars: list[int] = merged[order].tolist()
        self.open_base: list[float] = self.base[merged[order]].tolist()
        self.open_sides: list[int] = sides[order].tolist()
        exit_long_bars, exit_short_bars = np.flatnonzero(exit_long), np.flatnonzero(exit_short)
        self.exits = {LONG: exit_long_bars.tolist(), SHORT: exit_short_bars.tolist()}
        self.reverses = {LONG: rev_long, SHORT: rev_short}
        self.sl, self.tp, self.trail = t.sl_stop, t.tp_stop, t.sl_trail
        self.stops = self.sl is not None or self.tp is not None
        self.slip = t.slippage_rate
        self.known: dict[int, dict[int, tuple[int, int, float, bool]]] = {
            LONG: self._precompute(LONG, long_bars, exit_long_bars),
            SHORT: self._precompute(SHORT, short_bars, exit_short_bars),
        }

    def next_open(self, start: int) -> tuple[int, int]:
        """The first bar >= ``start`` with an opening signal, and its side (_NEVER if none)."""
        i = bisect_left(self.open_bars, start)
        if i < len(self.open_bars):
            return self.open_bars[i], self.open_sides[i]
        return _NEVER, 0

    def _precompute(
        self, side: int, opens: IntArray, exits: IntArray
    ) -> dict[int, tuple[int, int, float, bool]]:
        """The exit events of the positions the signals alone would open (an open that follows
        an exit, or the first), all at once; others are searched when the loop meets them."""
        if len(opens) == 0:
            return {}
        n = self.n
        count = np.searchsorted(exits, opens)  # exits before each open
        primary = np.ones(len(opens), dtype=np.bool_)
        primary[1:] = count[1:] > count[:-1]
        opens, count = opens[primary], count[primary]
        has_exit = count < len(exits)
        x = np.full(len(opens), _NEVER, dtype=np.int64)
        x[has_exit] = exits[count[has_exit]]
        end = np.minimum(x + 1 if self.close_mode else x, n)
        base = self.base[opens]
        price = base * (1.0 + self.slip) if side == LONG else base * (1.0 - self.slip)
        bar = np.full(len(opens), -1, dtype=np.int64)
        reason = np.zeros(len(opens), dtype=np.int8)
        fill = np.full(len(opens), np.nan)
        if self.stops:
            bar, reason, fill = self._stops_batch(side, opens + 1, end, price)
        stopped = bar >= 0
        signal_exit = ~stopped & has_exit
        fill[signal_exit] = self.base[x[signal_exit]]  # a signal event carries its bar's price
        rev = np.zeros(len(opens), dtype=np.bool_)
        rev[has_exit] = self.reverses[side][x[has_exit]]
        ev_bar = np.where(stopped, bar, x)
        rev &= ~stopped
        return dict(
            zip(
                opens.tolist(),
                zip(
                    ev_bar.tolist(),
                    reason.tolist(),
                    fill.tolist(),
                    rev.tolist(),
                    strict=True,
                ),
                strict=True,
            )
        )

    def _stops_batch(
        self, side: int, starts: IntArray, ends: IntArray, prices: FloatArray
    ) -> tuple[IntArray, NDArray[np.int8], FloatArray]:
        """For each row, the first bar in [start, end) at which a stop fires (-1: none), the
        reason and the fill price: a blocked scan of all rows at once."""
        n, m = self.n, len(starts)
        low, high = self.low, self.high
        sl, tp, trail = self.sl, self.tp, self.trail
        k = np.nan if sl is None else (1.0 - sl if side == LONG else 1.0 + sl)
        fixed = prices * k
        tp_level = np.full(m, np.nan)
        if tp is not None:
            tp_level = prices * (1.0 + tp) if side == LONG else prices * (1.0 - tp)
        out_bar = np.full(m, -1, dtype=np.int64)
        out_level = fixed.copy()
        peak = prices.copy()
        a = starts.copy()
        rows = np.flatnonzero(starts < ends)
        width = 8
        while len(rows):
            idx = a[rows, None] + np.arange(width)
            valid = idx < ends[rows, None]
            np.minimum(idx, n - 1, out=idx)
            lo, hi = low[idx], high[idx]
            level: FloatArray
            run: FloatArray | None = None
            if sl is not None:
                if trail:
                    acc = np.maximum if side == LONG else np.minimum
                    run = acc.accumulate(hi if side == LONG else lo, axis=1)
                    ref = np.empty_like(run)
                    ref[:, 0] = peak[rows]
                    acc(run[:, :-1], peak[rows, None], out=ref[:, 1:])
                    level = ref * k
                else:
                    level = fixed[rows, None]
                hit = lo <= level if side == LONG else hi >= level
                if tp is not None:
                    hit |= (
                        hi >= tp_level[rows, None] if side == LONG else lo <= tp_level[rows, None]
                    )
            else:
                hit = hi >= tp_level[rows, None] if side == LONG else lo <= tp_level[rows, None]
            hit &= valid
            j = hit.argmax(axis=1)
            got = hit[np.arange(len(rows)), j]
            found = rows[got]
            out_bar[found] = a[found] + j[got]
            if trail and run is not None:
                out_level[found] = level[got, j[got]]
                acc = np.maximum if side == LONG else np.minimum
                peak[rows] = acc(peak[rows], run[:, -1])
            done = got | ~valid[:, -1]
            a[rows] += width
            rows = rows[~done]
            width = min(width * 2, 1024)
        reason = np.zeros(m, dtype=np.int8)
        fill = np.full(m, np.nan)
        rows = np.flatnonzero(out_bar >= 0)
        t = out_bar[rows]
        o, lo, hi = self.open[t], low[t], high[t]
        sl_at, tp_at = out_level[rows], tp_level[rows]  # NaN when off: every test is false
        if side == LONG:
            at_open_sl, at_open_tp = o <= sl_at, o >= tp_at
            inside_sl = lo <= sl_at
        else:
            at_open_sl, at_open_tp = o >= sl_at, o <= tp_at
            inside_sl = hi >= sl_at
        # DESIGN.md 5b step 2, first match: (a) SL at the open, (b) TP at the open, (c) SL at
        # its level, (d) TP at its level
        at_open_tp &= ~at_open_sl
        inside_sl &= ~(at_open_sl | at_open_tp)
        sl_reason = TRAILING_STOP if trail else STOP_LOSS
        reason[rows] = np.where(at_open_sl | inside_sl, sl_reason, TAKE_PROFIT)
        fill[rows] = np.where(at_open_sl | at_open_tp, o, np.where(inside_sl, sl_at, tp_at))
        return out_bar, reason, fill

    def exit_event(
        self, side: int, entry: int, price: float, start: int
    ) -> tuple[int, int, float, bool]:
        """How a position opened at bar ``entry`` for ``price`` ends, looking from bar ``start``:
        ``(bar, reason, price, reversal)``: a stop's fill price, or a signal bar's price before
        slippage (its open or close); bar _NEVER if it stays open."""
        if start == entry + 1:
            known = self.known[side].get(entry)
            if known is not None:
                return known
        bars = self.exits[side]
        i = bisect_left(bars, start)
        x = bars[i] if i < len(bars) else _NEVER
        if self.stops:
            end = self.n if x == _NEVER else min(self.n, x + 1 if self.close_mode else x)
            found = self._first_stop(side, entry, price, start, end)
            if found is not None:
                return found[0], found[1], found[2], False
        if x == _NEVER:
            return _NEVER, SIGNAL, float("nan"), False
        return x, SIGNAL, float(self.base[x]), bool(self.reverses[side][x])

    def _first_stop(
        self, side: int, entry: int, price: float, start: int, end: int
    ) -> tuple[int, int, float] | None:
        """The first bar in [start, end) at which a stop fires: (bar, reason, fill price)."""
        if start >= end:
            return None
        low, high = self.low, self.high
        sl, tp, trail = self.sl, self.tp, self.trail
        tp_level = np.nan
        if tp is not None:
            tp_level = price * (1.0 + tp) if side == LONG else price * (1.0 - tp)
        k = np.nan if sl is None else (1.0 - sl if side == LONG else 1.0 + sl)
        peak = price
        if trail and start > entry + 1:  # resuming (after a partial cover): the extreme so far
            seen = high[entry + 1 : start] if side == LONG else low[entry + 1 : start]
            peak = max(price, float(seen.max())) if side == LONG else min(price, float(seen.min()))
        a, width = start, 32
        while a < end:
            b = min(end, a + width)
            lo, hi = low[a:b], high[a:b]
            level: FloatArray | float = np.nan
            if sl is not None:
                if trail and side == LONG:
                    run = np.maximum.accumulate(hi)
                    ref = np.empty(b - a)
                    ref[0] = peak
                    np.maximum(run[:-1], peak, out=ref[1:])
                    peak = max(peak, float(run[-1]))
                    level = ref * k
                elif trail:
                    run = np.minimum.accumulate(lo)
                    ref = np.empty(b - a)
                    ref[0] = peak
                    np.minimum(run[:-1], peak, out=ref[1:])
                    peak = min(peak, float(run[-1]))
                    level = ref * k
                else:
                    level = price * k
                hit = lo <= level if side == LONG else hi >= level
                if tp is not None:
                    hit |= hi >= tp_level if side == LONG else lo <= tp_level
            else:
                hit = hi >= tp_level if side == LONG else lo <= tp_level
            j = int(hit.argmax())
            if hit[j]:
                t = a + j
                sl_at = float(level[j]) if isinstance(level, np.ndarray) else float(level)
                return (t, *self._classify(side, t, sl_at, tp_level))
            a, width = b, min(width * 4, 1 << 16)
        return None

    def _classify(self, side: int, t: int, sl_at: float, tp_at: float) -> tuple[int, float]:
        """Which stop fires at bar t and at what price (DESIGN.md 5b, step 2: first match)."""
        o = float(self.open[t])
        sl_reason = TRAILING_STOP if self.trail else STOP_LOSS
        has_sl, has_tp = self.sl is not None, self.tp is not None
        if side == LONG:
            if has_sl and o <= sl_at:
                return sl_reason, o
            if has_tp and o >= tp_at:
                return TAKE_PROFIT, o
            if has_sl and float(self.low[t]) <= sl_at:
                return sl_reason, sl_at
            return TAKE_PROFIT, tp_at
        if has_sl and o >= sl_at:
            return sl_reason, o
        if has_tp and o <= tp_at:
            return TAKE_PROFIT, o
        if has_sl and float(self.high[t]) >= sl_at:
            return sl_reason, sl_at
        return TAKE_PROFIT, tp_at


def _shift(a: BoolArray) -> BoolArray:
    out = np.zeros(len(a), dtype=np.bool_)
    out[1:] = a[:-1]
    return out


def trade(assets: list[AssetSignals], t: Trading, *, one_loop: bool = True) -> Book:
    """Run the model over one or several aligned assets sharing ``t.cash`` (see the module doc).

    One asset takes a leaner loop (``one_loop``) with the same rules as the portfolio loop."""
    models = [_Asset(s, t) for s in assets]
    if one_loop and len(models) == 1:
        return _one(assets[0], models[0], t)
    return _many(assets, models, t)


def _many(assets: list[AssetSignals], models: list[_Asset], t: Trading) -> Book:
    """The portfolio loop: assets' events in bar order (a heap); on a bar, closing fills in
    asset order, then opening fills (entries and reversals) in asset order."""
    n, k = models[0].n, len(models)
    fee, slip = t.fee_rate, t.slippage_rate
    cash = t.cash
    target = t.size_type == "target_percent"
    flat_event: tuple[int, int, float, bool] = (_NEVER, SIGNAL, np.nan, False)
    side = [0] * k
    q = [0.0] * k  # signed
    entry = [0] * k
    entry_price = [0.0] * k
    start = [0] * k
    cursor = [0] * k
    event = [flat_event] * k
    opens = [m.open_bars for m in models]
    open_sides = [m.open_sides for m in models]
    bases = [m.base for m in models]
    open_base = [m.open_base for m in models]
    fills: list[tuple[int, int, float, float, float, int, int]] = []
    states: list[tuple[float, float]] = []  # cash and the asset's position after each fill
    opened = 0
    holding: list[int] = []  # the assets with a position, in asset order

    def next_bar(a: int) -> int:
        if side[a] == 0:
            bars = opens[a]
            i = bisect_left(bars, start[a], cursor[a])
            cursor[a] = i
            return bars[i] if i < len(bars) else _NEVER
        return event[a][0]

    queue = [(next_bar(a), a) for a in range(k)]
    heapq.heapify(queue)
    while queue and queue[0][0] < n:
        bar = queue[0][0]
        due = []
        while queue and queue[0][0] == bar:
            due.append(heapq.heappop(queue)[1])
        due.sort()
        later = []
        for a in due:  # closing fills: exits, covers, stops
            sd = side[a]
            if sd == 0 or event[a][3]:
                later.append(a)
                continue
            _, reason, at, _ = event[a]  # at: the stop's fill price, or the bar's price
            held = abs(q[a])
            if reason == SIGNAL:
                price = at * (1.0 - slip) if sd == LONG else at * (1.0 + slip)
            else:
                price = at
            if sd == SHORT and held * price * (1.0 + fee) > cash:  # cover what cash pays
                part = cash / (price * (1.0 + fee))
                if part >= MIN_UNITS:
                    q[a] += part
                    cash = 0.0
                    fills.append((bar, LONG, part, price, part * price * fee, reason, a))
                    states.append((cash, q[a]))
                event[a] = models[a].exit_event(sd, entry[a], entry_price[a], bar + 1)
                continue
            f = held * price * fee
            cash = cash + held * price - f if sd == LONG else cash - held * price - f
            side[a], q[a], start[a], event[a] = 0, 0.0, bar + 1, flat_event
            holding.remove(a)
            fills.append((bar, -sd, held, price, f, reason, a))
            states.append((cash, 0.0))
        for a in later:  # opening fills: entries and reversals
            equity = cash
            if target:
                for j in holding:
                    equity += q[j] * float(bases[j][bar])
            sd = side[a]
            base = open_base[a][cursor[a]] if sd == 0 else event[a][2]
            if sd == 0:
                new = open_sides[a][cursor[a]]
                price = base * (1.0 + slip) if new == LONG else base * (1.0 - slip)
                units, spent_all = _size(t, new, cash, price, base, equity)
                if not units >= MIN_UNITS:  # rejected (also when there is no cash at all)
                    start[a] = bar + 1
                    continue
                f = units * price * fee
                if new == LONG:
                    cash = 0.0 if spent_all else cash - units * price - f
                else:
                    cash = cash + units * price - f
                side[a], entry[a], entry_price[a], q[a] = new, bar, price, new * units
                insort(holding, a)
                opened += 1
                fills.append((bar, new, units, price, f, SIGNAL, a))
                states.append((cash, q[a]))
                event[a] = models[a].exit_event(new, bar, price, bar + 1)
                continue
            held = abs(q[a])
            if sd == LONG:  # sell the long and open a short in one fill
                price = base * (1.0 - slip)
                after = cash + held * price - held * price * fee
                new_units, _ = _size(t, SHORT, after, price, base, equity)
                if new_units < MIN_UNITS:
                    new_units = 0.0
                total = held + new_units
                new_units = total - held  # what the fill opens, as a fold of the fills computes it
                f = total * price * fee
                cash = cash + total * price - f
            else:  # cover the short and open a long
                price = base * (1.0 + slip)
                cover = held * price * (1.0 + fee)
                if cover > cash:  # a partial cover, as a plain exit would
                    part = cash / (price * (1.0 + fee))
                    if part >= MIN_UNITS:
                        q[a] += part
                        cash = 0.0
                        fills.append((bar, LONG, part, price, part * price * fee, SIGNAL, a))
                        states.append((cash, q[a]))
                    event[a] = models[a].exit_event(sd, entry[a], entry_price[a], bar + 1)
                    continue
                new_units, spent_all = _size(t, LONG, cash - cover, price, base, equity)
                if not new_units >= MIN_UNITS:
                    new_units, spent_all = 0.0, False
                total = held + new_units
                new_units = total - held
                f = total * price * fee
                cash = 0.0 if spent_all else cash - total * price - f
            if new_units > 0.0:
                side[a], entry[a], entry_price[a], q[a] = -sd, bar, price, -sd * new_units
                opened += 1
                event[a] = models[a].exit_event(-sd, bar, price, bar + 1)
            else:
                side[a], q[a], start[a], event[a] = 0, 0.0, bar + 1, flat_event
                holding.remove(a)
            fills.append((bar, -sd, total, price, f, SIGNAL, a))
            states.append((cash, q[a]))
        for a in due:
            heapq.heappush(queue, (next_bar(a), a))
    return _book(assets, t.cash, fills, states, opened)


def _book(
    assets: list[AssetSignals],
    cash0: float,
    fills: list[tuple[int, int, float, float, float, int, int]],
    states: list[tuple[float, float]],
    opened: int,
) -> Book:
    n = len(assets[0].close)
    m = len(fills)
    table = np.fromiter(chain.from_iterable(fills), np.float64, 7 * m).reshape(m, 7)
    state = np.fromiter(chain.from_iterable(states), np.float64, 2 * m).reshape(m, 2)
    bar = table[:, 0].astype(np.int64)
    asset = table[:, 6].astype(np.int16)
    # cash after each fill, held from that bar to the next fill's bar
    lengths = np.diff(np.concatenate(((0,), bar, (n,))))
    seg_cash = np.concatenate(((cash0,), state[:, 0]))
    equity = seg_cash.repeat(lengths)
    held = np.zeros(n, dtype=np.bool_)
    final_qty = []
    for a, s in enumerate(assets):
        mine = np.flatnonzero(asset == a)
        if len(mine) == 0:
            final_qty.append(0.0)
            continue
        b = np.concatenate(((0,), bar[mine], (n,)))
        seg_qty = np.concatenate(((0.0,), state[mine, 1]))
        qty = seg_qty.repeat(np.diff(b))
        equity += qty * s.close
        held |= qty != 0.0
        final_qty.append(float(seg_qty[-1]))
    return Book(
        bar=bar,
        side=table[:, 1].astype(np.int8),
        qty=np.ascontiguousarray(table[:, 2]),
        price=np.ascontiguousarray(table[:, 3]),
        fee=np.ascontiguousarray(table[:, 4]),
        reason=table[:, 5].astype(np.int8),
        asset=asset,
        equity=equity,
        final_cash=float(seg_cash[-1]),
        final_qty=tuple(final_qty),
        held_bars=int(np.count_nonzero(held)),
        opened=opened,
    )


def _size(
    t: Trading, side: int, cash: float, price: float, base: float, equity: float
) -> tuple[float, bool]:
    """Units to open and whether they spend all the cash (see ``trade``'s ``open_qty``)."""
    fee, size, kind = t.fee_rate, t.size, t.size_type
    if kind == "all":
        q = cash / (price * (1.0 + fee))
        return q, side == LONG
    assert size is not None
    if kind == "percent":
        q = size * cash / (price * (1.0 + fee))
    elif kind == "value":
        q = size / base
    elif kind == "amount":
        q = size
    else:
        q = size * equity / price
    if side == LONG and q * price * (1.0 + fee) > cash:
        return cash / (price * (1.0 + fee)), True
    return q, False


def _one(s: AssetSignals, m: _Asset, t: Trading) -> Book:
    """The loop of ``trade`` for one asset: the same steps, without the portfolio's queue."""
    n = m.n
    fee, slip = t.fee_rate, t.slippage_rate
    cash = t.cash
    open_bars, open_sides, open_base = m.open_bars, m.open_sides, m.open_base
    all_in = t.size_type == "all"
    buy_cost = 1.0 + fee
    n_open = len(open_bars)
    rows: list[tuple[int, int, float, float, float, int, float, float]] = []
    opened = 0
    i = start = 0
    side = entry = 0
    q = entry_price = 0.0  # q signed
    event: tuple[int, int, float, bool] = (_NEVER, SIGNAL, np.nan, False)
    while True:
        if side == 0:
            i = bisect_left(open_bars, start, i)
            if i >= n_open:
                break
            bar, new, base = open_bars[i], open_sides[i], open_base[i]
            price = base * (1.0 + slip) if new == LONG else base * (1.0 - slip)
            if all_in:
                units, spent_all = cash / (price * buy_cost), new == LONG
            else:
                units, spent_all = _size(t, new, cash, price, base, cash)
            if not units >= MIN_UNITS:
                start = bar + 1
                continue
            f = units * price * fee
            if new == LONG:
                cash = 0.0 if spent_all else cash - units * price - f
            else:
                cash = cash + units * price - f
            side, entry, entry_price, q = new, bar, price, new * units
            opened += 1
            rows.append((bar, new, units, price, f, SIGNAL, cash, q))
            event = m.exit_event(side, bar, price, bar + 1)
            continue
        bar, reason, at, rev = event  # at: the stop's fill price, or the signal bar's price
        if bar >= n:
            break
        held = abs(q)
        if reason == SIGNAL:
            base = at
            price = base * (1.0 - slip) if side == LONG else base * (1.0 + slip)
        else:
            price = at
        if side == LONG:
            if rev:  # sell the long and open a short in one fill
                after = cash + held * price - held * price * fee
                new_units, _ = _size(t, SHORT, after, price, base, cash + q * base)
                new_units = new_units if new_units >= MIN_UNITS else 0.0
            else:
                new_units = 0.0
            total = held + new_units
            new_units = total - held  # what the fill opens, as a fold of the fills computes it
            f = total * price * fee
            cash = cash + total * price - f
        else:
            cost = held * price * (1.0 + fee)
            if cost > cash:  # cover only what the cash pays for
                part = cash / (price * (1.0 + fee))
                if part >= MIN_UNITS:
                    q += part
                    cash = 0.0
                    rows.append((bar, LONG, part, price, part * price * fee, reason, cash, q))
                if cash == 0.0:
                    break  # nothing can pay for a buy any more
                event = m.exit_event(side, entry, entry_price, bar + 1)
                continue
            new_units, spent_all = 0.0, False
            if rev:  # cover the short and open a long
                equity = cash + q * base
                new_units, spent_all = _size(t, LONG, cash - cost, price, base, equity)
                if not new_units >= MIN_UNITS:
                    new_units, spent_all = 0.0, False
            total = held + new_units
            new_units = total - held  # what the fill opens, as a fold of the fills computes it
            f = total * price * fee
            cash = 0.0 if spent_all else cash - total * price - f
        fill_side = -side
        if new_units > 0.0:
            side, entry, entry_price, q = -side, bar, price, -side * new_units
            opened += 1
            rows.append((bar, fill_side, total, price, f, reason, cash, q))
            event = m.exit_event(side, bar, price, bar + 1)
        else:
            side, q, start = 0, 0.0, bar + 1
            rows.append((bar, fill_side, total, price, f, reason, cash, q))
    return _book_rows([s], t.cash, rows, opened)


def _book_rows(
    assets: list[AssetSignals],
    cash0: float,
    rows: list[tuple[int, int, float, float, float, int, float, float]],
    opened: int,
) -> Book:
    n = len(assets[0].close)
    m = len(rows)
    table = np.fromiter(chain.from_iterable(rows), np.float64, 8 * m).reshape(m, 8)
    bar = table[:, 0].astype(np.int64)
    bounds = np.concatenate(((0,), bar, (n,)))
    lengths = np.diff(bounds)
    seg_cash = np.concatenate(((cash0,), table[:, 6]))
    seg_qty = np.concatenate(((0.0,), table[:, 7]))
    qty = seg_qty.repeat(lengths)
    equity = qty * assets[0].close
    equity += seg_cash.repeat(lengths)
    return Book(
        bar=bar,
        side=table[:, 1].astype(np.int8),
        qty=np.ascontiguousarray(table[:, 2]),
        price=np.ascontiguousarray(table[:, 3]),
        fee=np.ascontiguousarray(table[:, 4]),
        reason=table[:, 5].astype(np.int8),
        asset=np.zeros(m, dtype=np.int16),
        equity=equity,
        final_cash=float(seg_cash[-1]),
        final_qty=(float(seg_qty[-1]),),
        held_bars=int(np.count_nonzero(qty)),
        opened=opened,
    )
