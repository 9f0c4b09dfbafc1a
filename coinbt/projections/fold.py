"""Folding a page of events into the read-model views: shared by every read-model writer.

``fold_page`` is pure: given the views the page touches (``touched`` names them), it returns the
changed views and the new checkpoint. Events at or before the checkpoint are skipped, so applying
a page twice changes nothing (exactly once, with the checkpoint written in the same transaction
as the views). ``ViewCache`` keeps recently written views so a writer need not read them back.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import msgspec

from coinbt.events import Completed, Filled, StoredEvent
from coinbt.projections.positions import PositionView, apply_fill, from_summary, mark
from coinbt.projections.status import TaskView, apply_status

__all__ = (
    "PositionKey",
    "ViewCache",
    "ViewChanges",
    "decode_position",
    "decode_task",
    "encode_view",
    "fold_page",
    "touched",
)

PositionKey = tuple[str, str]  # (task id, symbol)

_encoder = msgspec.msgpack.Encoder()
_task_decoder = msgspec.msgpack.Decoder(TaskView)
_position_decoder = msgspec.msgpack.Decoder(PositionView)


def encode_view(view: TaskView | PositionView) -> bytes:
    return _encoder.encode(view)


def decode_task(blob: bytes) -> TaskView:
    return _task_decoder.decode(blob)


def decode_position(blob: bytes) -> PositionView:
    return _position_decoder.decode(blob)


@dataclass
class ViewChanges:
    """The views a page changed, and the checkpoint after it."""

    checkpoint: int
    tasks: dict[str, TaskView] = field(default_factory=dict)
    positions: dict[PositionKey, PositionView] = field(default_factory=dict)


def _position_key(stored: StoredEvent) -> PositionKey | None:
    """The position view an event reads (a new ``Completed`` replaces its views unread)."""
    event = stored.event
    if isinstance(event, Filled):
        return (stored.stream_id, event.symbol)
    if isinstance(event, Completed) and event.symbol and not event.positions:
        return (stored.stream_id, event.symbol)
    return None


def touched(events: Iterable[StoredEvent], checkpoint: int) -> tuple[set[str], set[PositionKey]]:
    """The task ids and position keys the events after ``checkpoint`` would read."""
    tasks: set[str] = set()
    positions: set[PositionKey] = set()
    for stored in events:
        if stored.position <= checkpoint:
            continue
        tasks.add(stored.stream_id)
        key = _position_key(stored)
        if key is not None:
            positions.add(key)
    return tasks, positions


def fold_page(
    events: Iterable[StoredEvent],
    checkpoint: int,
    task_of: Callable[[str], TaskView | None],
    position_of: Callable[[PositionKey], PositionView | None],
) -> ViewChanges:
    """Fold the events after ``checkpoint``; ``task_of``/``position_of`` give the current views
    (None for a view that does not exist yet)."""
    changes = ViewChanges(checkpoint)
    tasks, positions = changes.tasks, changes.positions
    for stored in events:
        if stored.position <= changes.checkpoint:
            continue  # already applied: exactly once
        task_id = stored.stream_id
        view = tasks.get(task_id) or task_of(task_id)
        tasks[task_id] = apply_status(view, stored)
        event = stored.event
        if isinstance(event, Filled):
            key = (task_id, event.symbol)
            current = positions.get(key) or position_of(key)
            positions[key] = apply_fill(current, task_id, event)
        elif isinstance(event, Completed) and event.positions:
            for summary in event.positions:
                if summary.trades:  # an asset never traded has no position (as in old logs)
                    positions[(task_id, summary.symbol)] = from_summary(task_id, summary)
        elif isinstance(event, Completed) and event.symbol:  # an old log's: mark its fills
            key = (task_id, event.symbol)
            current = positions.get(key) or position_of(key)
            if current is not None:
                positions[key] = mark(current, event)
        changes.checkpoint = stored.position
    return changes


K = TypeVar("K")
V = TypeVar("V")


class ViewCache(Generic[K, V]):
    """The most recently written views, up to ``size`` (least recently written go first)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._views: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        return self._views.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._views

    def remember(self, changed: dict[K, V]) -> None:
        views = self._views
        for key, value in changed.items():
            views[key] = value
            views.move_to_end(key)
        while len(views) > self._size:
            views.popitem(last=False)

    def clear(self) -> None:
        self._views.clear()
