"""Every default of the service, in one place (the lowest rung: imports nothing of coinbt).

``Config`` (coinbt.runtime), the TaskManager, ``ServeOptions`` (coinbt.server), the HTTP
handlers' body limits and ``coinbt serve --help`` all read them from here, and the docs cite this
module (docs/service.md, "Defaults"); ``tests/test_architecture.py`` checks that none of those
spells a value of its own.
"""

from __future__ import annotations

import os

__all__ = (
    "BACKUP_EVERY_S",
    "BATCH_BODY_LIMIT",
    "FINISHED_CACHE",
    "HEAD_TIMEOUT_S",
    "HEARTBEAT_S",
    "HOST",
    "KEEP_ALIVE_S",
    "MAILBOX",
    "MAX_ATTEMPTS",
    "MAX_BARS",
    "MAX_BATCH",
    "MAX_COMBINATIONS",
    "MAX_CONNECTIONS",
    "MAX_STREAMS",
    "PORT",
    "QUEUE_CAPACITY",
    "RULES_BODY_LIMIT",
    "S3_CONNECT_TIMEOUT_S",
    "S3_MAX_ATTEMPTS",
    "S3_MULTIPART_THRESHOLD",
    "S3_PART_SIZE",
    "S3_READ_TIMEOUT_S",
    "SHUTDOWN_GRACE_S",
    "SMALL_BARS",
    "SPEC_BODY_LIMIT",
    "STREAM_KEEP_ALIVE_S",
    "SWEEP_BODY_LIMIT",
    "UPLOAD_BACKOFF_S",
    "UPLOAD_BODY_LIMIT",
    "URL",
    "worker_count",
)

# --- the task manager ----------------------------------------------------------------------------

QUEUE_CAPACITY = 10_000
"""Queued tasks before a submit is refused (429 ``queue_full``)."""

MAX_ATTEMPTS = 3
"""Runs of a task interrupted by restarts before it fails (``interrupted``)."""

HEARTBEAT_S = 2.0
"""On PostgreSQL: how often a process looks for stopped processes (to re-queue their tasks and
adopt their uploads) and whether to take over writing the read models."""

MAILBOX = 4096
"""The TaskManager's mailbox: messages waiting beyond it are refused (429 ``busy``)."""

FINISHED_CACHE = 10_000
"""Finished tasks whose state the TaskManager keeps in memory (older ones are read back)."""

SMALL_BARS = 50_000
"""A task on at most this many synthetic bars is small: a worker takes several at once."""

SHUTDOWN_GRACE_S = 10.0
"""On shutdown, how long running backtests may finish before they are left for recovery."""


def worker_count() -> int:
    """Worker processes when none is given: the number of cores."""
    return os.cpu_count() or 1


# --- limits of what a request may ask ------------------------------------------------------------

MAX_BARS = 10_000_000
"""Bars one backtest may run on (all assets together)."""

MAX_COMBINATIONS = 100_000
"""Parameter combinations one sweep may hold."""

MAX_BATCH = 1_000
"""Specs one ``POST /backtests`` array may hold (DESIGN section 11)."""

SPEC_BODY_LIMIT = 64 * 1024
"""Bytes of one ``POST /backtests`` spec (413 beyond)."""

BATCH_BODY_LIMIT = 8 * 1024 * 1024
"""Bytes of a ``POST /backtests`` array of up to ``MAX_BATCH`` specs."""

SWEEP_BODY_LIMIT = 256 * 1024
"""Bytes of one ``POST /sweeps`` body."""

RULES_BODY_LIMIT = 64 * 1024
"""Bytes of one ``POST /rules/validate`` body."""

UPLOAD_BODY_LIMIT = 512 * 1024 * 1024
"""Bytes of one ``POST /datasets`` CSV upload."""

# --- HTTP ----------------------------------------------------------------------------------------

HOST = "127.0.0.1"
PORT = 8000
URL = f"http://{HOST}:{PORT}"
"""Where the client commands look for the server when neither ``--url`` nor ``$COINBT_URL``."""

HEAD_TIMEOUT_S = 10.0
"""Seconds a connection's request line and headers may take to arrive."""

KEEP_ALIVE_S = 5.0
"""Seconds a kept-alive connection may stay idle."""

MAX_CONNECTIONS = 1000
"""Open connections before uvicorn answers 503."""

MAX_STREAMS = 100
"""Open ``GET /events`` streams before 503 ``too_many_streams``."""

STREAM_KEEP_ALIVE_S = 15.0
"""An idle ``GET /events`` stream sends a comment this often (so proxies keep it open)."""

# --- storage -------------------------------------------------------------------------------------

UPLOAD_BACKOFF_S = (0.5, 60.0)
"""The first and the longest wait between retries of an artifact upload."""

BACKUP_EVERY_S: float | None = None
"""Periodic log backups are off unless ``--backup-every`` (with ``--backup-to``) is given."""

S3_CONNECT_TIMEOUT_S = 5.0
S3_READ_TIMEOUT_S = 30.0
S3_MAX_ATTEMPTS = 3
"""botocore's own retries of one S3 request (standard mode)."""

S3_MULTIPART_THRESHOLD = 16 * 1024 * 1024
"""Artifacts larger than this go to S3 in parts..."""

S3_PART_SIZE = 8 * 1024 * 1024
"""...of this many bytes (at least 5 MiB on AWS, the last one excepted)."""
