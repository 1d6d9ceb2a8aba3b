"""Poison records: a record the cloud refuses (400 naming it) is quarantined on the box, the
rest of its class goes on, the cloud's watermark does not stall, nothing is lost, and the
record is resent under its own seq after a cloud upgrade. A real box daemon against a real
cloud on loopback, on both backends."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from aiohttp import web

from cloudsync.app import build
from cloudsync.context import CLOUD
from edge.core.standard import AccessEvent
from edge.core.store import Store
from edge.installer.doctor import Doctor
from edge.sync import store as ob
from edge.sync.identity import identity_path, save
from tests.cloudsync.helpers import FAST_SYNC, qilu_edge, start_cloud, wait_for
from tests.conftest import STAFF_TOKEN, api_url

FAST = FAST_SYNC
OLD_LIMIT = 2000  # the "old" cloud takes payloads up to this many characters


async def test_poison_record_quarantined_class_goes_on_and_resent(
    db_url: str, tmp_path: Path, make_config, run_box
) -> None:
    postgres = db_url.startswith("postgresql")
    cloud = await start_cloud(db_url, tmp_path, max_record_chars=OLD_LIMIT)
    runner: web.AppRunner | None = None
    try:
        ident = await cloud.new_box()
        config = make_config(extra=FAST)
        save(identity_path(config), ident)

        def event(i: int, reason: str = "match") -> AccessEvent:
            return AccessEvent(
                id=f"ae-{i}", door_id="door-1", method="qr", decision="granted", reason=reason
            )

        # One class (access): good records around two poison ones, written before the daemon
        # starts. The big one is refused by this cloud's limit on both backends; the NUL one
        # only by PostgreSQL (jsonb cannot hold \u0000), SQLite stores it.
        store = Store(config.db_path, box_id=config.box.id)
        for i in range(5):
            store.record(event(i))
        store.record(event(5, "x" * (OLD_LIMIT + 500)))
        store.record(event(6, "nul\x00byte"))
        for i in range(7, 12):
            store.record(event(i))
        mine = {r.record_id: r.seq for r in ob.outbox_rows(store)}
        store.close()
        box = await run_box(config)
        assert len(mine) == 12

        async def stored() -> dict[str, int]:
            rows = await cloud.storage.box_records(ident.box_id)
            return {r["record_id"]: r["seq"] for r in rows if r["kind"] == "access_event"}

        refused = {"ae-5", "ae-6"} if postgres else {"ae-5"}

        # The class is not blocked: every other record reaches the cloud, fast.
        async def rest_arrived() -> bool:
            return set(await stored()) == set(mine) - refused

        await wait_for(rest_arrived, 15)
        assert await stored() == {k: v for k, v in mine.items() if k not in refused}

        # Nothing is lost: the refused records wait in the quarantine, visible in status.
        async with (
            aiohttp.ClientSession() as s,
            s.get(
                api_url(box) + "/api/v1/sync/status",
                headers={"Authorization": f"Bearer {STAFF_TOKEN}"},
            ) as r,
        ):
            st = await r.json()
        assert {q["record_id"] for q in st["quarantine"]} == refused
        big = next(q for q in st["quarantine"] if q["record_id"] == "ae-5")
        assert big["seq"] == mine["ae-5"] and "payload" in big["reason"]
        assert await box.store.run(ob.quarantine_count, box.store.sync) == len(refused)

        # ...and ops are told: a warning alert reaches the cloud like any record.
        async def alerted() -> bool:
            rows = await cloud.storage.box_records(ident.box_id)
            return any(r["kind"] == "alert" for r in rows)

        await wait_for(alerted, 10)
        out = await qilu_edge("sync", "status", "-c", str(config.source))
        assert "ae-5" in out and "qilu-edge sync resend" in out
        doc = await Doctor(config=config).check_quarantine()  # as `qilu-edge doctor` reads it
        assert doc.status == "warn" and f"{len(refused)} record(s)" in doc.detail.en, doc
        assert "sync resend" in doc.hint.en

        # The watermark is not stalled behind the quarantined seqs.
        async def watermark() -> bool:
            box_row = await cloud.storage.box_get(ident.box_id)
            return box_row["acked_seq"] >= max(mine.values())

        await wait_for(watermark, 10)

        # Cloud upgrade: the same database served without the small limit.
        port = cloud.port
        await cloud.stop()
        app = await build(db_url, tmp_path / "blobs", feed_poll_s=0.2)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        out = await qilu_edge("sync", "resend", "--all", "-c", str(config.source))
        assert f"{len(refused)} record(s) back in the outbox" in out

        async def everything_once() -> bool:
            rows = await app[CLOUD].storage.box_records(ident.box_id)
            got = [r for r in rows if r["kind"] == "access_event"]
            return {r["record_id"]: r["seq"] for r in got} == mine and len(got) == len(mine)

        if postgres:  # the NUL record is still refused: back in the quarantine

            async def back() -> bool:
                q = await box.store.run(ob.quarantine_list, box.store.sync)
                rows = await app[CLOUD].storage.box_records(ident.box_id)
                return [x["record_id"] for x in q] == ["ae-6"] and ("ae-5", mine["ae-5"]) in {
                    (r["record_id"], r["seq"]) for r in rows
                }  # the big one went in at its own seq

            await wait_for(back, 15)
            rows = await app[CLOUD].storage.box_records(ident.box_id)
            assert "ae-6" not in {r["record_id"] for r in rows}
        else:
            await wait_for(everything_once, 15)
            assert await box.store.run(ob.quarantine_count, box.store.sync) == 0
            assert (await Doctor(config=config, box=box).check_quarantine()).status == "pass"
        assert await box.store.outbox_stats() == {"rows": 0, "bytes": 0}
    finally:
        if runner is not None:
            await runner.cleanup()
        await cloud.stop()
