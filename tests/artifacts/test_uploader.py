"""The artifact outbox and the uploader, in the running system against a real S3 endpoint:
a completed task never waits for, nor fails because of, its artifacts' upload."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

import anyio
import numpy as np
import pytest

from coinbt import engine
from coinbt.artifacts import open_artifact_store
from coinbt.artifacts.outbox import ArtifactRow
from coinbt.errors import ArtifactLostError
from coinbt.events import ArtifactRef
from coinbt.runtime import System
from tests.api.helpers import asgi_client
from tests.artifacts.s3server import FaultProxy, MotoServer, admin_client, s3_options
from tests.system import system_factory, tiny, wait_status

BACKOFF = (0.05, 0.2)


async def wait_artifacts(
    system: System, task_id: str, predicate: Callable[[list[ArtifactRow]], bool]
) -> list[ArtifactRow]:
    """Wait (on the uploader's progress, never sleeping) until the rows satisfy ``predicate``."""
    with anyio.fail_after(20):
        while True:
            hint = system.uploader.changed_hint()
            rows = await system.outbox.for_task(task_id)
            if rows and predicate(rows):
                return rows
            await hint.wait()


def expected_equity(seed: int = 1) -> np.ndarray:
    spec = engine.BacktestSpec("sma_cross", {"fast": 5, "slow": 20})
    return engine.run(spec, engine.synthetic(300, seed=seed)).equity  # type: ignore[no-any-return]


async def test_artifacts_go_to_s3_and_are_read_back_from_there(
    moto: MotoServer, bucket: str, tmp_path: Path
) -> None:
    open_system = system_factory(tmp_path)
    async with open_system(artifacts_url=f"s3://{bucket}/runs", s3=s3_options(moto.url)) as system:
        view = await system.submit(tiny())
        await system.drain()
        rows = await system.artifact_states(view.task_id)
        assert [(r.name, r.state, r.location) for r in rows] == [
            ("result", "stored", f"s3://{bucket}/runs"),  # equity, fills and trades in one .npz
        ]
        _, equity = await system.equity(view.task_id)
        trades = await system.trades(view.task_id)  # read back from S3 too
        assert trades.total == (await system.positions(view.task_id))[0].trades
        np.testing.assert_array_equal(equity, expected_equity())
    listed = admin_client(moto.url).list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(o["Key"] for o in listed) == sorted(f"runs/{r.key}" for r in rows)
    assert list((tmp_path / "staging").iterdir()) == []  # nothing left behind


async def test_a_task_completes_while_the_store_is_down_and_its_artifacts_land_later(
    proxy: FaultProxy, bucket: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    proxy.down()
    open_system = system_factory(tmp_path)
    options = s3_options(proxy.url, max_attempts=1)
    async with (
        open_artifact_store(f"s3://{bucket}/runs", s3=options) as store,
        open_system(artifacts=store, upload_backoff_s=BACKOFF) as system,
        asgi_client(system) as http,
    ):
        task_id = (await system.submit(tiny())).task_id
        assert await wait_status(system, task_id, "completed", "failed") == "completed"
        await wait_artifacts(system, task_id, lambda rows: all(r.attempts >= 1 for r in rows))

        # The task is completed; its artifacts' state is visible, and reading one says why not.
        assert (await http.get(f"/backtests/{task_id}")).json()["status"] == "completed"
        body = (await http.get(f"/backtests/{task_id}/artifacts")).json()
        assert {a["state"] for a in body["artifacts"]} == {"pending"}
        assert all("cannot reach" in a["last_error"] for a in body["artifacts"])
        caplog.set_level(logging.INFO, "coinbt.api")
        caplog.clear()
        response = await http.get(f"/backtests/{task_id}/equity")
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "artifact_pending"
        # An expected answer, not a server fault: logged, but not at ERROR.
        api_records = [r for r in caplog.records if r.name == "coinbt.api"]
        assert [r.levelname for r in api_records] == ["INFO"]
        assert "upload is pending" in response.json()["error"]["message"]
        assert int(response.headers["Retry-After"]) >= 1
        for path in ("fills", "trades"):  # the other results say the same
            pending = await http.get(f"/backtests/{task_id}/{path}")
            assert pending.status_code == 503, path
            assert pending.json()["error"]["code"] == "artifact_pending"
        metrics = (await http.get("/metrics")).text
        assert 'coinbt_artifacts{state="pending"} 1' in metrics
        assert "coinbt_artifact_upload_failures_total 0" not in metrics

        proxy.up()
        rows = await wait_artifacts(
            system, task_id, lambda rows: all(r.state == "stored" for r in rows)
        )
        assert {r.location for r in rows} == {f"s3://{bucket}/runs"}
        response = await http.get(f"/backtests/{task_id}/equity", params={"points": 0})
        assert response.status_code == 200
        np.testing.assert_array_equal(response.json()["equity"], expected_equity())
        fills = (await http.get(f"/backtests/{task_id}/fills")).json()
        assert fills["total"] == (await system.task(task_id)).num_fills > 0
        assert 'coinbt_artifacts{state="pending"} 0' in (await http.get("/metrics")).text
    assert list((tmp_path / "staging").iterdir()) == []


async def test_pending_uploads_survive_a_restart(
    proxy: FaultProxy, bucket: str, tmp_path: Path
) -> None:
    proxy.down()
    open_system = system_factory(tmp_path)
    options = s3_options(proxy.url, max_attempts=1)
    async with open_artifact_store(f"s3://{bucket}", s3=options) as store:
        async with open_system(artifacts=store, upload_backoff_s=BACKOFF) as system:
            task_id = (await system.submit(tiny(seed=2))).task_id
            assert await wait_status(system, task_id, "completed") == "completed"
            await wait_artifacts(system, task_id, lambda rows: rows[0].attempts >= 1)
        assert len(list((tmp_path / "staging").iterdir())) == 1  # kept for the next process
        proxy.up()
        async with open_system(artifacts=store, upload_backoff_s=BACKOFF) as system:
            await wait_artifacts(
                system, task_id, lambda rows: all(r.state == "stored" for r in rows)
            )
            _, equity = await system.equity(task_id)
            np.testing.assert_array_equal(equity, expected_equity(seed=2))
            assert (await system.task(task_id)).status == "completed"
    assert list((tmp_path / "staging").iterdir()) == []


async def test_an_artifact_whose_staged_file_is_lost_or_damaged_fails_for_good(
    proxy: FaultProxy, bucket: str, tmp_path: Path
) -> None:
    proxy.down()
    open_system = system_factory(tmp_path)
    options = s3_options(proxy.url, max_attempts=1)
    async with (
        open_artifact_store(f"s3://{bucket}", s3=options) as store,
        open_system(artifacts=store, upload_backoff_s=BACKOFF) as system,
        asgi_client(system) as http,
    ):
        lost = (await system.submit(tiny(seed=3))).task_id
        damaged = (await system.submit(tiny(seed=4))).task_id
        rows = {}
        for task_id in (lost, damaged):
            assert await wait_status(system, task_id, "completed") == "completed"
            [rows[task_id]] = await wait_artifacts(system, task_id, lambda rows: rows[0].attempts)
        (tmp_path / str(rows[lost].staged)).unlink()  # lost
        # No longer the bytes the run recorded:
        (tmp_path / str(rows[damaged].staged)).write_bytes(b"damaged")
        # With the endpoint still down, wait for a round that began after the damage (a round
        # in flight then adds at most one attempt): the damaged file fails for good at once.
        tried = rows[damaged].attempts
        await wait_artifacts(
            system,
            damaged,
            lambda rows: rows[0].attempts >= tried + 1 and rows[0].state == "failed",
        )
        proxy.up()  # the lost file: the store does not have it either
        [gone] = await wait_artifacts(system, lost, lambda rows: rows[0].state == "failed")
        [corrupt] = await system.outbox.for_task(damaged)
        assert "missing" in (gone.last_error or "")
        assert "corrupt" in (corrupt.last_error or "")
        for task_id in (lost, damaged):
            with pytest.raises(ArtifactLostError, match="lost before it reached the store"):
                await system.equity(task_id)
            for path in ("equity", "fills", "trades"):
                response = await http.get(f"/backtests/{task_id}/{path}")
                assert response.status_code == 404, path
                assert response.json()["error"]["code"] == "artifact_lost"
            assert (await system.task(task_id)).status == "completed"  # the task itself is fine
        assert 'coinbt_artifacts{state="failed"} 2' in (await http.get("/metrics")).text


async def test_one_artifact_that_keeps_failing_does_not_hold_up_the_others(tmp_path: Path) -> None:
    open_system = system_factory(tmp_path)
    async with open_system(upload_backoff_s=BACKOFF) as system:
        staged = tmp_path / "staging" / "odd.npy"
        await anyio.Path(staged).write_bytes(b"odd")
        ref = ArtifactRef(
            key="tasks/odd name.npy", sha256=hashlib.sha256(b"odd").hexdigest(), size=3
        )
        await system.outbox.add("odd", [("equity", ref, staged)])  # a key no store accepts
        system.uploader.notify()
        rows = await wait_artifacts(system, "odd", lambda rows: rows[0].attempts >= 2)
        assert "invalid artifact key" in (rows[0].last_error or "")
        task_id = (await system.submit(tiny())).task_id
        await system.drain()  # returns: the odd one waits for its next retry
        assert {r.state for r in await system.outbox.for_task(task_id)} == {"stored"}
        _, equity = await system.equity(task_id)
        np.testing.assert_array_equal(equity, expected_equity())
        [odd] = await system.outbox.for_task("odd")
        assert odd.state == "pending"
        assert not system.uploader.backing_off  # the store itself is fine
