"""``coinbt data import|list|info|resample|export|retire`` on real SQLite files, and
``import --url`` into a real uvicorn server on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from coinbt.cli import main
from tests.api.helpers import server_url
from tests.data.test_versions import HOUR, T0, csv_rows
from tests.system import system_factory


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_import_refuses_to_create_a_database_silently(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "btc.csv"
    csv.write_bytes(csv_rows(T0, 48))
    db = tmp_path / "elsewhere" / "coinbt.db"
    status, _, err = run(capsys, "data", "import", str(csv), "--name", "btc-1h", "--db", str(db))
    assert status == 2
    assert err.startswith(f"coinbt: error: --db: no database at {db}")
    assert not db.exists()
    status, out, err = run(
        capsys, "data", "import", str(csv), "--name", "btc-1h", "--db", str(db), "--create"
    )
    assert status == 0, err
    assert "imported btc-1h version 1 (BTC): 48 bars" in out
    assert f"in {db}" in out  # says which file it wrote


def test_import_info_resample_export_retire(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "coinbt.db")
    csv = tmp_path / "gappy.csv"
    csv.write_bytes(csv_rows(T0, 200, skip=range(100, 110)))
    status, _, err = run(
        capsys, "data", "import", str(csv), "--name", "eth-1h", "--db", db, "--create", "--strict"
    )
    assert status == 2
    assert "refused (--strict): 1 gap(s), 10 missing" in err
    status, _, err = run(capsys, "data", "import", str(csv), "--name", "eth-1h", "--db", db)
    assert status == 0
    assert "coinbt: warning: 1 gap(s), 10 bar(s) missing; the largest is 11h after " in err
    status, out, _ = run(capsys, "data", "info", "eth-1h", "--db", db, "--json")
    info = json.loads(out)
    assert (info["rows"], info["interval_ms"], info["gaps"]["count"]) == (190, HOUR, 1)
    assert info["largest_gaps"] == [
        {"after_ms": T0 + 99 * HOUR, "before_ms": T0 + 110 * HOUR, "missing": 10}
    ]
    status, out, err = run(capsys, "data", "resample", "eth-1h", "--to", "4h", "--db", db)
    assert status == 0, err
    assert "resampled into eth-4h version 1" in out
    exported = tmp_path / "out.csv"
    status, _, err = run(capsys, "data", "export", "eth-1h", "-o", str(exported), "--db", db)
    assert status == 0, err
    status, _, err = run(capsys, "data", "import", str(exported), "--name", "again", "--db", db)
    assert status == 0, err
    _, out, _ = run(capsys, "data", "info", "again", "--db", db, "--json")
    again = json.loads(out)
    assert (again["rows"], again["start_ms"], again["end_ms"]) == (
        190,
        info["start_ms"],
        info["end_ms"],
    )
    status, out, _ = run(capsys, "data", "retire", "eth-1h", "--db", db)
    assert status == 0
    _, out, _ = run(capsys, "data", "list", "--db", db, "--json")
    assert sorted(d["name"] for d in json.loads(out)) == ["again", "eth-4h"]


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        pytest.param(["import", "{csv}", "--name", "a\nb"], "name", id="import-name"),
        pytest.param(
            ["import", "{csv}", "--name", "ok", "--symbol", "x y"], "symbol", id="import-symbol"
        ),
        pytest.param(["info", "x", "--version", "0"], "--version", id="info-version"),
        pytest.param(["info", "x", "--gaps", "-1"], "--gaps", id="info-gaps"),
        pytest.param(["resample", "x", "--to", "7q"], "--to", id="resample-to"),
        pytest.param(
            ["resample", "x", "--to", "1h", "--name", "../x"], "--name", id="resample-name"
        ),
        pytest.param(["export", "x", "--version", "-2"], "--version", id="export-version"),
    ],
)
def test_bad_arguments_exit_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], field: str
) -> None:
    csv = tmp_path / "a.csv"
    csv.write_bytes(csv_rows(T0, 5))
    argv = [a.replace("{csv}", str(csv)) for a in argv]
    status, _, err = run(capsys, "data", *argv, "--db", str(tmp_path / "c.db"))
    assert status == 2
    assert err.startswith(f"coinbt: error: {field}: "), err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["info", "missing"], id="info-unknown"),
        pytest.param(["resample", "missing", "--to", "1h"], id="resample-unknown"),
        pytest.param(["retire", "missing"], id="retire-unknown"),
    ],
)
def test_unknown_datasets_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    db = str(tmp_path / "c.db")
    run(capsys, "data", "list", "--db", db)  # no database yet: refused, nothing created
    assert not (tmp_path / "c.db").exists()
    csv = tmp_path / "a.csv"
    csv.write_bytes(csv_rows(T0, 5))
    assert run(capsys, "data", "import", str(csv), "--name", "a", "--db", db, "--create")[0] == 0
    status, _, err = run(capsys, "data", *argv, "--db", db)
    assert status == 2
    assert err.startswith("coinbt: error: no dataset named 'missing'")


async def test_import_into_a_running_server_with_its_token(tmp_path: Path) -> None:
    csv = tmp_path / "sol.csv"
    csv.write_bytes(csv_rows(T0, 500))
    open_system = system_factory(tmp_path)
    async with open_system(workers=0) as system, server_url(system, token="s" * 20) as url:

        def cli(*extra: str) -> int:
            return main(["data", "import", str(csv), "--name", "sol-1h", "--url", url, *extra])

        assert await anyio.to_thread.run_sync(cli) == 2  # no token
        assert await system.catalog.all() == []
        assert await anyio.to_thread.run_sync(cli, "--token", "s" * 20) == 0
        (info,) = await system.catalog.all()
        assert (info.name, info.rows, info.source) == ("sol-1h", 500, "upload")


def test_the_readme_data_examples_run_on_a_fresh_clone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import shlex

    root = Path(__file__).parents[2]
    text = (root / "README.md").read_text()
    block = text.split("## Market data", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in block.strip().splitlines()]
    commands = [c for c in commands if c and " data fetch " not in c]  # fetch needs the internet
    assert len(commands) == 4
    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples").symlink_to(root / "examples")
    for command in commands:
        argv = shlex.split(command.removeprefix(".venv/bin/coinbt "))
        status, _, err = run(capsys, *argv)
        assert status == 0, (command, err)
    assert (tmp_path / "sample-4h.csv").read_text().startswith("timestamp,open,high,low,close")
