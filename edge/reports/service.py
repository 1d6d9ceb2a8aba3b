"""The ``reports`` service: residents' reports API, analysis in a worker thread, taxonomy."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from common.textmodel import TextModel
from edge.core.box import Box
from edge.core.commands import CommandError
from edge.core.http import PUBLIC_PREFIXES, ROLE, json_error, query_int, require_staff, same_secret
from edge.core.service import Service
from edge.core.standard import Command, Report, new_id, now
from edge.reports import store as db
from edge.reports import warning
from edge.reports.analyze import Analysis, Analyzer
from edge.reports.gate import Gate, reporter
from edge.reports.inputs import (
    InputError,
    delete_photos,
    read_submission,
    save_photos,
    sweep_orphans,
    text_field,
)
from edge.reports.place import find_place
from edge.reports.retrain import MODEL_META, ModelRefused, install_bytes, install_shipped
from edge.reports.taxonomy import Taxonomy, TaxonomyError, load_taxonomy, parse_taxonomy
from edge.sync import SYNC

log = logging.getLogger(__name__)
TAXONOMY_META = "reports.taxonomy"
MAX_MODEL_BYTES = 64 * 1024 * 1024  # a text model artefact is ~3 MB
FIELDS = ("category", "polarity", "urgency")
POLARITIES = ("negative", "neutral", "positive")
URGENCIES = ("immediate", "high", "normal", "low")
# Reports of these categories become repair tickets as well.
TICKET_CATEGORIES = ("facilities_repair", "safety_hazard")
REPORT_STATUSES = ("received", "in_progress", "answered", "closed")


class TicketDesk(Protocol):
    """What reports need from the repair tickets capability (edge/tickets/, which sets
    ``ReportsService.tickets`` to itself): reports depend on no ticket code."""

    def build_for_report(self, **fields: Any) -> tuple[Any, dict[str, Any]]: ...

    def insert_in_tx(self, store: Any, rec: Any, extra: dict[str, Any], actor: str) -> None: ...

    def of_report(self, store: Any, report_id: str) -> list[dict[str, Any]]: ...


class ReportsService(Service):
    name = "reports"
    tickets: TicketDesk | None = None  # set by the tickets service, if the box has it

    def __init__(self, box: Box) -> None:
        super().__init__(box)
        self.cfg = box.config.reports
        self.analyzer = Analyzer(load_taxonomy(self.cfg.taxonomy))
        self.received = 0
        self.gate = Gate(self.cfg)  # anonymous posts through the relay (tickets use it too)
        self._warm: asyncio.Task | None = None
        app = box.http
        for prefix in ("/api/v1/reports", "/api/v1/taxonomy"):
            app[PUBLIC_PREFIXES].add(prefix)  # residents submit; staff checks inside
        app.router.add_post("/api/v1/reports", self.http_submit)
        app.router.add_post("/api/v1/reports/classify", self.http_classify)
        app.router.add_get("/api/v1/reports/challenge", self.http_challenge)
        app.router.add_get("/api/v1/reports", self.http_list)
        app.router.add_get("/api/v1/reports/{id}", self.http_get)
        app.router.add_post("/api/v1/reports/{id}/status", self.http_status)
        app.router.add_post("/api/v1/reports/{id}/correction", self.http_correction)
        app.router.add_get("/api/v1/taxonomy", self.http_taxonomy)
        app.router.add_get("/api/v1/alerts", self.http_alerts)
        app.router.add_get("/api/v1/photos/{id}", self.http_photo)
        box.commands.register("box", "taxonomy", self.cmd_taxonomy)
        box.commands.register("box", "report_correction", self.cmd_correction)
        box.commands.register("box", "text_model", self.cmd_text_model)

    @property
    def taxonomy(self) -> Taxonomy:
        return self.analyzer.taxonomy

    async def start(self) -> None:
        await self._sweep_photos()
        saved = await self.box.store.get_meta(TAXONOMY_META)
        if saved:
            try:
                tax = parse_taxonomy(json.loads(saved))
                if tax.version >= self.taxonomy.version:
                    self.analyzer.set_taxonomy(tax)
            except (TaxonomyError, ValueError) as e:
                log.error("ignoring the stored taxonomy from the cloud: %s", e)
        active = await self.box.store.get_meta(MODEL_META)
        if active:
            try:
                self.analyzer.set_model(await asyncio.to_thread(TextModel.load, Path(active)))
            except (OSError, ValueError, KeyError) as e:
                log.error("text model %s unusable, keeping the shipped one: %s", active, e)
        # The text model (~0.1 s, ~45 MB): loaded now, off the event loop, only when asked
        # to; otherwise the first report loads it.
        if self.cfg.warm_at_start:
            self._warm = asyncio.create_task(asyncio.to_thread(self.analyzer.warm))

    async def _sweep_photos(self) -> None:
        known = await self.box.store.run(db.photo_paths, self.box.store.sync)
        gone = await asyncio.to_thread(
            sweep_orphans, self.box.config.box.data_dir, self.cfg.photo_dir, known
        )
        if gone:
            log.warning("deleted %d photo file(s) without a row (left by a crash)", len(gone))

    async def stop(self) -> None:
        if self._warm and not self._warm.done():
            await asyncio.wait({self._warm}, timeout=3)

    def status(self) -> dict[str, Any]:
        return {"received": self.received, "taxonomy_version": self.taxonomy.version}

    # --- staff corrections (training data) ---------------------------------------------

    async def http_correction(self, request: web.Request) -> web.Response:
        actor = require_staff(request)
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return json_error(400, "(body): not valid JSON", field="(body)")
        if not isinstance(body, dict):
            return json_error(400, "(body): must be a JSON object", field="(body)")
        try:
            corr = await self.apply_correction(
                {**body, "report_id": request.match_info["id"]}, actor)
        except CommandError as e:
            field = str(e).split(":")[0]
            return json_error(404 if "no report" in str(e) else 400, str(e), field=field)
        return web.json_response(corr, status=201)

    async def apply_correction(self, args: dict[str, Any], actor: str) -> dict[str, Any]:
        """Store staff's corrected labels of a report (box API or the cloud's feed)."""
        rid = args.get("report_id")
        changes = {k: args[k] for k in FIELDS if args.get(k) is not None}
        if not changes:
            raise CommandError("category: give at least one of category, polarity, urgency")
        allowed = {"category": self.taxonomy.codes, "polarity": POLARITIES,
                   "urgency": URGENCIES}
        for k, v in changes.items():
            if v not in allowed[k]:
                raise CommandError(f"{k}: {v!r} is not one of {', '.join(allowed[k])}")
        note = args.get("note") or ""
        if not isinstance(note, str) or len(note) > 500:
            raise CommandError("note: a string of at most 500 characters")
        corr = await self.box.store.run(
            db.correct_report, self.box.store.sync, str(rid), changes, str(actor)[:64], note,
            db.iso(now()),
        )
        if corr is None:
            raise CommandError(f"report_id: no report {rid}")
        log.info("%s corrected report %s: %s", actor, rid, changes)
        return corr.model_dump(mode="json")

    async def cmd_text_model(self, target_id: str, cmd: Command) -> str:
        """Ops ship a model artefact (built from the corpus + corrections, in the cloud by
        cloudsync/textmodels.py): inline ``{model_b64, sha256}`` or ``{sha256, url,
        size_bytes}`` downloaded from the cloud's blob store. It is checked by hash, scored on
        the test split and adopted, or refused and the current model kept."""
        store, data_dir = self.box.store, self.box.config.box.data_dir
        try:
            if "model_b64" in cmd.args:
                res = await store.run(install_shipped, store.sync, data_dir, cmd.args)
            else:
                sha, raw = await self._download_model(cmd.args)
                res = await store.run(install_bytes, store.sync, data_dir, raw, sha)
        except ModelRefused as e:
            raise CommandError(str(e)) from e
        self.analyzer.set_model(await asyncio.to_thread(TextModel.load, Path(res["path"])))
        return f"text model {res['version']} adopted"

    async def _download_model(self, args: dict[str, Any]) -> tuple[str, bytes]:
        """GET the artefact from the cloud that sent the command (the sync service signs the
        request, as for screen content); at most MAX_MODEL_BYTES."""
        sha, size = args.get("sha256"), args.get("size_bytes")
        if not isinstance(sha, str) or len(sha) != 64:
            raise ModelRefused("sha256: the artefact's SHA-256 (64 hex digits) is required")
        if not isinstance(size, int) or not 0 < size <= MAX_MODEL_BYTES:
            raise ModelRefused(f"size_bytes: 1…{MAX_MODEL_BYTES} required")
        url = args.get("url") or f"/api/v1/blobs/{sha}"
        try:
            sync = self.box.get(SYNC)
        except KeyError:
            raise ModelRefused("url: this box has no cloud to download from") from None
        cloud = sync.cloud_url
        if not isinstance(url, str) or not url.startswith("/") or not cloud:
            raise ModelRefused("url: a path on the box's own cloud is required")
        full = str(cloud).rstrip("/") + url
        timeout = aiohttp.ClientTimeout(total=300, sock_connect=10)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as s, \
                    s.get(full, headers=sync.auth_headers("GET", full)) as r:
                if r.status != 200:
                    raise ModelRefused(f"url: GET {url}: HTTP {r.status}")
                raw = bytearray()
                async for chunk in r.content.iter_chunked(1 << 16):
                    raw += chunk
                    if len(raw) > size:
                        break  # more than announced: refused below, not read to the end
        except (aiohttp.ClientError, TimeoutError) as e:
            raise ModelRefused(f"url: GET {url}: {e}") from e
        if len(raw) != size:
            raise ModelRefused(f"size_bytes: got {len(raw)} bytes, announced {size}")
        return sha, bytes(raw)

    async def cmd_correction(self, target_id: str, cmd: Command) -> str:
        """Ops corrected a report in the cloud (POST /api/v1/ops/reports/{id}/correction)."""
        corr = await self.apply_correction(cmd.args, str(cmd.args.get("actor") or "ops"))
        return f"report {corr['report_id']} corrected ({corr['id']})"

    async def analyze(self, text: str) -> Analysis:
        return await asyncio.to_thread(self.analyzer.analyze, text)

    # --- submit ----------------------------------------------------------------------

    async def http_submit(self, request: web.Request) -> web.Response:
        cfg = self.cfg
        try:
            sub = await read_submission(
                request, max_photos=cfg.max_photos, max_photo_bytes=int(cfg.max_photo_mb * 1048576)
            )
            f = sub.fields
            text = text_field(f, "text", required=True, max_chars=cfg.max_text_chars) or ""
            category = text_field(f, "category", max_chars=40)
            if category is not None and category not in self.taxonomy.codes:
                known = ", ".join(self.taxonomy.codes)
                raise InputError("category", f"unknown code (known: {known})")
            system = text_field(f, "source_system", max_chars=40)
            tag = text_field(f, "source_tag", max_chars=60)
            if tag is not None and category is None:
                if system is None:
                    raise InputError("source_system", "required with source_tag")
                category = self.taxonomy.map_tag(system, tag)
                if category is None:
                    raise InputError("source_tag", f"{system} tag {tag!r} has no mapping")
            building = text_field(f, "building", max_chars=32)
            location = text_field(f, "location", max_chars=100)
            resident_id = await reporter(
                self.box, request, text_field(f, "resident_id", max_chars=64), self.gate
            )
            source = text_field(f, "source", max_chars=32) or "resident_page"
        except InputError as e:
            return json_error(e.status, str(e), field=e.field)
        analysis = await self.analyze(text)
        result = await self.submit(
            text=text, analysis=analysis, category=category, building=building,
            location=location, resident_id=resident_id, source=source,
            source_tag=f"{system}:{tag}" if tag else None, photos=sub.photos,
        )
        return web.json_response(result, status=201)

    async def submit(
        self, *, text: str, analysis: Analysis, category: str | None = None,
        building: str | None = None, location: str | None = None,
        resident_id: str | None = None, source: str = "resident_page",
        source_tag: str | None = None, photos: list | None = None,
    ) -> dict[str, Any]:
        category = category or analysis.category
        rec = Report(
            id=new_id("rp"), ts=now(), text=text, category=category,
            sentiment=analysis.sentiment, urgency=analysis.urgency, building=building,
            location=location, resident_id=resident_id, photos=len(photos or []), source=source,
            source_tag=source_tag, possible_emergency=analysis.possible_emergency,
        )
        follow_key = secrets.token_urlsafe(12)
        extra = {
            "polarity": analysis.polarity,
            "text_norm": warning.normalise(text),
            "follow_key": follow_key,
            "analysis": {
                "suggested": analysis.category,
                "scores": analysis.category_scores,
                "urgency_reasons": analysis.urgency_reasons,
                "emergency_probability": analysis.emergency_probability,
                "emergency_types": analysis.emergency_types,
            },
        }
        ticket = None
        if category in TICKET_CATEGORIES and rec.urgency != "low" and self.tickets is not None:
            ticket = self.tickets.build_for_report(
                title=text[:60], description=text, category=category,
                urgency=rec.urgency, building=building, location=location, report_id=rec.id,
                follow_key=follow_key, resident_id=resident_id,
            )
        data_dir = self.box.config.box.data_dir
        photo_rows = []
        if photos:
            photo_rows = await asyncio.to_thread(
                save_photos, data_dir, self.cfg.photo_dir, photos, "report", rec.id, "submitted"
            )
        try:
            rec, alerts, opened = await self.box.store.run(
                warning.submit, self.box.store.sync, rec, extra, photo_rows, self.cfg,
                self.taxonomy.get(category).zh, ticket,
                self.tickets.insert_in_tx if self.tickets is not None else None,
            )
        except Exception:
            await asyncio.to_thread(delete_photos, data_dir, photo_rows)
            raise
        self.received += 1
        refs = await self.box.store.run(
            db.refs, self.box.store.sync, rec.id, opened.id if opened else None
        )
        return rec.model_dump(mode="json") | refs | {
            "follow_key": follow_key,
            "polarity": analysis.polarity,
            "category_zh": self.taxonomy.get(category).zh,
            "suggested_category": analysis.category,
            "alerts": [a.model_dump(mode="json") for a in alerts],
            "ticket_id": opened.id if opened else None,
        }

    async def http_challenge(self, request: web.Request) -> web.Response:
        return web.json_response(self.gate.challenge(), headers={"Cache-Control": "no-store"})

    async def http_classify(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            text = text_field(body if isinstance(body, dict) else {}, "text", required=True,
                              max_chars=self.cfg.max_text_chars) or ""
        except InputError as e:
            return json_error(e.status, str(e), field=e.field)
        except json.JSONDecodeError:
            return json_error(400, "(body): not valid JSON", field="(body)")
        a = await self.analyze(text)
        return web.json_response(
            a.as_dict()
            | {"category_zh": self.taxonomy.get(a.category).zh, "place": find_place(text)}
        )

    # --- read ------------------------------------------------------------------------

    async def http_list(self, request: web.Request) -> web.Response:
        require_staff(request)
        q = request.query
        rows = await self.box.store.run(
            db.list_reports, self.box.store.sync, limit=query_int(request, "limit", 50),
            category=q.get("category"), building=q.get("building"),
        )
        return web.json_response(rows)

    async def http_get(self, request: web.Request) -> web.Response:
        rid = request.match_info["id"]
        store = self.box.store
        row = await store.run(db.get_report, store.sync, rid)
        if row is None:
            return json_error(404, f"no report {rid}", field="id")
        staff = request[ROLE] in ("staff", "admin")
        key = request.query.get("key", "")
        if not staff and not same_secret(key, row["follow_key"]):
            return json_error(403, "key: wrong or missing follow key", field="key")
        row.pop("follow_key")
        row.pop("text_norm")
        row["category_zh"] = self.taxonomy.get(row["category"]).zh
        row["tickets"] = (
            await store.run(self.tickets.of_report, store.sync, rid) if self.tickets else []
        )
        return web.json_response(row)

    async def http_status(self, request: web.Request) -> web.Response:
        actor = require_staff(request)
        body = await request.json()
        if not isinstance(body, dict):
            return json_error(400, "(body): must be a JSON object", field="(body)")
        try:
            msg = await self.apply_status({**body, "report_id": request.match_info["id"]})
        except CommandError as e:
            field = str(e).split(":")[0]
            return json_error(404 if "no report" in str(e) else 400, str(e), field=field)
        log.info("%s: %s", actor, msg)
        return web.json_response({"ok": True, "detail": msg})

    async def apply_status(self, args: dict[str, Any]) -> str:
        rid, status = args.get("report_id"), args.get("status")
        if status not in REPORT_STATUSES:
            raise CommandError(f"status: one of {', '.join(REPORT_STATUSES)}")
        reply = args.get("reply")
        if reply is not None and (not isinstance(reply, str) or len(reply) > 1000):
            raise CommandError("reply: a string of at most 1000 characters")
        rec = await self.box.store.run(
            db.update_report_status, self.box.store.sync, rid, status, reply, db.iso(now())
        )
        if rec is None:
            raise CommandError(f"report_id: no report {rid}")
        return f"report {rid} is {status}"

    async def http_taxonomy(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"version": self.taxonomy.version, "categories": self.taxonomy.public()}
        )

    async def http_alerts(self, request: web.Request) -> web.Response:
        require_staff(request)
        rows = await self.box.store.run(
            db.list_alerts, self.box.store.sync, query_int(request, "limit", 50),
            request.query.get("type"),
        )
        return web.json_response(rows)

    async def http_photo(self, request: web.Request) -> web.StreamResponse:
        require_staff(request)
        row = await self.box.store.run(db.photo, self.box.store.sync, request.match_info["id"])
        if row is None:
            return json_error(404, "no such photo", field="id")
        return web.FileResponse(self.box.config.box.data_dir / row["path"])

    # --- cloud feed ------------------------------------------------------------------

    async def cmd_taxonomy(self, target_id: str, cmd: Command) -> str:
        """Ops publish a new taxonomy (same shape as config/taxonomy.toml, as JSON)."""
        data = cmd.args.get("taxonomy")
        if not isinstance(data, dict):
            raise CommandError("args.taxonomy: the taxonomy object is required")
        try:
            tax = parse_taxonomy(data)
        except TaxonomyError as e:
            raise CommandError(str(e)) from e
        if tax.version < self.taxonomy.version:
            raise CommandError(
                f"taxonomy.version: {tax.version} is older than the box's {self.taxonomy.version}"
            )
        await self.box.store.set_meta(TAXONOMY_META, json.dumps(data, ensure_ascii=False))
        await asyncio.to_thread(self.analyzer.set_taxonomy, tax)
        return f"taxonomy version {tax.version} applied ({len(tax.codes)} categories)"
