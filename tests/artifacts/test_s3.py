"""The S3 store against a real endpoint: what it stores, and a typed error for every fault."""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from coinbt.artifacts import open_artifact_store, parse_store_url
from coinbt.artifacts.urls import S3Location
from coinbt.errors import (
    ArtifactBucketNotFoundError,
    ArtifactCredentialsError,
    ArtifactError,
    ArtifactIntegrityError,
    ArtifactStoreUnavailableError,
    ArtifactTimeoutError,
)
from tests.artifacts.s3server import MIN_PART, FaultProxy, MotoServer, admin_client, s3_options


async def test_objects_carry_their_sha256_and_large_ones_go_up_in_parts(
    moto: MotoServer, bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(3 * MIN_PART + 7)
    path = tmp_path / "big.npy"
    path.write_bytes(data)
    async with open_artifact_store(f"s3://{bucket}/pre/", s3=s3_options(moto.url)) as store:
        assert store.url == f"s3://{bucket}/pre"
        ref = await store.put_file("tasks/big.npy", path)
        small = await store.put_bytes("tasks/small.npy", b"small")
    head = admin_client(moto.url).head_object(Bucket=bucket, Key="pre/tasks/big.npy")
    assert (
        head["Metadata"] == {"sha256": hashlib.sha256(data).hexdigest()} == {"sha256": ref.sha256}
    )
    assert head["ETag"].strip('"').endswith("-4")  # a multipart upload of 4 parts
    head = admin_client(moto.url).head_object(Bucket=bucket, Key="pre/tasks/small.npy")
    assert head["Metadata"] == {"sha256": small.sha256}
    assert "-" not in head["ETag"]


async def test_a_corrupted_object_is_caught_by_its_own_recorded_hash(
    moto: MotoServer, bucket: str
) -> None:
    async with open_artifact_store(f"s3://{bucket}", s3=s3_options(moto.url)) as store:
        ref = await store.put_bytes("k", b"original")
        admin_client(moto.url).put_object(
            Bucket=bucket, Key="k", Body=b"tampered", Metadata={"sha256": ref.sha256}
        )
        with pytest.raises(ArtifactIntegrityError, match="'k' is corrupt"):
            await store.get_bytes("k")  # no hash given: the object's metadata is the reference


async def test_a_missing_bucket_is_named(moto: MotoServer) -> None:
    async with open_artifact_store("s3://no-such-bucket/x", s3=s3_options(moto.url)) as store:
        for operation in (
            store.put_bytes("k", b"x"),
            store.get_bytes("k"),
            store.exists("k"),
            store.list_keys(),
            store.check(),  # type: ignore[attr-defined]
        ):
            with pytest.raises(
                ArtifactBucketNotFoundError, match="'no-such-bucket' does not exist"
            ):
                await operation


@pytest.fixture
def iam_auth(moto: MotoServer, bucket: str) -> Iterator[None]:
    """Make moto check credentials (it accepts any by default; the bucket is made before);
    restored after the test."""

    def set_threshold(value: bytes) -> None:
        request = urllib.request.Request(
            f"{moto.url}/moto-api/reset-auth",
            data=value,
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request) as response:
            assert json.load(response)["status"] == "ok"

    set_threshold(b"0")
    try:
        yield
    finally:
        set_threshold(b"inf")


@pytest.mark.usefixtures("iam_auth")
async def test_wrong_credentials_are_refused_with_a_hint(moto: MotoServer, bucket: str) -> None:
    async with open_artifact_store(f"s3://{bucket}", s3=s3_options(moto.url)) as store:
        with pytest.raises(
            ArtifactCredentialsError, match=r"InvalidAccessKeyId.*AWS_ACCESS_KEY_ID"
        ):
            await store.put_bytes("k", b"x")
        with pytest.raises(ArtifactCredentialsError):
            await store.get_bytes("k")


async def test_no_credentials_at_all(
    moto: MotoServer, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    async with open_artifact_store(f"s3://{bucket}", s3=s3_options(moto.url)) as store:
        with pytest.raises(ArtifactCredentialsError, match="no usable credentials"):
            await store.put_bytes("k", b"x")


async def test_credentials_from_a_profile(
    moto: MotoServer, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    credentials = tmp_path / "credentials"
    credentials.write_text("[ci]\naws_access_key_id = AKIDCI\naws_secret_access_key = secret\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_PROFILE", "ci")
    async with open_artifact_store(f"s3://{bucket}", s3=s3_options(moto.url)) as store:
        await store.put_bytes("k", b"via a profile")
        assert await store.get_bytes("k") == b"via a profile"


async def test_an_endpoint_that_is_down_is_unavailable_not_missing(
    proxy: FaultProxy, bucket: str
) -> None:
    proxy.down()
    options = s3_options(proxy.url, max_attempts=1)
    async with open_artifact_store(f"s3://{bucket}", s3=options) as store:
        with pytest.raises(ArtifactStoreUnavailableError, match="cannot reach") as caught:
            await store.put_bytes("k", b"x")
        assert not isinstance(caught.value, ArtifactTimeoutError)
        with pytest.raises(ArtifactStoreUnavailableError):
            await store.exists("k")
        proxy.up()
        await store.put_bytes("k", b"x")  # the same client works once the endpoint is back
        assert await store.get_bytes("k") == b"x"


async def test_a_timeout_mid_upload_aborts_the_multipart_upload(
    proxy: FaultProxy, moto: MotoServer, bucket: str, tmp_path: Path
) -> None:
    path = tmp_path / "big.npy"
    path.write_bytes(os.urandom(6 * MIN_PART))
    proxy.stall(b"partNumber=3")  # parts 1 and 2 go through; part 3 never gets an answer
    options = s3_options(proxy.url, connect_timeout=1.0, read_timeout=0.5, max_attempts=1)
    async with open_artifact_store(f"s3://{bucket}", s3=options) as store:
        with anyio.fail_after(20), pytest.raises(ArtifactTimeoutError, match="did not answer"):
            await store.put_file("tasks/big.npy", path)
    assert proxy.stalled.is_set()
    admin = admin_client(moto.url)
    assert admin.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []  # aborted
    assert admin.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


@pytest.mark.parametrize("variable", ["COINBT_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"])
async def test_the_endpoint_comes_from_the_environment(
    moto: MotoServer, bucket: str, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, moto.url)
    async with open_artifact_store(f"s3://{bucket}/env") as store:
        await store.put_bytes("k", b"found it")
    body = admin_client(moto.url).get_object(Bucket=bucket, Key="env/k")["Body"].read()
    assert body == b"found it"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param("s3://bkt", S3Location("bkt", ""), id="bucket"),
        pytest.param("s3://bkt/a/b/", S3Location("bkt", "a/b"), id="prefix"),
        pytest.param("file:///srv/artifacts", Path("/srv/artifacts"), id="file-url"),
        pytest.param("data/artifacts", Path("data/artifacts"), id="path"),
    ],
)
def test_store_urls(url: str, expected: object) -> None:
    assert parse_store_url(url) == expected


@pytest.mark.parametrize("url", ["s3://", "s3:///prefix", "gs://bucket", ""])
def test_bad_store_urls_are_refused(url: str) -> None:
    with pytest.raises(ArtifactError):
        parse_store_url(url)
