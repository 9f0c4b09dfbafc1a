"""The columnar artifact formats (coinbt.engine.columns): ``save_array`` writes exactly what
``numpy.save`` writes, and ``save_arrays`` a ``.npz`` that numpy and zipfile read back."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from coinbt.engine import columns
from coinbt.engine.columns import (
    EQUITY_DTYPE,
    FILL_DTYPE,
    TRADE_DTYPE,
    load_array,
    load_arrays,
    save_array,
    save_arrays,
)

DTYPES = (EQUITY_DTYPE, FILL_DTYPE, TRADE_DTYPE, np.dtype("<f8"), np.dtype("<i8"), np.dtype("i1"))


def _filled(n: int, dtype: np.dtype[Any]) -> NDArray[Any]:
    raw = np.arange(n * dtype.itemsize, dtype=np.uint64).astype(np.uint8)
    return raw.view(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_save_array_writes_numpy_saves_bytes(dtype: np.dtype[Any]) -> None:
    # Every length up to 129 (the header's padding cycles with the digits of the length) and a
    # few large ones.
    for n in [*range(130), 999, 10_000, 123_456]:
        array = _filled(n, dtype)
        expected = io.BytesIO()
        np.save(expected, array, allow_pickle=False)
        assert save_array(array) == expected.getvalue(), n
        back = load_array(save_array(array))
        assert (back.dtype, back.tobytes()) == (array.dtype, array.tobytes())


def test_save_array_of_other_shapes_falls_back_to_numpy() -> None:
    for array in (np.zeros((3, 4)), np.arange(10)[::2], np.asfortranarray(np.ones((2, 3)))):
        expected = io.BytesIO()
        np.save(expected, array, allow_pickle=False)
        assert save_array(array) == expected.getvalue()


def _tables(n: int) -> dict[str, NDArray[Any]]:
    return {
        "equity": _filled(n, EQUITY_DTYPE),
        "fills": _filled(n // 3, FILL_DTYPE),
        "trades": _filled(n // 7, TRADE_DTYPE),
    }


@pytest.mark.parametrize("zip64", [False, True], ids=["zip", "zip64"])
def test_save_arrays_writes_an_npz_numpy_and_zipfile_read(
    zip64: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if zip64:  # what a table over 4 GiB gets, without writing one
        monkeypatch.setattr(columns, "_ZIP32_LIMIT", 0)
    tables = _tables(300)
    data = save_arrays(tables)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None  # every member's CRC holds
        assert archive.namelist() == ["equity.npy", "fills.npy", "trades.npy"]
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        for name, array in tables.items():
            assert archive.read(f"{name}.npy") == save_array(array)
    loaded = np.load(io.BytesIO(data), allow_pickle=False)
    for name, array in tables.items():
        back = loaded[name]  # (bytes compared: the arbitrary bit patterns include NaNs)
        assert (back.dtype, back.tobytes()) == (array.dtype, array.tobytes())
    assert load_arrays(data).keys() == tables.keys()
    assert save_arrays(tables) == data  # the same tables, the same bytes


def test_save_arrays_of_empty_tables() -> None:
    tables = _tables(0)
    loaded = load_arrays(save_arrays(tables))
    assert {name: len(array) for name, array in loaded.items()} == {
        "equity": 0,
        "fills": 0,
        "trades": 0,
    }
    assert load_arrays(save_arrays({})) == {}
