"""Running a ``coinbt`` command with its standard error on a pseudo-terminal."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

__all__ = ("on_a_terminal",)


def on_a_terminal(*args: str) -> tuple[int, str, str]:
    """Run ``coinbt *args`` with standard error on a pseudo-terminal: (exit code, stdout, what
    the terminal received)."""
    primary, secondary = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "coinbt", *args],
            stdout=subprocess.PIPE,
            stderr=secondary,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        os.close(secondary)
        received = b""
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # EIO: the process exited and closed its side
                break
            if not chunk:
                break
            received += chunk
        out, _ = process.communicate(timeout=60)
    finally:
        os.close(primary)
    return process.returncode, out, received.decode()
