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
