"""The group-commit writer: batches what queued during a commit, backpressure, shutdown."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from coinbt.backends.sqlite import open_sqlite_store
from coinbt.errors import ShuttingDownError
from coinbt.events import StoredEvent
from coinbt.store._batch import Append, AppendRequest
from coinbt.store._writer import GroupCommitWriter, Outcome
from tests.factories import queued


async def test_a_full_queue_makes_appenders_wait_for_room() -> None:
    gate = anyio.Event()
    batches: list[list[str]] = []

    async def commit(requests: list[Append]) -> list[Outcome]:
        await gate.wait()
        batches.append([r.stream_id for r in requests if isinstance(r, AppendRequest)])
        return [[] for _ in requests]

    writer = GroupCommitWriter(commit, capacity=2)
    done: list[list[StoredEvent]] = []

    async def append(n: int) -> None:
        done.append(await writer.submit(AppendRequest(f"s{n}", [queued()], 0)))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(writer.run)
            for n in range(5):
                tg.start_soon(append, n)
            await anyio.wait_all_tasks_blocked()
            # s0 and s1 are being committed, s2 and s3 fill the queue, s4 waits for room.
            assert (batches, done, writer.appends) == ([], [], 0)
            gate.set()
            while len(done) < 5:
                await anyio.wait_all_tasks_blocked()
            writer.close()
    assert batches == [["s0", "s1"], ["s2", "s3"], ["s4"]]


async def test_appending_to_a_closed_store_is_refused(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path / "log.db") as store:
        [stored] = await store.append("a", [queued()], 0)
    assert stored.version == 1
    with pytest.raises(ShuttingDownError):
        await store.append("a", [queued()], 1)


async def test_submit_each_answers_each_request_in_order_and_survives_its_cancel() -> None:
    """One call queues every request in one batch and returns each one's own outcome; a caller
    cancelled while the batch commits leaves the writer serving (its outcomes are dropped)."""
    gate = anyio.Event()
    batches: list[list[str]] = []

    async def commit(requests: list[Append]) -> list[Outcome]:
        await gate.wait()
        names = [r.stream_id for r in requests if isinstance(r, AppendRequest)]
        batches.append(names)
        return [ShuttingDownError(n) if n == "bad" else [] for n in names]

    writer = GroupCommitWriter(commit)
    requests: list[Append] = [AppendRequest(n, [queued()], 0) for n in ("a", "bad", "c")]
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(writer.run)
            with anyio.CancelScope() as scope:
                tg.start_soon(writer.submit_each, requests)  # committing, held at the gate
                await anyio.wait_all_tasks_blocked()
                scope.cancel()
            cancelled = anyio.CancelScope()

            async def cancelled_caller() -> None:
                with cancelled:
                    await writer.submit_each([AppendRequest("x", [queued()], 0)])

            tg.start_soon(cancelled_caller)
            await anyio.wait_all_tasks_blocked()
            cancelled.cancel()  # x is queued behind the gate; its caller goes away
            await anyio.wait_all_tasks_blocked()
            gate.set()
            outcomes = await writer.submit_each(requests)
            writer.close()
    assert [type(o).__name__ for o in outcomes] == ["list", "ShuttingDownError", "list"]
    assert batches == [["a", "bad", "c"], ["x", "a", "bad", "c"]]
