"""The progress line of long commands: throttled, cleared at the end, silent off a terminal."""

from __future__ import annotations

import io

from coinbt.cli._progress import ProgressLine


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_on_a_terminal_it_rewrites_one_line_at_most_every_interval() -> None:
    terminal, clock = Terminal(), Clock()
    with ProgressLine("replaying the log", terminal, interval_s=0.1, clock=clock) as line:
        line.count(5_000, 1_000_000)
        line.count(10_000, 1_000_000)  # too soon: skipped
        clock.now += 0.1
        line.count(250_000, 1_000_000)
        line.count(1_000_000, 1_000_000)  # the end always shows
    assert terminal.getvalue().split("\r\x1b[K") == [
        "",
        "replaying the log: 5,000 of 1,000,000 events (0%)",
        "replaying the log: 250,000 of 1,000,000 events (25%)",
        "replaying the log: 1,000,000 of 1,000,000 events (100%)",
        "",  # cleared on close
    ]


def test_an_empty_log_shows_no_percentage() -> None:
    terminal = Terminal()
    with ProgressLine("verifying the hash chain", terminal) as line:
        line.count(0, 0)
    assert terminal.getvalue() == "\r\x1b[Kverifying the hash chain: 0 of 0 events\r\x1b[K"


def test_nothing_is_written_off_a_terminal_or_when_nothing_was_shown() -> None:
    piped = io.StringIO()
    with ProgressLine("replaying the log", piped) as line:
        line.count(1, 2)
        line.count(2, 2)
    assert piped.getvalue() == ""
    terminal = Terminal()
    ProgressLine("replaying the log", terminal).close()
    assert terminal.getvalue() == ""


def test_fractions_show_as_percentages() -> None:
    terminal, clock = Terminal(), Clock()
    with ProgressLine("sweeping sma_cross", terminal, interval_s=0.1, clock=clock) as line:
        line.fraction(0.333)
        clock.now += 0.05
        line.fraction(0.5)  # too soon: skipped
        clock.now += 0.05
        line.fraction(0.75)
        line.fraction(1.0)
    assert terminal.getvalue().split("\r\x1b[K") == [
        "",
        "sweeping sma_cross: 33%",
        "sweeping sma_cross: 75%",
        "sweeping sma_cross: 100%",
        "",
    ]
