"""Hypothesis against the handlers schemathesis cannot reach well: raw multipart bodies
(reports, repairs, enrolment) and the screen WebSocket. No 5xx, no crashed handler, and
nothing stored from a refused request."""

from __future__ import annotations

import json
import logging

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import STAFF_TOKEN, api_url, db_count
from tests.edge.screens.helpers import screen_key

STAFF = {"Authorization": f"Bearer {STAFF_TOKEN}"}
SCREENS = '[[screens]]\nid = "s1"\ntype = "sim"\n'
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
SETTINGS = settings(max_examples=60, derandomize=True, database=None, deadline=None,
                    suppress_health_check=list(HealthCheck))


def collect(strategy: st.SearchStrategy) -> list:
    """Examples drawn by hypothesis (derandomized: the same list every run)."""
    out: list = []

    @SETTINGS
    @given(strategy)
    def draw(x: object) -> None:
        out.append(x)

    draw()
    return out


name = st.one_of(st.sampled_from(["text", "photos", "photo", "title", "fault", "building",
                                  "resident_id", ""]), st.text(max_size=12))
part = st.tuples(
    name,
    st.one_of(st.binary(max_size=300), st.just(JPEG), st.text(max_size=300).map(str.encode)),
    st.booleans(),  # with a filename
    st.sampled_from(["", "Content-Type: image/jpeg\r\n", "Content-Type: text/plain\r\n",
                     "Content-Transfer-Encoding: base64\r\n", "X: \x00\r\n"]),
)
bodies = st.tuples(
    st.sampled_from(["b0undary", "x", "-" * 70, "ß"]),
    st.lists(part, max_size=6),
    st.sampled_from(["full", "truncated", "no-end", "no-boundary-param"]),
)


def render(b: tuple) -> tuple[bytes, str]:
    boundary, parts, shape = b
    out = b""
    for n, data, filename, extra in parts:
        fn = f'; filename="{n}.jpg"' if filename else ""
        out += (f'--{boundary}\r\nContent-Disposition: form-data; name="{n}"{fn}\r\n{extra}\r\n'
                ).encode(errors="replace") + data + b"\r\n"
    if shape != "no-end":
        out += f"--{boundary}--\r\n".encode(errors="replace")
    if shape == "truncated":
        out = out[: len(out) // 2]
    ctype = "multipart/form-data" + ("" if shape == "no-boundary-param" else
                                     f"; boundary={boundary}")
    return out, ctype


def no_crash(caplog: pytest.LogCaptureFixture) -> None:
    crashes = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not crashes, crashes[0].getMessage() + "\n" + (crashes[0].exc_text or "")


@pytest.mark.parametrize(
    ("path", "headers"),
    [("/api/v1/reports", {}), ("/api/v1/tickets", {}), ("/api/v1/faces/identify", STAFF)],
)
async def test_multipart_bodies_never_5xx_or_store_refused(
    make_config, run_box, caplog, path, headers
) -> None:
    box = await run_box(make_config())
    url = api_url(box)
    ok = 0
    async with aiohttp.ClientSession() as s:
        for example in collect(bodies):
            data, ctype = render(example)
            before = db_count(box, "SELECT count(*) FROM reports") + db_count(
                box, "SELECT count(*) FROM tickets")
            async with s.post(f"{url}{path}", data=data,
                              headers={**headers, "Content-Type": ctype}) as r:
                assert r.status < 500, (r.status, await r.text(), example)
                body = await r.read()
            after = db_count(box, "SELECT count(*) FROM reports") + db_count(
                box, "SELECT count(*) FROM tickets")
            if r.status >= 400:
                assert after == before, (r.status, body, example)
                assert json.loads(body)["error"]
            else:
                ok += 1
    no_crash(caplog)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                              max_size=4),
    max_leaves=20,
)
messages = st.one_of(
    json_values.map(json.dumps),
    st.builds(lambda recs: json.dumps({"type": "plays", "records": recs}),
              st.lists(st.dictionaries(st.sampled_from(["id", "content_id", "started_at",
                                                        "ended_at", "x"]), json_values,
                                       max_size=5), max_size=4)),
    st.text(max_size=50),
    st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
    st.binary(max_size=50),
)


async def test_screen_websocket_survives_any_message(make_config, run_box, caplog) -> None:
    box = await run_box(make_config(extra=SCREENS))
    key = (await screen_key(api_url(box), "s1"))["key"]
    url = api_url(box).replace("http", "ws")
    sent = [*collect(messages), "[" * 1500 + "]" * 1500]  # JSON nested too deep, for sure
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(f"{url}/screen/s1/ws?key={key}") as ws:
            first = await ws.receive_json(timeout=5)
            assert first["type"] == "plan"
            for m in sent:
                await (ws.send_bytes(m) if isinstance(m, bytes) else ws.send_str(m))
            # still alive and answering after all of it: this last (bad) record is rejected
            await ws.send_str(json.dumps({"type": "plays", "records": [{"id": "marker"}]}))
            while True:
                got = await ws.receive(timeout=10)
                assert got.type == aiohttp.WSMsgType.TEXT, got
                if json.loads(got.data).get("rejected") == ["marker"]:
                    break
    assert db_count(box, "SELECT count(*) FROM play_records") == 0  # nothing valid was sent
    no_crash(caplog)
