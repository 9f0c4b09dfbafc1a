"""A data directory written by coinbt before fills left the log (``Filled`` events; see
tests/fixtures/make_filled_log.py) opens, replays and serves with today's code."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from coinbt.backends.sqlite.rebuild import verify_read_models
from coinbt.backends.sqlite.store import verify_file
from coinbt.cli import main
from coinbt.engine.ledger import ledger
from coinbt.engine.result import Fills
from coinbt.events import Completed, Filled
from tests.system import system_factory

FIXTURE = Path(__file__).parent.parent / "fixtures" / "filled_log"
FILLS = {"r1-000001": 64, "r1-000002": 68, "r1-000003": 69}  # and the keyed task's 53


@pytest.fixture
def old_data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(FIXTURE / "artifacts", data / "artifacts")
    shutil.copy(FIXTURE / "coinbt.sqlite", data / "coinbt.db")
    return data


async def test_an_old_log_opens_and_serves_positions_fills_trades_and_equity(
    old_data: Path,
) -> None:
    open_system = system_factory(old_data)
    async with open_system(workers=0) as system:
        await system.drain()
        views = await system.read.tasks(limit=10)
        completed = [v for v in views if v.status == "completed"]
        assert len(completed) == 4
        assert {v.task_id: v.num_fills for v in completed if v.task_id in FILLS} == FILLS
        for view in completed:
            assert view.fills_logged
            stream = await system.store.read_stream(view.task_id)
            logged = [s for s in stream if isinstance(s.event, Filled)]
            assert len(logged) == view.num_fills
            done = stream[-1].event
            assert isinstance(done, Completed)
            fills = _fills([s.event for s in logged if isinstance(s.event, Filled)])
            book = ledger(fills, ("SYNTH",), (done.last_close,))
            [expected] = book.positions
            # Positions: the old fold and the engine's ledger agree exactly.
            [position] = await system.positions(view.task_id)
            assert (position.qty, position.realized_pnl, position.unrealized_pnl) == (
                expected.qty,
                expected.realized_pnl,
                expected.unrealized_pnl,
            )
            assert position.trades == expected.trades
            assert 10_000 + position.realized_pnl + position.unrealized_pnl == pytest.approx(
                done.final_equity
            )
            # Fills come from the Filled events (with their log positions).
            page = await system.fills(view.task_id, offset=2, limit=3)
            assert page.total == view.num_fills
            assert [f["position"] for f in page.rows] == [s.position for s in logged[2:5]]
            assert {f["reason"] for f in page.rows} == {"signal"}
            # Trades are folded from them; the equity curve is the old artifact.
            trades = await system.trades(view.task_id, limit=1000)
            assert trades.total == expected.trades
            assert sum(t["pnl"] for t in trades.rows) == pytest.approx(
                expected.realized_pnl + expected.unrealized_pnl
            )
            assert trades.rows[0]["entry_ts"] == logged[0].event.ts  # type: ignore[union-attr]
            _, equity = await system.equity(view.task_id)
            assert equity[-1] == done.final_equity
    # The rebuilt read models match, and the hash chain holds.
    assert verify_read_models(old_data / "coinbt.db").ok
    assert verify_file(old_data / "coinbt.db").ok


def test_replay_verify_passes_on_an_old_log(
    old_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(old_data / "coinbt.db")
    assert main(["replay", "--db", db]) == 0  # migrates, rebuilds with today's folds
    assert main(["replay", "--db", db, "--verify"]) == 0
    assert "read models match the log" in capsys.readouterr().out
    assert main(["audit", "verify", "--db", db, "--artifacts"]) == 0
    assert "ok: 8 artifacts match" in capsys.readouterr().out  # 4 runs x (equity, fills)


def _fills(events: list[Filled]) -> Fills:
    return Fills(
        bar=np.array([e.bar for e in events], dtype=np.int64),
        ts=np.array([e.ts for e in events], dtype=np.int64),
        side=np.array([1 if e.side == "buy" else -1 for e in events], dtype=np.int8),
        qty=np.array([e.qty for e in events], dtype=np.float64),
        price=np.array([e.price for e in events], dtype=np.float64),
        fee=np.array([e.fee for e in events], dtype=np.float64),
        reason=np.zeros(len(events), dtype=np.int8),
        asset=np.zeros(len(events), dtype=np.int16),
    )
