"""Deterministic synthetic OHLCV bars, so everything runs with no data files."""

from __future__ import annotations

import math

import numpy as np

from coinbt.engine.data import Bars, FloatArray, parse_interval
from coinbt.errors import FieldError, SpecError

__all__ = ("DEFAULT_START_MS", "synthetic")

DEFAULT_START_MS = 1_704_067_200_000
"""2024-01-01T00:00:00Z, the first bar of every synthetic series unless told otherwise."""

_YEAR_MS = 365 * 86_400_000
_ANNUAL_VOLATILITY = 0.8  # about bitcoin's
_ANNUAL_DRIFT = 0.0


def synthetic(
    bars: int,
    seed: int = 1,
    interval: str = "1m",
    start_price: float = 100.0,
    start_ts_ms: int = DEFAULT_START_MS,
) -> Bars:
    """A geometric-Brownian-motion series of ``bars`` bars, the same bytes on every machine.

    Draws four standard normals per bar from ``Generator(PCG64(seed))`` (row-major, so a shorter
    series is a prefix of a longer one with the same seed) and uses only IEEE-exact operations
    (no ``exp``/``log``, whose last bit varies between CPUs and libraries): the close follows the
    multiplicative Euler step ``close[i] = close[i-1] * (1 + mu*dt + sigma*sqrt(dt)*z)`` with
    80 % annual volatility and no drift; ``open[i] = close[i-1]``; high and low extend the
    open-close range by half a bar's volatility times ``|z|``; volume is ``1000 * (1 + |z|)``.

    Raises :class:`SpecError` naming ``bars``, ``seed``, ``interval``, ``start_price`` or
    ``start_ts_ms``.
    """
    errors = []
    if isinstance(bars, bool) or not isinstance(bars, int) or bars < 1:
        errors.append(FieldError("bars", f"must be a positive integer, got {bars!r}"))
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        errors.append(FieldError("seed", f"must be an integer in [0, 2**63), got {seed!r}"))
    if (
        isinstance(start_price, bool)
        or not isinstance(start_price, (int, float))
        or not math.isfinite(start_price)
        or start_price <= 0
    ):
        errors.append(FieldError("start_price", f"must be a positive number, got {start_price!r}"))
    if isinstance(start_ts_ms, bool) or not isinstance(start_ts_ms, int):
        errors.append(FieldError("start_ts_ms", f"must be an integer, got {start_ts_ms!r}"))
    try:
        interval_ms = parse_interval(interval)
    except SpecError as e:
        errors.extend(e.errors)
    if errors:
        raise SpecError(errors)

    dt = interval_ms / _YEAR_MS
    step_sd = _ANNUAL_VOLATILITY * math.sqrt(dt)
    rng = np.random.Generator(np.random.PCG64(seed))
    z = rng.standard_normal((bars, 4))
    factors = 1.0 + _ANNUAL_DRIFT * dt + step_sd * z[:, 0]
    np.maximum(factors, 0.5, out=factors)  # keep prices positive even on absurd intervals
    factors[0] *= float(start_price)
    close: FloatArray = np.multiply.accumulate(factors)
    open_ = np.empty(bars)
    open_[0] = start_price
    open_[1:] = close[:-1]
    top = np.maximum(open_, close)
    bottom = np.minimum(open_, close)
    # x * (1 + e) >= x and x / (1 + e) <= x hold after rounding for e >= 0, so the bar is valid.
    high: FloatArray = top * (1.0 + 0.5 * step_sd * np.abs(z[:, 1]))
    low: FloatArray = bottom / (1.0 + 0.5 * step_sd * np.abs(z[:, 2]))
    volume = 1000.0 * (1.0 + np.abs(z[:, 3]))
    ts = start_ts_ms + interval_ms * np.arange(bars, dtype=np.int64)
    return Bars._trusted(ts, open_, high, low, close, volume, interval_ms=interval_ms)
