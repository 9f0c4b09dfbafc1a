"""``coinbt export`` and ``coinbt report`` against a real server on loopback, as subprocesses."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import anyio
import pytest

from tests.api.helpers import server_url
from tests.system import OpenSystem, system_factory, tiny

TOKEN = "t0ken"


@pytest.fixture
def open_system(tmp_path: Path) -> OpenSystem:
    return system_factory(tmp_path)


async def coinbt(*args: str) -> tuple[int, str, str]:
    with anyio.fail_after(30):
        done = await anyio.run_process(
            [sys.executable, "-m", "coinbt", *args], check=False, stdin=None
        )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_export_and_report_download_from_the_server(
    open_system: OpenSystem, tmp_path: Path
) -> None:
    async with open_system(workers=1) as system, server_url(system, TOKEN) as url:
        view = await system.submit(tiny(seed=2, bars=2000))
        await system.drain()
        common = ("--url", url, "--token", TOKEN)
        code, out, err = await coinbt("export", view.task_id, "--what", "trades", *common)
        assert code == 0, err
        trades = list(csv.DictReader(io.StringIO(out)))
        positions = await system.positions(view.task_id)
        assert len(trades) == positions[0].trades
        assert {t["side"] for t in trades} == {"long"}

        target = tmp_path / "equity.csv"
        code, _, err = await coinbt(
            "export", view.task_id, "--what", "equity", "-o", str(target), *common
        )
        assert code == 0
        assert "wrote" in err
        assert len(target.read_text().splitlines()) == 2001

        report = tmp_path / "report.html"
        code, _, err = await coinbt("report", view.task_id, "-o", str(report), *common)
        assert code == 0, err
        completed = (await system.store.read_stream(view.task_id))[-1]
        assert completed.hash in report.read_text()


async def test_export_errors_are_one_line_and_exit_2(
    open_system: OpenSystem, tmp_path: Path
) -> None:
    async with open_system(workers=1) as system, server_url(system, TOKEN) as url:
        view = await system.submit(tiny(seed=2))
        await system.drain()
        common = ("--url", url, "--token", TOKEN)
        code, out, err = await coinbt("export", "missing-task", *common)
        assert code == 2
        assert out == ""
        assert err.startswith("coinbt: error: ")
        assert "HTTP 404" in err
        code, _, err = await coinbt("export", view.task_id, "--url", url, "--token", "wrong")
        assert code == 2
        assert "wrong API token" in err
        code, _, err = await coinbt("export", view.task_id, "--what", "orders", *common)
        assert code == 2
        assert "--what" in err
        code, _, err = await coinbt(
            "report", view.task_id, "-o", str(tmp_path / "no" / "dir" / "r.html"), *common
        )
        assert code == 2
        assert err.startswith("coinbt: error: -o: cannot write")
        assert len(err.strip().splitlines()) == 1


async def test_export_cannot_reach_a_server() -> None:
    code, _, err = await coinbt("export", "r1", "--url", "http://127.0.0.1:9")
    assert code == 2
    assert "cannot reach coinbt at http://127.0.0.1:9" in err
