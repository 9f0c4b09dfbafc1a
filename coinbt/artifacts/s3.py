"""Artifacts in an S3 bucket, or in any S3-compatible service (MinIO, Ceph, R2, moto...).

One aiobotocore client is opened with the store (:func:`open_s3_store`) and kept for its lifetime.
Objects live under ``<prefix>/<key>``; each carries its sha256 as user metadata
(``x-amz-meta-sha256``), checked on every read. Files over ``multipart_threshold`` bytes go up in
``part_size`` parts, and an upload that fails half-way is aborted, so no orphan parts are billed.
Credentials come from botocore's default chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
``AWS_PROFILE``, the shared config files, instance roles). Every driver error is translated to an
:class:`~coinbt.errors.ArtifactError` subclass naming what to fix.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any

import aiohttp
import anyio
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from coinbt.artifacts.local import check_key, sha256_file
from coinbt.artifacts.urls import S3Options
from coinbt.errors import (
    ArtifactBucketNotFoundError,
    ArtifactCredentialsError,
    ArtifactError,
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    ArtifactStoreUnavailableError,
    ArtifactTimeoutError,
)
from coinbt.events import ArtifactRef

__all__ = ("S3ArtifactStore", "open_s3_store")

log = logging.getLogger("coinbt.artifacts")

MiB = 1 << 20
_SHA = "sha256"  # the user-metadata field (x-amz-meta-sha256)
_MISSING = frozenset({"NoSuchKey", "NotFound", "404"})
_DENIED = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AccessDenied",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "AuthorizationHeaderMalformed",
        "403",
    }
)
_BUSY = frozenset({"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "503"})


class S3ArtifactStore:
    """The :class:`~coinbt.artifacts.ArtifactStore` on S3. Open it with :func:`open_s3_store`."""

    def __init__(self, client: Any, bucket: str, prefix: str, options: S3Options) -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.options = options
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.endpoint = options.endpoint_url or str(client.meta.endpoint_url)

    def _name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    # --- writing ---------------------------------------------------------------------------------

    async def put_file(self, key: str, path: Path, sha256: str | None = None) -> ArtifactRef:
        """Upload the file at ``path`` (which stays where it is). ``ArtifactIntegrityError`` if
        its bytes do not hash to ``sha256``: a damaged file is never stored under that hash."""
        name = self._name(key)
        try:
            size = (await anyio.Path(path).stat()).st_size
            if sha256 is None:
                digest, size = await anyio.to_thread.run_sync(sha256_file, path)
            else:
                digest = sha256
            if size <= self.options.multipart_threshold:
                data = await anyio.Path(path).read_bytes()
                await self._check(key, data, digest)
                await self._put_object(key, name, data, digest)
            else:
                async with await anyio.open_file(path, "rb") as f:
                    await self._multipart(key, name, f.wrapped, digest)
        except OSError as e:
            raise ArtifactError(f"cannot read {path} to store artifact {key!r}: {e}") from e
        return ArtifactRef(key=key, sha256=digest, size=size)

    async def put_bytes(self, key: str, data: bytes) -> ArtifactRef:
        name = self._name(key)
        sha256 = await _hash(data)
        if len(data) <= self.options.multipart_threshold:
            await self._put_object(key, name, data, sha256)
        else:
            await self._multipart(key, name, io.BytesIO(data), sha256)
        return ArtifactRef(key=key, sha256=sha256, size=len(data))

    async def _check(self, key: str, data: bytes, sha256: str) -> None:
        actual = await _hash(data)
        if actual != sha256:
            raise ArtifactIntegrityError(key, sha256, actual)

    async def _put_object(self, key: str, name: str, data: bytes, sha256: str) -> None:
        await self._call(
            "put_object",
            key,
            len(data),
            Bucket=self.bucket,
            Key=name,
            Body=data,
            Metadata={_SHA: sha256},
        )

    async def _multipart(self, key: str, name: str, source: IO[bytes], sha256: str) -> None:
        created = await self._call(
            "create_multipart_upload", key, Bucket=self.bucket, Key=name, Metadata={_SHA: sha256}
        )
        upload_id = created["UploadId"]
        digest = hashlib.sha256()
        parts: list[dict[str, Any]] = []
        try:
            number = 1
            while chunk := await anyio.to_thread.run_sync(
                _read_part, source, self.options.part_size, digest
            ):
                response = await self._call(
                    "upload_part",
                    key,
                    len(chunk),
                    Bucket=self.bucket,
                    Key=name,
                    PartNumber=number,
                    UploadId=upload_id,
                    Body=chunk,
                )
                parts.append({"ETag": response["ETag"], "PartNumber": number})
                number += 1
            if digest.hexdigest() != sha256:
                raise ArtifactIntegrityError(key, sha256, digest.hexdigest())
            await self._call(
                "complete_multipart_upload",
                key,
                Bucket=self.bucket,
                Key=name,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            await self._abort(key, name, upload_id)
            raise

    async def _abort(self, key: str, name: str, upload_id: str) -> None:
        """Abort a failed multipart upload (even while being cancelled): S3 keeps, and bills,
        the parts of an upload that is neither completed nor aborted."""
        with anyio.CancelScope(shield=True):
            try:
                await self._call(
                    "abort_multipart_upload", key, Bucket=self.bucket, Key=name, UploadId=upload_id
                )
            except ArtifactError as e:
                log.warning("aborting the upload of %s failed: %s", name, e)

    # --- reading ---------------------------------------------------------------------------------

    async def get_bytes(self, key: str, sha256: str | None = None) -> bytes:
        """The object's bytes, checked against ``sha256`` (or, without it, against the hash
        stored with the object): ``ArtifactIntegrityError`` on a mismatch."""
        name = self._name(key)
        response = await self._call("get_object", key, Bucket=self.bucket, Key=name)
        size = int(response.get("ContentLength") or 0)
        data: bytes | None = None
        with anyio.move_on_after(self._deadline(size)):
            try:
                async with response["Body"] as body:
                    data = await body.read()
            except (BotoCoreError, aiohttp.ClientError) as e:
                raise ArtifactStoreUnavailableError(
                    f"reading {key!r} from {self.url} at {self.endpoint} broke off ({e}); "
                    "retry later"
                ) from e
        if data is None:
            raise self._timeout("get_object", key, self._deadline(size))
        expected = sha256 or response.get("Metadata", {}).get(_SHA)
        if expected is not None:
            await self._check(key, data, expected)
        return data

    async def exists(self, key: str) -> bool:
        name = self._name(key)
        try:
            await self._request("head_object", key, Bucket=self.bucket, Key=name)
            return True
        except ClientError as e:
            if _code(e) not in _MISSING:
                raise self._translate(e, key) from e
        except BotoCoreError as e:
            raise self._translate(e, key) from e
        await self.check()  # a HEAD says 404 for a missing bucket too: tell them apart
        return False

    async def delete(self, key: str) -> None:
        await self._call("delete_object", key, Bucket=self.bucket, Key=self._name(key))

    async def list_keys(self, prefix: str = "") -> list[str]:
        """Every key under ``prefix`` (relative to the store's own prefix), sorted."""
        start = f"{self.prefix}/" if self.prefix else ""
        keys: list[str] = []
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": start + prefix}
        while True:
            page = await self._call("list_objects_v2", prefix or "/", **params)
            keys.extend(item["Key"][len(start) :] for item in page.get("Contents", []))
            if not page.get("IsTruncated"):
                return sorted(keys)
            params["ContinuationToken"] = page["NextContinuationToken"]

    async def check(self) -> None:
        """Raise the typed error if the bucket is missing, the credentials are refused or the
        endpoint is down; return quietly if the bucket can be used."""
        try:
            await self._request("head_bucket", "/", Bucket=self.bucket)
        except ClientError as e:
            if _code(e) in _MISSING | {"NoSuchBucket"}:
                raise ArtifactBucketNotFoundError(self.bucket, self.endpoint) from e
            raise self._translate(e, "/") from e
        except BotoCoreError as e:
            raise self._translate(e, "/") from e

    # --- requests --------------------------------------------------------------------------------

    def _deadline(self, size: int) -> float:
        """A request's overall time limit: botocore's timeouts (and retries), plus time for the
        bytes at a slow 256 KiB/s. A safety net: an endpoint that accepts a request and never
        answers (even before the body, with 'Expect: 100-continue') cannot hang an upload."""
        options = self.options
        per_attempt = options.connect_timeout + options.read_timeout + size / (256 * 1024)
        return per_attempt * max(1, options.max_attempts) + 1.0

    def _timeout(self, method: str, key: str, limit: float) -> ArtifactTimeoutError:
        return ArtifactTimeoutError(
            f"the object store {self.url} at {self.endpoint} did not answer in time "
            f"({method} of {key!r} took over {limit:.1f} s); retry later"
        )

    async def _request(self, method: str, key: str, size: int = 0, **params: Any) -> Any:
        """One S3 call within :meth:`_deadline`; driver errors come out untranslated."""
        limit = self._deadline(size)
        with anyio.move_on_after(limit):
            return await getattr(self._client, method)(**params)
        raise self._timeout(method, key, limit)

    async def _call(self, method: str, key: str, size: int = 0, **params: Any) -> Any:
        """One S3 call within :meth:`_deadline`; every error an ``ArtifactError``."""
        try:
            return await self._request(method, key, size, **params)
        except (ClientError, BotoCoreError) as e:
            raise self._translate(e, key) from e

    # --- errors ----------------------------------------------------------------------------------

    def _translate(self, error: ClientError | BotoCoreError, key: str) -> ArtifactError:
        where = f"{self.url} at {self.endpoint}"
        if isinstance(error, ClientError):
            code = _code(error)
            message = error.response.get("Error", {}).get("Message") or code
            if code == "NoSuchBucket":
                return ArtifactBucketNotFoundError(self.bucket, self.endpoint)
            if code in _MISSING:
                return ArtifactNotFoundError(key)
            if code in _DENIED:
                return ArtifactCredentialsError(
                    f"the object store {where} refused the credentials ({code}: {message}); "
                    "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, and that they "
                    f"may use bucket {self.bucket!r}"
                )
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            if code in _BUSY or status >= 500:
                return ArtifactStoreUnavailableError(
                    f"the object store {where} failed ({code}: {message}); retry later"
                )
            return ArtifactError(f"artifact {key!r} in {where}: {code}: {message}")
        if isinstance(error, NoCredentialsError | PartialCredentialsError):
            return ArtifactCredentialsError(
                f"no usable credentials for {where} ({error}): set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
            )
        if isinstance(error, CredentialRetrievalError):
            return ArtifactCredentialsError(f"cannot load the credentials for {where}: {error}")
        if isinstance(error, ConnectTimeoutError | ReadTimeoutError):
            return ArtifactTimeoutError(
                f"the object store {where} did not answer in time ({error}); retry later"
            )
        if isinstance(error, EndpointConnectionError | BotoConnectionError | HTTPClientError):
            return ArtifactStoreUnavailableError(
                f"cannot reach the object store {where} ({error}); is the endpoint up "
                "(COINBT_S3_ENDPOINT_URL)? retry later"
            )
        return ArtifactError(f"artifact {key!r} in {where}: {error}")


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _read_part(source: IO[bytes], size: int, digest: Any) -> bytes:
    chunk = source.read(size)
    digest.update(chunk)
    return chunk


async def _hash(data: bytes) -> str:
    if len(data) < MiB:
        return hashlib.sha256(data).hexdigest()
    return await anyio.to_thread.run_sync(lambda: hashlib.sha256(data).hexdigest())


@functools.cache
def _loader() -> Any:
    from botocore.loaders import create_loader

    return create_loader()


def _config(options: S3Options) -> AioConfig:
    style = options.addressing_style or ("path" if options.endpoint_url else "auto")
    return AioConfig(
        connect_timeout=options.connect_timeout,
        read_timeout=options.read_timeout,
        retries={"max_attempts": options.max_attempts, "mode": "standard"},
        s3={"addressing_style": style},
    )


@asynccontextmanager
async def open_s3_store(
    bucket: str, prefix: str = "", options: S3Options | None = None
) -> AsyncIterator[S3ArtifactStore]:
    """An S3 store on one client, closed on exit. Opening makes no request: a store whose
    endpoint is down still opens (its uploads then fail with a typed, retryable error)."""
    options = options or S3Options()
    if not bucket:
        raise ArtifactError("an S3 artifact store needs a bucket: s3://BUCKET/PREFIX")
    session = AioSession(profile=options.profile)
    session.register_component("data_loader", _loader())  # parse the S3 model once per process
    try:
        context = session.create_client(
            "s3",
            endpoint_url=options.endpoint_url,
            region_name=options.region,
            config=_config(options),
        )
        client = await context.__aenter__()
    except BotoCoreError as e:
        raise ArtifactError(f"cannot set up the S3 client for s3://{bucket}: {e}") from e
    try:
        yield S3ArtifactStore(client, bucket, prefix, options)
    finally:
        with anyio.CancelScope(shield=True):
            await context.__aexit__(None, None, None)
