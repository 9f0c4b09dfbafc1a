"""Datasets are versioned: an update is a new version, tasks record theirs, retiring hides a name
from new tasks but not from the tasks that used it. Run against every backend."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pytest

from coinbt import engine
from coinbt.clock import ManualClock
from coinbt.errors import DataError, DatasetExistsError, DatasetNotFoundError, SpecError
from coinbt.events import DataSpec, TaskSpec
from tests.backends import KINDS, OpenBackend, backend_factory
from tests.system import system_factory

HOUR = 3_600_000
T0 = 1_704_067_200_000


def csv_rows(start: int, count: int, *, skip: range = range(0)) -> bytes:
    bars = engine.synthetic(count, seed=start % 97, interval="1h")
    lines = ["Date,Open,High,Low,Close,Volume"]
    for i in range(count):
        if i in skip:
            continue
        o, h, lo, c, v = (
            float(x[i]) for x in (bars.open, bars.high, bars.low, bars.close, bars.volume)
        )
        lines.append(f"{start + i * HOUR},{o!r},{h!r},{lo!r},{c!r},{v!r}")
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(params=KINDS)
def open_backend(request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock) -> OpenBackend:
    return backend_factory(request, tmp_path, clock)[0]


async def test_an_update_is_a_new_version_and_the_old_one_stays(
    open_backend: OpenBackend,
) -> None:
    async with open_backend() as backend:
        catalog = backend.catalog
        first = await catalog.import_bytes("btc-1h", csv_rows(T0, 100), source="a.csv")
        assert (first.version, first.rows, first.path) == (1, 100, "datasets/btc-1h.npz")
        assert [p.file for p in first.provenance] == ["a.csv"]
        with pytest.raises(DatasetExistsError):
            await catalog.import_bytes("btc-1h", csv_rows(T0, 120))
        # Overlapping rows are ignored: only bars after version 1's last one are appended.
        second = await catalog.import_bytes(
            "btc-1h", csv_rows(T0 + 50 * HOUR, 80), source="b.csv", update=True
        )
        assert (second.version, second.rows, second.path) == (2, 130, "datasets/btc-1h@v2.npz")
        assert [p.file for p in second.provenance] == ["a.csv", "b.csv"]
        assert second.start_ms == first.start_ms
        assert second.end_ms == T0 + 129 * HOUR
        same = await catalog.import_bytes("btc-1h", csv_rows(T0, 10), update=True)
        assert same == second  # nothing newer: no new version
        assert await catalog.get("btc-1h") == second
        assert await catalog.get("btc-1h", 1) == first
        v1 = engine.load_bars(catalog.path_of(first))
        v2 = engine.load_bars(catalog.path_of(second))
        assert np.array_equal(v2.ts[:100], v1.ts)
        assert [d.version for d in await catalog.all()] == [2]
        with pytest.raises(DatasetNotFoundError, match="has no version 3"):
            await catalog.get("btc-1h", 3)
        with pytest.raises(DatasetNotFoundError):
            await catalog.import_bytes("nope", csv_rows(T0, 10), update=True)


async def test_gaps_are_reported_and_strict_refuses_them(open_backend: OpenBackend) -> None:
    async with open_backend() as backend:
        holes = csv_rows(T0, 100, skip=range(40, 43))
        with pytest.raises(DataError, match=r"refused \(--strict\): 1 gap\(s\), 3 missing"):
            await backend.catalog.import_bytes("gappy", holes, strict=True)
        assert await backend.catalog.all() == []
        info = await backend.catalog.import_bytes("gappy", holes)
        assert (info.gaps.count, info.gaps.missing, info.gaps.largest_ms) == (1, 3, 4 * HOUR)
        assert info.gaps.at_ms == T0 + 39 * HOUR


async def test_retired_names_take_no_new_tasks_or_versions(open_backend: OpenBackend) -> None:
    async with open_backend() as backend:
        catalog = backend.catalog
        info = await catalog.import_bytes("old", csv_rows(T0, 50))
        retired = await catalog.retire("old")
        assert retired.retired_at is not None
        assert await catalog.retire("old") == retired  # twice changes nothing
        assert await catalog.all() == []
        assert [d.name for d in (await catalog.listing(include_retired=True)).datasets] == ["old"]
        with pytest.raises(DatasetNotFoundError, match="retired"):
            await catalog.get("old")
        kept = await catalog.get("old", 1, include_retired=True)
        assert kept.sha256 == info.sha256
        with pytest.raises(SpecError, match="retired"):
            await catalog.import_bytes("old", csv_rows(T0 + 50 * HOUR, 5), update=True)
        with pytest.raises(DatasetExistsError):
            await catalog.import_bytes("old", csv_rows(T0, 5))  # a name is never reused


async def test_tasks_record_the_version_they_used(tmp_path: Path) -> None:
    open_system = system_factory(tmp_path)
    spec = TaskSpec(strategy="buy_and_hold", data=DataSpec(dataset="eth-1h"))
    async with open_system(workers=1) as system:
        await system.catalog.import_bytes("eth-1h", csv_rows(T0, 100))
        first = await system.submit(spec)
        await system.drain()
        await system.catalog.import_bytes("eth-1h", csv_rows(T0 + 100 * HOUR, 50), update=True)
        second = await system.submit(spec)
        pinned = await system.submit(
            msgspec.structs.replace(spec, data=DataSpec(dataset="eth-1h", version=1))
        )
        await system.drain()
        views = [await system.task(t.task_id) for t in (first, second, pinned)]
        assert [v.spec.data.version for v in views] == [1, 2, 1]
        assert [v.status for v in views] == ["completed"] * 3
        # Retired: new tasks are refused; a recorded task still finds its data.
        await system.catalog.retire("eth-1h")
        with pytest.raises(SpecError) as refused:
            await system.submit(spec)
        assert refused.value.errors[0].field == "data.dataset"
        from coinbt.specs import resolve

        plans = [
            await resolve(v.spec, system.catalog, max_bars=10**7, recorded=True) for v in views
        ]
        assert [p.bars for p in plans] == [100, 150, 100]
        legacy = msgspec.structs.replace(spec, data=DataSpec(dataset="eth-1h"))
        plan = await resolve(legacy, system.catalog, max_bars=10**7, recorded=True)
        assert plan.dataset_version == 1  # recorded before versions: version 1
