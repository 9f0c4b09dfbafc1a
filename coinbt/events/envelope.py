"""The stored envelope of an event, kept apart from its payload."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from coinbt.events.types import TaskEvent, event_type

__all__ = ("StoredEvent",)


class StoredEvent(msgspec.Struct, frozen=True, gc=False):
    """An event as the log holds it.

    ``position`` counts 1, 2, 3... over the whole log; ``version`` counts 1, 2, 3... within the
    stream; ``hash`` (hex) chains this event to the one before it (see ``coinbt.events.codec``).
    """

    position: int
    stream_id: str
    version: int
    recorded_at: datetime
    event: TaskEvent
    hash: str

    @property
    def type(self) -> str:
        return event_type(self.event)

    def to_builtins(self) -> dict[str, Any]:
        """The API representation: position, stream_id, version, type, recorded_at, data, hash."""
        data = msgspec.to_builtins(self.event)
        del data["type"]
        return {
            "position": self.position,
            "stream_id": self.stream_id,
            "version": self.version,
            "type": self.type,
            "recorded_at": self.recorded_at.isoformat().replace("+00:00", "Z"),
            "data": data,
            "hash": self.hash,
        }
