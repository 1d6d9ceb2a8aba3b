"""Central retraining end to end: a staff correction on box A syncs to a real cloud (SQLite),
the cloud's ``qilu-cloudsync text-model`` retrains a versioned artefact from every box's
corrections + the shipped corpus and ships it over the feed; box B downloads it, checks its
hash, scores it on its test split and adopts it. A worse artefact published the same way is
refused by box B, which keeps the model it had."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from common.textmodel import TRAIN_DIR, Row, TextModel, read_rows, shipped, shipped_rows, train
from edge.features import Config, parse_config
from edge.reports.retrain import MODEL_META
from edge.sync import store as ob
from tests.cloudsync.helpers import (
    FAST_SYNC,
    VENV_BIN,
    Cloud,
    cli_provision,
    start_cloud,
    wait_for,
)
from tests.conftest import STAFF_TOKEN, api_url, box_toml

pytestmark = pytest.mark.timeout(1200)
STAFF = {"Authorization": f"Bearer {STAFF_TOKEN}"}


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[Cloud]:
    c = await start_cloud(str(tmp_path / "cloud.db"), tmp_path)
    yield c
    await c.stop()


def config_in(folder: Path) -> Config:
    folder.mkdir(parents=True, exist_ok=True)
    text = box_toml(folder, extra=FAST_SYNC)
    (folder / "edge.toml").write_text(text)
    return parse_config(text, source=folder / "edge.toml")


async def feed_done(box, action: str) -> dict | None:
    log = await box.store.run(ob.feed_log, box.store.sync)
    done = [x for x in log if x.get("action") == action]
    return done[0] if done else None


async def test_correction_on_a_retrained_in_the_cloud_adopted_by_b_worse_refused(
    cloud: Cloud, run_box, tmp_path: Path
) -> None:
    await cloud.community()
    cfg_a, cfg_b = config_in(tmp_path / "a"), config_in(tmp_path / "b")
    for cfg in (cfg_a, cfg_b):
        await cli_provision(cfg.source, cloud.url, await cloud.claim())
    box_a, box_b = await run_box(cfg_a), await run_box(cfg_b)
    id_b = json.loads((cfg_b.box.data_dir / "cloud-identity.json").read_text())["box_id"]
    # Box B still runs an old, weak model (trained on a handful of messages): the cloud's
    # retrained one must beat it on B's test split, whatever the shipped model scores.
    few = [*shipped_rows()[::150], Row("w1", "t", "着火了快来人", "safety_hazard", "negative",
                                       "immediate")]
    weak = cfg_b.box.data_dir / "text-models" / "old-weak.npz"
    train(few, meta={"version": "old-weak"}).save(weak)
    box_b.store.sync.set_meta(MODEL_META, str(weak))
    box_b.service("reports").analyzer.set_model(TextModel.load(weak))

    # 1. Staff on box A correct a report; the correction reaches the cloud as a record.
    text = "七号楼门口那个井盖子翻了个底朝天 黑咕隆咚的"
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{api_url(box_a)}/api/v1/reports", json={"text": text}) as r:
            assert r.status == 201
            rep = await r.json()
        fix = {"category": "safety_hazard", "urgency": "high", "polarity": "negative"}
        async with s.post(f"{api_url(box_a)}/api/v1/reports/{rep['id']}/correction",
                          json=fix, headers=STAFF) as r:
            assert r.status in (200, 201), await r.text()

    from cloudsync import textmodels

    async def synced() -> list:
        return await textmodels.corrections(cloud.storage)

    got = await wait_for(synced, 20)
    assert got[0]["text"] == text and got[0]["category"] == "safety_hazard"
    assert got[0]["urgency"] == "high"

    # 2. The cloud retrains (the real CLI against the running cloud's database and blobs)
    #    and queues the new version to box B over the feed. On a tenth of the shipped corpus
    #    (--corpus): the whole one takes ~2 min to train, and this test is about the path.
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    parts = sorted(shipped(TRAIN_DIR).glob("*.csv"))[::10]
    for p in parts:
        (corpus / p.name).write_bytes(p.read_bytes())
    corpus_rows = sum(len(read_rows(p)) for p in parts)
    proc = await asyncio.create_subprocess_exec(
        str(VENV_BIN / "qilu-cloudsync"), "text-model", "--db", cloud.db,
        "--blobs", str(cloud.blobs), "--ship-box", id_b, "--corpus", str(corpus),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 900)
    assert proc.returncode == 0, err.decode()[-2000:]
    built = json.loads(out.decode().strip().splitlines()[-1])
    assert built["corrections"] == 1 and built["shipped_to"] == [id_b]
    blob = (cloud.blobs / built["sha256"][:2] / built["sha256"]).read_bytes()
    assert hashlib.sha256(blob).hexdigest() == built["sha256"]
    status, lib = await cloud.call("GET", "/api/v1/ops/content")
    assert status == 200
    assert [c["title"] for c in lib["items"] if c["mime"] == textmodels.MIME] == [
        f"text model {built['version']}"
    ]

    # 3. Box B downloads, checks and adopts it: its analyser now runs the new version.
    async def adopted() -> dict | None:
        return await feed_done(box_b, "text_model")

    done = await wait_for(adopted, 120, 0.5)
    assert done["ok"] == 1, done["detail"]
    saved = Path(box_b.store.sync.get_meta(MODEL_META))
    assert await asyncio.to_thread(saved.read_bytes) == blob
    model = box_b.service("reports").analyzer.model()
    assert model.meta["version"] == built["version"] and model.meta["corrections"] == 1
    assert model.meta["rows"] == corpus_rows + 1
    assert box_a.store.sync.get_meta(MODEL_META) is None  # not shipped to A
    assert saved != weak

    # 4. The old weak artefact, uploaded and published the ordinary way, is now worse than
    #    B's model: refused, B keeps (rolls back to) the adopted model, the file is gone.
    raw = weak.read_bytes()
    async with aiohttp.ClientSession() as s, s.post(
        f"{cloud.url}/api/v1/ops/content", data=raw,
        headers=cloud.headers() | {"Content-Type": textmodels.MIME},
    ) as r:  # fmt: skip
        assert r.status == 201
        weak_sha = (await r.json())["sha256"]
    status, body = await cloud.call("POST", "/api/v1/ops/publish", json={
        "action": "text_model", "targets": {"boxes": [id_b]}, "args": {"sha256": weak_sha}})
    assert status == 201, body
    # Not a text model in the library: refused by the cloud, naming the field.
    status, body = await cloud.call("POST", "/api/v1/ops/publish", json={
        "action": "text_model", "targets": {"boxes": [id_b]}, "args": {"sha256": "0" * 64}})
    assert status == 400 and "args.sha256" in json.dumps(body)

    async def refused() -> bool:
        log = await box_b.store.run(ob.feed_log, box_b.store.sync)
        return len([x for x in log if x.get("action") == "text_model"]) >= 2

    await wait_for(refused, 120, 0.5)
    log = await box_b.store.run(ob.feed_log, box_b.store.sync)
    last = next(x for x in log if x.get("action") == "text_model")
    assert last["ok"] == 0 and "worse than the current one" in last["detail"]
    assert Path(box_b.store.sync.get_meta(MODEL_META)) == saved  # kept (rolled back)
    assert box_b.service("reports").analyzer.model().meta["version"] == built["version"]
    assert not list(saved.parent.glob(f"shipped-{weak_sha[:16]}*"))
    assert TextModel.load(saved).meta["version"] == built["version"]
