"""Line charts as inline SVG text (no script, no external file): time on x, linear or log y."""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ("Series", "downsample", "line_chart", "nice_ticks")

FloatArray = NDArray[np.float64]

WIDTH, LEFT, RIGHT, TOP, BOTTOM = 960, 72, 16, 12, 26


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: FloatArray
    color: str
    dashed: bool = False
    fill: bool = False  # shade between the line and 0 (drawdown)


def downsample(n: int, points: int, *series: FloatArray) -> NDArray[np.int64]:
    """Indexes keeping, per bucket, each series' minimum and maximum, and the first and last
    sample: at most about ``points`` samples, in order, extremes never lost."""
    if n <= points:
        return np.arange(n)
    buckets = max(1, (points - 2) // (2 * max(1, len(series))))
    edges = np.linspace(1, n - 1, buckets + 1).astype(np.int64)
    keep = [np.array([0, n - 1])]
    for values in series:
        v = np.where(np.isfinite(values), values, np.nan)
        for start, end in itertools.pairwise(edges.tolist()):
            if end <= start:
                continue
            chunk = v[start:end]
            if np.isnan(chunk).all():
                continue
            keep.append(
                np.array([start + int(np.nanargmin(chunk)), start + int(np.nanargmax(chunk))])
            )
    out: NDArray[np.int64] = np.unique(np.concatenate(keep))
    return out


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round values covering [lo, hi], about ``count`` of them."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def _log_ticks(lo: float, hi: float) -> list[float]:
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    mults = (1,) if b - a > 2 else (1, 2, 5)
    ticks = [m * 10.0**e for e in range(a, b + 1) for m in mults]
    inside = [t for t in ticks if lo <= t <= hi]
    return inside if len(inside) >= 2 else [lo, hi]


def _date(ms: float) -> str:
    return str(np.datetime64(int(ms), "ms").astype("datetime64[D]"))


def line_chart(
    ts: NDArray[np.int64],
    series: Sequence[Series],
    *,
    log: bool = False,
    height: int = 260,
    fmt: Callable[[float], str] = lambda v: f"{v:,.0f}",
    label: str = "",
) -> str:
    """One SVG element: every series against time, y linear or log (base 10)."""
    x = np.asarray(ts, dtype=np.float64)
    finite = [s.values[np.isfinite(s.values)] for s in series]
    values = np.concatenate([f for f in finite if len(f)] or [np.array([0.0, 1.0])])
    if log:
        values = values[values > 0]
        if not len(values):
            values = np.array([1.0, 10.0])
    lo, hi = float(values.min()), float(values.max())
    if any(s.fill for s in series):
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi <= lo:
        lo, hi = (lo / 2, lo * 2) if log else (lo - 1, hi + 1)
    ticks = _log_ticks(lo, hi) if log else nice_ticks(lo, hi)

    def ty(v: FloatArray) -> FloatArray:
        if log:
            v = np.log10(np.maximum(v, lo))
            a, b = math.log10(lo), math.log10(hi)
        else:
            a, b = lo, hi
        return TOP + (1 - (v - a) / (b - a)) * (height - TOP - BOTTOM)

    x0, x1 = float(x[0]), float(x[-1]) if len(x) > 1 else float(x[0]) + 1

    def tx(v: FloatArray) -> FloatArray:
        return LEFT + (v - x0) / ((x1 - x0) or 1) * (WIDTH - LEFT - RIGHT)

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{html.escape(label)}" data-scale="{"log" if log else "linear"}" '
        f'preserveAspectRatio="none">'
    ]
    for t in ticks:
        y = float(ty(np.array([t]))[0])
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="ytick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{html.escape(fmt(t))}</text>"
        )
    for i in range(6):
        v = x0 + (x1 - x0) * i / 5
        xp = float(tx(np.array([v]))[0])
        anchor = "start" if i == 0 else "end" if i == 5 else "middle"
        parts.append(
            f'<text class="xtick" x="{xp:.1f}" y="{height - 8}" text-anchor="{anchor}">'
            f"{_date(v)}</text>"
        )
    for s in series:
        ok = np.isfinite(s.values)
        if log:
            ok &= s.values > 0
        xs, ys = tx(x[ok]), ty(s.values[ok])
        if not len(xs):
            continue
        points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(xs.tolist(), ys.tolist(), strict=True))
        name = html.escape(s.name)
        if s.fill:
            zero = float(ty(np.array([0.0]))[0])
            parts.append(
                f'<polygon class="area" fill="{s.color}" fill-opacity="0.25" '
                f'points="{xs[0]:.1f},{zero:.1f} {points} {xs[-1]:.1f},{zero:.1f}"/>'
            )
        dash = ' stroke-dasharray="5 4"' if s.dashed else ""
        parts.append(
            f'<polyline class="series" data-series="{name}" fill="none" stroke="{s.color}" '
            f'stroke-width="1.4"{dash} points="{points}"><title>{name}</title></polyline>'
        )
    parts.append("</svg>")
    return "".join(parts)
