"""The PostgreSQL outbox shared by several processes: each uploads what it staged, and the pending
uploads of a process that is gone are adopted where their files are."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import anyio

from coinbt.backend import open_backend
from coinbt.backends.postgres.outbox import PgArtifactOutbox
from coinbt.clock import ManualClock
from tests.backends.test_outbox import staged


async def test_each_process_uploads_its_own_and_adopts_a_gone_ones(
    pg_dsn: str, tmp_path: Path, clock: ManualClock
) -> None:
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
