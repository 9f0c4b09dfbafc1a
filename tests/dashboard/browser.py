"""Where Chromium is and how it is started, for the tests and for ``screenshot.py``."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ("ARGS", "CHROMIUM", "ROOT")

ROOT = Path(__file__).parents[2]
CHROMIUM = Path(os.environ.get("COINBT_CHROMIUM", "/usr/bin/chromium"))
# Debian's Chromium, never a browser that Playwright downloads. No GPU, no sandbox (the tests may
# run as root in a container), and none of Chromium's own network traffic (the machine may have no
# internet; without these flags Chromium keeps trying to reach Google's services).
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
