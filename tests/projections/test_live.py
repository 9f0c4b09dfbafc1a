"""Live progress: this process's runs, and what the other processes on a shared database last
announced (replaced wholesale, forgotten when not renewed)."""

from __future__ import annotations

import pytest

from coinbt.projections.live import LiveProgress


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_local_runs_are_clamped_and_popped() -> None:
    progress = LiveProgress()
    progress.set("a", 1.5)
    progress.set("b", -1)
    assert progress.snapshot() == {"a": 1.0, "b": 0.0}
    progress.pop("a")
    assert progress.get("a") is None
    assert progress.local() == {"b": 0.0}


def test_announcements_replace_each_other_and_expire() -> None:
    clock = Clock()
    progress = LiveProgress(clock)
    progress.set("mine", 0.5)
    hint = progress.changed_hint()
    progress.replace_remote("i2", {"x": 0.25, "y": 0.5}, valid_s=6)
    assert hint.is_set()
    assert progress.get("x") == 0.25
    assert progress.snapshot() == {"mine": 0.5, "x": 0.25, "y": 0.5}
    assert progress.local() == {"mine": 0.5}  # only its own runs are announced
    progress.replace_remote("i2", {"y": 0.75}, valid_s=6)  # x ended over there
    assert progress.get("x") is None
    assert progress.get("y") == 0.75
    progress.replace_remote("i3", {"z": 0.1}, valid_s=6)
    clock.now += 5
    progress.replace_remote("i3", {"z": 0.2}, valid_s=6)  # i3 renews, i2 does not
    clock.now += 2
    assert progress.snapshot() == {"mine": 0.5, "z": 0.2}


@pytest.mark.parametrize("local", [0.9, 0.0])
def test_this_process_knows_its_own_runs_best(local: float) -> None:
    progress = LiveProgress()
    progress.replace_remote("i2", {"t": 0.3}, valid_s=6)
    progress.set("t", local)
    assert progress.get("t") == local
    assert progress.snapshot() == {"t": local}


def test_a_finished_run_keeps_its_last_progress_for_reads_until_a_new_run() -> None:
    progress = LiveProgress()
    progress.set("a", 0.75)
    hint = progress.changed_hint()
    progress.finish("a")
    assert hint.is_set()
    assert progress.get("a") == 0.75  # no drop back to 0 while the outcome is on its way
    assert progress.snapshot() == {}  # not running any more
    assert progress.local() == {}
    progress.set("a", 0.0)  # the task runs again (re-queued): that run's own progress
    assert progress.get("a") == 0.0
