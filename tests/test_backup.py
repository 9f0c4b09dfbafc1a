"""Backups of the running service's database, and restores that refuse anything that does not
check out (S3 on a real loopback endpoint, or a local directory)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import anyio
import msgspec
import pytest

from coinbt.artifacts import LocalArtifactStore
from coinbt.backends.sqlite import verify_file
from coinbt.backup import BackupInfo, backup_database, list_backups, restore_database
from coinbt.cli import main
from coinbt.clock import ManualClock, SequentialIds
from coinbt.errors import BackupError
from tests.artifacts.s3server import aws_environment, new_bucket, shared_moto
from tests.cli.terminal import on_a_terminal
from tests.system import OpenSystem, long, system_factory, tiny, wait_status


@pytest.fixture
def open_system(tmp_path: Path) -> OpenSystem:
    return system_factory(tmp_path / "live")


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


async def test_a_backup_taken_while_tasks_run_restores_to_a_copy_that_verifies(
    open_system: OpenSystem,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    aws_environment(monkeypatch)
    moto = shared_moto()
    monkeypatch.setenv("COINBT_S3_ENDPOINT_URL", moto.url)
    url = f"s3://{new_bucket(moto.url)}/backups"
    db = tmp_path / "live" / "coinbt.db"
    async with open_system(workers=2) as system:
        running = await system.submit(long(seed=7))
        await wait_status(system, running.task_id, "running")
        done = anyio.Event()

        async def keep_submitting() -> None:
            seed = 100
            while not done.is_set():
                await system.submit(tiny(seed=seed))
                seed += 1
                await system.projector.wait_for(await system.store.last_position())

        async with anyio.create_task_group() as tg:
            tg.start_soon(keep_submitting)
            await system.projector.wait_for(3)
            # `coinbt backup` while one task runs and others are submitted and completed.
            code, out, err = await anyio.to_thread.run_sync(
                cli, capsys, "backup", "--db", str(db), "--to", url, "--json"
            )
            done.set()
        assert code == 0, err
        info = msgspec.json.decode(out, type=BackupInfo)
        assert (await system.task(running.task_id)).status == "running"
        live = await system.store.read_all(info.last_position - 1, limit=1)
        assert live[0].hash == info.last_hash  # the snapshot ends exactly where the log was
        await system.cancel(running.task_id)
        await system.drain()
        assert await system.store.last_position() > info.last_position  # it went on meanwhile

    restored = tmp_path / "restored" / "coinbt.db"
    code, out, err = await anyio.to_thread.run_sync(
        cli, capsys, "restore", "--from", url, "--db", str(restored), "--json"
    )
    assert code == 0, err
    report = json.loads(out)
    assert (report["name"], report["last_position"]) == (info.name, info.last_position)
    code, out, _ = await anyio.to_thread.run_sync(
        cli, capsys, "audit", "verify", "--db", str(restored)
    )
    assert code == 0, out
    assert f"last hash {info.last_hash}" in out
    code, out, _ = await anyio.to_thread.run_sync(
        cli, capsys, "replay", "--db", str(restored), "--verify"
    )
    assert code == 0, out
    assert "read models match the log" in out
    code, out, _ = await anyio.to_thread.run_sync(cli, capsys, "backup", "list", "--to", url)
    assert info.name in out


async def _backup(tmp_path: Path, tasks: int = 2) -> tuple[LocalArtifactStore, BackupInfo]:
    async with system_factory(tmp_path / "live")(workers=1) as system:
        for seed in range(1, tasks + 1):
            await system.submit(tiny(seed=seed))
        await system.drain()
    store = LocalArtifactStore(tmp_path / "backups")
    info = await backup_database(tmp_path / "live" / "coinbt.db", store)
    return store, info


def _rewrite_db(
    store: LocalArtifactStore, info: BackupInfo, change: Callable[[sqlite3.Connection], None]
) -> BackupInfo:
    """Change the backed-up database and record its new sha256 (a consistent forgery)."""
    path = store.root / info.db_key
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("DROP TRIGGER events_no_delete")
    change(conn)
    conn.close()
    forged = msgspec.structs.replace(info, sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    (store.root / f"{info.name}.json").write_bytes(msgspec.json.encode(forged))
    return forged


def _edit_event(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE events SET recorded_at = recorded_at + 1 WHERE position = 3")


def _drop_last_event(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM events WHERE position = (SELECT MAX(position) FROM events)")


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        pytest.param("manifest-hash", "does not match its record", id="recorded-hash-differs"),
        pytest.param("bytes", "is damaged", id="file-bytes-changed"),
        pytest.param("edited-event", "fails the hash-chain check at position 3", id="edited-event"),
        pytest.param("truncated", "does not match its record", id="last-events-dropped"),
    ],
)
async def test_restore_refuses_a_backup_that_does_not_check_out(
    tmp_path: Path, tamper: str, message: str
) -> None:
    store, info = await _backup(tmp_path, tasks=1)
    if tamper == "manifest-hash":
        forged = msgspec.structs.replace(info, last_hash="0" * 64)
        (store.root / f"{info.name}.json").write_bytes(msgspec.json.encode(forged))
    elif tamper == "bytes":
        path = store.root / info.db_key
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    else:
        _rewrite_db(store, info, _edit_event if tamper == "edited-event" else _drop_last_event)
    target = tmp_path / "restored.db"
    with pytest.raises(BackupError, match=message):
        await restore_database(store, target)
    assert not target.exists()
    leftovers = [p.name async for p in anyio.Path(tmp_path).iterdir() if p.name.startswith(".")]
    assert leftovers == []  # no temporary file left behind


async def test_restore_never_overwrites_without_force_and_keeps_the_old_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, info = await _backup(tmp_path, tasks=2)
    other_store, other = await _backup(tmp_path / "other", tasks=1)
    target = tmp_path / "other" / "live" / "coinbt.db"  # a database with its own history
    with pytest.raises(BackupError, match="refusing to overwrite"):
        await restore_database(store, target)
    code, _, err = await anyio.to_thread.run_sync(
        cli, capsys, "restore", "--from", str(store.root), "--db", str(target)
    )
    assert code == 2
    assert "refusing to overwrite" in err
    assert "Traceback" not in err
    assert verify_file(target).last_hash == other.last_hash  # untouched

    clock = ManualClock()
    report = await restore_database(store, target, force=True, clock=clock)
    assert report.kept is not None
    assert report.kept.name == "coinbt.db.before-restore-20240101T000000.000Z"
    assert verify_file(report.kept).last_hash == other.last_hash  # the old one, whole
    assert verify_file(target).last_hash == info.last_hash
    del other_store


async def test_backups_are_listed_and_one_can_be_restored_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, first = await _backup(tmp_path, tasks=1)
    async with system_factory(tmp_path / "live")(workers=1, ids=SequentialIds("more")) as system:
        await system.submit(tiny(seed=9))
        await system.drain()
    second = await backup_database(tmp_path / "live" / "coinbt.db", store)
    assert second.last_position > first.last_position
    assert [b.name for b in await list_backups(store)] == [first.name, second.name]
    code, out, _ = await anyio.to_thread.run_sync(
        cli, capsys, "backup", "list", "--to", str(store.root), "--json"
    )
    assert [b["name"] for b in json.loads(out)] == [first.name, second.name]
    target = tmp_path / "by-name.db"
    code, out, err = await anyio.to_thread.run_sync(
        cli, capsys, "restore", "--from", str(store.root / f"{first.name}.db"), "--db", str(target)
    )
    assert code == 0, err
    assert verify_file(target).last_position == first.last_position  # that one, not the newest
    # On a terminal, the check of the newest one's hash chain shows its progress.
    newest = tmp_path / "newest.db"
    code, out, terminal = await anyio.to_thread.run_sync(
        on_a_terminal, "restore", "--from", str(store.root), "--db", str(newest)
    )
    assert code == 0, terminal
    events = second.last_position
    assert f"checking the backup's hash chain: {events:,} of {events:,} events (100%)" in terminal
    assert terminal.endswith("\r\x1b[K")
    assert verify_file(newest).last_position == events


async def test_the_service_takes_periodic_backups(open_system: OpenSystem, tmp_path: Path) -> None:
    target = tmp_path / "periodic"
    async with open_system(workers=1, backup_to=str(target), backup_every_s=0.05) as system:
        await system.submit(tiny())
        await system.drain()
        backups = system.backups
        assert backups is not None
        with anyio.fail_after(20):
            while backups.completed < 2:
                await backups.changed_hint().wait()
        assert backups.failures == 0
    infos = await list_backups(LocalArtifactStore(target))
    assert len(infos) >= 2
    assert infos[-1].last_position > 0


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["serve", "--backup-every", "60"], id="every-without-to"),
        pytest.param(["serve", "--backup-to", "/tmp/b"], id="to-without-every"),
        pytest.param(["serve", "--backup-to", "/tmp/b", "--backup-every", "0"], id="zero"),
        pytest.param(["serve", "--artifacts", "gs://bucket"], id="bad-artifacts-url"),
        pytest.param(["backup", "--db", "/nonexistent/coinbt.db", "--to", "/tmp/b"], id="no-db"),
        pytest.param(["backup", "--db", "/nonexistent/coinbt.db"], id="no-target"),
        pytest.param(["restore", "--from", "/nonexistent-dir", "--db", "/tmp/x.db"], id="none"),
    ],
)
def test_bad_storage_arguments_exit_2_with_a_message(
    args: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("COINBT_BACKUP_TO", raising=False)
    code, _, err = cli(
        capsys, *args, *(["--db", str(tmp_path / "x.db")] if args[0] == "serve" else [])
    )
    assert code == 2
    assert err.startswith("coinbt: error:")
    assert "Traceback" not in err


async def test_a_damaged_old_manifest_is_reported_and_the_newest_intact_restored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, first = await _backup(tmp_path, tasks=1)
    async with system_factory(tmp_path / "live")(workers=1, ids=SequentialIds("more")) as system:
        await system.submit(tiny(seed=9))
        await system.drain()
    second = await backup_database(tmp_path / "live" / "coinbt.db", store)
    (store.root / f"{first.name}.json").write_bytes(b'{"name": "coinbt-2024')  # truncated
    assert [b.name for b in await list_backups(store)] == [second.name]
    code, out, err = await anyio.to_thread.run_sync(
        cli, capsys, "backup", "list", "--to", str(store.root), "--json"
    )
    assert code == 0, err
    assert [b["name"] for b in json.loads(out)] == [second.name]
    assert f"coinbt: warning: the manifest of backup '{first.name}'" in err
    assert "is damaged" in err
    target = tmp_path / "newest.db"
    code, out, err = await anyio.to_thread.run_sync(
        cli, capsys, "restore", "--from", str(store.root), "--db", str(target), "--json"
    )
    assert code == 0, err
    assert json.loads(out)["name"] == second.name
    assert verify_file(target).last_position == second.last_position
    # Restoring the damaged one by name is refused with the reason.
    code, _, err = await anyio.to_thread.run_sync(
        cli, capsys, "restore", "--from", str(store.root / first.name), "--db", str(tmp_path / "x")
    )
    assert code == 2
    assert f"the manifest of backup '{first.name}'" in err
    assert not (tmp_path / "x").exists()


async def test_a_damaged_newer_manifest_is_passed_over_and_said_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, first = await _backup(tmp_path, tasks=1)
    damaged = "coinbt-29991231T235959.999Z-p99"
    (store.root / f"{damaged}.json").write_text('{"name": "' + damaged + '", "size": "big"}')
    target = tmp_path / "restored.db"
    code, out, err = await anyio.to_thread.run_sync(
        cli, capsys, "restore", "--from", str(store.root), "--db", str(target)
    )
    assert code == 0, err
    assert f"restored {first.name}" in out
    assert f"coinbt: warning: passed over {damaged}: the manifest of backup" in err
    assert verify_file(target).last_position == first.last_position
