"""``coinbt data fetch binance`` against a Binance-like archive on a real loopback HTTP server."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from coinbt.cli import main
from tests.data.archive import Archive, serve_archive

MONTH = "data/spot/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2024-{:02d}.zip"


@pytest.fixture
def archive() -> Archive:
    with serve_archive() as served:
        yield served  # type: ignore[misc]


def fetch(
    capsys: pytest.CaptureFixture[str], archive: Archive, tmp_path: Path, *extra: str
) -> tuple[int, str, str]:
    argv = ["data", "fetch", "binance", "BTCUSDT", "1h", "--base-url", archive.url]
    argv += ["--db", str(tmp_path / "coinbt.db"), "--create", "--today", "2024-03-03", *extra]
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def info(capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str = "BTCUSDT-1h") -> dict:
    status = main(["data", "info", name, "--db", str(tmp_path / "coinbt.db"), "--json"])
    out, err = capsys.readouterr()
    assert status == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def datasets(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> list[dict]:
    status = main(["data", "list", "--db", str(tmp_path / "coinbt.db"), "--json"])
    out, _ = capsys.readouterr()
    assert status == 0
    return json.loads(out)  # type: ignore[no-any-return]


def zip_gets(archive: Archive) -> list[str]:
    return [p for p, _ in archive.requests if p.endswith(".zip")]


def test_months_then_days_verified_imported_then_updated(
    archive: Archive, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jan = archive.add_month("BTCUSDT", "1h", date(2024, 1, 1))
    feb = archive.add_month("BTCUSDT", "1h", date(2024, 2, 1))
    mar1 = archive.add_day("BTCUSDT", "1h", date(2024, 3, 1))
    mar2 = archive.add_day("BTCUSDT", "1h", date(2024, 3, 2))
    status, out, err = fetch(capsys, archive, tmp_path, "--from", "2024-01", "--to", "2024-03")
    assert status == 0, err
    assert "4 archive file(s), 4 downloaded" in out
    got = info(capsys, tmp_path)
    assert got["rows"] == len(jan) + len(feb) + len(mar1) + len(mar2)
    assert got["version"] == 1
    assert got["interval_ms"] == 3_600_000
    assert got["gaps"]["count"] == 0
    files = [p["file"].removeprefix(archive.url + "/") for p in got["provenance"]]
    assert files == [
        MONTH.format(1),
        MONTH.format(2),
        *(f"data/spot/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2024-03-0{d}.zip" for d in (1, 2)),
    ]
    import hashlib

    assert [p["sha256"] for p in got["provenance"]] == [
        hashlib.sha256(archive.files[f]).hexdigest() for f in files
    ]
    # A day later: --update fetches only the new day; the cached files are not downloaded again.
    mar3 = archive.add_day("BTCUSDT", "1h", date(2024, 3, 3))
    archive.requests.clear()
    status, out, err = fetch(capsys, archive, tmp_path, "--update", "--today", "2024-03-04")
    assert status == 0, err
    assert zip_gets(archive) == ["data/spot/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2024-03-03.zip"]
    updated = info(capsys, tmp_path)
    assert updated["version"] == 2
    assert updated["rows"] == got["rows"] + len(mar3)
    assert updated["end_ms"] == int(mar3.ts[-1])
    first = main(
        [
            "data",
            "info",
            "BTCUSDT-1h",
            "--version",
            "1",
            "--json",
            "--db",
            str(tmp_path / "coinbt.db"),
        ]
    )
    assert first == 0
    assert json.loads(capsys.readouterr().out)["rows"] == got["rows"]  # version 1 is unchanged


def test_a_dropped_connection_resumes_with_a_range_request(
    archive: Archive, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bars = archive.add_month("BTCUSDT", "1h", date(2024, 1, 1))
    archive.drop_after[MONTH.format(1)] = 1000
    status, _, err = fetch(
        capsys, archive, tmp_path, "--from", "2024-01", "--to", "2024-01", "--timeout", "0.3"
    )
    assert status == 0, err
    ranges = [r for p, r in archive.requests if p == MONTH.format(1)]
    assert ranges == ["", "bytes=1000-"]
    assert info(capsys, tmp_path)["rows"] == len(bars)


def test_a_checksum_mismatch_is_refused_and_named(
    archive: Archive, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive.add_month("BTCUSDT", "1h", date(2024, 1, 1))
    archive.add_month("BTCUSDT", "1h", date(2024, 2, 1))
    archive.put(MONTH.format(2), archive.files[MONTH.format(2)], checksum=b"0" * 64)
    status, _out, err = fetch(capsys, archive, tmp_path, "--from", "2024-01", "--to", "2024-02")
    assert status == 2
    assert err.startswith("coinbt: error: BTCUSDT-1h-2024-02.zip: checksum mismatch")
    assert err.count("\n") == 1
    assert datasets(capsys, tmp_path) == []
    leftovers = [p.name for p in (tmp_path / "downloads").rglob("*2024-02*")]
    assert leftovers == []  # the bad download is deleted


def test_a_corrupted_zip_is_refused_and_nothing_imported(
    archive: Archive, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive.add_month("BTCUSDT", "1h", date(2024, 1, 1))
    archive.put(MONTH.format(2), b"PK\x03\x04 this is not really a zip file" * 50)
    status, _, err = fetch(capsys, archive, tmp_path, "--from", "2024-01", "--to", "2024-02")
    assert status == 2
    assert "BTCUSDT-1h-2024-02.zip: not a readable zip archive" in err
    assert datasets(capsys, tmp_path) == []


@pytest.mark.parametrize(
    ("symbol", "message"),
    [
        pytest.param("BTCUSDT", "BTCUSDT-1h-2024-02.zip (404)", id="missing-month"),
        pytest.param("ETHUSDT", "ETHUSDT-1h-2024-0", id="unknown-symbol"),  # whichever first
    ],
)
def test_missing_files_are_a_clear_error(
    archive: Archive,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    symbol: str,
    message: str,
) -> None:
    archive.add_month("BTCUSDT", "1h", date(2024, 1, 1))
    archive.add_month("BTCUSDT", "1h", date(2024, 3, 1))
    argv = [
        "data",
        "fetch",
        "binance",
        symbol,
        "1h",
        "--base-url",
        archive.url,
        "--from",
        "2024-01",
        "--to",
        "2024-03",
        "--db",
        str(tmp_path / "coinbt.db"),
        "--create",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("coinbt: error: not in the archive: ")
    assert message in err
    assert ".zip (404)" in err
    assert datasets(capsys, tmp_path) == []


def test_a_silent_server_times_out_instead_of_hanging(
    archive: Archive, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive.add_month("BTCUSDT", "1h", date(2024, 1, 1))
    archive.stall.add(MONTH.format(1))
    status, _, err = fetch(
        capsys, archive, tmp_path, "--from", "2024-01", "--to", "2024-01", "--timeout", "0.2"
    )
    assert status == 2
    assert "timed out (3 attempts; rerun to resume)" in err
    assert datasets(capsys, tmp_path) == []


def test_interrupted_then_rerun_fetches_only_what_is_missing(
    archive: Archive, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jan = archive.add_month("BTCUSDT", "1h", date(2024, 1, 1))
    feb = archive.add_month("BTCUSDT", "1h", date(2024, 2, 1))
    archive.stall.add(MONTH.format(2))
    status, _, _ = fetch(
        capsys, archive, tmp_path, "--from", "2024-01", "--to", "2024-02", "--timeout", "0.2"
    )
    assert status == 2
    archive.stall.clear()
    archive.requests.clear()
    status, out, err = fetch(capsys, archive, tmp_path, "--from", "2024-01", "--to", "2024-02")
    assert status == 0, err
    assert zip_gets(archive) == [MONTH.format(2)]  # January came from the cache
    assert "2 archive file(s), 1 downloaded, 1 from the cache" in out
    got = info(capsys, tmp_path)
    assert got["rows"] == len(jan) + len(feb)
    assert got["end_ms"] == int(np.asarray(feb.ts)[-1])


@pytest.mark.parametrize(
    ("args", "field"),
    [
        pytest.param(["BTC/USDT", "1h", "--from", "2024-01"], "SYMBOL", id="symbol"),
        pytest.param(["BTCUSDT", "7m", "--from", "2024-01"], "INTERVAL", id="interval"),
        pytest.param(["BTCUSDT", "1h", "--from", "2024-13"], "--from", id="from-month"),
        pytest.param(["BTCUSDT", "1h", "--from", "24-01"], "--from", id="from-format"),
        pytest.param(
            ["BTCUSDT", "1h", "--from", "2024-02", "--to", "2024-01"], "--from", id="from-after-to"
        ),
        pytest.param(
            ["BTCUSDT", "1h", "--from", "2024-01", "--to", "2024-02-30"], "--to", id="to-day"
        ),
        pytest.param(["BTCUSDT", "1h", "--from", "2099-01"], "--from", id="from-future"),
        pytest.param(["BTCUSDT", "1h"], "--from", id="no-from"),
        pytest.param(["BTCUSDT", "1h", "--from", "2024-01", "--jobs", "0"], "--jobs", id="jobs"),
        pytest.param(
            ["BTCUSDT", "1h", "--from", "2024-01", "--timeout", "-1"], "--timeout", id="timeout"
        ),
        pytest.param(
            ["BTCUSDT", "1h", "--from", "2024-01", "--base-url", "ftp://x"],
            "--base-url",
            id="base-url",
        ),
        pytest.param(["BTCUSDT", "1h", "--from", "2024-01", "--name", "a b"], "name", id="name"),
    ],
)
def test_bad_arguments_exit_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], field: str
) -> None:
    argv = [
        "data",
        "fetch",
        "binance",
        *args,
        "--db",
        str(tmp_path / "c.db"),
        "--create",
        "--today",
        "2024-03-03",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"coinbt: error: {field}: "), err
    assert err.count("\n") == 1
    assert not (tmp_path / "c.db").exists() or datasets_in(tmp_path / "c.db") == 0


def datasets_in(db: Path) -> int:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM datasets").fetchone()[0])


@pytest.mark.parametrize("market", ["xx", ""])
def test_a_bad_market_is_an_argparse_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], market: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "fetch", "binance", "BTCUSDT", "1h", "--from", "2024-01", "--market", market])
    assert exit_info.value.code == 2
    assert "--market" in capsys.readouterr().err


async def test_a_fetched_dataset_backtests_through_the_service(tmp_path: Path) -> None:
    import anyio

    from coinbt.events import DataSpec, TaskSpec
    from tests.system import system_factory

    with serve_archive() as archive:
        jan = archive.add_month("BTCUSDT", "1h", date(2024, 1, 1))
        argv = [
            "data",
            "fetch",
            "binance",
            "BTCUSDT",
            "1h",
            "--from",
            "2024-01",
            "--to",
            "2024-01",
            "--base-url",
            archive.url,
            "--db",
            str(tmp_path / "coinbt.db"),
            "--create",
        ]
        assert await anyio.to_thread.run_sync(main, argv) == 0
    async with system_factory(tmp_path)(workers=1) as system:
        spec = TaskSpec(
            strategy="sma_cross",
            params={"fast": 5, "slow": 20},
            data=DataSpec(dataset="BTCUSDT-1h"),
        )
        task = await system.submit(spec)
        await system.drain()
        done = await system.task(task.task_id)
        assert done.status == "completed", done.error
        assert done.spec.data.version == 1
        assert done.result is not None
        assert done.result["symbol"] == "BTCUSDT"
        assert len(jan) == 744


def test_progress_shows_on_a_terminal_only(archive: Archive, tmp_path: Path) -> None:
    from tests.cli.terminal import on_a_terminal

    archive.add_month("BTCUSDT", "1h", date(2024, 1, 1))
    archive.add_month("BTCUSDT", "1h", date(2024, 2, 1))
    argv = [
        "data",
        "fetch",
        "binance",
        "BTCUSDT",
        "1h",
        "--from",
        "2024-01",
        "--to",
        "2024-02",
        "--base-url",
        archive.url,
        "--db",
        str(tmp_path / "coinbt.db"),
        "--create",
    ]
    status, out, terminal = on_a_terminal(*argv)
    assert status == 0, terminal
    assert "fetching BTCUSDT-1h: 2 of 2 files (100%)" in terminal
    assert "\r\x1b[K" in terminal
    assert "\r" not in out  # standard output holds the result only
    assert "fetched BTCUSDT-1h version 1" in out


def test_last_months_daily_files_stand_in_until_its_monthly_file_is_published(
    archive: Archive, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jan = archive.add_month("BTCUSDT", "1h", date(2024, 1, 1))
    feb = [archive.add_day("BTCUSDT", "1h", date(2024, 2, d)) for d in range(1, 30)]
    mar1 = archive.add_day("BTCUSDT", "1h", date(2024, 3, 1))
    status, out, err = fetch(
        capsys, archive, tmp_path, "--from", "2024-01", "--to", "2024-03", "--today", "2024-03-02"
    )
    assert status == 0, err
    assert "31 archive file(s)" in out  # January, February's 29 days, March 1st
    got = info(capsys, tmp_path)
    assert got["rows"] == len(jan) + sum(len(d) for d in feb) + len(mar1)
    assert got["gaps"]["count"] == 0
    # An older month has no such fallback: its absence is an error.
    archive.files = {k: v for k, v in archive.files.items() if "2024-01" not in k}
    status, _, err = fetch(
        capsys,
        archive,
        tmp_path,
        "--from",
        "2024-01",
        "--to",
        "2024-01",
        "--today",
        "2024-03-02",
        "--name",
        "jan-only",
    )
    assert status == 2
    assert "BTCUSDT-1h-2024-01.zip (404)" in err
