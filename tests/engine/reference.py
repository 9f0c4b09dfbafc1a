"""An independent, plain-Python, bar-by-bar backtester: the oracle the vectorized engine must match.

It imports nothing from coinbt. Every indicator is a direct loop over its definition (docs/engine.md
and DESIGN.md section 5), and the execution walks the bars one at a time, holding cash and a
position, exactly as a person would do it by hand.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

TIE = 1e-10  # two computed values within this relative distance are equal (docs/engine.md)

Series = list[float | None]


def above(a: float, b: float) -> bool:
    return a - b > TIE * abs(b)


def below(a: float, b: float) -> bool:
    return a - b < -TIE * abs(b)


def sma(x: Sequence[float], w: int) -> Series:
    return [None if i < w - 1 else sum(x[i - w + 1 : i + 1]) / w for i in range(len(x))]


def stdev(x: Sequence[float], w: int) -> Series:
    out: Series = []
    for i in range(len(x)):
        if i < w - 1:
            out.append(None)
            continue
        window = x[i - w + 1 : i + 1]
        mean = sum(window) / w
        out.append(math.sqrt(sum((v - mean) ** 2 for v in window) / w))
    return out


def ema(x: Sequence[float], w: int) -> Series:
    out: Series = [None] * len(x)
    if w > len(x):
        return out
    alpha = 2 / (w + 1)
    value = sum(x[:w]) / w
    out[w - 1] = value
    for i in range(w, len(x)):
        value = alpha * x[i] + (1 - alpha) * value
        out[i] = value
    return out


def rsi(close: Sequence[float], p: int) -> Series:
    out: Series = [None] * len(close)
    if p >= len(close):
        return out
    gains = [max(close[i] - close[i - 1], 0.0) for i in range(1, len(close))]
    losses = [max(close[i - 1] - close[i], 0.0) for i in range(1, len(close))]
    g, lo = sum(gains[:p]) / p, sum(losses[:p]) / p
    for i in range(p, len(close)):
        if i > p:
            g = (g * (p - 1) + gains[i - 1]) / p
            lo = (lo * (p - 1) + losses[i - 1]) / p
        out[i] = 100 * g / (g + lo) if g + lo > 0 else 50.0
    return out


def signals(name: str, p: Mapping[str, float], bars: Bars) -> tuple[list[bool], list[bool]]:
    """Entry and exit signals, one bar at a time, straight from each strategy's stated rule."""
    n = len(bars.close)
    entries, exits = [False] * n, [False] * n
    c = bars.close
    if name in ("sma_cross", "ema_cross"):
        average = sma if name == "sma_cross" else ema
        fast, slow = average(c, int(p["fast"])), average(c, int(p["slow"]))
        for i in range(1, n):
            f0, s0, f1, s1 = fast[i - 1], slow[i - 1], fast[i], slow[i]
            if f0 is None or s0 is None or f1 is None or s1 is None:
                continue
            entries[i] = above(f1, s1) and not above(f0, s0)
            exits[i] = below(f1, s1) and not below(f0, s0)
    elif name == "rsi_reversion":
        r = rsi(c, int(p["period"]))
        for i in range(1, n):
            r0, r1 = r[i - 1], r[i]
            if r0 is None or r1 is None:
                continue
            entries[i] = below(r1, p["lower"]) and not below(r0, p["lower"])
            exits[i] = above(r1, p["upper"]) and not above(r0, p["upper"])
    elif name == "bollinger_breakout":
        w = int(p["window"])
        mid, sd = sma(c, w), stdev(c, w)
        for i in range(n):
            m, s = mid[i], sd[i]
            if m is None or s is None:
                continue
            entries[i] = above(c[i], m + p["k"] * s)
            exits[i] = below(c[i], m)
    elif name == "donchian_breakout":
        w, x = int(p["window"]), int(p["exit_window"])
        for i in range(n):
            entries[i] = i >= w and c[i] > max(bars.high[i - w : i])
            exits[i] = i >= x and c[i] < min(bars.low[i - x : i])
    elif name == "buy_and_hold":
        entries[0] = True
    else:
        raise KeyError(name)
    return entries, exits


@dataclass
class Bars:
    open: list[float]
    high: list[float]
    low: list[float]
    close: list[float]


@dataclass
class Outcome:
    fills: list[tuple[int, str, float, float, float]] = field(default_factory=list)  # bar, side,
    equity: list[float] = field(default_factory=list)  # qty, price, fee
    cash: list[float] = field(default_factory=list)
    qty: list[float] = field(default_factory=list)


def backtest(
    name: str,
    params: Mapping[str, float],
    bars: Bars,
    *,
    cash: float = 10_000.0,
    fee_bps: float = 10.0,
    slippage_bps: float = 0.0,
    fill: str = "next_open",
) -> Outcome:
    """Walk the bars: at bar t, first fill yesterday's order at today's open (next_open), then read
    today's signal; with fill=close, fill today's signal at today's close.
    """
    fee, slip = fee_bps / 10_000, slippage_bps / 10_000
    entries, exits = signals(name, params, bars)
    out = Outcome()
    qty = 0.0
    pending: str | None = None

    def trade(side: str, bar: int, base: float) -> None:
        nonlocal cash, qty
        if side == "buy":
            price = base * (1 + slip)
            qty = cash / (price * (1 + fee))
            out.fills.append((bar, "buy", qty, price, qty * price * fee))
            cash = 0.0
        else:
            price = base * (1 - slip)
            out.fills.append((bar, "sell", qty, price, qty * price * fee))
            cash = qty * price * (1 - fee)
            qty = 0.0

    for t in range(len(bars.close)):
        if pending is not None:
            trade(pending, t, bars.open[t])
            pending = None
        want = None
        if entries[t] and not exits[t] and qty == 0.0:
            want = "buy"
        elif exits[t] and not entries[t] and qty > 0.0:
            want = "sell"
        if want is not None:
            if fill == "close":
                trade(want, t, bars.close[t])
            else:
                pending = want  # dropped if t is the last bar
        out.cash.append(cash)
        out.qty.append(qty)
        out.equity.append(cash + qty * bars.close[t])
    return out


# --- DESIGN.md section 5b: directions, stops, sizing, portfolios ------------------------------

REASONS = ("signal", "stop_loss", "take_profit", "trailing_stop")
MIN_UNITS = 1e-8


@dataclass
class Options:
    direction: str = "long"
    sl_stop: float | None = None
    tp_stop: float | None = None
    sl_trail: bool = False
    size: float | None = None
    size_type: str = "all"


@dataclass
class Fill5b:
    bar: int
    side: str
    qty: float
    price: float
    fee: float
    reason: str
    asset: int


@dataclass
class Outcome5b:
    fills: list[Fill5b] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)
    cash: list[float] = field(default_factory=list)
    qty: list[list[float]] = field(default_factory=list)  # per bar, per asset
    opened: int = 0


@dataclass
class _Holding:
    q: float = 0.0
    entry_bar: int = -1
    entry_price: float = 0.0
    extreme: float = 0.0  # the trailing reference: best high (long) / low (short) since entry


def _wanted(opts: Options, q: float, le: bool, lx: bool, se: bool, sx: bool) -> str | None:
    """What the signals acting on this bar ask of a position q: open_long, open_short, close,
    reverse, or nothing."""
    d = opts.direction
    if d == "long":
        if q == 0.0 and le and not lx:
            return "open_long"
        if q > 0.0 and lx and not le:
            return "close"
        return None
    if d == "short":
        if q == 0.0 and se and not sx:
            return "open_short"
        if q < 0.0 and sx and not se:
            return "close"
        return None
    if q == 0.0:
        if le and not se:
            return "open_long"
        if se and not le:
            return "open_short"
        return None
    if q > 0.0:
        if se and not le:
            return "reverse"
        if lx and not le:
            return "close"
        return None
    if le and not se:
        return "reverse"
    if sx and not se:
        return "close"
    return None


def _stop_hit(
    opts: Options, h: _Holding, o: float, hi: float, lo: float
) -> tuple[str, float] | None:
    """Step 2 of DESIGN.md 5b for one bar: which stop fires and at what price."""
    sl, tp = opts.sl_stop, opts.tp_stop
    sl_name = "trailing_stop" if opts.sl_trail else "stop_loss"
    if h.q > 0.0:
        ref = h.extreme if opts.sl_trail else h.entry_price
        sl_level = None if sl is None else ref * (1 - sl)
        tp_level = None if tp is None else h.entry_price * (1 + tp)
        if sl_level is not None and o <= sl_level:
            return sl_name, o
        if tp_level is not None and o >= tp_level:
            return "take_profit", o
        if sl_level is not None and lo <= sl_level <= hi:
            return sl_name, sl_level
        if tp_level is not None and lo <= tp_level <= hi:
            return "take_profit", tp_level
        return None
    ref = h.extreme if opts.sl_trail else h.entry_price
    sl_level = None if sl is None else ref * (1 + sl)
    tp_level = None if tp is None else h.entry_price * (1 - tp)
    if sl_level is not None and o >= sl_level:
        return sl_name, o
    if tp_level is not None and o <= tp_level:
        return "take_profit", o
    if sl_level is not None and lo <= sl_level <= hi:
        return sl_name, sl_level
    if tp_level is not None and lo <= tp_level <= hi:
        return "take_profit", tp_level
    return None


def backtest_5b(
    name: str,
    params: Mapping[str, float],
    assets: Sequence[Bars],
    opts: Options,
    *,
    cash: float = 10_000.0,
    fee_bps: float = 10.0,
    slippage_bps: float = 0.0,
    fill: str = "next_open",
    signal_sets: Sequence[tuple[list[bool], list[bool], list[bool], list[bool]]] | None = None,
) -> Outcome5b:
    """Walk the bars of every asset together, one bar at a time, with one cash account.

    On each bar: per asset, the signals acting now (yesterday's with next_open) and, for a
    position opened before this bar, the stops (next_open: only if no signal moved it; close:
    first, and a stop consumes the bar); then the closing fills in asset order, then the opening
    fills (entries and reversals) in asset order; then the trailing references move.
    """
    f, slip = fee_bps / 10_000, slippage_bps / 10_000
    if signal_sets is None:
        signal_sets = []
        for bars in assets:
            e, x = signals(name, params, bars)
            signal_sets.append((e, x, x, e))
    n = len(assets[0].close)
    k = len(assets)
    out = Outcome5b()
    hold = [_Holding() for _ in range(k)]

    def size_units(
        side: int, cash_now: float, p: float, base: float, equity: float
    ) -> tuple[float, bool]:
        st, x = opts.size_type, opts.size
        if st == "all":
            units = cash_now / (p * (1 + f))
        elif st == "percent":
            assert x is not None
            units = x * cash_now / (p * (1 + f))
        elif st == "value":
            assert x is not None
            units = x / base  # the price before slippage
        elif st == "amount":
            assert x is not None
            units = x
        else:
            assert x is not None
            units = x * equity / p
        if side > 0 and (st == "all" or units * p * (1 + f) > cash_now):
            return cash_now / (p * (1 + f)), True
        return units, False

    for t in range(n):
        acting = t - 1 if fill == "next_open" else t
        marks = [(a.close if fill == "close" else a.open)[t] for a in assets]
        closing: list[tuple[int, str, str, float]] = []  # asset, kind, reason, price
        opening: list[tuple[int, str]] = []
        for i, bars in enumerate(assets):
            h = hold[i]
            want = None
            if acting >= 0:
                le, lx, se, sx = (s[acting] for s in signal_sets[i])
                want = _wanted(opts, h.q, le, lx, se, sx)
            stop = None
            if h.q != 0.0 and h.entry_bar < t and (opts.sl_stop or opts.tp_stop):
                stop = _stop_hit(opts, h, bars.open[t], bars.high[t], bars.low[t])
            if fill == "next_open":
                if want is not None:
                    stop = None
                elif stop is not None:
                    closing.append((i, "close", stop[0], stop[1]))
            elif stop is not None:
                closing.append((i, "close", stop[0], stop[1]))
                want = None
            if want == "close":
                closing.append((i, "close", "signal", marks[i]))
            elif want is not None:
                opening.append((i, want))

        for i, _, reason, base in closing:
            h = hold[i]
            if reason == "signal":
                p = base * (1 - slip) if h.q > 0 else base * (1 + slip)
            else:
                p = base
            if h.q > 0:
                out.fills.append(Fill5b(t, "sell", h.q, p, h.q * p * f, reason, i))
                cash = cash + h.q * p - h.q * p * f
                hold[i] = _Holding()
            else:
                units = -h.q
                if units * p * (1 + f) > cash:
                    part = cash / (p * (1 + f))
                    if part >= MIN_UNITS:
                        out.fills.append(Fill5b(t, "buy", part, p, part * p * f, reason, i))
                        h.q += part
                        cash = 0.0
                else:
                    out.fills.append(Fill5b(t, "buy", units, p, units * p * f, reason, i))
                    cash = cash - units * p - units * p * f
                    hold[i] = _Holding()

        for i, want in opening:
            h = hold[i]
            equity = cash + sum(hold[j].q * marks[j] for j in range(k) if hold[j].q != 0.0)
            base = marks[i]
            if want in ("open_long", "open_short"):
                side = 1 if want == "open_long" else -1
                p = base * (1 + slip) if side > 0 else base * (1 - slip)
                units, all_cash = size_units(side, cash, p, base, equity)
                if not units >= MIN_UNITS:
                    continue
                fee = units * p * f
                out.fills.append(
                    Fill5b(t, "buy" if side > 0 else "sell", units, p, fee, "signal", i)
                )
                if side > 0:
                    cash = 0.0 if all_cash else cash - units * p - fee
                else:
                    cash = cash + units * p - fee
                hold[i] = _Holding(side * units, t, p, p)
                out.opened += 1
                continue
            # reverse: close and open the other way in one fill
            old = abs(h.q)
            if h.q > 0:
                p = base * (1 - slip)
                after = cash + old * p - old * p * f
                new, _ = size_units(-1, after, p, base, equity)
                new = new if new >= MIN_UNITS else 0.0
                total = old + new
                new = total - old  # the opening part, as the fill's split gives it
                out.fills.append(Fill5b(t, "sell", total, p, total * p * f, "signal", i))
                cash = cash + total * p - total * p * f
                side = -1
            else:
                p = base * (1 + slip)
                if old * p * (1 + f) > cash:  # cannot even cover: cover what the cash pays
                    part = cash / (p * (1 + f))
                    if part >= MIN_UNITS:
                        out.fills.append(Fill5b(t, "buy", part, p, part * p * f, "signal", i))
                        h.q += part
                        cash = 0.0
                    continue
                after = cash - old * p * (1 + f)
                new, all_cash = size_units(1, after, p, base, equity)
                if not new >= MIN_UNITS:
                    new, all_cash = 0.0, False
                total = old + new
                new = total - old  # the opening part, as the fill's split gives it
                out.fills.append(Fill5b(t, "buy", total, p, total * p * f, "signal", i))
                cash = 0.0 if all_cash else cash - total * p - total * p * f
                side = 1
            if new > 0.0:
                hold[i] = _Holding(side * new, t, p, p)
                out.opened += 1
            else:
                hold[i] = _Holding()

        for i, bars in enumerate(assets):
            h = hold[i]
            if h.q != 0.0 and h.entry_bar < t:
                h.extreme = max(h.extreme, bars.high[t]) if h.q > 0 else min(h.extreme, bars.low[t])
        out.cash.append(cash)
        out.qty.append([h.q for h in hold])
        value = cash
        for i, bars in enumerate(assets):
            value += hold[i].q * bars.close[t]
        out.equity.append(value)
    return out
