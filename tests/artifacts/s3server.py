"""A real S3 endpoint on loopback for the tests: moto's server mode in a child process, and a TCP
proxy in front of it that can go down, come back up, or swallow chosen requests (a stalled upload).

Nothing is patched: the code under test talks HTTP to 127.0.0.1 like it would to any S3 service.
``shared_moto()`` starts one server per test process (stopped at exit); every test uses its own
bucket (:func:`new_bucket`).
"""

from __future__ import annotations

import atexit
import functools
import itertools
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from coinbt.artifacts import S3Options

__all__ = (
    "FaultProxy",
    "MotoServer",
    "admin_client",
    "aws_environment",
    "new_bucket",
    "s3_options",
    "shared_moto",
)

MIN_PART = 16 * 1024  # moto accepts parts this small (AWS wants 5 MiB): multipart tests stay fast
_buckets = itertools.count(1)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class MotoServer:
    """``python -m moto.server`` on a free loopback port."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._child: subprocess.Popen[str] | None = None

    def start(self) -> None:
        env = {**os.environ, "S3_UPLOAD_PART_MIN_SIZE": str(MIN_PART), "MOTO_PORT": str(self.port)}
        self._child = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self._child.stderr is not None
        seen: list[str] = []
        for line in self._child.stderr:  # werkzeug says "Running on http://..." once it listens
            seen.append(line)
            if "Running on" in line:
                break
        else:
            raise RuntimeError("moto server did not start:\n" + "".join(seen))
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self._child is not None
        assert self._child.stderr is not None
        for _ in self._child.stderr:  # its request log: read it so the pipe never fills
            pass

    def stop(self) -> None:
        if self._child is not None and self._child.poll() is None:
            self._child.terminate()
            self._child.wait(timeout=10)


_shared: MotoServer | None = None
_lock = threading.Lock()


def shared_moto() -> MotoServer:
    """The test process's moto server, started on first use."""
    global _shared
    with _lock:
        if _shared is None:
            server = MotoServer()
            server.start()
            atexit.register(server.stop)
            _shared = server
        return _shared


def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials through the usual variables (botocore's default chain), and nothing from the
    machine's own AWS files, profile, endpoint variables or instance metadata."""
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "COINBT_S3_ENDPOINT_URL",
        "COINBT_ARTIFACTS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@functools.cache
def admin_client(endpoint: str) -> Any:
    """A plain synchronous botocore client, for the tests' own setup and inspection."""
    import botocore.session

    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def new_bucket(endpoint: str) -> str:
    """A fresh, empty bucket."""
    name = f"coinbt-test-{os.getpid()}-{next(_buckets)}"
    admin_client(endpoint).create_bucket(Bucket=name)
    return name


def s3_options(endpoint: str, **overrides: object) -> S3Options:
    """Small parts (so multipart uploads are quick to test) and short timeouts."""
    fields: dict[str, object] = {
        "endpoint_url": endpoint,
        "multipart_threshold": 3 * MIN_PART,
        "part_size": MIN_PART,
        "connect_timeout": 2.0,
        "read_timeout": 5.0,
        "max_attempts": 2,
    }
    fields.update(overrides)
    return S3Options(**fields)  # type: ignore[arg-type]


class FaultProxy:
    """A TCP proxy to ``target`` on its own loopback port.

    ``down()`` closes the port (clients get "connection refused") and drops open connections;
    ``up()`` listens again on the same port. ``stall(marker)`` makes any connection that sends a
    request containing ``marker`` swallow it: the server never sees it and nothing comes back, so
    the client times out mid-request. New requests without the marker still pass.
    """

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._marker: bytes | None = None
        self.stalled = threading.Event()  # set once a request was swallowed

    def up(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for s in sockets:
            _close(s)

    def stall(self, marker: bytes | None) -> None:
        self._marker = marker

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._sockets |= {client, upstream}
            swallowing = threading.Event()
            threading.Thread(
                target=self._pump, args=(client, upstream, swallowing, True), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(upstream, client, swallowing, False), daemon=True
            ).start()

    def _pump(
        self, source: socket.socket, sink: socket.socket, swallowing: threading.Event, up: bool
    ) -> None:
        tail = b""
        try:
            while data := source.recv(1 << 16):
                marker = self._marker
                if up and marker is not None and marker in tail + data:
                    swallowing.set()
                    self.stalled.set()
                tail = data[-64:]
                if not swallowing.is_set():
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            _close(sink)
            _close(source)


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()


@contextmanager
def proxy_to(server: MotoServer, *, up: bool = True) -> Iterator[FaultProxy]:
    proxy = FaultProxy(server.port)
    if up:
        proxy.up()
    try:
        yield proxy
    finally:
        proxy.down()
