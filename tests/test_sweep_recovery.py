"""Crash recovery for sweeps: the service is SIGKILLed mid-sweep and restarted on the same file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from coinbt.backends.sqlite import verify_file
from coinbt.backends.sqlite.rebuild import verify_read_models
from coinbt.events import Queued
from tests.system import system_factory

ROOT = Path(__file__).parents[1]

_SERVICE = textwrap.dedent(
    """
    import json, sys, anyio
    from pathlib import Path
    from coinbt.clock import SequentialIds
    from coinbt.runtime import Config, open_system
    from coinbt.sweeps import decode_sweep
    from tests.system import wait_status

    async def main(db):
        config = Config(db=Path(db), workers=2, ids=SequentialIds("c"))
        async with open_system(config) as system:
            body = {"strategy": "sma_cross", "data": {"synthetic": {"bars": 300000, "seed": 1}},
                    "grid": {"fast": [5, 10], "slow": [100, 200]}}
            spec = decode_sweep(json.dumps(body).encode())
            view = await system.submit_sweep(spec)
            await wait_status(system, view.task_id, "running")
            print(json.dumps({"sweep": view.task_id}), flush=True)
            await anyio.sleep_forever()

    anyio.run(main, sys.argv[1])
    """
)


def _crash(db: Path) -> str:
    """Run the service in a child process; SIGKILL it while the sweep runs. The sweep's id."""
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
    return str(json.loads(line)["sweep"])


async def test_a_sweep_interrupted_by_a_crash_is_run_again(tmp_path: Path) -> None:
    db = tmp_path / "coinbt.db"
    task_id = _crash(db)
    assert verify_file(db).ok

    async with system_factory(tmp_path)(workers=2) as system:
        await system.drain()
        view = await system.task(task_id)
        assert view.status == "completed", view
        history = await system.store.read_stream(task_id)
        assert [e.type for e in history] == ["Queued", "Started", "Queued", "Started", "Completed"]
        requeued = history[2].event
        assert isinstance(requeued, Queued)
        assert requeued.attempt == 2
        assert requeued.spec.sweep is not None  # the whole sweep spec, again
        summary = await system.sweep_summary(view)
        assert summary is not None
        assert summary["evaluated"] == 4
    assert verify_file(db).ok
    assert verify_read_models(db).ok
