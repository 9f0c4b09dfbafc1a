"""Staging an import on disk a chunk at a time: column files, then one ``.npz`` bars file.

Memory stays at about one chunk while bars arrive (the interval and the gaps come from a
histogram of the spacings between bars, not from every timestamp); writing the final file streams
the columns from memory-mapped files a block at a time, and its sha256 is computed the same way.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from coinbt.data.gaps import GapReport
from coinbt.engine import Bars
from coinbt.engine.data import BARS_FORMAT_VERSION, iso_ms
from coinbt.errors import DataError

__all__ = ("Spool", "Staged", "sha256_of")

_KEYS = ("ts", "open", "high", "low", "close", "volume")
_BLOCK_ROWS = 1 << 16


@dataclass(frozen=True, slots=True)
class Staged:
    """A written bars file waiting to be registered."""

    path: Path
    rows: int
    start_ms: int
    end_ms: int
    interval_ms: int
    sha256: str
    gaps: GapReport


def sha256_of(path: Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def _write_npz(out: IO[bytes], columns: dict[str, NDArray[Any]], interval_ms: int) -> None:
    """What :func:`coinbt.engine.save_bars` writes, a block at a time from the (memory-mapped)
    columns: numpy's own writer buffers 16 MB per array."""
    extra = {
        "interval_ms": np.array(interval_ms, dtype=np.int64),
        "format_version": np.array(BARS_FORMAT_VERSION, dtype=np.int64),
    }
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for key, array in {**columns, **extra}.items():
            with archive.open(f"{key}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array_header_1_0(
                    f, np.lib.format.header_data_from_array_1_0(array)
                )
                flat = array.reshape(-1)
                for lo in range(0, max(len(flat), 1), _BLOCK_ROWS):
                    f.write(flat[lo : lo + _BLOCK_ROWS].tobytes())


class Spool:
    """Bars appended in time order (each chunk after the last), kept in column files under
    ``directory``; bars at or before ``after_ms`` are dropped (an update keeps only newer ones).
    Use as a context manager: the column files are removed at the end."""

    def __init__(self, directory: Path, prefix: str, after_ms: int | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._dir = Path(tempfile.mkdtemp(dir=directory, prefix=f".{prefix}.", suffix=".spool"))
        self._files: list[IO[bytes]] = [open(self._dir / k, "wb") for k in _KEYS]  # noqa: SIM115
        self.after_ms = after_ms
        self.rows = 0
        self.first_ms: int | None = None
        self.last_ms: int | None = None
        # Spacings between consecutive bars as a histogram (a few distinct values in real data),
        # and the first largest: the interval and the gaps without holding every timestamp.
        self._spacings: Counter[int] = Counter()
        self._largest = (0, 0)  # (spacing, timestamp of the bar before it)

    def add(self, bars: Bars | None) -> int:
        """Append ``bars`` (those after ``after_ms``); returns how many were kept."""
        if bars is None or len(bars) == 0:
            return 0
        start = 0
        if self.after_ms is not None:
            start = int(np.searchsorted(bars.ts, self.after_ms, side="right"))
        if start >= len(bars):
            return 0
        first = int(bars.ts[start])
        if self.last_ms is not None and first <= self.last_ms:
            raise DataError(
                f"bars at {iso_ms(first)} overlap the previous ones (up to "
                f"{iso_ms(self.last_ms)}): "
                "the pieces of a dataset must follow each other in time"
            )
        for f, column in zip(self._files, bars.to_arrays().values(), strict=True):
            column[start:].tofile(f)
        self._count_spacings(bars.ts[start:])
        self.rows += len(bars) - start
        self.first_ms = first if self.first_ms is None else self.first_ms
        self.last_ms = int(bars.ts[-1])
        return len(bars) - start

    def _count_spacings(self, ts: NDArray[np.int64]) -> None:
        if self.last_ms is not None:
            ts = np.concatenate(([self.last_ms], ts))
        if len(ts) < 2:
            return
        spacing = np.diff(ts)
        values, counts = np.unique(spacing, return_counts=True)
        self._spacings.update(dict(zip(values.tolist(), counts.tolist(), strict=True)))
        i = int(spacing.argmax())
        if int(spacing[i]) > self._largest[0]:
            self._largest = (int(spacing[i]), int(ts[i]))

    def interval_ms(self) -> int:
        """The median spacing, as :func:`coinbt.engine.data.infer_interval_ms` computes it."""
        total = sum(self._spacings.values())
        if total == 0:
            return 0
        ordered = sorted(self._spacings.items())

        def nth(k: int) -> int:
            seen = 0
            for value, count in ordered:
                seen += count
                if k < seen:
                    return value
            raise AssertionError("unreachable")

        if total % 2:
            return nth(total // 2)
        return int((nth(total // 2 - 1) + nth(total // 2)) / 2)

    def gaps(self, interval_ms: int) -> GapReport:
        if interval_ms <= 0:
            return GapReport()
        holes = {s: c for s, c in self._spacings.items() if s > interval_ms}
        if not holes:
            return GapReport()
        return GapReport(
            count=sum(holes.values()),
            missing=sum((s - 1) // interval_ms * c for s, c in holes.items()),
            largest_ms=self._largest[0],
            at_ms=self._largest[1],
        )

    def write(self, directory: Path, prefix: str, interval_ms: int | None = None) -> Staged:
        """Write the bars file (a new file in ``directory``); ``DataError`` if there are none."""
        for f in self._files:
            f.close()
        if self.rows == 0:
            raise DataError("no bars to import")
        ts: NDArray[np.int64] = np.memmap(self._dir / "ts", np.int64, "r", shape=(self.rows,))
        columns: list[NDArray[np.float64]] = [
            np.memmap(self._dir / k, np.float64, "r", shape=(self.rows,)) for k in _KEYS[1:]
        ]
        interval = self.interval_ms() if interval_ms is None else interval_ms
        fd, name = tempfile.mkstemp(dir=directory, prefix=f".{prefix}.", suffix=".partial")
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                _write_npz(out, dict(zip(_KEYS, [ts, *columns], strict=True)), interval)
            return Staged(
                path=path,
                rows=self.rows,
                start_ms=int(ts[0]),
                end_ms=int(ts[-1]),
                interval_ms=interval,
                sha256=sha256_of(path),
                gaps=self.gaps(interval),
            )
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        finally:
            del ts, columns

    def close(self) -> None:
        for f in self._files:
            f.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
