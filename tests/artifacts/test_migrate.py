"""Migrations: a database written at the previous schema (3) by the previous coinbt is migrated and
reads as before; artifacts move from the local store to S3 and back, resumably, without the log
changing."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio
import numpy as np
import pytest

from coinbt import engine
from coinbt.artifacts.migrate import move_artifacts
from coinbt.backends.sqlite import verify_file
from coinbt.backends.sqlite.migrations import LATEST, connect_sync, schema_version
from coinbt.backends.sqlite.rebuild import verify_read_models
from coinbt.cli import main
from coinbt.errors import ArtifactStoreUnavailableError
from coinbt.runtime import Config, open_system
from tests.artifacts.s3server import FaultProxy, MotoServer, admin_client, s3_options
from tests.cli.terminal import on_a_terminal

ROOT = Path(__file__).parents[2]
FIXTURE = Path(__file__).parent / "fixtures" / "schema3"
COMPLETED = {"r1-000001": 1, "r1-000002": 2, "r1-000003": 3}  # task id -> seed


@pytest.fixture
def old_db(tmp_path: Path) -> Path:
    """A copy of the data directory the schema-3 coinbt wrote (see fixtures/make_schema3.py)."""
    data = tmp_path / "data"
    shutil.copytree(FIXTURE / "artifacts", data / "artifacts")
    shutil.copy(FIXTURE / "coinbt.sqlite", data / "coinbt.db")
    return data / "coinbt.db"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def locations(db: Path) -> dict[str, str]:
    conn = connect_sync(db, readonly=True)
    try:
        return dict(conn.execute("SELECT key, location FROM artifacts WHERE state = 'stored'"))
    finally:
        conn.close()


def read_all_equity(db: Path, **config: object) -> None:
    """Open the service on ``db`` and check every completed task's curve against the engine."""

    async def check() -> None:
        async with open_system(Config(db=db, workers=0, **config)) as system:  # type: ignore[arg-type]
            for task_id, seed in COMPLETED.items():
                _, equity = await system.equity(task_id)
                expected = engine.run(
                    engine.BacktestSpec("sma_cross", {"fast": 5, "slow": 20}),
                    engine.synthetic(300, seed=seed),
                )
                np.testing.assert_array_equal(equity, expected.equity)
            assert (await system.read.task_id_for_key("third")) == "r1-000003"

    anyio.run(check)


def test_an_old_database_migrates_and_reads_as_before(
    old_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = sqlite3.connect(old_db)
    assert schema_version(conn) == 3
    conn.close()
    chain = verify_file(old_db)
    done = subprocess.run(
        [str(ROOT / "scripts" / "migrate"), "--db", str(old_db)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    applied = ", ".join(map(str, range(4, LATEST + 1)))
    assert f"applied migrations {applied}; now at {LATEST}" in done.stdout
    # The runs that completed before the artifact table existed have their rows, in place.
    assert locations(old_db) == {
        f"tasks/{task_id}-1-{name}.npy": "local"
        for task_id in COMPLETED
        for name in ("equity", "fills")
    }
    assert verify_file(old_db) == chain  # the log itself is untouched
    assert verify_read_models(old_db).ok
    read_all_equity(old_db)
    code, out, _ = run(capsys, "migrate", "--db", str(old_db))
    assert (code, "nothing to do" in out) == (0, True)


def test_artifacts_move_to_s3_and_back_resumably_without_touching_the_log(
    old_db: Path,
    moto: MotoServer,
    bucket: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COINBT_S3_ENDPOINT_URL", moto.url)
    chain = verify_file(old_db)
    target = f"s3://{bucket}/runs"
    move = ("migrate", "artifacts", "--db", str(old_db), "--to", target, "--json")

    code, out, _ = run(capsys, *move, "--limit", "2")  # stopped half-way
    assert code == 0
    report = json.loads(out)
    assert (report["moved"], report["complete"]) == (2, False)
    assert sorted(locations(old_db).values()) == ["local"] * 4 + [target] * 2
    read_all_equity(old_db)  # half here, half there: every read follows its artifact

    code, out, _ = run(capsys, *move)  # run again: it continues
    report = json.loads(out)
    assert (code, report["moved"], report["already"], report["complete"]) == (0, 4, 2, True)
    assert set(locations(old_db).values()) == {target}
    objects = admin_client(moto.url).list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(o["Key"] for o in objects) == sorted(f"runs/{k}" for k in locations(old_db))
    assert list((old_db.parent / "artifacts").rglob("*.npy")) == []  # moved, not copied
    read_all_equity(old_db, artifacts_url=target)

    code, out, _ = run(capsys, *move)  # nothing left to do
    assert json.loads(out)["moved"] == 0

    back = str(old_db.parent / "artifacts")
    code, out, _ = run(capsys, "migrate", "artifacts", "--db", str(old_db), "--to", back)
    assert code == 0
    assert "moved 6 artifacts to local" in out
    assert set(locations(old_db).values()) == {"local"}
    assert admin_client(moto.url).list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    read_all_equity(old_db)
    assert verify_file(old_db) == chain  # events were never rewritten
    assert verify_read_models(old_db).ok


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        pytest.param(["--limit", "-1"], "--limit", id="negative-limit"),
        pytest.param(["--concurrency", "0"], "--concurrency", id="no-concurrency"),
        pytest.param(["--concurrency", "1000"], "--concurrency", id="too-much-concurrency"),
        pytest.param(["--concurrency", "many"], "--concurrency", id="not-a-number"),
    ],
)
def test_bad_move_arguments_exit_2_naming_the_option_and_move_nothing(
    old_db: Path, tmp_path: Path, bad: list[str], field: str
) -> None:
    main(["migrate", "--db", str(old_db)])
    before = locations(old_db)
    move = ["migrate", "artifacts", "--db", str(old_db), "--to", str(tmp_path / "elsewhere")]
    done = subprocess.run(
        [sys.executable, "-m", "coinbt", *move, *bad],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 2, done
    assert field in done.stderr
    assert "Traceback" not in done.stderr
    assert locations(old_db) == before


def test_a_move_reports_its_progress_artifact_by_artifact(old_db: Path, tmp_path: Path) -> None:
    heard: list[tuple[int, int]] = []
    report = anyio.run(
        lambda: move_artifacts(
            old_db,
            tmp_path / "elsewhere",
            concurrency=3,
            progress=lambda done, total: heard.append((done, total)),
        )
    )
    assert (report.moved, report.ok) == (6, True)
    assert heard == [(n, 6) for n in range(1, 7)]


def test_the_command_shows_its_progress_on_a_terminal(old_db: Path, tmp_path: Path) -> None:
    code, out, terminal = on_a_terminal(
        "migrate", "artifacts", "--db", str(old_db), "--to", str(tmp_path / "elsewhere")
    )
    assert code == 0, terminal
    assert "moving artifacts: 6 of 6 artifacts (100%)" in terminal
    assert terminal.endswith("\r\x1b[K")
    assert "moved 6 artifacts" in out


async def test_a_move_to_an_unreachable_store_changes_nothing_and_can_be_rerun(
    old_db: Path, proxy: FaultProxy, bucket: str
) -> None:
    await anyio.to_thread.run_sync(lambda: main(["migrate", "--db", str(old_db)]))
    before = locations(old_db)
    proxy.down()
    options = s3_options(proxy.url, max_attempts=1)
    with pytest.raises(ArtifactStoreUnavailableError, match="cannot reach"):
        await move_artifacts(old_db, f"s3://{bucket}", s3=options)
    assert locations(old_db) == before
    proxy.up()
    report = await move_artifacts(old_db, f"s3://{bucket}", s3=options)
    assert (report.moved, report.ok) == (6, True)


async def test_a_move_that_fails_midway_keeps_what_moved_and_finishes_when_rerun(
    old_db: Path, proxy: FaultProxy, bucket: str
) -> None:
    """Several artifacts in flight, one of them stalls until it times out: the move stops with
    the store's error, every artifact is recorded where it really is, and a rerun moves the
    rest."""
    await anyio.to_thread.run_sync(lambda: main(["migrate", "--db", str(old_db)]))
    chain = verify_file(old_db)
    target = f"s3://{bucket}"
    proxy.stall(b"r1-000002-1-equity")
    options = s3_options(proxy.url, max_attempts=1, read_timeout=1.0)
    with pytest.raises(ArtifactStoreUnavailableError):
        await move_artifacts(old_db, target, s3=options, concurrency=2)
    assert proxy.stalled.is_set()
    where = locations(old_db)
    assert where["tasks/r1-000002-1-equity.npy"] == "local"
    stored = {
        o["Key"] for o in admin_client(proxy.url).list_objects_v2(Bucket=bucket).get("Contents", [])
    }
    assert stored == {key for key, at in where.items() if at == target}
    proxy.stall(None)
    report = await move_artifacts(old_db, target, s3=options, concurrency=2)
    assert (report.moved, report.ok, report.complete) == (
        list(where.values()).count("local"),
        True,
        True,
    )
    assert set(locations(old_db).values()) == {target}
    assert verify_file(old_db) == chain
