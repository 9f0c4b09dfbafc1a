"""Vectorized indicators against plain loops: ~1e-12 relative, no look-ahead, edge windows."""

from __future__ import annotations

import numpy as np
import pytest

from coinbt.engine import synthetic
from coinbt.engine.indicators import (
    ema,
    linear_recurrence,
    rolling_max,
    rolling_mean,
    rolling_mean_std,
    rolling_min,
    wilder_rsi,
)
from tests.engine import reference

CLOSE = synthetic(6_000, seed=11).close
WINDOWS = [1, 2, 3, 10, 30, 200, 2_999, 6_000]


def as_array(series: list[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in series])


def assert_close(got: np.ndarray, want: np.ndarray, rtol: float = 1e-12) -> None:
    assert np.array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[~np.isnan(got)], want[~np.isnan(want)], rtol=rtol, atol=0)


@pytest.mark.parametrize("window", WINDOWS)
def test_rolling_mean(window: int) -> None:
    assert_close(rolling_mean(CLOSE, window), as_array(reference.sma(CLOSE.tolist(), window)))


@pytest.mark.parametrize("window", [2, 3, 20, 200])
def test_rolling_mean_std(window: int) -> None:
    x = CLOSE[:2_000]
    mean, sd = rolling_mean_std(x, window)
    assert_close(mean, as_array(reference.sma(x.tolist(), window)))
    # the standard deviation relative to the price level (what the bands compare against)
    want = as_array(reference.stdev(x.tolist(), window))
    assert np.nanmax(np.abs(sd - want) / x) < 1e-11


@pytest.mark.parametrize("window", WINDOWS)
def test_ema(window: int) -> None:
    assert_close(ema(CLOSE, window), as_array(reference.ema(CLOSE.tolist(), window)))


@pytest.mark.parametrize("period", [2, 14, 100, 5_999, 6_000])
def test_wilder_rsi(period: int) -> None:
    assert_close(wilder_rsi(CLOSE, period), as_array(reference.rsi(CLOSE.tolist(), period)))


@pytest.mark.parametrize("window", [1, 2, 7, 64, 6_000])
def test_rolling_extremes_are_exact(window: int) -> None:
    x = CLOSE.tolist()
    top = [np.nan] * (window - 1) + [
        max(x[i - window + 1 : i + 1]) for i in range(window - 1, len(x))
    ]
    low = [np.nan] * (window - 1) + [
        min(x[i - window + 1 : i + 1]) for i in range(window - 1, len(x))
    ]
    assert np.array_equal(rolling_max(CLOSE, window), np.array(top), equal_nan=True)
    assert np.array_equal(rolling_min(CLOSE, window), np.array(low), equal_nan=True)


def test_windows_longer_than_the_series_are_all_undefined() -> None:
    x = CLOSE[:5]
    for values in (rolling_mean(x, 6), ema(x, 6), wilder_rsi(x, 5), rolling_max(x, 6)):
        assert np.isnan(values).all()


def test_flat_prices_give_exact_averages_and_zero_spread() -> None:
    x = np.full(5_000, 42_000.37)
    for window in (2, 30, 500):
        assert np.array_equal(rolling_mean(x, window)[window - 1 :], x[window - 1 :])
        assert np.array_equal(
            rolling_mean_std(x, window)[1][window - 1 :], np.zeros(5_001 - window)
        )
    assert np.allclose(ema(x, 30)[29:], 42_000.37, rtol=1e-15)
    assert np.array_equal(wilder_rsi(x, 14)[14:], np.full(4_986, 50.0))


def test_recurrence_is_stable_for_slow_decay() -> None:
    u = np.ones(100_000)
    a = 1 - 1e-4
    y = linear_recurrence(u, a)
    expected = (1 - a ** np.arange(1, 100_001)) / (1 - a)
    np.testing.assert_allclose(y, expected, rtol=1e-11)


@pytest.mark.parametrize(
    "fn",
    [
        pytest.param(lambda x: rolling_mean(x, 50), id="sma"),
        pytest.param(lambda x: rolling_mean_std(x, 50)[1], id="std"),
        pytest.param(lambda x: ema(x, 50), id="ema"),
        pytest.param(lambda x: wilder_rsi(x, 14), id="rsi"),
        pytest.param(lambda x: rolling_max(x, 50), id="max"),
    ],
)
def test_values_do_not_depend_on_later_bars(fn: object) -> None:
    x = CLOSE.copy()
    before = fn(x)  # type: ignore[operator]
    x[3_001:] *= 1.5  # rewrite the future
    after = fn(x)  # type: ignore[operator]
    assert np.array_equal(before[:3_001], after[:3_001], equal_nan=True)


# Found by hypothesis: bars 31-33 are almost equal (a 2e-10 move) after moves of ~0.3 %.
NEAR_FLAT = [
    10019.27079779409,
    9991.026565168837,
    10011.171547198193,
    10035.236937586136,
    10042.105348056168,
    10069.129962920279,
    10103.035323098686,
    10071.327266657,
    10071.327266657,
    10071.347409321603,
    10071.347409321603,
    10071.347409321603,
    10057.430839864859,
    10024.406398579229,
    10050.282277464414,
    10063.571125736911,
    10043.339936953214,
    10010.66436215815,
    10010.66436215815,
    10010.66436215815,
    10014.26835880011,
    9994.70970449337,
    10021.350250714198,
    10021.349056076191,
    10021.192686148845,
    10056.23600196682,
    10030.797028803716,
    10030.163714280492,
    10008.36273619784,
    10009.741448990135,
    10009.741448990135,
    10049.82045375189,
    10049.82045375189,
    10049.820455761856,
    10038.680033579174,
    10053.226621845157,
]


def test_near_flat_windows_after_a_move_keep_their_precision() -> None:
    # Anchored sums of y and y**2 cancel when a window's variance is tiny next to y**2: those
    # windows are recomputed exactly, so the band stays exact to ~1e-16 of the price.
    x = np.array(NEAR_FLAT)
    _, sd = rolling_mean_std(x, 3)
    want = as_array(reference.stdev(NEAR_FLAT, 3))
    assert np.nanmax(np.abs(sd - want) / x) < 1e-15
    flat = np.concatenate((x, np.full(10, 10_000.0)))
    assert np.all(rolling_mean_std(flat, 3)[1][-8:] == 0.0)


@pytest.mark.parametrize("window", [2, 30, 300])
def test_values_do_not_depend_on_the_series_length(window: int) -> None:
    # short series take a one-row path; it must agree bit for bit with the long layout
    full = rolling_mean(CLOSE, window)
    full_sd = rolling_mean_std(CLOSE, window)[1]
    for n in (window, window + 10, 400, 600, 1_100, 3_000):
        assert np.array_equal(rolling_mean(CLOSE[:n], window), full[:n], equal_nan=True)
        assert np.array_equal(rolling_mean_std(CLOSE[:n], window)[1], full_sd[:n], equal_nan=True)
