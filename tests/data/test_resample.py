"""Resampling against a plain-Python aggregation, on hypothesis bars with gaps."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coinbt import engine
from coinbt.data.gaps import find_gaps, gap_report
from coinbt.data.resample import resample
from coinbt.errors import DataError

MINUTE = 60_000
T0 = 1_704_067_200_000 + 17 * MINUTE  # not on an hour: the first bucket is partial


@st.composite
def minute_bars(draw: st.DrawFn) -> engine.Bars:
    steps = draw(st.lists(st.sampled_from([1, 1, 1, 1, 2, 7, 90]), min_size=1, max_size=400))
    ts = T0 + np.cumsum([0, *steps]).astype(np.int64) * MINUTE
    n = len(ts)
    price = st.floats(1.0, 1e6, allow_nan=False, allow_infinity=False)
    lows = np.array(draw(st.lists(price, min_size=n, max_size=n)))
    spans = np.array(draw(st.lists(st.floats(0, 100), min_size=n, max_size=n)))
    highs = lows + spans
    mix = np.array(draw(st.lists(st.floats(0, 1), min_size=n, max_size=n * 2)))[: 2 * n]
    mix = np.resize(mix, 2 * n)
    opens = np.clip(lows + spans * mix[:n], lows, highs)
    closes = np.clip(lows + spans * mix[n:], lows, highs)
    volumes = np.array(draw(st.lists(st.floats(0, 1e9), min_size=n, max_size=n)))
    return engine.Bars(ts, opens, highs, lows, closes, volumes, interval_ms=MINUTE)


def by_hand(
    bars: engine.Bars, interval: int
) -> list[tuple[int, float, float, float, float, float]]:
    out: list[list[float]] = []
    keys: list[int] = []
    for t, o, h, lo, c, v in zip(
        bars.ts.tolist(),
        bars.open.tolist(),
        bars.high.tolist(),
        bars.low.tolist(),
        bars.close.tolist(),
        bars.volume.tolist(),
        strict=True,
    ):
        key = t // interval * interval
        if keys and keys[-1] == key:
            row = out[-1]
            row[1], row[2], row[3] = max(row[1], h), min(row[2], lo), c
            row[4] = math.fsum([row[4], v])
        else:
            keys.append(key)
            out.append([o, h, lo, c, v])
    return [(k, *r) for k, r in zip(keys, out, strict=True)]  # type: ignore[misc]


@settings(max_examples=60, deadline=None)
@given(bars=minute_bars(), interval=st.sampled_from([5 * MINUTE, 60 * MINUTE, 1440 * MINUTE]))
def test_resample_is_the_plain_aggregation(bars: engine.Bars, interval: int) -> None:
    coarse = resample(bars, interval)
    got = list(
        zip(
            coarse.ts.tolist(),
            coarse.open.tolist(),
            coarse.high.tolist(),
            coarse.low.tolist(),
            coarse.close.tolist(),
            coarse.volume.tolist(),
            strict=True,
        )
    )
    expected = by_hand(bars, interval)
    assert [row[:5] for row in got] == [row[:5] for row in expected]  # OHLC: exact
    # Volume: numpy's pairwise float sum, within rounding of the exact sum.
    assert [row[5] for row in got] == pytest.approx([row[5] for row in expected], rel=1e-12)
    assert coarse.interval_ms == interval


def test_weeks_start_on_monday() -> None:
    bars = engine.synthetic(20_000, seed=3, interval="1h")
    weekly = resample(bars, 7 * 86_400_000)
    monday = 4 * 86_400_000
    assert ((weekly.ts - monday) % (7 * 86_400_000) == 0).all()


@pytest.mark.parametrize("target", [MINUTE, 90 * 1000, 0])
def test_a_target_that_is_not_a_larger_multiple_is_refused(target: int) -> None:
    with pytest.raises(DataError):
        resample(engine.synthetic(100, seed=1, interval="1m"), target)


def test_gap_report_and_largest_gaps() -> None:
    ts = T0 + np.array([0, 1, 2, 5, 6, 16, 17], dtype=np.int64) * MINUTE
    report = gap_report(ts, MINUTE)
    assert (report.count, report.missing, report.largest_ms, report.at_ms) == (
        2,
        11,
        10 * MINUTE,
        int(ts[4]),
    )
    gaps = find_gaps(ts, MINUTE)
    assert [(g.after_ms, g.before_ms, g.missing) for g in gaps] == [
        (int(ts[4]), int(ts[5]), 9),
        (int(ts[2]), int(ts[3]), 2),
    ]
    assert gap_report(ts[:3], MINUTE).count == 0


@settings(max_examples=60, deadline=None)
@given(bars=minute_bars(), pieces=st.integers(1, 5))
def test_the_spool_finds_the_interval_and_gaps_of_the_whole_series(
    bars: engine.Bars, pieces: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from coinbt.data.spool import Spool
    from coinbt.engine.data import infer_interval_ms

    folder = tmp_path_factory.mktemp("spool")
    with Spool(folder, "x") as spool:
        bounds = np.linspace(0, len(bars), pieces + 1).astype(int).tolist()
        for lo, hi in itertools.pairwise(bounds):
            piece = (
                engine.Bars(
                    bars.ts[lo:hi],
                    bars.open[lo:hi],
                    bars.high[lo:hi],
                    bars.low[lo:hi],
                    bars.close[lo:hi],
                    bars.volume[lo:hi],
                    interval_ms=MINUTE,
                )
                if hi > lo
                else None
            )
            spool.add(piece)
        interval = infer_interval_ms(bars.ts)
        assert spool.interval_ms() == interval
        assert spool.gaps(interval) == gap_report(bars.ts, interval)
        staged = spool.write(folder, "x")
    loaded = engine.load_bars(staged.path)
    assert np.array_equal(loaded.ts, bars.ts)
    assert np.array_equal(loaded.close, bars.close)
    assert loaded.interval_ms == interval
