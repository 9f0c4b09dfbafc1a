"""``GET /events``: the global log after a position, as JSON pages or a live event stream.

With ``Accept: text/event-stream`` the response is Server-Sent Events: every event after ``after``
exactly once, in order (``id:`` is its position, so a reconnecting client's ``Last-Event-ID``
resumes the stream), then every new one as it is projected: an event is sent once the read models
include it, so a client that reacts to it by reading a task sees the task's new state. Without
``after`` or ``Last-Event-ID`` a stream starts at the end (the read models' position): replaying a
whole log is for JSON pages. Live progress of running tasks, which is not an event, comes as
``event: progress`` messages; ``: keep-alive`` comments every 15 s.

At most ``max_streams`` streams are open at once (503 ``too_many_streams`` with ``Retry-After``
beyond), and at most :data:`CATCH_UP_AT_ONCE` of them read and encode a page of old events at a
time, yielding to the event loop between pages, so streams catching up on a long log cannot starve
the rest (``scripts/bench_streams.py`` measures ``GET /health`` meanwhile).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from coinbt import defaults
from coinbt.api._params import int_param, optional_int_param
from coinbt.api.errors import json_response
from coinbt.errors import InvalidRequestError, TooManyStreamsError
from coinbt.runtime import System

__all__ = ("CATCH_UP_AT_ONCE", "MAX_STREAMS", "EventStream")

_encoder = msgspec.json.Encoder()
MAX_STREAMS = defaults.MAX_STREAMS
CATCH_UP_AT_ONCE = 4
PAGE = 200
_POSITION = re.compile(r"[0-9]{1,18}")  # ASCII digits, within int64
KEEP_ALIVE_S = defaults.STREAM_KEEP_ALIVE_S


class EventStream:
    def __init__(self, system: System, *, max_streams: int = MAX_STREAMS) -> None:
        self.system = system
        self.max_streams = max_streams
        self.open = 0
        self._catch_up = anyio.Semaphore(CATCH_UP_AT_ONCE)

    async def events(self, request: Request) -> Response:
        after = optional_int_param(request, "after")
        last_id = request.headers.get("last-event-id")
        if after is None and last_id:
            if not _POSITION.fullmatch(last_id):
                raise InvalidRequestError("must be an event position", field="Last-Event-ID")
            after = int(last_id)
        if "text/event-stream" in request.headers.get("accept", ""):
            if self.open >= self.max_streams:
                raise TooManyStreamsError(
                    f"all {self.max_streams} event streams this server allows are open"
                )
            start = self.system.projector.position if after is None else after
            self.open += 1
            return _CountedStream(
                self._stream(start),
                self._closed,
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        after = after or 0
        limit = int_param(request, "limit", 100, minimum=1, maximum=1000)
        events = await self.system.store.read_all(after, limit + 1)
        page = events[:limit]
        return json_response(
            {
                "events": [e.to_builtins() for e in page],
                "next_after": page[-1].position if len(events) > limit else None,
            }
        )

    def _closed(self) -> None:
        self.open -= 1

    async def _stream(self, after: int) -> AsyncIterator[bytes]:
        system = self.system
        sent_progress: dict[str, float] = {}
        yield b"retry: 2000\n\n"
        while True:
            # Take the hints before reading, so nothing that happens in between is missed.
            projected = system.projector.advanced_hint()
            progressed = system.progress.changed_hint()
            upto = system.projector.position
            events = []
            chunks: list[bytes] = []
            if upto > after:
                # Reading and encoding a page is the CPU work: at most CATCH_UP_AT_ONCE at a time,
                # the other streams wait here without taking turns on the event loop.
                async with self._catch_up:
                    events = await system.store.read_all(after, min(PAGE, upto - after))
                    for stored in events:
                        data = _encoder.encode(stored.to_builtins())
                        chunks.append(b"id: %d\ndata: %s\n\n" % (stored.position, data))
                        after = stored.position
            progress = system.progress.snapshot()
            for task_id, fraction in progress.items():
                if sent_progress.get(task_id) != fraction:
                    payload = _encoder.encode({"task_id": task_id, "progress": fraction})
                    chunks.append(b"event: progress\ndata: %s\n\n" % payload)
            sent_progress = progress
            if chunks:
                yield b"".join(chunks)
                if len(events) == PAGE:
                    await anyio.lowlevel.checkpoint()  # let the rest of the server run
                    continue  # more to catch up on
            with anyio.move_on_after(KEEP_ALIVE_S) as idle:
                await _first(projected, progressed)
            if idle.cancelled_caught:
                yield b": keep-alive\n\n"


class _CountedStream(StreamingResponse):
    """A streaming response that says when it is over, however it ends (even never started)."""

    def __init__(self, content: AsyncIterator[bytes], on_close: Callable[[], None], **kw: Any):
        super().__init__(content, **kw)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


async def _first(*events: anyio.Event) -> None:
    """Return as soon as any of ``events`` is set."""
    async with anyio.create_task_group() as tg:

        async def wait(event: anyio.Event) -> None:
            await event.wait()
            tg.cancel_scope.cancel()

        for event in events:
            tg.start_soon(wait, event)
