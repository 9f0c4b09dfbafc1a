"""``coinbt backtest``/``sweep`` with rules and plugin files: results, and exit 2 on bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from coinbt.cli import main
from coinbt.engine.plugins import reset_plugins

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "examples" / "momentum_plugin" / "coinbt_momentum.py"
ENTRY = "cross_above(sma(close, fast), sma(close, slow))"
EXIT = "cross_below(sma(close, fast), sma(close, slow))"


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    yield
    reset_plugins(registered=True)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_a_rule_on_the_command_line_matches_the_builtin(capsys: pytest.CaptureFixture[str]) -> None:
    common = ("backtest", "--synthetic", "5000:3", "-p", "fast=5", "-p", "slow=20", "--json")
    status, out, err = run_cli(capsys, *common, "--entry", ENTRY, "--exit", EXIT)
    assert status == 0, err
    status, builtin, err = run_cli(capsys, *common, "--strategy", "sma_cross")
    assert status == 0, err
    rules, plain = json.loads(out), json.loads(builtin)
    assert rules["fills"] == plain["fills"]
    assert rules["spec"]["rules"] == {"entry": ENTRY, "exit": EXIT}


def test_a_rule_sweep(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_cli(
        capsys,
        "sweep",
        "--synthetic",
        "3000",
        "-g",
        "fast=3,5",
        "-g",
        "slow=20,30",
        "--entry",
        ENTRY,
        "--exit",
        EXIT,
        "--json",
    )
    assert status == 0, err
    result = json.loads(out)
    assert result["evaluated"] == 4
    assert result["params"] == ["fast", "slow"]


def test_a_plugin_file(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_cli(
        capsys, "backtest", "--synthetic", "3000", "--strategy-file", str(EXAMPLE), "--json"
    )
    assert status == 0, err
    assert json.loads(out)["params"] == {"lookback": 20, "threshold": 0.0}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ("--entry", "smaa(close, 3) > 1", "--exit", "close < 1"),
            "coinbt: error: rules.entry, column 1: unknown function 'smaa' (did you mean 'sma'?)",
            id="unknown-function",
        ),
        pytest.param(
            ("--entry", "close > 1", "--exit", "sma(close, 10**9) > 1"),
            "coinbt: error: rules.exit, column 12: ",
            id="power-window",
        ),
        pytest.param(
            ("--entry", "sma(close, 5000) > 1", "--exit", "close < 1"),
            "coinbt: error: rules.entry, column 12: argument 'window' of sma is 5,000 bars; "
            "the data has only 3,000",
            id="window-over-bars",
        ),
        pytest.param(("--entry", "close > 1"), "rules.exit: missing", id="no-exit"),
        pytest.param(
            ("--strategy", "sma_cross", "--entry", "close > 1", "--exit", "close < 1"),
            "--strategy: --entry/--exit go with --strategy rules",
            id="rules-with-a-builtin",
        ),
        pytest.param((), "--strategy: give --strategy NAME", id="no-strategy"),
        pytest.param(
            ("--strategy-file", "/nonexistent/x.py"), "--strategy-file: no such file", id="no-file"
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    status, out, err = run_cli(capsys, "backtest", "--synthetic", "3000", *args)
    assert status == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert out == ""


def test_a_broken_plugin_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import no_such_module_anywhere\n")
    status, _, err = run_cli(capsys, "backtest", "--synthetic", "300", "--strategy-file", str(bad))
    assert status == 2
    assert "--strategy-file: cannot load" in err
    assert "ModuleNotFoundError" in err


async def test_submit_a_rule_to_a_server_and_a_bad_one_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import anyio

    from tests.api.helpers import server_url
    from tests.system import system_factory

    def cli(*argv: str) -> int:
        return main(list(argv))

    async with system_factory(tmp_path)(workers=1) as system, server_url(system) as url:
        common = ("submit", "--url", url, "--synthetic", "2000", "-p", "fast=5", "-p", "slow=20")
        status = await anyio.to_thread.run_sync(
            lambda: cli(*common, "--entry", ENTRY, "--exit", EXIT, "--json", "--wait")
        )
        assert status == 0
        lines = capsys.readouterr().out.splitlines()
        assert json.loads(lines[-1])["status"] == "completed"
        status = await anyio.to_thread.run_sync(
            lambda: cli(*common, "--entry", "cross_above(sma(close, fast), close", "--exit", EXIT)
        )
        assert status == 2
        err = capsys.readouterr().err
        assert err.startswith("coinbt: error: ")
        assert "rules.entry" in err
        assert len(await system.read.tasks(limit=10)) == 1
