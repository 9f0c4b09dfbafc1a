"""Parsing query and path parameters into typed values, with 400s that name the parameter."""

from __future__ import annotations

import re

from starlette.requests import Request

from coinbt.errors import InvalidRequestError, PayloadTooLargeError
from coinbt.lifecycle import Status

__all__ = ("int_param", "optional_int_param", "read_body", "status_param", "task_id_param")

# Matched whole (fullmatch): "$" would let a trailing newline through.
_TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_INTEGER = re.compile(r"-?[0-9]{1,19}")  # ASCII digits only: "²".isdigit() is true


def int_param(
    request: Request, name: str, default: int, *, minimum: int = 0, maximum: int = 2**62
) -> int:
    """The integer query parameter ``name`` (``default`` if absent); 400 naming it if bad."""
    value = optional_int_param(request, name, minimum=minimum, maximum=maximum)
    return default if value is None else value


def optional_int_param(
    request: Request, name: str, *, minimum: int = 0, maximum: int = 2**62
) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if not _INTEGER.fullmatch(raw):
        raise InvalidRequestError(f"must be an integer, got {raw[:40]!r}", field=name)
    value = int(raw)
    if not minimum <= value <= maximum:
        raise InvalidRequestError(f"must be between {minimum} and {maximum}", field=name)
    return value


def status_param(request: Request) -> Status | None:
    """The ``status`` query parameter of a task list (None if absent); 400 naming it if it is
    not a ``lifecycle.Status``."""
    raw = request.query_params.get("status") or None
    if raw is None:
        return None
    try:
        return Status(raw)
    except ValueError:
        raise InvalidRequestError(f"must be one of {', '.join(Status)}", field="status") from None


def task_id_param(request: Request) -> str:
    task_id = str(request.path_params["task_id"])
    if not _TASK_ID.fullmatch(task_id):
        raise InvalidRequestError(
            "a task id is 1-128 letters, digits, '.', '_' or '-'", field="task_id"
        )
    return task_id


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes (413) before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(limit)
        chunks.append(chunk)
    return b"".join(chunks)
