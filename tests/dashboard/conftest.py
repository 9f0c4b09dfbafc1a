"""Headless Chromium for the dashboard tests: Debian's browser driven by Playwright's Python API.

One browser per test module (a fresh context, so fresh session storage, per test); the server and
its System are opened inside each test. Skips, saying why, only where no Chromium can be installed.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, async_playwright

from tests.dashboard.browser import ARGS, CHROMIUM, ROOT


@pytest.fixture(scope="session")
def chromium() -> Path:
    """The Chromium executable (installed by scripts/ensure-chromium if need be)."""
    if not os.access(CHROMIUM, os.X_OK):
        done = subprocess.run(
            [str(ROOT / "scripts" / "ensure-chromium")],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
            timeout=900,
        )
        if done.returncode != 0 or not os.access(CHROMIUM, os.X_OK):
            pytest.skip(f"no Chromium for the dashboard tests: {done.stderr.strip()[-500:]}")
    return CHROMIUM


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    # launch() gives the browser a fresh temporary profile (user-data dir) and removes it on close.
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(chromium), args=ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()
