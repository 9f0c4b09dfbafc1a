"""Every error a caller of coinbt can act on, under one root.

This module imports nothing from the package: it is the bottom of the import ladder. The HTTP
layer maps these classes to status codes in one table (``coinbt.api.errors``); the CLI prints
their message and exits 2 (or 1 for a failed verification).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = (
    "ActorCrashLoopError",
    "ArtifactBucketNotFoundError",
    "ArtifactCredentialsError",
    "ArtifactError",
    "ArtifactIntegrityError",
    "ArtifactLostError",
    "ArtifactNotFoundError",
    "ArtifactPendingError",
    "ArtifactStoreUnavailableError",
    "ArtifactTimeoutError",
    "BackupError",
    "CoinbtError",
    "ConcurrencyError",
    "CorruptEventError",
    "CrossOriginError",
    "DataError",
    "DatabaseError",
    "DatasetExistsError",
    "DatasetNotFoundError",
    "EmptyAppendError",
    "FieldError",
    "IdempotencyKeyReusedError",
    "InvalidRequestError",
    "InvalidTransitionError",
    "MailboxFullError",
    "MisdirectedRequestError",
    "MissingExtraError",
    "NotADatabaseError",
    "PayloadTooLargeError",
    "ProjectionConflictError",
    "QueueFullError",
    "RunCancelledError",
    "SchemaTooNewError",
    "ShuttingDownError",
    "SpecError",
    "StrategyError",
    "TaskNotFoundError",
    "TooManyStreamsError",
    "UnauthorizedError",
    "UnknownEventTypeError",
    "UnsupportedMediaTypeError",
)


class CoinbtError(Exception):
    """Root of every error coinbt raises on purpose."""

    code = "error"

    @property
    def message(self) -> str:
        return str(self)


# --- the event log -------------------------------------------------------------------------------


class ConcurrencyError(CoinbtError):
    """An append named an expected stream version that is no longer the stream's version."""

    code = "concurrency_conflict"

    def __init__(self, stream_id: str, expected: int, actual: int) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"stream {stream_id!r} is at version {actual}, not the expected version {expected}"
        )


class EmptyAppendError(CoinbtError, ValueError):
    """An append was given no events."""

    code = "empty_append"

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        super().__init__(f"append to stream {stream_id!r} was given no events")


class UnknownEventTypeError(CoinbtError):
    """A stored event's type is not one this version of coinbt knows."""

    code = "unknown_event_type"

    def __init__(self, position: int, type_name: str) -> None:
        self.position = position
        self.type_name = type_name
        super().__init__(f"event at position {position} has unknown type {type_name!r}")


class CorruptEventError(CoinbtError):
    """A stored event cannot be decoded."""

    code = "corrupt_event"

    def __init__(self, position: int, reason: str) -> None:
        self.position = position
        self.reason = reason
        super().__init__(f"event at position {position} cannot be decoded: {reason}")


class DatabaseError(CoinbtError):
    """The database cannot be opened or used."""

    code = "database_error"


class NotADatabaseError(DatabaseError):
    """The file is not an SQLite database."""

    code = "not_a_database"

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"{path} is not an SQLite database (or it is encrypted or damaged)")


class ProjectionConflictError(DatabaseError):
    """Another process moved the read models' checkpoint: this writer's view of them is stale
    (it writes nothing and gives up its turn)."""

    code = "projection_conflict"


class SchemaTooNewError(DatabaseError):
    """The database was written by a newer coinbt than this one."""

    code = "schema_too_new"

    def __init__(self, path: str, found: int, supported: int) -> None:
        self.path = path
        self.found = found
        self.supported = supported
        super().__init__(
            f"{path} has schema version {found}, newer than the {supported} this coinbt "
            "supports; upgrade coinbt to open it"
        )


# --- tasks ---------------------------------------------------------------------------------------


class TaskNotFoundError(CoinbtError, LookupError):
    """No task has this id."""

    code = "not_found"

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        super().__init__(f"no task with id {task_id!r}")


class IdempotencyKeyReusedError(CoinbtError):
    """An ``Idempotency-Key`` already names a task whose spec differs from this submission's
    (the same spec returns that task instead)."""

    code = "idempotency_key_reused"

    def __init__(self, key: str, task_id: str) -> None:
        self.key = key
        self.task_id = task_id
        super().__init__(
            f"Idempotency-Key {key!r} was used for task {task_id!r} with a different spec; "
            "send the same spec to get that task, or use a new key for a new backtest"
        )


class InvalidTransitionError(CoinbtError):
    """The command is not allowed in the task's current status."""

    code = "invalid_transition"

    def __init__(self, task_id: str, status: str, action: str) -> None:
        self.task_id = task_id
        self.status = status
        self.action = action
        super().__init__(f"cannot {action} task {task_id!r}: it is {status}")


class QueueFullError(CoinbtError):
    """The run queue is at capacity; retry later."""

    code = "queue_full"

    def __init__(self, capacity: int, retry_after_s: float = 1.0) -> None:
        self.capacity = capacity
        self.retry_after_s = retry_after_s
        super().__init__(f"the run queue is full ({capacity} tasks waiting); retry later")


class MailboxFullError(CoinbtError):
    """An actor's mailbox is full (backpressure); retry later."""

    code = "overloaded"


class ActorCrashLoopError(CoinbtError):
    """An actor kept failing; the system stopped."""

    code = "crash_loop"


class ShuttingDownError(CoinbtError):
    """The service is stopping and takes no new commands."""

    code = "shutting_down"


class StrategyError(CoinbtError):
    """A user's strategy (a plugin) raised or returned bad signals; the message holds the
    plugin's name and traceback. It fails that task only."""

    code = "strategy_failed"


class RunCancelledError(CoinbtError):
    """A run was stopped by its progress callback (cancel or timeout)."""

    code = "run_cancelled"


# --- specs and data ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldError:
    """One invalid field: a JSON-path-like location (``params.fast``) and what is wrong with it.

    ``column`` (1-based) points inside a text field, such as a rule expression (``rules.entry``).
    """

    field: str
    message: str
    column: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "message": self.message}
        if self.column is not None:
            out["column"] = self.column
        return out

    def __str__(self) -> str:
        where = self.field if self.column is None else f"{self.field}, column {self.column}"
        return f"{where}: {self.message}" if where else self.message


class SpecError(CoinbtError, ValueError):
    """A backtest spec (or a parameter) breaks a rule. ``errors`` names every bad field."""

    code = "invalid_spec"

    def __init__(self, errors: Sequence[FieldError] | str, field: str | None = None) -> None:
        if isinstance(errors, str):
            errors = [FieldError(field or "", errors)]
        self.errors = tuple(errors)
        super().__init__("; ".join(str(e) for e in self.errors))


class DataError(CoinbtError, ValueError):
    """Market data is unusable. ``row`` is the 1-based line of the file when known."""

    code = "invalid_data"

    def __init__(self, message: str, row: int | None = None, column: str | None = None) -> None:
        self.row = row
        self.column = column
        where = []
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        prefix = f"{', '.join(where)}: " if where else ""
        super().__init__(prefix + message)


class DatasetExistsError(CoinbtError):
    """A dataset with this name is already registered (datasets are immutable once imported)."""

    code = "dataset_exists"

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"a dataset named {name!r} already exists; datasets never change once imported "
            "(past backtests refer to them): add newer bars as a new version with --update "
            "(update=1 over HTTP), or import under a new name"
        )


class DatasetNotFoundError(CoinbtError, LookupError):
    """No dataset has this name (or this version, or its record is unreadable: ``reason``)."""

    code = "dataset_not_found"

    def __init__(self, name: str, version: int | None = None, reason: str | None = None) -> None:
        self.name = name
        self.version = version
        message = (
            f"no dataset named {name!r}"
            if version is None
            else f"{name!r} has no version {version}"
        )
        super().__init__(message if reason is None else f"dataset {name!r}: {reason}")


# --- requests ------------------------------------------------------------------------------------


class InvalidRequestError(CoinbtError, ValueError):
    """A request is malformed: bad JSON, a bad query parameter, a bad path parameter."""

    code = "invalid_request"

    def __init__(self, message: str, field: str | None = None, code: str | None = None) -> None:
        self.field = field
        if code is not None:
            self.code = code
        super().__init__(f"{field}: {message}" if field else message)


class TooManyUploadsError(CoinbtError):
    """As many dataset uploads as the server takes at once are in progress; retry later."""

    code = "too_many_uploads"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"{limit} dataset uploads are in progress (the limit); retry later")


class MissingExtraError(CoinbtError, ImportError):
    """A feature needs an optional dependency that is not installed (``pip install
    'coinbt[EXTRA]'``)."""

    code = "missing_extra"

    def __init__(self, feature: str, extra: str, package: str) -> None:
        self.feature, self.extra, self.package = feature, extra, package
        super().__init__(
            f"{feature} needs {package}, which is not installed: pip install 'coinbt[{extra}]'"
        )


class UnauthorizedError(CoinbtError):
    """A missing or wrong API token."""

    code = "unauthorized"


class PayloadTooLargeError(CoinbtError):
    """A request body over the limit."""

    code = "payload_too_large"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"the request body is larger than the limit of {limit:,} bytes")


class UnsupportedMediaTypeError(CoinbtError):
    """A request body of another media type than the endpoint takes (a form, text/plain)."""

    code = "unsupported_media_type"


class MisdirectedRequestError(CoinbtError):
    """A ``Host`` this server does not serve (DNS rebinding, or a name missing from
    ``--allowed-hosts``)."""

    code = "misdirected_request"


class CrossOriginError(CoinbtError):
    """A state-changing request sent by a page of another origin."""

    code = "cross_origin"


class TooManyStreamsError(CoinbtError):
    """Every event stream this server allows is open."""

    code = "too_many_streams"
    retry_after_s = 5.0


# --- artifacts and backups -----------------------------------------------------------------------


class ArtifactError(CoinbtError):
    """An artifact could not be stored or read."""

    code = "artifact_error"


class ArtifactNotFoundError(ArtifactError, LookupError):
    """No artifact under this key."""

    code = "artifact_not_found"

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"no artifact {key!r}")


class ArtifactIntegrityError(ArtifactError):
    """An artifact's content does not match the hash recorded for it."""

    code = "artifact_corrupt"

    def __init__(self, key: str, expected: str, actual: str) -> None:
        self.key = key
        self.expected = expected
        self.actual = actual
        super().__init__(f"artifact {key!r} is corrupt: sha256 {actual} != recorded {expected}")


class ArtifactPendingError(ArtifactError):
    """The artifact is recorded but not in the store yet: its upload is pending (retry later)."""

    code = "artifact_pending"

    def __init__(
        self, key: str, attempts: int = 0, last_error: str | None = None, retry_after_s: float = 5
    ) -> None:
        self.key = key
        self.attempts = attempts
        self.last_error = last_error
        self.retry_after_s = retry_after_s
        tried = (
            f"; {attempts} upload attempts so far, the last failed: {last_error}"
            if (attempts and last_error)
            else ""
        )
        super().__init__(f"artifact {key!r} is not in the store yet: its upload is pending{tried}")


class ArtifactLostError(ArtifactNotFoundError):
    """The artifact can never be stored: its staged file vanished or was damaged before upload."""

    code = "artifact_lost"

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(key)
        self.reason = reason
        self.args = (f"artifact {key!r} was lost before it reached the store: {reason}",)


class ArtifactBucketNotFoundError(ArtifactError):
    """The object-store bucket does not exist (or the endpoint serves no such bucket)."""

    code = "bucket_not_found"

    def __init__(self, bucket: str, endpoint: str) -> None:
        self.bucket = bucket
        self.endpoint = endpoint
        super().__init__(
            f"bucket {bucket!r} does not exist at {endpoint}; create it, or point coinbt at "
            "the right endpoint (COINBT_S3_ENDPOINT_URL) and bucket"
        )


class ArtifactCredentialsError(ArtifactError):
    """The object store refused the credentials (missing, wrong, or not allowed)."""

    code = "storage_credentials"


class ArtifactStoreUnavailableError(ArtifactError):
    """The object store cannot be reached (connection refused, DNS, reset); retry later."""

    code = "storage_unavailable"


class ArtifactTimeoutError(ArtifactStoreUnavailableError):
    """The object store stopped answering in time (for example in the middle of an upload)."""

    code = "storage_timeout"


class BackupError(CoinbtError):
    """A backup or restore could not be made or was refused."""

    code = "backup_error"
