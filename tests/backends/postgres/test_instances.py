"""Liveness of the processes sharing a PostgreSQL database: an instance's lock can be taken
only once its process is gone, and by one survivor at a time."""

from __future__ import annotations

from coinbt.backends.postgres import migrate_postgres
from coinbt.backends.postgres.instances import open_instance
from coinbt.store.instances import owner_of, worker_id


def test_worker_ids_name_their_instance() -> None:
    assert worker_id(None, 1) == "w1"
    assert worker_id("i7", 2) == "i7/w2"
    assert owner_of("i7/w2") == "i7"
    assert owner_of("w1") is None
    assert owner_of(None) is None


async def test_an_instance_lock_is_free_only_once_its_process_is_gone(pg_dsn: str) -> None:
    await migrate_postgres(pg_dsn)
    async with open_instance(pg_dsn) as a, open_instance(pg_dsn) as b:
        assert a.instance_id != b.instance_id
        async with a.take_if_dead(a.instance_id) as dead:
            assert not dead  # never itself
        async with a.take_if_dead("not-an-instance") as dead:
            assert not dead
        async with open_instance(pg_dsn) as c, a.take_if_dead(c.instance_id) as dead:
            assert not dead
        async with a.take_if_dead(c.instance_id) as dead:
            assert dead
            async with b.take_if_dead(c.instance_id) as also:
                assert not also  # a acts for c now
        async with b.take_if_dead(c.instance_id) as dead:
            assert dead  # a let go
