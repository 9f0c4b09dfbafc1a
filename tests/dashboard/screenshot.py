"""Make docs/dashboard.png: the dashboard with the demo backtests and one run in progress.

    .venv/bin/python -m tests.dashboard.screenshot [OUT.png] [--detail]

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


async def shoot(out: Path, *, detail: bool) -> None:
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
                    await expect(page.locator("svg.equity-chart path.series")).to_have_count(1)
                    await expect(page.locator("table.positions tbody tr")).to_have_count(1)
                    await page.mouse.move(WIDTH * 0.55, 420)  # the crosshair and its tooltip
                out.parent.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(out))
                await browser.close()
            if running is not None:
                await system.cancel(running.task_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=ROOT / "docs" / "dashboard.png")
    parser.add_argument("--detail", action="store_true", help="photograph a run's detail view")
    args = parser.parse_args()
    anyio.run(lambda: shoot(args.out, detail=args.detail))
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
