"""The ArtifactStore contract, run against every implementation: a local directory and S3
(a real HTTP endpoint on loopback)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from coinbt.artifacts import ArtifactStore, LocalArtifactStore, open_artifact_store
from coinbt.errors import ArtifactError, ArtifactIntegrityError, ArtifactNotFoundError
from tests.artifacts.s3server import MIN_PART, admin_client, new_bucket, s3_options


@dataclass
class Backend:
    open: Callable[[], AbstractAsyncContextManager[ArtifactStore]]
    corrupt: Callable[[str, bytes], None]  # overwrite a key's bytes behind the store's back


def _local(tmp_path: Path) -> Backend:
    root = tmp_path / "store"

    @asynccontextmanager
    async def open_local() -> AsyncIterator[ArtifactStore]:
        yield LocalArtifactStore(root)

    def corrupt(key: str, data: bytes) -> None:
        (root / key).write_bytes(data)

    return Backend(open_local, corrupt)


def _s3(endpoint: str) -> Backend:
    bucket = new_bucket(endpoint)

    def open_s3() -> AbstractAsyncContextManager[ArtifactStore]:
        return open_artifact_store(f"s3://{bucket}/runs/v1", s3=s3_options(endpoint))

    def corrupt(key: str, data: bytes) -> None:
        admin = admin_client(endpoint)
        name = f"runs/v1/{key}"
        metadata = admin.head_object(Bucket=bucket, Key=name)["Metadata"]
        admin.put_object(Bucket=bucket, Key=name, Body=data, Metadata=metadata)

    return Backend(open_s3, corrupt)


@pytest.fixture(params=[pytest.param("local", id="local"), pytest.param("s3", id="s3")])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        return _local(tmp_path)
    return _s3(request.getfixturevalue("moto").url)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_bytes_round_trip_with_their_hash(backend: Backend) -> None:
    async with backend.open() as store:
        ref = await store.put_bytes("tasks/t-1-equity.npy", b"equity")
        assert (ref.key, ref.sha256, ref.size) == ("tasks/t-1-equity.npy", _sha(b"equity"), 6)
        assert await store.exists("tasks/t-1-equity.npy")
        assert await store.get_bytes("tasks/t-1-equity.npy") == b"equity"
        assert await store.get_bytes("tasks/t-1-equity.npy", ref.sha256) == b"equity"


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(0, id="empty"),
        pytest.param(1000, id="small"),
        pytest.param(10 * MIN_PART + 123, id="multipart"),
    ],
)
async def test_files_round_trip_whatever_their_size(
    backend: Backend, tmp_path: Path, size: int
) -> None:
    data = os.urandom(size)
    staged = tmp_path / "staged.npy"
    staged.write_bytes(data)
    async with backend.open() as store:
        ref = await store.put_file("tasks/t-2-fills.npy", staged)  # hash computed by the store
        assert (ref.sha256, ref.size) == (_sha(data), size)
        assert await store.get_bytes("tasks/t-2-fills.npy", _sha(data)) == data
        again = tmp_path / "again.npy"
        again.write_bytes(data)
        ref = await store.put_file("tasks/t-3-fills.npy", again, _sha(data))  # hash given
        assert await store.get_bytes(ref.key, ref.sha256) == data


async def test_what_is_stored_outlives_the_store_object(backend: Backend) -> None:
    async with backend.open() as store:
        await store.put_bytes("a/b", b"kept")
    async with backend.open() as store:
        assert await store.get_bytes("a/b", _sha(b"kept")) == b"kept"


async def test_a_missing_key_is_not_found_and_deleting_it_is_harmless(backend: Backend) -> None:
    async with backend.open() as store:
        with pytest.raises(ArtifactNotFoundError, match="nothing-here"):
            await store.get_bytes("nothing-here")
        assert not await store.exists("nothing-here")
        await store.delete("nothing-here")


async def test_delete_removes_and_put_replaces(backend: Backend) -> None:
    async with backend.open() as store:
        await store.put_bytes("k", b"one")
        await store.put_bytes("k", b"two")
        assert await store.get_bytes("k") == b"two"
        await store.delete("k")
        assert not await store.exists("k")
        with pytest.raises(ArtifactNotFoundError):
            await store.get_bytes("k")


async def test_a_corrupted_object_is_refused_on_read(backend: Backend) -> None:
    async with backend.open() as store:
        ref = await store.put_bytes("tasks/t-4-equity.npy", b"the real curve")
        backend.corrupt("tasks/t-4-equity.npy", b"the fake curve")
        with pytest.raises(ArtifactIntegrityError, match="t-4-equity") as caught:
            await store.get_bytes(ref.key, ref.sha256)
        assert caught.value.expected == ref.sha256
        assert caught.value.actual == _sha(b"the fake curve")


async def test_a_file_that_does_not_match_its_hash_never_reads_back_as_valid(
    backend: Backend, tmp_path: Path
) -> None:
    staged = tmp_path / "damaged.npy"
    staged.write_bytes(b"damaged on disk")
    claimed = _sha(b"what the run wrote")
    async with backend.open() as store:
        try:
            await store.put_file("tasks/t-5-equity.npy", staged, claimed)
        except ArtifactIntegrityError:
            return  # refused at upload (S3 reads the file anyway)
        with pytest.raises(ArtifactIntegrityError):  # or refused at read (local trusts the hash)
            await store.get_bytes("tasks/t-5-equity.npy", claimed)


async def test_list_keys_by_prefix_sorted(backend: Backend) -> None:
    async with backend.open() as store:
        for key in ("tasks/b", "tasks/a", "backups/x", "tasks2"):
            await store.put_bytes(key, key.encode())
        assert await store.list_keys("tasks/") == ["tasks/a", "tasks/b"]
        assert await store.list_keys() == ["backups/x", "tasks/a", "tasks/b", "tasks2"]
        assert await store.list_keys("nothing") == []


@pytest.mark.parametrize(
    "key", ["../escape", "/absolute", "a//b", "", "a/./b", "sp ace", "tasks/a\n", "a\n/b"]
)
async def test_keys_that_could_escape_the_store_are_refused(backend: Backend, key: str) -> None:
    async with backend.open() as store:
        with pytest.raises(ArtifactError, match="invalid artifact key"):
            await store.put_bytes(key, b"x")
        with pytest.raises(ArtifactError, match="invalid artifact key"):
            await store.get_bytes(key)
