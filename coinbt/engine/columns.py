"""A finished run's results as columnar artifacts (``.npy`` structured arrays), and back.

A run stores one artifact, ``result``: an uncompressed ``.npz`` (a zip of ``.npy`` members,
``numpy.load`` reads it) holding three tables; ``Completed`` records its sha256, so the hash chain
covers them (docs/event-log.md). Runs recorded before it store the same three tables as three
artifacts of their own (``equity``, ``fills``, ``trades``, each an ``.npy``); readers take both.

- ``equity``: ``ts`` (epoch ms), ``equity``, one row per bar;
- ``fills``: ``bar, ts, side (1 buy, -1 sell), qty, price, fee, reason (index into
  coinbt.engine.result.REASONS), asset (index into the run's symbols)``, in time order;
- ``trades``: the round trips of :mod:`coinbt.engine.ledger`, one row per trade in the order they
  opened; an open trade has ``exit_bar`` and ``exit_ts`` -1 and ``exit_reason`` -1.

Fills artifacts written before ``reason`` and ``asset`` existed lack those columns: they read as
``signal`` and asset 0. Reading is row-range based, so a page of a 275k-fill run stays cheap.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.lib import format as npformat
from numpy.typing import NDArray

from coinbt.engine.ledger import Trades
from coinbt.engine.result import REASONS, Fills

__all__ = (
    "EQUITY_DTYPE",
    "FILL_DTYPE",
    "TRADE_DTYPE",
    "equity_array",
    "fill_rows",
    "fills_array",
    "load_array",
    "load_arrays",
    "save_array",
    "save_arrays",
    "trade_rows",
    "trades_array",
)

EQUITY_DTYPE = np.dtype([("ts", "<i8"), ("equity", "<f8")])
FILL_DTYPE = np.dtype(
    [
        ("bar", "<i8"),
        ("ts", "<i8"),
        ("side", "i1"),
        ("qty", "<f8"),
        ("price", "<f8"),
        ("fee", "<f8"),
        ("reason", "i1"),
        ("asset", "<i2"),
    ]
)
TRADE_DTYPE = np.dtype(
    [
        ("asset", "<i2"),
        ("side", "i1"),
        ("entry_bar", "<i8"),
        ("entry_ts", "<i8"),
        ("entry_price", "<f8"),
        ("exit_bar", "<i8"),
        ("exit_ts", "<i8"),
        ("exit_price", "<f8"),
        ("qty", "<f8"),
        ("pnl", "<f8"),
        ("ret", "<f8"),
        ("fees", "<f8"),
        ("exit_reason", "i1"),
    ]
)

IntArray = NDArray[np.int64]


def equity_array(ts: IntArray, equity: NDArray[np.float64]) -> NDArray[Any]:
    out = np.empty(len(ts), dtype=EQUITY_DTYPE)
    out["ts"] = ts
    out["equity"] = equity
    return out


def fills_array(fills: Fills) -> NDArray[Any]:
    out = np.empty(len(fills), dtype=FILL_DTYPE)
    for name in FILL_DTYPE.names or ():
        out[name] = getattr(fills, name)
    return out


def trades_array(trades: Trades, ts_of: Callable[[IntArray], IntArray]) -> NDArray[Any]:
    """``ts_of(bars)`` gives the timestamps of bar indices (every entry and exit bar is valid)."""
    out = np.empty(len(trades), dtype=TRADE_DTYPE)
    for name in ("asset", "side", "entry_bar", "entry_price", "exit_bar", "exit_price", "qty"):
        out[name] = getattr(trades, name)
    out["pnl"] = trades.pnl
    out["ret"] = trades.ret
    out["fees"] = trades.fees
    out["exit_reason"] = trades.exit_reason
    out["entry_ts"] = ts_of(trades.entry_bar) if len(trades) else []
    closed = trades.exit_bar >= 0
    exit_ts = np.full(len(trades), -1, dtype=np.int64)
    if closed.any():
        exit_ts[closed] = ts_of(trades.exit_bar[closed])
    out["exit_ts"] = exit_ts
    return out


def save_array(array: NDArray[Any]) -> bytes:
    """``array`` in the ``.npy`` format (the bytes ``numpy.save`` writes)."""
    return b"".join(_npy_parts(array))


def _npy_parts(array: NDArray[Any]) -> tuple[bytes | memoryview, ...]:
    """The ``.npy`` bytes of ``array`` in parts: its header and its data (not copied)."""
    if array.ndim != 1 or not array.flags.c_contiguous or array.dtype.hasobject:
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        return (buffer.getvalue(),)
    # numpy.save's own header, built without its per-call dtype walk (a third of a tiny run's
    # artifact time): format 1.0, padded so the data starts at a multiple of 64 bytes.
    descr = _DESCRS.get(array.dtype)
    if descr is None:
        descr = _DESCRS[array.dtype] = repr(npformat.dtype_to_descr(array.dtype))
    n = len(array)
    header = f"{{'descr': {descr}, 'fortran_order': False, 'shape': ({n},), }}"
    header += " " * (_GROWTH_DIGITS - len(str(n)))  # room for the length to grow, like numpy
    header += " " * (-(len(header) + 11) % 64) + "\n"
    head = _MAGIC + len(header).to_bytes(2, "little") + header.encode("latin1")
    return head, array.view(np.uint8).data


_MAGIC = b"\x93NUMPY\x01\x00"
_GROWTH_DIGITS = 21  # numpy.lib.format.GROWTH_AXIS_MAX_DIGITS
_DESCRS: dict[np.dtype[Any], str] = {}


def load_array(data: bytes) -> NDArray[Any]:
    array: NDArray[Any] = np.load(io.BytesIO(data), allow_pickle=False)
    return array


def save_arrays(arrays: Mapping[str, NDArray[Any]]) -> bytes:
    """Several tables in one uncompressed ``.npz`` (``numpy.load`` reads it): a member
    ``<name>.npy`` per table, with fixed timestamps so the same tables make the same bytes."""
    members = [(f"{name}.npy".encode(), _npy_parts(array)) for name, array in arrays.items()]
    if sum(len(part) for _, parts in members for part in parts) >= _ZIP32_LIMIT:
        return _save_zip64(members)
    # A plain zip written by hand (zipfile's per-member bookkeeping was a quarter of a tiny
    # run's artifact time): per member a local header and its bytes, then the central
    # directory. Stored (no compression), no data descriptors, dates 1980-01-01.
    out: list[bytes | memoryview] = []
    central: list[bytes] = []
    offset = 0
    for name, parts in members:
        crc, size = 0, 0
        for part in parts:
            crc = zlib.crc32(part, crc)
            size += len(part)
        fields = (20, 0, 0, 0, _DOS_DATE, crc, size, size, len(name))
        local = _LOCAL.pack(_LOCAL_SIG, *fields, 0) + name
        central.append(_CENTRAL.pack(_CENTRAL_SIG, 20, *fields, 0, 0, 0, 0, 0, offset) + name)
        out += (local, *parts)
        offset += len(local) + size
    directory = b"".join(central)
    out += (
        directory,
        _END.pack(_END_SIG, 0, 0, len(members), len(members), len(directory), offset, 0),
    )
    return b"".join(out)


_ZIP32_LIMIT = 0xFFFF_0000  # bytes: beyond it, zip64 records (zipfile writes them)
_DOS_DATE = (1 << 5) | 1  # 1980-01-01, time 00:00:00
_LOCAL_SIG, _CENTRAL_SIG, _END_SIG = 0x04034B50, 0x02014B50, 0x06054B50
_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_END = struct.Struct("<IHHHHIIH")


def _save_zip64(members: list[tuple[bytes, tuple[bytes | memoryview, ...]]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, parts in members:
            info = zipfile.ZipInfo(name.decode(), (1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w", force_zip64=True) as member:
                for part in parts:
                    member.write(part)
    return buffer.getvalue()


def load_arrays(data: bytes) -> dict[str, NDArray[Any]]:
    """The tables of a ``.npz`` written by :func:`save_arrays`, by name."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {
            name.removesuffix(".npy"): load_array(archive.read(name)) for name in archive.namelist()
        }


def fill_rows(
    array: NDArray[Any], symbols: Sequence[str], offset: int = 0, limit: int | None = None
) -> list[dict[str, Any]]:
    """Rows ``offset`` to ``offset + limit`` of a fills artifact as
    ``{"bar", "ts", "side", "qty", "price", "fee", "reason", "symbol"}``."""
    page = array[offset : None if limit is None else offset + limit]
    names = page.dtype.names or ()
    reasons = page["reason"].tolist() if "reason" in names else [0] * len(page)
    assets = page["asset"].tolist() if "asset" in names else [0] * len(page)
    return [
        {
            "bar": bar,
            "ts": ts,
            "side": "buy" if side > 0 else "sell",
            "qty": qty,
            "price": price,
            "fee": fee,
            "reason": REASONS[reason],
            "symbol": symbols[asset] if asset < len(symbols) else "",
        }
        for bar, ts, side, qty, price, fee, reason, asset in zip(
            page["bar"].tolist(),
            page["ts"].tolist(),
            page["side"].tolist(),
            page["qty"].tolist(),
            page["price"].tolist(),
            page["fee"].tolist(),
            reasons,
            assets,
            strict=True,
        )
    ]


def trade_rows(
    array: NDArray[Any], symbols: Sequence[str], offset: int = 0, limit: int | None = None
) -> list[dict[str, Any]]:
    """Rows of a trades artifact in the shape of ``Trades.to_dicts(ts, symbols)``."""
    page = array[offset : None if limit is None else offset + limit]
    out: list[dict[str, Any]] = []
    for row in page.tolist():
        (asset, side, entry_bar, entry_ts, entry_price, exit_bar, exit_ts, exit_price, qty, pnl,
         ret, fees, reason) = row  # fmt: skip
        closed = exit_bar >= 0
        out.append(
            {
                "symbol": symbols[asset] if asset < len(symbols) else "",
                "side": "long" if side > 0 else "short",
                "entry_bar": entry_bar,
                "entry_price": entry_price,
                "exit_bar": exit_bar if closed else None,
                "exit_price": exit_price,
                "qty": qty,
                "pnl": pnl,
                "return": ret,
                "fees": fees,
                "duration_bars": exit_bar - entry_bar if closed else None,
                "exit_reason": REASONS[reason] if reason >= 0 else "open",
                "entry_ts": entry_ts,
                "exit_ts": exit_ts if closed else None,
            }
        )
    return out
