"""Headless Debian Chromium for tests: screenshots from the command line, or a live page
driven through Playwright (``executable_path`` is the system browser; nothing is downloaded).

    png = screenshot(url, tmp_path)                  # one shot, then exit
    async with browser() as b:                       # a live page
        page = await b.new_page(viewport={"width": 640, "height": 360})
    rgb(png_bytes, x, y)                             # a pixel of a PNG, as (r, g, b)
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# peers.md: these keep it headless, offline and quiet (no first-run, sync or updates).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--autoplay-policy=no-user-gesture-required",
]


def require() -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (scripts/setup.sh test installs it)")


def screenshot(
    url: str, out_dir: Path, *, size: tuple[int, int] = (800, 450), wait_ms: int = 2000
) -> bytes:
    """``chromium --headless --screenshot``: the page after ``wait_ms``, as PNG bytes."""
    require()
    out = out_dir / "shot.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                CHROMIUM,
                "--headless",
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={size[0]},{size[1]}",
                f"--virtual-time-budget={wait_ms}",
                f"--screenshot={out}",
                url,
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
    return out.read_bytes()


@asynccontextmanager
async def browser(*extra_args: str, **launch: Any) -> AsyncIterator[Any]:
    """A Playwright Browser on the system Chromium, closed at the end; ``extra_args`` are
    more command-line flags (e.g. the fake camera and microphone for WebRTC)."""
    require()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=[*FLAGS, *extra_args],
                                     headless=True, **launch)
        try:
            yield b
        finally:
            await b.close()


def rgb(png: bytes, x: int, y: int) -> tuple[int, int, int]:
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    b, g, r = img[y, x]
    return int(r), int(g), int(b)


def near(color: tuple[int, int, int], want: tuple[int, int, int], tol: int = 24) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(color, want, strict=True))
