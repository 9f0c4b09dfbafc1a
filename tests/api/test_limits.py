"""Limits a client cannot talk its way around, against real uvicorn on loopback: event streams start
at the end and are bounded in number; idle and slow-header connections are closed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import httpx
import msgspec
import pytest
from anyio.abc import SocketStream

from coinbt.runtime import System
from tests.api.helpers import server_url
from tests.system import OpenSystem, system_factory, tiny

SSE = {"Accept": "text/event-stream"}


@pytest.fixture
def open_system(tmp_path: Path) -> OpenSystem:
    return system_factory(tmp_path)


async def _projected(system: System) -> int:
    """Wait until the read models include every appended event; their position."""
    with anyio.fail_after(30):
        while system.projector.position < await system.store.last_position():
            await system.projector.advanced_hint().wait()
    return system.projector.position


async def _first_event_position(stream: httpx.Response) -> int:
    async for line in stream.aiter_lines():
        if line.startswith("data:") and '"position"' in line:
            position: int = json.loads(line[5:])["position"]
            return position
    raise AssertionError("the stream ended")


async def test_a_stream_without_after_starts_at_the_end(open_system: OpenSystem) -> None:
    async with open_system(workers=0) as system, server_url(system) as url:
        for seed in range(5):
            await system.submit(tiny(seed=seed))
        end = await _projected(system)
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            with anyio.fail_after(30):
                async with http.stream("GET", "/events", headers=SSE) as stream:
                    assert stream.status_code == 200
                    new = await http.post("/backtests", json=msgspec.to_builtins(tiny(seed=9)))
                    assert await _first_event_position(stream) == end + 1
                    assert new.json()["task_id"]
                resume = {**SSE, "Last-Event-ID": "2"}
                async with http.stream("GET", "/events", headers=resume) as stream:
                    assert await _first_event_position(stream) == 3  # asked for: replayed


@asynccontextmanager
async def _open_streams(http: httpx.AsyncClient, n: int) -> AsyncIterator[list[httpx.Response]]:
    async with AsyncExitStack() as stack:
        streams = []
        for _ in range(n):
            stream = await stack.enter_async_context(http.stream("GET", "/events", headers=SSE))
            assert stream.status_code == 200
            streams.append(stream)
        yield streams


async def test_the_number_of_event_streams_is_bounded(open_system: OpenSystem) -> None:
    async with (
        open_system(workers=0) as system,
        server_url(system, max_streams=2) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        with anyio.fail_after(30):
            async with _open_streams(http, 2):
                refused = await http.get("/events", headers=SSE)
                assert refused.status_code == 503
                assert refused.json()["error"]["code"] == "too_many_streams"
                assert int(refused.headers["Retry-After"]) >= 1
                pages = await http.get("/events")  # JSON pages are not streams
                assert pages.status_code == 200
            # The server sees the two streams close as their connections do: a new one opens.
            while True:
                async with http.stream("GET", "/events", headers=SSE) as stream:
                    if stream.status_code == 200:
                        break
                await anyio.wait_all_tasks_blocked()


async def _connect(url: str) -> SocketStream:
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    return await anyio.connect_tcp(parts.hostname, parts.port)


async def _closed_by_server(sock: SocketStream) -> bool:
    """Read until the server closes the connection (True) or answers something (False)."""
    try:
        data = await sock.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError):
        return True
    return not data


async def test_a_connection_that_sends_nothing_is_closed(open_system: OpenSystem) -> None:
    async with open_system(workers=0) as system, server_url(system, head_timeout_s=0.5) as url:
        with anyio.fail_after(10):
            sock = await _connect(url)
            async with sock:
                assert await _closed_by_server(sock)


async def test_a_connection_sending_its_headers_a_byte_at_a_time_is_closed(
    open_system: OpenSystem,
) -> None:
    """Slowloris: every byte arrives in time for uvicorn's keep-alive timer, never the whole
    head. The head's deadline runs from the connection, not from the last byte."""
    async with open_system(workers=0) as system, server_url(system, head_timeout_s=0.5) as url:
        head = b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 10_000
        with anyio.fail_after(10):
            sock = await _connect(url)
            async with sock:
                for byte in head:  # bounded: the deadline (0.5 s) comes long before the end
                    try:
                        await sock.send(bytes([byte]))
                    except (anyio.BrokenResourceError, ConnectionResetError, BrokenPipeError):
                        break
                    with anyio.move_on_after(0.05):  # one byte per 50 ms, or the server's close
                        if await _closed_by_server(sock):
                            break
                else:
                    raise AssertionError("the whole slow head was accepted")


async def test_a_kept_alive_connection_that_goes_quiet_is_closed(open_system: OpenSystem) -> None:
    async with (
        open_system(workers=0) as system,
        server_url(system, head_timeout_s=0.5, keep_alive_s=1) as url,
    ):
        with anyio.fail_after(10):
            sock = await _connect(url)
            async with sock:
                await sock.send(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
                answer = await sock.receive()
                assert answer.startswith(b"HTTP/1.1 200")
                while not await _closed_by_server(sock):
                    pass  # the rest of the answer, if it came in pieces
