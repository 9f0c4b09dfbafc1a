"""``--db memory:``: ``coinbt serve`` runs on the memory backend (nothing kept); every other
command refuses it (exit 2, one line), since nothing would be there for it to read."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from coinbt.cli import main
from coinbt.events import Queued
from tests.system import system_factory, tiny, types_of


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["replay", "--db", "memory:"], id="replay"),
        pytest.param(["audit", "verify", "--db", "memory:"], id="audit-verify"),
        pytest.param(["migrate", "--db", "memory:"], id="migrate"),
        pytest.param(["data", "list", "--db", "memory:"], id="data-list"),
    ],
)
def test_commands_but_serve_refuse_memory(
    argv: list[str],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err == (
        "coinbt: error: --db memory: keeps nothing once a command ends; "
        "only 'coinbt serve' can use it\n"
    )
    assert out == ""
    assert list(tmp_path.iterdir()) == []  # no file named "memory:", no data directory


def test_serve_refuses_backups_of_memory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["serve", "--db", "memory:", "--backup-to", str(tmp_path / "b"), "--backup-every", "5"]
    assert main(argv) == 2
    _, err = capsys.readouterr()
    assert err.startswith("coinbt: error: ")
    assert "--backup-to" in err
    assert "\n" not in err.rstrip("\n")
    assert list(tmp_path.iterdir()) == []


async def test_the_service_runs_on_memory(tmp_path: Path) -> None:
    open_system = system_factory(tmp_path, db="memory:")
    async with open_system(workers=1) as system:
        view = await system.submit(tiny(seed=3))
        await system.drain()
        done = await system.task(view.task_id)
        assert done.status == "completed"
        assert await types_of(system, view.task_id) == ["Queued", "Started", "Completed"]
        [queued] = await system.store.read_stream(view.task_id, limit=1)
        assert isinstance(queued.event, Queued)
    assert [p async for p in anyio.Path(tmp_path).glob("*.db")] == []  # the log was in memory
    async with open_system(workers=1) as system:  # and is gone with the process
        assert await system.store.last_position() == 0
