"""Following the log: the subscribe loop every store shares."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import anyio

from coinbt.events import StoredEvent

__all__ = ("follow",)


async def follow(
    read_all: Callable[[int, int], Awaitable[list[StoredEvent]]],
    hint: Callable[[], anyio.Event],
    after: int,
    page: int,
) -> AsyncIterator[StoredEvent]:
    """Every event after ``after``, in order, then each new one as it commits; never ends.

    The log is the truth; ``hint()`` (set at the next commit) only says when to read again. It is
    taken *before* each read, so a commit between the read and the wait is never missed.
    """
    while True:
        waiter = hint()
        events = await read_all(after, page)
        for stored in events:
            yield stored
            after = stored.position
        if not events:
            await waiter.wait()
