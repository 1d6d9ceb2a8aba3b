"""HTTP API of the faces service (staff token): residents, photo enrolment, identify, feedback.

    POST   /api/v1/residents                     {"id", "name", "building", ...}  -> 201
    GET    /api/v1/residents                     list with template counts
    GET    /api/v1/residents/{id}
    DELETE /api/v1/residents/{id}                also deletes their templates
    POST   /api/v1/residents/{id}/photos         multipart, one or more "photo" files
    POST   /api/v1/faces/identify                multipart, one "photo" -> decision
    POST   /api/v1/faces/wrong-match             {"decision_id"}: "not this person"

Photos are decoded in memory and dropped; only the 128-d template is stored, on the box.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from aiohttp import web

from edge.core.http import json_error, read_form, require_staff
from edge.core.standard import Resident
from edge.core.store.core import StoreError
from edge.faces import store as store_faces
from edge.faces import weights
from edge.faces.matcher import effective_threshold
from edge.faces.types import Decision

MAX_PHOTOS = 20  # photos in one enrolment upload; more parts are refused with 413

if TYPE_CHECKING:
    from edge.faces.service import FacesService


def add_routes(app: web.Application, svc: FacesService) -> None:
    h = _Handlers(svc)
    app.router.add_post("/api/v1/residents", h.create)
    app.router.add_get("/api/v1/residents", h.list)
    app.router.add_get("/api/v1/residents/{rid}", h.get)
    app.router.add_delete("/api/v1/residents/{rid}", h.delete)
    app.router.add_post("/api/v1/residents/{rid}/photos", h.photos)
    app.router.add_post("/api/v1/faces/identify", h.identify)
    app.router.add_post("/api/v1/faces/wrong-match", h.wrong_match)


def decision_json(d: Decision) -> dict[str, Any]:
    out = dataclasses.asdict(d)
    out.pop("thumbnail_jpeg")  # never in JSON; the access engine decides what to keep
    out["matched"] = d.matched
    return out


def decode_image(data: bytes) -> np.ndarray | None:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None


async def enrol_photos(
    svc: FacesService, resident_id: str, photos: list[tuple[str, bytes]], source: str
) -> dict[str, Any]:
    """Check each photo, store the good ones as templates, say why the others were refused."""
    pipeline = svc.pipeline
    assert pipeline is not None
    accepted, rejected, warnings = [], [], []
    label = weights.embedding_label(pipeline.cfg.flip)
    for name, data in photos:
        image = await asyncio.to_thread(decode_image, data)
        check = await pipeline.check_enrol(image, resident_id)
        if not check.ok:
            rejected.append({"file": name, "reason": check.reason, "detail": check.detail})
            continue
        assert check.embedding is not None and check.quality is not None
        tid = await svc.box.store.run(
            store_faces.add_template,
            svc.box.store.sync,
            resident_id,
            check.embedding,
            check.quality.score,
            label,
            f"{source}:{name}",
        )
        await svc.refresh()  # the new template matches from now on
        accepted.append({"file": name, "template_id": tid, "quality": check.quality.score})
        warnings += [f"{name}: {w}" for w in check.warnings]
    return {
        "resident_id": resident_id,
        "accepted": accepted,
        "rejected": rejected,
        "warnings": warnings,
    }


class _Handlers:
    def __init__(self, svc: FacesService) -> None:
        self.svc = svc

    @property
    def store(self) -> Any:
        return self.svc.box.store

    def _need_pipeline(self) -> None:
        if self.svc.pipeline is None:
            raise web.HTTPServiceUnavailable(
                text='{"error": "face recognition is disabled ([faces] enabled = false)"}',
                content_type="application/json",
            )

    async def create(self, request: web.Request) -> web.Response:
        require_staff(request)
        body = await request.json()
        if not isinstance(body, dict):
            return json_error(400, "body must be a JSON object")
        rec = Resident.model_validate(body)  # a bad field becomes a 400 naming it
        try:
            await self.store.run(store_faces.add_resident, self.store.sync, rec)
        except StoreError as e:
            return json_error(409, str(e), field="id")
        return web.json_response(rec.model_dump(mode="json"), status=201)

    async def list(self, request: web.Request) -> web.Response:
        require_staff(request)
        return web.json_response(await self.store.run(store_faces.list_residents, self.store.sync))

    async def get(self, request: web.Request) -> web.Response:
        require_staff(request)
        rid = request.match_info["rid"]
        row = await self.store.run(store_faces.get_resident, self.store.sync, rid)
        if row is None:
            return json_error(404, f"no resident {rid}")
        return web.json_response(row)

    async def delete(self, request: web.Request) -> web.Response:
        require_staff(request)
        rid = request.match_info["rid"]
        try:
            n = await self.store.run(store_faces.delete_resident, self.store.sync, rid)
        except store_faces.NotFound as e:
            return json_error(404, str(e))
        await self.svc.refresh()
        return web.json_response({"deleted": rid, "templates": n})

    async def _read_photos(self, request: web.Request) -> list[tuple[str, bytes]]:
        if not request.content_type.startswith("multipart/"):
            raise _bad("send the photos as multipart/form-data, field 'photo'", "photo")
        limit = int(self.svc.box.config.api.max_body_mb * 1024 * 1024)
        form = await read_form(request, files={"photo": (MAX_PHOTOS, limit)})
        photos = form.files.get("photo", [])
        if not photos:
            raise _bad("no 'photo' file in the upload", "photo")
        return photos

    async def photos(self, request: web.Request) -> web.Response:
        actor = require_staff(request)
        self._need_pipeline()
        rid = request.match_info["rid"]
        if await self.store.run(store_faces.get_resident, self.store.sync, rid) is None:
            return json_error(404, f"no resident {rid}")
        photos = await self._read_photos(request)
        out = await enrol_photos(self.svc, rid, photos, f"api:{actor}")
        return web.json_response(out, status=200 if out["accepted"] else 422)

    async def identify(self, request: web.Request) -> web.Response:
        require_staff(request)
        self._need_pipeline()
        assert self.svc.pipeline is not None
        photos = await self._read_photos(request)
        image = await asyncio.to_thread(decode_image, photos[0][1])
        if image is None:
            return json_error(400, "photo: not an image", field="photo")
        decision = await self.svc.pipeline.identify(image)
        return web.json_response(decision_json(decision))

    async def wrong_match(self, request: web.Request) -> web.Response:
        actor = require_staff(request)
        self._need_pipeline()
        p = self.svc.pipeline
        assert p is not None
        body = await request.json()
        did = body.get("decision_id") if isinstance(body, dict) else None
        if not isinstance(did, str):
            return json_error(400, "decision_id: required", field="decision_id")
        probe = p.recent_probe(did)
        if probe is None:
            return json_error(404, f"decision {did} is unknown or too old", field="decision_id")
        candidate, emb = probe
        if candidate is None:
            return json_error(409, f"decision {did} had no candidate resident")
        sim = float(p.gallery.templates_of(candidate).dot(emb).max(initial=-1.0))
        try:
            nid = await self.store.run(
                store_faces.add_negative, self.store.sync, candidate, emb, sim, actor
            )
        except store_faces.NotFound as e:
            return json_error(404, str(e))
        await self.svc.refresh()
        n = len(p.negatives.get(candidate, ()))
        return web.json_response(
            {
                "negative_id": nid,
                "resident_id": candidate,
                "negatives": n,
                "effective_threshold": round(effective_threshold(
                    p.cfg, n, p.threshold(), p.gallery.kind == "znorm"), 4),
            }
        )


def _bad(message: str, field: str) -> web.HTTPBadRequest:
    import json

    return web.HTTPBadRequest(
        text=json.dumps({"error": message, "field": field}), content_type="application/json"
    )
