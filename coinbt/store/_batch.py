"""Planning one group-commit batch: version checks, positions and the hash chain, in pure code.

Every store implementation uses this, so all of them check versions and chain hashes the same way.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import msgspec

from coinbt.errors import ConcurrencyError
from coinbt.events import (
    CURRENT_SCHEMA,
    EVENT_TYPES,
    StoredEvent,
    TaskEvent,
    encode_payload,
)

_encoder = msgspec.msgpack.Encoder()
_TYPE_SCHEMA = {cls: (name, CURRENT_SCHEMA[name]) for name, cls in EVENT_TYPES.items()}

__all__ = ("AppendRequest", "Plan", "Row", "VersionCache", "plan_batch")


Row = tuple[int, str, int, str, int, int, bytes, bytes]
"""One event as stored, the columns of the ``events`` table:
(position, stream_id, version, type, schema, recorded_at_us, payload, hash)."""


@dataclass(slots=True)
class AppendRequest:
    """One caller's append, with its payloads encoded up front (outside the writer)."""

    stream_id: str
    events: Sequence[TaskEvent]
    expected_version: int
    payloads: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.payloads:
            self.payloads = [encode_payload(e) for e in self.events]


@dataclass(slots=True)
class Plan:
    """The rows to insert and, per request, its stored events or the error it gets."""

    rows: list[Row]
    outcomes: list[list[StoredEvent] | ConcurrencyError]
    head_position: int
    head_hash: bytes


def plan_batch(
    requests: Sequence[AppendRequest],
    head_position: int,
    head_hash: bytes,
    versions: dict[str, int],
    recorded_at: datetime,
    recorded_at_us: int,
) -> Plan:
    """Check each request against ``versions`` in order and lay out its rows after the head.

    ``versions`` maps each stream in the batch to its committed version (absent = 0) and is
    updated in place, so two requests for one stream at the same version: the first wins.
    """
    rows: list[Row] = []
    outcomes: list[list[StoredEvent] | ConcurrencyError] = []
    position, previous = head_position, head_hash
    encode = _encoder.encode
    sha256 = hashlib.sha256
    for request in requests:
        stream_id = request.stream_id
        current = versions.get(stream_id, 0)
        if current != request.expected_version:
            outcomes.append(ConcurrencyError(stream_id, request.expected_version, current))
            continue
        stored: list[StoredEvent] = []
        for event, payload in zip(request.events, request.payloads, strict=True):
            position += 1
            current += 1
            type_name, schema = _TYPE_SCHEMA[type(event)]
            # == canonical_bytes(...), inlined: this loop is the log's hot path.
            canonical = encode(
                (position, stream_id, current, type_name, schema, recorded_at_us, payload)
            )
            previous = sha256(previous + canonical).digest()
            rows.append(
                (position, stream_id, current, type_name, schema, recorded_at_us, payload, previous)
            )
            stored.append(
                StoredEvent(position, stream_id, current, recorded_at, event, previous.hex())
            )
        versions[stream_id] = current
        outcomes.append(stored)
    return Plan(rows, outcomes, position, previous)


class VersionCache:
    """The writer's memory of recent stream versions (a bounded LRU).

    Only a writer that knows no one else committed since may trust it; a stream it has never seen
    is guessed to be new (version 0) when the append expects 0, with ``UNIQUE (stream_id,
    version)`` as the backstop: a wrong guess makes the insert fail and the batch is planned again
    from fresh reads.
    """

    def __init__(self, size: int = 100_000) -> None:
        self._size = size
        self._versions: OrderedDict[str, int] = OrderedDict()

    def split(
        self, requests: Sequence[AppendRequest], trust: bool
    ) -> tuple[dict[str, int], list[str]]:
        """(versions known without asking the database, stream ids to look up, sorted)."""
        versions: dict[str, int] = {}
        lookup: set[str] = set()
        for request in requests:
            sid = request.stream_id
            if sid in versions or sid in lookup:
                continue
            cached = self._versions.get(sid) if trust else None
            if cached is not None:
                versions[sid] = cached
            elif trust and request.expected_version == 0:
                versions[sid] = 0
            else:
                lookup.add(sid)
        return versions, sorted(lookup)

    def remember(self, versions: dict[str, int]) -> None:
        for stream_id, version in versions.items():
            self._versions[stream_id] = version
            self._versions.move_to_end(stream_id)
        while len(self._versions) > self._size:
            self._versions.popitem(last=False)

    def clear(self) -> None:
        self._versions.clear()
