"""The artifact tests talk to a real S3 endpoint on loopback (moto's server mode)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.artifacts.s3server import (
    FaultProxy,
    MotoServer,
    aws_environment,
    new_bucket,
    proxy_to,
    shared_moto,
)


@pytest.fixture(autouse=True)
def _aws(monkeypatch: pytest.MonkeyPatch) -> None:
    aws_environment(monkeypatch)


@pytest.fixture(scope="session")
def moto() -> MotoServer:
    return shared_moto()


@pytest.fixture
def bucket(moto: MotoServer) -> str:
    return new_bucket(moto.url)


@pytest.fixture
def proxy(moto: MotoServer) -> Iterator[FaultProxy]:
    """A proxy in front of moto that the test can take down, bring up, or make stall."""
    with proxy_to(moto) as p:
        yield p
