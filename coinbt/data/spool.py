"""Staging an import on disk a chunk at a time: column files, then one ``.npz`` bars file.

Memory stays at about one chunk while bars arrive; writing the final file streams the columns
from memory-mapped files, and its sha256 is computed a block at a time.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from numpy.typing import NDArray

from coinbt.data.gaps import GapReport, gap_report
from coinbt.engine import Bars, save_bars
from coinbt.engine.data import infer_interval_ms
from coinbt.errors import DataError

__all__ = ("Spool", "Staged", "sha256_of")

_KEYS = ("ts", "open", "high", "low", "close", "volume")


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
                f"bars at {first} (epoch ms) overlap the previous ones (up to {self.last_ms}): "
                "the pieces of a dataset must follow each other in time"
            )
        for f, column in zip(self._files, bars.to_arrays().values(), strict=True):
            column[start:].tofile(f)
        self.rows += len(bars) - start
        self.first_ms = first if self.first_ms is None else self.first_ms
        self.last_ms = int(bars.ts[-1])
        return len(bars) - start

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
        interval = infer_interval_ms(ts) if interval_ms is None else interval_ms
        o, h, lo, c, v = columns
        bars = Bars._trusted(ts, o, h, lo, c, v, interval_ms=interval)
        fd, name = tempfile.mkstemp(dir=directory, prefix=f".{prefix}.", suffix=".partial")
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                save_bars(out, bars)
            return Staged(
                path=path,
                rows=self.rows,
                start_ms=int(ts[0]),
                end_ms=int(ts[-1]),
                interval_ms=interval,
                sha256=sha256_of(path),
                gaps=gap_report(np.asarray(ts), interval),
            )
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        finally:
            del bars, ts, columns

    def close(self) -> None:
        for f in self._files:
            f.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
