"""The dataset catalogue contract, run against every backend (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import anyio
import pytest

from coinbt import engine
from coinbt.backend import Backend
from coinbt.clock import ManualClock
from coinbt.errors import DataError, DatasetExistsError, DatasetNotFoundError, SpecError
from tests.backends import KINDS, OpenBackend, backend_factory


@pytest.fixture(params=KINDS)
def open_backend(request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock) -> OpenBackend:
    return backend_factory(request, tmp_path, clock)[0]


def csv_of(bars: int, seed: int = 5) -> bytes:
    data = engine.synthetic(bars, seed=seed, interval="1h")
    lines = ["timestamp,open,high,low,close,volume"]
    columns = [data.ts, data.open, data.high, data.low, data.close, data.volume]
    for row in zip(*(c.tolist() for c in columns), strict=True):
        lines.append(",".join(map(repr, row)))
    return ("\n".join(lines) + "\n").encode()


async def test_import_then_read_back(open_backend: OpenBackend, tmp_path: Path) -> None:
    async with open_backend() as backend:
        catalog = backend.catalog
        assert await catalog.all() == []
        info = await catalog.import_bytes("ETHUSDT-1h", csv_of(300), source="eth.csv")
        assert (info.name, info.symbol, info.rows, info.source) == (
            "ETHUSDT-1h",
            "ETHUSDT",
            300,
            "eth.csv",
        )
        assert info.interval_ms == 3_600_000
        assert catalog.path_of(info) == tmp_path / "data" / "datasets" / "ETHUSDT-1h.npz"
        bars = engine.load_bars(catalog.path_of(info))
        assert len(bars) == 300
        other = await catalog.import_bytes("btc", csv_of(50, seed=6), symbol="XBT")
        assert other.symbol == "XBT"
        assert [d.name for d in await catalog.all()] == ["ETHUSDT-1h", "btc"]
        assert await catalog.get("btc") == other
        with pytest.raises(DatasetNotFoundError):
            await catalog.get("nope")
        with pytest.raises(DatasetExistsError):
            await catalog.import_bytes("btc", csv_of(50))
    async with open_backend() as backend:  # and after a restart
        assert await backend.catalog.get("ETHUSDT-1h") == info


@pytest.mark.parametrize(
    ("name", "data", "symbol", "error"),
    [
        pytest.param("../evil", b"", None, SpecError, id="bad-name"),
        pytest.param("ok", b"", "bad symbol!", SpecError, id="bad-symbol"),
        pytest.param("ok", b"timestamp,open\n1,2\n", None, DataError, id="bad-csv"),
    ],
)
async def test_bad_imports_record_nothing(
    open_backend: OpenBackend,
    tmp_path: Path,
    name: str,
    data: bytes,
    symbol: str | None,
    error: type[Exception],
) -> None:
    async with open_backend() as backend:
        with pytest.raises(error):
            await backend.catalog.import_bytes(name, data, symbol=symbol)
        assert await backend.catalog.all() == []
    leftovers = await anyio.to_thread.run_sync(
        lambda: sorted(p.name for p in (tmp_path / "data").rglob("*") if p.is_file())
    )
    assert leftovers == []


async def test_two_processes_importing_one_name(tmp_path: Path, pg_dsn: str) -> None:
    from coinbt.backend import open_backend

    data = tmp_path / "shared"
    outcomes: list[str] = []
    async with open_backend(pg_dsn, data) as a, open_backend(pg_dsn, data) as b:

        async def one(backend: Backend, seed: int) -> None:
            try:
                await backend.catalog.import_bytes("same", csv_of(200, seed=seed))
            except DatasetExistsError:
                outcomes.append("exists")
            else:
                outcomes.append("imported")

        async with anyio.create_task_group() as tg:
            tg.start_soon(one, a, 1)
            tg.start_soon(one, b, 2)
        assert sorted(outcomes) == ["exists", "imported"]
        info = await a.catalog.get("same")
        assert info == await b.catalog.get("same")
        digest = await anyio.to_thread.run_sync(
            lambda: hashlib.sha256(a.catalog.path_of(info).read_bytes()).hexdigest()
        )
        assert digest == info.sha256  # the file is the recorded one
