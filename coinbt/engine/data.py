"""Market data: the :class:`Bars` container, bar intervals, validation, the binary format."""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from coinbt.errors import DataError, SpecError

__all__ = (
    "MAX_TIMESTAMP_MS",
    "MIN_TIMESTAMP_MS",
    "PRICE_COLUMNS",
    "Bars",
    "load_bars",
    "parse_interval",
    "save_bars",
    "validate_bars",
)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

PRICE_COLUMNS = ("open", "high", "low", "close")
# Bar timestamps must lie in [1900-01-01, 2200-01-01) UTC: wide enough for any market history,
# narrow enough that every one formats as a date (an upload at year -1199 once broke every listing).
MIN_TIMESTAMP_MS = -2_208_988_800_000
MAX_TIMESTAMP_MS = 7_258_118_400_000
_FORMAT_VERSION = 1
BARS_FORMAT_VERSION = _FORMAT_VERSION  # of the .npz files save_bars writes
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_INTERVAL_RE = re.compile(r"\s*([0-9]{1,15})\s*(ms|s|m|h|d|w)\s*")  # fullmatch; ASCII digits
MAX_INTERVAL_MS = 366 * 86_400_000  # a year: any longer bar is a mistake, and overflows int64


def parse_interval(text: str) -> int:
    """The length in milliseconds of a bar interval such as ``"1m"``, ``"15m"``, ``"4h"``, ``"1d"``.

    Units: ``ms``, ``s``, ``m`` (minutes), ``h``, ``d``, ``w``. Raises :class:`SpecError` (field
    ``interval``) for anything else, for a zero length, or for one over :data:`MAX_INTERVAL_MS`
    (366 days).
    """
    match = _INTERVAL_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None or int(match.group(1)) == 0:
        raise SpecError(
            f"invalid interval {text!r}: expected a positive number and a unit, like 1m, 5m, 1h "
            "or 1d (units: ms, s, m, h, d, w)",
            field="interval",
        )
    length = int(match.group(1)) * _UNIT_MS[match.group(2)]
    if length > MAX_INTERVAL_MS:
        raise SpecError(
            f"invalid interval {text!r}: at most {MAX_INTERVAL_MS // 86_400_000} days",
            field="interval",
        )
    return length


def _readonly(a: NDArray[Any]) -> NDArray[Any]:
    a.setflags(write=False)
    return a


@dataclass(frozen=True, slots=True, eq=False)
class Bars:
    """OHLCV bars: ``ts`` (int64 epoch milliseconds UTC, strictly increasing) and float64
    ``open``, ``high``, ``low``, ``close``, ``volume``. The arrays are read-only.

    ``interval_ms`` is the bar length used to annualize metrics: given, or inferred as the median
    spacing of ``ts`` (0 when unknown: a single bar with no interval given).

    The constructor copies and fully validates its inputs (:func:`validate_bars`), raising
    :class:`DataError` that names the offending bar.
    """

    ts: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray
    interval_ms: int = 0

    def __init__(
        self,
        ts: ArrayLike,
        open: ArrayLike,
        high: ArrayLike,
        low: ArrayLike,
        close: ArrayLike,
        volume: ArrayLike,
        interval_ms: int | None = None,
    ) -> None:
        stamps: IntArray = np.array(ts, dtype=np.int64, copy=True)
        if stamps.ndim != 1:
            raise DataError("ts must be a 1-d array")
        cols: list[FloatArray] = []
        for name, values in zip(
            ("open", "high", "low", "close", "volume"),
            (open, high, low, close, volume),
            strict=True,
        ):
            arr: FloatArray = np.array(values, dtype=np.float64, copy=True)
            if arr.ndim != 1 or len(arr) != len(stamps):
                raise DataError(f"column {name!r} must be a 1-d array as long as ts")
            cols.append(arr)
        o, h, lo, c, v = cols
        validate_bars(stamps, o, h, lo, c, v)
        _init(self, stamps, o, h, lo, c, v, interval_ms=interval_ms)

    @classmethod
    def _trusted(
        cls,
        ts: IntArray,
        open: FloatArray,
        high: FloatArray,
        low: FloatArray,
        close: FloatArray,
        volume: FloatArray,
        interval_ms: int | None = None,
    ) -> Bars:
        """Bars from arrays already validated and owned by the caller (no copy, no checks)."""
        self = object.__new__(cls)
        _init(self, ts, open, high, low, close, volume, interval_ms=interval_ms)
        return self

    def __len__(self) -> int:
        return len(self.ts)

    def __repr__(self) -> str:
        if len(self) == 0:
            return "Bars(0 bars)"
        return (
            f"Bars({len(self)} bars, ts {int(self.ts[0])}..{int(self.ts[-1])}, "
            f"interval_ms={self.interval_ms})"
        )

    def slice(self, start_ms: int | None = None, end_ms: int | None = None) -> Bars:
        """The bars with ``start_ms <= ts < end_ms`` (either bound optional), sharing memory.

        Raises :class:`DataError` when no bar falls in the range.
        """
        lo = 0 if start_ms is None else int(np.searchsorted(self.ts, start_ms, side="left"))
        hi = len(self) if end_ms is None else int(np.searchsorted(self.ts, end_ms, side="left"))
        if hi <= lo:
            raise DataError(f"no bars in the range [{iso_ms(start_ms)}, {iso_ms(end_ms)})")
        return Bars._trusted(
            self.ts[lo:hi],
            self.open[lo:hi],
            self.high[lo:hi],
            self.low[lo:hi],
            self.close[lo:hi],
            self.volume[lo:hi],
            interval_ms=self.interval_ms,
        )

    def with_interval(self, interval_ms: int) -> Bars:
        """The same bars with another ``interval_ms`` (for annualizing metrics)."""
        return Bars._trusted(
            self.ts, self.open, self.high, self.low, self.close, self.volume, interval_ms
        )

    def to_pandas(self) -> Any:
        """A DataFrame of ``open high low close volume`` indexed by UTC time (the ``coinbt[pandas]``
        extra; ``MissingExtraError`` without it); ``Bars.from_pandas`` gives these bars back."""
        from coinbt.engine._frames import bars_to_pandas

        return bars_to_pandas(self)

    @classmethod
    def from_pandas(cls, frame: Any, interval_ms: int | None = None) -> Bars:
        """Bars from a DataFrame: ``open high low close volume`` (any case) and a DatetimeIndex
        (tz-aware, or naive taken as UTC) or a ``ts`` column of epoch ms; validated like any bars
        (``DataError``). Needs the ``coinbt[pandas]`` extra."""
        from coinbt.engine._frames import bars_from_pandas

        return bars_from_pandas(frame, interval_ms)

    def to_arrays(self) -> dict[str, NDArray[Any]]:
        """The six columns by name (read-only views)."""
        return {
            "ts": self.ts,
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "close": self.close,
            "volume": self.volume,
        }


def _init(
    self: Bars,
    ts: IntArray,
    o: FloatArray,
    h: FloatArray,
    lo: FloatArray,
    c: FloatArray,
    v: FloatArray,
    *,
    interval_ms: int | None,
) -> None:
    names = ("ts", "open", "high", "low", "close", "volume")
    for name, arr in zip(names, (ts, o, h, lo, c, v), strict=True):
        object.__setattr__(self, name, _readonly(arr))
    if interval_ms is None:
        interval_ms = infer_interval_ms(ts)
    elif isinstance(interval_ms, bool) or not isinstance(interval_ms, int) or interval_ms < 0:
        raise DataError(f"interval_ms must be a non-negative integer, got {interval_ms!r}")
    object.__setattr__(self, "interval_ms", int(interval_ms))


def infer_interval_ms(ts: IntArray) -> int:
    """The median spacing of ``ts`` (0 for fewer than two bars)."""
    if len(ts) < 2:
        return 0
    gaps = np.diff(ts)
    first = gaps[0]
    if bool((gaps == first).all()):
        return int(first)
    return int(np.median(gaps))


def _first(mask: BoolArray) -> int | None:
    """The index of the first True, or None."""
    if not mask.any():
        return None
    return int(mask.argmax())


def validate_bars(
    ts: IntArray,
    o: FloatArray,
    h: FloatArray,
    lo: FloatArray,
    c: FloatArray,
    v: FloatArray,
    *,
    first_row: int | None = None,
) -> None:
    """Check OHLCV arrays; raise :class:`DataError` naming the first bad bar.

    Rules: at least one bar; every value finite; prices positive; ``low <= high``; ``open`` and
    ``close`` within ``[low, high]``; volume not negative; timestamps within
    ``[MIN_TIMESTAMP_MS, MAX_TIMESTAMP_MS)`` (1900 to 2200 UTC) and strictly increasing (no
    duplicates). ``first_row`` is the 1-based file row of bar 0: errors then name the file row
    (and column); otherwise they name the 0-based bar index.
    """
    n = len(ts)
    if n == 0:
        raise DataError("no bars: the data is empty")
    problems: list[tuple[int, int, str, str]] = []  # (index, rule order, column, message)

    def found(rule: int, index: int | None, column: str, message: str) -> None:
        if index is not None:
            problems.append((index, rule, column, message))

    columns = (("open", o), ("high", h), ("low", lo), ("close", c), ("volume", v))
    for rule, (name, arr) in enumerate(columns):
        i = _first(~np.isfinite(arr))
        if i is not None:
            found(rule, i, name, f"{name} is {float(arr[i])!r}, not a finite number")
    for rule, (name, arr) in enumerate(columns[:4], start=5):
        i = _first(arr <= 0)
        if i is not None:
            found(rule, i, name, f"{name} price {float(arr[i])!r} is not positive")
    i = _first(h < lo)
    if i is not None:
        found(9, i, "high", f"high {float(h[i])!r} is below low {float(lo[i])!r}")
    for rule, (name, arr) in enumerate((("open", o), ("close", c)), start=10):
        i = _first((arr < lo) | (arr > h))
        if i is not None:
            message = (
                f"{name} {float(arr[i])!r} is outside [low {float(lo[i])!r}, high {float(h[i])!r}]"
            )
            found(rule, i, name, message)
    i = _first(v < 0)
    if i is not None:
        found(12, i, "volume", f"volume {float(v[i])!r} is negative")
    i = _first((ts < MIN_TIMESTAMP_MS) | (ts >= MAX_TIMESTAMP_MS))
    if i is not None:
        message = (
            f"timestamp {int(ts[i])} (epoch ms, {iso_ms(int(ts[i]))}) is outside the "
            "supported range 1900-01-01 to 2200-01-01 UTC"
        )
        found(13, i, "timestamp", message)
    if n > 1:
        i = _first(np.diff(ts) <= 0)
        if i is not None:
            what = "repeats" if ts[i + 1] == ts[i] else "is earlier than"
            message = (
                f"timestamp {int(ts[i + 1])} {what} the previous bar's ({int(ts[i])}); "
                "timestamps must be strictly increasing"
            )
            found(14, i + 1, "timestamp", message)
    if problems:
        index, _, column, message = min(problems)
        if first_row is None:
            raise DataError(f"bar {index}: {message}")
        raise DataError(message, row=first_row + index, column=column)


# --- the binary format ------------------------------------------------------------------------

_KEYS = ("ts", "open", "high", "low", "close", "volume")


def save_bars(target: str | os.PathLike[str] | IO[bytes], bars: Bars) -> None:
    """Write ``bars`` to an uncompressed ``.npz`` file (fast to load; read back with load_bars)."""
    arrays: dict[str, Any] = dict(bars.to_arrays())
    arrays["interval_ms"] = np.array(bars.interval_ms, dtype=np.int64)
    arrays["format_version"] = np.array(_FORMAT_VERSION, dtype=np.int64)
    if isinstance(target, (str, os.PathLike)):
        with open(target, "wb") as f:  # an open file: np.savez would append ".npz" to a path
            np.savez(f, **arrays)
    else:
        np.savez(target, **arrays)


def load_bars(source: str | os.PathLike[str] | IO[bytes]) -> Bars:
    """Read bars written by :func:`save_bars`, validating them; :class:`DataError` if unusable."""
    try:
        with np.load(source, allow_pickle=False) as npz:
            missing = [k for k in (*_KEYS, "interval_ms") if k not in npz.files]
            if missing:
                raise DataError(f"not a coinbt bars file: missing arrays {', '.join(missing)}")
            ts = np.asarray(npz["ts"])
            cols = [np.asarray(npz[k]) for k in _KEYS[1:]]
            interval_ms = int(npz["interval_ms"])
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"cannot read bars file: {e}") from e
    if ts.dtype != np.int64 or any(c.dtype != np.float64 for c in cols):
        raise DataError("not a coinbt bars file: wrong array types")
    if ts.ndim != 1 or any(c.shape != ts.shape for c in cols):
        raise DataError("not a coinbt bars file: arrays of different lengths")
    ts = np.ascontiguousarray(ts)
    cols = [np.ascontiguousarray(c) for c in cols]
    o, h, lo, c, v = cols
    validate_bars(ts, o, h, lo, c, v)
    return Bars._trusted(ts, o, h, lo, c, v, interval_ms=interval_ms)


def iso_ms(ms: int | None) -> str:
    """Epoch milliseconds as ISO-8601 UTC for messages (``None`` for an open bound)."""
    if ms is None:
        return "None"
    try:
        moment = datetime.fromtimestamp(ms / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return f"{ms} (epoch ms)"
    return moment.isoformat().replace("+00:00", "Z").replace(".000Z", "Z")
