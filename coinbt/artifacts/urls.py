"""Store URLs: ``s3://bucket/prefix``, ``file:///dir`` or a plain directory path.

:func:`open_artifact_store` turns a URL into an open store. The S3 endpoint comes from
:class:`S3Options`, else ``COINBT_S3_ENDPOINT_URL``, else botocore's own ``AWS_ENDPOINT_URL_S3`` /
``AWS_ENDPOINT_URL``, else AWS. This module imports no S3 driver until an S3 store is opened.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from coinbt import defaults
from coinbt.artifacts.base import ArtifactStore
from coinbt.artifacts.local import LocalArtifactStore
from coinbt.errors import ArtifactError

__all__ = (
    "ENDPOINT_VARIABLES",
    "S3Location",
    "S3Options",
    "endpoint_from_env",
    "open_artifact_store",
    "parse_store_url",
)

MiB = 1 << 20
ENDPOINT_VARIABLES = ("COINBT_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")


@dataclass(frozen=True, slots=True)
class S3Options:
    """How to reach an S3 service. ``endpoint_url`` None means AWS itself unless one of
    :data:`ENDPOINT_VARIABLES` is set; ``region``/``profile`` None defer to botocore's usual
    variables and files. Parts must be at least 5 MiB on AWS (the last one excepted)."""

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    multipart_threshold: int = defaults.S3_MULTIPART_THRESHOLD
    part_size: int = defaults.S3_PART_SIZE
    connect_timeout: float = defaults.S3_CONNECT_TIMEOUT_S
    read_timeout: float = defaults.S3_READ_TIMEOUT_S
    max_attempts: int = defaults.S3_MAX_ATTEMPTS  # botocore's own retries (standard mode)
    addressing_style: str | None = None  # default: "path" with a custom endpoint, else "auto"

    def __post_init__(self) -> None:
        if self.part_size < 1 or self.multipart_threshold < 1:
            raise ValueError("part_size and multipart_threshold must be positive")


@dataclass(frozen=True, slots=True)
class S3Location:
    bucket: str
    prefix: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


def parse_store_url(url: str | Path) -> S3Location | Path:
    """``s3://bucket/prefix`` as an :class:`S3Location`; ``file://`` URLs and paths as a Path."""
    text = os.fspath(url)
    if text.startswith("s3://"):
        bucket, _, prefix = text[len("s3://") :].partition("/")
        if not bucket:
            raise ArtifactError(f"{text!r}: an S3 URL needs a bucket, as in s3://BUCKET/PREFIX")
        return S3Location(bucket, prefix.strip("/"))
    if text.startswith("file://"):
        return Path(text[len("file://") :])
    if "://" in text:
        raise ArtifactError(f"{text!r}: unsupported store URL (use s3://BUCKET/PREFIX or a path)")
    if not text:
        raise ArtifactError("an empty store URL")
    return Path(text)


def endpoint_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """The first of :data:`ENDPOINT_VARIABLES` that is set, or None (AWS)."""
    env = os.environ if environ is None else environ
    for name in ENDPOINT_VARIABLES:
        if env.get(name):
            return env[name]
    return None


@asynccontextmanager
async def open_artifact_store(
    url: str | Path, *, s3: S3Options | None = None
) -> AsyncIterator[ArtifactStore]:
    """Open the store at ``url``; an S3 store keeps one client open until the block exits."""
    where = parse_store_url(url)
    if isinstance(where, Path):
        yield LocalArtifactStore(where)
        return
    from coinbt.artifacts.s3 import open_s3_store

    options = s3 or S3Options()
    if options.endpoint_url is None:
        options = dataclasses.replace(options, endpoint_url=endpoint_from_env())
    async with open_s3_store(where.bucket, where.prefix, options) as store:
        yield store
