"""``coinbt backtest`` and ``coinbt sweep`` with --direction, stops, sizing and portfolios."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coinbt import engine
from coinbt.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_a_short_with_a_trailing_stop_equals_the_python_api(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, _ = run_cli(
        capsys,
        "backtest", "--synthetic", "3000:2", "--strategy", "sma_cross",
        "--direction", "short", "--sl-stop", "0.002", "--trail", "--json",
    )  # fmt: skip
    assert status == 0
    got = json.loads(out)
    spec = engine.BacktestSpec("sma_cross", {}, direction="short", sl_stop=0.002, sl_trail=True)
    want = engine.run(spec, engine.synthetic(3000, seed=2))
    assert got["final_equity"] == want.final_equity
    assert [f["reason"] for f in got["fills"]] == [f["reason"] for f in want.fills.to_dicts()]
    assert "trailing_stop" in {f["reason"] for f in got["fills"]}
    assert got["spec"]["direction"] == "short"
    (position,) = got["positions"]
    assert position["realized_pnl"] + position["unrealized_pnl"] == pytest.approx(
        got["final_equity"] - 10_000.0, rel=1e-9
    )


def test_a_two_asset_portfolio_from_two_csv_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    paths = []
    for seed, name in ((1, "BTC"), (2, "ETH")):
        bars = engine.synthetic(2000, seed=seed)
        path = tmp_path / f"{name}.csv"
        columns = (bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume)
        rows = zip(*(c.tolist() for c in columns), strict=True)
        text = "".join(f"{t},{o!r},{h!r},{lo!r},{c!r},{v!r}\n" for t, o, h, lo, c, v in rows)
        path.write_text("timestamp,open,high,low,close,volume\n" + text)
        paths.append(str(path))
    status, out, _ = run_cli(
        capsys,
        "backtest", "--data", paths[0], "--data", paths[1], "--strategy", "sma_cross",
        "--size-type", "target_percent", "--size", "0.5", "--tp-stop", "0.01", "--json",
    )  # fmt: skip
    assert status == 0
    got = json.loads(out)
    assert {f["symbol"] for f in got["fills"]} == {"BTC", "ETH"}
    contributions = sum(p["contribution"] for p in got["positions"])
    assert contributions == pytest.approx(got["total_return"], rel=1e-9)
    status, out, _ = run_cli(
        capsys,
        "backtest", "--data", paths[0], "--data", paths[1], "--strategy", "sma_cross",
        "--size-type", "target_percent", "--size", "0.5", "--tp-stop", "0.01",
    )  # fmt: skip
    assert status == 0
    assert "contrib." in out
    assert "ETH" in out


def test_a_sweep_grids_the_stop(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_cli(
        capsys,
        "sweep", "--synthetic", "3000", "--strategy", "sma_cross",
        "-g", "sl_stop=0.001:0.003:0.001", "--direction", "both", "--json",
    )  # fmt: skip
    assert status == 0
    rows = json.loads(out)["rows"]
    assert sorted(r["sl_stop"] for r in rows) == [0.001, 0.002, 0.003]
    one = engine.run(
        engine.BacktestSpec("sma_cross", {}, direction="both", sl_stop=0.002),
        engine.synthetic(3000, seed=1),
    )
    (row,) = [r for r in rows if r["sl_stop"] == 0.002]
    assert row["final_equity"] == one.final_equity


BAD = [
    pytest.param(["--trail"], "sl_trail", id="trail-without-sl-stop"),
    pytest.param(["--sl-stop", "1"], "sl_stop", id="sl-stop-1"),
    pytest.param(["--size", "-1", "--size-type", "value"], "size", id="negative-size"),
    pytest.param(["--size", "0.5"], "size", id="size-with-all"),
    pytest.param(["--direction", "up"], "direction", id="direction"),
    pytest.param(
        ["--size-type", "percent", "--size", "0.5", "--direction", "both"],
        "size_type",
        id="percent-both",
    ),
    pytest.param(["--symbols", "2"], "size_type", id="all-with-two-assets"),
    pytest.param(["--symbols", "0"], "--symbols", id="zero-symbols"),
]


@pytest.mark.parametrize(("extra", "field"), BAD)
def test_bad_options_exit_2_naming_the_field(
    capsys: pytest.CaptureFixture[str], extra: list[str], field: str
) -> None:
    status, out, err = run_cli(
        capsys, "backtest", "--synthetic", "500", "--strategy", "sma_cross", *extra
    )
    assert status == 2
    assert out == ""
    assert err.startswith(f"coinbt: error: {field}")
    assert err.count("\n") == 1


def test_a_split_sweep_refuses_stops(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run_cli(
        capsys,
        "sweep", "--synthetic", "500", "--strategy", "sma_cross", "-g", "fast=5,10",
        "--sl-stop", "0.01", "--workers", "1",
    )  # fmt: skip
    assert status == 2
    assert err.startswith("coinbt: error: --workers")
