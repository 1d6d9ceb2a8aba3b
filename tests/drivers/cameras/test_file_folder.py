"""A looped image folder is looked at again each loop: new frames play, a symlinked folder
swaps atomically, and a folder that vanishes takes the camera offline until it is back."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np

from tests.drivers.cameras.test_cameras import make_camera, wait_state


def frames(folder: Path, values: list[int]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, v in enumerate(values):
        cv2.imwrite(str(folder / f"{i:04d}.png"), np.full((48, 64, 3), v, np.uint8))
    return folder


async def seen_values(cam, n: int) -> set[int]:
    out, last = set(), -1
    for _ in range(n):
        f = await cam.next_frame(last, 2.0)
        assert f is not None
        last = f.seq
        out.add(int(f.image[0, 0, 0]))
    return out


async def test_folder_swapped_then_gone_then_back(tmp_path: Path) -> None:
    a = frames(tmp_path / "a", [10])
    b = frames(tmp_path / "b", [200, 220])
    link = tmp_path / "cam"
    link.symlink_to(a)
    health: list = []
    cam = make_camera("file", health, path=str(link), fps=30, reconnect_min_s=0.1,
                      reconnect_max_s=0.3)
    await cam.start()
    try:
        await wait_state(cam, "online", 5)
        assert await seen_values(cam, 5) == {10}
        # Swap the folder atomically (a new symlink renamed over the old one).
        tmp_link = tmp_path / "cam.new"
        tmp_link.symlink_to(b)
        os.replace(tmp_link, link)
        await seen_values(cam, 3)  # the loop in flight ends
        assert await seen_values(cam, 10) == {200, 220}
        # The folder vanishes: the stream ends, the camera goes offline and retries.
        shutil.rmtree(b)
        await wait_state(cam, "offline", 5)
        assert "no frames" in health[-1][1] or "does not exist" in health[-1][1]
        frames(b, [99])
        await wait_state(cam, "online", 5)
        assert await seen_values(cam, 5) == {99}
    finally:
        await cam.stop()
    states = [s for s, _ in health]
    assert states[:3] == ["online", "offline", "online"]
