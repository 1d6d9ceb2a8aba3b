"""Staff sign-in on the box (the property office's session cookie) against a real box: the
cookie reaches the same API as a staff token, writes need the CSRF token, a viewer only reads,
sessions expire, and every staff write lands in the audit log. Rows are read from SQLite."""

from __future__ import annotations

import asyncio
import re
import sqlite3

import aiohttp
import pyotp

from common.staffauth import hash_password
from edge.office import store as office_db
from tests.conftest import api_url
from tests.edge.office.helpers import STAFF, add_users, new_ticket, page_csrf, session, sign_in

OFFICE = """
[office]
max_failed_logins = 3
"""
# Sessions end after 3 s unused here, so expiry is seen in a test.
SHORT = """
[office]
idle_min = 0.05
"""


def ticket_row(box, tid: str) -> tuple[str, str | None]:
    db = sqlite3.connect(box.config.db_path)
    try:
        return db.execute("SELECT status, assignee FROM tickets WHERE id = ?", (tid,)).fetchone()
    finally:
        db.close()


def audit_rows(box) -> list[tuple]:
    db = sqlite3.connect(box.config.db_path)
    try:
        return db.execute("SELECT actor, via, action, target, status FROM office_audit"
                          " ORDER BY id").fetchall()
    finally:
        db.close()


async def test_a_signed_in_browser_uses_the_staff_api_with_csrf(make_config, run_box, tmp_path):
    config = make_config(extra=OFFICE)
    add_users(config.source)
    box = await run_box(config)
    base = api_url(box)
    async with session() as anon:
        t = await new_ticket(anon, base)
        async with anon.get(f"{base}/office/tickets", allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"].startswith("/office/login")
    async with session() as s:
        status, where = await sign_in(s, base, "ann", "wrong-password-000")
        assert status == 401 and "用户名、密码或动态验证码不正确" in where
        status, where = await sign_in(s, base, "ann")
        assert (status, where) == (303, "/office/tickets")
        csrf = await page_csrf(s, base)
        async with s.get(f"{base}/api/v1/tickets") as r:  # no bearer: the cookie
            assert r.status == 200 and t["id"] in {x["id"] for x in await r.json()}
        # A write without the CSRF token is refused and changes nothing: on staff routes with
        # an error naming the header; on routes residents use too (tickets, reports) the
        # cookie then counts for nothing (the caller is a resident without the follow key).
        async with s.post(f"{base}/api/v1/access/blocks", json={"resident_id": "r-x"}) as r:
            body = await r.json()
            assert r.status == 403 and body["field"] == "X-CSRF-Token", body
        url = f"{base}/api/v1/tickets/{t['id']}/assign"
        async with s.post(url, json={"assignee": "老李"}) as r:
            assert r.status == 403
        async with s.post(url, json={"assignee": "老李"}, headers={"X-CSRF-Token": "x" * 32}) as r:
            assert r.status == 403
        assert ticket_row(box, t["id"]) == ("open", None)
        async with s.post(url, json={"assignee": "老李"}, headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 200, await r.text()
        assert ticket_row(box, t["id"]) == ("assigned", "老李")
    async with session() as v:
        assert (await sign_in(v, base, "vic"))[0] == 303
        csrf_v = await page_csrf(v, base)
        async with v.get(f"{base}/api/v1/tickets/{t['id']}") as r:
            assert r.status == 200  # a viewer reads ...
        async with v.post(f"{base}/api/v1/tickets/{t['id']}/start", json={},
                          headers={"X-CSRF-Token": csrf_v}) as r:  # ... and cannot write
            body = await r.json()
            assert r.status == 403 and "viewer" in body["error"], body
        async with v.post(f"{base}/api/v1/doors/d-none/open",
                          headers={"X-CSRF-Token": csrf_v}) as r:
            assert r.status == 403
    assert ticket_row(box, t["id"]) == ("assigned", "老李")
    # A token's write is audited too; the audit API shows both, newest first.
    async with session() as s:
        async with s.post(f"{base}/api/v1/tickets/{t['id']}/start", headers=STAFF, json={}) as r:
            assert r.status == 200
        async with s.get(f"{base}/api/v1/audit", headers=STAFF) as r:
            items = (await r.json())["items"]
    rows = audit_rows(box)
    assert ("ann", "login", "login_failed", "ip=127.0.0.1", 401) in rows
    assert ("ann", "session", "POST /api/v1/tickets/{id}/{action}",
            f"id={t['id']},action=assign", 200) in rows
    assert ("ann", "session", "POST /api/v1/tickets/{id}/{action}",
            f"id={t['id']},action=assign", 403) not in rows  # refused before it was anyone's
    assert ("test-staff", "token", "POST /api/v1/tickets/{id}/{action}",
            f"id={t['id']},action=start", 200) in rows
    assert items[0]["actor"] == "test-staff" and items[0]["status"] == 200
    assert '"assignee": "老李"' in next(i["detail"] for i in items if i["actor"] == "ann"
                                        and i["via"] == "session")


async def test_sessions_expire_and_sign_out_ends_them(make_config, run_box):
    config = make_config(extra=SHORT)
    add_users(config.source)
    box = await run_box(config)
    base = api_url(box)
    async with session() as s:
        await sign_in(s, base, "ann")
        async with s.get(f"{base}/api/v1/alerts") as r:
            assert r.status == 200
        await asyncio.sleep(3.5)  # idle_min = 0.05 min = 3 s
        async with s.get(f"{base}/api/v1/alerts") as r:
            assert r.status == 401
        async with s.get(f"{base}/office/today", allow_redirects=False) as r:
            assert r.status == 303 and "expired=1" in r.headers["Location"]
        await sign_in(s, base, "ann")
        csrf = await page_csrf(s, base)
        async with s.post(f"{base}/office/logout", data={"csrf": csrf},
                          allow_redirects=False) as r:  # fmt: skip
            assert r.status == 303
        async with s.get(f"{base}/api/v1/alerts") as r:
            assert r.status == 401  # the cookie is still sent: its session has ended


async def test_totp_and_lockout(make_config, run_box):
    config = make_config(extra=OFFICE)
    box = await run_box(config)
    secret = pyotp.random_base32()
    await box.store.run(office_db.add_user, box.store.sync, "tom", hash_password("tom-password-1"),
                        "admin", secret)
    base = api_url(box)
    async with session() as s:
        # Probe finding G: a wrong code reads exactly like a wrong password (it used to say
        # "动态验证码不正确", telling a guesser the password was right); the audit log keeps why.
        status, body = await sign_in(s, base, "tom", "tom-password-1", "000000")
        _, wrong_password = await sign_in(s, base, "tom", "tom-password-2", "000000")
        assert status == 401 and "用户名、密码或动态验证码不正确" in body
        said = re.compile(r'<p class="error" role="alert">([^<]*)</p>')
        assert said.findall(body) == said.findall(wrong_password) != []
        db = sqlite3.connect(box.config.db_path)
        try:
            why = [r[0].split()[0] for r in db.execute(
                "SELECT detail FROM office_audit WHERE action = 'login_failed' ORDER BY rowid")]
        finally:
            db.close()
        assert why == ["bad_totp", "bad_credentials"]
        status, _ = await sign_in(s, base, "tom", "tom-password-1", pyotp.TOTP(secret).now())
        assert status == 303
    async with session() as s:
        assert (await sign_in(s, base, "tom", "bad-password-00"))[0] == 401
        # the third failure (with the TOTP one and the wrong password above) reached
        # max_failed_logins: even the right password waits now
        status, body = await sign_in(s, base, "tom", "tom-password-1", pyotp.TOTP(secret).now())
        assert status == 401 and "失败次数过多" in body


async def test_lockout_holds_against_many_guesses_at_once(make_config, run_box):
    """max_failed_logins counts guesses sent together too: 20 wrong passwords posted at the
    same moment used to pass the lockout check before the first failure was written (each
    waits for its password hash), so all 20 were tried (found by an outside probe)."""
    config = make_config(extra=OFFICE)  # max_failed_logins = 3
    add_users(config.source)
    box = await run_box(config)
    base = api_url(box)
    async with session() as s:
        async with s.get(f"{base}/office/login") as r:
            token = re.search(r'name="csrf" value="([^"]+)"', await r.text())
        assert token is not None
    # One sign-in form's token and cookie, replayed by a script (no cookie jar in the way).
    headers = {"Cookie": f"qilu_office_login={token.group(1)}"}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as raw:

        async def guess(i: int) -> str:
            form = {"csrf": token.group(1), "name": "ann", "password": f"guess-{i:04d}-xx"}
            async with raw.post(f"{base}/office/login", data=form, headers=headers,
                                allow_redirects=False) as r:  # fmt: skip
                assert r.status == 401
                said = re.search(r'<p class="error" role="alert">([^<]*)</p>', await r.text())
                return said.group(1) if said else ""

        pages = await asyncio.gather(*(guess(i) for i in range(20)))
    tried = sum("用户名、密码或动态验证码不正确" in p for p in pages)
    assert tried + sum("失败次数过多" in p for p in pages) == 20, pages
    assert tried <= 3, f"{tried} of 20 simultaneous guesses were checked (limit 3)"
    db = sqlite3.connect(box.config.db_path)
    try:
        checked = db.execute("SELECT count(*) FROM office_audit WHERE action = 'login_failed'"
                             " AND detail LIKE 'bad_credentials%'").fetchone()[0]
    finally:
        db.close()
    assert checked <= 3
    async with session() as s:  # locked: even the right password waits now
        status, body = await sign_in(s, base, "ann")
        assert status == 401 and "失败次数过多" in body


def from_address(addr: str) -> aiohttp.ClientSession:
    """A browser on another machine: its connections come from ``addr`` (still loopback)."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                 connector=aiohttp.TCPConnector(local_addr=(addr, 0)))


async def test_a_stranger_cannot_keep_a_staff_account_locked(make_config, run_box):
    """Probe finding: the lock-out counted failures per user name only, so anyone on the LAN
    locked ann out by posting wrong passwords for "ann". Now a guessing address locks only
    itself, other new devices are slowed (not locked), and the browser ann signed in on
    before gets in at once."""
    config = make_config(extra=OFFICE + "slow_base_s = 120\n")  # max_failed_logins = 3
    add_users(config.source)
    box = await run_box(config)
    base = api_url(box)
    async with session() as ann:  # ann's office PC: signed in before, then signed out
        assert await sign_in(ann, base, "ann") == (303, "/office/tickets")
        async with ann.post(f"{base}/office/logout", data={"csrf": await page_csrf(ann, base)},
                            allow_redirects=False) as r:  # fmt: skip
            assert r.status == 303
        async with from_address("127.0.0.2") as stranger:
            said = [(await sign_in(stranger, base, "ann", f"guess-{i:04d}-xx"))
                    for i in range(6)]
        assert [st for st, _ in said] == [401] * 6
        assert all("用户名、密码或动态验证码不正确" in b for _, b in said[:3]), said
        assert all("失败次数过多" in b for _, b in said[3:]), said  # that address is locked
        # the real user's remembered browser is neither locked nor slowed
        assert await sign_in(ann, base, "ann") == (303, "/office/tickets")
    async with from_address("127.0.0.3") as new_pc:  # a device never used: slowed, told so
        st, body = await sign_in(new_pc, base, "ann")
        alert = re.findall(r'<p class="error" role="alert">([^<]*)</p>', body)
        assert st == 401 and len(alert) == 1 and "一分钟后再试" in alert[0], alert
    db = sqlite3.connect(box.config.db_path)
    try:
        got = db.execute("SELECT action, target, substr(detail, 1, 6) FROM office_audit WHERE"
                         " action LIKE 'login%' AND actor = 'ann' ORDER BY id").fetchall()
    finally:
        db.close()
    assert got[0][0] == "login" and got[-2][0] == "login", got
    assert got[1:4] == [("login_failed", "ip=127.0.0.2", "bad_cr")] * 3, got
    assert got[4:7] == [("login_refused", "ip=127.0.0.2", "locked")] * 3, got
    assert got[-1] == ("login_refused", "ip=127.0.0.3", "slow 1"), got
