"""Bars, intervals, the binary format and synthetic series."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest

from coinbt.engine import Bars, load_bars, parse_interval, save_bars, synthetic
from coinbt.errors import DataError, SpecError

T0 = 1_704_067_200_000


def five() -> dict[str, list[float] | list[int]]:
    return {
        "ts": [T0 + 60_000 * i for i in range(5)],
        "open": [10.0, 11.0, 12.0, 11.0, 10.0],
        "high": [11.0, 12.5, 12.0, 11.5, 10.5],
        "low": [9.5, 10.5, 11.0, 10.5, 9.0],
        "close": [11.0, 12.0, 11.0, 10.5, 9.5],
        "volume": [1.0, 2.0, 0.0, 3.0, 1.5],
    }


def test_bars_hold_read_only_copies() -> None:
    data = five()
    close = np.array(data["close"])
    bars = Bars(data["ts"], data["open"], data["high"], data["low"], close, data["volume"])
    close[0] = 99.0
    assert bars.close[0] == 11.0
    assert bars.ts.dtype == np.int64
    assert bars.close.dtype == np.float64
    assert len(bars) == 5
    assert bars.interval_ms == 60_000
    with pytest.raises(ValueError, match="read-only"):
        bars.close[0] = 1.0


def test_interval_is_the_median_spacing() -> None:
    data = five()
    data["ts"] = [T0, T0 + 60_000, T0 + 120_000, T0 + 600_000, T0 + 660_000]  # one gap
    assert Bars(**data).interval_ms == 60_000  # type: ignore[arg-type]
    assert Bars(**data, interval_ms=3_600_000).interval_ms == 3_600_000  # type: ignore[arg-type]
    one = {k: v[:1] for k, v in five().items()}
    assert Bars(**one).interval_ms == 0  # type: ignore[arg-type]


def test_slice_by_time_is_half_open() -> None:
    bars = Bars(**five())  # type: ignore[arg-type]
    part = bars.slice(T0 + 60_000, T0 + 180_000)
    assert part.ts.tolist() == [T0 + 60_000, T0 + 120_000]
    assert part.interval_ms == 60_000
    assert len(bars.slice(start_ms=T0 + 120_000)) == 3
    assert len(bars.slice(end_ms=T0 + 1)) == 1
    with pytest.raises(DataError, match="no bars"):
        bars.slice(T0 + 10_000_000)


BAD_BARS = [
    pytest.param("close", 2, float("nan"), "bar 2: close is nan", id="nan"),
    pytest.param("high", 1, float("inf"), "bar 1: high is inf", id="inf"),
    pytest.param("open", 3, 0.0, "bar 3: open price 0.0 is not positive", id="zero-price"),
    pytest.param("low", 0, -1.0, "bar 0: low price -1.0 is not positive", id="negative-price"),
    pytest.param("high", 4, 8.0, "bar 4: high 8.0 is below low 9.0", id="high-below-low"),
    pytest.param("open", 1, 13.0, "bar 1: open 13.0 is outside", id="open-above-high"),
    pytest.param("close", 2, 10.0, "bar 2: close 10.0 is outside", id="close-below-low"),
    pytest.param("volume", 3, -2.0, "bar 3: volume -2.0 is negative", id="negative-volume"),
    pytest.param("ts", 2, T0 + 60_000, "bar 2: timestamp .* repeats", id="duplicate-ts"),
    pytest.param("ts", 3, T0, "bar 3: timestamp .* is earlier than", id="unsorted-ts"),
]


@pytest.mark.parametrize(("column", "index", "value", "message"), BAD_BARS)
def test_bad_bars_name_the_bar(column: str, index: int, value: float, message: str) -> None:
    data = five()
    data[column][index] = value  # type: ignore[index]
    with pytest.raises(DataError, match=message):
        Bars(**data)  # type: ignore[arg-type]


def test_the_first_bad_bar_is_reported() -> None:
    data = five()
    data["volume"][4] = -1.0
    data["close"][1] = float("nan")
    with pytest.raises(DataError, match=r"^bar 1: close"):
        Bars(**data)  # type: ignore[arg-type]


def test_empty_and_ragged_arrays_are_rejected() -> None:
    with pytest.raises(DataError, match="empty"):
        Bars([], [], [], [], [], [])
    data = five()
    data["low"] = data["low"][:4]
    with pytest.raises(DataError, match="'low' must be a 1-d array as long as ts"):
        Bars(**data)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        pytest.param("1m", 60_000, id="1m"),
        pytest.param("5m", 300_000, id="5m"),
        pytest.param("15s", 15_000, id="15s"),
        pytest.param("4h", 14_400_000, id="4h"),
        pytest.param("1d", 86_400_000, id="1d"),
        pytest.param("1w", 604_800_000, id="1w"),
        pytest.param("250ms", 250, id="250ms"),
    ],
)
def test_parse_interval(text: str, ms: int) -> None:
    assert parse_interval(text) == ms


@pytest.mark.parametrize("text", ["", "m", "0m", "1M", "1y", "-1m", "1.5h", "one minute"])
def test_parse_interval_rejects(text: str) -> None:
    with pytest.raises(SpecError, match=r"^interval: invalid interval"):
        parse_interval(text)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    bars = synthetic(1_000, seed=5, interval="1h")
    path = tmp_path / "bars.npz"
    save_bars(path, bars)
    back = load_bars(path)
    assert back.interval_ms == 3_600_000
    for name, arr in bars.to_arrays().items():
        assert np.array_equal(getattr(back, name), arr)
    buffer = io.BytesIO()
    save_bars(buffer, bars)
    buffer.seek(0)
    assert np.array_equal(load_bars(buffer).close, bars.close)


def test_load_bars_rejects_other_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(DataError, match="cannot read bars file"):
        load_bars(junk)
    other = tmp_path / "other.npz"
    np.savez(other, ts=np.arange(3))
    with pytest.raises(DataError, match="missing arrays open"):
        load_bars(other)
    tampered = tmp_path / "tampered.npz"
    arrays = dict(synthetic(10).to_arrays())
    arrays["high"] = arrays["low"] * 0.5
    np.savez(tampered, **arrays, interval_ms=np.array(60_000))
    with pytest.raises(DataError, match=r"bar 0: high .* is below low"):
        load_bars(tampered)


def test_synthetic_is_deterministic_and_valid() -> None:
    a = synthetic(50_000, seed=42)
    b = synthetic(50_000, seed=42)
    for name, arr in a.to_arrays().items():
        assert np.array_equal(arr, getattr(b, name))
    assert not np.array_equal(a.close, synthetic(50_000, seed=43).close)
    assert np.all(a.high >= np.maximum(a.open, a.close))
    assert np.all(a.low <= np.minimum(a.open, a.close))
    assert np.all(a.low > 0)
    assert np.all(np.diff(a.ts) == 60_000)
    assert a.ts[0] == T0
    assert a.open[0] == 100.0
    # a shorter series is a prefix of a longer one with the same seed
    assert np.array_equal(synthetic(100, seed=42).close, a.close[:100])


def test_synthetic_bytes_are_pinned() -> None:
    """Same inputs, same bytes, on every machine: a change here changes every stored digest."""
    bars = synthetic(1_000, seed=1)
    h = hashlib.sha256()
    for arr in bars.to_arrays().values():
        h.update(arr.astype(arr.dtype.newbyteorder("<")).tobytes())
    assert h.hexdigest() == PINNED_SYNTHETIC_SHA256


PINNED_SYNTHETIC_SHA256 = "6295ddd5484180504aa70b3fcd18504d5e953afc600e9060c40443f0ca160b18"


def test_synthetic_options() -> None:
    bars = synthetic(10, seed=0, interval="1d", start_price=42_000.0, start_ts_ms=0)
    assert bars.interval_ms == 86_400_000
    assert bars.ts.tolist() == [86_400_000 * i for i in range(10)]
    assert bars.open[0] == 42_000.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        pytest.param({"bars": 0}, "bars", id="zero-bars"),
        pytest.param({"bars": 1.5}, "bars", id="float-bars"),
        pytest.param({"bars": 10, "seed": -1}, "seed", id="negative-seed"),
        pytest.param({"bars": 10, "interval": "1x"}, "interval", id="bad-interval"),
        pytest.param({"bars": 10, "start_price": 0.0}, "start_price", id="zero-price"),
        pytest.param({"bars": 10, "start_price": float("nan")}, "start_price", id="nan-price"),
    ],
)
def test_synthetic_rejects(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as info:
        synthetic(**kwargs)  # type: ignore[arg-type]
    assert [e.field for e in info.value.errors] == [field]
