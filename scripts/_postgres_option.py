"""``--db DSN`` / ``--postgres`` for the benchmarks that also run on PostgreSQL."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ("add_postgres_options", "postgres_dsn")


def add_postgres_options(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--db", metavar="DSN", help="also run on this (empty) PostgreSQL database")
    where.add_argument(
        "--postgres", action="store_true", help="also run on a temporary PostgreSQL server"
    )


@contextmanager
def postgres_dsn(args: argparse.Namespace) -> Iterator[str | None]:
    """The DSN to benchmark: --db as given, or a database on a throwaway server (--postgres)."""
    if not args.postgres:
        yield args.db
        return
    sys.path.insert(0, str(Path(__file__).parents[1]))
    from tests.pg import temporary_server

    with temporary_server(durable=True) as server:
        yield server.create_database("bench")
