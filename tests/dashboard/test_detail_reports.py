"""The task page's reports in headless Chromium: trades on the price chart (checked against
/trades), the buy-and-hold overlay, the log-scale toggle, exports that download and parse, the
tear sheet button; and the form and pages at 1440x900 and 420 px."""

from __future__ import annotations

import csv
import importlib.util
import io
import re
from pathlib import Path

import anyio
import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from tests.api.helpers import server_url
from tests.dashboard.test_dashboard import open_page, row, wait_live
from tests.system import system_factory, tiny, wait_status

pytestmark = pytest.mark.asyncio(loop_scope="module")

COST_FIELDS = ("cash", "fill", "fee_bps", "slippage_bps", "timeout_s")
SPEC = tiny(seed=4, bars=3000, params={"fast": 5, "slow": 30})


async def test_detail_draws_trades_benchmark_log_scale_and_exports(
    browser: Browser, tmp_path: Path
) -> None:
    async with system_factory(tmp_path)(workers=1) as system:
        view = await system.submit(SPEC)
        await wait_status(system, view.task_id, "completed")
        async with (
            server_url(system) as url,
            httpx.AsyncClient(base_url=url) as http,
            open_page(browser, f"{url}/#/task/{view.task_id}") as page,
        ):
            trades = (await http.get(f"/backtests/{view.task_id}/trades")).json()["trades"]
            assert len(trades) > 5
            want = {("entry", t["entry_ts"], t["entry_price"]) for t in trades}
            want |= {
                ("exit", t["exit_ts"], t["exit_price"]) for t in trades if t["exit_ts"] is not None
            }
            markers = page.locator("svg.price-chart path.marker")
            await expect(markers).to_have_count(len(want))
            got = await markers.evaluate_all(
                "ms => ms.map(m => [m.dataset.kind, +m.dataset.ts, +m.dataset.price,"
                " +m.dataset.cx, m.dataset.side, m.dataset.reason || null])"
            )
            assert {(k, ts, p) for k, ts, p, *_ in got} == want
            # positions: x grows with time, and every marker lies inside the plot
            ordered = sorted(got, key=lambda m: (m[1], m[0] == "entry"))
            xs = [m[3] for m in ordered]
            assert xs == sorted(xs)
            width = float(await page.locator("svg.price-chart").get_attribute("width") or 0)
            assert all(0 < x < width for x in xs)
            assert {m[4] for m in got} == {"long"}
            assert {m[5] for m in got if m[0] == "exit"} == {"signal"}

            equity = page.locator("svg.equity-chart")
            await expect(equity.locator('path.series[data-label="buy & hold"]')).to_have_count(1)
            bench = page.locator("table.benchmark tr[data-metric=total_return] td.bench")
            await expect(bench).to_have_text(re.compile(r"%$"))
            await expect(equity).to_have_attribute("data-scale", "linear")
            linear_ticks = await equity.locator("text.tick.y").all_text_contents()
            await page.get_by_label("log scale").check()
            await expect(page.locator("svg.equity-chart")).to_have_attribute("data-scale", "log")
            await expect(page.locator("svg.price-chart")).to_have_attribute("data-scale", "log")
            log_ticks = await page.locator("svg.equity-chart text.tick.y").all_text_contents()
            assert log_ticks != linear_ticks
            await expect(page.locator("svg.price-chart path.marker")).to_have_count(len(want))

            await expect(page.locator("table.heatmap tbody tr")).to_have_count(1)
            await expect(page.locator("svg.sharpe-chart path.series")).to_have_count(1)

            # the round-trip list: paged, sortable
            body = page.locator("table.roundtrips tbody tr")
            await expect(body).to_have_count(min(20, len(trades)))
            await page.locator("table.roundtrips th", has_text="PnL").get_by_role("button").click()
            worst = min(t["pnl"] for t in trades)
            first_pnl = await body.first.get_attribute("data-trade")
            assert trades[int(first_pnl or -1)]["pnl"] == worst

            # exports download and parse; the report is one HTML file
            async with page.expect_download() as info:
                await page.get_by_role("button", name="trades CSV").click()
            download = await info.value
            text = await anyio.Path(await download.path()).read_text()
            rows = list(csv.DictReader(io.StringIO(text)))
            assert [float(r["pnl"]) for r in rows] == [t["pnl"] for t in trades]
            assert download.suggested_filename.endswith("-trades.csv")
            async with page.expect_download() as info:
                await page.get_by_role("button", name="trades Parquet").click()
            parquet = await (await info.value).path()
            if importlib.util.find_spec("pyarrow") is not None:  # the test extra installs it
                import pyarrow.parquet as pq

                table = pq.read_table(parquet)
                assert table.column("pnl").to_pylist() == [t["pnl"] for t in trades]
            async with page.expect_download() as info:
                await page.get_by_role("button", name="equity CSV").click()
            lines = (await anyio.Path(await (await info.value).path()).read_text()).splitlines()
            assert len(lines) == 3001
            async with page.expect_download() as info:
                await page.get_by_role("button", name="Report").click()
            report = await anyio.Path(await (await info.value).path()).read_text()
            assert report.startswith("<!doctype html>")
            assert view.task_id in report

            # the event history counts every event of the finished task
            total = len(await system.store.read_stream(view.task_id))
            await expect(page.locator("section", has_text="Event history")).to_contain_text(
                f"25 of {total} events" if total > 25 else f"{total} events"
            )
            await expect(page.locator("table.positions thead")).to_contain_text(
                "Realized PnL (net of fees)"
            )


async def cost_fields_are_visible(page: Page) -> None:
    for name in COST_FIELDS:
        field = page.locator(f'form [name="{name}"]')
        await field.scroll_into_view_if_needed()
        await expect(field).to_be_in_viewport()
        covered = await field.evaluate(
            "el => { const r = el.getBoundingClientRect();"
            " const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);"
            " return top === el || el.contains(top) ? null : (top?.outerHTML || 'nothing')"
            ".slice(0, 80); }"
        )
        assert covered is None, f"{name} is covered by {covered}"


async def no_horizontal_overflow(page: Page) -> None:
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"] if page.viewport_size else False


@pytest.mark.parametrize(
    "viewport",
    [
        pytest.param({"width": 1440, "height": 900}, id="1440x900"),
        pytest.param({"width": 420, "height": 860}, id="420px"),
    ],
)
async def test_every_cost_field_shows_and_nothing_overflows(
    browser: Browser, tmp_path: Path, viewport: dict[str, int]
) -> None:
    open_system = system_factory(tmp_path)
    # Cancelled while queued for certain: no worker could claim it (a worker claims small tasks
    # in batches, and asks for the next batch while one runs).
    async with open_system(workers=0) as system:
        queued_then_cancelled = await system.submit(tiny(seed=6))
        await system.cancel(queued_then_cancelled.task_id, reason="changed my mind")
    async with open_system(workers=1) as system:
        done = await system.submit(SPEC)
        other = await system.submit(tiny(seed=5))
        for view in (done, other):
            await wait_status(system, view.task_id, "completed")
        async with server_url(system) as url, open_page(browser, url) as page:
            await page.set_viewport_size(viewport)
            await wait_live(page)
            await expect(page.locator('select[name="strategy"] option')).not_to_have_count(0)
            await cost_fields_are_visible(page)
            await no_horizontal_overflow(page)
            cancelled = row(page, queued_then_cancelled.task_id)
            await expect(cancelled).to_have_attribute("data-status", "cancelled")
            await expect(cancelled.locator('[title="run time"]')).to_have_count(0)
            await expect(cancelled.get_by_text("changed my mind")).to_have_count(1)
            await expect(row(page, done.task_id).locator('[title="run time"]')).to_have_count(1)

            await page.goto(f"{url}/#/task/{done.task_id}")
            await expect(page.locator("svg.price-chart path.marker").first).to_be_attached()
            await no_horizontal_overflow(page)

            await page.goto(f"{url}/#/compare/{done.task_id},{other.task_id}")
            header = page.locator("table.compare-table thead th .mono").first
            await expect(header).to_be_visible()
            shown = await header.evaluate("el => el.innerText")
            assert shown == shown.lower()  # task ids keep their case
            await no_horizontal_overflow(page)
