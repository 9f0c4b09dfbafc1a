"""Make docs/dashboard.png: the dashboard with the demo backtests and one run in progress.

    .venv/bin/python -m tests.dashboard.screenshot [OUT.png] [--detail [--tall] | --report]

Starts a System with the demo data (as ``coinbt serve --demo`` does) on a temporary database,
serves it on a free loopback port and photographs the page in headless Chromium.
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

import anyio
from playwright.async_api import async_playwright, expect

from coinbt.demo import DEMO_SPECS, submit_demo
from coinbt.runtime import Config, open_system
from tests.api.helpers import server_url
from tests.dashboard.browser import ARGS, CHROMIUM, ROOT
from tests.system import long, wait_status

WIDTH, HEIGHT = 1440, 900


async def shoot(out: Path, *, detail: bool, full: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = Config(db=Path(tmp) / "coinbt.db", workers=2, shutdown_grace_s=0.0)
        async with open_system(config) as system:
            await submit_demo(system)
            views = await system.read.tasks(limit=len(DEMO_SPECS))
            for view in views:
                await wait_status(system, view.task_id, "completed")
            running = None if detail else await system.submit(long(seed=11))
            async with server_url(system) as url, async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
                page = await browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
                await page.goto(url)
                await expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
                await expect(page.locator(".spark-line")).to_have_count(len(views))
                if running is not None:
                    bar = page.locator(f'tr[data-task-id="{running.task_id}"] .bar')
                    with anyio.fail_after(60):
                        await expect(bar).to_have_attribute(
                            "aria-valuenow", re.compile(r"^[4-9]\d$"), timeout=60_000
                        )
                if detail:
                    sma = next(v for v in views if v.spec.strategy == "sma_cross")
                    await page.goto(f"{url}/#/task/{sma.task_id}")
                    await expect(page.locator("svg.equity-chart path.series")).to_have_count(2)
                    await expect(page.locator("table.positions tbody tr")).to_have_count(1)
                    await expect(page.locator("svg.price-chart path.marker").first).to_be_attached()
                    await expect(page.locator("table.heatmap")).to_be_visible()
                    await page.mouse.move(WIDTH * 0.55, 420)  # the crosshair and its tooltip
                    if full:
                        await page.set_viewport_size({"width": WIDTH, "height": 2400})
                out.parent.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(out))
                await browser.close()
            if running is not None:
                await system.cancel(running.task_id)


async def shoot_report(out: Path) -> None:
    """The tear sheet of the demo's sma_cross run, made in Python, opened from its file."""
    from coinbt import engine

    bars = engine.synthetic(8760, seed=21, interval="1h")
    result = engine.run(engine.BacktestSpec("sma_cross", {"fast": 24, "slow": 120}), bars)
    with tempfile.TemporaryDirectory() as tmp:
        page_file = Path(tmp) / "report.html"
        result.report(page_file)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            page = await browser.new_page(viewport={"width": 1200, "height": 2400})
            await page.goto(page_file.as_uri())
            await page.screenshot(path=str(out))
            await browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=ROOT / "docs" / "dashboard.png")
    parser.add_argument("--detail", action="store_true", help="photograph a run's detail view")
    parser.add_argument("--tall", action="store_true", help="with --detail: 2400 px tall")
    parser.add_argument("--report", action="store_true", help="photograph a tear sheet")
    args = parser.parse_args()
    if args.report:
        anyio.run(lambda: shoot_report(args.out))
    else:
        anyio.run(lambda: shoot(args.out, detail=args.detail, full=args.tall))
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
