"""The rules editor in the submit form, in headless Chromium against a real server: checked as
the user types (the error's column marked), functions inserted from the catalogue, and a rule
run submitted that completes like its builtin twin."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from tests.api.helpers import server_url
from tests.dashboard.test_dashboard import form_ready, open_page
from tests.system import system_factory, wait_status

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def choose_rules(page: Page) -> None:
    await form_ready(page)
    await page.get_by_label("Strategy").select_option("rules")
    await expect(page.locator(".rules-editor")).to_be_visible()


async def test_a_rule_is_checked_as_it_is_typed_and_runs(browser: Browser, tmp_path: Path) -> None:
    async with (
        system_factory(tmp_path)(workers=1) as system,
        server_url(system) as url,
        open_page(browser, url) as page,
    ):
        await choose_rules(page)
        entry = page.get_by_label("Entry", exact=True)
        verdict = page.locator(".rule-verdict")
        # the first example is loaded and valid
        await expect(entry).to_have_value("cross_above(sma(close, fast), sma(close, slow))")
        await expect(verdict).to_contain_text("Valid; parameters: fast, slow")

        await entry.fill("cross_above(smaa(close, fast), sma(close, slow))")
        error = page.locator('.rules-editor [data-error-for="rules.entry"]')
        await expect(error).to_be_visible()
        await expect(error).to_contain_text("column 13: unknown function 'smaa'")
        await expect(error).to_contain_text("did you mean 'sma'?")
        mark = page.locator(".rules-editor .rule-error-at")
        await expect(mark).to_have_text("s")
        await expect(entry).to_have_attribute("aria-invalid", "true")

        # a window longer than the data is an error at the parameter's column
        await entry.fill("cross_above(sma(close, fast), sma(close, slow))")
        await expect(error).to_be_hidden()
        await page.get_by_label("Bars").fill("500")
        await page.get_by_label("value of slow").fill("900")
        await expect(error).to_contain_text("column 42:")
        await expect(error).to_contain_text("the data has only 500")
        await page.get_by_label("value of slow").fill("20")
        await expect(verdict).to_contain_text("Valid")

        # a function from the catalogue goes in where the cursor is
        await page.locator(".rule-functions summary").click()
        await page.get_by_label("Filter functions").fill("kama")
        exit_box = page.get_by_label("Exit", exact=True)
        await exit_box.fill("close < ")
        await page.locator('[data-function="kama"] button').click()
        await expect(exit_box).to_have_value("close < kama(")
        await expect(page.locator('.rules-editor [data-error-for="rules.exit"]')).to_be_visible()
        await exit_box.fill("close < kama(close, 10)")
        await expect(verdict).to_contain_text("Valid")
        assert await system.read.tasks(limit=10) == []  # checking never submits

        await page.get_by_label("value of fast").fill("5")
        await page.get_by_role("button", name="Run backtest").click()
        link = page.locator(".form-status a")
        await expect(link).to_be_visible()
        [task] = await system.read.tasks(limit=10)
        assert await wait_status(system, task.task_id, "completed", "failed") == "completed"
        view = await system.task(task.task_id)
        assert view.spec.rules is not None
        assert view.spec.rules.exit == "close < kama(close, 10)"
        assert view.spec.params == {"fast": 5, "slow": 20}
        assert view.spec.source is not None
        assert view.spec.source.kind == "rules"
        # the task's detail shows its rules and where its code came from
        await link.click()
        run = page.locator("table.kv", has_text="Entry rule")
        await expect(run).to_contain_text("close < kama(close, 10)")
        await expect(run.locator("tr", has_text="Source")).to_contain_text("rules")
        # a saved rule set is just a spec: open a copy in the form, change it, run it again
        await page.get_by_role("button", name="Edit a copy in the form").click()
        await expect(page.get_by_label("Exit", exact=True)).to_have_value("close < kama(close, 10)")
        await expect(page.get_by_label("value of fast")).to_have_value("5")
        await expect(page.get_by_label("Strategy")).to_have_value("rules")
        await expect(page.locator(".rule-verdict")).to_contain_text("Valid")


async def test_an_example_and_a_bad_param_shown_at_submit(browser: Browser, tmp_path: Path) -> None:
    async with (
        system_factory(tmp_path)(workers=0) as system,
        server_url(system) as url,
        open_page(browser, url) as page,
    ):
        await choose_rules(page)
        await page.get_by_label("Start from an example").select_option(label="Donchian breakout")
        await expect(page.get_by_label("Entry", exact=True)).to_have_value(
            "close > shift(highest(high, n), 1)"
        )
        await expect(page.locator(".rule-verdict")).to_contain_text("parameters: n, m")
        await page.get_by_label("value of n").fill("2.5")
        await expect(page.locator(".rules-editor [data-error-for='rules.entry']")).to_contain_text(
            "must be a window"
        )
        await page.get_by_role("button", name="Run backtest").click()
        await expect(page.locator(".form-status")).to_contain_text("Check the highlighted fields")
        assert await system.read.tasks(limit=10) == []
        # back to a builtin: its parameter fields return, the editor hides
        await page.get_by_label("Strategy").select_option("sma_cross")
        await expect(page.locator(".rules-editor")).to_be_hidden()
        await expect(page.get_by_label("fast", exact=True)).to_be_visible()
