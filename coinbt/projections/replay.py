"""What a replay of the log into fresh read models found: the report, and the row-by-row comparison
of live views with rebuilt ones (the same for every backend)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from coinbt.projections.fold import decode_position, decode_task

__all__ = ("Difference", "ReplayReport", "view_differences")

_DECODERS = {"tasks": decode_task, "positions": decode_position}


@dataclass(frozen=True)
class Difference:
    table: str
    key: str
    live: Any
    rebuilt: Any


@dataclass
class ReplayReport:
    events: int
    checkpoint: int
    tasks: int
    positions: int
    differences: list[Difference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences


def view_differences(
    live: dict[str, dict[str, Any]], rebuilt: dict[str, dict[str, Any]], limit: int
) -> list[Difference]:
    """The rows that differ, tasks first, at most ``limit``. Both sides map each table
    (``"tasks"``, ``"positions"``) to its stored views (key -> msgpack). Equal bytes are equal
    views; unequal bytes are decoded and compared as values (an encoding may order a map
    differently), so only real differences are reported, and an unreadable row is one of them."""
    found: list[Difference] = []
    if limit < 1:
        return found
    for table in ("tasks", "positions"):
        decode = _DECODERS[table]

        def value(blob: Any, decode: Callable[[bytes], Any] = decode) -> Any:
            if blob is None:
                return None
            try:
                return msgspec.to_builtins(decode(blob))
            except (msgspec.DecodeError, TypeError) as e:
                return f"<unreadable view: {e}>"

        ours_rows, theirs_rows = live[table], rebuilt[table]
        for key in sorted(ours_rows.keys() | theirs_rows.keys()):
            ours, theirs = ours_rows.get(key), theirs_rows.get(key)
            if ours == theirs:
                continue
            if (ours_value := value(ours)) != (theirs_value := value(theirs)):
                found.append(Difference(table, key, ours_value, theirs_value))
                if len(found) == limit:
                    return found
    return found
