"""The PostgreSQL backend: one database shared by several ``coinbt serve`` processes.

Importing it needs the ``postgres`` extra (asyncpg): ``pip install 'coinbt[postgres]'``.
"""

from coinbt.backends.postgres.store import PostgresEventStore, migrate_postgres, open_postgres_store

__all__ = ("PostgresEventStore", "migrate_postgres", "open_postgres_store")
