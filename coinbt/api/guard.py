"""What every request passes before a route sees it, and what every response carries.

The threat is a browser: the API's default setup (loopback, no token) trusts whoever can connect,
and any web page the user opens can make the browser connect. :class:`RequestGuard` closes the
ways a page has in (docs/api.md, "Threat model"):

- **DNS rebinding**: a page's own name made to resolve to 127.0.0.1 reaches the service as a
  same-origin page. Its requests carry that name in ``Host``, so a ``Host`` that the server does not
  serve is refused with 421 (loopback names by default; ``coinbt serve --allowed-hosts`` adds more).
- **Cross-site writes**: a page can send a "simple" POST (``mode: "no-cors"``, a ``text/plain``
  or form body) without asking first. A state-changing request is refused with 403 when its
  ``Origin`` is another origin, and with 415 when its body is not of the endpoint's real media type
  (``application/json``; ``text/csv`` for ``POST /datasets``), which no simple request can send.
- **Clickjacking and sniffing**: every response carries a Content-Security-Policy that allows only
  the server's own scripts and styles and no framing, ``X-Frame-Options: DENY``,
  ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer``.

A pure ASGI middleware (no ``BaseHTTPMiddleware``), so event streams pass through unbuffered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coinbt.api.errors import error_response
from coinbt.errors import (
    CoinbtError,
    CrossOriginError,
    MisdirectedRequestError,
    UnsupportedMediaTypeError,
)

__all__ = (
    "BODY_TYPES",
    "LOOPBACK_HOSTS",
    "SECURITY_HEADERS",
    "RequestGuard",
    "host_name",
)

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEFAULT_BODY_TYPE = "application/json"
BODY_TYPES: Mapping[str, str] = {"/datasets": "text/csv"}  # by path; the rest take JSON

CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)


def host_name(host: str) -> str:
    """The name in a ``Host`` header value: lower case, without the port, brackets or final dot."""
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:8000
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


class RequestGuard:
    """Refuse requests for other hosts (421), cross-origin writes (403) and writes of the wrong
    media type (415); add :data:`SECURITY_HEADERS` to every response.

    ``allowed_hosts``: the names the server answers to, besides :data:`LOOPBACK_HOSTS`; ``"*"``
    allows any (behind a proxy that checks the name itself).
    """

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str] = ()) -> None:
        self.app = app
        names = {host_name(h) for h in allowed_hosts if h.strip()}
        self.any_host = "*" in names
        self.hosts = frozenset(names | set(LOOPBACK_HOSTS))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", ())}
                extra = [(n, v) for n, v in SECURITY_HEADERS if n not in present]
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        try:
            self.check(scope)
        except CoinbtError as refused:
            await error_response(refused)(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    def check(self, scope: Scope) -> None:
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if not self.any_host and host_name(host) not in self.hosts:
            raise MisdirectedRequestError(
                f"this server does not serve the host {host!r}; an operator can add it with "
                "coinbt serve --allowed-hosts"
            )
        if scope["method"] not in UNSAFE_METHODS:
            return
        origin = headers.get("origin")
        if origin is not None and _netloc(origin) != host.strip().lower():
            raise CrossOriginError(
                f"a page of another origin ({origin}) may not change anything on this server"
            )
        if scope["method"] == "DELETE":
            return  # no body; and a browser must ask first (preflight) before sending a DELETE
        expected = BODY_TYPES.get(scope["path"], DEFAULT_BODY_TYPE)
        given = headers.get("content-type")
        if given is None:
            if _has_body(headers):
                raise UnsupportedMediaTypeError(f"send the body as Content-Type: {expected}")
            return
        media_type = given.split(";", 1)[0].strip().lower()
        if media_type != expected:
            raise UnsupportedMediaTypeError(
                f"this endpoint takes Content-Type: {expected}, not {media_type or 'none'}"
            )


def _netloc(origin: str) -> str | None:
    """``host[:port]`` of an ``Origin`` header (``None`` for ``null`` or anything unparseable)."""
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return parts.netloc.lower()


def _has_body(headers: Headers) -> bool:
    length = headers.get("content-length")
    return "transfer-encoding" in headers or (
        length is not None and length.strip() not in ("", "0")
    )
