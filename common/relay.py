"""The relay's wire format, shared by the box (edge/portal/relay.py) and the cloud
(cloudsync/relay.py): which paths and headers cross, and the frame.

One frame: a 4-byte big-endian length, that many bytes of JSON head, then the body.
Only the resident paths in :data:`PREFIXES` are relayed, checked on both sides.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

PATH = "/api/v1/box/relay"
PREFIXES = ("/r/", "/api/v1/reports", "/api/v1/tickets", "/api/v1/taxonomy")
MAX_BODY = 8 * 1024 * 1024  # an article image or a report photo; videos stay on the LAN
TIMEOUT_S = 20.0
# Request headers a resident's browser sends that the box needs; answer headers it returns.
TO_BOX = frozenset(
    "accept accept-language content-type range user-agent if-none-match if-modified-since"
    " x-qilu-proof"  # the /r/ page's proof of work for anonymous reports
    " sec-fetch-site".split()  # where a write comes from (edge/core/http.py: same origin only)
)  # and the box's own cookies (cloudsync.relay.box_cookies)
TO_BROWSER = frozenset(
    "content-type set-cookie location cache-control content-range accept-ranges etag"
    " last-modified content-disposition content-language"
    # the box's page protections (edge/core/http.py _secure): no framing, no inline script
    " content-security-policy x-frame-options x-content-type-options referrer-policy"
    " x-robots-tag".split()
)


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WRITE_SITES = frozenset({"same-origin", "none"})  # Sec-Fetch-Site of a write we take


def foreign_write(method: str, headers: Mapping[str, str], host: str,
                  check_origin: bool = True) -> str | None:
    """Why a write comes from another origin's page (None: a page of ``host``, or no page: a
    panel, a script, an app). SameSite=Lax keeps the resident's cookie off cross-*site* posts
    only, and every box's origin under the relay domain (``<box id>.<domain>``), like every port
    of the box's LAN address, is one site: a page there could post the /r/ forms (open a door,
    issue a pass, set the door PIN) with the resident's cookie (security probes 4 and 5).
    Browsers say where a write comes from: Fetch Metadata over HTTPS, ``Origin`` on every POST.
    ``check_origin`` False where ``host`` is not what the browser addressed (the box behind the
    relay sees its loopback address)."""
    if method in SAFE_METHODS:
        return None
    site = headers.get("Sec-Fetch-Site")
    if site is not None and site not in WRITE_SITES:
        return f"Sec-Fetch-Site: {site}"
    origin = headers.get("Origin")
    if check_origin and origin is not None and (
            origin == "null" or origin.split("://", 1)[-1].lower() != host.lower()):
        return f"Origin: {origin[:100]}"
    return None


def away_url(cloud: str, community_id: str) -> str:
    """Where a community's residents open their box's pages through the cloud (``enter``)."""
    return f"{cloud.rstrip('/')}/r/at/{community_id}"


def allowed(path: str) -> bool:
    """A resident path, and no dot segment that could climb out of it once decoded."""
    plain = unquote(path.split("?", 1)[0])
    if not plain.startswith("/") or plain.startswith("//") or "\\" in plain:
        return False
    if any(seg in (".", "..") for seg in plain.split("/")):
        return False
    return any(plain.startswith(p) for p in PREFIXES)


def pack(head: dict[str, Any], body: bytes = b"") -> bytes:
    raw = json.dumps(head, ensure_ascii=False, separators=(",", ":")).encode()
    return struct.pack(">I", len(raw)) + raw + body


def unpack(frame: bytes) -> tuple[dict[str, Any], bytes]:
    """Head and body of one frame; ValueError names what is wrong with a bad one."""
    if len(frame) < 4:
        raise ValueError("relay frame shorter than its length prefix")
    (n,) = struct.unpack(">I", frame[:4])
    if n > len(frame) - 4:
        raise ValueError(f"relay frame head of {n} bytes overruns the frame")
    try:
        head = json.loads(frame[4 : 4 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"relay frame head is not JSON: {e}") from e
    if not isinstance(head, dict) or not isinstance(head.get("id"), int):
        raise ValueError("relay frame head needs an integer id")
    return head, frame[4 + n :]


def signed_part(head: dict[str, Any], body: bytes) -> bytes:
    """What a frame's signature (``head["sig"]``, common/protocol.py ``sign_message`` with
    ``relay_subject``) covers: the head without the signature, as canonical JSON (sorted keys,
    so both sides make the same bytes), and the body."""
    rest = {k: v for k, v in head.items() if k != "sig"}
    text = json.dumps(rest, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return text.encode() + b"\n" + body
