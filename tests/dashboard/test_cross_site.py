"""Other web pages against a local coinbt (no token, loopback) in real Chromium: a page on another
port sending "simple" cross-site writes, a DNS-rebinding page, and the dashboard in a frame.

The server's guard (coinbt/api/guard.py) must refuse every one: nothing queued, nothing stored.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
import pytest
from playwright.async_api import Browser, async_playwright, expect

from tests.api.helpers import server_url
from tests.dashboard.browser import ARGS
from tests.system import system_factory, tiny

pytestmark = pytest.mark.asyncio(loop_scope="module")

WAIT_MS = 20_000
SPEC = msgspec.json.encode(tiny()).decode()
CSV = "timestamp,open,high,low,close,volume\n1000,1,2,0.5,1.5,10\n2000,1,2,0.5,1.5,10\n"

# Sends each write the way a page may without asking the server first (no CORS preflight), and
# resolves once the server has answered: an opaque response the page cannot read, or a network
# error when the answer's Cross-Origin-Resource-Policy forbids even that.
SIMPLE_WRITES = """
async ([base, spec, csv]) => {
  const sent = [];
  const simple = { mode: "no-cors", method: "POST" };
  const fetch = (url, init) => window.fetch(url, init).catch((e) => e);
  const text = { "Content-Type": "text/plain" };
  await fetch(`${base}/backtests`, { ...simple, headers: text, body: spec });
  sent.push("text/plain");
  await fetch(`${base}/backtests`, { ...simple, body: new Blob([spec]) });
  sent.push("blob");
  await fetch(`${base}/backtests`, { ...simple, body: new URLSearchParams({ spec }) });
  sent.push("form");
  await fetch(`${base}/datasets?name=evil-1m`, { ...simple, body: csv });
  sent.push("dataset");
  return sent;
}
"""


class _Page(BaseHTTPRequestHandler):
    html = b"<!doctype html><title>another site</title><p>hello</p>"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(self.html)))
        self.end_headers()
        self.wfile.write(self.html)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def other_site() -> Iterator[str]:
    """A plain web server on another loopback port: the attacker's page."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_a_page_on_another_port_queues_and_stores_nothing(
    browser: Browser, tmp_path: Path
) -> None:
    async with (
        system_factory(tmp_path)(workers=0) as system,
        server_url(system) as url,
    ):
        context = await browser.new_context()
        try:
            page = await context.new_page()
            page.set_default_timeout(WAIT_MS)
            with other_site() as evil:
                await page.goto(evil)
                sent = await page.evaluate(SIMPLE_WRITES, [url, SPEC, CSV])
            assert sent == ["text/plain", "blob", "form", "dataset"]
        finally:
            await context.close()
        assert await system.store.last_position() == 0
        assert await system.catalog.all() == []


async def test_a_dns_rebinding_page_can_neither_read_nor_write(
    chromium: Path, tmp_path: Path
) -> None:
    """attacker.test resolves to 127.0.0.1: its page, on the server's own port, is same-origin
    with the server for the browser, and only the Host header tells them apart."""
    async with (
        system_factory(tmp_path)(workers=0) as system,
        server_url(system) as url,
        async_playwright() as playwright,
    ):
        task = await system.submit(tiny())
        port = url.rsplit(":", 1)[1]
        rules = "--host-resolver-rules=MAP attacker.test 127.0.0.1"
        # Chromium's own defence (Local Network Access) off: the server must not rely on a
        # browser having it, and other browsers do not.
        lna = "--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests"
        browser = await playwright.chromium.launch(
            executable_path=str(chromium), args=[*ARGS, rules, lna], headless=True
        )
        try:
            page = await browser.new_page()
            page.set_default_timeout(WAIT_MS)
            evil = f"http://attacker.test:{port}"
            # The attacker's page, as its own server sent it before the name was rebound.
            await page.route(
                f"{evil}/rebind.html",
                lambda route: route.fulfill(content_type="text/html", body="<p>rebinding</p>"),
            )
            await page.goto(f"{evil}/rebind.html")
            statuses = await page.evaluate(
                """async ([taskId, spec]) => [
                  (await fetch("/backtests")).status,
                  (await fetch("/backtests", { method: "POST", body: spec,
                    headers: { "Content-Type": "application/json" } })).status,
                  (await fetch(`/backtests/${taskId}`, { method: "DELETE" })).status,
                ]""",
                [task.task_id, SPEC],
            )
        finally:
            await browser.close()
        assert statuses == [421, 421, 421]
        assert await system.store.last_position() == 1  # the test's own submission only
        assert (await system.task(task.task_id)).status == "queued"


async def test_the_dashboard_refuses_to_be_framed_by_another_site(
    browser: Browser, tmp_path: Path
) -> None:
    async with (
        system_factory(tmp_path)(workers=0) as system,
        server_url(system) as url,
    ):
        context = await browser.new_context()
        try:
            page = await context.new_page()
            page.set_default_timeout(WAIT_MS)
            with other_site() as evil:
                await page.goto(evil)
                await page.evaluate(
                    """(url) => new Promise((resolve) => {
                      const frame = document.createElement("iframe");
                      frame.onload = () => resolve();
                      frame.src = url;
                      document.body.append(frame);
                    })""",
                    url + "/",
                )
                # A frame the browser refused holds an error page, not the dashboard: the
                # dashboard's own script would have rendered its tasks table.
                frame = page.frames[1]
                assert await frame.locator("#view").count() == 0
                await expect(page.locator("iframe")).to_be_attached()
        finally:
            await context.close()
