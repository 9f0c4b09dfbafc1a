"""The backtest endpoints, through the ASGI app and through a real uvicorn server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from coinbt.api.models import EventPage, FillsOut, PositionsOut, TaskOut, TaskPage, TradesOut
from coinbt.executor.local import LocalProcessExecutor
from tests.api.helpers import http_client
from tests.system import OpenSystem, long, system_factory, tiny, wait_status

TRANSPORTS = [pytest.param("asgi", id="asgi"), pytest.param("uvicorn", id="uvicorn")]


@pytest.fixture
def open_system(tmp_path: Path) -> OpenSystem:
    return system_factory(tmp_path)


def spec_json(**overrides: Any) -> dict[str, Any]:
    return msgspec.to_builtins(tiny(**overrides))  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_cancel_cases(open_system: OpenSystem, kind: str) -> None:
    """DESIGN section 3 over HTTP: queued 200, running 200, completed 400, failed 400,
    unknown 404, cancelled 200 unchanged; every read agrees after a cancel."""
    async with open_system(workers=1) as system, http_client(kind, system) as http:
        # Done and failed first (the single worker runs them in order).
        done = (await http.post("/backtests", json=spec_json(seed=1))).json()
        failed = (
            await http.post("/backtests", json=msgspec.to_builtins(long(timeout_s=0.1)))
        ).json()
        await system.drain()
        for task, status in ((done, "completed"), (failed, "failed")):
            response = await http.delete(f"/backtests/{task['task_id']}")
            assert response.status_code == 400
            error = response.json()["error"]
            assert error["details"]["status"] == status
            assert status in error["message"]

        running = (await http.post("/backtests", json=msgspec.to_builtins(long()))).json()
        queued = (await http.post("/backtests", json=spec_json(seed=2))).json()
        executor = system.executor
        assert isinstance(executor, LocalProcessExecutor)
        await executor.wait_running(running["task_id"])
        await wait_status(system, running["task_id"], "running")
        assert (await http.get(f"/backtests/{queued['task_id']}")).json()["status"] == "queued"

        for task in (queued, running):
            before = await system.store.last_position()
            response = await http.delete(f"/backtests/{task['task_id']}?reason=test")
            assert response.status_code == 200
            body = response.json()
            assert body["status"] == "cancelled"
            assert body["reason"] == "test"
            assert await system.store.last_position() == before + 1
            # The same state on every read.
            assert (await http.get(f"/backtests/{task['task_id']}")).json() == body
            events = (await http.get(f"/backtests/{task['task_id']}/events")).json()["events"]
            assert events[-1]["type"] == "Cancelled"
            listed = (await http.get("/backtests?status=cancelled")).json()["tasks"]
            assert task["task_id"] in [t["task_id"] for t in listed]
            # Cancel again: 200 with the same state, nothing appended.
            again = await http.delete(f"/backtests/{task['task_id']}")
            assert again.status_code == 200
            assert again.json() == body
            assert await system.store.last_position() == before + 1

        response = await http.delete("/backtests/no-such-task")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_submit_and_read_a_completed_backtest(open_system: OpenSystem, kind: str) -> None:
    async with open_system(workers=1) as system, http_client(kind, system) as http:
        response = await http.post("/backtests", json=spec_json(seed=3, bars=2000))
        assert response.status_code == 202
        task = msgspec.convert(response.json(), TaskOut)
        await system.drain()
        task_id = task.task_id
        got = msgspec.convert((await http.get(f"/backtests/{task_id}")).json(), TaskOut)
        assert got.status == "completed"
        assert got.progress == 1.0
        assert got.result is not None
        metrics = got.result["metrics"]
        assert {"total_return", "sharpe", "max_drawdown", "num_trades"} <= metrics.keys()

        positions = msgspec.convert(
            (await http.get(f"/backtests/{task_id}/positions")).json(), PositionsOut
        )
        assert [p.symbol for p in positions.positions] == ["SYNTH"]

        fills = msgspec.convert(
            (await http.get(f"/backtests/{task_id}/fills?limit=3")).json(), FillsOut
        )
        assert fills.total == got.num_fills
        assert len(fills.fills) == min(3, got.num_fills)
        if fills.next_offset is not None:
            more = (await http.get(f"/backtests/{task_id}/fills?offset=3&limit=1000")).json()
            assert len(fills.fills) + len(more["fills"]) == got.num_fills
            assert more["next_offset"] is None
        assert {f.reason for f in fills.fills} <= {"signal"}

        trades = msgspec.convert(
            (await http.get(f"/backtests/{task_id}/trades?limit=1000")).json(), TradesOut
        )
        assert trades.total == len(trades.trades) == metrics["num_trades"]
        assert trades.next_offset is None
        [position] = positions.positions
        closed = [t for t in trades.trades if t.exit_reason != "open"]
        assert sum(t.pnl for t in closed) == pytest.approx(position.realized_pnl)
        assert position.trades == trades.total
        second = (await http.get(f"/backtests/{task_id}/trades?offset=1&limit=1")).json()
        assert second["trades"] == [msgspec.to_builtins(trades.trades[1])]

        equity = (await http.get(f"/backtests/{task_id}/equity?points=100")).json()
        assert equity["total_points"] == 2000
        assert 2 <= len(equity["equity"]) <= 100
        assert len(equity["ts"]) == len(equity["equity"]) == len(equity["drawdown"])
        assert equity["ts"] == sorted(equity["ts"])
        full = (await http.get(f"/backtests/{task_id}/equity?points=0")).json()
        assert len(full["equity"]) == 2000
        assert min(equity["equity"]) == min(full["equity"])  # extremes survive downsampling
        assert max(equity["equity"]) == max(full["equity"])
        assert full["equity"][-1] == got.result["final_equity"]

        page = msgspec.convert(
            (await http.get(f"/backtests/{task_id}/events?limit=2")).json(), EventPage
        )
        assert [e.type for e in page.events] == ["Queued", "Started"]
        assert page.next_after == page.events[-1].position
        rest = await http.get(f"/backtests/{task_id}/events?after={page.next_after}&limit=1000")
        assert rest.json()["events"][-1]["type"] == "Completed"


async def test_list_pages_newest_first_with_a_status_filter(open_system: OpenSystem) -> None:
    async with open_system(workers=0) as system, http_client("asgi", system) as http:
        ids = [
            (await http.post("/backtests", json=spec_json(seed=n))).json()["task_id"]
            for n in range(5)
        ]
        await http.delete(f"/backtests/{ids[1]}")
        seen: list[str] = []
        cursor = None
        while True:
            url = "/backtests?limit=2" + (f"&cursor={cursor}" if cursor else "")
            page = msgspec.convert((await http.get(url)).json(), TaskPage)
            seen += [t.task_id for t in page.tasks]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == ids[::-1]
        queued = (await http.get("/backtests?status=queued")).json()["tasks"]
        assert [t["task_id"] for t in queued] == [i for i in ids[::-1] if i != ids[1]]


async def test_idempotency_key_header(open_system: OpenSystem) -> None:
    async with open_system(workers=0) as system, http_client("asgi", system) as http:
        headers = {"Idempotency-Key": "nightly-1"}
        first = await http.post("/backtests", json=spec_json(), headers=headers)
        second = await http.post("/backtests", json=spec_json(), headers=headers)
        assert first.status_code == second.status_code == 202
        assert first.json()["task_id"] == second.json()["task_id"]
        assert await system.store.last_position() == 1
        other = await http.post("/backtests", json=spec_json(seed=2), headers=headers)
        assert other.status_code == 422
        error = other.json()["error"]
        assert error["code"] == "idempotency_key_reused"
        assert error["details"] == {"field": "Idempotency-Key", "task_id": first.json()["task_id"]}
        assert await system.store.last_position() == 1


async def test_full_queue_is_429_with_retry_after(open_system: OpenSystem) -> None:
    async with (
        open_system(workers=0, queue_capacity=1) as system,
        http_client("asgi", system) as http,
    ):
        assert (await http.post("/backtests", json=spec_json(seed=1))).status_code == 202
        response = await http.post("/backtests", json=spec_json(seed=2))
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) >= 1
        assert response.json()["error"]["code"] == "queue_full"
        assert await system.store.last_position() == 1
