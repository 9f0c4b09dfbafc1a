"""The example plugin through a real ``coinbt serve --strategies DIR`` whose worker processes run
it; a plugin that raises or returns bad signals fails its own task only."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path
from typing import Any

import msgspec

from tests.multiprocess.serve import ROOT, Served, coinbt, serve, wait_status
from tests.system import tiny

EXAMPLE = ROOT / "examples" / "momentum_plugin"

BAD = """
import numpy as np

class Exploding:
    name = "exploding"
    description = "raises"
    params = {}

    def signals(self, bars, params):
        raise ZeroDivisionError("the plugin divided by zero")

class Ragged:
    name = "ragged"
    description = "returns arrays of the wrong length"
    params = {}

    def signals(self, bars, params):
        return np.zeros(3, bool), np.zeros(3, bool)
"""


def spec(strategy: str, **params: Any) -> dict[str, Any]:
    return msgspec.to_builtins(tiny(bars=2000, strategy=strategy, params=params))


async def submit(server: Served, body: dict[str, Any]) -> str:
    response = await server.http.post("/backtests", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["task_id"])


async def test_plugins_run_in_the_workers_of_a_real_server(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "bad_plugins.py").write_text(textwrap.dedent(BAD))
    data = tmp_path / "data"
    data.mkdir()
    db = str(tmp_path / "coinbt.db")
    args = ("--workers", "1", "--strategies", str(EXAMPLE), "--strategies", str(bad))
    async with serve(db, data, "plugins", *args) as server:
        listed = (await server.http.get("/strategies")).json()["strategies"]
        sources = {s["name"]: s["source"] for s in listed}
        assert sources["momentum"] == "plugin"
        assert sources["exploding"] == "plugin"

        exploding = await submit(server, spec("exploding"))
        ragged = await submit(server, spec("ragged"))
        good = await submit(server, spec("momentum", lookback=30))
        assert await wait_status(server, exploding, "failed", "completed") == "failed"
        assert await wait_status(server, ragged, "failed", "completed") == "failed"
        assert await wait_status(server, good, "failed", "completed") == "completed"

        error = (await server.http.get(f"/backtests/{exploding}")).json()["error"]
        assert "plugin strategy 'exploding' raised" in error
        assert "Traceback" in error
        assert "ZeroDivisionError: the plugin divided by zero" in error
        error = (await server.http.get(f"/backtests/{ragged}")).json()["error"]
        assert "one value per bar (2000)" in error

        view = (await server.http.get(f"/backtests/{good}")).json()
        source = view["spec"]["source"]
        module = EXAMPLE / "coinbt_momentum.py"
        assert source["kind"] == "plugin"
        assert source["sha256"] == hashlib.sha256(module.read_bytes()).hexdigest()
        assert source["version"] == "0.1.0"
        assert view["spec"]["params"] == {"lookback": 30, "threshold": 0.0}
        fills = (await server.http.get(f"/backtests/{good}/fills")).json()["fills"]
        assert fills

        unknown = await server.http.post("/backtests", json=spec("nope"))
        assert unknown.status_code == 422
        assert "momentum" in unknown.json()["error"]["message"]


async def test_serve_refuses_a_plugin_that_cannot_load(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("def broken(:\n")
    result = await coinbt("serve", "--db", str(tmp_path / "x.db"), "--strategies", str(tmp_path))
    assert result.returncode == 2
    err = result.stderr.decode()
    assert err.startswith("coinbt: error: --strategies: cannot load a plugin strategy from ")
    assert "broken.py: SyntaxError" in err
    assert "Traceback" not in err


PLUGIN = """
import numpy as np

class Drift:
    name = "drift"
    description = "version {n}"
    params = {{}}

    def signals(self, bars, params):
        z = np.zeros(len(bars), bool)
        z[{n}] = True
        return z, np.zeros(len(bars), bool)
"""


async def test_a_plugin_changed_after_queueing_fails_its_task(tmp_path: Path) -> None:
    """Queued records the module's sha256; a worker that would run other code refuses."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    module = plugins / "drift.py"
    module.write_text(PLUGIN.format(n=1))
    data = tmp_path / "data"
    data.mkdir()
    args = ("--workers", "1", "--strategies", str(plugins))
    async with serve(str(tmp_path / "c.db"), data, "drift", *args) as server:
        module.write_text(PLUGIN.format(n=2))  # after the server loaded it, before any worker did
        task = await submit(server, spec("drift"))
        assert await wait_status(server, task, "failed", "completed") == "failed"
        view = (await server.http.get(f"/backtests/{task}")).json()
        assert "changed since the task was queued" in view["error"]
        original = hashlib.sha256(PLUGIN.format(n=1).encode()).hexdigest()
        assert view["spec"]["source"]["sha256"] == original
