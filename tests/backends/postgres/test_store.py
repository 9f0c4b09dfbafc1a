"""PostgreSQL-only behaviour: several instances (connections, processes) on one log, late
commits, NOTIFY, the head row, migrations, bad DSNs. The event store contract
(``tests/backends/test_event_store.py``) runs against it too."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import asyncpg  # type: ignore[import-untyped]
import pytest
from anyio.abc import TaskStatus

from coinbt.backends.postgres import PostgresEventStore, migrate_postgres, open_postgres_store
from coinbt.backends.postgres.schema import LATEST as PG_LATEST
from coinbt.clock import ManualClock, from_epoch_us, to_epoch_us
from coinbt.errors import (
    ConcurrencyError,
    DatabaseError,
)
from coinbt.events import Cancelled
from coinbt.store._batch import AppendRequest, plan_batch
from tests.factories import cancelled, completed, filled, queued, started

ROOT = Path(__file__).parents[3]


@asynccontextmanager
async def raw(dsn: str, *, tamper: bool = False) -> AsyncIterator[Any]:
    """A plain connection; with ``tamper``, the append-only triggers are dropped first."""
    conn = await asyncpg.connect(dsn)
    try:
        if tamper:
            for trigger in ("events_no_update", "events_no_delete", "event_head_no_delete"):
                table = "event_head" if trigger.startswith("event_head") else "events"
                await conn.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
        yield conn
    finally:
        await conn.close()


async def fill(dsn: str, clock: ManualClock, streams: int = 3) -> None:
    async with open_postgres_store(dsn, clock=clock) as store:
        for n in range(streams):
            await store.append(f"s{n}", [queued(), started(), filled(), completed()], 0)


async def follow(
    store: PostgresEventStore,
    positions: list[int],
    until: int,
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Collect subscribed positions until ``until`` is seen."""
    task_status.started()
    async for stored in store.subscribe():
        positions.append(stored.position)
        if stored.position >= until:
            return


async def test_two_instances_race_one_winner_per_version(pg_dsn: str, clock: ManualClock) -> None:
    async with (
        open_postgres_store(pg_dsn, clock=clock) as a,
        open_postgres_store(pg_dsn, clock=clock) as b,
    ):
        await a.append("s", [queued()], 0)
        for version in range(1, 6):
            outcomes: list[bool] = []

            async def racer(
                store: PostgresEventStore,
                n: int,
                version: int = version,
                outcomes: list[bool] = outcomes,
            ) -> None:
                try:
                    await store.append("s", [Cancelled(reason=f"racer {n}")], version)
                except ConcurrencyError:
                    outcomes.append(False)
                else:
                    outcomes.append(True)

            async with anyio.create_task_group() as tg:
                for n in range(20):
                    tg.start_soon(racer, a if n % 2 else b, n)
            assert outcomes.count(True) == 1
            assert outcomes.count(False) == 19
        # Both instances also append to their own streams at once: the log stays gap-free.
        async with anyio.create_task_group() as tg:
            for n in range(100):
                tg.start_soon((a if n % 2 else b).append, f"t{n}", [queued(), started()], 0)
        events = await b.read_all()
        assert [e.position for e in events] == list(range(1, 207))
        assert [e.version for e in await a.read_stream("s")] == [1, 2, 3, 4, 5, 6]
        report = await a.verify()
        assert report.ok, report
        assert report.last_position == 206


async def test_subscriber_sees_commits_of_another_instance(pg_dsn: str, clock: ManualClock) -> None:
    async with (
        open_postgres_store(pg_dsn, clock=clock) as a,
        open_postgres_store(pg_dsn, clock=clock) as b,
    ):
        positions: list[int] = []
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                await tg.start(follow, a, positions, 20)
                for n in range(10):  # b commits; only a NOTIFY can wake a's subscriber
                    await b.append(f"s{n}", [queued(), started()], 0)
        assert positions == list(range(1, 21))


async def test_subscriber_survives_a_lost_listening_connection(
    pg_dsn: str, clock: ManualClock
) -> None:
    async with (
        open_postgres_store(pg_dsn, clock=clock) as a,
        open_postgres_store(pg_dsn, clock=clock) as b,
        raw(pg_dsn) as admin,
    ):
        positions: list[int] = []
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                await tg.start(follow, a, positions, 2)
                await b.append("s1", [queued()], 0)
                killed = await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                )
                assert killed == 2  # both instances' listeners
                await b.append("s2", [queued()], 0)
        assert positions == [1, 2]


async def test_reader_never_skips_a_late_commit(pg_dsn: str, clock: ManualClock) -> None:
    """A slow appender holds position 3 uncommitted; a second appender must wait for it, so a
    reader can never see position 4 while 3 is still invisible."""
    async with (
        open_postgres_store(pg_dsn, clock=clock) as a,
        open_postgres_store(pg_dsn, clock=clock) as b,
        raw(pg_dsn) as slow,
        raw(pg_dsn) as admin,
    ):
        await a.append("s", [queued(), started()], 0)
        positions: list[int] = []
        fast_positions: list[int] = []

        async def fast_append() -> None:
            fast_positions.extend(e.position for e in await b.append("fast", [queued()], 0))

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                await tg.start(follow, a, positions, 4)
                async with slow.transaction():
                    # Exactly what an append does: lock the head, lay out the rows, write them.
                    head = await slow.fetchrow("SELECT position, hash FROM event_head FOR UPDATE")
                    now_us = to_epoch_us(clock.now())
                    plan = plan_batch(
                        [AppendRequest("slow", [queued()], 0)],
                        head[0],
                        bytes(head[1]),
                        {},
                        from_epoch_us(now_us),
                        now_us,
                    )
                    await slow.executemany(
                        "INSERT INTO events VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", plan.rows
                    )
                    await slow.execute(
                        "UPDATE event_head SET position = $1, hash = $2",
                        plan.head_position,
                        plan.head_hash,
                    )
                    tg.start_soon(fast_append)
                    while not await admin.fetchval(  # the fast appender waits for the lock
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    ):
                        pass
                    # Position 3 is taken but not committed; nothing after it is visible either.
                    assert await a.read_all(after=2) == []
                    assert await a.last_position() == 2
                    assert fast_positions == []
                # The slow transaction commits (without a NOTIFY); the fast one follows it.
        assert [e.stream_id for e in await a.read_all(after=2)] == ["slow", "fast"]
        assert fast_positions == [4]
        assert positions == [1, 2, 3, 4]
        assert (await a.verify()).ok


async def test_appends_commit_durably(pg_dsn: str, clock: ManualClock) -> None:
    database = pg_dsn.rsplit("/", 1)[1]
    async with raw(pg_dsn) as admin:  # even where the database's default is not durable
        await admin.execute(f"ALTER DATABASE {database} SET synchronous_commit = off")
    async with open_postgres_store(pg_dsn, clock=clock) as store:
        await store.append("a", [queued()], 0)
        assert await store._pool.fetchval("SHOW synchronous_commit") == "on"
        assert await store._sync._conn.fetchval("SHOW synchronous_commit") == "on"


async def test_stale_versions_in_the_cache_are_caught(pg_dsn: str, clock: ManualClock) -> None:
    """A stream created by another instance is unknown to this one's cache: the UNIQUE key
    catches the guess that it is new, and the append is refused, not duplicated."""
    async with (
        open_postgres_store(pg_dsn, clock=clock) as a,
        open_postgres_store(pg_dsn, clock=clock) as b,
    ):
        await a.append("x", [queued()], 0)
        await b.append("s", [queued()], 0)
        with pytest.raises(ConcurrencyError) as info:
            await a.append("s", [queued()], 0)
        assert info.value.actual == 1
        await a.append("s", [started()], 1)
        assert [e.version for e in await b.read_stream("s")] == [1, 2]
        # The same inside a batch big enough to go in by COPY: one append is refused, not all.
        await b.append("t", [queued()], 0)
        refused: list[str] = []

        async def append(stream_id: str) -> None:
            try:
                await a.append(stream_id, [queued()], 0)
            except ConcurrencyError:
                refused.append(stream_id)

        before = a.stats["transactions"]
        async with anyio.create_task_group() as tg:
            for n in range(300):
                tg.start_soon(append, "t" if n == 150 else f"u{n}")
        assert refused == ["t"]
        assert a.stats["transactions"] - before <= 2  # so at least one batch of 150 or more
        assert await a.last_position() == 4 + 299
        assert (await b.verify()).ok


async def test_appends_recover_from_a_lost_writer_connection(
    pg_dsn: str, clock: ManualClock
) -> None:
    async with open_postgres_store(pg_dsn, clock=clock) as store, raw(pg_dsn) as admin:
        await store.append("a", [queued()], 0)
        pid = store._sync.server_pid
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        failures = 0
        for _ in range(2):  # the first append may learn of the loss; the next reconnects
            try:
                await store.append("a", [started()], 1)
                break
            except DatabaseError:
                failures += 1
        assert failures <= 1
        assert [e.version for e in await store.read_stream("a")] == [1, 2]


async def test_triggers_refuse_truncate_and_moving_the_head(
    pg_dsn: str, clock: ManualClock
) -> None:
    """Beyond the contract's UPDATE and DELETE: TRUNCATE, and deleting the head row."""
    await fill(pg_dsn, clock, streams=1)
    async with raw(pg_dsn) as conn:
        for sql in (
            "TRUNCATE events",
            "DELETE FROM event_head",
        ):
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await conn.execute(sql)


@pytest.mark.parametrize(
    ("sql", "bad_position"),
    [  # the contract suite covers a row's own columns; these involve the head row
        pytest.param("DELETE FROM events WHERE position = 12", 12, id="deleted-last-row"),
        pytest.param(  # as if position 12 had been inserted without an append
            "UPDATE event_head SET position = 11,"
            " hash = (SELECT hash FROM events WHERE position = 11)",
            12,
            id="row-beyond-head",
        ),
        pytest.param("UPDATE event_head SET position = 11", 11, id="head-behind"),
        pytest.param("UPDATE event_head SET hash = '\\x00'", 12, id="head-hash"),
    ],
)
async def test_tampering_with_the_head_is_found(
    pg_dsn: str, clock: ManualClock, sql: str, bad_position: int
) -> None:
    await fill(pg_dsn, clock)
    async with open_postgres_store(pg_dsn, clock=clock) as store:
        assert (await store.verify()).ok
        async with raw(pg_dsn, tamper=True) as conn:
            await conn.execute(sql)
        report = await store.verify()
    assert not report.ok
    assert report.first_bad_position == bad_position
    assert report.last_position == bad_position - 1
    assert report.reason


async def test_migrations_apply_once_and_are_required(pg_dsn: str, clock: ManualClock) -> None:
    with pytest.raises(DatabaseError, match="coinbt migrate"):
        async with open_postgres_store(pg_dsn, clock=clock, migrate=False):
            pass
    assert await migrate_postgres(pg_dsn) == list(range(1, PG_LATEST + 1))
    assert await migrate_postgres(pg_dsn) == []
    async with open_postgres_store(pg_dsn, clock=clock, migrate=False) as store:
        assert await store.last_position() == 0


@pytest.mark.parametrize(
    ("make_dsn", "message"),
    [
        pytest.param(
            lambda dsn: "postgresql://coinbt:s3cret@127.0.0.1:1/log", "cannot connect", id="refused"
        ),
        pytest.param(lambda dsn: "not a dsn", "cannot connect", id="garbage"),
        pytest.param(lambda dsn: "postgresql://u@[::1/x", "cannot connect", id="malformed"),
        pytest.param(
            lambda dsn: dsn.rsplit("/", 1)[0] + "/no_such_db", "does not exist", id="no-database"
        ),
    ],
)
async def test_a_bad_dsn_is_a_database_error(
    pg_dsn: str, clock: ManualClock, make_dsn: Any, message: str
) -> None:
    with pytest.raises(DatabaseError, match=message) as info:
        async with open_postgres_store(make_dsn(pg_dsn), clock=clock):
            pass
    assert "s3cret" not in str(info.value)
    assert "Traceback" not in str(info.value)


_CHILD = textwrap.dedent(
    """
    import sys, anyio
    from coinbt.errors import ConcurrencyError
    from coinbt.backends.postgres import open_postgres_store
    from tests.factories import cancelled, queued

    async def main(dsn, rounds):
        async with open_postgres_store(dsn) as store:
            won = 0
            while won < rounds:  # read, decide, append at the version read; retry if beaten
                version = await store.stream_version("shared")
                try:
                    await store.append("shared", [cancelled()], version)
                    won += 1
                except ConcurrencyError:
                    pass
                await store.append(f"child-{won}-{version}", [queued()], 0)
        print(won, flush=True)

    anyio.run(main, sys.argv[1], int(sys.argv[2]))
    """
)


async def test_two_processes_share_one_log(pg_dsn: str, clock: ManualClock) -> None:
    """Another process races this one on one stream: every increment lands exactly once, the
    log is gap-free and verifies, and this process's subscriber sees the other's commits."""
    rounds = 60
    async with open_postgres_store(pg_dsn, clock=clock) as store:
        await store.append("shared", [queued()], 0)
        child = await anyio.open_process(
            [sys.executable, "-c", _CHILD, pg_dsn, str(rounds)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stderr=subprocess.STDOUT,
        )
        won = 0
        async with child:
            while won < rounds:
                version = await store.stream_version("shared")
                try:
                    await store.append("shared", [cancelled()], version)
                    won += 1
                except ConcurrencyError:
                    pass
            assert child.stdout is not None
            output = b"".join([chunk async for chunk in child.stdout])
            assert await child.wait() == 0, output.decode()
        assert int(output) == rounds
        last = await store.last_position()
        positions: list[int] = []
        with anyio.fail_after(10):
            await follow(store, positions, last)
        assert positions == list(range(1, last + 1))
        shared = await store.read_stream("shared")
        assert [e.version for e in shared] == list(range(1, 2 * rounds + 2))
        report = await store.verify()
        assert report.ok, report


async def test_appends_stay_correct_under_a_stricter_default_isolation(
    pg_dsn: str, clock: ManualClock
) -> None:
    """The writer pins READ COMMITTED: with the database defaulting to REPEATABLE READ, two
    instances racing would otherwise fail with serialization errors or read stale versions."""
    database = pg_dsn.rsplit("/", 1)[1]
    async with raw(pg_dsn) as admin:
        await admin.execute(
            f"ALTER DATABASE {database} SET default_transaction_isolation = 'repeatable read'"
        )
    async with (
        open_postgres_store(pg_dsn, clock=clock) as a,
        open_postgres_store(pg_dsn, clock=clock) as b,
    ):
        async with anyio.create_task_group() as tg:
            for n in range(200):
                tg.start_soon((a if n % 2 else b).append, f"s{n % 20}-{n}", [queued()], 0)
        await a.append("x", [queued()], 0)
        with pytest.raises(ConcurrencyError):
            await b.append("x", [queued()], 0)
        assert [e.position for e in await a.read_all()] == list(range(1, 202))
        assert (await b.verify()).ok
