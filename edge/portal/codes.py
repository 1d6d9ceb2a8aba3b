"""Login codes as residents see them: the link, a QR code (inline SVG) and a masked name.

Codes themselves are made in one place only, :func:`edge.portal.store.issue_code`; this module
only presents them (door screens, printed sheets, CLI output).
"""

from __future__ import annotations

from urllib.parse import quote


def login_link(base: str, code: str) -> str:
    """``<base>/r/login?code=…`` (the page only fills the form; a previewer cannot spend it).
    ``base`` may be the cloud's away link (``<cloud>/r/at/<community>``, see
    edge/portal/relay.py): then the login page is reached through the cloud, which works on a
    phone's mobile data as well as on the community Wi-Fi."""
    if "/r/at/" in base:
        return f"{base}?next={quote(f'/r/login?code={code}', safe='')}"
    return f"{base.rstrip('/')}/r/login?code={code}"


def link_base(public_url: str, away_url: str | None, lan: str) -> str:
    """Where login links point: the configured public URL, else through the cloud when the box
    has a relay (phones need not be on the Wi-Fi), else the box's own LAN address."""
    return public_url.rstrip("/") or away_url or lan


def group_digits(code: str) -> str:
    """"123456789012" -> "1234 5678 9012": easier to read off a card and type (the login form
    ignores the spaces)."""
    return " ".join(code[i : i + 4] for i in range(0, len(code), 4))


def mask_name(name: str) -> str:
    """王阿姨 -> 王*姨, 李四 -> 李*, Zhang Wei -> Z*******i: enough to recognise oneself."""
    name = name.strip()
    if len(name) <= 1:
        return name or "居民"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


