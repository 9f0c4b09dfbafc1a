"""Several systems on one PostgreSQL database, in one test process (each with its own instance,
connections and worker processes, exactly as separate ``coinbt serve`` processes would have):
correctness comes from the log's version check, and every system follows the log.

``test_serve.py`` runs the same cases with real ``coinbt serve`` processes over HTTP.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from pathlib import Path

import anyio
import anyio.lowlevel
import asyncpg  # type: ignore[import-untyped]
import pytest
from anyio.abc import TaskStatus

from coinbt.backends.postgres.read_models import PgReadModelSink
from coinbt.backends.postgres.rebuild import rebuild_read_models_pg, verify_read_models_pg
from coinbt.errors import IdempotencyKeyReusedError, InvalidTransitionError
from coinbt.events import Queued, Started, TaskSpec
from coinbt.executor.local import LocalProcessExecutor
from coinbt.runtime import System
from coinbt.store.instances import owner_of
from tests.factories import queued
from tests.system import OpenSystem, long, system_factory, tiny, types_of, wait_status

TERMINAL = ("Completed", "Failed", "Cancelled")


@pytest.fixture
def open_system(tmp_path: Path, pg_dsn: str) -> OpenSystem:
    return system_factory(tmp_path, pg_dsn)


def slow(seed: int = 1) -> TaskSpec:
    """About 1.5 s of work, one fill (buy and hold on 3M bars)."""
    return tiny(seed=seed, bars=3_000_000, strategy="buy_and_hold", params={})


async def started_by(system: System, task_id: str) -> list[str]:
    return [
        e.event.worker_id
        for e in await system.store.read_stream(task_id)
        if isinstance(e.event, Started)
    ]


async def test_a_task_submitted_to_one_process_runs_on_another(open_system: OpenSystem) -> None:
    async with open_system(workers=0) as a, open_system(workers=1) as b:
        assert a.task_manager.instance_id != b.task_manager.instance_id
        views = [await a.submit(tiny(seed=n)) for n in range(3)]
        for view in views:
            assert await wait_status(a, view.task_id, "completed") == "completed"
            [worker] = await started_by(a, view.task_id)
            assert owner_of(worker) == b.task_manager.instance_id
            assert await a.task(view.task_id) == await b.task(view.task_id)
        await a.drain()
        await b.drain()  # its last append's outcome may still be on its way when A is idle
        assert a.task_manager.idle
        assert b.task_manager.idle


async def test_cancel_on_one_process_aborts_the_run_on_the_other(
    open_system: OpenSystem,
) -> None:
    async with open_system(workers=1) as a, open_system(workers=0) as b:
        view = await a.submit(long())
        executor = a.executor
        assert isinstance(executor, LocalProcessExecutor)
        with anyio.fail_after(30):
            pid = await executor.wait_running(view.task_id)
        assert await wait_status(b, view.task_id, "running") == "running"
        cancelled = await b.cancel(view.task_id)
        assert cancelled.status == "cancelled"
        assert (await a.task(view.task_id)).status == "cancelled"  # read-your-writes on both
        with anyio.fail_after(30):
            await executor.wait_exited(pid)  # A followed the log and stopped its run
            await a.task_manager.wait_no_running()
        follow_up = await b.submit(tiny())
        assert await wait_status(a, follow_up.task_id, "completed") == "completed"
        assert await types_of(a, view.task_id) == ["Queued", "Started", "Cancelled"]
        with pytest.raises(InvalidTransitionError, match="completed"):
            await b.cancel(follow_up.task_id)
        assert (await b.cancel(view.task_id)).status == "cancelled"  # idempotent


@pytest.mark.parametrize("seed", range(3))
async def test_cancels_racing_completions_in_two_processes(
    open_system: OpenSystem, seed: int
) -> None:
    """Both processes run tasks; cancels of every task go to either process at seeded random
    moments. Whatever wins, each task has exactly one terminal event and every read agrees."""
    rng = random.Random(seed)
    async with open_system(workers=1) as a, open_system(workers=1) as b:
        systems = (a, b)
        views = [await systems[n % 2].submit(tiny(seed=n)) for n in range(16)]

        async def cancel_later(system: System, task_id: str, delay: int) -> None:
            for _ in range(delay):
                await anyio.lowlevel.checkpoint()
            try:
                await system.cancel(task_id)
            except InvalidTransitionError:
                pass  # it finished first

        async with anyio.create_task_group() as tg:
            for view in views:
                tg.start_soon(cancel_later, rng.choice(systems), view.task_id, rng.randrange(400))
        await a.drain()
        await b.drain()
        for view in views:
            types = await types_of(a, view.task_id)
            terminal = [t for t in types if t in TERMINAL]
            assert len(terminal) == 1, types
            assert types[-1] == terminal[0]
            assert types.count("Started") <= 1
            assert (await a.task(view.task_id)) == (await b.task(view.task_id))
            assert (await a.task(view.task_id)).status == terminal[0].lower()
        assert (await a.store.verify()).ok
    assert (await verify_read_models_pg(str(a.config.db))).ok


async def test_workers_of_both_processes_claim_each_task_once(open_system: OpenSystem) -> None:
    async with open_system(workers=2) as a, open_system(workers=2) as b:
        views = [await (a if n % 3 else b).submit(tiny(seed=n)) for n in range(40)]
        await a.drain()
        await b.drain()
        owners = set()
        for view in views:
            types = await types_of(b, view.task_id)
            assert types.count("Started") == 1, types
            assert types[-1] == "Completed"
            [worker] = await started_by(b, view.task_id)
            owners.add(owner_of(worker))
        assert owners <= {a.task_manager.instance_id, b.task_manager.instance_id}
        assert (await b.read.counts())["completed"] == 40


async def test_a_live_process_tasks_are_left_alone(open_system: OpenSystem) -> None:
    """A process that starts while another runs a task finds it running in the log, checks its
    owner at once (at start) and every heartbeat, and leaves it alone: the owner is alive."""
    async with open_system(workers=1) as a:
        view = await a.submit(slow())
        assert await wait_status(a, view.task_id, "running") == "running"
        async with open_system(workers=0) as b:
            assert await wait_status(b, view.task_id, "completed") == "completed"
        assert await types_of(a, view.task_id) == ["Queued", "Started", "Completed"]


@pytest.mark.parametrize(
    ("max_attempts", "ends"),
    [pytest.param(3, "completed", id="requeued"), pytest.param(1, "failed", id="too-many")],
)
async def test_a_gone_process_tasks_are_recovered_by_a_live_one(
    open_system: OpenSystem, max_attempts: int, ends: str
) -> None:
    async with (
        open_system(workers=0, max_attempts=max_attempts) as b,
        open_system(workers=0, max_attempts=max_attempts),  # a second survivor watching too
    ):
        async with open_system(workers=1) as a:  # stops without waiting for its run
            view = await a.submit(slow())
            queued = await a.submit(tiny(seed=2))
            assert await wait_status(b, view.task_id, "running") == "running"
        # A is gone: a survivor finds out at its next heartbeat and re-queues (or fails) A's
        # task; one survivor only (the history below has one Queued after the Started).
        status = await wait_status(b, view.task_id, "queued" if ends == "completed" else ends)
        history = await b.store.read_stream(view.task_id)
        if ends == "completed":
            assert status == "queued"
            assert [e.type for e in history] == ["Queued", "Started", "Queued"]
            requeued = history[-1].event
            assert isinstance(requeued, Queued)
            assert requeued.attempt == 2
        else:
            assert [e.type for e in history] == ["Queued", "Started", "Failed"]
            assert "interrupted" in ((await b.task(view.task_id)).error or "")
        async with open_system(workers=1) as c:  # another process with workers runs the rest
            await c.drain()
            assert (await c.task(view.task_id)).status == ends
            assert (await c.task(queued.task_id)).status == "completed"
            if ends == "completed":
                assert (await c.task(view.task_id)).attempt == 2
                [first, second] = await started_by(c, view.task_id)
                assert owner_of(first) == a.task_manager.instance_id
                assert owner_of(second) == c.task_manager.instance_id


async def test_the_read_models_move_to_a_live_process(open_system: OpenSystem) -> None:
    stop_first = anyio.Event()
    first_gone = anyio.Event()

    async def run_first(*, task_status: TaskStatus[System]) -> None:
        try:
            async with open_system(workers=0) as first:
                task_status.started(first)
                await stop_first.wait()
        finally:
            first_gone.set()

    async with anyio.create_task_group() as tg:
        first: System = await tg.start(run_first)
        async with open_system(workers=0) as second:
            assert first.projector.leading
            assert not second.projector.leading
            view = await second.submit(tiny())  # waits for the writer's announcement
            assert (await second.task(view.task_id)).status == "queued"
            stop_first.set()
            await first_gone.wait()
            # The writer is gone: the second takes over within a heartbeat, and its reads keep
            # up with its writes.
            cancelled = await second.cancel(view.task_id)
            assert cancelled.status == "cancelled"
            assert second.projector.leading


async def test_an_idempotency_key_is_known_to_every_process(open_system: OpenSystem) -> None:
    async with open_system(workers=0) as a, open_system(workers=0) as b:
        first = await a.submit(tiny(), idempotency_key="order-7")
        again = await b.submit(tiny(), idempotency_key="order-7")
        assert again.task_id == first.task_id
        with pytest.raises(IdempotencyKeyReusedError, match="order-7"):  # another spec
            await b.submit(tiny(seed=2), idempotency_key="order-7")
        assert await a.store.last_position() == 1


async def test_one_key_with_two_specs_at_once_in_two_processes_makes_one_task(
    open_system: OpenSystem,
) -> None:
    """Both processes race to queue one key with different specs: one wins, the other answer is
    422 ``idempotency_key_reused`` naming the winner's task, never a second task."""
    keys = [f"order-{n}" for n in range(10)]
    outcomes: dict[str, list[str]] = {key: [] for key in keys}
    async with open_system(workers=0) as a, open_system(workers=0) as b:

        async def submit(system: System, key: str, seed: int) -> None:
            try:
                view = await system.submit(tiny(seed=seed), idempotency_key=key)
            except IdempotencyKeyReusedError as e:
                outcomes[key].append(f"reused {e.task_id}")
            else:
                outcomes[key].append(view.task_id)

        async with anyio.create_task_group() as tg:
            for n, key in enumerate(keys):
                tg.start_soon(submit, a, key, n + 1)
                tg.start_soon(submit, b, key, n + 101)
        for key in keys:
            [task_id] = [o for o in outcomes[key] if not o.startswith("reused")]
            assert sorted(outcomes[key]) == sorted([task_id, f"reused {task_id}"]), key
        assert len(await a.store.stream_ids()) == len(keys)


async def test_one_key_sent_to_two_processes_at_once_makes_one_task(
    open_system: OpenSystem,
) -> None:
    """The same keys submitted to both processes at the same moment: each key gets one task (one
    ``Queued`` in the log), both answers name it, and it runs once."""
    keys = [f"order-{n}" for n in range(20)]
    answers: dict[str, list[str]] = {key: [] for key in keys}
    async with open_system(workers=1) as a, open_system(workers=1) as b:

        async def submit(system: System, key: str, seed: int) -> None:
            view = await system.submit(tiny(seed=seed), idempotency_key=key)
            answers[key].append(view.task_id)

        async with anyio.create_task_group() as tg:
            for n, key in enumerate(keys):
                tg.start_soon(submit, a, key, n + 1)
                tg.start_soon(submit, b, key, n + 1)
        for key in keys:
            [task_id, other] = answers[key]
            assert other == task_id, key
        for system in (a, b):
            await system.drain()
        for key in keys:
            task_id = answers[key][0]
            history = await types_of(a, task_id)
            assert history.count("Queued") == 1, (key, history)
            assert history.count("Started") == 1, (key, history)
            assert history[-1] == "Completed", (key, history)
            assert (await b.task(task_id)).status == "completed"
        assert len(await a.store.stream_ids()) == len(keys)


async def test_every_process_shows_the_progress_of_a_run_in_another(
    open_system: OpenSystem,
) -> None:
    """A runs the task B was asked for; B's view of it shows A's progress, announced over
    NOTIFY, and forgets it once the run has stopped."""

    async def until(system: System, holds: Callable[[float | None], bool]) -> float | None:
        with anyio.fail_after(30):
            while True:
                changed = system.progress.changed_hint()
                value = system.progress.get(view.task_id)
                if holds(value):
                    return value
                await changed.wait()

    async with open_system(workers=1), open_system(workers=0) as b:
        view = await b.submit(long())
        assert await wait_status(b, view.task_id, "running") == "running"
        seen = await until(b, lambda v: v is not None and v > 0)
        assert seen is not None
        assert 0 < seen < 1
        assert b.task_json(await b.task(view.task_id))["progress"] > 0  # the API shows it
        assert b.progress.local() == {}  # B runs nothing itself
        assert (await b.cancel(view.task_id)).status == "cancelled"
        assert await until(b, lambda v: v is None) is None


async def test_progress_announcements_that_do_not_parse_or_are_its_own_are_ignored(
    open_system: OpenSystem, pg_dsn: str
) -> None:
    async with open_system(workers=0) as b:
        changed = b.progress.changed_hint()
        conn = await asyncpg.connect(pg_dsn)
        try:  # one connection's notifications arrive in order: the last one proves the others
            for payload in (
                "not json",
                '{"instance": "elsewhere"}',
                '{"instance": "elsewhere", "runs": {"t2": "half"}}',
                f'{{"instance": "{b.task_manager.instance_id}", "runs": {{"t3": 0.5}}}}',
                '{"instance": "elsewhere", "runs": {"t1": 0.5}}',
            ):
                await conn.execute("SELECT pg_notify('coinbt_progress', $1)", payload)
        finally:
            await conn.close()
        with anyio.fail_after(10):
            await changed.wait()
        assert b.progress.snapshot() == {"t1": 0.5}


async def test_a_rebuild_while_serving(open_system: OpenSystem) -> None:
    """``coinbt replay`` swaps rebuilt read models in under the writer: it finds the checkpoint
    moved, starts again from it, and reads keep up with writes."""
    async with open_system(workers=0) as a, open_system(workers=0) as b:
        views = [await b.submit(tiny(seed=n)) for n in range(3)]
        await b.cancel(views[0].task_id)
        dsn = str(a.config.db)
        report = await rebuild_read_models_pg(dsn)
        assert (report.tasks, report.checkpoint) == (3, 4)
        later = await b.submit(tiny(seed=9))  # waits until the writer has projected it
        assert (await a.task(later.task_id)).status == "queued"
        assert (await b.cancel(views[1].task_id)).status == "cancelled"
        assert (await verify_read_models_pg(dsn)).ok


async def test_a_writer_that_lost_a_race_starts_again(
    open_system: OpenSystem, caplog: pytest.LogCaptureFixture
) -> None:
    """Another writer moves the checkpoint under the elected one (a rebuild, or a writer that had
    lost its lock without knowing): the elected one writes nothing, starts again from the new
    checkpoint, and reads keep up with writes."""
    caplog.set_level(logging.INFO, logger="coinbt.projector")
    async with open_system(workers=0) as a:
        dsn = str(a.config.db)
        first = await a.submit(tiny(seed=1))
        conn = await asyncpg.connect(dsn)
        try:
            transaction = conn.transaction()
            await transaction.start()
            checkpoint = await conn.fetchval(
                "SELECT position FROM projection_checkpoints WHERE name = 'main' FOR UPDATE"
            )
            # The next event goes to the log while the checkpoint row is ours: the elected
            # writer cannot move it, and this intruder writes the event's view first.
            [stored] = await a.store.append("intruder", [queued()], 0)
            intruder = PgReadModelSink(conn, "main", checkpoint, "intruder")
            assert await intruder.apply([stored]) == stored.position
            await transaction.commit()
        finally:
            await conn.close()
        later = await a.submit(tiny(seed=2))
        assert (await a.task(later.task_id)).status == "queued"
        assert "starting again from the checkpoint" in caplog.text
        assert (await a.task("intruder")) is not None
        assert (await a.task(first.task_id)).status == "queued"
    assert (await verify_read_models_pg(dsn)).ok
