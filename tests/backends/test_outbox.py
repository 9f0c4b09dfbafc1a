"""The artifact outbox contract, run against every backend (memory, SQLite, PostgreSQL); the
PostgreSQL outbox shared by several processes is tested in ``postgres/test_outbox.py``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from coinbt.artifacts.outbox import LOCAL
from coinbt.clock import ManualClock
from coinbt.events import ArtifactRef
from tests.backends import KINDS, OpenBackend, backend_factory


@pytest.fixture(params=KINDS)
def open_backend(request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock) -> OpenBackend:
    return backend_factory(request, tmp_path, clock)[0]


def staged(data_dir: Path, task_id: str, *names: str) -> list[tuple[str, ArtifactRef, Path]]:
    """Staged files of a run, as a worker records them."""
    items = []
    for name in names:
        path = data_dir / "staging" / f"{task_id}-{name}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode())
        ref = ArtifactRef(key=f"tasks/{task_id}-1-{name}.npy", sha256="00" * 32, size=len(name))
        items.append((name, ref, path))
    return items


async def test_rows_move_from_pending_to_stored_or_failed(
    open_backend: OpenBackend, clock: ManualClock, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    async with open_backend() as backend:
        outbox = backend.outbox
        assert outbox.counts == {"pending": 0, "stored": 0, "failed": 0}
        await outbox.add("t1", staged(data, "t1", "fills", "equity"))
        clock.advance(1)
        await outbox.add("t2", staged(data, "t2", "equity"))
        await outbox.add("t1", staged(data, "t1", "equity"))  # recorded already: unchanged
        assert outbox.counts["pending"] == 3
        rows = await outbox.for_task("t1")
        assert [(r.name, r.state, r.attempts) for r in rows] == [
            ("equity", "pending", 0),
            ("fills", "pending", 0),
        ]
        assert outbox.staged_path(rows[0]) == data / "staging" / "t1-equity.npy"
        assert rows[0].staged == "staging/t1-equity.npy"  # relative: the data dir can move

        await outbox.mark_retry("tasks/t1-1-equity.npy", "endpoint down")
        pending = await outbox.pending(10)  # the least tried first, then the oldest
        assert [r.key for r in pending] == [
            "tasks/t1-1-fills.npy",
            "tasks/t2-1-equity.npy",
            "tasks/t1-1-equity.npy",
        ]
        assert (pending[-1].attempts, pending[-1].last_error) == (1, "endpoint down")
        assert [r.key for r in await outbox.pending(1)] == ["tasks/t1-1-fills.npy"]

        await outbox.mark_stored("tasks/t1-1-equity.npy", LOCAL)
        await outbox.mark_stored("tasks/t1-1-equity.npy", "s3://elsewhere")  # not pending: no-op
        await outbox.mark_failed("tasks/t2-1-equity.npy", "the staged file is gone")
        await outbox.discard(["tasks/t1-1-fills.npy"])
        assert outbox.counts == {"pending": 0, "stored": 1, "failed": 1}
        stored = await outbox.get("tasks/t1-1-equity.npy")
        assert stored is not None
        assert (stored.state, stored.location, stored.staged, stored.attempts) == (
            "stored",
            LOCAL,
            None,
            2,
        )
        assert stored.updated_at - stored.created_at == timedelta(seconds=1)
        lost = await outbox.get("tasks/t2-1-equity.npy")
        assert lost is not None
        assert (lost.state, lost.last_error) == ("failed", "the staged file is gone")
        assert await outbox.get("tasks/t1-1-fills.npy") is None
        assert await outbox.pending(10) == []
        assert await outbox.adopt_orphans() == 0


async def test_relocating_stored_rows(open_backend: OpenBackend, tmp_path: Path) -> None:
    async with open_backend() as backend:
        outbox = backend.outbox
        for n in range(3):
            await outbox.add(f"t{n}", staged(tmp_path / "data", f"t{n}", "equity"))
            await outbox.mark_stored(f"tasks/t{n}-1-equity.npy", LOCAL)
        assert await outbox.count_stored_at(LOCAL) == 3
        first = await outbox.stored_elsewhere("s3://b/p", "", 2)
        assert [r.key for r in first] == ["tasks/t0-1-equity.npy", "tasks/t1-1-equity.npy"]
        rest = await outbox.stored_elsewhere("s3://b/p", first[-1].key, 2)
        assert [r.key for r in rest] == ["tasks/t2-1-equity.npy"]
        assert await outbox.relocate("tasks/t0-1-equity.npy", LOCAL, "s3://b/p")
        assert not await outbox.relocate("tasks/t0-1-equity.npy", LOCAL, "s3://b/p")
        assert await outbox.count_stored_at("s3://b/p") == 1
        assert [r.key for r in await outbox.stored_elsewhere("s3://b/p", "", 10)] == [
            "tasks/t1-1-equity.npy",
            "tasks/t2-1-equity.npy",
        ]
    async with open_backend() as backend:  # a restart counts what is there
        assert backend.outbox.counts == {"pending": 0, "stored": 3, "failed": 0}


async def test_marking_many_stored_at_once(open_backend: OpenBackend, tmp_path: Path) -> None:
    async with open_backend() as backend:
        outbox = backend.outbox
        for n in range(4):
            await outbox.add(f"t{n}", staged(tmp_path / "data", f"t{n}", "equity"))
        await outbox.mark_stored("tasks/t0-1-equity.npy", LOCAL)
        keys = [f"tasks/t{n}-1-equity.npy" for n in range(3)]  # t0 is stored already
        await outbox.mark_stored_many(keys, LOCAL)
        assert outbox.counts == {"pending": 1, "stored": 3, "failed": 0}
        assert [r.key for r in await outbox.pending(10)] == ["tasks/t3-1-equity.npy"]
        t0 = await outbox.get("tasks/t0-1-equity.npy")
        assert t0 is not None
        assert t0.attempts == 1  # marked once: the second time it was no longer pending
