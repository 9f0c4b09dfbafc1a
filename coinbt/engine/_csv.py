"""Reading OHLCV CSV files: the header format and Binance kline files (see docs/engine.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import IO

import numpy as np
from numpy.typing import NDArray

from coinbt.engine._iso import parse_iso
from coinbt.engine._tokens import chunk_bounds, parse_floats, split_fields
from coinbt.engine.data import Bars, validate_bars
from coinbt.errors import DataError

__all__ = ("load_csv", "parse_csv")

_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
# Header names of the time column (compared lower-cased and stripped): ours, Binance's, and what
# TradingView, Yahoo Finance and ccxt-based exports call it. The first one present is used.
_TIMESTAMP_NAMES = (
    "timestamp",
    "open_time",
    "open time",
    "opentime",
    "datetime",
    "date",
    "time",
    "ts",
)
_BINANCE_COLUMNS = 12
_UNITS = ("seconds", "milliseconds", "microseconds", "nanoseconds")
_UNIT_LIMITS = (1e11, 1e14, 1e17)  # |t| below 1e11 is seconds, below 1e14 milliseconds, ...
_TO_MS = (1000.0, 1.0, 1e-3, 1e-6)
_INT_DIVISOR = (None, 1, 1_000, 1_000_000)


@dataclass(frozen=True, slots=True)
class _Layout:
    header: bool
    ncol: int
    index: tuple[int, ...]  # field index of timestamp, open, high, low, close, volume


def load_csv(source: str | os.PathLike[str] | IO[bytes]) -> Bars:
    """Read OHLCV bars from a CSV file (a path or a binary file object); see :func:`parse_csv`.

    Raises :class:`DataError` when the file cannot be read or its content is unusable.
    """
    if isinstance(source, (str, os.PathLike)):
        try:
            with open(source, "rb") as f:
                data = f.read()
        except OSError as e:
            raise DataError(f"cannot read {os.fspath(source)}: {e.strerror or e}") from e
    else:
        data = source.read()
    return parse_csv(data)


def parse_csv(data: bytes | bytearray | memoryview | str) -> Bars:
    """Parse CSV content into validated :class:`Bars`.

    Two layouts: a header naming ``timestamp`` (or ``open_time``, ``date``, ``time``,
    ``datetime``, ``ts``; any case), ``open``, ``high``, ``low``, ``close`` and ``volume`` in any
    order (other columns are ignored), or no header with either those six columns in that order
    or the 12 columns of a Binance kline file. ccxt's list of lists (``[[t, o, h, l, c, v], ...]``
    as JSON, or one bracketed row per line) reads as the six-column form. Timestamps are
    ISO-8601 or epoch seconds, milliseconds, microseconds or nanoseconds (the unit detected from the
    first row's magnitude, rounded to the nearest millisecond). Raises :class:`DataError` naming the
    1-based row (and column) of the first problem.
    """
    if isinstance(data, str):
        data = data.encode()
    elif not isinstance(data, bytes):
        data = bytes(data)
    # The body is data[begin:end], ending with a newline; slicing would copy the whole file.
    begin = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if b'"' in data:
        data = data.replace(b'"', b"")
    if data[begin : begin + 64].lstrip().startswith(b"["):
        data = _unbracket(data, begin)
    stop = len(data)
    while stop > begin and data[stop - 1] in b" \t\n\x0b\x0c":
        stop -= 1
    if stop == begin:
        raise DataError("the file is empty")
    newline = data.find(b"\n", begin, stop)
    layout = _layout(data[begin : stop if newline < 0 else newline])
    if layout.header:
        if newline < 0:
            raise DataError("no data rows: the file has only a header")
        begin, first_row = newline + 1, 2
    else:
        first_row = 1
    if stop == len(data) or data[stop] != 10:
        data = data[:stop] + b"\n"
    return _parse_body(data, begin, stop + 1, layout, first_row)


def _unbracket(data: bytes, begin: int) -> bytes:
    """ccxt's ``fetch_ohlcv`` list of lists, as JSON (``[[t, o, h, l, c, v], ...]``) or one
    ``[t, o, h, l, c, v]`` per line, to plain CSV rows."""
    body = data[begin:].replace(b" ", b"").replace(b"\t", b"")
    body = body.replace(b"],[", b"\n").replace(b"],\n[", b"\n").replace(b"]\n[", b"\n")
    body = body.replace(b"[", b"").replace(b"]", b"").replace(b"\n,", b"\n")
    return data[:begin] + body.lstrip(b"\n,")


def _looks_numeric(field: bytes) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _layout(first_line: bytes) -> _Layout:
    fields = first_line.split(b",")
    if _looks_numeric(fields[0]):
        if len(fields) == _BINANCE_COLUMNS or len(fields) == len(_COLUMNS):
            return _Layout(header=False, ncol=len(fields), index=tuple(range(6)))
        raise DataError(
            f"no header, and {len(fields)} columns is not a Binance kline row "
            f"({_BINANCE_COLUMNS} columns): start the file with the header "
            "timestamp,open,high,low,close,volume",
            row=1,
        )
    names = [f.decode("utf-8", "replace").strip().lower() for f in fields]
    positions: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in positions:
            raise DataError(f"column {name!r} appears twice in the header", row=1)
        positions[name] = i
    ts_name = next((n for n in _TIMESTAMP_NAMES if n in positions), None)
    if ts_name is None and not any(c in positions for c in _COLUMNS[1:]):
        raise DataError(
            "no header: the first line must name the columns timestamp,open,high,low,close,volume "
            "(or the file must be a Binance kline CSV)",
            row=1,
        )
    for column in _COLUMNS:
        if (column == "timestamp" and ts_name is None) or (
            column != "timestamp" and column not in positions
        ):
            raise DataError(
                f"missing column {column!r}: the header must name timestamp (or date, time, "
                "datetime, open_time), open, high, low, close and volume",
                row=1,
            )
    index = (positions[ts_name or "timestamp"], *(positions[c] for c in _COLUMNS[1:]))
    return _Layout(header=True, ncol=len(fields), index=index)


def _parse_body(body: bytes, begin: int, end: int, layout: _Layout, first_row: int) -> Bars:
    first_fields = body[begin : body.find(b"\n", begin)].split(b",")
    k = layout.index[0]
    numeric_ts = k < len(first_fields) and _looks_numeric(first_fields[k])
    whole = np.frombuffer(body, dtype=np.uint8)
    ts_parts: list[NDArray[np.float64] | NDArray[np.int64]] = []
    exact: dict[int, int] = {}  # epoch integers the fast path could not hold exactly
    parts: list[list[NDArray[np.float64]]] = [[] for _ in range(5)]
    done = 0
    for lo, hi in chunk_bounds(body, begin, end):
        buf = whole[lo:hi]
        starts, ends = split_fields(buf, layout.ncol, first_row + done)
        rows = len(starts)
        for j, column in enumerate(_COLUMNS[1:]):
            k = layout.index[j + 1]
            values, bad = parse_floats(buf, starts[:, k], ends[:, k])
            for i in np.flatnonzero(bad).tolist():
                text = body[lo + int(starts[i, k]) : lo + int(ends[i, k])]
                values[i] = _slow_float(text, first_row + done + i, column)
            parts[j].append(values)
        k = layout.index[0]
        if numeric_ts:
            values, bad = parse_floats(buf, starts[:, k], ends[:, k])
            for i in np.flatnonzero(bad).tolist():
                text = body[lo + int(starts[i, k]) : lo + int(ends[i, k])]
                number = _slow_number(text, first_row + done + i)
                values[i] = number
                if isinstance(number, int):
                    exact[done + i] = number
            ts_parts.append(values)
        else:
            ms, bad = parse_iso(buf, starts[:, k], ends[:, k])
            if bad.any():
                i = int(bad.argmax())
                text = body[lo + int(starts[i, k]) : lo + int(ends[i, k])]
                raise DataError(
                    f"cannot parse {_show(text)} as a timestamp (expected ISO-8601 like "
                    "2024-01-01T00:00:00Z, or epoch seconds or milliseconds)",
                    row=first_row + done + i,
                    column="timestamp",
                )
            ts_parts.append(ms)
        done += rows
    columns = [np.concatenate(p) for p in parts]
    if numeric_ts:
        ts = _epoch_to_ms(np.concatenate(ts_parts).astype(np.float64), exact, first_row)
    else:
        ts = np.concatenate(ts_parts).astype(np.int64)
    o, h, low, c, v = columns
    validate_bars(ts, o, h, low, c, v, first_row=first_row)
    return Bars._trusted(ts, o, h, low, c, v)


def _show(text: bytes) -> str:
    shown = text.decode("utf-8", "replace")
    return repr(shown if len(shown) <= 40 else shown[:40] + "...")


def _slow_float(text: bytes, row: int, column: str) -> float:
    if not text.strip():
        raise DataError("empty value", row=row, column=column)
    try:
        return float(text)
    except ValueError:
        raise DataError(f"cannot parse {_show(text)} as a number", row=row, column=column) from None


def _slow_number(text: bytes, row: int) -> int | float:
    try:
        return int(text)
    except ValueError:
        pass
    return _slow_float(text, row, "timestamp")


def _unit(value: float) -> int:
    magnitude = abs(value)
    return sum(magnitude >= limit for limit in _UNIT_LIMITS)


def _epoch_to_ms(
    values: NDArray[np.float64], exact: dict[int, int], first_row: int
) -> NDArray[np.int64]:
    """Epoch numbers in one unit (detected from the first) to integer milliseconds."""
    if not np.isfinite(values).all():
        i = int((~np.isfinite(values)).argmax())
        raise DataError(
            f"timestamp {values[i]!r} is not finite", row=first_row + i, column="timestamp"
        )
    unit = _unit(float(values[0]))
    magnitude = np.abs(values)
    units = np.zeros(len(values), dtype=np.int64)
    for limit in _UNIT_LIMITS:
        units += magnitude >= limit
    bad = units != unit
    if bad.any():
        i = int(bad.argmax())
        raise DataError(
            f"timestamp {values[i]!r} looks like epoch {_UNITS[int(units[i])]} but the first row's "
            f"is in {_UNITS[unit]}: every timestamp must use the same unit",
            row=first_row + i,
            column="timestamp",
        )
    ms = np.rint(values * _TO_MS[unit]).astype(np.int64)
    divisor = _INT_DIVISOR[unit]
    for i, number in exact.items():  # exact integer arithmetic where float64 is not enough
        if divisor is None:
            value = number * 1000
        else:
            q, r = divmod(number, divisor)
            value = q + (2 * r > divisor or (2 * r == divisor and q % 2 == 1))
        if not -(2**63) <= value < 2**63:
            raise DataError(
                f"timestamp {number} is out of range", row=first_row + i, column="timestamp"
            )
        ms[i] = value
    return ms
