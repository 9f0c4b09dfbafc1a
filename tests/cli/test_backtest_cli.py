"""``coinbt backtest`` and ``coinbt sweep``: output for people and programs, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from coinbt.cli import main
from coinbt.cli.backtest import STRATEGY_NAMES, parse_grid_value, parse_param_value
from coinbt.engine import STRATEGIES, BacktestSpec, run, synthetic
from tests.cli.terminal import on_a_terminal


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_backtest_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_cli(
        capsys,
        "backtest",
        "--synthetic",
        "5000:2",
        "--strategy",
        "sma_cross",
        "-p",
        "fast=5",
        "-p",
        "slow=20",
        "--fills",
        "3",
    )
    assert status == 0, err
    assert "sma_cross (fast=5, slow=20) on 5,000 synthetic 1m bars (seed 2)" in out
    for name in ("final_equity", "sharpe", "max_drawdown", "win_rate"):
        assert name in out
    assert "time (UTC)" in out
    assert " buy " in out
    assert "more (--fills N shows more, --json all)" in out


def test_backtest_json_matches_the_python_api(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_cli(
        capsys,
        "backtest",
        "--synthetic",
        "3000:4",
        "--strategy",
        "rsi_reversion",
        "-p",
        "lower=25",
        "--fee-bps",
        "5",
        "--slippage-bps",
        "1",
        "--fill",
        "close",
        "--cash",
        "2500",
        "--json",
    )
    assert status == 0
    data = json.loads(out)
    spec = BacktestSpec(
        "rsi_reversion", {"lower": 25}, cash=2500, fee_bps=5, slippage_bps=1, fill="close"
    )
    result = run(spec, synthetic(3_000, seed=4))
    assert data["final_equity"] == result.final_equity
    assert data["digest"] == result.digest()
    assert data["fills"] == result.fills.to_dicts()
    assert data["metrics"] == result.metrics
    assert data["params"] == {"period": 14, "lower": 25.0, "upper": 70.0}
    assert data["data"] == {"synthetic": {"bars": 3000, "seed": 4, "interval": "1m"}}


def test_backtest_reads_a_csv_and_overrides_the_interval(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bars.csv"
    bars = synthetic(200, seed=8)
    lines = ["timestamp,open,high,low,close,volume"]
    columns = [a.tolist() for a in (bars.ts, bars.open, bars.high, bars.low, bars.close)]
    for ts, o, h, lo, c in zip(*columns, strict=True):
        lines.append(f"{ts},{o!r},{h!r},{lo!r},{c!r},1")
    path.write_text("\n".join(lines) + "\n")
    status, out, _ = run_cli(
        capsys,
        "backtest",
        "--data",
        str(path),
        "--strategy",
        "buy_and_hold",
        "--interval",
        "1d",
        "--json",
    )
    assert status == 0
    data = json.loads(out)
    assert data["data"] == {"csv": str(path), "bars": 200, "interval_ms": 86_400_000}
    assert data["num_fills"] == 1


def test_sweep_prints_a_ranked_table(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_cli(
        capsys,
        "sweep",
        "--synthetic",
        "5000",
        "--strategy",
        "sma_cross",
        "-g",
        "fast=5:20:5",
        "-g",
        "slow=10,20,40",
        "--top",
        "4",
    )
    assert status == 0, err
    assert "12 combinations" not in out  # 4 x 3 = 12, minus fast >= slow
    assert "8 combinations, 4 skipped; highest sharpe first" in out
    assert "skipped 4: params.fast: must be less than slow" in out
    assert out.count("\n") > 6
    assert "... 4 more (--top N)" in out


def test_sweep_json(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_cli(
        capsys,
        "sweep",
        "--synthetic",
        "3000",
        "--strategy",
        "bollinger_breakout",
        "-g",
        "k=1.0:2.0:0.5",
        "--sort",
        "total_return",
        "--ascending",
        "--json",
    )
    assert status == 0
    data = json.loads(out)
    assert [row["k"] for row in data["rows"]] != []
    assert {row["k"] for row in data["rows"]} == {1.0, 1.5, 2.0}
    returns = [row["total_return"] for row in data["rows"]]
    assert returns == sorted(returns)


BAD = [
    pytest.param(
        ["backtest", "--synthetic", "100", "--strategy", "nope"],
        "strategy: unknown strategy 'nope'",
        id="unknown-strategy",
    ),
    pytest.param(
        ["backtest", "--synthetic", "100", "--strategy", "sma_cross", "-p", "fast"],
        "-p: 'fast': expected KEY=VALUE",
        id="bad-p-syntax",
    ),
    pytest.param(
        ["backtest", "--synthetic", "100", "--strategy", "sma_cross", "-p", "fast=x"],
        "params.fast: must be an integer, got the string 'x'",
        id="bad-p-type",
    ),
    pytest.param(
        ["backtest", "--synthetic", "100", "--strategy", "sma_cross", "-p", "fast=40"],
        "params.fast: must be less than slow",
        id="fast-ge-slow",
    ),
    pytest.param(
        [
            "backtest",
            "--synthetic",
            "100",
            "--strategy",
            "sma_cross",
            "-p",
            "fast=1",
            "-p",
            "fast=2",
        ],
        "params.fast: given twice",
        id="p-twice",
    ),
    pytest.param(
        ["backtest", "--synthetic", "100", "--strategy", "sma_cross", "-p", "slow=200"],
        "params.slow: sma_cross with slow = 200 needs at least 201 bars; the data has 100",
        id="window-too-long",
    ),
    pytest.param(
        ["backtest", "--synthetic", "100", "--strategy", "sma_cross", "--fee-bps", "-1"],
        "fee_bps: must not be negative",
        id="negative-fee",
    ),
    pytest.param(
        ["backtest", "--synthetic", "100", "--strategy", "sma_cross", "--cash", "0"],
        "cash: must be positive",
        id="zero-cash",
    ),
    pytest.param(
        ["backtest", "--synthetic", "abc", "--strategy", "sma_cross"],
        "--synthetic: 'abc': expected BARS or BARS:SEED",
        id="bad-synthetic",
    ),
    pytest.param(
        ["backtest", "--synthetic", "0", "--strategy", "sma_cross"],
        "--synthetic: 0 bars: must be between 1 and",
        id="zero-bars",
    ),
    pytest.param(
        ["backtest", "--synthetic", "100:-3", "--strategy", "sma_cross"],
        "seed -3: must not be negative",
        id="negative-seed",
    ),
    pytest.param(
        ["backtest", "--synthetic", "100", "--interval", "7x", "--strategy", "sma_cross"],
        "interval: invalid interval '7x'",
        id="bad-interval",
    ),
    pytest.param(
        ["backtest", "--data", "/no/such/file.csv", "--strategy", "sma_cross"],
        "cannot read /no/such/file.csv: No such file",
        id="missing-file",
    ),
    pytest.param(
        ["sweep", "--synthetic", "100", "--strategy", "sma_cross", "-g", "fast=a:b"],
        "grid.fast: 'a:b' is not a range",
        id="bad-range",
    ),
    pytest.param(
        ["sweep", "--synthetic", "100", "--strategy", "sma_cross", "-g", "fast=5:1"],
        "grid.fast: '5:1': the stop is below the start",
        id="empty-range",
    ),
    pytest.param(
        ["sweep", "--synthetic", "100", "--strategy", "sma_cross", "-g", "fast=1:5:0"],
        "the step must be positive",
        id="zero-step",
    ),
    pytest.param(
        [
            "sweep",
            "--synthetic",
            "100",
            "--strategy",
            "sma_cross",
            "-g",
            "fast=50",
            "-g",
            "slow=20",
        ],
        "grid: no valid parameter combination",
        id="nothing-valid",
    ),
    pytest.param(
        ["sweep", "--synthetic", "100", "--strategy", "sma_cross", "-g", "speed=1"],
        "grid.speed: unknown parameter",
        id="unknown-grid-param",
    ),
    pytest.param(
        ["sweep", "--synthetic", "100", "--strategy", "sma_cross", "--sort", "luck"],
        "sort_by: unknown metric or parameter 'luck'",
        id="bad-sort",
    ),
]


@pytest.mark.parametrize(("argv", "message"), BAD)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run_cli(capsys, *argv)
    assert status == 2
    assert out == ""
    assert err.startswith("coinbt: error: ")
    assert message in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_a_bad_csv_row_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n1704067200000,1,2,1,1.5,1\n1704067260000,1,2,1,3,1\n"
    )
    status, _, err = run_cli(capsys, "backtest", "--data", str(path), "--strategy", "buy_and_hold")
    assert status == 2
    assert (
        err == f"coinbt: error: {path}: row 3, column 'close': "
        "close 3.0 is outside [low 1.0, high 2.0]\n"
    )


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        pytest.param(["backtest"], "is required", id="no-data"),
        pytest.param(
            ["backtest", "--data", "a.csv", "--synthetic", "5", "--strategy", "x"],
            "not allowed with argument",
            id="both-sources",
        ),
        pytest.param(
            ["backtest", "--synthetic", "5", "--strategy", "x", "--fill", "open"],
            "invalid choice",
            id="bad-fill",
        ),
    ],
)
def test_argparse_errors_exit_2(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert fragment in capsys.readouterr().err


@pytest.mark.parametrize("command", ["backtest", "sweep"])
def test_help_has_examples_and_every_strategy(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text
    assert f"coinbt {command} --synthetic" in text
    assert set(STRATEGY_NAMES) == set(STRATEGIES)
    for name in STRATEGIES:
        assert name in text


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param("10", 10, id="int"),
        pytest.param("-3", -3, id="negative-int"),
        pytest.param("2.5", 2.5, id="float"),
        pytest.param("1e3", 1000.0, id="exponent"),
        pytest.param("true", True, id="true"),
        pytest.param("False", False, id="false"),
        pytest.param("nan", "nan", id="nan-stays-text"),
        pytest.param("fast", "fast", id="text"),
    ],
)
def test_param_values(text: str, value: object) -> None:
    parsed = parse_param_value(text)
    assert parsed == value
    assert type(parsed) is type(value)


@pytest.mark.parametrize(
    ("text", "values"),
    [
        pytest.param("5:50:5", list(range(5, 51, 5)), id="int-range"),
        pytest.param("20:200:20", list(range(20, 201, 20)), id="int-range-2"),
        pytest.param("1:3", [1, 2, 3], id="default-step"),
        pytest.param("0.5:1.5:0.25", [0.5, 0.75, 1.0, 1.25, 1.5], id="float-range"),
        pytest.param("0.1:0.3:0.1", [0.1, 0.2, 0.3], id="float-rounding"),
        pytest.param("7,14,21", [7, 14, 21], id="list"),
        pytest.param("9", [9], id="single"),
    ],
)
def test_grid_values(text: str, values: list[object]) -> None:
    assert parse_grid_value(text) == values


def test_the_documented_command_works_in_a_new_process() -> None:
    argv = [
        sys.executable,
        "-m",
        "coinbt",
        "backtest",
        "--synthetic",
        "100000:1",
        "--strategy",
        "sma_cross",
        "-p",
        "fast=10",
        "-p",
        "slow=30",
        "--json",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    for key in (
        "final_equity",
        "total_return",
        "max_drawdown",
        "num_fills",
        "num_trades",
        "total_fees",
        "metrics",
        "fills",
    ):
        assert key in data
    assert data["num_fills"] == len(data["fills"]) > 0
    assert set(data["fills"][0]) == {"bar", "ts", "side", "qty", "price", "fee", "reason"}
    assert 0 <= data["max_drawdown"] <= 1


def test_bad_input_in_a_new_process_has_no_traceback() -> None:
    argv = [
        sys.executable,
        "-m",
        "coinbt",
        "backtest",
        "--synthetic",
        "100",
        "--strategy",
        "sma_cross",
        "-p",
        "fast=50",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 2
    assert done.stderr == "coinbt: error: params.fast: must be less than slow (30), got 50\n"


@pytest.mark.parametrize("split", [[], ["--workers", "1"]], ids=["in-process", "on-workers"])
def test_sweep_shows_progress_on_a_terminal(split: list[str]) -> None:
    args = ["sweep", "--synthetic", "5000", "--strategy", "sma_cross", "-g", "fast=5:20:5"]
    code, out, terminal = on_a_terminal(*args, *split)
    assert code == 0, terminal
    assert "\r\x1b[Ksweeping sma_cross: 100%" in terminal
    assert terminal.endswith("\r\x1b[K")
    assert "4 combinations" in out
