"""The service core end to end: a real SQLite file and real worker processes.

Every transition of DESIGN section 3, idempotency, backpressure, bad specs, and the race between a
cancel and a finishing run.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import anyio
import anyio.lowlevel
import numpy as np
import pytest

from coinbt import engine
from coinbt.backends.sqlite import verify_file
from coinbt.backends.sqlite.rebuild import verify_read_models
from coinbt.errors import (
    IdempotencyKeyReusedError,
    InvalidTransitionError,
    QueueFullError,
    SpecError,
    TaskNotFoundError,
)
from coinbt.events import DataSpec, SyntheticSpec, TaskSpec
from coinbt.executor.local import LocalProcessExecutor
from coinbt.lifecycle import UNFINISHED
from tests.system import OpenSystem, long, system_factory, tiny, types_of, wait_status


@pytest.fixture
def open_system(tmp_path: Path) -> OpenSystem:
    return system_factory(tmp_path)


async def test_submitted_backtests_complete_with_results(open_system: OpenSystem) -> None:
    async with open_system(workers=2) as system:
        views = [await system.submit(tiny(seed=n)) for n in range(1, 4)]
        assert all(v.status in UNFINISHED for v in views)
        await system.drain()
        for n, submitted in enumerate(views, start=1):
            view = await system.task(submitted.task_id)
            expected = engine.run(
                engine.BacktestSpec("sma_cross", {"fast": 5, "slow": 20}),
                engine.synthetic(300, seed=n),
            )
            assert view.status == "completed"
            assert view.progress == 1.0
            assert view.result is not None
            assert view.result["result_digest"] == expected.digest()
            assert view.result["final_equity"] == expected.final_equity
            assert view.num_fills == expected.num_fills
            types = await types_of(system, view.task_id)
            assert types == ["Queued", "Started", "Completed"]  # fills are an artifact
            _, equity = await system.equity(view.task_id)
            np.testing.assert_array_equal(equity, expected.equity)
            [position] = await system.positions(view.task_id)
            [summary] = engine.ledger_of(expected).positions
            assert position.symbol == "SYNTH"
            assert (position.qty, position.realized_pnl, position.unrealized_pnl) == (
                summary.qty,
                summary.realized_pnl,
                summary.unrealized_pnl,
            )
            assert 10_000 + position.realized_pnl + position.unrealized_pnl == pytest.approx(
                expected.final_equity
            )
            fills = await system.fills(view.task_id, offset=1, limit=2)
            assert fills.total == expected.num_fills
            assert [(f["bar"], f["side"], f["symbol"]) for f in fills.rows] == [
                (expected.fills[i].bar, expected.fills[i].side, "SYNTH") for i in (1, 2)
            ]
            trades = await system.trades(view.task_id, limit=1000)
            ts = engine.synthetic(300, seed=n).ts
            assert trades.rows == engine.ledger_of(expected).trades.to_dicts(ts, ("SYNTH",))


async def test_cancel_queued_is_immediate_and_idempotent(open_system: OpenSystem) -> None:
    async with open_system(workers=0) as system:
        view = await system.submit(tiny())
        assert view.status == "queued"
        cancelled = await system.cancel(view.task_id, reason="changed my mind")
        assert cancelled.status == "cancelled"
        assert cancelled.reason == "changed my mind"
        # Every read shows the same state.
        assert (await system.task(view.task_id)).status == "cancelled"
        [listed] = await system.read.tasks(status="cancelled")
        assert listed.task_id == view.task_id
        assert await types_of(system, view.task_id) == ["Queued", "Cancelled"]
        before = await system.store.last_position()
        again = await system.cancel(view.task_id)
        assert again == cancelled
        assert await system.store.last_position() == before


async def test_cancelled_queued_task_never_starts(open_system: OpenSystem) -> None:
    async with open_system(workers=0) as system:
        doomed = await system.submit(tiny(seed=1))
        kept = await system.submit(tiny(seed=2))
        await system.cancel(doomed.task_id)
    async with open_system(workers=1) as system:
        await system.drain()
        assert await types_of(system, doomed.task_id) == ["Queued", "Cancelled"]
        assert (await system.task(kept.task_id)).status == "completed"


async def test_cancel_running_kills_its_process(open_system: OpenSystem) -> None:
    async with open_system(workers=1) as system:
        view = await system.submit(long())
        executor = system.executor
        assert isinstance(executor, LocalProcessExecutor)
        with anyio.fail_after(30):
            pid = await executor.wait_running(view.task_id)
        assert await wait_status(system, view.task_id, "running") == "running"
        cancelled = await system.cancel(view.task_id)
        assert cancelled.status == "cancelled"
        with anyio.fail_after(30):
            await executor.wait_exited(pid)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        # The worker goes on with the next task on a fresh process.
        follow_up = await system.submit(tiny())
        await system.drain()
        assert (await system.task(follow_up.task_id)).status == "completed"
        assert await types_of(system, view.task_id) == ["Queued", "Started", "Cancelled"]
        assert (await system.task(view.task_id)).status == "cancelled"


async def test_timeout_fails_the_task_and_stops_its_process(open_system: OpenSystem) -> None:
    async with open_system(workers=1) as system:
        view = await system.submit(long(timeout_s=0.2))
        await system.drain()
        failed = await system.task(view.task_id)
        assert failed.status == "failed"
        assert failed.error_type == "timeout"
        assert failed.error == "timed out after 0.2 s"
        assert system.executor is not None
        assert system.executor.running_pids() == {}


async def test_cancel_completed_or_failed_is_refused_and_appends_nothing(
    open_system: OpenSystem,
) -> None:
    async with open_system(workers=1) as system:
        done = await system.submit(tiny())
        failed = await system.submit(long(timeout_s=0.1))
        await system.drain()
        before = await system.store.last_position()
        for view, status in ((done, "completed"), (failed, "failed")):
            with pytest.raises(InvalidTransitionError) as info:
                await system.cancel(view.task_id)
            assert info.value.status == status
            assert f"it is {status}" in str(info.value)
            assert (await system.task(view.task_id)).status == status
        assert await system.store.last_position() == before


async def test_unknown_task(open_system: OpenSystem) -> None:
    async with open_system(workers=0) as system:
        with pytest.raises(TaskNotFoundError):
            await system.cancel("no-such-task")
        with pytest.raises(TaskNotFoundError):
            await system.task("no-such-task")
        with pytest.raises(TaskNotFoundError):
            await system.task_events("no-such-task")
        assert await system.store.last_position() == 0


async def test_cancel_after_restart_loads_the_task_from_the_log(open_system: OpenSystem) -> None:
    async with open_system(workers=1) as system:
        done = await system.submit(tiny())
        await system.drain()
    async with open_system(workers=0) as system:
        with pytest.raises(InvalidTransitionError, match="completed"):
            await system.cancel(done.task_id)


async def test_idempotency_key_returns_the_same_task(open_system: OpenSystem) -> None:
    async with open_system(workers=0) as system:
        first = await system.submit(tiny(seed=1), idempotency_key="order-42")
        second = await system.submit(tiny(seed=1), idempotency_key="order-42")
        other = await system.submit(tiny(seed=1), idempotency_key="order-43")
        assert second.task_id == first.task_id
        assert other.task_id != first.task_id
        assert await system.store.last_position() == 2
    async with open_system(workers=0) as system:  # and after a restart
        again = await system.submit(tiny(seed=1), idempotency_key="order-42")
        assert again.task_id == first.task_id
        assert await system.store.last_position() == 2


async def test_an_idempotency_key_reused_with_another_spec_is_refused(
    open_system: OpenSystem,
) -> None:
    async with open_system(workers=0) as system:
        first = await system.submit(tiny(seed=1), idempotency_key="order-42")
        with pytest.raises(IdempotencyKeyReusedError) as caught:
            await system.submit(tiny(seed=2), idempotency_key="order-42")
        assert caught.value.task_id == first.task_id
        assert caught.value.code == "idempotency_key_reused"

        async def submit(seed: int) -> str:  # while the first append is still on its way
            try:
                return (await system.submit(tiny(seed=seed), idempotency_key="fresh")).task_id
            except IdempotencyKeyReusedError as e:
                return f"reused {e.task_id}"

        async with anyio.create_task_group() as tg:
            answers: list[str] = []

            async def record(seed: int) -> None:
                answers.append(await submit(seed))

            tg.start_soon(record, 1)
            tg.start_soon(record, 2)
        [task_id] = [a for a in answers if not a.startswith("reused")]
        assert sorted(answers) == sorted([task_id, f"reused {task_id}"])
        assert await system.store.last_position() == 2
    async with open_system(workers=0) as system:  # and after a restart
        with pytest.raises(IdempotencyKeyReusedError):
            await system.submit(tiny(seed=3), idempotency_key="order-42")
        assert await system.store.last_position() == 2


async def test_concurrent_submits_with_one_key_make_one_task(open_system: OpenSystem) -> None:
    async with open_system(workers=0) as system:
        ids: list[str] = []

        async def submit() -> None:
            ids.append((await system.submit(tiny(), idempotency_key="same")).task_id)

        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(submit)
        assert len(set(ids)) == 1
        assert await system.store.last_position() == 1


async def test_a_full_queue_refuses_and_appends_nothing(open_system: OpenSystem) -> None:
    async with open_system(workers=0, queue_capacity=2) as system:
        await system.submit(tiny(seed=1))
        await system.submit(tiny(seed=2))
        with pytest.raises(QueueFullError, match="full"):
            await system.submit(tiny(seed=3))
        assert await system.store.last_position() == 2


@pytest.mark.parametrize(
    ("spec", "fields"),
    [
        pytest.param(tiny(strategy="moonshot"), {"strategy"}, id="unknown-strategy"),
        pytest.param(tiny(params={"fast": 30, "slow": 10}), {"params.fast"}, id="fast-ge-slow"),
        pytest.param(tiny(params={"fast": "ten"}), {"params.fast"}, id="wrong-type"),
        pytest.param(tiny(bars=20_000_001), {"data.synthetic.bars"}, id="too-many-bars"),
        pytest.param(
            tiny(bars=10, params={"fast": 5, "slow": 20}), {"params.slow"}, id="too-few-bars"
        ),
        pytest.param(
            TaskSpec(strategy="sma_cross", data=DataSpec(dataset="nope")),
            {"data.dataset"},
            id="unknown-dataset",
        ),
        pytest.param(TaskSpec(strategy="sma_cross", data=DataSpec()), {"data"}, id="no-data"),
        pytest.param(tiny(cash=float("inf")), {"cash"}, id="infinite-cash"),
    ],
)
async def test_bad_specs_name_the_field_and_append_nothing(
    open_system: OpenSystem, spec: TaskSpec, fields: set[str]
) -> None:
    async with open_system(workers=0, max_bars=20_000_000) as system:
        with pytest.raises(SpecError) as info:
            await system.submit(spec)
        assert fields <= {e.field for e in info.value.errors}
        assert await system.store.last_position() == 0


@pytest.mark.parametrize("seed", range(6))
async def test_cancel_racing_completion_records_exactly_one_outcome(
    open_system: OpenSystem, seed: int
) -> None:
    """Cancels land at seeded random moments while runs finish; whatever wins, each task has
    exactly one terminal event and the read models agree with the log."""
    rng = random.Random(seed)
    async with open_system(workers=2) as system:
        views = [await system.submit(tiny(seed=n)) for n in range(16)]

        async def cancel_later(task_id: str, delay: int) -> None:
            for _ in range(delay):
                await anyio.lowlevel.checkpoint()
            try:
                await system.cancel(task_id)
            except InvalidTransitionError:
                pass  # it finished first

        async with anyio.create_task_group() as tg:
            for view in views:
                tg.start_soon(cancel_later, view.task_id, rng.randrange(0, 400))
        await system.drain()
        outcomes = []
        for view in views:
            types = await types_of(system, view.task_id)
            terminal = [t for t in types if t in ("Completed", "Failed", "Cancelled")]
            assert len(terminal) == 1, types
            assert types[-1] == terminal[0]
            assert (await system.task(view.task_id)).status == terminal[0].lower()
            outcomes.append(terminal[0])
    assert verify_read_models(system.config.db).ok
    assert verify_file(system.config.db).ok


async def test_a_portfolio_short_run_records_one_completed_with_each_assets_position(
    open_system: OpenSystem,
) -> None:
    """Two assets, both directions, target_percent sizing: one Completed whose summaries the
    positions read model shows per asset (a short one negative), and fills and trades that name
    their asset; the engine's ledger is the reference."""
    spec = TaskSpec(
        strategy="sma_cross",
        params={"fast": 5, "slow": 20},
        data=DataSpec(synthetic=SyntheticSpec(bars=2000, seed=4, symbols=2)),
        direction="both",
        size=0.4,
        size_type="target_percent",
    )
    async with open_system(workers=1) as system:
        view = await system.submit(spec)
        await system.drain()
        view = await system.task(view.task_id)
        assert view.status == "completed", view.error
        assert await types_of(system, view.task_id) == ["Queued", "Started", "Completed"]
        bars = engine.synthetic_portfolio(2000, 2, seed=4)
        expected = engine.run(
            engine.BacktestSpec(
                "sma_cross",
                {"fast": 5, "slow": 20},
                direction="both",
                size=0.4,
                size_type="target_percent",
            ),
            bars,
        )
        book = engine.ledger_of(expected)
        assert view.result is not None
        assert view.result["symbols"] == list(expected.symbols)
        positions = {p.symbol: p for p in await system.positions(view.task_id)}
        traded = {p.symbol: p for p in book.positions if p.trades}
        assert positions.keys() == traded.keys()
        for symbol, p in traded.items():
            got = positions[symbol]
            assert (got.qty, got.realized_pnl, got.unrealized_pnl, got.trades) == (
                p.qty,
                p.realized_pnl,
                p.unrealized_pnl,
                p.trades,
            )
            assert got.side == ("long" if p.qty > 0 else "short" if p.qty < 0 else "flat")
        fills = await system.fills(view.task_id, limit=1000)
        assert fills.total == len(expected.fills)
        assert fills.rows == expected.fills.to_dicts(expected.symbols)[:1000]
        trades = await system.trades(view.task_id, limit=1000)
        ts = next(iter(bars.values())).ts
        assert trades.rows == book.trades.to_dicts(ts, expected.symbols)[:1000]
        assert {t["side"] for t in trades.rows} == {"long", "short"}
