"""The tear sheet in headless Chromium: it renders with no network request at all, and its log
toggle switches the equity chart's scale."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Request, Route, expect

from coinbt import engine

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_report_renders_offline_and_toggles_log_scale(
    browser: Browser, tmp_path: Path
) -> None:
    bars = engine.synthetic(20_000, seed=9, interval="1h")
    result = engine.run(engine.BacktestSpec("sma_cross", {"fast": 10, "slow": 40}), bars)
    target = tmp_path / "report.html"
    result.report(target)
    document = target.resolve().as_uri()

    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    requests: list[str] = []
    errors: list[str] = []

    async def refuse(route: Route) -> None:  # nothing but the file itself may be loaded
        if route.request.url == document:
            await route.continue_()
            return
        requests.append(route.request.url)
        await route.abort()

    def seen(request: Request) -> None:
        if request.url != document:
            requests.append(request.url)

    await context.route("**/*", refuse)
    try:
        page = await context.new_page()
        page.on("request", seen)
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(document, wait_until="load")
        await expect(page.locator("h1")).to_contain_text("sma_cross")
        linear = page.locator("#equity-linear svg")
        log = page.locator("#equity-log svg")
        await expect(linear).to_be_visible()
        await expect(log).to_be_hidden()
        await expect(linear.locator('[data-series="Buy & hold"]')).to_have_count(1)
        await expect(page.locator("#metrics tr[data-metric=sharpe] td.bench")).not_to_be_empty()
        await expect(page.locator("#monthly tbody tr")).to_have_count(3)  # 2024 to 2026
        await expect(page.locator("#provenance")).to_contain_text(result.digest())
        await page.get_by_role("checkbox", name="log scale").check()
        await expect(log).to_be_visible()
        await expect(linear).to_be_hidden()
        assert await log.get_attribute("data-scale") == "log"
        box = await page.evaluate("document.documentElement.scrollWidth")
        assert box <= 1280
        assert requests == []
        assert errors == []
    finally:
        await context.close()
