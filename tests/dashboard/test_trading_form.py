"""The submit form's direction, stops and sizing fields, end to end in headless Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Locator, Page, expect

from tests.api.helpers import server_url
from tests.dashboard.test_dashboard import form_ready, open_page
from tests.system import system_factory

pytestmark = pytest.mark.asyncio(loop_scope="module")


def error_of(page: Page, name: str) -> Locator:
    return page.locator(".field", has=page.locator(f'[name="{name}"]')).locator(".field-error")


async def test_a_short_with_a_trailing_stop_is_submitted_and_bad_options_are_shown(
    browser: Browser, tmp_path: Path
) -> None:
    async with (
        system_factory(tmp_path)(workers=0) as system,
        server_url(system) as url,
        open_page(browser, url) as page,
    ):
        await form_ready(page)
        await page.get_by_label("Strategy").select_option("sma_cross")
        await page.get_by_label("Bars").fill("500")
        await page.get_by_label("Trailing stop loss").check()
        await page.get_by_role("button", name="Run backtest").click()
        await expect(error_of(page, "sl_trail")).to_contain_text("needs sl_stop")
        assert await system.read.tasks(limit=10) == []

        await page.get_by_label("Direction").select_option("short")
        await page.get_by_label("Stop loss (fraction)").fill("0.01")
        await page.get_by_label("Size", exact=True).select_option("value")
        await page.get_by_label("Size value").fill("2500")
        await page.get_by_role("button", name="Run backtest").click()
        await expect(page.locator(".form-status")).to_contain_text("Queued")
        (task,) = await system.read.tasks(limit=10)
        spec = task.spec
        assert (spec.direction, spec.sl_stop, spec.sl_trail) == ("short", 0.01, True)
        assert (spec.size_type, spec.size, spec.tp_stop) == ("value", 2500, None)
