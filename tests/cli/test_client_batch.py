"""``coinbt submit --batch FILE`` against a real server on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import msgspec
import pytest

from coinbt.cli import main
from tests.api.helpers import server_url
from tests.system import system_factory, tiny


async def run_cli(argv: list[str]) -> int:
    return await anyio.to_thread.run_sync(main, argv)


async def test_submit_batch_queues_every_spec_and_waits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps([msgspec.to_builtins(tiny(seed=n)) for n in (1, 2, 3)]))
    async with system_factory(tmp_path)(workers=1) as system, server_url(system) as url:
        status = await run_cli(["submit", "--url", url, "--batch", str(batch), "--json", "--wait"])
        assert status == 0
        out = capsys.readouterr().out.splitlines()
        tasks = json.loads(out[0])["tasks"]
        assert len(tasks) == 3
        finished = [json.loads(line) for line in out[1:]]
        assert [t["status"] for t in finished] == ["completed"] * 3
        assert [t["task_id"] for t in finished] == [t["task_id"] for t in tasks]


async def test_submit_batch_bad_input_exits_2_naming_the_element(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = [msgspec.to_builtins(tiny(seed=1)), msgspec.to_builtins(tiny(seed=2))]
    bad[1]["params"] = {"fast": 50, "slow": 20}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    (tmp_path / "object.json").write_text(json.dumps(bad[0]))
    (tmp_path / "broken.json").write_text("[{")
    async with system_factory(tmp_path)(workers=0) as system, server_url(system) as url:
        for name, expected in (
            ("bad.json", "[1].params.fast"),
            ("object.json", "JSON array"),
            ("broken.json", "not valid JSON"),
            ("missing.json", "cannot read"),
        ):
            status = await run_cli(["submit", "--url", url, "--batch", str(tmp_path / name)])
            assert status == 2
            err = capsys.readouterr().err
            assert err.startswith("coinbt: error: ")
            assert expected in err
            assert "Traceback" not in err
        assert await system.store.last_position() == 0
