"""Plugins: found by entry point, directory and file; checked; a bad one fails only its run."""

from __future__ import annotations

import hashlib
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from coinbt.engine import BacktestSpec, run, synthetic
from coinbt.engine.plugins import (
    PATH_VARIABLE,
    load_file,
    plugin_errors,
    plugins,
    register,
    reset_plugins,
)
from coinbt.engine.strategies import find_strategy
from coinbt.errors import SpecError, StrategyError

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "examples" / "momentum_plugin" / "coinbt_momentum.py"
BARS = synthetic(3_000, seed=4)


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(PATH_VARIABLE, raising=False)
    reset_plugins(registered=True)
    yield
    reset_plugins(registered=True)


def write(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(body))
    return path


PLUGIN = """
    import numpy as np

    class {cls}:
        name = "{name}"
        description = "test plugin"
        params = {{"k": {{"type": "integer", "default": 3, "minimum": 1, "maximum": 50}}}}

        def signals(self, bars, params):
            {body}
"""


def plugin(name: str, body: str, cls: str = "P") -> str:
    return PLUGIN.format(name=name, body=body, cls=cls)


def test_the_example_plugin_runs_from_its_file() -> None:
    [strategy] = load_file(EXAMPLE)
    assert strategy.name == "momentum"
    assert strategy.source == "plugin"
    assert strategy.provenance["sha256"] == hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()
    assert strategy.provenance["version"] == "0.1.0"
    register(strategy)
    result = run(BacktestSpec("momentum", {"lookback": 10}), BARS)
    assert result.num_fills > 0
    assert result.params == {"lookback": 10, "threshold": 0.0}
    with pytest.raises(SpecError) as e:
        run(BacktestSpec("momentum", {"lookback": 0}), BARS)
    assert e.value.errors[0].field == "params.lookback"
    signals = strategy.all_signals(
        __import__("coinbt").engine.indicators.IndicatorCache.of(BARS),
        {"lookback": 10, "threshold": 0.0},
    )
    assert signals.short_entries is not None


def test_a_directory_on_the_path_is_searched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        tmp_path,
        "flip.py",
        plugin(
            "flip",
            "i = np.arange(len(bars)); return i % params['k'] == 0, i % params['k'] == 1",
        ),
    )
    write(tmp_path, "_private.py", "raise RuntimeError('never imported')")
    monkeypatch.setenv(PATH_VARIABLE, str(tmp_path))
    assert set(plugins()) == {"flip"}
    assert find_strategy("flip") is plugins()["flip"]
    result = run(BacktestSpec("flip", {"k": 4}), BARS)
    assert result.fills.bar[:2].tolist() == [1, 2]


def test_entry_points_are_found_with_their_package_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        tmp_path,
        "epmod.py",
        plugin("from_ep", "z = np.zeros(len(bars), bool); return z, z", cls="EP"),
    )
    info = tmp_path / "ep_pkg-2.5.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-pkg\nVersion: 2.5\n")
    (info / "entry_points.txt").write_text("[coinbt.strategies]\nfrom_ep = epmod:EP\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    found = plugins()
    assert "from_ep" in found
    assert found["from_ep"].provenance["version"] == "2.5"
    assert found["from_ep"].provenance["module"] == "epmod"


def test_a_plugin_that_cannot_load_is_reported_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "broken.py", "def broken(:\n")
    write(tmp_path, "clash.py", plugin("sma_cross", "pass"))
    monkeypatch.setenv(PATH_VARIABLE, str(tmp_path))
    assert plugins() == {}
    messages = {Path(e.origin).name: e.message for e in plugin_errors()}
    assert "SyntaxError" in messages["broken.py"]
    assert "builtin" in messages["clash.py"]


BAD = [
    pytest.param("raise ValueError('boom in the plugin')", "boom in the plugin", id="raises"),
    pytest.param("return np.zeros(5, bool), np.zeros(5, bool)", "one value per bar", id="length"),
    pytest.param(
        "x = np.zeros(len(bars)); x[7] = np.nan; return x, np.zeros(len(bars))",
        "NaN (first at bar 7)",
        id="nan",
    ),
    pytest.param(
        "x = np.array(['a'] * len(bars)); return x, x", "must be a boolean array", id="dtype"
    ),
    pytest.param("x = np.full(len(bars), 2.0); return x, x", "boolean (or 0/1)", id="not-zero-one"),
    pytest.param("return None", "must return Signals", id="none"),
    pytest.param("return {'entries': np.zeros(len(bars), bool)}", "no exits", id="no-exits"),
    pytest.param("return [1, 2]", "must return Signals", id="list"),
]


@pytest.mark.parametrize(("body", "message"), BAD)
def test_a_bad_plugin_fails_its_run_with_a_clear_error(
    tmp_path: Path, body: str, message: str
) -> None:
    [strategy] = load_file(write(tmp_path, "bad.py", plugin("bad", body)))
    register(strategy)
    with pytest.raises(StrategyError) as e:
        run(BacktestSpec("bad", {}), BARS)
    assert message in str(e.value)
    assert "plugin strategy 'bad'" in str(e.value)
    if "raise" in body:
        assert "Traceback" in str(e.value)
        assert "bad.py" in str(e.value)


def test_zero_one_integers_are_signals(tmp_path: Path) -> None:
    body = "x = (np.arange(len(bars)) % 10 == 0).astype(np.int8); return x, np.roll(x, 5)"
    [strategy] = load_file(write(tmp_path, "ints.py", plugin("ints", body)))
    register(strategy)
    result = run(BacktestSpec("ints", {}), BARS)
    assert np.all(result.fills.bar % 5 == 1)
