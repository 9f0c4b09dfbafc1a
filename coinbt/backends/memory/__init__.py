"""The memory backend: nothing kept once the process ends (tests and throwaway runs).

It owns the same parts as the other backends (event store, read models, artifact outbox,
dataset catalogue) as plain Python values in one :class:`MemoryDatabase`; one process owns it,
so it needs no instance locks. ``coinbt.backend.open_backend("memory:", data_dir)`` opens a fresh
one; ``open_backend(database, data_dir)`` opens (again) a given one.
"""

from coinbt.backends.memory.database import MemoryDatabase
from coinbt.backends.memory.datasets import MemoryCatalog
from coinbt.backends.memory.outbox import MemoryOutbox
from coinbt.backends.memory.read_models import (
    MemoryProjection,
    MemoryReadModelReader,
    rebuild_read_models,
    verify_read_models,
)
from coinbt.backends.memory.store import MemoryEventStore

__all__ = (
    "MemoryCatalog",
    "MemoryDatabase",
    "MemoryEventStore",
    "MemoryOutbox",
    "MemoryProjection",
    "MemoryReadModelReader",
    "rebuild_read_models",
    "verify_read_models",
)
