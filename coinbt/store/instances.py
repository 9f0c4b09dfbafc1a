"""Which service processes are alive: the interface the TaskManager and the uploader use.

Where one process owns the database (SQLite) there is nothing to ask. Where several share it
(PostgreSQL, ``coinbt.backends.postgres.instances``), every ``coinbt serve`` process registers as an
*instance* and holds a lock for as long as it lives; its worker ids start with its instance id,
and ``Started`` events record them, so the owner of a running task is known from the log.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

__all__ = ("Liveness", "owner_of", "worker_id")


class Liveness(Protocol):
    """This process's instance, and the means to tell whether another one is gone."""

    @property
    def instance_id(self) -> str: ...

    def take_if_dead(self, instance_id: str) -> AbstractAsyncContextManager[bool]:
        """Take the lock of ``instance_id`` if its process is gone: yields True (and holds the
        lock, so no other process acts for that instance meanwhile) or False (it is alive, or
        another process is acting for it right now; ask again later). Never True for this
        process's own instance. Raises ``DatabaseError`` if the database cannot be asked."""
        ...


def worker_id(instance_id: str | None, n: int) -> str:
    """The id of this process's n-th worker: ``w1``, or ``i7/w1`` on a shared database."""
    return f"w{n}" if instance_id is None else f"{instance_id}/w{n}"


def owner_of(worker: str | None) -> str | None:
    """The instance a worker id belongs to (None for an unshared database's ``w1``)."""
    if worker is None or "/" not in worker:
        return None
    return worker.split("/", 1)[0]
