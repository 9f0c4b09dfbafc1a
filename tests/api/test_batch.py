"""``POST /backtests`` with a JSON array: every spec validated, all queued in one append."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.api.helpers import http_client
from tests.system import OpenSystem, system_factory, tiny


@pytest.fixture
def open_system(tmp_path: Path) -> OpenSystem:
    return system_factory(tmp_path)


def spec_json(seed: int = 1, **overrides: Any) -> dict[str, Any]:
    return msgspec.to_builtins(tiny(seed=seed, **overrides))  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", ["asgi", "uvicorn"])
async def test_a_batch_is_queued_in_one_append_and_runs(open_system: OpenSystem, kind: str) -> None:
    async with open_system(workers=1) as system, http_client(kind, system) as http:
        batch = [spec_json(seed=n) for n in range(1, 26)]
        response = await http.post("/backtests", json=batch)
        assert response.status_code == 202, response.text
        tasks = response.json()["tasks"]
        assert len(tasks) == 25
        assert len({t["task_id"] for t in tasks}) == 25
        assert [t["spec"]["data"]["synthetic"]["seed"] for t in tasks] == list(range(1, 26))
        # One transaction: the 25 Queued events sit at consecutive positions, in batch order.
        log = await system.store.read_all()
        queued = [e for e in log if e.type == "Queued"]
        assert [e.stream_id for e in queued] == [t["task_id"] for t in tasks]
        assert [e.position for e in queued] == list(range(1, 26))
        # The test clock ticks on every reading and a transaction reads it once: one time.
        assert len({e.recorded_at for e in queued}) == 1
        await system.drain()
        for task in tasks:
            done = (await http.get(f"/backtests/{task['task_id']}")).json()
            assert done["status"] == "completed"


async def test_a_task_of_a_batch_can_be_cancelled(open_system: OpenSystem) -> None:
    async with open_system(workers=0) as system, http_client("asgi", system) as http:
        tasks = (await http.post("/backtests", json=[spec_json(1), spec_json(2)])).json()["tasks"]
        assert [t["status"] for t in tasks] == ["queued", "queued"]
        response = await http.delete(f"/backtests/{tasks[1]['task_id']}")
        assert response.status_code == 200
        assert response.json()["status"] == "cancelled"
        assert (await http.get(f"/backtests/{tasks[0]['task_id']}")).json()["status"] == "queued"


BAD_BATCHES = [
    pytest.param(
        [spec_json(1), spec_json(2), spec_json(3), spec_json(4, params={"fast": "x", "slow": 20})],
        "[3].params.fast",
        id="wrong-type-in-the-fourth",
    ),
    pytest.param(
        [spec_json(1), spec_json(2, params={"fast": 30, "slow": 20})],
        "[1].params.fast",
        id="fast-not-below-slow",
    ),
    pytest.param(
        [spec_json(1), {**spec_json(2), "strategy": "nope"}], "[1].strategy", id="unknown"
    ),
    pytest.param([spec_json(1), {**spec_json(2), "colour": 1}], "[1].colour", id="unknown-field"),
    pytest.param([spec_json(1), 7], "[1]", id="not-an-object"),
    pytest.param([], "", id="empty"),
    pytest.param([spec_json(1)] * 1001, "", id="too-many"),
]


@pytest.mark.parametrize(("batch", "field"), BAD_BATCHES)
async def test_a_bad_element_rejects_the_whole_batch(
    open_system: OpenSystem, batch: list[Any], field: str
) -> None:
    async with open_system(workers=0) as system, http_client("asgi", system) as http:
        response = await http.post("/backtests", json=batch)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_spec"
        assert field in [d["field"] for d in error["details"]], error
        assert await system.store.last_position() == 0
        assert (await http.get("/backtests")).json()["tasks"] == []


async def test_every_bad_element_is_named(open_system: OpenSystem) -> None:
    async with open_system(workers=0) as system, http_client("asgi", system) as http:
        batch = [spec_json(1, params={"fast": 30, "slow": 20}), spec_json(2), spec_json(3, cash=-1)]
        batch[2]["cash"] = 5
        batch[2]["params"] = {"fast": 1, "slow": 2, "extra": 3}
        response = await http.post("/backtests", json=batch)
        assert response.status_code == 422
        fields = [d["field"] for d in response.json()["error"]["details"]]
        assert "[0].params.fast" in fields
        assert any(f.startswith("[2].params") for f in fields)
        assert not any(f.startswith("[1]") for f in fields)
        assert await system.store.last_position() == 0


async def test_malformed_batches_are_400(open_system: OpenSystem) -> None:
    async with open_system(workers=0) as system, http_client("asgi", system) as http:
        json_type = {"Content-Type": "application/json"}
        response = await http.post("/backtests", content=b"[{" + b'"strategy": ', headers=json_type)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "malformed_json"
        keyed = await http.post(
            "/backtests",
            content=json.dumps([spec_json(1)]),
            headers={"Idempotency-Key": "k", **json_type},
        )
        assert keyed.status_code == 422
        assert keyed.json()["error"]["details"][0]["field"] == "Idempotency-Key"
        assert await system.store.last_position() == 0


async def test_a_batch_over_the_queue_capacity_is_429_and_appends_nothing(
    open_system: OpenSystem,
) -> None:
    async with (
        open_system(workers=0, queue_capacity=3) as system,
        http_client("asgi", system) as http,
    ):
        response = await http.post("/backtests", json=[spec_json(n) for n in range(1, 5)])
        assert response.status_code == 429, response.text
        assert await system.store.last_position() == 0
        assert (await http.post("/backtests", json=[spec_json(1)] * 3)).status_code == 202
