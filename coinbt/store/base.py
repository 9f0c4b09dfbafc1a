"""The event store interface every implementation honours (memory, SQLite, later PostgreSQL).

One contract test suite (``tests/backends/test_event_store.py``) runs against every implementation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Protocol

import anyio
import msgspec

from coinbt.errors import CoinbtError
from coinbt.events import StoredEvent, TaskEvent

__all__ = ("EventStore", "Progress", "VerifyReport")

Progress = Callable[[int, int], None]
"""Progress of a walk over the log: called with (events done, events in all) now and then, and
once at the end. Long commands (``audit verify``, ``replay``) show it on a terminal."""


class VerifyReport(msgspec.Struct, frozen=True):
    """The outcome of walking the hash chain.

    ``first_bad_position`` is the first position whose stored hash (or whose place in the
    1, 2, 3... sequence) does not match; None when the whole log verifies.
    """

    ok: bool
    checked: int
    last_position: int
    last_hash: str
    first_bad_position: int | None = None
    reason: str | None = None


class EventStore(Protocol):
    """An append-only, hash-chained log of task events, one stream per task."""

    async def append(
        self, stream_id: str, events: Sequence[TaskEvent], expected_version: int
    ) -> list[StoredEvent]:
        """Append ``events`` to ``stream_id`` atomically if the stream is at ``expected_version``.

        A new stream is at version 0. Returns the stored events (with positions, versions, hashes)
        once their transaction has committed. Raises ``EmptyAppendError`` for no events and
        ``ConcurrencyError`` if the stream's version differs; nothing is written then.
        """
        ...

    async def append_many(
        self, appends: Sequence[tuple[str, Sequence[TaskEvent], int]]
    ) -> list[list[StoredEvent]]:
        """Append to several distinct streams in one transaction: each (stream id, events,
        expected version) triple is checked like :meth:`append`, and if any stream's version
        differs, ``ConcurrencyError`` is raised and nothing is written. Returns the stored events,
        one list per triple, in order (their positions are consecutive). Raises
        ``EmptyAppendError`` for no triples or a triple without events, ``ValueError`` for a
        stream named twice.
        """
        ...

    async def append_each(
        self, appends: Sequence[tuple[str, Sequence[TaskEvent], int]]
    ) -> list[list[StoredEvent] | CoinbtError]:
        """Several independent appends in one call: each (stream id, events, expected version)
        triple is checked and committed like :meth:`append` on its own (one stream at another
        version refuses only its own triple, whose place holds the error). The outcomes, in
        order, once all are settled. ``EmptyAppendError`` (nothing appended) for a triple
        without events.
        """
        ...

    async def read_stream(
        self,
        stream_id: str,
        after_version: int = 0,
        *,
        after_position: int = 0,
        limit: int | None = None,
    ) -> list[StoredEvent]:
        """The stream's events with version > ``after_version`` and position > ``after_position``,
        in order, at most ``limit`` of them (empty if none)."""
        ...

    async def read_all(self, after: int = 0, limit: int | None = None) -> list[StoredEvent]:
        """Events with global position > ``after``, in order, at most ``limit`` of them."""
        ...

    def appended_hint(self) -> anyio.Event:
        """Set at the next commit: a hint to read again (take it *before* reading)."""
        ...

    def subscribe(self, after: int = 0) -> AsyncIterator[StoredEvent]:
        """Every event after ``after``, in order, then every new one as it commits; never ends."""
        ...

    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version (0 if it has no events)."""
        ...

    async def last_position(self) -> int:
        """The global position of the newest event (0 for an empty log)."""
        ...

    async def verify(self, progress: Progress | None = None) -> VerifyReport:
        """Walk the whole log and check positions and the hash chain (``progress`` may be called
        from the worker thread doing the walk)."""
        ...
