"""Vectorized indicators, exact to ~1e-13 relative against plain loops, with no look-ahead.

Every function returns an array as long as its input, NaN where the indicator is not yet defined,
and the value at bar ``i`` depends only on inputs at bars ``<= i`` (bit for bit: the result at ``i``
does not change when later inputs do).

- Rolling sums use anchored block prefix sums: the series is cut into rows of ``B`` windows, each
  row is shifted by its first value and summed with ``cumsum``. Rounding error then scales with the
  price moves inside a row, not with the price level times the series length as a plain
  ``cumsum`` difference would.
- Recursions ``y[i] = a * y[i-1] + u[i]`` (EMA, Wilder smoothing) use a doubling scan: after the
  pass with shift ``d`` each ``y[i]`` holds the sum of the last ``2d`` terms; passes stop once
  ``a**d < 1e-20``. Only multiplications by powers of ``a <= 1`` and additions: stable, no BLAS.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

__all__ = (
    "IndicatorCache",
    "ema",
    "linear_recurrence",
    "rolling_max",
    "rolling_mean",
    "rolling_mean_std",
    "rolling_min",
    "sma",
    "wilder_rsi",
)

if TYPE_CHECKING:
    from coinbt.engine.data import Bars

FloatArray = NDArray[np.float64]

_MEAN_ROW = 512  # windows per row for means: error <~ eps * row**2 * max|x - anchor| / window
_VAR_ROW = 64  # for variances, whose cancellation is worse: short rows keep x - anchor small
_SUSPECT = 1e-2  # a variance below this share of its row's largest (x - anchor)**2 is recomputed
_EXACT_CHUNK = 1 << 16  # elements per block of the exact recomputation
_NEGLIGIBLE = 1e-20


def _rows(x: FloatArray, window: int, row: int) -> tuple[NDArray[np.float64], int]:
    """``x`` as overlapping rows: row ``r`` holds ``x[r*row : r*row + row + window - 1]``, the data
    of the windows ending at bars ``window-1 + r*row ..`` (``row`` of them). A single row (the
    whole series) when the windows fit in one.
    """
    n = len(x)
    count = n - window + 1
    nrows = -(-count // row)
    if nrows == 1:
        return x[None, :], count
    padded = np.empty(nrows * row + window - 1)
    padded[:n] = x
    padded[n:] = x[-1]
    view = np.ndarray((nrows, row + window - 1), np.float64, buffer=padded, strides=(row * 8, 8))
    return view, count


def _window_sums(y: NDArray[np.float64], window: int, count: int) -> FloatArray:
    """Sums of each row's windows of ``window`` consecutive columns, flattened to ``count``."""
    csum = np.add.accumulate(y, axis=1)
    width = y.shape[1] - window + 1
    sums = np.empty((y.shape[0], width))
    sums[:, 0] = csum[:, window - 1]
    np.subtract(csum[:, window : window - 1 + width], csum[:, : width - 1], out=sums[:, 1:])
    flat: FloatArray = sums.reshape(-1)[:count]
    return flat


def rolling_mean(x: FloatArray, window: int) -> FloatArray:
    """``mean(x[i-window+1 .. i])`` from bar ``window-1``.

    Each row of windows is shifted by its first value before the prefix sums, so the rounding
    error scales with the moves inside a row, not with the price level times the series length.
    """
    n = len(x)
    out = np.empty(n)
    out[: window - 1] = np.nan
    if window > n:
        return out
    if window == 1:
        out[:] = x
        return out
    row = max(_MEAN_ROW, 2 * window)
    sums = out[window - 1 :]
    if n - window + 1 <= row:  # one row: the arithmetic of row 0 below, minus the 2-d overhead
        anchor = float(x[0])
        csum = np.add.accumulate(x - anchor)
        sums[0] = csum[window - 1]
        np.subtract(csum[window:], csum[:-window], out=sums[1:])
        sums /= window
        sums += anchor
        return out
    rows, count = _rows(x, window, row)
    anchors = rows[:, :1]
    sums[:] = _window_sums(rows - anchors, window, count)
    sums /= window
    sums += anchors[:, 0].repeat(rows.shape[1] - window + 1)[:count]
    return out


sma = rolling_mean


def rolling_mean_std(x: FloatArray, window: int) -> tuple[FloatArray, FloatArray]:
    """Rolling mean and population standard deviation (ddof=0) over ``window`` bars.

    The variance comes from anchored sums of ``y`` and ``y**2`` (``y = x - anchor``), which cancel
    when the variance is tiny next to ``y**2`` (a flat stretch after a move): such windows, below
    1 % of the largest ``y**2`` in their row so far, are recomputed with a two-pass sum over the
    window.
    """
    n = len(x)
    mean = np.full(n, np.nan)
    sd = np.full(n, np.nan)
    if window > n:
        return mean, sd
    if window == 1:
        mean[:] = x
        sd[:] = 0.0
        return mean, sd
    rows, count = _rows(x, window, max(_VAR_ROW, 2 * window))
    anchor = rows[:, :1]
    y = rows - anchor
    shifted = _window_sums(y, window, count)
    shifted /= window
    y *= y
    var = _window_sums(y, window, count)
    var /= window
    var -= shifted * shifted
    # the largest y**2 in the row up to each window's end: it bounds the rounding error, and
    # taking it causally keeps later bars from changing earlier values by even one bit
    scale = np.maximum.accumulate(y, axis=1)[:, window - 1 :].reshape(-1)[:count]
    mean[window - 1 :] = anchor[:, 0].repeat(rows.shape[1] - window + 1)[:count] + shifted
    suspect = np.flatnonzero(var < _SUSPECT * scale)
    step = max(1, _EXACT_CHUNK // window)
    for a in range(0, len(suspect), step):
        starts = suspect[a : a + step]
        values = x[starts[:, None] + np.arange(window)]
        dev = values - values.mean(axis=1, keepdims=True)
        resid = dev.sum(axis=1) / window
        dev *= dev
        var[starts] = dev.sum(axis=1) / window - resid * resid
    np.maximum(var, 0.0, out=var)
    sd[window - 1 :] = np.sqrt(var)
    return mean, sd


def linear_recurrence(u: FloatArray, a: float) -> FloatArray:
    """``y[i] = a * y[i-1] + u[i]`` with ``y[-1] = 0``, for ``0 <= a <= 1`` (a doubling scan)."""
    y = np.array(u, dtype=np.float64, copy=True)
    n = len(y)
    shift, power = 1, float(a)
    while shift < n and power > _NEGLIGIBLE:
        y[shift:] += power * y[:-shift]
        power *= power
        shift *= 2
    return y


def ema(x: FloatArray, window: int) -> FloatArray:
    """Exponential moving average, ``alpha = 2 / (window + 1)``, from bar ``window-1``.

    Seeded with the simple mean of the first ``window`` values at bar ``window-1``; then
    ``ema[i] = alpha * x[i] + (1 - alpha) * ema[i-1]``.
    """
    n = len(x)
    out = np.full(n, np.nan)
    if window > n:
        return out
    alpha = 2.0 / (window + 1)
    u = alpha * x[window - 1 :]
    u[0] = float(np.mean(x[:window]))
    out[window - 1 :] = linear_recurrence(u, 1.0 - alpha)
    return out


def wilder_rsi(close: FloatArray, period: int) -> FloatArray:
    """Wilder's RSI over ``period`` bars, from bar ``period``.

    ``gain[i] = max(close[i] - close[i-1], 0)``, ``loss[i] = max(close[i-1] - close[i], 0)``;
    the averages start as the simple means of bars ``1..period`` and then follow
    ``avg[i] = (avg[i-1] * (period - 1) + x[i]) / period``. ``RSI = 100 * G / (G + L)``, and 50 when
    both averages are 0 (no movement at all).
    """
    n = len(close)
    out = np.full(n, np.nan)
    if period >= n:
        return out
    change = np.diff(close)
    a = (period - 1) / period
    averages = []
    for moves in (np.maximum(change, 0.0), np.maximum(-change, 0.0)):
        u = moves[period - 1 :] / period
        u[0] = float(np.mean(moves[:period]))
        averages.append(linear_recurrence(u, a))
    gain, loss = averages
    total = gain + loss
    with np.errstate(invalid="ignore", divide="ignore"):
        rsi = np.where(total > 0, 100.0 * gain / total, 50.0)
    out[period:] = rsi
    return out


def _rolling_extreme(x: FloatArray, window: int, op: np.ufunc, fill: float) -> FloatArray:
    """van Herk / Gil-Werman: the extreme of each window from per-block prefix and suffix scans."""
    n = len(x)
    out = np.full(n, np.nan)
    if window > n:
        return out
    if window == 1:
        out[:] = x
        return out
    nblocks = -(-n // window)
    padded = np.full(nblocks * window, fill)
    padded[:n] = x
    blocks = padded.reshape(nblocks, window)
    prefix = op.accumulate(blocks, axis=1).ravel()
    suffix = op.accumulate(blocks[:, ::-1], axis=1)[:, ::-1].ravel()
    out[window - 1 :] = op(suffix[: n - window + 1], prefix[window - 1 : n])
    return out


def rolling_max(x: FloatArray, window: int) -> FloatArray:
    """``max(x[i-window+1 .. i])`` from bar ``window-1`` (exact)."""
    return _rolling_extreme(x, window, np.maximum, -np.inf)


def rolling_min(x: FloatArray, window: int) -> FloatArray:
    """``min(x[i-window+1 .. i])`` from bar ``window-1`` (exact)."""
    return _rolling_extreme(x, window, np.minimum, np.inf)


class IndicatorCache:
    """Indicators of one series of bars, each computed once: a sweep shares one cache across its
    parameter grid, so every distinct window is computed a single time.
    """

    def __init__(
        self, close: FloatArray, high: FloatArray, low: FloatArray, *, bars: Bars | None = None
    ) -> None:
        self.close = close
        self.high = high
        self.low = low
        self.bars = bars  # the rest of the columns, for rules and plugins (None: not given)
        self._memo: dict[tuple[str, int], tuple[FloatArray, ...]] = {}

    def _get(
        self, key: tuple[str, int], make: Callable[[], tuple[FloatArray, ...]]
    ) -> tuple[FloatArray, ...]:
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = make()
        return found

    @classmethod
    def of(cls, bars: Bars) -> IndicatorCache:
        """The cache of ``bars`` (every column reachable through ``.bars``)."""
        return cls(bars.close, bars.high, bars.low, bars=bars)

    def sma(self, window: int) -> FloatArray:
        return self._get(("sma", window), lambda: (rolling_mean(self.close, window),))[0]

    def ema(self, window: int) -> FloatArray:
        return self._get(("ema", window), lambda: (ema(self.close, window),))[0]

    def rsi(self, period: int) -> FloatArray:
        return self._get(("rsi", period), lambda: (wilder_rsi(self.close, period),))[0]

    def bands(self, window: int) -> tuple[FloatArray, FloatArray]:
        """Rolling mean and population standard deviation of the close."""
        mean, sd = self._get(("bands", window), lambda: rolling_mean_std(self.close, window))
        return mean, sd

    def highest(self, window: int) -> FloatArray:
        return self._get(("highest", window), lambda: (rolling_max(self.high, window),))[0]

    def lowest(self, window: int) -> FloatArray:
        return self._get(("lowest", window), lambda: (rolling_min(self.low, window),))[0]
