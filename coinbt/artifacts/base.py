"""The artifact store interface: content-addressed-checked blobs under logical keys."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from coinbt.events import ArtifactRef

__all__ = ("ArtifactStore",)


class ArtifactStore(Protocol):
    """Where run artifacts (equity curves, fills) and log backups live: a directory or S3.

    Keys are logical (``tasks/<id>/<attempt>/equity.npy``); events record the key and the sha256,
    never the location, so artifacts can move between stores without rewriting the log.
    """

    url: str

    async def put_file(self, key: str, path: Path, sha256: str | None = None) -> ArtifactRef:
        """Store the file at ``path`` under ``key`` (the file may be moved away). ``sha256``, if
        the caller already knows it, saves reading the file again."""
        ...

    async def put_bytes(self, key: str, data: bytes) -> ArtifactRef:
        """Store ``data`` under ``key``."""
        ...

    async def get_bytes(self, key: str, sha256: str | None = None) -> bytes:
        """The bytes under ``key``; ``ArtifactIntegrityError`` if they do not hash to ``sha256``;
        ``ArtifactNotFoundError`` if there is nothing under ``key``."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None:
        """Remove ``key``; nothing happens if there is nothing under it."""
        ...

    async def list_keys(self, prefix: str = "") -> list[str]:
        """Every key starting with ``prefix``, sorted."""
        ...
