"""Artifact stores: where equity curves and fills of completed runs live."""

from coinbt.artifacts.base import ArtifactStore
from coinbt.artifacts.local import LocalArtifactStore

__all__ = ("ArtifactStore", "LocalArtifactStore")
