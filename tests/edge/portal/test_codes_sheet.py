"""``qilu-edge portal codes-sheet``: printed login cards for one building's residents."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import aiohttp
import cv2
import numpy as np
from click.testing import CliRunner

from edge.cli import main
from edge.core.standard import Resident
from edge.core.store import Store
from edge.faces import store as faces
from tests.conftest import api_url
from tests.edge.portal.helpers import FAST
from tests.peers.chromium import screenshot

CARD = re.compile(r'<div class="card" data-resident="([^"]+)">.*?<div class="code">([\d ]+)</div>')


def registry(config) -> None:
    store = Store(config.db_path, box_id=config.box.id)
    try:
        for rid, name, building, status in (
            ("r-301", "王阿姨", "3", "active"),
            ("r-302", "李四", "3", "active"),
            ("r-303", "赵六", "3", "moved_out"),
            ("r-501", "张三", "5", "active"),
        ):
            faces.add_resident(
                store,
                Resident(id=rid, name=name, building=building, unit="2单元", room=rid[2:],
                         status=status),
            )  # fmt: skip
    finally:
        store.close()


async def test_codes_sheet_prints_working_codes_for_one_building(
    make_config, run_box, tmp_path: Path
) -> None:
    config = make_config(extra=FAST)
    registry(config)
    cfg, out = str(tmp_path / "edge.toml"), tmp_path / "sheet.html"
    run = CliRunner()
    args = ["portal", "codes-sheet", "-c", cfg, "--building", "3", "--out", str(out)]
    res = run.invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "wrote 2 login card(s)" in res.output
    html = out.read_text(encoding="utf-8")
    cards = {rid: code.replace(" ", "") for rid, code in CARD.findall(html)}  # "1234 5678"
    assert set(cards) == {"r-301", "r-302"}  # active residents of building 3 only
    assert all(re.fullmatch(r"\d{8}", c) for c in cards.values())
    assert "王*姨" in html and "3号楼 2单元 301" in html and "@page { size: A4" in html

    # Printed as a page, the QR codes are the login links of those codes.
    png = screenshot(out.as_uri(), tmp_path, size=(900, 700), wait_ms=500)
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    ok, texts, _, _ = cv2.QRCodeDetectorAruco().detectAndDecodeMulti(img)
    assert ok and {t.rsplit("=", 1)[-1] for t in texts if t} == set(cards.values())

    # Unknown building: a clear error, nothing written.
    res = run.invoke(main, ["portal", "codes-sheet", "-c", cfg, "--building", "9", "--out",
                            str(tmp_path / "none.html")])  # fmt: skip
    assert res.exit_code != 0 and "building 9" in res.output
    con = sqlite3.connect(config.db_path)
    try:
        rows = con.execute("SELECT resident_id, channel FROM portal_codes").fetchall()
    finally:
        con.close()
    assert sorted(rows) == [("r-301", "print"), ("r-302", "print")]

    # Each code logs its resident in, once.
    box = await run_box(config)
    async with aiohttp.ClientSession() as s:
        for rid, code in cards.items():
            r = await s.post(f"{api_url(box)}/api/v1/portal/login", json={"code": code})
            assert r.status == 200 and (await r.json())["resident_id"] == rid
            r = await s.post(f"{api_url(box)}/api/v1/portal/login", json={"code": code})
            assert r.status == 401
