"""``coinbt replay``, ``coinbt audit verify|show`` and ``coinbt migrate`` on real databases."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio
import msgspec
import pytest

from coinbt.backends.sqlite.migrations import LATEST
from coinbt.backends.sqlite.read_models import decode_task
from coinbt.cli import main
from tests.cli.terminal import on_a_terminal
from tests.system import system_factory, tiny


@pytest.fixture
async def workload(tmp_path: Path) -> tuple[Path, list[str]]:
    """A database after a small mixed workload: completed and cancelled tasks."""
    open_system = system_factory(tmp_path)
    async with open_system(workers=0) as system:
        cancelled = await system.submit(tiny(seed=9))
        await system.cancel(cancelled.task_id)
    async with open_system(workers=2) as system:
        done = [await system.submit(tiny(seed=n)) for n in range(1, 4)]
        await system.drain()
    return tmp_path / "coinbt.db", [cancelled.task_id] + [v.task_id for v in done]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_replay_verify_matches_then_catches_a_drifted_read_model(
    workload: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    db, task_ids = workload
    code, out, _ = run(capsys, "replay", "--db", str(db), "--verify")
    assert code == 0
    assert "read models match the log" in out
    # Drift one read-model row behind the projector's back.
    conn = sqlite3.connect(db, isolation_level=None)
    blob = conn.execute("SELECT view FROM tasks WHERE task_id = ?", (task_ids[1],)).fetchone()[0]
    view = msgspec.structs.replace(decode_task(blob), status="failed")
    conn.execute(
        "UPDATE tasks SET view = ? WHERE task_id = ?", (msgspec.msgpack.encode(view), task_ids[1])
    )
    conn.close()
    code, out, _ = run(capsys, "replay", "--db", str(db), "--verify", "--json")
    assert code == 1
    report = json.loads(out)
    assert not report["ok"]
    assert [d["key"] for d in report["differences"]] == [task_ids[1]]
    # A row that is not a view at all is a difference too, not a crash.
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("UPDATE tasks SET view = 'garbage' WHERE task_id = ?", (task_ids[2],))
    conn.close()
    code, out, _ = run(capsys, "replay", "--db", str(db), "--verify", "--json")
    assert code == 1
    differences = {d["key"]: d for d in json.loads(out)["differences"]}
    assert differences.keys() == {task_ids[1], task_ids[2]}
    assert differences[task_ids[2]]["live"].startswith("<unreadable view")
    # A plain replay rebuilds the read models from the log.
    code, out, _ = run(capsys, "replay", "--db", str(db))
    assert code == 0
    assert "rebuilt the read models" in out
    assert run(capsys, "replay", "--db", str(db), "--verify")[0] == 0


def test_audit_verify_names_the_tampered_position(
    workload: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    db, _ = workload
    code, out, _ = run(capsys, "audit", "verify", "--db", str(db))
    assert code == 0
    assert out.startswith("ok:")
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("UPDATE events SET data = CAST(data AS BLOB) || x'00' WHERE position = 7")
    conn.close()
    code, out, _ = run(capsys, "audit", "verify", "--db", str(db))
    assert code == 1
    assert "first bad position 7" in out
    code, out, _ = run(capsys, "audit", "verify", "--db", str(db), "--json")
    assert json.loads(out)["first_bad_position"] == 7


def test_audit_verify_artifacts_names_an_artifact_that_differs(
    workload: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    db, task_ids = workload
    code, out, _ = run(capsys, "audit", "verify", "--db", str(db), "--artifacts")
    assert code == 0, out
    assert "ok: 3 artifacts match the sha256 their events record" in out  # 3 runs x 1
    # Damage one stored artifact (the log and its hash chain are untouched).
    damaged = db.parent / "artifacts" / "tasks" / f"{task_ids[2]}-1-result.npz"
    data = bytearray(damaged.read_bytes())
    data[-1] ^= 0xFF
    damaged.write_bytes(bytes(data))
    (db.parent / "artifacts" / "tasks" / f"{task_ids[3]}-1-result.npz").unlink()
    code, out, _ = run(capsys, "audit", "verify", "--db", str(db), "--artifacts", "--json")
    assert code == 1
    report = json.loads(out)
    assert report["ok"]  # the chain holds
    problems = {p["key"]: p["reason"] for p in report["artifacts"]["problems"]}
    assert problems.keys() == {
        f"tasks/{task_ids[2]}-1-result.npz",
        f"tasks/{task_ids[3]}-1-result.npz",
    }
    assert "but the log records" in problems[f"tasks/{task_ids[2]}-1-result.npz"]
    assert "unreadable" in problems[f"tasks/{task_ids[3]}-1-result.npz"]
    code, out, _ = run(capsys, "audit", "verify", "--db", str(db), "--artifacts")
    assert code == 1
    assert f"BAD ARTIFACT tasks/{task_ids[2]}-1-result.npz (task {task_ids[2]}, result)" in out


def test_audit_show_prints_a_tasks_history(
    workload: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    db, task_ids = workload
    code, out, _ = run(capsys, "audit", "show", task_ids[0], "--db", str(db))
    assert code == 0
    assert "Queued" in out
    assert "Cancelled" in out
    code, out, _ = run(capsys, "audit", "show", task_ids[1], "--db", str(db), "--json")
    events = json.loads(out)
    assert events[0]["type"] == "Queued"
    assert events[-1]["type"] == "Completed"
    assert set(events[0]) == {
        "position",
        "stream_id",
        "version",
        "type",
        "recorded_at",
        "data",
        "hash",
    }


@pytest.mark.parametrize(
    ("command", "label"),
    [
        pytest.param(["replay"], "replaying the log", id="replay"),
        pytest.param(["replay", "--verify"], "replaying the log", id="replay-verify"),
        pytest.param(["audit", "verify"], "verifying the hash chain", id="audit-verify"),
    ],
)
def test_long_commands_show_progress_on_a_terminal_only(
    workload: tuple[Path, list[str]], command: list[str], label: str
) -> None:
    db, _ = workload
    events = sqlite3.connect(db).execute("SELECT MAX(position) FROM events").fetchone()[0]
    code, out, terminal = on_a_terminal(*command, "--db", str(db))
    assert code == 0, terminal
    assert f"\r\x1b[K{label}: {events:,} of {events:,} events (100%)" in terminal
    assert terminal.endswith("\r\x1b[K")  # cleared: the terminal keeps only the result
    assert "\r" not in out
    assert str(events) in out.replace(",", "")
    piped = subprocess.run(
        [sys.executable, "-m", "coinbt", *command, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert piped.returncode == 0
    assert piped.stderr == ""  # not a terminal: no progress at all


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["replay", "--db", "{missing}"], id="replay-missing-db"),
        pytest.param(["audit", "verify", "--db", "{missing}"], id="audit-missing-db"),
        pytest.param(["audit", "show", "nope", "--db", "{db}"], id="show-unknown-task"),
        pytest.param(["audit", "verify", "--db", "{notes}"], id="not-a-database"),
        pytest.param(["replay", "--bogus"], id="unknown-flag"),
        pytest.param(["audit"], id="missing-action"),
    ],
)
def test_bad_input_exits_2_without_traceback(
    workload: tuple[Path, list[str]], tmp_path: Path, args: list[str]
) -> None:
    db, _ = workload
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n" * 100)
    argv = [a.format(missing=tmp_path / "missing.db", db=db, notes=notes) for a in args]
    done = subprocess.run(
        [sys.executable, "-m", "coinbt", *argv], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    assert done.stderr.strip()


def test_migrate_is_idempotent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "new.db"
    code, out, _ = run(capsys, "migrate", "--db", str(db))
    assert code == 0
    assert f"now at {LATEST}" in out
    code, out, _ = run(capsys, "migrate", "--db", str(db))
    assert code == 0
    assert "nothing to do" in out


@pytest.fixture
async def pg_workload(tmp_path: Path, pg_dsn: str) -> tuple[str, list[str]]:
    """The same workload on a PostgreSQL database."""
    open_system = system_factory(tmp_path, pg_dsn)
    async with open_system(workers=0) as system:
        cancelled = await system.submit(tiny(seed=9))
        await system.cancel(cancelled.task_id)
    async with open_system(workers=1) as system:
        done = [await system.submit(tiny(seed=n)) for n in range(1, 4)]
        await system.drain()
    return pg_dsn, [cancelled.task_id] + [v.task_id for v in done]


def test_replay_audit_and_migrate_on_postgres(
    pg_workload: tuple[str, list[str]], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import asyncpg  # type: ignore[import-untyped]

    dsn, task_ids = pg_workload
    code, out, _ = run(capsys, "replay", "--db", dsn, "--verify")
    assert code == 0
    assert "read models match the log" in out

    async def drift() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            blob = await conn.fetchval("SELECT view FROM tasks WHERE task_id = $1", task_ids[1])
            view = msgspec.structs.replace(decode_task(blob), status="failed")
            await conn.execute(
                "UPDATE tasks SET view = $1 WHERE task_id = $2",
                msgspec.msgpack.encode(view),
                task_ids[1],
            )
        finally:
            await conn.close()

    anyio.run(drift)
    code, out, _ = run(capsys, "replay", "--db", dsn, "--verify", "--json")
    assert code == 1
    assert [d["key"] for d in json.loads(out)["differences"]] == [task_ids[1]]
    code, out, _ = run(capsys, "replay", "--db", dsn)
    assert code == 0
    assert "rebuilt the read models" in out
    assert run(capsys, "replay", "--db", dsn, "--verify")[0] == 0

    code, out, _ = run(capsys, "audit", "verify", "--db", dsn)
    assert code == 0
    assert out.startswith("ok:")
    data_dir = str(tmp_path)  # the workload's data directory (its local artifact store)
    code, out, _ = run(
        capsys, "audit", "verify", "--db", dsn, "--artifacts", "--data-dir", data_dir
    )
    assert code == 0, out
    assert "ok: 3 artifacts match the sha256 their events record" in out
    code, out, _ = run(capsys, "audit", "show", task_ids[0], "--db", dsn, "--json")
    assert code == 0
    assert [e["type"] for e in json.loads(out)] == ["Queued", "Cancelled"]
    code, _, err = run(capsys, "audit", "show", "nope", "--db", dsn)
    assert code == 2
    assert "nope" in err
    code, out, _ = run(capsys, "migrate", "--db", dsn)
    assert code == 0
    assert "nothing to do" in out
    code, _, err = run(capsys, "backup", "--db", dsn, "--to", "/tmp/nowhere")
    assert code == 2
    assert "SQLite" in err
