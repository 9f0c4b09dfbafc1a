"""Artifacts in a local directory (the embedded default)."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

import anyio

from coinbt.errors import ArtifactError, ArtifactIntegrityError, ArtifactNotFoundError
from coinbt.events import ArtifactRef

__all__ = ("LocalArtifactStore", "check_key", "sha256_file")

_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")  # fullmatch


def check_key(key: str) -> str:
    """Refuse keys that could escape the store (``..``, absolute paths, odd characters)."""
    if not _KEY.fullmatch(key) or len(key) > 512:
        raise ArtifactError(f"invalid artifact key {key!r}")
    return key


def sha256_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class LocalArtifactStore:
    """Files under ``root``; writes go through a temporary file and an atomic rename."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.url = f"file://{self.root.resolve()}"
        self._tmp = self.root / ".incoming"
        self._dirs: set[Path] = set()

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put_file(self, key: str, path: Path, sha256: str | None = None) -> ArtifactRef:
        return await anyio.to_thread.run_sync(self._put_file, key, path, sha256)

    async def put_files(self, items: Sequence[tuple[str, Path, str]]) -> list[ArtifactError | None]:
        """:meth:`put_file` for several ``(key, path, sha256)`` in one thread hop (the uploader's
        round of a local store: a move each); per item None (stored) or its error."""
        return await anyio.to_thread.run_sync(self._put_files, items)

    def _put_files(self, items: Sequence[tuple[str, Path, str]]) -> list[ArtifactError | None]:
        errors: list[ArtifactError | None] = []
        for key, path, sha256 in items:
            try:
                self._put_file(key, path, sha256)
            except ArtifactError as e:
                errors.append(e)
            else:
                errors.append(None)
        return errors

    def _mkdir(self, directory: Path) -> None:
        if directory not in self._dirs:
            directory.mkdir(parents=True, exist_ok=True)
            self._dirs.add(directory)

    def _put_file(self, key: str, path: Path, sha256: str | None = None) -> ArtifactRef:
        target = self._path(key)
        try:
            if sha256 is None:
                sha, size = sha256_file(path)
            else:
                sha, size = sha256, path.stat().st_size
            self._mkdir(target.parent)
            try:
                os.replace(path, target)  # same filesystem: atomic
            except OSError:
                staged = self._stage(path.read_bytes())
                os.replace(staged, target)
        except OSError as e:
            raise ArtifactError(f"cannot store artifact {key!r}: {e}") from e
        return ArtifactRef(key=key, sha256=sha, size=size)

    async def put_bytes(self, key: str, data: bytes) -> ArtifactRef:
        return await anyio.to_thread.run_sync(self._put_bytes, key, data)

    def _put_bytes(self, key: str, data: bytes) -> ArtifactRef:
        target = self._path(key)
        try:
            self._mkdir(target.parent)
            os.replace(self._stage(data), target)
        except OSError as e:
            raise ArtifactError(f"cannot store artifact {key!r}: {e}") from e
        return ArtifactRef(key=key, sha256=hashlib.sha256(data).hexdigest(), size=len(data))

    def _stage(self, data: bytes) -> Path:
        self._tmp.mkdir(parents=True, exist_ok=True)
        staged = self._tmp / f"{os.getpid()}-{os.urandom(8).hex()}"
        staged.write_bytes(data)
        return staged

    async def get_bytes(self, key: str, sha256: str | None = None) -> bytes:
        return await anyio.to_thread.run_sync(self._get_bytes, key, sha256)

    def _get_bytes(self, key: str, sha256: str | None) -> bytes:
        try:
            data = self._path(key).read_bytes()
        except FileNotFoundError as e:
            raise ArtifactNotFoundError(key) from e
        except OSError as e:
            raise ArtifactError(f"cannot read artifact {key!r}: {e}") from e
        if sha256 is not None:
            actual = hashlib.sha256(data).hexdigest()
            if actual != sha256:
                raise ArtifactIntegrityError(key, sha256, actual)
        return data

    async def exists(self, key: str) -> bool:
        return await anyio.to_thread.run_sync(self._path(key).is_file)

    async def delete(self, key: str) -> None:
        await anyio.to_thread.run_sync(lambda: self._path(key).unlink(missing_ok=True))

    async def list_keys(self, prefix: str = "") -> list[str]:
        return await anyio.to_thread.run_sync(self._list_keys, prefix)

    def _list_keys(self, prefix: str) -> list[str]:
        if not self.root.is_dir():
            return []
        keys = (
            path.relative_to(self.root).as_posix()
            for path in self.root.rglob("*")
            if path.is_file() and not path.relative_to(self.root).as_posix().startswith(".")
        )
        return sorted(key for key in keys if key.startswith(prefix))
