"""The client commands against a real server on loopback: times as ISO-8601 in every form the
docs promise, what `list` and `status` show, and an example in every command's --help."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import anyio
import pytest

from coinbt.cli import build_parser, main
from coinbt.cli.client import ClientError, iso_time
from tests.api.helpers import server_url
from tests.backends.test_datasets import csv_of
from tests.system import system_factory, tiny


async def run_cli(argv: list[str]) -> int:
    return await anyio.to_thread.run_sync(main, argv)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2024-01-01", "2024-01-01T00:00:00Z", id="date"),
        pytest.param("2024-01-01T12:30", "2024-01-01T12:30:00Z", id="minutes"),
        pytest.param("2024-01-01 12:30", "2024-01-01T12:30:00Z", id="space"),
        pytest.param("2024-01-01T12:30:15.5Z", "2024-01-01T12:30:15.500000Z", id="fraction-z"),
        pytest.param("2024-01-01T12:30+02:00", "2024-01-01T10:30:00Z", id="offset"),
        pytest.param("2023-12-31T23:00:00-05:00", "2024-01-01T04:00:00Z", id="negative-offset"),
        pytest.param("20240101T1230Z", "2024-01-01T12:30:00Z", id="basic-format"),
    ],
)
def test_start_and_end_take_the_iso_8601_forms(text: str, expected: str) -> None:
    assert iso_time(text, "--start") == expected


@pytest.mark.parametrize("text", ["yesterday", "2024-13-01", "1704067200000", ""])
def test_a_time_that_is_not_iso_8601_names_the_option(text: str) -> None:
    with pytest.raises(ClientError, match=r"^--end: not an ISO-8601 time"):
        iso_time(text, "--end")


async def test_submit_on_a_dataset_range_list_and_status_show_strategy_params_sharpe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with system_factory(tmp_path)(workers=1) as system, server_url(system) as url:
        info = await system.catalog.import_bytes("BTCUSDT-1h", csv_of(300))
        # The dataset starts at the synthetic series' first bar; a range in another zone.
        argv = ["submit", "--url", url, "--strategy", "sma_cross", "-p", "fast=5", "-p"]
        argv += ["slow=20", "--dataset", info.name, "--start", "2024-01-01"]
        argv += ["--end", "2024-01-10T12:30+02:00", "--json", "--wait"]
        assert await run_cli(argv) == 0, capsys.readouterr().err
        lines = capsys.readouterr().out.splitlines()
        done = json.loads(lines[-1])
        assert done["status"] == "completed"
        assert done["spec"]["data"]["start"] == "2024-01-01T00:00:00Z"
        assert done["spec"]["data"]["end"] == "2024-01-10T10:30:00Z"
        other = await system.submit(tiny(seed=3))
        await system.drain()
        assert await run_cli(["list", "--url", url]) == 0
        listed = capsys.readouterr().out.splitlines()
        assert len(listed) == 2
        assert listed[0].startswith(other.task_id)
        for line in listed:
            assert "completed" in line
            assert "sma_cross(fast=5,slow=20)" in line
            assert " sharpe " in line
        assert await run_cli(["status", "--url", url, done["task_id"]]) == 0
        shown = capsys.readouterr().out
        assert shown.startswith(f"{done['task_id']}  completed")
        assert "sma_cross(fast=5,slow=20)" in shown
        sharpe = done["result"]["metrics"]["sharpe"]
        assert f"sharpe {sharpe:.2f}" in shown
        # A bad time is one line naming the option; nothing is submitted.
        before = await system.store.last_position()
        bad = ["submit", "--url", url, "--strategy", "sma_cross", "--dataset", info.name]
        assert await run_cli([*bad, "--start", "last tuesday"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("coinbt: error: --start: not an ISO-8601 time: 'last tuesday'")
        assert await system.store.last_position() == before


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...]
) -> list[tuple[str, argparse.ArgumentParser]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((" ".join((*path, name)), sub))
                found += _commands(sub, (*path, name))
    return found


def test_every_command_s_help_has_an_example() -> None:
    commands = _commands(build_parser(), ("coinbt",))
    assert len(commands) >= 25
    missing = [name for name, sub in commands if "example" not in (sub.epilog or "").lower()]
    assert missing == []
