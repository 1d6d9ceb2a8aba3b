"""The authorisation matrix machinery shared by the box's and the cloud's matrix tests
(tests/edge/test_authz_matrix.py, tests/cloudsync/test_authz_matrix.py).

Each test lists the routes of a real app (``app.router.routes()``), and holds ONE table:
(method, route pattern) -> the expected answer per caller kind. A route without an entry, or an
entry without a route, fails the test, so a new route must be classified before it ships.
An expected answer is a status (403), a class ("2xx") or alternatives ("401|403").
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web


def routes_of(app: web.Application) -> set[tuple[str, str]]:
    """(method, pattern) of every route; HEAD goes with its GET (aiohttp adds it to add_get)."""
    out = set()
    for r in app.router.routes():
        if r.resource is None:
            continue
        out.add((r.method, r.resource.canonical))
    heads = {(m, p) for m, p in out if m == "HEAD"}
    assert all(("GET", p) in out for _, p in heads), "a HEAD route without its GET"
    return out - heads


def coverage(table: dict[tuple[str, str], Any], app: web.Application) -> None:
    routes = routes_of(app)
    missing = sorted(routes - table.keys())
    stale = sorted(table.keys() - routes)
    assert not missing, f"routes with no entry in the authorisation table: {missing}"
    assert not stale, f"table entries for routes that no longer exist: {stale}"


def matches(expected: int | str, status: int, text: str = "") -> bool:
    """``expected``: alternatives split by "|"; each a status, a class ("2xx"), "auth"
    (got past authentication and authorisation: not 401/403, not 5xx), optionally with
    "~words" that the answer (or the redirect's Location) must contain."""
    for alt in str(expected).split("|"):
        code, _, words = alt.partition("~")
        if words and words not in text:
            continue
        if code == "auth" and status not in (401, 403) and status < 500:
            return True
        if code.endswith("xx") and str(status)[0] == code[0]:
            return True
        if code == str(status):
            return True
    return False


def fill(pattern: str, params: dict[str, str]) -> str:
    """The pattern with its {name} parts replaced by real ids."""

    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        assert name in params, f"no id to fill {{{name}}} in {pattern}"
        return params[name]

    return re.sub(r"{(\w+)(?::[^}]*)?}", one, pattern)


def row(callers: tuple[str, ...], default: int | str | None = None, **given: int | str) -> dict:
    """One table row: every caller kind gets an answer (``default`` unless given)."""
    unknown = set(given) - set(callers)
    assert not unknown, f"unknown caller kinds {unknown}"
    out = {c: given.get(c, default) for c in callers}
    missing = [c for c, v in out.items() if v is None]
    assert not missing, f"row misses callers: {missing}"
    return out
