"""The event store in memory: same contract as SQLite, for tests and throwaway runs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import anyio
import anyio.lowlevel

from coinbt.clock import Clock, SystemClock, from_epoch_us, to_epoch_us
from coinbt.errors import CoinbtError, ConcurrencyError, EmptyAppendError
from coinbt.events import GENESIS_HASH, StoredEvent, TaskEvent, decode_payload
from coinbt.store._batch import (
    Append,
    AppendRequest,
    Row,
    group_of,
    parts_of,
    plan_batch,
    split_group,
)
from coinbt.store._follow import follow
from coinbt.store._verify import walk_chain
from coinbt.store.base import Progress, VerifyReport

__all__ = ("MemoryEventStore",)


class MemoryEventStore:
    """Events in lists. Stored payloads are real msgpack bytes and are decoded on read, so the
    memory store exercises the same codec and hash chain as the SQLite one."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._rows: list[Row] = []
        self._streams: dict[str, list[int]] = {}  # stream id -> indexes into _rows
        self._appended = anyio.Event()

    async def append(
        self, stream_id: str, events: Sequence[TaskEvent], expected_version: int
    ) -> list[StoredEvent]:
        if not events:
            raise EmptyAppendError(stream_id)
        await anyio.lowlevel.checkpoint()
        return self._commit(AppendRequest(stream_id, events, expected_version))

    async def append_many(
        self, appends: Sequence[tuple[str, Sequence[TaskEvent], int]]
    ) -> list[list[StoredEvent]]:
        group = group_of(appends)
        await anyio.lowlevel.checkpoint()
        return split_group(group, self._commit(group))

    async def append_each(
        self, appends: Sequence[tuple[str, Sequence[TaskEvent], int]]
    ) -> list[list[StoredEvent] | CoinbtError]:
        requests = [AppendRequest(*triple) for triple in appends]
        for request in requests:
            if not request.events:
                raise EmptyAppendError(request.stream_id)
        await anyio.lowlevel.checkpoint()
        outcomes: list[list[StoredEvent] | CoinbtError] = []
        for request in requests:
            try:
                outcomes.append(self._commit(request))
            except CoinbtError as e:
                outcomes.append(e)
        return outcomes

    def _commit(self, request: Append) -> list[StoredEvent]:
        head_position = len(self._rows)
        head_hash = self._rows[-1][7] if self._rows else GENESIS_HASH
        versions = {
            p.stream_id: len(self._streams.get(p.stream_id, ())) for p in parts_of([request])
        }
        now_us = to_epoch_us(self._clock.now())
        plan = plan_batch(
            [request], head_position, head_hash, versions, from_epoch_us(now_us), now_us
        )
        outcome = plan.outcomes[0]
        if isinstance(outcome, ConcurrencyError):
            raise outcome
        for row in plan.rows:
            self._streams.setdefault(row[1], []).append(len(self._rows))
            self._rows.append(row)
        self._appended.set()
        self._appended = anyio.Event()
        return outcome

    async def read_stream(
        self,
        stream_id: str,
        after_version: int = 0,
        *,
        after_position: int = 0,
        limit: int | None = None,
    ) -> list[StoredEvent]:
        await anyio.lowlevel.checkpoint()
        indexes = self._streams.get(stream_id, [])[after_version:]
        rows = [self._rows[i] for i in indexes if self._rows[i][0] > after_position]
        return [_decode(row) for row in rows[:limit]]

    async def read_all(self, after: int = 0, limit: int | None = None) -> list[StoredEvent]:
        await anyio.lowlevel.checkpoint()
        end = len(self._rows) if limit is None else min(len(self._rows), after + limit)
        return [_decode(row) for row in self._rows[max(after, 0) : end]]

    def appended_hint(self) -> anyio.Event:
        return self._appended

    def subscribe(self, after: int = 0) -> AsyncIterator[StoredEvent]:
        return follow(self.read_all, self.appended_hint, after, 1000)

    async def stream_version(self, stream_id: str) -> int:
        await anyio.lowlevel.checkpoint()
        return len(self._streams.get(stream_id, ()))

    async def last_position(self) -> int:
        await anyio.lowlevel.checkpoint()
        return len(self._rows)

    async def stream_ids(self) -> list[str]:
        await anyio.lowlevel.checkpoint()
        return list(self._streams)

    async def verify(self, progress: Progress | None = None) -> VerifyReport:
        await anyio.lowlevel.checkpoint()
        return walk_chain(self._rows, progress, len(self._rows))


def _decode(row: Row) -> StoredEvent:
    position, stream_id, version, type_name, schema, recorded_at_us, payload, digest = row
    return StoredEvent(
        position=position,
        stream_id=stream_id,
        version=version,
        recorded_at=from_epoch_us(recorded_at_us),
        event=decode_payload(position, type_name, schema, payload),
        hash=digest.hex(),
    )
