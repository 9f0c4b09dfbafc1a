"""``replay`` on PostgreSQL: prove the live read models equal a rebuild, or rebuild them.

Both fold the log in memory with the same pure fold as the projector (``fold_page``).

- :func:`verify_read_models_pg` reads the live checkpoint, the live rows and the log up to that
  checkpoint in one ``REPEATABLE READ`` snapshot, so it compares like with like while the service
  runs, and changes nothing.
- :func:`rebuild_read_models_pg` locks the checkpoint row (the projector's next commit waits),
  replays the whole log, replaces the rows and moves the checkpoint to the head in one
  transaction, and announces it. A projector that was writing finds the checkpoint moved, gives
  up its turn and starts again from the new one (``coinbt.backends.postgres.read_models``).
"""

from __future__ import annotations

from typing import Any

from coinbt.backends.postgres.read_models import CHANNEL
from coinbt.backends.postgres.schema import DRIVER_ERRORS, connect, describe
from coinbt.errors import DatabaseError
from coinbt.events import decode_rows
from coinbt.projections.base import MAIN
from coinbt.projections.fold import (
    PositionKey,
    encode_view,
    fold_page,
)
from coinbt.projections.positions import PositionView
from coinbt.projections.replay import ReplayReport, view_differences
from coinbt.projections.status import TaskView
from coinbt.store.base import Progress

__all__ = ("rebuild_read_models_pg", "verify_read_models_pg")

_PAGE = 5000
_SELECT = (
    "SELECT position, stream_id, version, type, schema, recorded_at, data, hash FROM events"
    " WHERE position > $1 AND position <= $2 ORDER BY position LIMIT $3"
)


async def _replay(
    conn: Any, upto: int, progress: Progress | None
) -> tuple[int, dict[str, TaskView], dict[Any, Any]]:
    """Fold the log up to ``upto``: (events, tasks, positions)."""
    tasks: dict[str, TaskView] = {}
    positions: dict[PositionKey, PositionView] = {}
    checkpoint = count = 0
    while rows := await conn.fetch(_SELECT, checkpoint, upto, _PAGE):
        page = decode_rows(rows)
        changes = fold_page(page, checkpoint, tasks.get, positions.get)
        tasks.update(changes.tasks)
        positions.update(changes.positions)
        checkpoint = changes.checkpoint
        count += len(page)
        if progress is not None:
            progress(count, upto)
    if progress is not None:
        progress(count, upto)
    return count, tasks, positions


async def verify_read_models_pg(
    dsn: str, *, max_differences: int = 20, progress: Progress | None = None
) -> ReplayReport:
    """Rebuild in memory up to the live checkpoint and compare row by row (one snapshot)."""
    conn = await connect(dsn)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            checkpoint = int(
                await conn.fetchval(
                    "SELECT position FROM projection_checkpoints WHERE name = $1", MAIN
                )
                or 0
            )
            live = {
                "tasks": {
                    str(r[0]): bytes(r[1])
                    for r in await conn.fetch("SELECT task_id, view FROM tasks")
                },
                "positions": {
                    f"{r[0]}/{r[1]}": bytes(r[2])
                    for r in await conn.fetch("SELECT task_id, symbol, view FROM positions")
                },
            }
            events, tasks, positions = await _replay(conn, checkpoint, progress)
    except DRIVER_ERRORS as e:
        raise DatabaseError(f"verifying the read models in {describe(dsn)} failed: {e}") from e
    finally:
        await conn.close(timeout=5)
    rebuilt = {
        "tasks": {k: encode_view(v) for k, v in tasks.items()},
        "positions": {f"{k[0]}/{k[1]}": encode_view(v) for k, v in positions.items()},
    }
    differences = view_differences(live, rebuilt, max_differences)
    return ReplayReport(
        events=events,
        checkpoint=checkpoint,
        tasks=len(tasks),
        positions=len(positions),
        differences=differences,
    )


async def rebuild_read_models_pg(dsn: str, *, progress: Progress | None = None) -> ReplayReport:
    """Replay the whole log and swap the result into the live read models (one transaction)."""
    conn = await connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(
                "SELECT position FROM projection_checkpoints WHERE name = $1 FOR UPDATE", MAIN
            )
            head = int(await conn.fetchval("SELECT position FROM event_head") or 0)
            events, tasks, positions = await _replay(conn, head, progress)
            await conn.execute("DELETE FROM positions")
            await conn.execute("DELETE FROM tasks")
            await conn.copy_records_to_table(
                "tasks",
                records=[
                    (v.task_id, v.seq, v.status, v.idempotency_key, encode_view(v))
                    for v in tasks.values()
                ],
                columns=("task_id", "seq", "status", "idempotency_key", "view"),
            )
            await conn.copy_records_to_table(
                "positions",
                records=[(p.task_id, p.symbol, encode_view(p)) for p in positions.values()],
                columns=("task_id", "symbol", "view"),
            )
            await conn.execute(
                "UPDATE projection_checkpoints SET position = $2 WHERE name = $1", MAIN, head
            )
            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, str(head))
    except DRIVER_ERRORS as e:
        raise DatabaseError(f"rebuilding the read models in {describe(dsn)} failed: {e}") from e
    finally:
        await conn.close(timeout=5)
    return ReplayReport(events=events, checkpoint=head, tasks=len(tasks), positions=len(positions))
