"""Planning one group-commit batch: version checks, positions and the hash chain, in pure code.

Every store implementation uses this, so all of them check versions and chain hashes the same way.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import msgspec

from coinbt.errors import ConcurrencyError, EmptyAppendError
from coinbt.events import (
    CURRENT_SCHEMA,
    EVENT_TYPES,
    StoredEvent,
    TaskEvent,
    encode_payload,
)

_encoder = msgspec.msgpack.Encoder()
_TYPE_SCHEMA = {cls: (name, CURRENT_SCHEMA[name]) for name, cls in EVENT_TYPES.items()}

__all__ = (
    "Append",
    "AppendGroup",
    "AppendRequest",
    "Plan",
    "Row",
    "VersionCache",
    "group_of",
    "parts_of",
    "plan_batch",
    "split_group",
)


Row = tuple[int, str, int, str, int, int, bytes, bytes]
"""One event as stored, the columns of the ``events`` table:
(position, stream_id, version, type, schema, recorded_at_us, payload, hash)."""


class AppendRequest(msgspec.Struct, gc=False):
    """One caller's append, with its payloads encoded up front (outside the writer).

    A ``gc=False`` struct (it holds events and bytes, so no reference cycles), its payloads a
    tuple (of bytes only, which the collector stops tracking at its first pass): thousands wait
    in the writer's queue during a commit, and as tracked objects that outlive a young
    collection they made full collections more frequent. Measured: the event loop's share of an
    append fell from 5.3 to 4.7 µs (the struct), collections per 100,000 appends from 561 to
    451 (the tuple).
    """

    stream_id: str
    events: Sequence[TaskEvent]
    expected_version: int
    payloads: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        if not self.payloads:
            self.payloads = tuple([encode_payload(e) for e in self.events])


@dataclass(slots=True)
class AppendGroup:
    """Appends to several distinct streams that commit together or not at all: if any stream is
    not at its expected version, none of them is written. Its outcome is every stored event, in
    the order of ``parts``."""

    parts: list[AppendRequest]


Append = AppendRequest | AppendGroup
"""What the group-commit writer queues: one stream's append, or an atomic group of them."""


def group_of(appends: Sequence[tuple[str, Sequence[TaskEvent], int]]) -> AppendGroup:
    """An atomic group from (stream id, events, expected version) triples: ``EmptyAppendError``
    for no triples or a triple without events, ``ValueError`` for a stream named twice."""
    if not appends:
        raise EmptyAppendError("(a group of streams)")
    seen: set[str] = set()
    parts: list[AppendRequest] = []
    for stream_id, events, expected_version in appends:
        if not events:
            raise EmptyAppendError(stream_id)
        if stream_id in seen:
            raise ValueError(f"stream {stream_id!r} appears twice in one atomic append")
        seen.add(stream_id)
        parts.append(AppendRequest(stream_id, events, expected_version))
    return AppendGroup(parts)


def split_group(group: AppendGroup, stored: list[StoredEvent]) -> list[list[StoredEvent]]:
    """A group's stored events, one list per part."""
    out: list[list[StoredEvent]] = []
    start = 0
    for part in group.parts:
        out.append(stored[start : start + len(part.events)])
        start += len(part.events)
    return out


def parts_of(requests: Sequence[Append]) -> Iterator[AppendRequest]:
    """Every single-stream append in ``requests``, groups opened up."""
    for request in requests:
        if isinstance(request, AppendGroup):
            yield from request.parts
        else:
            yield request


@dataclass(slots=True)
class Plan:
    """The rows to insert and, per request, its stored events or the error it gets."""

    rows: list[Row]
    outcomes: list[list[StoredEvent] | ConcurrencyError]
    head_position: int
    head_hash: bytes


def plan_batch(
    requests: Sequence[Append],
    head_position: int,
    head_hash: bytes,
    versions: dict[str, int],
    recorded_at: datetime,
    recorded_at_us: int,
) -> Plan:
    """Check each request against ``versions`` in order and lay out its rows after the head.

    ``versions`` maps each stream in the batch to its committed version (absent = 0) and is
    updated in place, so two requests for one stream at the same version: the first wins. A group
    is checked whole before any of its rows is laid out: one stale stream refuses all of it.
    """
    rows: list[Row] = []
    outcomes: list[list[StoredEvent] | ConcurrencyError] = []
    position, previous = head_position, head_hash
    encode = _encoder.encode
    sha256 = hashlib.sha256
    for request in requests:
        if isinstance(request, AppendGroup):
            parts: Sequence[AppendRequest] = request.parts
            refused = _stale(parts, versions)
        else:
            parts = (request,)
            found = versions.get(request.stream_id, 0)
            refused = (
                None
                if found == request.expected_version
                else ConcurrencyError(request.stream_id, request.expected_version, found)
            )
        if refused is not None:
            outcomes.append(refused)
            continue
        stored: list[StoredEvent] = []
        for part in parts:
            stream_id = part.stream_id
            current = part.expected_version
            for event, payload in zip(part.events, part.payloads, strict=True):
                position += 1
                current += 1
                type_name, schema = _TYPE_SCHEMA[type(event)]
                # == canonical_bytes(...), inlined: this loop is the log's hot path.
                canonical = encode(
                    (position, stream_id, current, type_name, schema, recorded_at_us, payload)
                )
                previous = sha256(previous + canonical).digest()
                rows.append(
                    (
                        position,
                        stream_id,
                        current,
                        type_name,
                        schema,
                        recorded_at_us,
                        payload,
                        previous,
                    )
                )
                stored.append(
                    StoredEvent(position, stream_id, current, recorded_at, event, previous.hex())
                )
            versions[stream_id] = current
        outcomes.append(stored)
    return Plan(rows, outcomes, position, previous)


def _stale(parts: Sequence[AppendRequest], versions: dict[str, int]) -> ConcurrencyError | None:
    """The error for the first part whose stream is not at its expected version, if any."""
    for part in parts:
        found = versions.get(part.stream_id, 0)
        if found != part.expected_version:
            return ConcurrencyError(part.stream_id, part.expected_version, found)
    return None


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

    def split(self, requests: Sequence[Append], trust: bool) -> tuple[dict[str, int], list[str]]:
        """(versions known without asking the database, stream ids to look up, sorted)."""
        versions: dict[str, int] = {}
        lookup: set[str] = set()
        for request in parts_of(requests):
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
