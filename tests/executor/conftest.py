"""A Dask cluster for the executor tests: two single-threaded worker processes under nannies,
started once for the package (in a thread of its own, so every test's event loop can connect)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import pytest

if TYPE_CHECKING:
    from distributed import LocalCluster

    from coinbt.executor.dask import DaskExecutor

OpenDask = Callable[..., AbstractAsyncContextManager["DaskExecutor"]]
CLUSTER_WORKERS = 2


@pytest.fixture(scope="package")
def dask_cluster() -> Iterator[LocalCluster]:
    pytest.importorskip("distributed", reason="Dask is missing: pip install coinbt[distributed]")
    import dask

    from coinbt.executor.dask import start_local_cluster

    # A LocalCluster closes the nanny of a worker that stays away from the scheduler for
    # lost-worker-timeout (15 s): on a loaded machine a killed worker's replacement can take that
    # long to start, and the cluster would shrink for every later test.
    with dask.config.set({"distributed.deploy.lost-worker-timeout": "10m"}):
        cluster = start_local_cluster(CLUSTER_WORKERS)
        try:
            yield cluster
        finally:
            cluster.close()


@pytest.fixture
def open_dask(dask_cluster: LocalCluster) -> OpenDask:
    """``async with open_dask(**options) as executor``: a client of the package's cluster, once
    both workers are up (a test before may have killed one; its nanny replaces it)."""
    from coinbt.executor.dask import open_dask_executor

    @asynccontextmanager
    async def factory(**options: Any) -> AsyncIterator[DaskExecutor]:
        address = dask_cluster.scheduler_address
        async with open_dask_executor(address, CLUSTER_WORKERS, **options) as executor:
            with anyio.fail_after(30):
                await executor.wait_for_workers(CLUSTER_WORKERS)
            yield executor

    return factory
