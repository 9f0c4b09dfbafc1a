"""The stores artifacts live in, by location (``local``, ``s3://...``, ``file:///...``).

Artifacts of one installation may sit in several stores while a migration moves them; reads
follow each artifact's recorded location. :class:`ArtifactLocations` opens a store the first time
a location is asked for and keeps it (one S3 client per store) until its block exits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import anyio

from coinbt.artifacts.base import ArtifactStore
from coinbt.artifacts.local import LocalArtifactStore
from coinbt.artifacts.outbox import LOCAL
from coinbt.artifacts.urls import S3Options, open_artifact_store

__all__ = ("ArtifactLocations", "location_of", "open_locations")


def location_of(store: ArtifactStore, data_dir: Path) -> str:
    """``local`` for the data directory's own ``artifacts/``, else the store's URL."""
    if isinstance(store, LocalArtifactStore) and _same(store.root, data_dir / "artifacts"):
        return LOCAL
    return store.url


def _same(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


class ArtifactLocations:
    def __init__(self, data_dir: Path, stack: AsyncExitStack, s3: S3Options | None) -> None:
        self.data_dir = data_dir
        self._stack = stack
        self._s3 = s3
        self._stores: dict[str, ArtifactStore] = {}
        self._lock = anyio.Lock()

    def add(self, store: ArtifactStore) -> str:
        """Register an already open store; returns its location."""
        location = location_of(store, self.data_dir)
        self._stores[location] = store
        return location

    async def get(self, location: str) -> ArtifactStore:
        store = self._stores.get(location)
        if store is not None:
            return store
        async with self._lock:
            if location not in self._stores:
                url: str | Path = self.data_dir / "artifacts" if location == LOCAL else location
                self._stores[location] = await self._stack.enter_async_context(
                    open_artifact_store(url, s3=self._s3)
                )
            return self._stores[location]


@asynccontextmanager
async def open_locations(
    data_dir: Path, s3: S3Options | None = None
) -> AsyncIterator[ArtifactLocations]:
    async with AsyncExitStack() as stack:
        yield ArtifactLocations(data_dir, stack, s3)
