"""The event store contract: one suite, run against every backend's store (memory, SQLite,
PostgreSQL). What only one backend does is in ``sqlite/test_store.py`` and
``postgres/test_store.py``."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import asyncpg  # type: ignore[import-untyped]
import pytest
from anyio.abc import TaskStatus

from coinbt.backends.memory import MemoryEventStore
from coinbt.backends.postgres import open_postgres_store
from coinbt.backends.sqlite import open_sqlite_store
from coinbt.clock import ManualClock
from coinbt.errors import (
    ConcurrencyError,
    CorruptEventError,
    EmptyAppendError,
    SchemaTooNewError,
    UnknownEventTypeError,
)
from coinbt.events import Cancelled, Queued, StoredEvent
from coinbt.store import EventStore
from tests.factories import cancelled, completed, filled, queued, started

OpenStore = Callable[[], AbstractAsyncContextManager[EventStore]]


@dataclass
class Opened:
    """A store's backend (``kind``), a factory that opens the same log on every call (a restart),
    and ``raw``: SQL run directly on its tables (None in memory)."""

    kind: str
    open: Callable[..., AbstractAsyncContextManager[EventStore]]  # migrate=False: as is
    raw: Callable[[str], Awaitable[None]]
    memory: MemoryEventStore | None = None


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def opened(request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock) -> Opened:
    return _opened(request, tmp_path, clock)


@pytest.fixture(params=["sqlite", "postgres"])
def durable(request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock) -> Opened:
    """The stores kept in a database (with a schema, triggers and group commit)."""
    return _opened(request, tmp_path, clock)


def _opened(request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock) -> Opened:
    kind = request.param
    # A fresh database on the session's PostgreSQL server (the tests skip if there is none).
    dsn: str = request.getfixturevalue("pg_dsn") if kind == "postgres" else ""
    path = tmp_path / "log.db"
    memory = MemoryEventStore(clock) if kind == "memory" else None

    @asynccontextmanager
    async def factory(migrate: bool = True) -> AsyncIterator[EventStore]:
        if memory is not None:
            yield memory
        elif kind == "sqlite":
            async with open_sqlite_store(path, clock=clock, migrate=migrate) as store:
                yield store
        else:
            async with open_postgres_store(dsn, clock=clock, migrate=migrate) as pg_store:
                yield pg_store

    async def raw_sqlite(sql: str) -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute(sql)
        finally:
            conn.close()

    async def raw_postgres(sql: str) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    return Opened(kind, factory, raw_postgres if kind == "postgres" else raw_sqlite, memory)


@pytest.fixture
def open_store(opened: Opened) -> OpenStore:
    """A factory: ``async with open_store() as store`` (same file or database each call)."""
    return opened.open


async def test_empty_store(open_store: OpenStore) -> None:
    async with open_store() as store:
        assert await store.last_position() == 0
        assert await store.read_all() == []
        assert await store.read_stream("nope") == []
        assert await store.stream_version("nope") == 0
        report = await store.verify()
        assert report.ok
        assert report.checked == 0


async def test_append_assigns_positions_versions_and_hashes(
    open_store: OpenStore, clock: ManualClock
) -> None:
    async with open_store() as store:
        a = await store.append("a", [queued(), started()], expected_version=0)
        clock.advance(1.5)
        b = await store.append("b", [queued()], expected_version=0)
        c = await store.append("a", [filled(), completed()], expected_version=2)

        assert [(e.position, e.stream_id, e.version) for e in a + b + c] == [
            (1, "a", 1),
            (2, "a", 2),
            (3, "b", 1),
            (4, "a", 3),
            (5, "a", 4),
        ]
        assert [e.type for e in a + b + c] == ["Queued", "Started", "Queued", "Filled", "Completed"]
        assert b[0].recorded_at - a[0].recorded_at == timedelta(seconds=1.5)
        assert len({e.hash for e in a + b + c}) == 5
        assert all(len(e.hash) == 64 for e in a + b + c)
        # What append returned is exactly what a reader gets back.
        assert await store.read_all() == a + b + c
        assert await store.read_stream("a") == a + c
        assert await store.read_stream("a", after_version=2) == c
        assert await store.stream_version("a") == 4
        assert await store.last_position() == 5


async def test_read_all_pages(open_store: OpenStore) -> None:
    async with open_store() as store:
        for i in range(7):
            await store.append(f"s{i}", [queued()], expected_version=0)
        page = await store.read_all(after=2, limit=3)
        assert [e.position for e in page] == [3, 4, 5]
        assert [e.position for e in await store.read_all(after=5)] == [6, 7]
        assert await store.read_all(after=7) == []


async def test_stale_version_is_refused_and_writes_nothing(open_store: OpenStore) -> None:
    async with open_store() as store:
        await store.append("a", [queued()], expected_version=0)
        with pytest.raises(ConcurrencyError) as info:
            await store.append("a", [started(), cancelled()], expected_version=0)
        assert info.value.expected == 0
        assert info.value.actual == 1
        assert "version 1" in str(info.value)
        with pytest.raises(ConcurrencyError):
            await store.append("a", [started()], expected_version=5)
        assert await store.last_position() == 1
        assert await store.stream_version("a") == 1
        assert (await store.verify()).ok


async def test_empty_append_is_refused(open_store: OpenStore) -> None:
    async with open_store() as store:
        with pytest.raises(EmptyAppendError, match="no events"):
            await store.append("a", [], expected_version=0)
        assert await store.last_position() == 0


async def test_concurrent_appenders_one_winner_per_version(open_store: OpenStore) -> None:
    """Twenty appenders race for each of five versions of one stream: one wins each round."""
    async with open_store() as store:
        await store.append("s", [queued()], expected_version=0)
        for version in range(1, 6):
            winners: list[int] = []
            losers: list[int] = []

            async def racer(
                n: int,
                version: int = version,
                winners: list[int] = winners,
                losers: list[int] = losers,
            ) -> None:
                try:
                    await store.append("s", [Cancelled(reason=f"racer {n}")], version)
                except ConcurrencyError:
                    losers.append(n)
                else:
                    winners.append(n)

            async with anyio.create_task_group() as tg:
                for n in range(20):
                    tg.start_soon(racer, n)
            assert len(winners) == 1
            assert len(losers) == 19
        events = await store.read_stream("s")
        assert [e.version for e in events] == [1, 2, 3, 4, 5, 6]
        assert (await store.verify()).ok


async def test_concurrent_appenders_to_different_streams_all_land(open_store: OpenStore) -> None:
    async with open_store() as store:
        async with anyio.create_task_group() as tg:
            for n in range(300):
                tg.start_soon(store.append, f"s{n}", [queued(), started()], 0)
        events = await store.read_all()
        assert [e.position for e in events] == list(range(1, 601))
        for n in range(300):
            assert [e.version for e in await store.read_stream(f"s{n}")] == [1, 2]
        assert (await store.verify()).ok


async def test_append_many_commits_several_streams_together(open_store: OpenStore) -> None:
    async with open_store() as store:
        await store.append("a", [queued()], expected_version=0)
        stored = await store.append_many(
            [("a", [started()], 1), ("b", [queued()], 0), ("c", [queued(), started()], 0)]
        )
        assert [[(e.position, e.stream_id, e.version) for e in part] for part in stored] == [
            [(2, "a", 2)],
            [(3, "b", 1)],
            [(4, "c", 1), (5, "c", 2)],
        ]
        assert await store.read_all() == [*(await store.read_stream("a")), *stored[1], *stored[2]]
        assert await store.stream_version("c") == 2
        assert (await store.verify()).ok


async def test_append_many_with_one_stale_stream_writes_nothing(open_store: OpenStore) -> None:
    async with open_store() as store:
        await store.append("b", [queued()], expected_version=0)
        with pytest.raises(ConcurrencyError) as info:
            await store.append_many([("a", [queued()], 0), ("b", [queued()], 0)])
        assert info.value.stream_id == "b"
        assert await store.last_position() == 1
        assert await store.stream_version("a") == 0
        # The log goes on as if the refused group never came.
        await store.append("a", [queued()], expected_version=0)
        assert await store.last_position() == 2
        assert (await store.verify()).ok


async def test_append_many_refuses_bad_groups(open_store: OpenStore) -> None:
    async with open_store() as store:
        with pytest.raises(EmptyAppendError):
            await store.append_many([])
        with pytest.raises(EmptyAppendError):
            await store.append_many([("a", [queued()], 0), ("b", [], 0)])
        with pytest.raises(ValueError, match="twice"):
            await store.append_many([("a", [queued()], 0), ("a", [started()], 1)])
        assert await store.last_position() == 0


async def test_append_each_checks_every_stream_on_its_own(open_store: OpenStore) -> None:
    """One stale stream refuses only its own append (its place holds the error); the others
    commit, in order, with consecutive positions."""
    async with open_store() as store:
        await store.append("a", [queued()], expected_version=0)
        await store.append("b", [queued()], expected_version=0)
        outcomes = await store.append_each(
            [("a", [started()], 1), ("b", [started()], 0), ("c", [queued(), started()], 0)]
        )
        assert isinstance(outcomes[1], ConcurrencyError)
        assert (outcomes[1].stream_id, outcomes[1].expected, outcomes[1].actual) == ("b", 0, 1)
        kept = [part for part in outcomes if not isinstance(part, ConcurrencyError)]
        assert [[(e.position, e.stream_id, e.version) for e in part] for part in kept] == [
            [(3, "a", 2)],
            [(4, "c", 1), (5, "c", 2)],
        ]
        assert await store.stream_version("b") == 1
        assert [e.position for e in await store.read_all()] == [1, 2, 3, 4, 5]
        assert (await store.verify()).ok


async def test_append_each_refuses_an_empty_append_and_writes_nothing(
    open_store: OpenStore,
) -> None:
    async with open_store() as store:
        with pytest.raises(EmptyAppendError) as info:
            await store.append_each([("a", [queued()], 0), ("b", [], 0)])
        assert info.value.stream_id == "b"
        assert await store.append_each([]) == []
        assert await store.last_position() == 0


async def test_append_each_races_single_appends_one_winner_per_stream(
    open_store: OpenStore,
) -> None:
    """append_each calls over streams y0..y9 race single appends at version 0: each stream gets
    exactly one first event, and every outcome says truly whether its append is the one."""
    async with open_store() as store:
        won: dict[str, str] = {}

        async def each(n: int) -> None:
            outcomes = await store.append_each(
                [(f"y{i}", [Cancelled(reason=f"e{n}")], 0) for i in range(n, n + 3)]
            )
            for i, outcome in zip(range(n, n + 3), outcomes, strict=True):
                if not isinstance(outcome, ConcurrencyError):
                    assert f"y{i}" not in won
                    won[f"y{i}"] = f"e{n}"

        async def single(i: int) -> None:
            try:
                await store.append(f"y{i}", [Cancelled(reason="single")], 0)
            except ConcurrencyError:
                return
            assert f"y{i}" not in won
            won[f"y{i}"] = "single"

        async with anyio.create_task_group() as tg:
            for n in range(8):
                tg.start_soon(each, n)
            for i in range(10):
                tg.start_soon(single, i)
        for i in range(10):
            events = await store.read_stream(f"y{i}")
            assert [e.version for e in events] == [1]
            event = events[0].event
            assert isinstance(event, Cancelled)
            assert won[f"y{i}"] == event.reason
        assert (await store.verify()).ok


async def test_append_many_races_single_appends_all_or_nothing(open_store: OpenStore) -> None:
    """Groups over streams x0..x9 race single appends to the same streams at version 0: every
    stream ends with exactly one first event, and each group either landed whole or not at all."""
    async with open_store() as store:
        landed: list[int] = []

        async def group(n: int) -> None:
            try:
                await store.append_many(
                    [(f"x{i}", [Cancelled(reason=f"g{n}")], 0) for i in range(n, n + 3)]
                )
            except ConcurrencyError:
                return
            landed.append(n)

        async def single(i: int) -> None:
            try:
                await store.append(f"x{i}", [Cancelled(reason="single")], 0)
            except ConcurrencyError:
                return

        async with anyio.create_task_group() as tg:
            for n in range(0, 8):
                tg.start_soon(group, n)
            for i in range(10):
                tg.start_soon(single, i)
        owners: dict[str, str] = {}
        for i in range(10):
            events = await store.read_stream(f"x{i}")
            assert [e.version for e in events] == [1]
            event = events[0].event
            assert isinstance(event, Cancelled)
            owners[f"x{i}"] = event.reason
        for n in range(8):
            mine = [owners[f"x{i}"] == f"g{n}" for i in range(n, n + 3)]
            assert all(mine) if n in landed else not any(mine)
        assert (await store.verify()).ok


async def test_subscribe_replays_then_follows_live(open_store: OpenStore) -> None:
    async with open_store() as store:
        for i in range(3):
            await store.append(f"s{i}", [queued()], expected_version=0)
        seen: list[StoredEvent] = []
        enough = anyio.Event()

        async def follow(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
            task_status.started()
            async for stored in store.subscribe(after=1):
                seen.append(stored)
                if len(seen) == 12:
                    enough.set()
                    return

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                await tg.start(follow)
                for i in range(3, 13):
                    await store.append(f"s{i}", [queued()], expected_version=0)
                await enough.wait()
        assert [e.position for e in seen] == list(range(2, 14))


async def test_subscribe_misses_nothing_under_concurrent_appends(open_store: OpenStore) -> None:
    async with open_store() as store:
        positions: list[int] = []
        done = anyio.Event()

        async def follow() -> None:
            async for stored in store.subscribe():
                positions.append(stored.position)
                if len(positions) == 400:
                    done.set()
                    return

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(follow)
                for n in range(200):
                    tg.start_soon(store.append, f"s{n}", [queued(), started()], 0)
                await done.wait()
        assert positions == list(range(1, 401))


async def test_payload_round_trips(open_store: OpenStore) -> None:
    async with open_store() as store:
        original = Queued(spec=queued().spec, attempt=2, idempotency_key="k-1")
        [stored] = await store.append("a", [original], 0)
        [read] = await store.read_stream("a")
        assert read.event == original
        assert read.to_builtins()["data"]["idempotency_key"] == "k-1"
        assert read.to_builtins()["type"] == "Queued"
        assert stored == read


async def test_verify_reports_progress(open_store: OpenStore) -> None:
    """Every 65,536 events and once at the end, with the size of the log as the total."""
    async with open_store() as store:
        for n in range(70):
            await store.append(
                "long", [Cancelled(reason=f"r{n}-{i}") for i in range(1000)], n * 1000
            )
        heard: list[tuple[int, int]] = []
        report = await store.verify(lambda done, total: heard.append((done, total)))
        assert report.ok
        assert heard == [(65_536, 70_000), (70_000, 70_000)]


# --- twins once written for SQLite and PostgreSQL apart -------------------------------------------


async def _fill(open_store: OpenStore, streams: int = 3) -> None:
    async with open_store() as store:
        for n in range(streams):
            await store.append(f"s{n}", [queued(), started(), filled(), completed()], 0)


async def test_data_survives_reopen(open_store: OpenStore) -> None:
    async with open_store() as store:
        first = await store.append("a", [queued(), started(), filled(), completed()], 0)
    async with open_store() as store:
        assert await store.read_all() == first
        more = await store.append("a", [cancelled()], 4)
        assert more[0].position == 5
        assert await store.stream_ids() == ["a"]
        assert (await store.verify()).ok


async def test_group_commit_batches_concurrent_appends(durable: Opened) -> None:
    async with durable.open() as store:
        async with anyio.create_task_group() as tg:
            for n in range(500):
                tg.start_soon(store.append, f"s{n}", [queued()], 0)
        stats = store.stats  # type: ignore[attr-defined]
    assert stats["appends"] == 500
    assert stats["transactions"] < 250  # many appends shared a transaction


# What a tamperer does to a row (in every SQL dialect, and to the memory store's rows).
_SQL: dict[str, dict[str, str]] = {
    "payload": {
        "sqlite": "UPDATE events SET data = data || x'00' WHERE position = {p}",
        "postgres": "UPDATE events SET data = data || '\\x00' WHERE position = {p}",
    },
    "garbage": {
        "sqlite": "UPDATE events SET data = x'c1c1c1' WHERE position = {p}",
        "postgres": "UPDATE events SET data = '\\xc1c1c1' WHERE position = {p}",
    },
    "timestamp": {"*": "UPDATE events SET recorded_at = 1 WHERE position = {p}"},
    "stream": {"*": "UPDATE events SET stream_id = 'x' WHERE position = {p}"},
    "deleted-row": {"*": "DELETE FROM events WHERE position = {p}"},
    "hash": {
        "sqlite": "UPDATE events SET hash = zeroblob(32) WHERE position = {p}",
        "postgres": "UPDATE events SET hash = decode(repeat('00', 32), 'hex') WHERE position = {p}",
    },
    "type-Teleported": {"*": "UPDATE events SET type = 'Teleported' WHERE position = {p}"},
    "type-Started": {"*": "UPDATE events SET type = 'Started' WHERE position = {p}"},
}
_COLUMN = {"payload": 6, "garbage": 6, "timestamp": 5, "stream": 1, "hash": 7, "type": 3}
_TRIGGERS = {
    "sqlite": [
        "DROP TRIGGER IF EXISTS events_no_update",
        "DROP TRIGGER IF EXISTS events_no_delete",
    ],
    "postgres": [
        "DROP TRIGGER IF EXISTS events_no_update ON events",
        "DROP TRIGGER IF EXISTS events_no_delete ON events",
    ],
}


async def _tamper(opened: Opened, change: str, position: int) -> None:
    """Change one stored row behind the store's back (the append-only triggers dropped)."""
    if opened.memory is not None:
        rows: list[Any] = opened.memory._rows
        index = position - 1
        if change == "deleted-row":
            del rows[index]
            return
        row = list(rows[index])
        values = {
            "payload": row[6] + b"\x00",
            "garbage": b"\xc1\xc1\xc1",
            "timestamp": 1,
            "stream": "x",
            "hash": bytes(32),
        }
        name = "type" if change.startswith("type-") else change
        row[_COLUMN[name]] = change.removeprefix("type-") if name == "type" else values[name]
        rows[index] = tuple(row)
        return
    for sql in _TRIGGERS[opened.kind]:
        await opened.raw(sql)
    dialects = _SQL[change]
    await opened.raw(dialects.get(opened.kind, dialects.get("*", "")).format(p=position))


@pytest.mark.parametrize(
    ("change", "bad_position"),
    [
        pytest.param("payload", 5, id="payload"),
        pytest.param("timestamp", 9, id="timestamp"),
        pytest.param("stream", 2, id="stream"),
        pytest.param("deleted-row", 4, id="deleted-row"),
        pytest.param("hash", 12, id="hash"),
    ],
)
async def test_tampering_is_found_at_its_position(
    opened: Opened, change: str, bad_position: int
) -> None:
    await _fill(opened.open)
    async with opened.open() as store:
        assert (await store.verify()).ok
        await _tamper(opened, change, bad_position)
        report = await store.verify()
    assert not report.ok
    assert report.first_bad_position == bad_position
    assert report.last_position == bad_position - 1
    assert report.reason


async def test_corrupt_rows_name_their_position(opened: Opened) -> None:
    await _fill(opened.open)
    await _tamper(opened, "garbage", 6)
    await _tamper(opened, "type-Teleported", 10)
    await _tamper(opened, "type-Started", 1)  # a payload of another type
    async with opened.open() as store:
        with pytest.raises(CorruptEventError, match="position 1"):
            await store.read_all()
        assert len(await store.read_all(after=1, limit=4)) == 4
        with pytest.raises(CorruptEventError, match="position 6"):
            await store.read_all(after=1)
        with pytest.raises(CorruptEventError, match="position 6"):
            await store.read_stream("s1")
        with pytest.raises(UnknownEventTypeError, match=r"position 10 .*'Teleported'"):
            await store.read_all(after=6)


async def test_triggers_refuse_update_and_delete(durable: Opened) -> None:
    await _fill(durable.open, streams=1)
    for sql in _SQL["garbage"][durable.kind], _SQL["deleted-row"]["*"]:
        with pytest.raises((sqlite3.IntegrityError, asyncpg.RaiseError), match="append-only"):
            await durable.raw(sql.format(p=1))
    async with durable.open() as store:
        assert (await store.verify()).ok


async def test_newer_schema_is_refused(durable: Opened) -> None:
    await _fill(durable.open, streams=1)
    await durable.raw("INSERT INTO schema_migrations VALUES (999, 'from the future', 0)")
    for migrate in (True, False):
        with pytest.raises(SchemaTooNewError, match="schema version 999"):
            async with durable.open(migrate=migrate):
                pass
