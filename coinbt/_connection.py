"""uvicorn's HTTP/1.1 protocol (h11) with a deadline for each request head.

uvicorn closes a keep-alive connection that stays silent after a response (``timeout_keep_alive``),
but not a connection that never sends a request, nor one that sends its headers a byte at a time
(every byte restarts the keep-alive timer): both hold a connection, and a file descriptor, for as
long as the client likes. Here a connection must deliver a complete request head within
``head_timeout`` seconds of connecting, and again of each response; else it is closed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from coinbt import defaults

__all__ = ("HEAD_TIMEOUT_S", "timed_h11")

HEAD_TIMEOUT_S = defaults.HEAD_TIMEOUT_S


def timed_h11(head_timeout: float) -> type[H11Protocol]:
    """The protocol class to give ``uvicorn.Config(http=...)``."""

    class TimedH11Protocol(H11Protocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._head_deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def handle_events(self) -> None:
            before = self.scope
            super().handle_events()
            if self.scope is not before:  # a complete request head arrived
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()  # the next request's head gets the same deadline

        def _arm(self) -> None:
            self._disarm()
            self._head_deadline = self.loop.call_later(head_timeout, self._too_slow)

        def _disarm(self) -> None:
            if self._head_deadline is not None:
                self._head_deadline.cancel()
                self._head_deadline = None

        def _too_slow(self) -> None:
            self._head_deadline = None
            if not self.transport.is_closing():
                self.transport.close()

    return TimedH11Protocol
