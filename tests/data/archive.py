"""A Binance-like kline archive on a real HTTP server on loopback (a thread of http.server).

Files are zips made from generated bars, each with its ``.CHECKSUM``. Faults are per path:
``drop_after[path] = n`` sends n bytes of the body, goes silent until the client asks again (it
times out and resumes), then drops the connection (once); ``stall`` holds a response until the
test ends (no sleeping: both wait on events); an unknown path answers 404.
Range requests are honoured, so an interrupted download can resume.
"""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from coinbt import engine


@dataclass
class Archive:
    files: dict[str, bytes] = field(default_factory=dict)
    drop_after: dict[str, int] = field(default_factory=dict)
    stall: set[str] = field(default_factory=set)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (path, Range header)
    release: threading.Event = field(default_factory=threading.Event)
    asked: dict[str, threading.Event] = field(default_factory=dict)
    url: str = ""

    def add_month(
        self, symbol: str, interval: str, month: date, market: str = "spot", *, holes: int = 0
    ) -> engine.Bars:
        start = datetime(month.year, month.month, 1, tzinfo=UTC)
        nxt = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)
        step = engine.parse_interval(interval)
        count = int((nxt - start).total_seconds() * 1000) // step
        stem = f"{symbol}-{interval}-{month:%Y-%m}"
        path = f"data/{market}/monthly/klines/{symbol}/{interval}/{stem}.zip"
        return self._add(path, stem, int(start.timestamp() * 1000), step, count, holes)

    def add_day(self, symbol: str, interval: str, day: date, market: str = "spot") -> engine.Bars:
        start = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
        step = engine.parse_interval(interval)
        stem = f"{symbol}-{interval}-{day:%Y-%m-%d}"
        path = f"data/{market}/daily/klines/{symbol}/{interval}/{stem}.zip"
        return self._add(path, stem, start, step, 86_400_000 // step, 0)

    def _add(
        self, path: str, stem: str, start: int, step: int, count: int, holes: int
    ) -> engine.Bars:
        bars = engine.synthetic(count, seed=start % 1000, interval=f"{step}ms")
        ts = start + np.arange(count, dtype=np.int64) * step
        keep = np.ones(count, dtype=bool)
        if holes:
            keep[count // 2 : count // 2 + holes] = False
        # As the real files: prices in cents and volumes written with 8 decimals.
        o, h, lo, c = (np.round(x, 2) for x in (bars.open, bars.high, bars.low, bars.close))
        v = np.round(bars.volume, 5)
        lines = [
            f"{t},{a:.8f},{b:.8f},{d:.8f},{e:.8f},{g:.8f},{t + step - 1},0,1,0,0,0"
            for t, a, b, d, e, g in zip(
                ts[keep].tolist(),
                *(x[keep].tolist() for x in (o, h, lo, c, v)),
                strict=True,
            )
        ]  # the 12 columns of a kline file
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr(f"{stem}.csv", "\n".join(lines) + "\n")
        self.put(path, buffer.getvalue())
        return engine.Bars(
            ts[keep],
            bars.open[keep],
            bars.high[keep],
            bars.low[keep],
            bars.close[keep],
            bars.volume[keep],
        )

    def put(self, path: str, data: bytes, checksum: bytes | None = None) -> None:
        name = path.rsplit("/", 1)[-1]
        self.files[path] = data
        digest = hashlib.sha256(data).hexdigest().encode() if checksum is None else checksum
        self.files[path + ".CHECKSUM"] = digest + b"  " + name.encode() + b"\n"


@contextmanager
def serve_archive() -> Iterator[Archive]:
    archive = Archive()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path = self.path.lstrip("/")
            archive.requests.append((path, self.headers.get("Range", "")))
            asked_again = archive.asked.pop(path, None)
            if asked_again is not None:
                asked_again.set()
            data = archive.files.get(path)
            if data is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if path in archive.stall:
                archive.release.wait(30)
                return
            start = 0
            ranged = self.headers.get("Range", "")
            if ranged.startswith("bytes="):
                start = int(ranged[6:].split("-")[0])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            cut = archive.drop_after.pop(path, None)
            if cut is not None:
                archive.asked[path] = again = threading.Event()
                self.wfile.write(body[:cut])
                self.wfile.flush()
                again.wait(30)
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self.wfile.write(body)

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            pass  # a client that gave up (timeout, cancelled download): not the test's output

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    archive.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield archive
    finally:
        archive.release.set()
        server.shutdown()
        server.server_close()
        thread.join(10)
