"""Exports of a completed task (CSV, Parquet) and its tear sheet, over HTTP."""

from __future__ import annotations

import csv
import html
import io
import sys
from pathlib import Path

import msgspec
import numpy as np
import pytest

from coinbt import engine
from coinbt.engine.ledger import ledger_of
from tests.api.helpers import http_client
from tests.system import OpenSystem, long, system_factory, tiny

SPEC = tiny(seed=3, bars=3000, params={"fast": 5, "slow": 20})


@pytest.fixture
def open_system(tmp_path: Path) -> OpenSystem:
    return system_factory(tmp_path)


def local_result() -> engine.BacktestResult:
    s = SPEC.data.synthetic
    assert s is not None
    bars = engine.synthetic(s.bars, seed=s.seed, interval=s.interval)
    spec = engine.BacktestSpec(SPEC.strategy, dict(SPEC.params), cash=SPEC.cash)
    return engine.run(spec, bars)


def rows(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode())))


async def test_csv_exports_hold_every_row_exactly(open_system: OpenSystem) -> None:
    expected = local_result()
    async with open_system(workers=1) as system, http_client("asgi", system) as http:
        task_id = (await http.post("/backtests", json=msgspec.to_builtins(SPEC))).json()["task_id"]
        await system.drain()

        response = await http.get(f"/backtests/{task_id}/fills?format=csv")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert f'filename="{task_id}-fills.csv"' in response.headers["content-disposition"]
        fills = rows(response.content)
        assert len(fills) == len(expected.fills) > 10
        for got, want in zip(fills, expected.fills.to_dicts(), strict=True):
            assert int(got["ts"]) == want["ts"]
            assert int(got["bar"]) == want["bar"]
            assert got["time"].endswith("Z")
            assert got["time"].startswith("20")
            assert (float(got["qty"]), float(got["price"]), float(got["fee"])) == (
                want["qty"],
                want["price"],
                want["fee"],
            )
            assert (got["side"], got["reason"], got["symbol"]) == (want["side"], "signal", "SYNTH")

        equity = rows((await http.get(f"/backtests/{task_id}/equity?format=csv")).content)
        assert [float(r["equity"]) for r in equity] == expected.equity.tolist()
        assert min(float(r["drawdown"]) for r in equity) == pytest.approx(-expected.max_drawdown)

        trades = rows((await http.get(f"/backtests/{task_id}/trades?format=csv")).content)
        s = SPEC.data.synthetic
        assert s is not None
        ts = engine.synthetic(s.bars, seed=s.seed).ts
        want_trades = ledger_of(expected).trades.to_dicts(ts, ("SYNTH",))
        assert len(trades) == len(want_trades) == expected.num_trades
        for got, want in zip(trades, want_trades, strict=True):
            assert float(got["pnl"]) == want["pnl"]
            assert float(got["return"]) == want["return"]
            assert int(got["entry_ts"]) == want["entry_ts"]
            assert got["side"] == "long"
            assert got["exit_reason"] == want["exit_reason"]
            if want["exit_ts"] is None:
                assert got["exit_ts"] == got["exit_time"] == got["exit_bar"] == ""
            else:
                assert int(got["exit_ts"]) == want["exit_ts"]


async def test_parquet_exports_read_back_with_utc_times(open_system: OpenSystem) -> None:
    pq = pytest.importorskip("pyarrow.parquet")  # the test extra installs it
    expected = local_result()
    async with open_system(workers=1) as system, http_client("asgi", system) as http:
        task_id = (await http.post("/backtests", json=msgspec.to_builtins(SPEC))).json()["task_id"]
        await system.drain()
        response = await http.get(f"/backtests/{task_id}/equity?format=parquet")
        assert response.status_code == 200
        table = pq.read_table(io.BytesIO(response.content))
        assert table.column("equity").to_pylist() == expected.equity.tolist()
        assert str(table.schema.field("time").type) == "timestamp[ms, tz=UTC]"
        trades = pq.read_table(
            io.BytesIO((await http.get(f"/backtests/{task_id}/trades?format=parquet")).content)
        )
        assert trades.num_rows == expected.num_trades
        fills = pq.read_table(
            io.BytesIO((await http.get(f"/backtests/{task_id}/fills?format=parquet")).content)
        )
        assert fills.column("price").to_pylist() == expected.fills.price.tolist()


async def test_parquet_without_pyarrow_is_501_naming_the_extra(
    open_system: OpenSystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if not installed: import fails
    async with open_system(workers=1) as system, http_client("asgi", system) as http:
        task_id = (await http.post("/backtests", json=msgspec.to_builtins(SPEC))).json()["task_id"]
        await system.drain()
        response = await http.get(f"/backtests/{task_id}/fills?format=parquet")
        assert response.status_code == 501
        error = response.json()["error"]
        assert error["code"] == "missing_extra"
        assert "coinbt[parquet]" in error["message"]
        assert error["details"] == {"extra": "parquet", "package": "pyarrow"}


async def test_bad_export_requests_are_4xx(open_system: OpenSystem) -> None:
    async with open_system(workers=1) as system, http_client("asgi", system) as http:
        done = (await http.post("/backtests", json=msgspec.to_builtins(SPEC))).json()["task_id"]
        await system.drain()
        bad = await http.get(f"/backtests/{done}/fills?format=xlsx")
        assert bad.status_code == 400
        assert bad.json()["error"]["details"][0]["field"] == "format"
        assert (await http.get(f"/backtests/{done}/trades?format=")).status_code == 400
        assert (await http.get("/backtests/nope/trades?format=csv")).status_code == 404
        assert (await http.get("/backtests/nope/report")).status_code == 404
        queued = (await http.post("/backtests", json=msgspec.to_builtins(long()))).json()
        await http.delete(f"/backtests/{queued['task_id']}")
        for path in ("equity?format=csv", "report"):
            response = await http.get(f"/backtests/{queued['task_id']}/{path}")
            assert response.status_code == 400
            assert response.json()["error"]["details"]["status"] == "cancelled"
        # the JSON answers are unchanged without format
        assert (await http.get(f"/backtests/{done}/fills")).json()["total"] > 0


async def test_report_is_one_offline_html_file_with_the_provenance(
    open_system: OpenSystem,
) -> None:
    expected = local_result()
    async with open_system(workers=1) as system, http_client("asgi", system) as http:
        task_id = (await http.post("/backtests", json=msgspec.to_builtins(SPEC))).json()["task_id"]
        await system.drain()
        response = await http.get(f"/backtests/{task_id}/report")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        csp = response.headers["content-security-policy"]
        assert "style-src 'unsafe-inline'" in csp
        assert "script-src" not in csp  # default-src 'none': no script at all
        page = response.text
        completed = (await system.store.read_stream(task_id))[-1]
        assert completed.type == "Completed"
        assert expected.digest() in page
        assert completed.hash in page
        assert f"<code>{completed.position}</code>" in page
        assert "src=" not in page
        assert "href=" not in page
        assert "@import" not in page
        assert 'data-series="Buy &amp; hold"' in page
        assert np.isfinite(expected.final_equity)


async def test_trades_prices_and_analysis_for_the_task_page(open_system: OpenSystem) -> None:
    expected = local_result()
    s = SPEC.data.synthetic
    assert s is not None
    bars = engine.synthetic(s.bars, seed=s.seed, interval=s.interval)
    async with open_system(workers=1) as system, http_client("asgi", system) as http:
        task_id = (await http.post("/backtests", json=msgspec.to_builtins(SPEC))).json()["task_id"]
        await system.drain()

        trades = (await http.get(f"/backtests/{task_id}/trades")).json()
        assert trades["trades"] == ledger_of(expected).trades.to_dicts(bars.ts, ("SYNTH",))
        assert trades["total"] == expected.num_trades

        prices = (await http.get(f"/backtests/{task_id}/prices?points=200")).json()
        asset = prices["assets"][0]
        assert prices["total_points"] == len(bars)
        assert asset["symbol"] == "SYNTH"
        assert len(asset["ts"]) <= 200
        assert max(asset["close"]) == bars.close.max()
        assert min(asset["close"]) == bars.close.min()
        qty = SPEC.cash / (bars.close[0] * (1 + SPEC.fee_bps / 10_000))
        assert asset["benchmark"][-1] == pytest.approx(qty * bars.close[-1], rel=1e-12)

        answer = (await http.get(f"/backtests/{task_id}/analysis?points=100")).json()
        bench = answer["benchmark"]["metrics"]
        assert bench["total_return"] == pytest.approx(qty * bars.close[-1] / SPEC.cash - 1)
        growth = 1.0
        for row in answer["monthly"]["returns"]:
            for r in row:
                growth *= 1 + (r or 0.0)
        assert growth - 1 == pytest.approx(expected.total_return, rel=1e-9)
        assert answer["trade_stats"]["trades"] == expected.num_trades
        assert answer["trade_stats"]["win_rate"] == pytest.approx(expected.metrics["win_rate"])
        rolling = answer["rolling_sharpe"]
        assert 2 <= rolling["window"] < len(bars)
        assert len(rolling["ts"]) == len(rolling["values"]) <= 100

        events = (await http.get(f"/backtests/{task_id}/events?limit=2")).json()
        assert len(events["events"]) == 2
        assert events["total"] == len(await system.store.read_stream(task_id))

        queued = (await http.post("/backtests", json=msgspec.to_builtins(long()))).json()
        await http.delete(f"/backtests/{queued['task_id']}")
        for tail in ("trades", "prices", "analysis"):
            response = await http.get(f"/backtests/{queued['task_id']}/{tail}")
            assert response.status_code == 400, tail
        bad = await http.get(f"/backtests/{task_id}/prices?points=-1")
        assert bad.status_code == 400
        assert bad.json()["error"]["details"][0]["field"] == "points"


async def test_prices_of_a_portfolio_hold_every_asset(open_system: OpenSystem) -> None:
    from coinbt.events import DataSpec, SyntheticSpec

    spec = msgspec.structs.replace(
        SPEC,
        data=DataSpec(synthetic=SyntheticSpec(bars=1500, seed=2, symbols=2)),
        size=0.5,
        size_type="target_percent",
    )
    async with open_system(workers=1) as system, http_client("asgi", system) as http:
        submitted = await http.post("/backtests", json=msgspec.to_builtins(spec))
        assert submitted.status_code == 202, submitted.text
        task_id = submitted.json()["task_id"]
        await system.drain()
        assert (await system.task(task_id)).status == "completed"
        prices = (await http.get(f"/backtests/{task_id}/prices?points=100")).json()
        many = engine.synthetic_portfolio(1500, 2, seed=2)
        assert [a["symbol"] for a in prices["assets"]] == list(many)
        for asset, bars in zip(prices["assets"], many.values(), strict=True):
            assert max(asset["close"]) == bars.close.max()
            assert asset["ts"][-1] == bars.ts[-1]
        # The benchmark: every asset bought with an equal share of the cash at the first bar.
        fee = 1 + spec.fee_bps / 10_000
        held = sum(spec.cash / 2 / (b.close[0] * fee) * b.close[-1] for b in many.values())
        assert prices["benchmark"]["ts"][-1] == prices["assets"][0]["ts"][-1]
        assert len(prices["benchmark"]["equity"]) <= 100
        assert prices["benchmark"]["equity"][-1] == pytest.approx(held, rel=1e-12)
        answer = (await http.get(f"/backtests/{task_id}/analysis")).json()
        total = answer["benchmark"]["metrics"]["total_return"]
        assert total == pytest.approx(held / spec.cash - 1, rel=1e-12)
        assert answer["benchmark"]["metrics"]["num_trades"] == 2
        report = await http.get(f"/backtests/{task_id}/report")
        assert report.status_code == 200
        assert "an equal share of the cash in each of the 2 assets" in report.text


async def test_report_provenance_names_the_dataset_version_and_the_rules(
    open_system: OpenSystem,
) -> None:
    data = engine.synthetic(800, seed=6, interval="1h")
    lines = ["timestamp,open,high,low,close,volume"]
    columns = [data.ts, data.open, data.high, data.low, data.close, data.volume]
    lines += [",".join(map(repr, row)) for row in zip(*(c.tolist() for c in columns), strict=True)]
    body = ("\n".join(lines) + "\n").encode()
    entry = "cross_above(sma(close, 5), sma(close, 20))"
    spec = {
        "strategy": "rules",
        "rules": {"entry": entry, "exit": "cross_below(sma(close, 5), sma(close, 20))"},
        "data": {"dataset": "ETH-1h"},
    }
    async with open_system(workers=1) as system, http_client("asgi", system) as http:
        created = await http.post(
            "/datasets?name=ETH-1h", content=body, headers={"Content-Type": "text/csv"}
        )
        assert created.status_code == 201, created.text
        submitted = await http.post("/backtests", json=spec)
        assert submitted.status_code == 202, submitted.text
        await system.drain()
        task_id = submitted.json()["task_id"]
        page = (await http.get(f"/backtests/{task_id}/report")).text
        assert f"dataset ETH-1h v1 (bars file sha256 {created.json()['sha256']})" in page
        assert "recorded at submission: kind rules" in page
        assert html.escape(entry) in page
