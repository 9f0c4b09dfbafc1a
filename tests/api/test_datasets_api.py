"""``/datasets`` against bad input and damaged records: a clear 4xx, and listings that never 500."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from coinbt.api.models import DatasetsOut
from tests.api.helpers import http_client
from tests.system import OpenSystem, system_factory

CSV = {"Content-Type": "text/csv"}
GOOD = (
    b"timestamp,open,high,low,close,volume\n"
    b"1704067200000,1,2,0.5,1.5,10\n1704067260000,1,2,0.5,1.5,10\n"
)


@pytest.fixture
def open_system(tmp_path: Path) -> OpenSystem:
    return system_factory(tmp_path)


@pytest.mark.parametrize(
    "row",
    [
        pytest.param(b"-99999999999999,1,2,0.5,1.5,10", id="year-minus-1199"),
        pytest.param(b"-62135596800001,1,2,0.5,1.5,10", id="before-year-1"),
        pytest.param(b"7258118400000,1,2,0.5,1.5,10", id="year-2200"),
        pytest.param(b"1800-01-01T00:00:00Z,1,2,0.5,1.5,10", id="iso-1800"),
    ],
)
async def test_an_out_of_range_timestamp_is_refused_and_the_list_still_works(
    open_system: OpenSystem, row: bytes
) -> None:
    async with open_system(workers=0) as system, http_client("asgi", system) as http:
        body = b"timestamp,open,high,low,close,volume\n" + row + b"\n"
        refused = await http.post("/datasets?name=zz6", content=body, headers=CSV)
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["details"]["row"] == 2
        assert error["details"]["column"] == "timestamp"
        assert "1900-01-01 to 2200-01-01" in error["message"]
        listed = await http.get("/datasets")
        assert listed.status_code == 200
        assert listed.json()["datasets"] == []


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("abc%0A", id="trailing-newline"),
        pytest.param("abc%0D", id="trailing-cr"),
        pytest.param("%0Aabc", id="leading-newline"),
        pytest.param("a" * 65, id="too-long"),
    ],
)
async def test_a_name_with_a_newline_is_refused(open_system: OpenSystem, name: str) -> None:
    async with open_system(workers=0) as system, http_client("asgi", system) as http:
        refused = await http.post(f"/datasets?name={name}", content=GOOD, headers=CSV)
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["details"][0]["field"] == "name"
        assert (await http.get("/datasets")).json()["datasets"] == []


async def test_one_damaged_record_is_skipped_and_reported(
    open_system: OpenSystem, tmp_path: Path
) -> None:
    async with open_system(workers=0) as system, http_client("asgi", system) as http:
        assert (
            await http.post("/datasets?name=good", content=GOOD, headers=CSV)
        ).status_code == 201
        db = system.config.db
        with sqlite3.connect(db) as conn:  # a record an older version let through
            row = conn.execute("SELECT * FROM datasets WHERE name = 'good'").fetchone()
            columns = [d[0] for d in conn.execute("SELECT * FROM datasets").description]
            record = dict(zip(columns, row, strict=True))
            record.update(name="zz6", start_ms=-99_999_999_999_999)
            marks = ", ".join("?" * len(record))
            conn.execute(
                f"INSERT INTO datasets ({', '.join(record)}) VALUES ({marks})",
                tuple(record.values()),
            )
        listed = await http.get("/datasets")
        assert listed.status_code == 200, listed.text
        out = listed.json()
        assert [d["name"] for d in out["datasets"]] == ["good"]
        assert [s["name"] for s in out["skipped"]] == ["zz6"]
        assert "outside 1900-01-01 to 2200-01-01" in out["skipped"][0]["reason"]
        assert {"datasets", "skipped"} <= set(DatasetsOut.__struct_fields__)
        spec = {"strategy": "buy_and_hold", "data": {"dataset": "zz6"}}
        refused = await http.post("/backtests", json=spec)
        assert refused.status_code == 422
        assert refused.json()["error"]["details"][0]["field"] == "data.dataset"
