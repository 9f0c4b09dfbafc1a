"""Crash recovery: the service is SIGKILLed mid-run and restarted on the same file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from coinbt.backends.sqlite import verify_file
from coinbt.backends.sqlite.rebuild import verify_read_models
from coinbt.events import Queued
from tests.system import system_factory, types_of

ROOT = Path(__file__).parents[1]

_SERVICE = textwrap.dedent(
    """
    import json, sys, anyio
    from pathlib import Path
    from coinbt.clock import SequentialIds
    from coinbt.runtime import Config, open_system
    from tests.system import tiny, wait_status

    async def main(db):
        config = Config(db=Path(db), workers=1, ids=SequentialIds("c"))
        async with open_system(config) as system:
            # buy_and_hold on 3M bars: about 1.5 s of work, one fill.
            slow = await system.submit(tiny(seed=1, bars=3_000_000, strategy="buy_and_hold",
                                            params={}))
            queued = [await system.submit(tiny(seed=n)) for n in (2, 3, 4)]
            pid = await system.executor.wait_running(slow.task_id)
            await wait_status(system, slow.task_id, "running")
            print(json.dumps({"slow": slow.task_id, "queued": [v.task_id for v in queued],
                              "worker_pid": pid}), flush=True)
            await anyio.sleep_forever()

    anyio.run(main, sys.argv[1])
    """
)


def _crash(db: Path) -> dict[str, object]:
    """Run the service in a child process, SIGKILL it while a backtest runs."""
    child = subprocess.Popen(
        [sys.executable, "-c", _SERVICE, str(db)],
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert child.stdout is not None
    try:
        line = child.stdout.readline()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
    assert line, "the service did not start"
    info: dict[str, object] = json.loads(line)
    return info


@pytest.mark.parametrize(
    ("max_attempts", "slow_ends"),
    [pytest.param(3, "completed", id="requeued"), pytest.param(1, "failed", id="too-many")],
)
async def test_sigkill_then_restart_loses_nothing(
    tmp_path: Path, max_attempts: int, slow_ends: str
) -> None:
    db = tmp_path / "coinbt.db"
    info = _crash(db)
    slow, queued = str(info["slow"]), [str(t) for t in info["queued"]]  # type: ignore[attr-defined]
    assert verify_file(db).ok

    open_system = system_factory(tmp_path)
    async with open_system(workers=1, max_attempts=max_attempts) as system:
        await system.drain()
        view = await system.task(slow)
        assert view.status == slow_ends
        history = await system.store.read_stream(slow)
        if slow_ends == "completed":
            assert [e.type for e in history] == [
                "Queued",
                "Started",
                "Queued",
                "Started",
                "Completed",
            ]
            requeued = history[2].event
            assert isinstance(requeued, Queued)
            assert requeued.attempt == 2
            assert view.attempt == 2
        else:
            assert [e.type for e in history] == ["Queued", "Started", "Failed"]
            assert view.error_type == "interrupted"
            assert "interrupted" in (view.error or "")
        # Queued tasks ran in their original order, each exactly once to completion.
        started_at = []
        for task_id in queued:
            types = await types_of(system, task_id)
            assert types.count("Completed") == 1
            assert types.count("Started") == 1
            [started] = [e for e in await system.store.read_stream(task_id) if e.type == "Started"]
            started_at.append(started.position)
        assert started_at == sorted(started_at)
    assert verify_file(db).ok
    assert verify_read_models(db).ok
