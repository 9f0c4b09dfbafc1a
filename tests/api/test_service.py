"""Everything around the backtests: auth, catalog, datasets, health, metrics, openapi, SSE,
and `coinbt serve` as a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import httpx
import msgspec
import pytest

from coinbt import engine
from coinbt.api.models import DatasetOut, DatasetsOut, HealthOut, StrategiesOut
from coinbt.backends.sqlite import verify_file
from coinbt.demo import DEMO_SPECS
from tests.api.helpers import http_client, server_url
from tests.system import OpenSystem, system_factory, tiny

ROOT = Path(__file__).parents[2]
CSV = {"Content-Type": "text/csv"}


@pytest.fixture
def open_system(tmp_path: Path) -> OpenSystem:
    return system_factory(tmp_path)


def csv_of(bars: int, seed: int = 5) -> bytes:
    data = engine.synthetic(bars, seed=seed, interval="1h")
    lines = ["timestamp,open,high,low,close,volume"]
    columns = [data.ts, data.open, data.high, data.low, data.close, data.volume]
    for row in zip(*(c.tolist() for c in columns), strict=True):
        lines.append(",".join(map(repr, row)))
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("kind", ["asgi", "uvicorn"])
async def test_a_token_guards_everything_but_health(open_system: OpenSystem, kind: str) -> None:
    async with open_system(workers=0) as system, http_client(kind, system, "s3cret") as http:
        assert (await http.get("/health")).status_code == 200
        for path in ("/backtests", "/events", "/strategies", "/metrics", "/openapi.json"):
            missing = await http.get(path)
            assert missing.status_code == 401, path
            assert missing.headers["www-authenticate"].startswith("Bearer")
            assert missing.json()["error"]["code"] == "unauthorized"
            wrong = await http.get(path, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
        refused = await http.post("/backtests", json=msgspec.to_builtins(tiny()))
        assert refused.status_code == 401
        assert await system.store.last_position() == 0
        auth = {"Authorization": "Bearer s3cret"}
        assert (await http.get("/backtests", headers=auth)).status_code == 200
        accepted = await http.post("/backtests", json=msgspec.to_builtins(tiny()), headers=auth)
        assert accepted.status_code == 202
        document = (await http.get("/openapi.json", headers=auth)).json()
        assert document["security"] == [{"bearer": []}]


async def test_strategies_and_dataset_upload(open_system: OpenSystem) -> None:
    async with open_system(workers=1) as system, http_client("asgi", system) as http:
        strategies = msgspec.convert((await http.get("/strategies")).json(), StrategiesOut)
        names = {s.name for s in strategies.strategies}
        assert {"sma_cross", "ema_cross", "rsi_reversion", "buy_and_hold"} <= names
        sma = next(s for s in strategies.strategies if s.name == "sma_cross")
        assert sma.params["properties"]["fast"]["type"] == "integer"

        created = await http.post("/datasets?name=ETHUSDT-1h", content=csv_of(500), headers=CSV)
        assert created.status_code == 201, created.text
        info = msgspec.convert(created.json(), DatasetOut)
        assert info.rows == 500
        assert info.symbol == "ETHUSDT"
        listed = msgspec.convert((await http.get("/datasets")).json(), DatasetsOut)
        assert [d.name for d in listed.datasets] == ["ETHUSDT-1h"]

        again = await http.post("/datasets?name=ETHUSDT-1h", content=csv_of(500), headers=CSV)
        assert again.status_code == 409
        bad = csv_of(50).replace(b"\n", b"\nnot-a-time,1,1,1,1,1\n", 1)
        rejected = await http.post("/datasets?name=BAD-1h", content=bad, headers=CSV)
        assert rejected.status_code == 422
        assert rejected.json()["error"]["details"]["row"] == 2

        spec = {
            "strategy": "sma_cross",
            "params": {"fast": 5, "slow": 20},
            "data": {"dataset": "ETHUSDT-1h"},
        }
        task = (await http.post("/backtests", json=spec)).json()
        await system.drain()
        done = (await http.get(f"/backtests/{task['task_id']}")).json()
        assert done["status"] == "completed"
        assert done["result"]["symbol"] == "ETHUSDT"
        empty = {**spec, "data": {"dataset": "ETHUSDT-1h", "start": "2030-01-01T00:00:00Z"}}
        response = await http.post("/backtests", json=empty)
        assert response.status_code == 422
        assert response.json()["error"]["details"][0]["field"] == "data.start"


async def test_health_metrics_and_openapi(open_system: OpenSystem) -> None:
    async with open_system(workers=1) as system, http_client("asgi", system) as http:
        await http.post("/backtests", json=msgspec.to_builtins(tiny()))
        await system.drain()
        health = msgspec.convert((await http.get("/health")).json(), HealthOut)
        assert health.last_position == health.projected_position > 0
        metrics = (await http.get("/metrics")).text
        assert 'coinbt_tasks{status="completed"} 1' in metrics
        assert "coinbt_queue_depth 0" in metrics
        assert "coinbt_append_latency_seconds_count" in metrics
        document = (await http.get("/openapi.json")).json()
        assert document["openapi"].startswith("3.")
        assert {"/backtests", "/backtests/{task_id}", "/events", "/datasets"} <= set(
            document["paths"]
        )
        assert "TaskSpec" in document["components"]["schemas"]
        page = await http.get("/")
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]


async def test_metrics_on_postgresql_have_the_append_series(tmp_path: Path, pg_dsn: str) -> None:
    async with (
        system_factory(tmp_path, db=pg_dsn)(workers=1) as system,
        http_client("asgi", system) as http,
    ):
        await http.post("/backtests", json=msgspec.to_builtins(tiny()))
        await system.drain()
        metrics = (await http.get("/metrics")).text
    values = dict(line.rsplit(" ", 1) for line in metrics.splitlines() if not line.startswith("#"))
    assert values['coinbt_tasks{status="completed"}'] == "1"
    appends = int(values["coinbt_appends_total"])
    transactions = int(values["coinbt_append_transactions_total"])
    assert appends >= 3  # Queued, Started, Completed (with its fills): one append each
    assert 1 <= transactions <= appends
    assert int(values["coinbt_append_latency_seconds_count"]) == transactions
    assert int(values['coinbt_append_latency_seconds_bucket{le="+Inf"}']) == transactions
    assert float(values["coinbt_append_latency_seconds_sum"]) > 0


async def test_sse_delivers_every_later_event_once_in_order(open_system: OpenSystem) -> None:
    async with (
        open_system(workers=1) as system,
        server_url(system) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        first = await http.post("/backtests", json=msgspec.to_builtins(tiny(seed=1)))
        await system.drain()
        after = await system.store.last_position()
        positions: list[int] = []
        expected_tasks: list[str] = [first.json()["task_id"]]
        with anyio.fail_after(30):
            async with http.stream(
                "GET", f"/events?after={after - 2}", headers={"Accept": "text/event-stream"}
            ) as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                submitted = False
                async for line in stream.aiter_lines():
                    if line.startswith("data:") and '"position"' in line:
                        event = json.loads(line[5:])
                        positions.append(event["position"])
                        if not submitted:  # now add more while we listen
                            submitted = True
                            for seed in (2, 3):
                                task = await http.post(
                                    "/backtests", json=msgspec.to_builtins(tiny(seed=seed))
                                )
                                expected_tasks.append(task.json()["task_id"])
                        if (
                            event["type"] == "Completed"
                            and event["stream_id"] == (expected_tasks[-1])
                        ):
                            break
        await system.drain()
        last = await system.store.last_position()
    assert positions == list(range(after - 1, last + 1))


def _serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "coinbt",
            "serve",
            "--db",
            str(tmp_path / "s.db"),
            "--port",
            "0",
            "--workers",
            "1",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, **(env or {})},
    )


def test_serve_refuses_a_public_address_without_a_token(tmp_path: Path) -> None:
    child = _serve(tmp_path, "--host", "0.0.0.0", env={"COINBT_API_TOKEN": ""})
    _, err = child.communicate(timeout=60)
    assert child.returncode == 2
    assert "without an API token" in err
    assert "Traceback" not in err


def test_serve_refuses_a_public_address_with_a_weak_token(tmp_path: Path) -> None:
    child = _serve(tmp_path, "--host", "0.0.0.0", env={"COINBT_API_TOKEN": "a"})
    _, err = child.communicate(timeout=60)
    assert child.returncode == 2
    assert err.startswith("coinbt: error:")
    assert "at least 16 characters" in err
    assert "Traceback" not in err


def test_serve_starts_prints_its_url_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    child = _serve(tmp_path, "--demo")
    assert child.stdout is not None
    try:
        line = child.stdout.readline()
        assert "coinbt is serving on http://127.0.0.1:" in line
        url = line.split()[4]
        with httpx.Client(base_url=url, timeout=30) as http:
            assert http.get("/health").json()["status"] == "ok"
            tasks = http.get("/backtests").json()["tasks"]
            assert len(tasks) == len(DEMO_SPECS) + 1  # the demo backtests and its sweep
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, err
    assert "Traceback" not in err
    assert verify_file(tmp_path / "s.db").ok
