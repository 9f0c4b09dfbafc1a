"""Progress, as a client reads it, never goes backwards: not at the end of a run either (the
worker keeps its last value until the outcome is in the read models)."""

from __future__ import annotations

from pathlib import Path

import anyio

from coinbt.lifecycle import TERMINAL
from tests.system import system_factory, tiny


async def test_progress_read_by_a_client_never_goes_back(tmp_path: Path) -> None:
    async with system_factory(tmp_path)(workers=1) as system:
        spec = tiny(bars=3_000_000, strategy="buy_and_hold", params={})
        view = await system.submit(spec)
        seen: list[tuple[str, float]] = []
        with anyio.fail_after(30):
            while True:
                # Hints before reading: no change between the read and the wait is missed.
                hints = (system.progress.changed_hint(), system.projector.advanced_hint())
                data = system.task_json(await system.task(view.task_id))
                seen.append((data["status"], data["progress"]))
                if data["status"] in TERMINAL:
                    break
                async with anyio.create_task_group() as tg:

                    async def wait(event: anyio.Event) -> None:
                        await event.wait()
                        tg.cancel_scope.cancel()

                    for hint in hints:
                        tg.start_soon(wait, hint)
        assert seen[-1] == ("completed", 1.0)
        running = [p for status, p in seen if status == "running"]
        assert any(0 < p < 1 for p in running), seen  # it did report progress on the way
        fractions = [p for _, p in seen]
        assert fractions == sorted(fractions), seen
