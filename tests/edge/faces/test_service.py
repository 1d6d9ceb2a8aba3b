"""The faces service in a real daemon: enrol over HTTP (multipart), identify, delete, feedback,
CLI enrolment picked up live, privacy, and start-up refusing a bad model file."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from edge.cli import main as cli
from edge.core.store import read_events
from edge.faces import weights
from tests.conftest import STAFF_TOKEN, api_url

H = {"Authorization": f"Bearer {STAFF_TOKEN}"}


def _form(*paths: Path) -> aiohttp.FormData:
    fd = aiohttp.FormData()
    for p in paths:
        fd.add_field("photo", p.read_bytes(), filename=p.name, content_type="image/jpeg")
    return fd


async def _until(cond, within_s: float = 5.0) -> None:
    """Bounded wait for the daemon's gallery to follow the store (it polls every second)."""
    deadline = time.monotonic() + within_s
    for _ in range(int(within_s / 0.05) + 1):
        if cond() or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.05)


async def _identify(s: aiohttp.ClientSession, url: str, photo: Path) -> dict:
    async with s.post(f"{url}/api/v1/faces/identify", data=_form(photo)) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def test_enrol_identify_delete_over_http(make_config, run_box, photos: Path) -> None:
    box = await run_box(make_config())
    url = api_url(box)
    async with aiohttp.ClientSession(headers=H) as s:
        r = await s.post(
            f"{url}/api/v1/residents", json={"id": "r-ardern", "name": "A", "room": "301"}
        )
        assert r.status == 201
        r = await s.post(f"{url}/api/v1/residents", json={"id": "r-ardern", "name": "A"})
        assert r.status == 409
        r = await s.post(f"{url}/api/v1/residents", json={"id": "bad id!", "name": "A"})
        assert r.status == 400 and (await r.json())["field"] == "id"
        # One good photo, one of two people, one blurred-beyond-use: each answered on its own.
        r = await s.post(
            f"{url}/api/v1/residents/r-ardern/photos",
            data=_form(photos / "person_b_1.jpg"),
        )
        body = await r.json()
        assert r.status == 200 and len(body["accepted"]) == 1, body
        r = await s.post(
            f"{url}/api/v1/residents/r-ardern/photos", data=aiohttp.FormData({"x": "1"})
        )
        assert r.status == 400 and (await r.json())["field"] == "photo"
        fd = aiohttp.FormData()
        fd.add_field("photo", b"not a jpeg", filename="junk.jpg")
        r = await s.post(f"{url}/api/v1/residents/r-ardern/photos", data=fd)
        body = await r.json()
        assert r.status == 422 and body["rejected"][0]["reason"] == "not_an_image"

        d = await _identify(s, url, photos / "person_b_2.jpg")
        assert d["matched"] and d["resident_id"] == "r-ardern" and d["reason"] == "match"
        d = await _identify(s, url, photos / "impostor_2.jpg")
        assert not d["matched"] and d["reason"] == "unknown_face"

        r = await s.get(f"{url}/api/v1/residents")
        assert [(x["id"], x["templates"]) for x in await r.json()] == [("r-ardern", 1)]
        r = await s.get(f"{url}/api/v1/status")
        st = (await r.json())["services"]["faces"]
        assert st["templates"] == 1 and st["embedding_mismatch"] is None  # all one kind

        r = await s.delete(f"{url}/api/v1/residents/r-ardern")
        assert r.status == 200 and (await r.json())["templates"] == 1
        d = await _identify(s, url, photos / "person_b_2.jpg")
        assert d["resident_id"] is None and d["reason"] == "empty_gallery"
        assert len(box.service("faces").pipeline.gallery) == 0
        r = await s.delete(f"{url}/api/v1/residents/r-ardern")
        assert r.status == 404

    # Privacy: nothing face-related went to the outbox or the event stream.
    assert (await box.store.outbox_stats())["rows"] == 0
    events = read_events(box.config.db_path, 0, 1000)
    assert all("embedding" not in str(e.payload) for e in events)


async def test_wrong_match_report_raises_the_bar(make_config, run_box, photos: Path) -> None:
    box = await run_box(make_config())
    url = api_url(box)
    async with aiohttp.ClientSession(headers=H) as s:
        await s.post(f"{url}/api/v1/residents", json={"id": "r-obama", "name": "O"})
        r = await s.post(f"{url}/api/v1/residents/r-obama/photos", data=_form(photos / "obama.jpg"))
        assert r.status == 200
        d = await _identify(s, url, photos / "obama2.jpg")
        assert d["resident_id"] == "r-obama"
        r = await s.post(f"{url}/api/v1/faces/wrong-match", json={"decision_id": d["id"]})
        body = await r.json()
        assert r.status == 200 and body["negatives"] == 1
        assert body["effective_threshold"] > box.config.faces.threshold
        d2 = await _identify(s, url, photos / "obama2.jpg")
        assert d2["resident_id"] is None and d2["reason"] == "negative_example"
        r = await s.post(f"{url}/api/v1/faces/wrong-match", json={"decision_id": "fd-nope"})
        assert r.status == 404
        r = await s.post(f"{url}/api/v1/faces/wrong-match", json={})
        assert r.status == 400


async def test_cli_enrolment_reaches_the_running_daemon(make_config, run_box, photos: Path) -> None:
    config = make_config()
    box = await run_box(config)
    url = api_url(box)
    runner = CliRunner()
    cfg = str(config.source)

    def cli_run(*args: str) -> str:
        res = runner.invoke(cli, [*args, "-c", cfg], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        return res.output

    await asyncio.to_thread(
        cli_run, "resident", "add", "r-macron", "--name", "M", "--door", "door-1"
    )
    out = await asyncio.to_thread(
        cli_run, "resident", "enroll", "r-macron", str(photos / "person_a_2.jpg")
    )
    assert "enrolled" in out
    res = await asyncio.to_thread(
        runner.invoke,
        cli,
        [
            "resident",
            "enroll",
            "r-macron",
            str(photos / "person_b_1.jpg"),
            str(photos / "obama.jpg"),
            "-c",
            cfg,
        ],
    )
    assert "enrolled" in res.output  # a second person in one call is allowed, but...
    out = await asyncio.to_thread(cli_run, "resident", "list")
    assert "r-macron" in out and "templates=3" in out
    gallery = box.service("faces").pipeline.gallery
    await _until(lambda: len(gallery) == 3)
    assert len(gallery) == 3
    async with aiohttp.ClientSession(headers=H) as s:
        d = await _identify(s, url, photos / "person_a_1.jpg")
    assert d["resident_id"] == "r-macron", d
    await asyncio.to_thread(cli_run, "resident", "delete", "r-macron")
    await _until(lambda: len(gallery) == 0)
    assert len(gallery) == 0


def test_cli_enroll_rejects_with_reason(make_config, photos: Path, tmp_path: Path) -> None:
    import cv2

    config = make_config()
    runner = CliRunner()
    cfg = str(config.source)
    assert runner.invoke(cli, ["resident", "add", "r-x", "--name", "X", "-c", cfg]).exit_code == 0
    blurred = tmp_path / "blurred.jpg"
    cv2.imwrite(
        str(blurred), cv2.GaussianBlur(cv2.imread(str(photos / "person_b_2.jpg")), (0, 0), 9)
    )
    res = runner.invoke(cli, ["resident", "enroll", "r-x", str(blurred), "-c", cfg])
    assert res.exit_code == 1
    assert "REJECTED" in res.output and "quality:blurry" in res.output
    res = runner.invoke(cli, ["resident", "enroll", "r-nobody", str(blurred), "-c", cfg])
    assert res.exit_code == 1 and "no resident r-nobody" in res.output


@pytest.mark.parametrize("damage", ["corrupt", "missing", "swapped"])
async def test_bad_model_file_stops_start_up(
    make_config, run_box, tmp_path: Path, damage: str
) -> None:
    mdir = tmp_path / "models"
    mdir.mkdir()
    src = weights.default_model_dir()
    for f in (
        "face_detection_yunet_2023mar_int8bq.onnx",
        "face_recognition_sface_2021dec_int8bq.onnx",
    ):
        shutil.copy(src / f, mdir / f)
    sface = mdir / "face_recognition_sface_2021dec_int8bq.onnx"
    if damage == "corrupt":
        data = bytearray(sface.read_bytes())
        data[5000:5010] = b"\x00" * 10
        sface.write_bytes(bytes(data))
    elif damage == "missing":
        sface.unlink()
    else:  # another (valid) model file under the expected name
        shutil.copy(mdir / "face_detection_yunet_2023mar_int8bq.onnx", sface)
    config = make_config(extra=f'\n[faces]\nmodel_dir = "{mdir}"\n')
    with pytest.raises(Exception) as exc:
        await run_box(config)
    msg = str(exc.value)
    assert "face recognition cannot start" in msg and "model sface" in msg
    assert "models fetch" in msg
    assert ("missing" in msg) if damage == "missing" else ("sha256" in msg)


def test_models_verify_cli_and_refused_download(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["models", "verify", "--dir", str(tmp_path)])
    assert res.exit_code == 1 and "missing" in res.output
    with pytest.raises(weights.ModelError, match="refused"):
        weights.install_bytes(b"evil", tmp_path / "x.onnx", "0" * 64, "model x")
    assert not (tmp_path / "x.onnx").exists()


async def test_disabled_faces_service(make_config, run_box) -> None:
    box = await run_box(make_config(extra="\n[faces]\nenabled = false\n"))
    assert box.service("faces").pipeline is None
    async with aiohttp.ClientSession(headers=H) as s:
        r = await s.post(f"{api_url(box)}/api/v1/faces/identify", data=aiohttp.FormData({"a": "b"}))
        assert r.status == 503


async def test_gallery_enrolled_without_flip_still_matches_and_is_reported(
        make_config, run_box, photos: Path) -> None:
    """A box whose residents were enrolled before flip test-time augmentation (no photos kept
    to embed them again): the old templates keep matching flip door frames, the status names
    them by embedding label, and enrolling again adds a flip template."""
    runner = CliRunner()
    plain = make_config(extra="[faces]\nflip = false\n")
    for args in (("resident", "add", "r-macron", "--name", "M"),
                 ("resident", "enroll", "r-macron", str(photos / "person_a_2.jpg"))):
        res = await asyncio.to_thread(runner.invoke, cli, [*args, "-c", str(plain.source)],
                                      catch_exceptions=False)
        assert res.exit_code == 0, res.output
    config = make_config(extra="[faces]\nflip = true\n")  # the same data directory, flip on
    assert config.faces.flip and not plain.faces.flip
    box = await run_box(config)
    url = api_url(box)
    old, new = weights.embedding_label(False), weights.embedding_label(True)
    assert old.startswith("sface:") and new.startswith("sface+flip:")
    async with aiohttp.ClientSession(headers=H) as s:
        st = (await (await s.get(f"{url}/api/v1/status")).json())["services"]["faces"]
        assert st["flip"] is True and st["templates_by_model"] == {old: 1}
        # the status says how many, who, and what to do (no photos kept: enrol again)
        m = st["embedding_mismatch"]
        assert m["setting"] == new and m["templates"] == 1 and m["other_templates"] == 1
        assert m["other_flip_setting"] == 1 and m["other_model"] == 0
        assert m["residents_without_current"] == 1
        assert m["residents_to_enrol_again"] == ["r-macron"]
        assert "of the other flip setting still match" in m["warning"]
        assert "1 residents have no template of the current kind: r-macron" in m["warning"]
        assert "keeps no enrolment photos" in m["warning"] and "重新录入" in m["warning_zh"]
        d = await _identify(s, url, photos / "person_a_1.jpg")
        assert d["resident_id"] == "r-macron" and d["reason"] == "match", d
        d = await _identify(s, url, photos / "person_b_2.jpg")
        assert d["resident_id"] is None and d["reason"] == "unknown_face", d
        r = await s.post(f"{url}/api/v1/residents/r-macron/photos",
                         data=_form(photos / "person_a_2.jpg"))
        assert r.status == 200
        st = (await (await s.get(f"{url}/api/v1/status")).json())["services"]["faces"]
        assert st["templates_by_model"] == {old: 1, new: 1}
        m = st["embedding_mismatch"]  # the old template is still there, nobody left to enrol
        assert m["other_templates"] == 1 and m["residents_without_current"] == 0
        assert m["residents_to_enrol_again"] == []
        assert "every resident also has a template of the current kind" in m["warning"]
    # the two rows of the same photo really are two embeddings (plain, flip), both unit
    rows = box.service("faces").pipeline.gallery.templates_of("r-macron")
    assert rows.shape == (2, 128)
    assert float(rows[0] @ rows[1]) < 0.999
