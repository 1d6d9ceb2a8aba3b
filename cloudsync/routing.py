"""Routes declared once: the aiohttp handler, its validated input and its OpenAPI entry.

``@api.route("GET", "/api/v1/ops/boxes", query=BoxesQuery, auth="ops")`` registers the
handler; the wrapper validates the query string and JSON body with pydantic (400 naming the
field on bad input) and hands ``(request, query, body)`` to the handler. ``openapi()`` builds
the OpenAPI 3 document from the same declarations, so the two cannot drift apart.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

Handler = Callable[..., Awaitable[web.StreamResponse]]
ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
# What the handlers accept in these path parameters (others: ID_PATTERN), so that a request
# built from the document is one the route takes (probe 12).
PATH_PATTERNS = {
    "sha256": r"^[0-9a-f]{64}$",
    "seq": r"^[0-9]{1,18}$",
    "community_id": r"^[a-z0-9][a-z0-9_-]{0,63}$",  # ops_api.AREA_ID
    "rollout_id": r"^ro-[0-9a-f]{12}$",  # console/rollout.py ROLLOUT_ID
}


class BadRequest(Exception):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def explain(e: ValidationError, where: str) -> BadRequest:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    name = f"{where}.{loc}" if loc else where
    return BadRequest(f"{name}: {err['msg']}", name)


@dataclass
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    auth: str  # "public", "box", "ops", "box_or_ops"
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    raw_body: str | None = None  # media type of a non-JSON body (content upload)
    response: type[BaseModel] | None = None
    responses: dict[int, str] = field(default_factory=dict)
    nonce_in_handler: bool = False  # the handler stores request[NONCE] in its transaction
    max_body: int | None = None  # bytes, on the wire and inflated (None: the app's max_body_mb)
    status: int = 200  # what the handler answers on success (201: it created something)


# What the authenticate middleware (cloudsync/app.py) puts on a request: the ops user (bearer
# token) or the box row (HMAC signature), the nonce a handler uses in its own transaction, the
# raw body it read to check the signature, and the stored secret the box signed with.
OPS_USER: web.RequestKey[Any] = web.RequestKey("ops")
BOX_ROW: web.RequestKey[Any] = web.RequestKey("box")
NONCE: web.RequestKey[tuple[str, str, int, int]] = web.RequestKey("nonce")
RAW_BODY: web.RequestKey[bytes] = web.RequestKey("raw_body")
SIGNED_WITH: web.RequestKey[str] = web.RequestKey("signed_with")
# The area path a write acted in, for the audit log (cloudsync/console/audit.py).
AUDIT_AREA: web.RequestKey[str] = web.RequestKey("audit_area")

# Which authentication each route needs, and the uploads that use their nonce themselves.
AUTH_OF: web.AppKey[dict[tuple[str, str], str]] = web.AppKey("auth_of")
NONCE_IN_HANDLER: web.AppKey[set[tuple[str, str]]] = web.AppKey("nonce_in_handler")


class Api:
    """One module's route table; the app factory merges the tables and installs them."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    @classmethod
    def merge(cls, *tables: Api) -> Api:
        merged = cls()
        merged.routes = [r for t in tables for r in t.routes]
        return merged

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tag: str,
        auth: str,
        query: type[BaseModel] | None = None,
        body: type[BaseModel] | None = None,
        raw_body: str | None = None,
        response: type[BaseModel] | None = None,
        responses: dict[int, str] | None = None,
        nonce_in_handler: bool = False,
        max_body: int | None = None,
        status: int = 200,
    ) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            self.routes.append(
                Route(
                    method,
                    path,
                    fn,
                    summary,
                    tag,
                    auth,
                    query,
                    body,
                    raw_body,
                    response,
                    responses or {},
                    nonce_in_handler,
                    max_body,
                    status,
                )
            )
            return fn

        return deco

    def install(self, app: web.Application) -> None:
        for r in self.routes:
            app.router.add_route(r.method, r.path, _wrap(r))
            app.setdefault(AUTH_OF, {})[(r.method, r.path)] = r.auth
            if r.nonce_in_handler:
                app.setdefault(NONCE_IN_HANDLER, set()).add((r.method, r.path))

    def openapi(self, title: str, version: str) -> dict[str, Any]:
        paths: dict[str, Any] = {}
        schemas: dict[str, Any] = {}

        def ref(model: type[BaseModel]) -> dict[str, str]:
            s = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in s.pop("$defs", {}).items():
                schemas[name] = sub
            schemas[model.__name__] = s
            return {"$ref": f"#/components/schemas/{model.__name__}"}

        for r in self.routes:
            op: dict[str, Any] = {
                "summary": r.summary,
                "tags": [r.tag],
                "operationId": r.handler.__name__,
                "parameters": [],
                "responses": {},
            }
            for name in re.findall(r"{(\w+)}", r.path):
                op["parameters"].append(
                    {
                        "name": name,
                        "in": "path",
                        "required": True,
                        "schema": {
                            "type": "string",
                            "pattern": PATH_PATTERNS.get(name, ID_PATTERN),
                        },
                    }
                )
            if r.query is not None:
                s = r.query.model_json_schema()
                for name, prop in s.get("properties", {}).items():
                    prop.pop("title", None)
                    op["parameters"].append(
                        {
                            "name": name,
                            "in": "query",
                            "required": name in s.get("required", []),
                            "schema": prop,
                        }
                    )
            if r.body is not None:
                op["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": ref(r.body)}},
                }
            elif r.raw_body:
                op["requestBody"] = {
                    "required": True,
                    "content": {r.raw_body: {"schema": {"type": "string", "format": "binary"}}},
                }
            ok: dict[str, Any] = {"description": "Created" if r.status == 201 else "OK"}
            if r.response is not None:
                ok["content"] = {"application/json": {"schema": ref(r.response)}}
            op["responses"][str(r.status)] = ok
            op["responses"]["400"] = {"description": "Bad input; the error names the field"}
            if r.auth != "public":
                op["security"] = (
                    [{"ops": []}]
                    if r.auth == "ops"
                    else [{"box": []}]
                    if r.auth == "box"
                    else [{"ops": []}, {"box": []}]
                )
                op["responses"]["401"] = {"description": "Not authenticated"}
                op["responses"]["403"] = {"description": "Not allowed (role, scope, revoked)"}
            for code, text in r.responses.items():
                op["responses"][str(code)] = {"description": text}
            paths.setdefault(r.path, {})[r.method.lower()] = op
        return {
            "openapi": "3.1.0",
            "info": {"title": title, "version": version},
            "paths": paths,
            "components": {
                "schemas": schemas,
                "securitySchemes": {
                    "ops": {"type": "http", "scheme": "bearer"},
                    "box": {
                        "type": "apiKey",
                        "in": "header",
                        "name": "X-Qilu-Signature",
                        "description": "HMAC-SHA256 with X-Qilu-Box/-Timestamp/-Nonce; see "
                        "common/protocol.py",
                    },
                },
            },
        }


def _wrap(r: Route) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        query = body = None
        if r.query is not None:
            try:
                query = r.query.model_validate(dict(request.query))
            except ValidationError as e:
                raise explain(e, "query") from e
        if r.body is not None:
            from cloudsync.body import read_body  # body.py imports BadRequest from here

            raw = await read_body(request, r.max_body)
            try:
                body = r.body.model_validate_json(raw or b"null")
            except ValidationError as e:
                raise explain(e, "body") from e
        return await r.handler(request, query, body)

    handler.__name__ = r.handler.__name__
    return handler


def ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False))
