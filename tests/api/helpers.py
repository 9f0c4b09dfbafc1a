"""Clients for API tests: the ASGI app in-process, or a real uvicorn server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx

from coinbt.api import create_app
from coinbt.runtime import System
from coinbt.server import ServeOptions, serve_system


@asynccontextmanager
async def asgi_client(system: System, token: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(system, token=token))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield client


@asynccontextmanager
async def server_url(
    system: System, token: str | None = None, **options: Any
) -> AsyncIterator[str]:
    """A real uvicorn server for ``system`` on a free loopback port; yields its base URL.
    ``options``: more :class:`ServeOptions` fields (limits)."""
    stop = anyio.Event()
    ready = anyio.Event()
    urls: list[str] = []

    def on_ready(url: str) -> None:
        urls.append(url.rstrip("/"))
        ready.set()

    serve_options = ServeOptions(
        host="127.0.0.1", port=0, token=token, log_level="warning", **options
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(
            lambda: serve_system(
                system, serve_options, on_ready=on_ready, handle_signals=False, stop=stop
            )
        )
        with anyio.fail_after(30):
            await ready.wait()
        try:
            yield urls[0]
        finally:
            stop.set()


@asynccontextmanager
async def http_client(
    kind: str, system: System, token: str | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """``kind`` "asgi" (in-process) or "uvicorn" (a real server on a free loopback port)."""
    if kind == "asgi":
        async with asgi_client(system, token) as client:
            yield client
        return
    async with (
        server_url(system, token) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        yield client
