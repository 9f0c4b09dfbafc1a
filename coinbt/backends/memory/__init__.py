"""The memory backend: nothing kept once it closes (tests and throwaway runs)."""

from coinbt.backends.memory.store import MemoryEventStore

__all__ = ("MemoryEventStore",)
