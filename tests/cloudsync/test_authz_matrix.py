"""The cloud's authorisation matrix: every route of a real cloud app x every caller kind, with
the expected answer written once in :data:`EXPECT` (issue 13). Path parameters are real ids
from a seeded cloud (two districts, a box in each, content, a ticket). Besides the status,
callers outside the lixia district must never see lixia's ids in an answer."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from common import protocol as p
from edge.sync.identity import Identity
from tests.authz import coverage, fill, matches, row
from tests.cloudsync.helpers import Cloud
from tests.cloudsync.test_ops_api import rec, two_districts, upload

CALLERS = (
    "none",  # no credential
    "wrong",  # a made-up bearer token and a signature with a wrong secret
    "box_in",  # the lixia box (owns the objects named in paths)
    "box_out",  # the shizhong box
    "admin_in",  # ops admin of lixia
    "viewer_in",  # ops viewer of lixia
    "admin_out",  # ops admin of shizhong
    "viewer_out",  # ops viewer of shizhong
    "root",  # network-wide ops admin
)
OPS = {"none": 401, "wrong": 401, "box_in": 401, "box_out": 401}
PUBLIC = row(CALLERS, "2xx")
BOX = row(CALLERS, 401, box_in="2xx", box_out="2xx")  # each box acts on its own data
OPS_READ = row(CALLERS, "2xx", **OPS)  # lists: 200, scoped (checked by the leak markers)
OPS_READ_LIXIA = row(CALLERS, "2xx", **OPS, admin_out=404, viewer_out=404)
# Writes need the admin role (403 before any lookup); another district's object is "not found".
OPS_WRITE_LIXIA = row(CALLERS, 403, **OPS, admin_in="2xx", root="2xx", admin_out=404)
# Publishing/broadcasting at lixia's community from shizhong: refused, saying why (#12).
OPS_TARGET_LIXIA = row(CALLERS, 403, **OPS, admin_in="2xx", root="2xx")
# Something every admin does in its own area (its own content library).
OPS_WRITE_OWN = row(CALLERS, 403, **OPS, admin_in="2xx", admin_out="2xx", root="2xx")

EXPECT: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/api/openapi.json"): PUBLIC,
    # Claim codes are the credential here; a wrong one is a conflict for everyone.
    ("POST", "/api/v1/provision"): row(CALLERS, 409),
    ("GET", "/api/v1/box/relay"): row(CALLERS, 401, box_in=101, box_out=101),
    ("POST", "/api/v1/box/upload"): BOX,
    ("GET", "/api/v1/box/feed"): BOX,
    ("POST", "/api/v1/box/heartbeat"): BOX,
    ("POST", "/api/v1/box/rotate"): BOX,
    # Boxes fetch any blob they are sent (named by SHA-256); ops only their area's library.
    ("GET", "/api/v1/blobs/{sha256}"): row(
        CALLERS, "2xx", none=401, wrong=401, admin_out=404, viewer_out=404
    ),
    ("GET", "/api/v1/ops/me"): OPS_READ,
    ("GET", "/api/v1/ops/areas"): OPS_READ,
    ("POST", "/api/v1/ops/areas"): OPS_WRITE_LIXIA,  # a street under lixia
    ("POST", "/api/v1/ops/communities/{community_id}/claim-codes"): OPS_WRITE_LIXIA,
    ("GET", "/api/v1/ops/boxes"): OPS_READ,
    ("GET", "/api/v1/ops/boxes/{box_id}"): OPS_READ_LIXIA,
    ("POST", "/api/v1/ops/boxes/{box_id}/revoke"): OPS_WRITE_LIXIA,
    ("POST", "/api/v1/ops/boxes/{box_id}/commands"): OPS_WRITE_LIXIA,
    ("POST", "/api/v1/ops/content"): OPS_WRITE_OWN,
    ("GET", "/api/v1/ops/content"): OPS_READ,
    ("GET", "/api/v1/ops/content/{sha256}"): OPS_READ_LIXIA,
    ("POST", "/api/v1/ops/publish"): OPS_TARGET_LIXIA,
    ("POST", "/api/v1/ops/emergency"): OPS_TARGET_LIXIA,
    ("POST", "/api/v1/ops/emergency/cancel"): OPS_TARGET_LIXIA,
    ("GET", "/api/v1/ops/reports"): OPS_READ,
    ("GET", "/api/v1/ops/alerts"): OPS_READ,
    ("GET", "/api/v1/ops/tickets"): OPS_READ,
    ("POST", "/api/v1/ops/tickets/{ticket_id}/update"): OPS_WRITE_LIXIA,
    ("POST", "/api/v1/ops/reports/{report_id}/correction"): OPS_WRITE_LIXIA,
    ("GET", "/api/v1/ops/stats/access"): OPS_READ,
    ("GET", "/api/v1/ops/stats/plays"): OPS_READ,
    ("GET", "/api/v1/ops/stats/reading"): OPS_READ,
    # --- what the city console reads and writes (issue 17) ---------------------------------
    ("GET", "/api/v1/ops/overview"): OPS_READ,
    ("GET", "/api/v1/ops/audit"): OPS_READ,
    ("GET", "/api/v1/ops/stats/reports"): OPS_READ,
    ("GET", "/api/v1/ops/tickets/board"): OPS_READ,
    ("GET", "/api/v1/ops/tickets/{ticket_id}/history"): OPS_READ_LIXIA,
    ("GET", "/api/v1/ops/boxes/{box_id}/preview"): OPS_READ_LIXIA,
    ("GET", "/api/v1/ops/alerts/stream"): OPS_READ,  # server-sent events: status only
    ("POST", "/api/v1/ops/alerts/{box_id}/{seq}/ack"): OPS_WRITE_LIXIA,
    ("GET", "/api/v1/ops/stats/content"): OPS_READ,
    ("GET", "/api/v1/ops/rollouts"): OPS_READ,
    ("POST", "/api/v1/ops/rollouts"): OPS_TARGET_LIXIA,
    ("GET", "/api/v1/ops/rollouts/{rollout_id}"): OPS_READ_LIXIA,
    ("POST", "/api/v1/ops/rollouts/{rollout_id}/state"): OPS_WRITE_LIXIA,
    ("GET", "/console/stats"): row(CALLERS, "303~/console/login"),
    ("GET", "/console/library"): row(CALLERS, "303~/console/login"),
    ("GET", "/console/cloud-static"): row(CALLERS, "4xx"),  # add_static's pattern has no file
    # The console's pages sign in with a session cookie; a bearer token is no session.
    ("GET", "/"): row(CALLERS, "3xx"),
    ("GET", "/console"): row(CALLERS, "3xx"),
    ("GET", "/console/"): row(CALLERS, "3xx"),
    ("GET", "/console/login"): PUBLIC,
    ("POST", "/console/login"): row(CALLERS, "4xx|303~/console/login"),
    ("POST", "/console/logout"): row(CALLERS, "3xx|4xx"),
    ("GET", "/console/static"): row(CALLERS, "4xx"),  # add_static's pattern has no file
    **{("GET", f"/console/{page}"): row(CALLERS, "303~/console/login") for page in (
        "overview", "alerts", "reports", "tickets", "content", "fleet", "audit")},
    # Residents' pages: public here, relayed to the box that checks the session. Without a
    # community chosen (the qilu_box cookie) there is nowhere to relay to.
    ("GET", "/r/at/{community}"): row(CALLERS, 303),
    ("*", "/r/{tail}"): row(CALLERS, 404),
    ("*", "/api/v1/reports{tail}"): row(CALLERS, 404),
    ("*", "/api/v1/tickets{tail}"): row(CALLERS, 404),
    ("*", "/api/v1/taxonomy{tail}"): row(CALLERS, 404),
}

BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/api/v1/provision"): lambda c: {"claim_code": "WRONG-CODE-00"},
    ("POST", "/api/v1/box/upload"): lambda c: {"floor": 1, "records": [rec_dict(50)]},
    ("POST", "/api/v1/box/heartbeat"): lambda c: {},
    ("POST", "/api/v1/ops/areas"): lambda c: {
        "id": f"st-{c.replace('_', '-')}", "level": "street", "name": "街道", "parent_id": "lixia"
    },
    ("POST", "/api/v1/ops/communities/{community_id}/claim-codes"): lambda c: {},
    ("POST", "/api/v1/ops/boxes/{box_id}/commands"): lambda c: {
        "target_kind": "box", "target_id": "x", "action": "reboot"
    },
    ("POST", "/api/v1/ops/content"): lambda c: f"poster of {c}".encode(),
    ("POST", "/api/v1/ops/publish"): lambda c: {
        "action": "content", "targets": {"areas": ["c1"]}
    },
    ("POST", "/api/v1/ops/emergency"): lambda c: {
        "message": "停水", "targets": {"areas": ["c1"]}
    },
    ("POST", "/api/v1/ops/emergency/cancel"): lambda c: {
        "emergency_id": "em-1", "targets": {"areas": ["c1"]}
    },
    ("POST", "/api/v1/ops/tickets/{ticket_id}/update"): lambda c: {"status": "assigned"},
    ("POST", "/api/v1/ops/reports/{report_id}/correction"): lambda c: {"urgency": "high"},
    ("POST", "/api/v1/ops/alerts/{box_id}/{seq}/ack"): lambda c: {"note": "收到"},
    ("POST", "/api/v1/ops/rollouts"): lambda c: {"version": "2.0.0", "targets": {"areas": ["c1"]}},
    ("POST", "/api/v1/ops/rollouts/{rollout_id}/state"): lambda c: {"action": "pause"},
}  # fmt: skip


def rec_dict(seq: int) -> dict[str, Any]:
    r = rec(seq, "alert", 1, "2026-01-01T00:00:00", level="info")
    return {"seq": r.seq, "priority": r.priority, "kind": r.kind, "record_id": r.record_id,
            "ts": r.ts, "payload": r.payload}  # fmt: skip


async def test_every_cloud_route_for_every_caller(cloud: Cloud) -> None:
    assert cloud.app is not None
    coverage(EXPECT, cloud.app)
    a, b = await two_districts(cloud)
    victim = await cloud.new_box("c1b", district="lixia", street="s1")
    await upload(a, [rec(1, "repair_ticket", 2, "2026-01-01T10:00:00", text="lixia-secret-leak",
                         status="open"),
                     rec(2, "report", 2, "2026-01-01T10:01:00", text="lixia-secret-leak",
                         category="other"),
                     rec(3, "alert", 1, "2026-01-01T10:02:00", level="critical",
                         message="lixia-secret-leak")])  # fmt: skip
    tokens = {
        "admin_in": await cloud.ops_user("lixia-admin", "admin", "lixia"),
        "viewer_in": await cloud.ops_user("lixia-viewer", "viewer", "lixia"),
        "admin_out": await cloud.ops_user("sz-admin", "admin", "shizhong"),
        "viewer_out": await cloud.ops_user("sz-viewer", "viewer", "shizhong"),
        "root": cloud.admin,
    }
    status, up = await cloud.call(
        "POST", "/api/v1/ops/content", tokens["admin_in"], data=b"lixia-only poster"
    )
    assert status == 201, up
    status, ro = await cloud.call(
        "POST", "/api/v1/ops/rollouts", json={"version": "1.9", "targets": {"boxes": [a.box_id]}}
    )
    assert status == 201, ro
    params = {"community_id": "c1", "box_id": a.box_id, "sha256": up["sha256"],
              "ticket_id": "repair_ticket-1", "report_id": "report-2", "community": "c1",
              "seq": "3", "tail": "read", "rollout_id": ro["id"]}  # fmt: skip
    # Revoking is for good: it gets a box of its own, so the box callers keep working.
    per_route = {("POST", "/api/v1/ops/boxes/{box_id}/revoke"): {"box_id": victim.box_id}}
    markers = (a.box_id, victim.box_id, up["sha256"], "lixia-secret-leak", "repair_ticket-1",
               "report-2", ro["id"])
    boxes = {"box_in": a, "box_out": b}
    wrong = Identity(a.cloud, a.box_id, "not-the-secret")

    def headers(caller: str, method: str, path_qs: str, data: bytes) -> dict[str, str]:
        if caller in tokens:
            return {"Authorization": f"Bearer {tokens[caller]}"}
        if caller == "wrong":
            return {"Authorization": "Bearer not-a-token-at-all-0000",
                    **p.sign(wrong.secret, wrong.box_id, method, path_qs, data)}  # fmt: skip
        if caller in boxes:
            ident = boxes[caller]
            return p.sign(ident.secret, ident.box_id, method, path_qs, data)
        return {}

    wrong_answers = []
    async with aiohttp.ClientSession() as s:
        for (method, pattern), expected in EXPECT.items():
            path = fill(pattern, {**params, **per_route.get((method, pattern), {})})
            send = "GET" if method == "*" else method
            for caller in CALLERS:
                make = BODIES.get((method, pattern))
                body = make(caller) if make else None
                data = (
                    b"" if body is None else body if isinstance(body, bytes)
                    else json.dumps(body).encode()
                )  # fmt: skip
                h = headers(caller, send, path, data)
                if isinstance(body, dict):
                    h["Content-Type"] = "application/json"
                if pattern == "/api/v1/box/relay" and caller in boxes:
                    async with s.ws_connect(cloud.url + path, headers=h) as ws:
                        got, text = 101, ""
                        await ws.close()
                else:
                    try:
                        async with s.request(
                            send, cloud.url + path, data=data or None, headers=h,
                            allow_redirects=False,
                        ) as r:  # fmt: skip
                            stream = pattern.endswith("/stream") and r.status == 200
                            got, text = r.status, "" if stream else await r.text()
                            if 300 <= got < 400:  # a redirect's outcome is where it goes
                                text = r.headers.get("Location", "")
                    except aiohttp.WSServerHandshakeError as e:
                        got, text = e.status, str(e)
                ok = matches(expected[caller], got, text)
                # The audit log shows a district its own users' refused attempts, with the ids
                # they typed themselves (lixia's, here): that is their input, not lixia's data.
                own_input = pattern == "/api/v1/ops/audit"
                leaked = [
                    m for m in markers
                    if caller in ("admin_out", "viewer_out", "box_out") and got < 300 and m in text
                    and not own_input
                ]  # fmt: skip
                if not ok or leaked:
                    wrong_answers.append(
                        f"{method} {pattern} as {caller}: expected {expected[caller]}, got {got}"
                        + (f", leaked {leaked}" if leaked else "")
                        + f" {text[:120]!r}"
                    )
    assert not wrong_answers, "\n".join(wrong_answers)
