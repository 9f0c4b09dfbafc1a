"""The dashboard's sweeps pages in headless Chromium: a real server and System."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.api.helpers import server_url
from tests.dashboard.test_dashboard import open_page
from tests.system import system_factory

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_a_sweep_from_the_form_to_its_table_heatmap_and_a_backtest(
    browser: Browser, tmp_path: Path
) -> None:
    async with (
        system_factory(tmp_path)(workers=2) as system,
        server_url(system) as url,
        open_page(browser, f"{url}/#/sweeps") as page,
    ):
        form = page.get_by_role("form", name="New sweep")
        await expect(
            form.locator('select[name="strategy"] option[value="sma_cross"]')
        ).to_be_attached()
        await form.locator('input[name="grid.fast"]').fill("5,10,20")
        await form.locator('input[name="grid.slow"]').fill("30:90:30")
        await form.locator('input[name="bars"]').fill("5000")
        await form.get_by_role("button", name="Run sweep").click()
        await expect(page).to_have_url(re.compile("#/sweep/"))
        task_id = page.url.rsplit("/", 1)[1]
        # Live until it ends, then the overfitting guard, the table and the heatmap.
        await expect(page.locator(".sweep-status[data-status=completed]")).to_be_visible()
        await expect(page.locator(".dsr-value")).to_contain_text("%")
        rows = page.locator("table.sweep-rows tbody tr")
        await expect(rows).to_have_count(9)
        await expect(page.locator("table.heatmap tbody td[data-value]")).to_have_count(9)
        view = await system.task(task_id)
        summary = await system.sweep_summary(view)
        assert summary is not None
        best = summary["best"][0]
        first = rows.first
        await expect(first).to_have_attribute("data-param-fast", str(best["fast"]))
        # Sort by a column: the server's order (fast ascending after two clicks).
        sort_fast = page.locator('button.sort[data-column="fast"]')
        await sort_fast.click()
        await expect(
            page.locator('th[aria-sort="descending"] button[data-column="fast"]')
        ).to_be_visible()
        await expect(rows.first).to_have_attribute("data-param-fast", "20")
        await sort_fast.click()
        await expect(rows.first).to_have_attribute("data-param-fast", "5")
        # The heatmap's metric chooser redraws it.
        await page.locator('select[name="metric"]').select_option("total_return")
        cell = page.locator(f'table.heatmap td[data-x="{best["fast"]}"][data-y="{best["slow"]}"]')
        await expect(cell).to_have_attribute("data-value", str(best["total_return"]))
        # Open a row as a backtest: a new task with that row's parameters.
        await rows.first.get_by_role("button", name="Open as backtest").click()
        await expect(page).to_have_url(re.compile("#/task/"))
        opened = page.url.rsplit("/", 1)[1]
        spec = (await system.task(opened)).spec
        assert spec.params["fast"] == 5
        assert spec.sweep is None


async def test_a_walk_forward_shows_its_folds_and_stitched_equity(
    browser: Browser, tmp_path: Path
) -> None:
    async with (
        system_factory(tmp_path)(workers=1) as system,
        server_url(system) as url,
        open_page(browser, f"{url}/#/sweeps") as page,
    ):
        form = page.get_by_role("form", name="New sweep")
        await expect(
            form.locator('select[name="strategy"] option[value="sma_cross"]')
        ).to_be_attached()
        await form.locator('input[name="grid.fast"]').fill("5,10")
        await form.locator('input[name="grid.slow"]').fill("30,60")
        await form.locator('input[name="bars"]').fill("6000")
        await form.locator('input[name="walk_forward"]').check()
        await form.locator('input[name="train"]').fill("60d")
        await form.locator('input[name="test"]').fill("20d")
        await form.get_by_role("button", name="Run sweep").click()
        await expect(page).to_have_url(re.compile("#/sweep/"))
        await expect(page.locator("table.folds tbody tr")).to_have_count(9)
        await expect(page.locator("svg.wf-chart path.series")).to_have_count(1)
        await expect(page.locator("dl.wf-degradation")).to_contain_text("Out-of-sample Sharpe")
        # Listed on the sweeps page.
        await page.get_by_role("link", name="All sweeps").click()
        await expect(page.locator("table.sweeps-table tbody tr")).to_have_count(1)
        await expect(page.locator("table.sweeps-table tbody")).to_contain_text("walk-forward")


async def test_a_bad_sweep_shows_the_fields_the_server_names(
    browser: Browser, tmp_path: Path
) -> None:
    async with (
        system_factory(tmp_path)(workers=0) as system,
        server_url(system) as url,
        open_page(browser, f"{url}/#/sweeps") as page,
    ):
        form = page.get_by_role("form", name="New sweep")
        await expect(
            form.locator('select[name="strategy"] option[value="sma_cross"]')
        ).to_be_attached()
        await form.locator('input[name="grid.fast"]').fill("50:5:5")
        await form.get_by_role("button", name="Run sweep").click()
        await expect(form.locator('.sweep-errors li[data-field="grid.fast.step"]')).to_be_visible()
        assert await system.store.last_position() == 0
