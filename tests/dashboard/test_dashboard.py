"""The dashboard end to end: a real server, a real System, headless Chromium.

Each test opens its own System and server with ``async with`` (their task groups cannot be held
across an async fixture's yield) and a fresh browser context; the browser is shared by the module.
Tests wait on conditions in the page (Playwright's ``expect``), never for a fixed time.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.async_api import Browser, Locator, Page, Request, Route, expect

from tests.api.helpers import server_url
from tests.dashboard.browser import ROOT
from tests.system import long, system_factory, tiny, wait_status

pytestmark = pytest.mark.asyncio(loop_scope="module")

WAIT_MS = 20_000
expect.set_options(timeout=WAIT_MS)
TOKEN = "s3cret-dashboard-token"

# Records every status each task's row has shown, in order, however briefly (rows are replaced
# on every change, so watching added rows sees every state).
RECORD_STATUSES = """
window.__statuses = {};
window.__prompts = 0;
const showModal = HTMLDialogElement.prototype.showModal;
HTMLDialogElement.prototype.showModal = function () {
  window.__prompts += 1;
  return showModal.call(this);
};
new MutationObserver((records) => {
  for (const record of records) {
    for (const node of record.addedNodes) {
      if (node.nodeType !== 1 || !node.matches("tr[data-task-id]")) continue;
      const list = (window.__statuses[node.dataset.taskId] ||= []);
      if (list[list.length - 1] !== node.dataset.status) list.push(node.dataset.status);
    }
  }
}).observe(document, { childList: true, subtree: true });
"""


@asynccontextmanager
async def open_page(browser: Browser, url: str) -> AsyncIterator[Page]:
    """A page in a fresh context (its own session storage); fails on any uncaught script error
    and on anything the Content-Security-Policy refused."""
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    errors: list[str] = []
    try:
        page = await context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on(  # a script or style the Content-Security-Policy refused
            "console",
            lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None,
        )
        await page.add_init_script(RECORD_STATUSES)
        page.set_default_timeout(WAIT_MS)
        await page.goto(url)
        yield page
    finally:
        await context.close()
    assert errors == []


def row(page: Page, task_id: str) -> Locator:
    return page.locator(f'tr[data-task-id="{task_id}"]')


async def form_ready(page: Page) -> None:
    """The submit form has its strategies (from GET /strategies)."""
    await expect(page.locator('select[name="strategy"] option[value="sma_cross"]')).to_be_attached()


async def wait_live(page: Page) -> None:
    await expect(page.locator("#live-state")).to_have_attribute("data-state", "live")


async def test_a_submitted_run_goes_live_to_completed_and_its_detail_shows_everything(
    browser: Browser, tmp_path: Path
) -> None:
    requests: list[Request] = []
    async with (
        system_factory(tmp_path)(workers=1) as system,
        server_url(system) as url,
        open_page(browser, url) as page,
    ):
        await wait_live(page)  # the first page of tasks is read, and the stream is open
        page.on("request", lambda request: requests.append(request))
        # A long run occupies the only worker: it appears live, and its bar moves with the
        # stream's progress messages (its first real one would come only after seconds of
        # generating 10M bars, so the test publishes one the way a worker does).
        blocker = await system.submit(long())
        await expect(row(page, blocker.task_id)).to_have_attribute("data-status", "running")
        system.progress.set(blocker.task_id, 0.42)
        bar = row(page, blocker.task_id).get_by_role("progressbar")
        await expect(bar).to_have_attribute("aria-valuenow", re.compile(r"^[1-9]\d*$"))

        await form_ready(page)
        await page.get_by_label("Strategy").select_option("sma_cross")
        await page.get_by_label("fast", exact=True).fill("5")
        await page.get_by_label("slow", exact=True).fill("40")
        await page.get_by_label("Bars").fill("200000")
        await page.get_by_label("Seed").fill("3")
        await page.get_by_role("button", name="Run backtest").click()
        link = page.locator(".form-status a")
        await expect(link).to_be_visible()
        task_id = (await link.get_attribute("href") or "").removeprefix("#/task/")
        await expect(row(page, task_id)).to_have_attribute("data-status", "queued")

        # Cancelling the running one from the table frees the worker for the new one.
        await row(page, blocker.task_id).get_by_role("button", name="Cancel").click()
        await expect(row(page, blocker.task_id)).to_have_attribute("data-status", "cancelled")
        await expect(row(page, task_id)).to_have_attribute(
            "data-status", "completed", timeout=30_000
        )
        await expect(row(page, task_id).locator("td.num").first).to_have_text(re.compile(r"%$"))
        # Every state was shown, in order, driven by the event stream alone.
        seen = await page.evaluate("id => window.__statuses[id]", task_id)
        assert seen == ["queued", "running", "completed"]
        seen = await page.evaluate("id => window.__statuses[id]", blocker.task_id)
        assert seen[-2:] == ["running", "cancelled"]
        assert (await system.task(task_id)).status == "completed"
        lists = [r for r in requests if urlsplit(r.url).path == "/backtests" and r.method == "GET"]
        assert lists == []  # the first page was read before; nothing polls since
        streams = [r for r in requests if urlsplit(r.url).path == "/events"]
        assert streams == []  # one stream, opened before, never reconnected

        # The detail view, linkable by its URL.
        await row(page, task_id).locator("td").nth(2).click()
        await expect(page).to_have_url(re.compile(f"#/task/{task_id}$"))
        chart = page.locator("svg.equity-chart")
        await expect(chart.locator("path.series")).to_have_count(2)  # with buy and hold
        await expect(chart.locator('path.series[data-label="equity"]')).to_have_count(1)
        await expect(page.locator("svg.drawdown-chart path.series")).to_have_count(1)
        asked = [
            parse_qs(urlsplit(r.url).query).get("points", [""])[0]
            for r in requests
            if urlsplit(r.url).path == f"/backtests/{task_id}/equity"
        ]
        assert await chart.get_attribute("width") in asked  # downsampled to the chart's width
        position = page.locator("table.positions tbody tr", has_text="SYNTH")
        await expect(position).to_have_count(1)
        await expect(position.locator("td").nth(1)).to_have_text(re.compile("open|closed"))
        await expect(page.locator("table.fills tbody tr").first).to_contain_text("SYNTH")
        events = page.locator("table.events tbody tr")
        await expect(events.first).to_contain_text("Queued")
        await expect(events.nth(1)).to_contain_text("Started")
        hash_cell = events.first.locator("td").last.locator("span")
        assert len(await hash_cell.get_attribute("title") or "") == 64  # full hash on hover
        await expect(page.locator(".kpi").first).to_contain_text("Total return")

        artifacts = ROOT / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        await page.screenshot(path=str(artifacts / "dashboard-detail.png"), full_page=True)


async def test_compare_overlays_two_completed_runs(browser: Browser, tmp_path: Path) -> None:
    async with system_factory(tmp_path)(workers=1) as system:
        first = await system.submit(tiny(seed=1))
        second = await system.submit(tiny(seed=2, params={"fast": 10, "slow": 40}))
        for view in (first, second):
            await wait_status(system, view.task_id, "completed")
        async with server_url(system) as url, open_page(browser, url) as page:
            compare = page.get_by_role("button", name=re.compile("^Compare"))
            await expect(compare).to_be_disabled()
            for view in (first, second):
                await row(page, view.task_id).get_by_role("checkbox").check()
            await compare.click()
            await expect(page).to_have_url(re.compile("#/compare/"))
            await expect(page.locator("svg.compare-chart path.series")).to_have_count(2)
            header = page.locator("table.compare-table thead th")
            await expect(header).to_have_count(3)  # the metric names, then one column per run
            await expect(header.nth(2)).to_contain_text("sma_cross")
            await expect(page.locator("table.compare-table tbody")).to_contain_text("Total return")


async def test_cancel_a_queued_task_from_the_table(browser: Browser, tmp_path: Path) -> None:
    async with (
        system_factory(tmp_path)(workers=0) as system,  # no workers: tasks stay queued
        server_url(system) as url,
        open_page(browser, url) as page,
    ):
        await wait_live(page)
        first = await system.submit(tiny(seed=1))  # behind the page's back: it appears live
        second = await system.submit(tiny(seed=2))
        await expect(row(page, first.task_id)).to_have_attribute("data-status", "queued")
        await expect(row(page, second.task_id)).to_have_attribute("data-status", "queued")

        await row(page, first.task_id).get_by_role("button", name="Cancel").click()
        await expect(row(page, first.task_id)).to_have_attribute("data-status", "cancelled")
        await expect(row(page, first.task_id).locator(".row-note")).to_contain_text(
            "cancelled by user"
        )
        await expect(row(page, first.task_id).get_by_text("cancelled by user")).to_have_count(1)
        await expect(row(page, first.task_id).get_by_role("button", name="Cancel")).to_have_count(0)
        assert (await system.task(first.task_id)).status == "cancelled"

        await system.cancel(second.task_id, reason="by the test")
        await expect(row(page, second.task_id)).to_have_attribute("data-status", "cancelled")
        await expect(row(page, second.task_id)).to_contain_text("by the test")


async def test_the_table_pages_newest_first_and_filters_by_status(
    browser: Browser, tmp_path: Path
) -> None:
    async with system_factory(tmp_path)(workers=0) as system:
        views = [await system.submit(tiny(seed=n)) for n in range(27)]
        for view in views[:2]:
            await system.cancel(view.task_id)
        async with server_url(system) as url, open_page(browser, url) as page:
            rows = page.locator("tr[data-task-id]")
            await expect(rows).to_have_count(25)  # one page
            await expect(rows.first).to_have_attribute("data-task-id", views[-1].task_id)
            await page.get_by_role("button", name="Load more").click()
            await expect(rows).to_have_count(27)
            await expect(rows.last).to_have_attribute("data-task-id", views[0].task_id)
            await expect(page.get_by_role("button", name="Load more")).to_be_hidden()

            filters = page.get_by_role("group", name="Filter by status")
            await filters.get_by_role("button", name="cancelled").click()
            await expect(rows).to_have_count(2)
            await filters.get_by_role("button", name="failed").click()
            await expect(page.locator("tr.empty")).to_contain_text("No failed backtests")
            await filters.get_by_role("button", name="queued").click()
            await expect(rows).to_have_count(25)
            await wait_live(page)
            later = await system.submit(tiny(seed=99))  # a new queued task joins the filter live
            await expect(rows.first).to_have_attribute("data-task-id", later.task_id)
            await system.cancel(views[5].task_id)  # and a cancelled one leaves it
            await expect(row(page, views[5].task_id)).to_have_count(0)


async def test_a_refused_cancel_shows_the_api_answer_and_the_stream_resumes(
    browser: Browser, tmp_path: Path
) -> None:
    async def refuse(route: Route) -> None:
        await route.abort()

    def is_stream(target: str) -> bool:
        return urlsplit(target).path == "/events"

    async with (
        system_factory(tmp_path)(workers=1) as system,
        server_url(system) as url,
        open_page(browser, "about:blank") as page,
    ):
        await page.route(is_stream, refuse)  # the live stream is down for now
        await page.goto(url)
        await expect(page.locator("#live-state")).to_have_attribute("data-state", "reconnecting")

        # Submitted from the form, the row shows the API's answer (queued, or running if the
        # worker was quick) and, without the stream, stays so while the task completes: Cancel
        # gets the API's refusal, shown inline.
        await form_ready(page)
        await page.get_by_role("button", name="Run backtest").click()
        link = page.locator(".form-status a")
        await expect(link).to_be_visible()
        task_id = (await link.get_attribute("href") or "").removeprefix("#/task/")
        await wait_status(system, task_id, "completed")
        await expect(row(page, task_id)).to_have_attribute(
            "data-status", re.compile("queued|running")
        )
        await row(page, task_id).get_by_role("button", name="Cancel").click()
        note = row(page, task_id).locator(".row-note.error")
        await expect(note).to_contain_text("cannot cancel task")
        await expect(note).to_contain_text("it is completed")
        await expect(row(page, task_id)).to_have_attribute("data-status", "completed")

        # The stream comes back and resumes after the last event it saw: a task submitted while
        # it was down appears, and runs, without a reload.
        later = await system.submit(tiny(seed=9))
        await page.unroute(is_stream, refuse)
        await wait_live(page)
        await expect(row(page, later.task_id)).to_have_attribute("data-status", "completed")
        await expect(page.locator("tr[data-task-id]")).to_have_count(2)


async def test_a_bad_parameter_shows_the_api_error_next_to_its_field(
    browser: Browser, tmp_path: Path
) -> None:
    async with (
        system_factory(tmp_path)(workers=0) as system,
        server_url(system) as url,
        open_page(browser, url) as page,
    ):
        await form_ready(page)
        await page.get_by_label("Strategy").select_option("sma_cross")

        def error_of(name: str) -> Locator:
            field = page.locator(".field", has=page.locator(f'[name="{name}"]'))
            return field.locator(".field-error")

        await page.get_by_label("Bars").fill("1")
        await page.get_by_role("button", name="Run backtest").click()
        await expect(error_of("data.synthetic.bars")).to_be_visible()
        await expect(error_of("data.synthetic.bars")).to_contain_text(">= 2")

        await page.get_by_label("Bars").fill("500")
        await page.get_by_label("fast", exact=True).fill("30")
        await page.get_by_label("slow", exact=True).fill("10")
        await page.get_by_role("button", name="Run backtest").click()
        await expect(error_of("params.fast")).to_be_visible()
        await expect(error_of("params.fast")).to_contain_text("must be less than slow")
        fast = page.get_by_label("fast", exact=True)
        await expect(fast).to_have_attribute("aria-invalid", "true")
        await expect(error_of("data.synthetic.bars")).to_be_hidden()
        await expect(page.locator(".form-status")).to_contain_text("Check the highlighted fields")
        assert await system.read.tasks(limit=10) == []


async def test_a_token_protected_server_asks_for_the_token_once(
    browser: Browser, tmp_path: Path
) -> None:
    async with system_factory(tmp_path)(workers=0) as system:
        task = await system.submit(tiny())
        async with server_url(system, token=TOKEN) as url, open_page(browser, url) as page:
            dialog = page.get_by_role("dialog")
            await expect(dialog).to_be_visible()
            await dialog.get_by_label("Token").fill("not-the-token")
            await dialog.get_by_role("button", name="Continue").click()
            await expect(dialog).to_contain_text("Wrong API token")
            await expect(page.locator("#token-message")).to_have_class("error")  # not help text
            await expect(page.locator("#token-message")).to_have_attribute("role", "alert")
            await dialog.get_by_label("Token").fill(TOKEN)
            await dialog.get_by_role("button", name="Continue").click()
            await expect(dialog).to_be_hidden()
            await expect(row(page, task.task_id)).to_have_attribute("data-status", "queued")
            await wait_live(page)  # the stream sends the token too
            stored = await page.evaluate("sessionStorage.getItem('coinbt.token')")
            assert stored == TOKEN
            # every request that met the 401 shared one prompt; the wrong token, one more
            assert await page.evaluate("window.__prompts") == 2

            await page.reload()  # kept for the session: no prompt
            await expect(row(page, task.task_id)).to_be_visible()
            await wait_live(page)
            assert await page.evaluate("window.__prompts") == 0


async def test_datasets_are_listed_and_a_csv_imports_from_the_page(
    browser: Browser, tmp_path: Path
) -> None:
    from tests.data.test_versions import T0, csv_rows

    csv = tmp_path / "eth.csv"
    csv.write_bytes(csv_rows(T0, 200, skip=range(50, 55)))
    bad = tmp_path / "bad.csv"
    bad.write_bytes(
        b"timestamp,open,high,low,close,volume\n2024-01-01,1,2,0.5,1.5,1\nx,1,2,0.5,1,1\n"
    )
    async with system_factory(tmp_path)(workers=0) as system:
        await system.catalog.import_bytes("btc-1h", csv_rows(T0, 100), source="btc.csv")
        async with server_url(system) as url, open_page(browser, url + "/#/data") as page:
            listed = page.locator('tr[data-dataset="btc-1h"]')
            await expect(listed).to_contain_text("100")
            await expect(listed).to_contain_text("1h")
            await expect(listed).to_contain_text("btc.csv")
            await expect(page.get_by_role("link", name="Datasets")).to_have_attribute(
                "aria-current", "page"
            )
            await page.get_by_label("CSV file").set_input_files(str(bad))
            await page.get_by_label("Dataset name").fill("bad-1h")
            await page.get_by_role("button", name="Import").click()
            await expect(page.locator(".import-form .form-status")).to_contain_text(
                "Not imported (row 3)"
            )
            await page.get_by_label("CSV file").set_input_files(str(csv))
            await page.get_by_label("Dataset name").fill("eth-1h")
            await page.get_by_role("button", name="Import").click()
            await expect(page.locator(".import-form .form-status")).to_contain_text(
                "Imported eth-1h version 1: 195 bars, 1 gap(s)"
            )
            imported = page.locator('tr[data-dataset="eth-1h"]')
            await expect(imported).to_contain_text("195")
            await expect(imported.locator("td[data-gaps]")).to_have_attribute("data-gaps", "1")
        assert [d.name for d in await system.catalog.all()] == ["btc-1h", "eth-1h"]
