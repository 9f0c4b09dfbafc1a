"""The read models on PostgreSQL with several processes: one writer at a time (elected with a
session advisory lock), a stale writer refused by the checkpoint, and the others told when the
read models advance."""

from __future__ import annotations

import anyio
import asyncpg  # type: ignore[import-untyped]
import pytest

from coinbt.backends.postgres import migrate_postgres, open_postgres_store
from coinbt.backends.postgres.read_models import PgProjection, PgReadModelSink
from coinbt.errors import DatabaseError, ProjectionConflictError
from tests.factories import queued, started


async def test_one_writer_at_a_time_and_the_next_takes_over(pg_dsn: str) -> None:
    await migrate_postgres(pg_dsn)
    first, second = PgProjection(pg_dsn), PgProjection(pg_dsn)
    try:
        sink = await first.lead()
        assert sink is not None
        assert await first.lead() is sink  # still the writer
        assert await second.lead() is None
        await first.resign()  # or its process dies: its session's lock goes
        taken = await second.lead()
        assert taken is not None
        assert await first.lead() is None
    finally:
        await first.close()
        await second.close()


async def test_a_dead_writers_session_frees_the_lock(pg_dsn: str) -> None:
    await migrate_postgres(pg_dsn)
    first, second = PgProjection(pg_dsn), PgProjection(pg_dsn)
    try:
        assert await first.lead() is not None
        pid = first._conn.get_server_pid()
        admin = await asyncpg.connect(pg_dsn)
        try:  # the writer's connection is killed, as when its host goes away; the call returns
            # once that backend has exited (the timeout form, PostgreSQL 14+)
            assert await admin.fetchval("SELECT pg_terminate_backend($1, 10000)", pid)
        finally:
            await admin.close()
        assert await second.lead() is not None
    finally:
        await first.close()
        await second.close()


async def test_followers_hear_each_new_checkpoint(pg_dsn: str) -> None:
    async with open_postgres_store(pg_dsn) as store:
        writer, follower = PgProjection(pg_dsn), PgProjection(pg_dsn)
        try:
            sink = await writer.lead()
            assert sink is not None
            assert await follower.lead() is None
            assert await follower.committed() == 0
            for n in range(3):
                hint = follower.announced_hint()
                await store.append(f"t{n}", [queued(), started()], 0)
                position = await sink.apply(await store.read_all(sink.checkpoint))
                with anyio.fail_after(10):
                    await hint.wait()
                assert follower.announced == position == 2 * (n + 1)
            assert await follower.committed() == 6
        finally:
            await writer.close()
            await follower.close()


async def test_a_stale_writer_writes_nothing(pg_dsn: str) -> None:
    async with open_postgres_store(pg_dsn) as store:
        await store.append("t", [queued(), started()], 0)
        events = await store.read_all()
        conns = [await asyncpg.connect(pg_dsn) for _ in range(2)]
        try:
            fresh, stale = (PgReadModelSink(c, "main", 0, "test") for c in conns)
            assert await fresh.apply(events[:1]) == 1
            with pytest.raises(ProjectionConflictError, match="moved the read models"):
                await stale.apply(events)  # it still believes the checkpoint is 0
            assert not stale.usable
            with pytest.raises(DatabaseError):
                await stale.apply(events)
            assert await conns[0].fetchval("SELECT status FROM tasks WHERE task_id = 't'") == (
                "queued"
            )
        finally:
            for conn in conns:
                await conn.close()


async def test_a_writer_that_stops_says_so(pg_dsn: str) -> None:
    await migrate_postgres(pg_dsn)
    writer, follower = PgProjection(pg_dsn), PgProjection(pg_dsn)
    try:
        assert await writer.lead() is not None
        assert await follower.lead() is None
        assert not follower.vacant
        hint = follower.announced_hint()
        await writer.close()  # a clean stop: the lock is free and the others are told
        with anyio.fail_after(10):
            await hint.wait()
        assert follower.vacant
        assert await follower.lead() is not None  # at once, not at its next retry
        assert not follower.vacant
    finally:
        await writer.close()
        await follower.close()
