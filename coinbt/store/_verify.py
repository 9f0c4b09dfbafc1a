"""Walking the hash chain over raw stored rows; shared by every store."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from coinbt.events import GENESIS_HASH, canonical_bytes, chain_hash
from coinbt.store.base import Progress, VerifyReport

__all__ = ("RawRow", "walk_chain")

RawRow = Sequence[Any]
"""(position, stream_id, version, type, schema, recorded_at_us, payload, hash)"""


_EVERY = 1 << 16  # rows between two progress reports


def walk_chain(
    rows: Iterable[RawRow], progress: Progress | None = None, total: int = 0
) -> VerifyReport:
    """Check that positions run 1, 2, 3... and every hash matches; report the first mismatch.

    ``progress``, if given, hears (rows checked, ``total``) every 65,536 rows and at the end."""
    previous = GENESIS_HASH
    expected_position = 1
    checked = 0
    for row in rows:
        if progress is not None and checked % _EVERY == 0 and checked:
            progress(checked, total)
        position, stream_id, version, type_name, schema, recorded_at_us, payload, stored = row
        if position != expected_position:
            return _bad(
                checked,
                expected_position - 1,
                previous,
                expected_position,
                f"position {expected_position} is missing (next stored is {position})",
            )
        try:
            canonical = canonical_bytes(
                position, stream_id, version, type_name, schema, recorded_at_us, bytes(payload)
            )
        except (TypeError, ValueError) as e:
            return _bad(checked, position - 1, previous, position, f"row is malformed: {e}")
        computed = chain_hash(previous, canonical)
        if computed != stored:
            return _bad(
                checked,
                position - 1,
                previous,
                position,
                "stored hash does not match the event's contents and the chain",
            )
        previous = computed
        checked += 1
        expected_position += 1
    if progress is not None:
        progress(checked, total)
    return VerifyReport(ok=True, checked=checked, last_position=checked, last_hash=previous.hex())


def _bad(
    checked: int, last_good: int, last_hash: bytes, position: int, reason: str
) -> VerifyReport:
    return VerifyReport(
        ok=False,
        checked=checked,
        last_position=last_good,
        last_hash=last_hash.hex(),
        first_bad_position=position,
        reason=reason,
    )
