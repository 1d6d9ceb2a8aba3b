"""Bad input on the cloud's public and box endpoints is a 4xx naming the problem, never a 500
(issue 13 #9, cloud side), and wrong claim codes are throttled (issue 13 hardening)."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit

import aiohttp

from common import protocol as p
from tests.cloudsync.helpers import Cloud


async def raw_http(url: str, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """One request written byte for byte (headers aiohttp's client would refuse to send)."""
    u = urlsplit(url)
    reader, writer = await asyncio.open_connection(u.hostname, u.port)
    try:
        writer.write(head + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode())
        writer.write(body)
        await writer.drain()
        async with asyncio.timeout(10):
            data = await reader.read()
    finally:
        writer.close()
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


async def test_bad_bodies_and_headers_are_4xx(cloud: Cloud) -> None:
    ident = await cloud.new_box()
    deep = b'{"claim_code": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    async with aiohttp.ClientSession() as s:
        for data, words in (
            (b'{"claim_code": "\xff\xfe\xfd-abcdef"}', "invalid"),  # not UTF-8
            (deep, "recursion"),
            (b"[" * 10_000, "body"),
            (b'{"claim_code": 1e99999}', "claim_code"),
        ):
            async with s.post(
                cloud.url + "/api/v1/provision", data=data,
                headers={"Content-Type": "application/json"},
            ) as r:  # fmt: skip
                text = await r.text()
                assert r.status == 400, (data[:40], text)
                assert words in text.lower(), text
        # limit=abc on a box route and an ops route.
        url = f"{cloud.url}/api/v1/box/feed?limit=abc"
        h = p.sign(ident.secret, ident.box_id, "GET", "/api/v1/box/feed?limit=abc")
        async with s.get(url, headers=h) as r:
            assert r.status == 400 and "query.limit" in await r.text()
        status, body = await cloud.call("GET", "/api/v1/ops/boxes?limit=abc")
        assert status == 400 and body["field"] == "query.limit"
        # A deeply nested publish body from an admin.
        nested = '{"action": "content", "targets": {"areas": ["c1"]}, "args": {"a": '
        nested += "[" * 1000 + "]" * 1000 + "}}"
        status, body = await cloud.call(
            "POST", "/api/v1/ops/publish", data=nested.encode(),
        )  # fmt: skip
        assert status == 400, body
    # Non-ASCII signature, box id and bearer token (compare_digest raised TypeError: a 500).
    for name, value, box_status in (
        (p.H_SIG, "é" * 64, 401),
        (p.H_BOX, "盒子", 401),
        ("Authorization", "Bearer 令牌令牌", 200),  # a box route reads the signature only
    ):
        h = p.sign(ident.secret, ident.box_id, "POST", "/api/v1/box/heartbeat", b"{}")
        h[name] = value
        head = b"POST /api/v1/box/heartbeat HTTP/1.1\r\nHost: x\r\n" + b"".join(
            f"{k}: ".encode() + v.encode() + b"\r\n" for k, v in h.items()
        )
        status, body = await raw_http(cloud.url, head, b"{}")
        assert status == box_status, (name, status, body)
        assert json.loads(body)
        head = head.replace(b"POST /api/v1/box/heartbeat", b"GET /api/v1/ops/me")
        status, body = await raw_http(cloud.url, head)
        assert status == 401, (name, status, body)


async def test_wrong_claim_codes_are_throttled_per_source_and_overall(cloud: Cloud) -> None:
    await cloud.community()
    good = await cloud.claim()
    async with aiohttp.ClientSession() as s:

        async def try_code(code: str, source: str = "") -> tuple[int, dict]:
            async with s.post(
                cloud.url + "/api/v1/provision", json={"claim_code": code},
            ) as r:  # fmt: skip
                return r.status, await r.json()

        for i in range(10):
            status, body = await try_code(f"WRONG-{i:06d}")
            assert status == 409, body
        status, body = await try_code("WRONG-LAST1")
        assert status == 429 and "too many wrong claim codes" in body["error"], body
        # Even the right code waits: the guesser cannot tell a hit from the throttle.
        status, body = await try_code(good)
        assert status == 429
    # Nothing was provisioned by the refused attempts.
    _, boxes = await cloud.call("GET", "/api/v1/ops/boxes")
    assert boxes["items"] == []


async def test_a_forged_list_cursor_is_a_400_naming_it(cloud: Cloud) -> None:
    """Probe 12: a cursor is base64 JSON the client sends back; one whose seq does not fit a
    64-bit integer (or is 1e400), or whose text holds a NUL, was a 500 on both backends."""
    import base64

    from tests.cloudsync.test_ops_api import rec, upload

    ident = await cloud.new_box()
    day = "2026-01-01T10:00:00"
    await upload(ident, [rec(1, "report", 2, day, text="灯坏了")])
    for forged in ('["2026", "b", 1e400]', '["2026", "b", 99999999999999999999999]',
                   '["2026", "b", -99999999999999999999999]', '["2026\\u0000", "b", 1]',
                   '["2026", "b\\u0000", 1]'):  # fmt: skip
        cursor = base64.urlsafe_b64encode(forged.encode()).decode()
        for path in ("/api/v1/ops/reports", "/api/v1/ops/alerts", "/api/v1/ops/tickets"):
            status, body = await cloud.call("GET", path, params={"cursor": cursor})
            assert status == 400 and body["field"] == "query.cursor", (forged, path, body)
    # The live alert stream's resume id likewise: the stream answered, then broke off.
    async with aiohttp.ClientSession() as s, s.get(
        cloud.url + "/api/v1/ops/alerts/stream", params={"max_s": "1"},
        headers={**cloud.headers(), "Last-Event-ID": f"{day} {ident.box_id} 9" + "9" * 20},
    ) as r:  # fmt: skip
        assert r.status == 200
        assert (await r.read()).startswith(b"retry:")  # and ended cleanly
    # A real cursor still pages.
    _, first = await cloud.call("GET", "/api/v1/ops/reports", params={"limit": 1})
    status, rest = await cloud.call("GET", "/api/v1/ops/reports",
                                    params={"cursor": first["next_cursor"]})  # fmt: skip
    assert status == 200 and rest["items"] == []


async def test_numbers_past_what_the_ops_api_can_hold_are_a_400_naming_them(cloud: Cloud) -> None:
    """Probe 12: a publish with ttl_s 1e18 (its expiry past year 9999) and the audit log's
    ``before`` past 64 bits were 500s."""
    await cloud.new_box()
    for ttl in (1e18, 1e300):
        status, body = await cloud.call("POST", "/api/v1/ops/publish", json={
            "action": "content", "targets": {"areas": ["c1"]}, "args": {}, "ttl_s": ttl})
        assert status == 400 and body["field"] == "body.ttl_s", body
    status, body = await cloud.call("GET", "/api/v1/ops/audit",
                                    params={"before": "99999999999999999999"})  # fmt: skip
    assert status == 400 and body["field"] == "query.before", body
    status, body = await cloud.call("GET", "/api/v1/ops/audit", params={"before": "5"})
    assert status == 200, body


async def test_an_area_with_half_a_position_is_refused_not_stored_without_it(
    cloud: Cloud,
) -> None:
    """Probe 12: an area sent with lat but no lon (or lon alone) was created (201) with no
    position at all: the map never showed it and nobody was told."""
    await cloud.community()
    for half, missing in (({"lat": 36.66}, "lon"), ({"lon": 117.02}, "lat")):
        status, body = await cloud.call("POST", "/api/v1/ops/areas", json={
            "id": "c7", "level": "community", "name": "C7", "parent_id": "quancheng", **half})
        assert status == 400 and body["field"] == f"body.{missing}", body
    status, _ = await cloud.call("GET", "/api/v1/ops/overview", params={"area": "c7"})
    assert status == 404  # nothing was stored
    status, body = await cloud.call("POST", "/api/v1/ops/areas", json={
        "id": "c7", "level": "community", "name": "C7", "parent_id": "quancheng",
        "lat": 36.66, "lon": 117.02})  # fmt: skip
    assert status == 201 and (body["lat"], body["lon"]) == (36.66, 117.02), body


async def test_every_refusal_of_an_ops_write_names_its_field(cloud: Cloud) -> None:
    """Probe 12: these 400s named the field only in their words, not in ``field`` as every
    other refusal does (a client or the console could not point at the input), and the live
    alert stream's bad query answered pydantic's whole report."""
    from tests.cloudsync.test_ops_api import rec, upload

    ident = await cloud.new_box()
    text = json.dumps({"schema": "qilu.v1.repair_ticket", "id": "tk-1", "status": "open"})
    await upload(ident, [rec(1, "report", 2, "2026-01-01T10:00:00", text="灯坏了")])
    from edge.sync.store import OutboxRow

    await upload(ident, [OutboxRow(2, 2, "repair_ticket", "tk-1", "2026-01-01T10:00:00", text,
                                   len(text))])  # fmt: skip
    for method, path, kw, field in (
        ("POST", "/api/v1/ops/content", {"data": b""}, "body"),
        ("POST", "/api/v1/ops/tickets/tk-1/update", {"json": {"status": "open"}}, "body.action"),
        ("POST", "/api/v1/ops/reports/report-1/correction", {"json": {"note": "x"}},
         "body.category"),
        ("POST", "/api/v1/ops/communities/quancheng/claim-codes", {"json": {}}, "community_id"),
        ("GET", "/api/v1/ops/alerts/stream", {"params": {"max_s": "abc"}}, "query.max_s"),
    ):
        status, body = await cloud.call(method, path, **kw)
        assert status == 400 and body.get("field") == field, (path, body)
        assert body["error"].startswith(field), body
