"""pandas interop: exact round trips with pandas installed, a clear error without it, and
``import coinbt`` never importing pandas."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from coinbt import engine
from coinbt.engine.ledger import ledger_of
from coinbt.errors import DataError

BLOCK_PANDAS = "import sys; sys.modules['pandas'] = None\n"  # `import pandas` raises ImportError


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=False
    )


def test_importing_coinbt_never_imports_pandas_or_pyarrow() -> None:
    done = python(
        """
        import json, sys
        import coinbt, coinbt.engine, coinbt.api, coinbt.cli, coinbt.report.tearsheet
        import coinbt.report.tables
        from coinbt import engine
        r = engine.run(engine.BacktestSpec("sma_cross"), engine.synthetic(500, seed=1))
        print(json.dumps([m for m in ("pandas", "pyarrow") if m in sys.modules]))
        """
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


@pytest.mark.parametrize(
    "call",
    [
        pytest.param("engine.synthetic(100, seed=1).to_pandas()", id="bars.to_pandas"),
        pytest.param("engine.Bars.from_pandas(object())", id="Bars.from_pandas"),
        pytest.param(
            "engine.run(engine.BacktestSpec('sma_cross', {'fast': 3, 'slow': 9}), "
            "engine.synthetic(200, seed=1)).to_pandas()",
            id="result.to_pandas",
        ),
        pytest.param(
            "engine.sweep('sma_cross', {'fast': [3, 5], 'slow': [20]}, "
            "engine.synthetic(300, seed=1)).to_pandas()",
            id="sweep.to_pandas",
        ),
    ],
)
def test_without_pandas_each_call_names_the_extra(call: str) -> None:
    done = python(
        BLOCK_PANDAS
        + textwrap.dedent(
            f"""
            from coinbt import engine
            from coinbt.errors import MissingExtraError
            try:
                {call}
            except MissingExtraError as e:
                print(e)
            """
        )
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "pandas interop needs pandas, which is not installed: pip install 'coinbt[pandas]'"
    )


def test_without_pandas_the_rest_works() -> None:
    done = python(
        BLOCK_PANDAS
        + """
from coinbt import engine
r = engine.run(engine.BacktestSpec("sma_cross"), engine.synthetic(1000, seed=1))
r.report("/dev/null")
print(r.num_fills > 0)
"""
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


# --- with pandas (the test extra installs it) ---------------------------------------------------

pd = pytest.importorskip("pandas")


def test_bars_round_trip_exactly() -> None:
    bars = engine.synthetic(5000, seed=7, interval="15m")
    frame = bars.to_pandas()
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert str(frame.index.tz) == "UTC"
    assert frame.index.name == "time"
    assert frame.index[0] == pd.Timestamp(int(bars.ts[0]), unit="ms", tz="UTC")
    back = engine.Bars.from_pandas(frame)
    for name, values in bars.to_arrays().items():
        assert np.array_equal(getattr(back, name), values), name
    assert back.interval_ms == bars.interval_ms == 900_000


def test_bars_from_other_frames() -> None:
    bars = engine.synthetic(300, seed=2, interval="1h")
    frame = bars.to_pandas()
    frame.attrs.clear()
    upper = frame.rename(columns=str.upper)
    assert np.array_equal(engine.Bars.from_pandas(upper).close, bars.close)
    naive = frame.tz_convert(None)  # a naive index is taken as UTC
    assert np.array_equal(engine.Bars.from_pandas(naive).ts, bars.ts)
    paris = frame.tz_convert("Europe/Paris")
    assert np.array_equal(engine.Bars.from_pandas(paris).ts, bars.ts)
    with_ts = frame.reset_index(drop=True).assign(ts=bars.ts)
    assert np.array_equal(engine.Bars.from_pandas(with_ts).ts, bars.ts)
    assert engine.Bars.from_pandas(frame).interval_ms == 3_600_000  # inferred


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        pytest.param(lambda f: f.drop(columns="volume"), "missing column(s) volume", id="column"),
        pytest.param(lambda f: f.reset_index(drop=True), "must be a DatetimeIndex", id="index"),
        pytest.param(
            lambda f: f.set_axis(f.index + pd.Timedelta(microseconds=5)),
            "finer than a millisecond",
            id="microseconds",
        ),
        pytest.param(lambda f: f.iloc[::-1], "strictly increasing", id="unsorted"),
        pytest.param(lambda f: f.values, "expected a pandas DataFrame", id="not-a-frame"),
    ],
)
def test_bad_frames_are_data_errors(frame: object, message: str) -> None:
    good = engine.synthetic(50, seed=1).to_pandas()
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        engine.Bars.from_pandas(frame(good))  # type: ignore[operator]


def test_result_frames_hold_every_value() -> None:
    bars = engine.synthetic(4000, seed=3, interval="1h")
    result = engine.run(engine.BacktestSpec("sma_cross", {"fast": 5, "slow": 20}), bars)
    equity, fills, trades = result.to_pandas()
    assert equity["equity"].tolist() == result.equity.tolist()
    assert np.array_equal(equity.index.as_unit("ms").asi8, bars.ts)
    assert str(fills.index.tz) == str(trades.index.tz) == "UTC"
    assert np.array_equal(fills.index.as_unit("ms").asi8, result.fills.ts)
    assert fills["price"].tolist() == result.fills.price.tolist()
    assert fills["side"].tolist() == [f.side for f in result.fills]
    want = ledger_of(result).trades.to_dicts(bars.ts)
    assert len(trades) == len(want) == result.num_trades
    assert trades["pnl"].tolist() == [t["pnl"] for t in want]
    assert np.array_equal(trades.index.as_unit("ms").asi8, [t["entry_ts"] for t in want])
    last = want[-1]
    if last["exit_bar"] is None:
        assert trades["exit_bar"].isna().iloc[-1]
        assert trades["exit_time"].isna().iloc[-1]
    closed = trades.dropna(subset=["exit_bar"])
    assert closed["exit_bar"].tolist() == [t["exit_bar"] for t in want if t["exit_bar"] is not None]
    assert equity["drawdown"].min() == pytest.approx(-result.max_drawdown, abs=1e-12)


def test_sweep_frame_is_the_rows_best_first() -> None:
    bars = engine.synthetic(2000, seed=5, interval="1h")
    result = engine.sweep("sma_cross", {"fast": [3, 5, 8], "slow": [20, 30]}, bars)
    frame = result.to_pandas()
    assert frame.to_dict("records") == result.to_dicts()
    assert list(frame.columns[:2]) == ["fast", "slow"]
    assert frame.attrs["sort_by"] == result.sort_by


def test_a_portfolio_of_shorts_and_longs_in_frames_and_a_report(tmp_path: Path) -> None:
    many = engine.synthetic_portfolio(3000, 2, seed=3, interval="1h")
    spec = engine.BacktestSpec(
        "sma_cross",
        {"fast": 5, "slow": 20},
        size=0.5,
        size_type="target_percent",
        direction="both",
    )
    result = engine.run(spec, many)
    equity, fills, trades = result.to_pandas()
    assert set(fills["symbol"]) == set(trades["symbol"]) == {"SYNTH1", "SYNTH2"}
    assert set(trades["side"]) == {"long", "short"}
    assert trades["pnl"].sum() == pytest.approx(result.final_equity - spec.cash, rel=1e-9)
    assert np.array_equal(equity.index.as_unit("ms").asi8, many["SYNTH1"].ts)
    target = tmp_path / "r.html"
    result.report(target)
    page = target.read_text()
    assert "SYNTH1, SYNTH2" in page
    assert result.digest() in page
