"""Several assets in one backtest: aligning their bars on timestamps (DESIGN.md section 5b)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import numpy as np

from coinbt.engine.data import Bars
from coinbt.errors import SpecError

__all__ = ("align", "contributions", "synthetic_portfolio")


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def align(assets: Mapping[str, Bars] | Sequence[Bars]) -> tuple[tuple[str, ...], list[Bars]]:
    """The symbols and every asset's bars over the range all of them cover.

    Inside that range every asset must have a bar at every timestamp any of them has; otherwise
    :class:`SpecError` (field ``data.datasets[i]``) names the first asset missing one and the
    time. Assets with no common range are an error too.
    """
    if isinstance(assets, Mapping):
        symbols = tuple(str(k) for k in assets)
        bars = list(assets.values())
    else:
        bars = list(assets)
        symbols = tuple(str(i) for i in range(len(bars)))
    if not bars:
        raise SpecError("a portfolio needs at least one asset", field="data.datasets")
    for i, b in enumerate(bars):
        if not isinstance(b, Bars) or len(b) == 0:
            raise SpecError(f"asset {symbols[i]!r} has no bars", field=f"data.datasets[{i}]")
    start = max(int(b.ts[0]) for b in bars)
    end = min(int(b.ts[-1]) for b in bars)
    if start > end:
        late = max(range(len(bars)), key=lambda i: int(bars[i].ts[0]))
        raise SpecError(
            f"asset {symbols[late]!r} starts at {_when(start)}, after another asset's data ends "
            f"({_when(end)}): the assets cover no common range",
            field=f"data.datasets[{late}]",
        )
    if len(bars) == 1:
        return symbols, bars
    sliced = [b.slice(start, end + 1) for b in bars]
    first = sliced[0].ts
    if all(len(b) == len(first) and np.array_equal(b.ts, first) for b in sliced[1:]):
        return symbols, sliced
    union = sliced[0].ts
    for b in sliced[1:]:
        union = np.union1d(union, b.ts)
    for i, b in enumerate(sliced):
        missing = union[~np.isin(union, b.ts)]
        if len(missing):
            raise SpecError(
                f"asset {symbols[i]!r} has no bar at {_when(int(missing[0]))} "
                f"({int(missing[0])} ms), inside the range all assets cover "
                f"({_when(start)} to {_when(end)})",
                field=f"data.datasets[{i}]",
            )
    raise AssertionError("unreachable: unequal timestamps with none missing")


def synthetic_portfolio(
    bars: int, symbols: int, *, seed: int = 1, interval: str = "1m", start_price: float = 100.0
) -> dict[str, Bars]:
    """``symbols`` synthetic assets on the same timestamps: asset i (named ``SYNTH<i+1>``) is
    ``synthetic(bars, seed=seed + i, ...)``."""
    from coinbt.engine.synthetic import synthetic

    return {
        f"SYNTH{i + 1}": synthetic(bars, seed=seed + i, interval=interval, start_price=start_price)
        for i in range(symbols)
    }


def contributions(
    symbols: Sequence[str], realized: Sequence[float], unrealized: Sequence[float], cash: float
) -> dict[str, float]:
    """Each asset's share of the total return: (realized + unrealized PnL) / initial cash; they
    add up to the portfolio's total return."""
    return {s: (r + u) / cash for s, r, u in zip(symbols, realized, unrealized, strict=True)}
