"""``open_backend`` picks the backend by the database's name: a path is SQLite, ``memory:`` a
fresh memory backend, a ``MemoryDatabase`` the same memory backend again."""

from __future__ import annotations

from pathlib import Path

from coinbt.backend import open_backend
from coinbt.backends.memory import MemoryDatabase
from coinbt.clock import ManualClock
from tests.factories import queued


async def test_a_path_opens_sqlite(tmp_path: Path, clock: ManualClock) -> None:
    async with open_backend(tmp_path / "c.db", tmp_path / "data", clock=clock) as backend:
        assert (backend.kind, backend.liveness) == ("sqlite", None)
        await backend.store.append("a", [queued()], 0)
    assert (tmp_path / "c.db").is_file()


async def test_memory_is_fresh_each_time(tmp_path: Path, clock: ManualClock) -> None:
    async with open_backend("memory:", tmp_path, clock=clock) as backend:
        assert (backend.kind, backend.liveness) == ("memory", None)
        await backend.store.append("a", [queued()], 0)
        assert await backend.store.last_position() == 1
    async with open_backend("memory:", tmp_path, clock=clock) as backend:
        assert await backend.store.last_position() == 0
    assert not (tmp_path / "memory:").exists()  # not mistaken for a file name


async def test_a_memory_database_opens_again_with_its_state(
    tmp_path: Path, clock: ManualClock
) -> None:
    database = MemoryDatabase(clock)
    async with open_backend(database, tmp_path, clock=clock) as backend:
        [stored] = await backend.store.append("a", [queued()], 0)
        sink = await backend.projection.lead()
        assert sink is not None
        assert await backend.projection.lead() is sink  # the one writer, as on SQLite
        await sink.apply([stored])
    async with open_backend(database, tmp_path, clock=clock) as backend:
        assert await backend.store.last_position() == 1
        view = await backend.read.task("a")
        assert view is not None
        assert view.status == "queued"
        assert await backend.projection.committed() == 1
