"""Security probe 4: through the cloud relay only resident sessions may act. The box drops
every Authorization header on relayed requests, but the cloud passes the box's own cookies
(``<name>__<box id>`` on its origin), and the box took the property office's session cookie
(``qilu_office``) on the relayed API paths as staff: anyone on the internet holding an office
cookie (sniffed on the plain-HTTP LAN, left on a shared PC) read every report and repair
ticket of the community through the cloud, where the LAN-only office never reaches."""

from __future__ import annotations

import aiohttp

from tests.cloudsync.helpers import Cloud
from tests.conftest import api_url
from tests.edge.office.helpers import add_users, new_ticket, session, sign_in
from tests.edge.portal.test_cloud import FAST
from tests.edge.portal.test_relay import cloud, relayed  # noqa: F401 - fixture

OFFICE = """
[office]
max_failed_logins = 3
"""


async def test_an_office_cookie_is_not_staff_through_the_relay(
    make_config, run_box, cloud: Cloud  # noqa: F811
) -> None:
    config = make_config(extra=FAST + OFFICE)
    add_users(config.source)
    box, _relay = await relayed(cloud, config, run_box)
    base = api_url(box)
    async with session() as lan:  # a staff member signs in at the office, on the LAN
        t = await new_ticket(lan, base, "2号楼302漏水，业主电话13800000000")
        assert (await sign_in(lan, base, "ann"))[0] == 303
        office = next(c.value for c in lan.cookie_jar if c.key == "qilu_office")
        async with lan.get(f"{base}/api/v1/tickets") as r:  # on the LAN: staff, as designed
            assert r.status == 200 and t["id"] in {x["id"] for x in await r.json()}

    # someone on the internet with that cookie value, through the cloud
    box_id = box.service("sync").client.ident.box_id  # the cloud's name for this box
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as far:
        far_cookie = {"Cookie": f"qilu_box={box_id}; qilu_office__{box_id}={office}"}
        async with far.get(f"{cloud.url}/r/me", headers=far_cookie,
                           allow_redirects=False) as r:  # relayed: the box answers
            assert r.status == 303 and r.headers["Location"] == "/r/login"
        for path in ("/api/v1/tickets", "/api/v1/reports", f"/api/v1/tickets/{t['id']}"):
            async with far.get(f"{cloud.url}{path}", headers=far_cookie) as r:
                body = await r.text()
                assert r.status in (401, 403), (path, r.status, body[:200])
                assert "13800000000" not in body
