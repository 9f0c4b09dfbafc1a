"""One package per storage backend, each owning its schema and every table-backed interface.

``coinbt.backends.sqlite`` (one file, one process), ``coinbt.backends.postgres`` (one database
shared by several processes; needs the ``postgres`` extra) and ``coinbt.backends.memory`` (nothing
kept: tests and throwaway runs) each implement the event store, the read models, the artifact
outbox and the dataset catalogue; :func:`coinbt.backend.open_backend` opens one by its URL. The
interfaces and the pure code they share stay below them (``coinbt.store``, ``coinbt.projections``,
``coinbt.datasets``, ``coinbt.artifacts.outbox``).
"""

__all__ = ()
