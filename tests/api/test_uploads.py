"""Uploads through real uvicorn on loopback (issue 19, finding 3): parsed as the bytes arrive,
refused at the first bad row before the body ends, bounded memory, bounded concurrency."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import httpx
import pytest

from tests.api.helpers import server_url
from tests.system import system_factory

HEADER = b"timestamp,open,high,low,close,volume\n"
T0 = 1_704_067_200_000
MB = 1 << 20


def rows(first: int, count: int) -> bytes:
    return b"".join(
        b"%d,100.5,101.25,99.75,100.25,12.5\n" % (T0 + (first + i) * 60_000) for i in range(count)
    )


def rss_anon_kb(pid: int) -> int:
    """Anonymous resident memory of process ``pid``. File-backed pages (the memory-mapped column
    files being written out) are page cache, not memory the upload holds."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise AssertionError("no RssAnon in /proc/<pid>/status")


@contextmanager
def serve_process(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """``coinbt serve`` as a process of its own (so only the server's memory is sampled)."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "coinbt",
            "serve",
            "--db",
            str(tmp_path / "s.db"),
            "--port",
            "0",
            "--workers",
            "0",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    assert child.stdout is not None
    try:
        line = child.stdout.readline()
        assert "coinbt is serving on http://127.0.0.1:" in line, line
        yield line.split()[4].rstrip("/"), child.pid
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.communicate(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
                child.communicate()


def open_upload(url: str, name: str, length: int) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    head = (
        f"POST /datasets?name={name} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n"
        f"Content-Type: text/csv\r\nContent-Length: {length}\r\n\r\n"
    )
    sock.sendall(head.encode())
    return sock


def read_status(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1])


@pytest.mark.slow
def test_a_large_upload_is_parsed_in_bounded_memory(tmp_path: Path) -> None:
    total_rows = 1_000_000  # about 46 MB of CSV
    step = 40_000

    def body() -> Iterator[bytes]:
        yield HEADER
        for first in range(0, total_rows, step):
            yield rows(first, step)

    with serve_process(tmp_path) as (url, pid), httpx.Client(base_url=url, timeout=120) as http:
        assert http.get("/health").status_code == 200
        before = rss_anon_kb(pid)
        peak = 0
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.wait(0.005):  # the sampling period
                peak = max(peak, rss_anon_kb(pid) - before)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            response = http.post(
                "/datasets?name=big", content=body(), headers={"Content-Type": "text/csv"}
            )
        finally:
            stop.set()
            sampler.join()
        assert response.status_code == 201, response.text
        assert response.json()["rows"] == total_rows
    size_mb = (len(HEADER) + len(rows(0, step)) * (total_rows // step)) / MB
    assert size_mb > 40
    # Held whole, the body alone would be 46 MB (plus its parsed columns, ~40 MB more).
    assert peak < 24 * 1024, f"anonymous memory grew by {peak / 1024:.0f} MB for {size_mb:.0f} MB"


async def test_a_bad_row_is_refused_before_the_body_ends(tmp_path: Path) -> None:
    first = HEADER + b"2024-01-01T00:00:00Z,1,2,0.5,1.5,10\nnot-a-time,1,2,0.5,1.5,10\n"
    first += rows(10, 40_000)  # more than one parsing chunk (1 MB): the bad row is parsed
    declared = 300 * MB
    async with system_factory(tmp_path)(workers=0) as system, server_url(system) as url:
        sock = await anyio.to_thread.run_sync(open_upload, url, "bad", declared)
        try:
            await anyio.to_thread.run_sync(sock.sendall, first)
            status = await anyio.to_thread.run_sync(read_status, sock)  # the rest never sent
        finally:
            sock.close()
        assert status == 422
        assert await system.catalog.all() == []
    leftovers = [p.name for p in (tmp_path / "datasets").glob("*")]
    assert leftovers == []


async def test_concurrent_uploads_are_bounded(tmp_path: Path) -> None:
    async with system_factory(tmp_path)(workers=0) as system, server_url(system) as url:
        held = []
        try:
            for name in ("one", "two"):
                sock = await anyio.to_thread.run_sync(open_upload, url, name, 100 * MB)
                await anyio.to_thread.run_sync(sock.sendall, HEADER + rows(0, 10))
                held.append(sock)
            spools = tmp_path / "datasets"
            with anyio.fail_after(30):  # both uploads are being parsed
                while len(list(spools.glob(".*.spool"))) < 2:
                    await anyio.wait_all_tasks_blocked()
                    await anyio.to_thread.run_sync(lambda: None)
            async with httpx.AsyncClient(timeout=30) as http:
                third = await http.post(
                    f"{url}/datasets?name=three",
                    content=HEADER + rows(0, 10),
                    headers={"Content-Type": "text/csv"},
                )
            assert third.status_code == 429
            assert third.json()["error"]["code"] == "too_many_uploads"
        finally:
            for sock in held:
                sock.close()
        async with httpx.AsyncClient(timeout=30) as http:
            with anyio.fail_after(30):  # once the held ones are gone, uploads are taken again
                while True:
                    again = await http.post(
                        f"{url}/datasets?name=three",
                        content=HEADER + rows(0, 10),
                        headers={"Content-Type": "text/csv"},
                    )
                    if again.status_code != 429:
                        break
                    await anyio.wait_all_tasks_blocked()
        assert again.status_code == 201, again.text
