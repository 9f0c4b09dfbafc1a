"""A finished sweep's table, read back from its ``rows`` artifact (CSV) for sorted pages.

Numeric columns become float arrays (an empty cell, an undefined metric, is NaN and sorts last
either way); other columns stay strings. Sorting is numpy's stable argsort, so equal values keep
the table's order.
"""

from __future__ import annotations

import csv
import io
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ("SweepTable", "TableCache", "parse_table")


@dataclass(frozen=True, slots=True, eq=False)
class SweepTable:
    columns: tuple[str, ...]
    numeric: dict[str, NDArray[np.float64]]
    text: dict[str, list[str]]
    integral: frozenset[str]  # numeric columns whose every value is a whole number

    def __len__(self) -> int:
        first = self.columns[0]
        return len(self.numeric[first]) if first in self.numeric else len(self.text[first])

    def order(self, sort: str | None, descending: bool) -> NDArray[np.intp]:
        """Row indexes sorted by ``sort`` (None: the table's own order), undefined values last."""
        n = len(self)
        if sort is None:
            return np.arange(n)
        if sort in self.numeric:
            values = self.numeric[sort]
            defined = ~np.isnan(values)
            keys = np.where(defined, -values if descending else values, np.inf)
            return np.argsort(keys, kind="stable")
        ranked = sorted(range(n), key=lambda i: self.text[sort][i], reverse=descending)
        return np.asarray(ranked, dtype=np.intp)

    def rows(self, indexes: NDArray[np.intp]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i in indexes.tolist():
            row: dict[str, Any] = {}
            for column in self.columns:
                if column in self.numeric:
                    value = float(self.numeric[column][i])
                    if math.isnan(value):
                        row[column] = None
                    elif column in self.integral:
                        row[column] = int(value)
                    else:
                        row[column] = value
                else:
                    row[column] = self.text[column][i]
            out.append(row)
        return out


def parse_table(data: bytes) -> SweepTable:
    """The table in a ``rows`` artifact's CSV bytes."""
    reader = csv.reader(io.StringIO(data.decode()))
    header = next(reader)
    cells: list[list[str]] = [[] for _ in header]
    for record in reader:
        for column, value in zip(cells, record, strict=True):
            column.append(value)
    numeric: dict[str, NDArray[np.float64]] = {}
    text: dict[str, list[str]] = {}
    integral: set[str] = set()
    for name, column in zip(header, cells, strict=True):
        try:
            values = np.array([float(v) if v != "" else math.nan for v in column])
        except ValueError:
            text[name] = column
            continue
        numeric[name] = values
        if all(v == "" or _is_int(v) for v in column):
            integral.add(name)
    return SweepTable(tuple(header), numeric, text, frozenset(integral))


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()


class TableCache:
    """The most recently read tables, by task id (they never change once written)."""

    def __init__(self, size: int = 8) -> None:
        self._size = size
        self._tables: OrderedDict[str, Any] = OrderedDict()

    def get(self, key: str) -> Any:
        value = self._tables.get(key)
        if value is not None:
            self._tables.move_to_end(key)
        return value

    def put(self, key: str, value: Any) -> None:
        self._tables[key] = value
        self._tables.move_to_end(key)
        while len(self._tables) > self._size:
            self._tables.popitem(last=False)
