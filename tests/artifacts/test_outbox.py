"""The artifact outbox contract, run against every implementation (SQLite, PostgreSQL), and the
PostgreSQL outbox shared by several processes: each uploads what it staged, and the pending
uploads of a process that is gone are adopted where their files are."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import cast

import anyio
import pytest

from coinbt.artifacts.outbox import LOCAL
from coinbt.backends.postgres.outbox import PgArtifactOutbox
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


async def test_each_process_uploads_its_own_and_adopts_a_gone_ones(
    pg_dsn: str, tmp_path: Path, clock: ManualClock
) -> None:
    from coinbt.backend import open_backend

    shared, elsewhere = tmp_path / "shared", tmp_path / "elsewhere"
    async with open_backend(pg_dsn, shared, clock=clock) as live:
        async with open_backend(pg_dsn, shared, clock=clock) as gone:
            await gone.outbox.add("t1", staged(shared, "t1", "equity"))
            # staged on another machine, whose disk nobody else sees
            await gone.outbox.add("t2", staged(elsewhere, "t2", "equity"))
            (elsewhere / "staging" / "t2-equity.npy").unlink()
            await live.outbox.add("t3", staged(shared, "t3", "equity"))
            assert [r.key for r in await live.outbox.pending(10)] == ["tasks/t3-1-equity.npy"]
            assert live.outbox.counts["pending"] == 1
            assert gone.outbox.counts["pending"] == 2
            assert await live.outbox.adopt_orphans() == 0  # its owner is alive
        # Its process is gone: the rows whose files are here are adopted, the others stay.
        assert await live.outbox.adopt_orphans() == 1
        assert [r.key for r in await live.outbox.pending(10)] == [
            "tasks/t1-1-equity.npy",
            "tasks/t3-1-equity.npy",
        ]
        assert live.outbox.counts["pending"] == 2
        left = await live.outbox.get("tasks/t2-1-equity.npy")
        assert left is not None
        assert left.state == "pending"
        assert await live.outbox.adopt_orphans() == 0


async def test_a_gone_process_is_adopted_by_one_survivor(pg_dsn: str, tmp_path: Path) -> None:
    from coinbt.backend import open_backend

    data = tmp_path / "data"
    async with open_backend(pg_dsn, data) as first, open_backend(pg_dsn, data) as second:
        async with open_backend(pg_dsn, data) as gone:
            for n in range(4):
                await gone.outbox.add(f"t{n}", staged(data, f"t{n}", "equity", "fills"))
        outboxes = [first.outbox, second.outbox]
        assert all(isinstance(o, PgArtifactOutbox) for o in outboxes)
        outboxes = cast(list[PgArtifactOutbox], outboxes)
        counts: list[int] = []

        async def adopt(outbox: PgArtifactOutbox) -> None:
            counts.append(await outbox.adopt_orphans())

        async with anyio.create_task_group() as tg:  # at the same moment
            for outbox in outboxes:
                tg.start_soon(adopt, outbox)
        assert sorted(counts) == [0, 8]
        assert sorted([len(await o.pending(100)) for o in outboxes]) == [0, 8]


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
