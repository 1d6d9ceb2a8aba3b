"""`qilu-edge doctor` against a box with one working and one dead door (real pymodbus peer)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from edge.core.store import Store
from tests.conftest import STAFF_TOKEN, api_url, box_toml, free_port, small_fs_at
from tests.edge.installer.modbus_peer import modbus_server

pytest.importorskip("drivers.doors.modbus", reason="modbus door driver (issue 4) not built")

# These boxes run offline ([sync] enabled = false): the cloud checks are in test_doctor_cloud.py.
DOORS = """
[sync]
enabled = false

[[doors]]
id = "door-ok"
type = "modbus"
host = "127.0.0.1"
port = {ok}
unit = 1
coil = 0
timeout_ms = 200

[[doors]]
id = "door-dead"
type = "modbus"
host = "127.0.0.1"
port = {dead}
unit = 1
coil = 0
timeout_ms = 200
"""


async def doctor_cli(
    config: Path, *args: str, lang: str | None = "en", env: dict[str, str] | None = None
) -> tuple[int, str]:
    """The doctor in English unless told otherwise (lang=None: its default, from ``env``)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from edge.cli import main; main()",
        "doctor", "-c", str(config), *args, *(["--lang", lang] if lang else []),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)  # logs go to stderr
    return proc.returncode, out.decode()


def write(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(box_toml(tmp_path, extra=extra))
    return path


async def test_one_working_one_dead_door(tmp_path: Path) -> None:
    async with modbus_server((1,)) as (port, _):
        path = write(tmp_path, DOORS.format(ok=port, dead=free_port()))
        code, out = await doctor_cli(path, "--json", "--click")
        assert code == 1, out
        report = json.loads(out)
        by_id = {c["id"]: c for c in report["checks"]}
        assert by_id["config"]["status"] == "pass"
        assert by_id["door:door-ok"]["status"] == "pass", by_id["door:door-ok"]
        assert "click test" in by_id["door:door-ok"]["detail"]
        assert by_id["door:door-dead"]["status"] == "fail"
        assert by_id["door:door-dead"]["hint"]
        assert by_id["broker"]["status"] == "skip"  # [mqtt] enabled = false in this config
        assert by_id["database"]["status"] == "warn"  # no database until the daemon runs
        assert report["ok"] is False
        assert report["counts"]["fail"] == 1, report["counts"]
        # The human table says the same, and the same exit code.
        code, out = await doctor_cli(path)
        assert code == 1
        assert "NOT READY" in out
        lines = {ln.split()[1]: ln.split()[0] for ln in out.splitlines() if ln[:4].isupper()}
        assert lines["door:door-ok"] == "PASS" and lines["door:door-dead"] == "FAIL"


async def test_all_working_exits_zero(tmp_path: Path) -> None:
    async with modbus_server((1,)) as (port, _):
        path = write(tmp_path, DOORS.format(ok=port, dead=port))
        t0 = time.monotonic()
        code, out = await doctor_cli(path, "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["ok"] and report["counts"]["fail"] == 0
    assert time.monotonic() - t0 < 30


async def test_bad_config_fails_with_the_key_named(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text('[box]\nid = "Bad Id!"\n')
    code, out = await doctor_cli(path, "--json")
    assert code == 1
    (check,) = json.loads(out)["checks"]
    assert check["id"] == "config" and check["status"] == "fail"
    assert "box.id" in check["detail"] and "check-config" in check["hint"]


async def test_a_read_only_data_disk_fails(tmp_path: Path) -> None:
    """An SD card the kernel remounted read-only after I/O errors (the usual way a worn card
    dies): the doctor passed "disk: N MB free" while the box could store nothing (no access
    event, report or outbox row), and called the database corrupt, to be restarted onto a
    fresh one."""
    data = small_fs_at(tmp_path / "data")
    path = write(tmp_path, "[sync]\nenabled = false\n[faces]\nenabled = false\n"
                           "[installer]\nwarn_free_disk_mb = 2\nfail_free_disk_mb = 1\n")
    Store(data / "qilu.db").close()
    await asyncio.to_thread(subprocess.run, ["mount", "-o", "remount,ro", str(data)], check=True)
    code, out = await doctor_cli(path, "--json")
    by_id = {c["id"]: c for c in json.loads(out)["checks"]}
    assert by_id["disk"]["status"] == "fail", by_id["disk"]
    assert "read-only" in by_id["disk"]["detail"] and "fsck" in by_id["disk"]["hint"]
    # SQLite cannot open a WAL database on it: not "corrupt, restart to start a fresh one".
    db = by_id["database"]
    assert db["status"] == "fail" and "read-only" in db["detail"], db
    assert db["detail_key"] != "database.corrupt" and db["hint_key"] == "disk.read_only_hint"
    assert code == 1


async def test_installer_page_runs_doctor_with_progress(make_config, run_box) -> None:
    async with modbus_server((1,)) as (port, _):
        box = await run_box(make_config(extra=DOORS.format(ok=port, dead=free_port())))
        base = api_url(box)
        headers = {"Authorization": f"Bearer {STAFF_TOKEN}"}
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{base}/installer/") as r:
                page = await r.text()
                assert r.status == 200 and "安装向导" in page and "Installer" in page
            async with s.post(f"{base}/api/v1/installer/doctor", json={}) as r:
                assert r.status == 401  # no token: no doctor
            async with s.post(f"{base}/api/v1/installer/doctor", json={}, headers=headers) as r:
                assert r.status == 202
                total = (await r.json())["total"]
            seen_partial = False
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                async with s.get(f"{base}/api/v1/installer/doctor", headers=headers) as r:
                    state = await r.json()
                if state["running"] and 0 < state["done"] < total:
                    seen_partial = True
                if not state["running"]:
                    break
                await asyncio.sleep(0.05)
    assert not state["running"] and state["done"] == total
    by_id = {c["id"]: c for c in state["results"]}
    # Inside the daemon the doors are the daemon's own running drivers.
    assert by_id["door:door-ok"]["status"] == "pass"
    assert by_id["door:door-dead"]["status"] == "fail"
    assert by_id["database"]["status"] == "pass"  # the live store
    assert state["ok"] is False
    assert seen_partial or total <= 2


def test_doctor_help_lists_every_check_and_an_example() -> None:
    import re

    from click.testing import CliRunner

    from edge.cli import main

    out = CliRunner().invoke(main, ["doctor", "--help"]).output
    src = (Path(__file__).resolve().parents[3] / "edge/installer/doctor.py").read_text()
    names = re.findall(r'Check\(\s*"([a-z_]+)"', src)  # the fixed checks, in order
    assert len(names) >= 9
    for name in [*names, "door:<id>", "camera:<id>", "screen:<id>"]:
        assert re.search(rf"^\s+{re.escape(name)}\s+\S", out, re.M), name
    assert "Example:" in out and "qilu-edge doctor -c" in out


async def test_face_doors_threshold_follows_the_gallery(tmp_path: Path) -> None:
    """The doctor shows the threshold a per-visit target gives for the enrolled residents and
    the resident acceptance to expect; a stricter door target gives a higher threshold."""
    import numpy as np

    from edge.core.standard import Resident
    from edge.core.store import Store
    from edge.faces import store as store_faces
    from edge.faces.config import FacesConfig
    from edge.features import load_config

    extra = "[sync]\nenabled = false\n[faces]\ntarget_fpir = 0.0001\n"
    path = write(tmp_path, extra)
    cfg = load_config(path)
    store = Store(cfg.db_path, box_id=cfg.box.id)
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(300, 128)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    with store.transaction():
        for i in range(150):
            store_faces.add_resident(store, Resident(id=f"r{i}", name="x"))
    store_faces.add_templates_bulk(store, [(f"t{i}", f"r{i // 2}", vecs[i]) for i in range(300)])
    store.close()
    _, out = await doctor_cli(path, "--json")
    check = {c["id"]: c for c in json.loads(out)["checks"]}["face_doors"]
    assert check["status"] in ("pass", "warn"), check
    assert check["detail"].startswith("150 residents (300 templates)"), check
    assert "1/10,000 strangers per visit -> threshold" in check["detail"]
    assert "residents let in" in check["detail"]
    # Ten times the residents needs a higher threshold for the same target.
    from edge.faces.openset import operating_point

    faces = cfg.section(FacesConfig)
    small = operating_point(faces, 150, 300)
    big = operating_point(faces, 1500, 3000)
    assert small and big and big.threshold > small.threshold
    assert f"{small.threshold:.3f}" in check["detail"]


async def test_face_templates_of_the_other_flip_setting_are_named(tmp_path: Path) -> None:
    """A box switched to [faces] flip = true still holds templates enrolled without flip (and
    one of another model file): the doctor warns with the counts, names the residents with no
    template of the current kind and says to enrol them again (no photos are kept to embed
    them again on the box); in Chinese too. With the setting that matches: pass."""
    import numpy as np

    from edge.core.standard import Resident
    from edge.core.store import Store
    from edge.faces import store as store_faces
    from edge.faces import weights
    from edge.features import load_config

    plain, flip = weights.embedding_label(False), weights.embedding_label(True)
    path = write(tmp_path, "[sync]\nenabled = false\n[faces]\nflip = true\n")
    cfg = load_config(path)
    store = Store(cfg.db_path, box_id=cfg.box.id)
    vecs = np.random.default_rng(0).normal(size=(8, 128)).astype(np.float32)
    with store.transaction():
        for r in ("r-a", "r-b", "r-c", "r-d"):
            store_faces.add_resident(store, Resident(id=r, name=r))
    # r-a plain only, r-b plain + enrolled again with flip, r-c flip only, r-d another model
    for i, (rid, label) in enumerate([("r-a", plain), ("r-a", plain), ("r-b", plain),
                                      ("r-b", flip), ("r-c", flip), ("r-d", "sface:0123")]):
        store_faces.add_template(store, rid, vecs[i], 0.9, label, "test")
    store.close()

    _, out = await doctor_cli(path, "--json")
    check = {c["id"]: c for c in json.loads(out)["checks"]}["face_templates"]
    assert check["status"] == "warn", check
    d = check["detail"]
    assert d.startswith(f"4 of 6 templates were not embedded as the box embeds faces now "
                        f"({flip}, [faces] flip = true): 3 {plain}, 1 sface:0123"), d
    assert d.endswith("2 residents have no template of the current kind: r-a, r-d"), d
    assert "the 3 templates of the other flip setting still match" in check["hint"]
    assert "enrol those residents again" in check["hint"]
    assert "keeps no enrolment photos" in check["hint"]
    assert "set [faces] flip = false again" in check["hint"]
    assert "1 templates were made by another model file" in check["hint"]
    assert "重新录入" in check["hint_zh"] and "r-a, r-d" in check["detail_zh"]

    # the plain setting: the flip templates and the other model's are the mismatch now
    path.write_text(path.read_text().replace("flip = true", "flip = false"))
    _, out = await doctor_cli(path, "--json")
    check = {c["id"]: c for c in json.loads(out)["checks"]}["face_templates"]
    assert check["status"] == "warn", check
    assert check["detail"].startswith("3 of 6 templates"), check
    assert check["detail"].endswith("2 residents have no template of the current kind: "
                                    "r-c, r-d"), check
    assert "set [faces] flip = true again" in check["hint"]

    # every template of the current kind: pass
    store = Store(cfg.db_path, box_id=cfg.box.id)
    with store.transaction():
        store.db.execute("UPDATE face_templates SET model = ?", [plain])
    store.close()
    _, out = await doctor_cli(path, "--json")
    check = {c["id"]: c for c in json.loads(out)["checks"]}["face_templates"]
    assert check["status"] == "pass", check
    assert check["detail"] == f"6 templates, all embedded as {plain}", check
