"""Artifact stores: where equity curves and fills of completed runs (and log backups) live.

The S3 store is imported from ``coinbt.artifacts.s3`` on demand (it loads the S3 driver).
"""

from coinbt.artifacts.base import ArtifactStore
from coinbt.artifacts.local import LocalArtifactStore
from coinbt.artifacts.urls import S3Options, open_artifact_store, parse_store_url

__all__ = (
    "ArtifactStore",
    "LocalArtifactStore",
    "S3Options",
    "open_artifact_store",
    "parse_store_url",
)
