"""A run's results as flat tables (fills, round-trip trades, the equity curve) and their CSV and
Parquet encodings.

A :class:`Table` is a tuple of named, typed columns. Times are epoch milliseconds UTC; the CSV
shows each twice, as ISO-8601 text (``time``, ``entry_time``...) and as the integer (``ts``...),
while Parquet stores a ``timestamp[ms, UTC]`` column and the integer. Floats are written with
Python's shortest round-trip repr, so a CSV reader gets the exact doubles back. ``None`` is an
empty CSV field and a Parquet null (the exit of a trade still open at the end).

Parquet needs pyarrow, the optional extra ``coinbt[parquet]``: without it :func:`encode` raises
:class:`~coinbt.errors.MissingExtraError` naming the extra.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from coinbt.engine.ledger import Trades
from coinbt.engine.result import REASONS, Fills
from coinbt.errors import InvalidRequestError, MissingExtraError

__all__ = (
    "FORMATS",
    "MEDIA_TYPES",
    "Column",
    "Table",
    "encode",
    "equity_table",
    "fills_table",
    "iso_ms",
    "trades_table",
)

Kind = Literal["time", "int", "float", "str"]
FORMATS = ("csv", "parquet")
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}


@dataclass(frozen=True, slots=True)
class Column:
    """``values``: a 1-d array, or a list holding ``None`` where a value is missing. A ``time``
    column holds epoch milliseconds."""

    name: str
    kind: Kind
    values: NDArray[Any] | Sequence[Any]


Table = tuple[Column, ...]


def iso_ms(ts: NDArray[np.int64]) -> list[str]:
    """Epoch milliseconds as ISO-8601 UTC text with a ``Z`` (``2024-01-01T00:00:00.000Z``)."""
    moments = np.asarray(ts, dtype=np.int64).astype("datetime64[ms]")
    text: list[str] = np.datetime_as_string(moments, unit="ms", timezone="UTC").tolist()
    return text


def fills_table(fills: Fills, symbols: Sequence[str]) -> Table:
    """One row per fill, in time order."""
    return (
        Column("time", "time", fills.ts),
        Column("bar", "int", fills.bar),
        Column("symbol", "str", [symbols[a] for a in fills.asset.tolist()]),
        Column("side", "str", ["buy" if s > 0 else "sell" for s in fills.side.tolist()]),
        Column("qty", "float", fills.qty),
        Column("price", "float", fills.price),
        Column("fee", "float", fills.fee),
        Column("reason", "str", [REASONS[r] for r in fills.reason.tolist()]),
    )


def trades_table(trades: Trades, ts: NDArray[np.int64], symbols: Sequence[str]) -> Table:
    """One row per round trip (``Trades.to_dicts``' fields), in the order they opened."""
    rows = trades.to_dicts(ts, symbols)

    def col(key: str) -> list[Any]:
        return [row[key] for row in rows]

    return (
        Column("symbol", "str", col("symbol")),
        Column("side", "str", col("side")),
        Column("entry_time", "time", col("entry_ts")),
        Column("entry_bar", "int", col("entry_bar")),
        Column("entry_price", "float", col("entry_price")),
        Column("exit_time", "time", col("exit_ts")),
        Column("exit_bar", "int", col("exit_bar")),
        Column("exit_price", "float", col("exit_price")),
        Column("qty", "float", col("qty")),
        Column("pnl", "float", col("pnl")),
        Column("return", "float", col("return")),
        Column("fees", "float", col("fees")),
        Column("duration_bars", "int", col("duration_bars")),
        Column("exit_reason", "str", col("exit_reason")),
    )


def equity_table(ts: NDArray[np.int64], equity: NDArray[np.float64]) -> Table:
    """Every bar's equity and drawdown (``equity / running peak - 1``, 0 or negative)."""
    equity = np.asarray(equity, dtype=np.float64)
    peak = np.maximum.accumulate(equity) if len(equity) else equity
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, equity / peak - 1.0, 0.0)
    return (
        Column("time", "time", np.asarray(ts, dtype=np.int64)),
        Column("equity", "float", equity),
        Column("drawdown", "float", dd),
    )


def encode(table: Table, fmt: str) -> bytes:
    """The table as ``csv`` or ``parquet`` bytes."""
    if fmt == "csv":
        return _csv(table)
    if fmt == "parquet":
        return _parquet(table)
    raise InvalidRequestError(f"must be one of {', '.join(FORMATS)}", field="format")


def _ts_name(name: str) -> str:
    return "ts" if name == "time" else name.removesuffix("_time") + "_ts"


def _items(column: Column) -> list[Any]:
    values = column.values
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


def _text(column: Column) -> list[list[str]]:
    """The column's CSV cells: two lists (ISO text, epoch ms) for a time, else one."""
    values = column.values
    if column.kind == "time":
        if isinstance(values, np.ndarray):
            ms = np.asarray(values, dtype=np.int64)
            return [iso_ms(ms), list(map(str, ms.tolist()))]
        items = list(values)
        present = [v for v in items if v is not None]
        iso = iter(iso_ms(np.array(present, dtype=np.int64)))
        text = ["" if v is None else next(iso) for v in items]
        return [text, ["" if v is None else str(v) for v in items]]
    items = _items(column)
    if column.kind == "str":
        return [["" if v is None else _quote(v) for v in items]]
    if None in items:
        return [["" if v is None else repr(v) for v in items]]
    return [list(map(repr, items))]


def _quote(value: str) -> str:
    if any(c in value for c in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _csv(table: Table) -> bytes:
    header: list[str] = []
    cells: list[list[str]] = []
    for column in table:
        header += [column.name, _ts_name(column.name)] if column.kind == "time" else [column.name]
        cells += _text(column)
    lines = [",".join(header), *map(",".join, zip(*cells, strict=True))]
    return ("\n".join(lines) + "\n").encode()


def _parquet(table: Table) -> bytes:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:
        raise MissingExtraError("Parquet export", "parquet", "pyarrow") from e
    arrays: list[Any] = []
    names: list[str] = []
    types = {"int": pa.int64(), "float": pa.float64(), "str": pa.string()}
    for column in table:
        values = column.values
        items = values if isinstance(values, np.ndarray) else list(values)
        if column.kind == "time":
            ints = pa.array(items, type=pa.int64())
            arrays.append(ints.cast(pa.timestamp("ms", tz="UTC")))
            names.append(column.name)
            arrays.append(ints)
            names.append(_ts_name(column.name))
        else:
            arrays.append(pa.array(items, type=types[column.kind]))
            names.append(column.name)
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_arrays(arrays, names=names), sink)
    return sink.getvalue()
