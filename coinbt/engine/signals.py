"""What a strategy produces: boolean signal arrays, one value per bar.

``entries`` are bullish signals and ``exits`` bearish ones (a long-only run enters on the first and
leaves on the second); ``short_entries`` / ``short_exits`` are optional (None when a strategy has
none). A value at bar ``i`` may use data up to and including bar ``i``'s close only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ("SIGNAL_NAMES", "Signals", "SignalsError", "as_signals")

BoolArray = NDArray[np.bool_]
SIGNAL_NAMES = ("entries", "exits", "short_entries", "short_exits")


class SignalsError(ValueError):
    """A strategy returned something that is not valid signals (the message says what)."""


@dataclass(frozen=True, slots=True)
class Signals:
    entries: BoolArray
    exits: BoolArray
    short_entries: BoolArray | None = None
    short_exits: BoolArray | None = None


def _array(name: str, value: Any, n: int) -> BoolArray:
    if not isinstance(value, np.ndarray):
        raise SignalsError(f"{name} must be a numpy array, got {type(value).__name__}")
    if value.ndim != 1 or len(value) != n:
        raise SignalsError(f"{name} must have one value per bar ({n}), got shape {value.shape}")
    if value.dtype == np.bool_:
        return np.ascontiguousarray(value)
    if value.dtype.kind == "f" and bool(np.isnan(value).any()):
        first = int(np.flatnonzero(np.isnan(value))[0])
        raise SignalsError(f"{name} holds NaN (first at bar {first}); signals are true or false")
    if value.dtype.kind in "iuf":
        bad = ~np.isin(value, (0, 1))
        if bool(bad.any()):
            first = int(np.flatnonzero(bad)[0])
            raise SignalsError(
                f"{name} must be boolean (or 0/1), got {value[first]!r} at bar {first}"
            )
        return value.astype(np.bool_)
    raise SignalsError(f"{name} must be a boolean array, got dtype {value.dtype}")


def as_signals(value: object, n: int) -> Signals:
    """Check what a strategy returned: a :class:`Signals`, a mapping with those keys, or a tuple
    ``(entries, exits[, short_entries, short_exits])``; :class:`SignalsError` otherwise."""
    if isinstance(value, Signals):
        parts: dict[str, Any] = {k: getattr(value, k) for k in SIGNAL_NAMES}
    elif isinstance(value, Mapping):
        unknown = set(value) - set(SIGNAL_NAMES)
        if unknown:
            raise SignalsError(f"unknown signals {sorted(unknown)} (expected {SIGNAL_NAMES})")
        parts = dict(value)
    elif isinstance(value, tuple) and len(value) in (2, 4):
        parts = dict(zip(SIGNAL_NAMES, value, strict=False))
    else:
        raise SignalsError(
            "signals() must return Signals, a dict with entries and exits, or a tuple "
            f"(entries, exits), got {type(value).__name__}"
        )
    for required in ("entries", "exits"):
        if parts.get(required) is None:
            raise SignalsError(f"signals() returned no {required}")
    checked = {k: None if parts.get(k) is None else _array(k, parts[k], n) for k in SIGNAL_NAMES}
    return Signals(**checked)  # type: ignore[arg-type]
