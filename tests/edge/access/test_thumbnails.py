"""Face thumbnails beside access events (issue 17 item 8), end to end: a file camera showing
an enrolled resident, the real face pipeline, a pymodbus relay board. With [faces]
keep_thumbnails the granted event has a JPEG of the face (staff only, on the box only), the
office's access log shows it in Chromium; the periodic purge and deleting the resident remove
it. Without keep_thumbnails nothing is kept."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import aiohttp
import cv2
import numpy as np
import pytest

from edge.access import ACCESS as ACCESS_SERVICE
from edge.access import store as db
from edge.core.config import ConfigError
from edge.core.store import Store
from tests.conftest import api_url
from tests.edge.access.helpers import door_frame, enrol, head_turn, photo, write_folder
from tests.edge.access.test_engine import (  # noqa: F401 - fixtures
    ACCESS,
    cam_toml,
    door_toml,
    pipeline,
    wait_events,
)
from tests.edge.office.helpers import PASSWORDS, add_users
from tests.edge.office.test_office_chromium import shots_dir
from tests.edge.portal.helpers import STAFF, login
from tests.peers.chromium import browser

KEEP = "\n[faces]\nkeep_thumbnails = true\n"


def db_rows(box, sql: str, *args) -> list[tuple]:
    """Straight from the box's SQLite file: what is really stored."""
    con = sqlite3.connect(box.config.db_path)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


async def face_door_box(tmp_path: Path, make_config, run_box, relays, faces, extra: str):
    """A box with door d-face (coil 0) whose file camera shows r-obama turning their head,
    and d-stranger (coil 1) whose camera shows someone not enrolled."""
    turn = head_turn(door_frame(photo("obama3.jpg"), faces), faces)
    stranger = head_turn(door_frame(photo("biden.jpg"), faces), faces)
    config = make_config(extra=ACCESS + "thumbnail_purge_s = 1\n"
                         + door_toml("d-face", relays.tcp_port, 0, "c-face")
                         + cam_toml("c-face", write_folder(tmp_path / "cam", turn))
                         + door_toml("d-stranger", relays.tcp_port, 1, "c-stranger")
                         + cam_toml("c-stranger", write_folder(tmp_path / "stranger", stranger))
                         + extra)
    store = Store(config.db_path, box_id=config.box.id)
    enrol(store, faces, "r-obama", door_frame(photo("obama2.jpg"), faces), building="1")
    store.close()
    add_users(config.source)
    t0 = time.monotonic()
    box = await run_box(config)
    await asyncio.to_thread(relays.wait_for, 1, 0, True, 200.0, t0)  # the door really opened
    ev = (await wait_events(box, "d-face", 1, 20, decision="granted"))[0]
    assert (ev["reason"], ev["resident_id"]) == ("match", "r-obama")
    return box, ev


def embedding_of(faces, image: np.ndarray) -> np.ndarray:
    fr = faces.analyse_sync(door_frame(image, faces), max_faces=1)
    return fr.faces[0].embedding


@pytest.mark.timeout(400)  # the face pipeline and Chromium on a shared 2-core machine
async def test_granted_face_keeps_a_thumbnail_staff_see_it_purge_and_delete_remove_it(
    tmp_path: Path, make_config, run_box, board, pipeline  # noqa: F811
) -> None:
    box, ev = await face_door_box(tmp_path, make_config, run_box, board, pipeline, KEEP)
    base = api_url(box)
    url = f"{base}/api/v1/access/events/{ev['id']}/thumbnail.jpg"
    assert ev["has_thumbnail"] is True and ev["thumbnail_url"].endswith("/thumbnail.jpg")
    # A denied face keeps one too (a stranger: no resident to tie it to).
    denied = (await wait_events(box, "d-stranger", 1, 30, decision="denied"))[0]
    assert (denied["reason"], denied["has_thumbnail"]) == ("unknown_face", True)
    assert board.first_write(1, 1, True) is None
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{base}/api/v1/access/events?door=d-face", headers=STAFF) as r:
            listed = {e["id"]: e for e in await r.json()}
        assert listed[ev["id"]]["has_thumbnail"] is True
        async with s.get(url, headers=STAFF) as r:
            assert (r.status, r.content_type) == (200, "image/jpeg")
            jpeg = await r.read()
        # Residents (even the one in the picture) and anonymous callers are refused.
        me = await login(s, base, "r-obama", "1")
        async with s.get(url, headers=me) as r:
            assert r.status == 403
        async with s.get(url) as r:
            assert r.status == 401
        async with s.get(f"{base}/api/v1/access/events/ae-none/thumbnail.jpg",
                         headers=STAFF) as r:
            assert r.status == 404 and (await r.json())["field"] == "id"

    # A JPEG that decodes to a face-sized picture of this resident (SFace agrees), not of
    # someone else.
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and 64 <= img.shape[0] <= 256 and 64 <= img.shape[1] <= 256
    assert float(img.std()) > 20  # a picture, not a flat block
    thumb = pipeline.embedder.embed(img)
    same = float(np.dot(thumb, embedding_of(pipeline, photo("obama2.jpg"))))
    other = float(np.dot(thumb, embedding_of(pipeline, photo("biden.jpg"))))
    assert same > 0.45 and other < same - 0.2, (same, other)

    # On the box only: not in the standard record, the journal or the outbox.
    assert "thumbnail" not in {c for (c,) in db_rows(
        box, "SELECT name FROM pragma_table_info('access_events')")}
    payloads = db_rows(box, "SELECT payload FROM outbox") + db_rows(
        box, "SELECT payload FROM events WHERE kind = 'access_event'")
    assert payloads and not any("thumb" in p or "/9j/" in p for (p,) in payloads)

    # The office's access log shows it (Chromium at the console's size).
    async with browser() as b:
        page = await b.new_page(viewport={"width": 1366, "height": 768})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(f"{base}/office/login")
        await page.fill("input[name=name]", "ann")
        await page.fill("input[name=password]", PASSWORDS["ann"])
        await page.click("main form button[type=submit]")
        await page.wait_for_url("**/office/today")
        await page.goto(f"{base}/office/log")
        await page.wait_for_selector("#events table img.thumb", timeout=15000)
        await page.wait_for_function(
            "() => [...document.querySelectorAll('#events img.thumb')]"
            ".some((i) => i.complete && i.naturalWidth > 0)", timeout=15000)
        shown = await page.evaluate(
            "() => [...document.querySelectorAll('#events img.thumb')].map((i) =>"
            " ({src: i.getAttribute('src'), alt: i.alt, w: i.naturalWidth}))")
        assert any(x["src"].endswith(f"/{ev['id']}/thumbnail.jpg") and x["w"] > 0
                   and "d-face" in x["alt"] for x in shown), shown
        # A click opens it full size (the same staff-only URL, the office's cookie).
        async with page.expect_popup() as popup:
            await page.click(f"#events a[href$='/{ev['id']}/thumbnail.jpg']")
        big = await popup.value
        await big.wait_for_load_state()
        assert await big.evaluate("() => document.images[0].naturalWidth") > 0
        await page.screenshot(path=str(shots_dir(tmp_path) / "office-log-thumbnails.png"))
        assert not errors, errors

    # The purge: thumbnails older than [access] thumbnail_days go, by the periodic task
    # (every thumbnail_purge_s = 1 s here); today's stay.
    svc = box.get(ACCESS_SERVICE)
    assert await svc.purge_thumbnails() == 0
    con = sqlite3.connect(box.config.db_path)
    with con:
        con.execute("UPDATE access_thumbnails SET ts = '2020-01-01T00:00:00+00:00'")
    con.close()
    async with asyncio.timeout(10):
        while db_rows(box, "SELECT count(*) FROM access_thumbnails")[0][0]:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
    assert db_rows(box, "SELECT count(*) FROM access_events WHERE id = ?", ev["id"])[0][0] == 1
    async with aiohttp.ClientSession() as s:
        async with s.get(url, headers=STAFF) as r:
            assert r.status == 404

    # Deleting the resident removes theirs (a fresh one kept by hand for the check).
    await box.store.run(db.keep_thumbnail, box.store.sync, ev["id"], "r-obama", jpeg)
    assert db_rows(box, "SELECT count(*) FROM access_thumbnails")[0][0] == 1
    async with aiohttp.ClientSession() as s:
        async with s.delete(f"{base}/api/v1/residents/r-obama", headers=STAFF) as r:
            assert r.status < 300, await r.text()
    assert db_rows(box, "SELECT count(*) FROM access_thumbnails")[0][0] == 0
    # A decision that raced the deletion keeps no picture of them either.
    await box.store.run(db.keep_thumbnail, box.store.sync, ev["id"], "r-obama", jpeg)
    assert db_rows(box, "SELECT count(*) FROM access_thumbnails")[0][0] == 0


@pytest.mark.timeout(300)
async def test_without_keep_thumbnails_nothing_is_kept(
    tmp_path: Path, make_config, run_box, board, pipeline  # noqa: F811
) -> None:
    box, ev = await face_door_box(tmp_path, make_config, run_box, board, pipeline, "")
    assert ev["has_thumbnail"] is False and ev["thumbnail_url"] is None
    await wait_events(box, "d-stranger", 1, 30, decision="denied")
    assert db_rows(box, "SELECT count(*) FROM access_thumbnails")[0][0] == 0
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{api_url(box)}/api/v1/access/events/{ev['id']}/thumbnail.jpg",
                         headers=STAFF) as r:
            assert r.status == 404


def test_thumbnail_days_is_validated(make_config) -> None:
    with pytest.raises(ConfigError, match="thumbnail_days"):
        make_config(extra="\n[access]\nthumbnail_days = 0\n")
