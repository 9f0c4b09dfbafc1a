"""``Outbox.add_many``: the artifacts of a worker's batch of runs recorded in one transaction,
on every backend (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from coinbt.clock import ManualClock
from coinbt.events import ArtifactRef
from tests.backends import KINDS, OpenBackend, backend_factory


@pytest.fixture(params=KINDS)
def open_backend(request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock) -> OpenBackend:
    return backend_factory(request, tmp_path, clock)[0]


def staged(data_dir: Path, task_id: str, name: str) -> tuple[str, ArtifactRef, Path]:
    path = data_dir / "staging" / f"{task_id}-1-{name}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(task_id.encode())
    ref = ArtifactRef(key=f"tasks/{task_id}-1-{name}.npz", sha256=f"{len(task_id):064x}", size=2)
    return name, ref, path


async def test_add_many_records_each_run_under_its_own_task(
    open_backend: OpenBackend, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    async with open_backend() as backend:
        outbox = backend.outbox
        await outbox.add("t1", [staged(data, "t1", "result")])
        await outbox.add_many(
            [
                ("t1", [staged(data, "t1", "result")]),  # recorded already: left as it is
                ("t2", [staged(data, "t2", "result"), staged(data, "t2", "extra")]),
                ("t30", [staged(data, "t30", "result")]),
            ]
        )
        assert outbox.counts["pending"] == 4
        rows = {r.key: r for r in await outbox.pending(10)}
        assert sorted(rows) == [
            "tasks/t1-1-result.npz",
            "tasks/t2-1-extra.npz",
            "tasks/t2-1-result.npz",
            "tasks/t30-1-result.npz",
        ]
        assert [(r.name, r.task_id) for r in await outbox.for_task("t2")] == [
            ("extra", "t2"),
            ("result", "t2"),
        ]
        third = rows["tasks/t30-1-result.npz"]
        assert (third.task_id, third.sha256, third.size) == ("t30", f"{3:064x}", 2)
        assert third.staged == "staging/t30-1-result.npz"
        await outbox.add_many([])  # nothing to record: nothing changes
        assert outbox.counts["pending"] == 4


async def test_batches_larger_than_one_statement_count_each_row_once(
    open_backend: OpenBackend, tmp_path: Path
) -> None:
    """600 runs (SQLite writes them 256 rows a statement), one recorded twice; then all of them
    and a key twice marked stored in one call: each row counted once, in its state."""
    data = tmp_path / "data"
    runs = [(f"t{i}", [staged(data, f"t{i}", "result")]) for i in range(600)]
    async with open_backend() as backend:
        outbox = backend.outbox
        await outbox.add_many(runs[:1])
        await outbox.add_many(runs)
        assert outbox.counts == {"pending": 600, "stored": 0, "failed": 0}
        keys = [ref.key for _, items in runs for _, ref, _ in items]
        await outbox.mark_stored_many([*keys[:599], keys[0]], "local")
        assert outbox.counts == {"pending": 1, "stored": 599, "failed": 0}
        assert [r.key for r in await outbox.pending(10)] == [keys[599]]
        assert await outbox.count_stored_at("local") == 599
