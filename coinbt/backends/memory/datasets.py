"""The dataset catalogue in memory: the ``datasets`` table as a dict of stored rows; the bars
files live under the data directory, as with every backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio

from coinbt.clock import Clock, SystemClock
from coinbt.datasets import CatalogBase, DatasetInfo, stored_values
from coinbt.errors import DatasetExistsError

__all__ = ("MemoryCatalog",)

_RETIRED_AT = 13  # the index of retired_at in a stored row (``coinbt.datasets.COLUMNS`` order)


class MemoryCatalog(CatalogBase):
    """Imported datasets recorded in ``rows`` ((name, version) -> row), which the caller may keep
    to open the same catalogue again."""

    def __init__(
        self,
        rows: dict[tuple[str, int], tuple[Any, ...]],
        data_dir: Path,
        clock: Clock | None = None,
    ) -> None:
        self._table = rows
        self.data_dir = data_dir
        self._clock = clock or SystemClock()

    async def _rows(self, name: str | None) -> list[Any]:
        await anyio.lowlevel.checkpoint()
        return [row for key, row in sorted(self._table.items()) if name in (None, key[0])]

    async def _insert(self, info: DatasetInfo, staged: Path, target: Path) -> None:
        await anyio.lowlevel.checkpoint()
        self._insert_now(info, staged, target)

    def _insert_now(self, info: DatasetInfo, staged: Path, target: Path) -> None:
        """Check, move the file and record it with no await between: as one transaction."""
        key = (info.name, info.version)
        if key in self._table:
            raise DatasetExistsError(info.name)
        staged.replace(target)  # one rename, as the databases' catalogues do in their transaction
        self._table[key] = stored_values(info)

    async def _set_retired(self, name: str, at_us: int) -> None:
        await anyio.lowlevel.checkpoint()
        for key, row in self._table.items():
            if key[0] == name and row[_RETIRED_AT] is None:
                self._table[key] = (*row[:_RETIRED_AT], at_us, *row[_RETIRED_AT + 1 :])
