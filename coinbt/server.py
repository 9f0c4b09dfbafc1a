"""``coinbt serve``: the system and the HTTP API in one asyncio process, served by uvicorn."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import anyio
import uvicorn

from coinbt import defaults
from coinbt._connection import HEAD_TIMEOUT_S, timed_h11
from coinbt.api import create_app
from coinbt.api.stream import MAX_STREAMS
from coinbt.errors import CoinbtError
from coinbt.runtime import Config, System, open_system

__all__ = ("ServeOptions", "is_loopback", "serve", "serve_system")

log = logging.getLogger("coinbt")


class InsecureBindError(CoinbtError):
    """Listening beyond loopback without an API token."""

    code = "insecure_bind"


@dataclass
class ServeOptions:
    host: str = defaults.HOST
    port: int = defaults.PORT
    token: str | None = None
    demo: bool = False
    log_level: str = "info"
    allowed_hosts: tuple[str, ...] = ()  # names served besides loopback ("*": any)
    # Limits (docs/api.md, "Limits"): a connection's request head must arrive within
    # head_timeout_s; a kept-alive connection idle for keep_alive_s is closed; beyond
    # max_connections uvicorn answers 503; beyond max_streams, GET /events streams get 503.
    head_timeout_s: float = HEAD_TIMEOUT_S
    keep_alive_s: float = defaults.KEEP_ALIVE_S
    max_connections: int = defaults.MAX_CONNECTIONS
    max_streams: int = MAX_STREAMS


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


MIN_TOKEN_LENGTH = 16
MAX_HEAD_BYTES = 16 * 1024  # a request line and headers longer than this: 400


def check_bind(options: ServeOptions) -> None:
    """Off loopback, refuse to start without a token of at least 16 non-whitespace characters."""
    if is_loopback(options.host):
        return
    if not options.token:
        raise InsecureBindError(
            f"refusing to listen on {options.host} without an API token: anyone who can reach "
            "it could run and cancel backtests. Set COINBT_API_TOKEN (clients then send "
            "'Authorization: Bearer <token>'), or listen on 127.0.0.1."
        )
    if len(options.token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in options.token):
        raise InsecureBindError(
            f"refusing to listen on {options.host} with a weak API token: COINBT_API_TOKEN must be "
            f"at least {MIN_TOKEN_LENGTH} characters without whitespace (e.g. the output of "
            "'openssl rand -hex 24')"
        )


def served_hosts(options: ServeOptions) -> tuple[str, ...]:
    """The ``Host`` names the server answers to besides loopback: ``--allowed-hosts``, and the
    address it listens on when that is one address (not 0.0.0.0 or ::)."""
    hosts = list(options.allowed_hosts)
    if options.host not in ("0.0.0.0", "::", ""):
        hosts.append(options.host)
    return tuple(hosts)


async def serve(
    config: Config,
    options: ServeOptions,
    *,
    on_ready: Callable[[str], None] | None = None,
    handle_signals: bool = True,
) -> None:
    """Run until SIGINT/SIGTERM (or cancellation); then stop taking requests, finish (or leave
    for recovery) the running backtests, and close the log cleanly."""
    check_bind(options)
    async with open_system(config) as system:
        await serve_system(system, options, on_ready=on_ready, handle_signals=handle_signals)


async def serve_system(
    system: System,
    options: ServeOptions,
    *,
    on_ready: Callable[[str], None] | None = None,
    handle_signals: bool = True,
    stop: anyio.Event | None = None,
) -> None:
    """Serve an already open system over HTTP until a signal, or until ``stop`` is set."""
    if options.demo:
        from coinbt.demo import submit_demo

        submitted = await submit_demo(system)
        if submitted:
            log.info("submitted %d demo backtests", submitted)
    app = create_app(
        system,
        token=options.token,
        allowed_hosts=served_hosts(options),
        max_streams=options.max_streams,
    )
    server = _Server(
        uvicorn.Config(
            app,
            host=options.host,
            port=options.port,
            log_level=options.log_level,
            lifespan="off",
            access_log=False,
            http=timed_h11(options.head_timeout_s),
            timeout_keep_alive=max(1, round(options.keep_alive_s)),
            h11_max_incomplete_event_size=MAX_HEAD_BYTES,
            limit_concurrency=options.max_connections,
            timeout_graceful_shutdown=5,
        )
    )
    signals_cm = (
        anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM)
        if handle_signals
        else contextlib.nullcontext(None)
    )
    with signals_cm as signals:
        async with anyio.create_task_group() as tg:

            async def run_server() -> None:
                await server.serve()
                tg.cancel_scope.cancel()

            async def stop_on_signal() -> None:
                if signals is None:
                    return
                async for signum in signals:
                    log.info("%s: shutting down", signal.Signals(signum).name)
                    if server.should_exit:
                        server.force_exit = True  # a second Ctrl-C: don't wait for clients
                    server.should_exit = True

            async def stop_on_event() -> None:
                if stop is not None:
                    await stop.wait()
                    server.should_exit = True

            tg.start_soon(run_server)
            tg.start_soon(stop_on_signal)
            tg.start_soon(stop_on_event)
            while not server.started:  # uvicorn offers no start-up event to wait on
                if server.should_exit:
                    return
                await anyio.sleep(0.01)
            if on_ready is not None:
                on_ready(_url(server, options.host))


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: coinbt's stops the server first and then the
    system (uvicorn's would re-raise the signal after serving and kill the process before the
    event log is closed)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _url(server: uvicorn.Server, host: str) -> str:
    port = server.servers[0].sockets[0].getsockname()[1] if server.servers else 0
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def ready_message(url: str) -> None:
    print(f"coinbt is serving on {url}  (dashboard: {url}, API: {url}openapi.json)", flush=True)
    print("stop it with Ctrl-C", file=sys.stderr, flush=True)
