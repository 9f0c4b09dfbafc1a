"""The event store's interface and the pure code every backend's store shares.

The stores themselves live with their backends: ``coinbt.backends.memory``,
``coinbt.backends.sqlite`` and ``coinbt.backends.postgres``.
"""

from coinbt.store.base import EventStore, VerifyReport

__all__ = ("EventStore", "VerifyReport")
