"""``decode_rows`` (replay's fast path) reads exactly what ``decode_row`` reads, errors included."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from coinbt.errors import CorruptEventError, UnknownEventTypeError
from coinbt.events import (
    CURRENT_SCHEMA,
    EVENT_TYPES,
    Failed,
    TaskEvent,
    decode_row,
    decode_rows,
    encode_payload,
    event_type,
    register_upcaster,
    type_code_sql,
)
from coinbt.events.codec import _UPCASTERS
from tests.factories import cancelled, completed, filled, queued, started

Row = tuple[Any, ...]
_T0 = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z in epoch µs


def _row(position: int, event: TaskEvent, recorded_at_us: int = _T0) -> Row:
    name = event_type(event)
    digest = bytes([position % 256]) * 32
    return (
        position,
        f"s{position % 3}",
        position,
        name,
        CURRENT_SCHEMA[name],
        recorded_at_us,
        encode_payload(event),
        digest,
    )


def _rows() -> list[Row]:
    events = [queued(), started(), filled(1), filled(2, "sell"), completed(), cancelled()]
    # Three commit times, so rows share a timestamp and the timestamp also changes.
    return [_row(i + 1, e, _T0 + (i // 2) * 1_000_003) for i, e in enumerate(events * 3)]


def test_decode_rows_equals_decode_row_row_by_row() -> None:
    rows = _rows()
    decoded = decode_rows(rows)
    assert decoded == [decode_row(row) for row in rows]
    assert [e.recorded_at for e in decoded] != [decoded[0].recorded_at] * len(rows)
    assert decoded[0].hash == rows[0][7].hex()


def test_decode_rows_of_nothing_is_empty() -> None:
    assert decode_rows([]) == []


def _with(row: Row, **changes: Any) -> Row:
    names = ("position", "stream_id", "version", "type", "schema", "recorded_at", "data", "hash")
    return tuple(changes.get(name, value) for name, value in zip(names, row, strict=True))


@pytest.mark.parametrize(
    ("change", "error"),
    [
        pytest.param({"type": "Exploded"}, UnknownEventTypeError, id="unknown-type"),
        pytest.param({"data": b"\xc1"}, CorruptEventError, id="undecodable-payload"),
        pytest.param({"data": b""}, CorruptEventError, id="empty-payload"),
        pytest.param({"type": "Started"}, CorruptEventError, id="tag-differs-from-type"),
        pytest.param({"schema": 99}, CorruptEventError, id="schema-from-the-future"),
        pytest.param({"recorded_at": "yesterday"}, CorruptEventError, id="text-time"),
        pytest.param({"hash": None}, CorruptEventError, id="no-hash"),
    ],
)
def test_a_bad_row_raises_what_decode_row_raises(
    change: dict[str, Any], error: type[Exception]
) -> None:
    rows = _rows()
    rows[4] = _with(rows[4], **change)  # a Completed row, position 5
    with pytest.raises(error) as fast:
        decode_rows(rows)
    with pytest.raises(error) as slow:
        decode_row(rows[4])
    assert str(fast.value) == str(slow.value)
    assert "5" in str(fast.value)


@pytest.fixture
def legacy_failed_upcaster() -> Iterator[None]:
    """A pretend schema 0 of Failed that called the error ``message`` and had no type."""

    def upcast(data: dict[str, object]) -> dict[str, object]:
        return {"type": "Failed", "error": data["message"], "error_type": "legacy"}

    register_upcaster("Failed", 0, upcast)
    yield
    del _UPCASTERS[("Failed", 0)]


@pytest.mark.usefixtures("legacy_failed_upcaster")
def test_an_old_schema_row_among_current_ones_is_upcast() -> None:
    rows = _rows()
    old = msgspec.msgpack.encode({"type": "Failed", "message": "disk on fire"})
    rows[2] = _with(rows[2], type="Failed", schema=0, data=old)
    decoded = decode_rows(rows)
    assert decoded[2].event == Failed(error="disk on fire", error_type="legacy")
    assert decoded[:2] + decoded[3:] == [decode_row(r) for r in rows[:2] + rows[3:]]


def _coded(row: Row) -> Row:
    """The row as ``type_code_sql`` has SQLite return it: the type as its code."""
    return _with(row, type=list(EVENT_TYPES).index(row[3]))


def test_type_codes_decode_like_type_names() -> None:
    rows = _rows()
    assert decode_rows([_coded(row) for row in rows]) == decode_rows(rows)
    assert decode_row(_coded(rows[0])) == decode_row(rows[0])


def test_a_coded_row_with_a_bad_payload_names_its_type_and_position() -> None:
    rows = [_coded(row) for row in _rows()]
    rows[4] = _with(rows[4], data=b"\xc1")
    with pytest.raises(CorruptEventError, match="5"):
        decode_rows(rows)


def test_sqlite_returns_codes_for_current_schemas_and_names_for_the_rest() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE events (type TEXT, schema INTEGER)")
    rows = [("Queued", CURRENT_SCHEMA["Queued"]), ("Failed", 0), ("Exploded", 1), ("queued", 1)]
    conn.executemany("INSERT INTO events VALUES (?, ?)", rows)
    found = conn.execute(f"SELECT {type_code_sql()} FROM events ORDER BY rowid").fetchall()
    assert found == [(list(EVENT_TYPES).index("Queued"),), ("Failed",), ("Exploded",), ("queued",)]
