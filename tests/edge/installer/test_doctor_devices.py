"""Doctor live device checks: a face on a camera frame (file cameras), a screen's player page."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import aiohttp
import cv2
import numpy as np

from tests.conftest import STAFF_TOKEN, api_url, box_toml, free_port
from tests.edge.installer.test_doctor_cloud import doctor

FACES = Path(__file__).resolve().parents[2] / "data" / "faces"
OFFLINE = "\n[sync]\nenabled = false\n"
H = {"Authorization": f"Bearer {STAFF_TOKEN}"}


def camera(cam_id: str, folder: Path) -> str:
    return f'\n[[cameras]]\nid = "{cam_id}"\ntype = "file"\npath = "{folder}"\nfps = 10\n'


async def test_face_on_a_live_frame_passes_an_empty_frame_warns(tmp_path: Path) -> None:
    person, empty = tmp_path / "person", tmp_path / "empty"
    person.mkdir()
    empty.mkdir()
    shutil.copy(FACES / "obama.jpg", person / "a.jpg")
    cv2.imwrite(str(empty / "a.png"), np.full((480, 640, 3), 90, np.uint8))  # a grey corridor
    config = tmp_path / "edge.toml"
    config.write_text(
        box_toml(
            tmp_path, extra=OFFLINE + camera("cam-person", person) + camera("cam-empty", empty)
        )
    )
    code, by = await doctor(config)
    assert code == 0, by  # nobody in front of a camera is not a failure
    ok, blank = by["camera:cam-person"], by["camera:cam-empty"]
    assert ok["status"] == "pass" and "face detected" in ok["detail"], ok
    assert "fps" in ok["detail"] and "frame " in ok["detail"]
    assert blank["status"] == "warn" and "no face" in blank["detail"], blank
    assert "stand" in blank["hint"]


async def test_face_check_off_when_face_recognition_is_off(tmp_path: Path) -> None:
    person = tmp_path / "person"
    person.mkdir()
    shutil.copy(FACES / "obama.jpg", person / "a.jpg")
    config = tmp_path / "edge.toml"
    config.write_text(
        box_toml(tmp_path, extra=OFFLINE + "\n[faces]\nenabled = false\n" + camera("c", person))
    )
    code, by = await doctor(config)
    assert code == 0 and by["camera:c"]["status"] == "pass"
    assert "face check skipped" in by["camera:c"]["detail"]


SCREEN = '\n[[screens]]\nid = "scr-1"\ntype = "sim"\n'


async def test_screen_player_page_connected(make_config, run_box) -> None:
    port = free_port()
    box = await run_box(make_config(api_port=port, extra=OFFLINE + SCREEN))
    base = api_url(box)
    async with aiohttp.ClientSession() as s:

        async def page_doctor() -> dict:
            async with s.post(f"{base}/api/v1/installer/doctor", json={}, headers=H) as r:
                assert r.status == 202
            for _ in range(100):  # bounded: 100 x 0.1 s
                async with s.get(f"{base}/api/v1/installer/doctor?lang=en", headers=H) as r:
                    state = await r.json()
                if not state["running"]:
                    return {c["id"]: c for c in state["results"]}
                await asyncio.sleep(0.1)
            raise AssertionError("doctor did not finish")

        # No player yet: the daemon's own doctor and the CLI's (through the API) both fail it.
        by = await page_doctor()
        assert by["screen:scr-1"]["status"] == "fail", by["screen:scr-1"]
        assert "/screen/scr-1" in by["screen:scr-1"]["hint"]
        code, cli = await doctor(box.config.source)
        assert code == 1 and cli["screen:scr-1"]["status"] == "fail", cli["screen:scr-1"]

        from tests.edge.screens.helpers import screen_key

        key = (await screen_key(base, "scr-1"))["key"]
        async with s.ws_connect(f"{base}/screen/scr-1/ws?key={key}") as ws:
            assert json.loads((await ws.receive()).data)["type"] == "plan"
            by = await page_doctor()
            assert by["screen:scr-1"]["status"] == "pass", by["screen:scr-1"]
            assert "player page connected" in by["screen:scr-1"]["detail"]
            code, cli = await doctor(box.config.source)
            assert code == 0, cli
            assert "player page connected" in cli["screen:scr-1"]["detail"]

        # Gone a moment ago: it still reported recently.
        by = await page_doctor()
        assert by["screen:scr-1"]["status"] == "pass" and "ago" in by["screen:scr-1"]["detail"]
