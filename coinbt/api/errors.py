"""Errors as HTTP responses: one table from error class to status code, one JSON shape.

Every error body is ``{"error": {"code", "message", "details"}}``; ``details`` carries field paths
(``[{"field": "params.fast", "message": ...}]``) for invalid specs. Nothing a client sends can make
a 500: unexpected exceptions are logged and answered with a generic 500 without a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from coinbt.errors import (
    ActorCrashLoopError,
    ArtifactBucketNotFoundError,
    ArtifactCredentialsError,
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    ArtifactPendingError,
    ArtifactStoreUnavailableError,
    CoinbtError,
    ConcurrencyError,
    CrossOriginError,
    DatabaseError,
    DataError,
    DatasetExistsError,
    DatasetNotFoundError,
    IdempotencyKeyReusedError,
    InvalidRequestError,
    InvalidTransitionError,
    MailboxFullError,
    MisdirectedRequestError,
    MissingExtraError,
    PayloadTooLargeError,
    QueueFullError,
    ShuttingDownError,
    SpecError,
    TaskNotFoundError,
    TooManyStreamsError,
    TooManyUploadsError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
)

__all__ = ("STATUS", "error_response", "handle_error", "json_response")

log = logging.getLogger("coinbt.api")

STATUS: dict[type[CoinbtError], int] = {
    InvalidRequestError: 400,
    InvalidTransitionError: 400,
    UnauthorizedError: 401,
    CrossOriginError: 403,
    TaskNotFoundError: 404,
    DatasetNotFoundError: 404,
    ArtifactNotFoundError: 404,
    DatasetExistsError: 409,
    IdempotencyKeyReusedError: 422,
    ConcurrencyError: 409,  # another process changed the task at the same moment: retry
    PayloadTooLargeError: 413,
    UnsupportedMediaTypeError: 415,
    MisdirectedRequestError: 421,
    SpecError: 422,
    DataError: 422,
    QueueFullError: 429,
    MailboxFullError: 429,
    TooManyUploadsError: 429,
    ArtifactIntegrityError: 500,
    ArtifactBucketNotFoundError: 502,  # the object store is misconfigured: the operator's to fix
    ArtifactCredentialsError: 502,
    ArtifactPendingError: 503,  # with Retry-After: the upload is being retried
    ArtifactStoreUnavailableError: 503,
    ShuttingDownError: 503,
    TooManyStreamsError: 503,
    MissingExtraError: 501,  # an optional extra (pyarrow, pandas) is not installed on the server
    DatabaseError: 503,
    ActorCrashLoopError: 503,
}

# 5xx answers that are part of normal operation, logged at INFO: an upload still being retried
# (its cause is logged by the uploader), a service shutting down.
_EXPECTED = (ArtifactPendingError, ShuttingDownError)

_encoder = msgspec.json.Encoder()


def json_response(
    content: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON response encoded by msgspec (several times faster than the json module)."""
    return Response(
        _encoder.encode(content),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )


def _status(error: CoinbtError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def _details(error: CoinbtError) -> Any:
    match error:
        case SpecError():
            return [e.to_dict() for e in error.errors]
        case DataError():
            return {"row": error.row, "column": error.column}
        case InvalidRequestError() if error.field:
            return [{"field": error.field, "message": str(error)}]
        case IdempotencyKeyReusedError():
            return {"field": "Idempotency-Key", "task_id": error.task_id}
        case InvalidTransitionError():
            return {"task_id": error.task_id, "status": error.status}
        case QueueFullError():
            return {"capacity": error.capacity}
        case PayloadTooLargeError():
            return {"limit": error.limit}
        case MissingExtraError():
            return {"extra": error.extra, "package": error.package}
        case ArtifactPendingError():
            return {"key": error.key, "attempts": error.attempts, "last_error": error.last_error}
    return None


def error_response(error: CoinbtError) -> Response:
    status = _status(error)
    headers = {}
    retry = getattr(error, "retry_after_s", 1.0 if status in (429, 503) else None)
    if status in (429, 503) and retry is not None:
        headers["Retry-After"] = str(max(1, round(retry)))
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="coinbt"'
    body = {"error": {"code": error.code, "message": str(error), "details": _details(error)}}
    return json_response(body, status, headers)


async def handle_error(request: Request, exc: Exception) -> Response:
    """Starlette exception handler for every exception."""
    if isinstance(exc, CoinbtError):
        if isinstance(exc, _EXPECTED):  # a documented answer, not a fault of the server
            log.info("%s %s: %s", request.method, request.url.path, exc)
        elif _status(exc) >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, exc)
        return error_response(exc)
    log.exception("unexpected error in %s %s", request.method, request.url.path)
    body = {"error": {"code": "internal", "message": "internal error (logged)", "details": None}}
    return json_response(body, 500)
