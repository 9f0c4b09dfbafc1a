"""Everything the memory backend keeps, in one value: open it again to find the same state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from coinbt.artifacts.outbox import ArtifactRow
from coinbt.backends.memory.read_models import ReadModelTables
from coinbt.backends.memory.store import MemoryEventStore
from coinbt.clock import Clock, SystemClock

__all__ = ("MemoryDatabase",)


@dataclass
class MemoryDatabase:
    """The event log, the read-model tables, the artifact outbox's rows and the dataset
    catalogue's rows. ``coinbt.backend.open_backend(database, data_dir)`` opens it; opening the
    same value again is what a restart is for a file or a server (nothing outlives the process).
    """

    clock: Clock = field(default_factory=SystemClock)
    store: MemoryEventStore = field(init=False)
    read_models: ReadModelTables = field(default_factory=ReadModelTables)
    artifacts: dict[str, ArtifactRow] = field(default_factory=dict)
    datasets: dict[tuple[str, int], tuple[Any, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.store = MemoryEventStore(self.clock)
