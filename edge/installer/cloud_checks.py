"""Doctor's cloud checks: box provisioned, cloud reachable (an authenticated request), clock.

One signed, read-only request (the download feed past its end, no long-poll) proves that the
network, the cloud and this box's identity all work. The clock skew comes from the same answer:
the cloud's ``Date`` header (or its server-time header when it refused our timestamp), compared
with the middle of our request. Both have one-second resolution, so the estimate is good to
about half a second plus half the round trip: fine for thresholds of seconds.
"""

from __future__ import annotations

import asyncio
import json
import stat
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from yarl import URL

from common import protocol as p
from common.relay import away_url
from edge.core.config import CoreConfig
from edge.sync.client import ssl_context
from edge.sync.identity import Identity, identity_path, load

PROBE_PATH = "/api/v1/box/feed"
NET_HINT = (
    "check the box's network, DNS and the cloud URL (curl CLOUD/healthz); "
    "the box keeps working offline and uploads later"
)


@dataclass
class Outcome:
    status: str  # pass / warn / fail / skip
    detail: str
    hint: str = ""


@dataclass
class Probe:
    """What one authenticated request to the cloud found."""

    outcome: Outcome
    skew_s: float | None = None  # box clock minus cloud clock


def provision_hint(config: CoreConfig) -> str:
    cfg = f"-c {config.source} " if config.source else ""
    return (
        f"`qilu-edge provision {cfg}--cloud URL --claim CODE` with a claim code from the "
        "ops console, or the installer page (cloud URL + claim code)"
    )


def read_identity(config: CoreConfig) -> tuple[Identity | None, Outcome]:
    """The identity file and the verdict on it (present, parseable, mode 0600)."""
    path = identity_path(config)
    try:
        ident = load(path)
    except (ValueError, TypeError) as e:  # half-edited or foreign JSON
        return None, Outcome(
            "fail",
            f"{path}: unreadable identity ({e})",
            provision_hint(config).replace("provision ", "provision --force ", 1),
        )
    except PermissionError:
        return None, Outcome(
            "fail", f"{path}: permission denied", "run the doctor as the qilu-edge user or root"
        )
    if ident is None:
        return None, Outcome(
            "fail", f"not provisioned: no cloud identity at {path}", provision_hint(config)
        )
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return ident, Outcome(
            "fail",
            f"{path} has mode {mode:04o}: the box secret is readable by others",
            f"chmod 600 {path}",
        )
    where = f" in {ident.area_path}" if ident.area_path else ""
    return ident, Outcome("pass", f"{ident.box_id}{where} at {ident.cloud} ({path}, 0600)")


async def probe_cloud(config: CoreConfig, ident: Identity, timeout_s: float = 8.0) -> Probe:
    """A signed GET of the feed past its end: proves reachability and the identity."""
    url = URL(ident.cloud).with_path(PROBE_PATH).with_query({"after": p.SEQ_MAX, "limit": 1})
    ctx = ssl_context(config.sync.tls_verify, config.sync.ca_file)
    offset = 0.0
    skew: float | None = None
    try:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ctx),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as s:
            for attempt in range(2):
                headers = p.sign(
                    ident.secret, ident.box_id, "GET", url.raw_path_qs, b"", offset_s=offset
                )
                t0 = time.time()
                async with s.get(url, headers=headers) as r:
                    text = await r.text()
                    t1 = time.time()
                    server = _server_time(r.headers)
                if server is not None:
                    # Server time is truncated to the second: its middle is half a second on.
                    skew = (t0 + t1) / 2 - (server + 0.5)
                if r.status == 401 and p.H_SERVER_TIME in r.headers and attempt == 0:
                    # Our clock is off by more than the signing window: sign with the cloud's
                    # time (as the sync client does) so the identity is still tested; the clock
                    # check reports the skew.
                    offset = float(r.headers[p.H_SERVER_TIME]) - time.time()
                    continue
                break
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        return Probe(
            Outcome("fail", f"cloud unreachable: {ident.cloud}: {_reason(e)}", NET_HINT), None
        )
    rtt = f"{(t1 - t0) * 1000:.0f} ms"
    return Probe(_verdict(config, ident, r.status, text, rtt), skew)


def _verdict(config: CoreConfig, ident: Identity, status: int, text: str, rtt: str) -> Outcome:
    err = _error_text(text)
    reprovision = provision_hint(config).replace("provision ", "provision --force ", 1)
    if status == 200:
        return Outcome("pass", f"{ident.cloud}: authenticated as {ident.box_id} ({rtt})")
    if status == 403 and "revoked" in err:
        return Outcome(
            "fail",
            f"{ident.cloud}: box {ident.box_id} is revoked by the cloud",
            f"ask ops for a new claim code, then {reprovision}",
        )
    if status == 401:
        return Outcome(
            "fail",
            f"{ident.cloud}: the cloud refused this box's identity ({err})",
            "the secret does not match the cloud's (an old backup? another box's file?): "
            f"get a new claim code, then {reprovision}",
        )
    if status >= 500:
        return Outcome("fail", f"{ident.cloud}: cloud error HTTP {status} ({err})", NET_HINT)
    return Outcome(
        "fail",
        f"{ident.cloud}: HTTP {status} ({err}) — is this the Qilu cloud URL?",
        reprovision,
    )


def clock_outcome(config: CoreConfig, skew: float | None) -> Outcome:
    if skew is None:
        return Outcome("skip", "no time from the cloud (see the cloud check)")
    ic = config.installer
    detail = (
        f"box clock is {skew:+.1f} s against the cloud "
        f"(warn > {ic.warn_clock_skew_s:g} s, fail > {ic.max_clock_skew_s:g} s)"
    )
    hint = "enable NTP: `timedatectl set-ntp true`; check `timedatectl timesync-status`"
    if abs(skew) > ic.max_clock_skew_s:
        return Outcome("fail", detail, hint)
    if abs(skew) > ic.warn_clock_skew_s:
        return Outcome("warn", detail, hint)
    return Outcome("pass", detail)


async def probe_relay(config: CoreConfig, ident: Identity, timeout_s: float = 8.0) -> Outcome:
    """Residents away from home: does the cloud's away link reach this box's pages? Asks the
    cloud as a resident would (no signature), so it tests the running daemon's relay socket
    without opening a second one (which would replace the daemon's)."""
    away = away_url(ident.cloud, ident.community_id)
    ctx = ssl_context(config.sync.tls_verify, config.sync.ca_file)
    try:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ctx),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as s:
            async with s.get(away, allow_redirects=False) as r:
                entry = r.status
            async with s.get(
                URL(ident.cloud).with_path("/r/login"),
                headers={"Cookie": f"qilu_box={ident.box_id}"},
                allow_redirects=False,
            ) as r:
                page = r.status
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        return Outcome("fail", f"cloud unreachable: {ident.cloud}: {_reason(e)}", NET_HINT)
    if entry == 404 and page == 404:
        return Outcome(
            "warn", f"{ident.cloud} does not relay resident pages (an older cloud version?)",
            "residents use the portal on the community Wi-Fi only until the cloud is updated",
        )  # fmt: skip
    if page == 503:
        return Outcome(
            "warn",
            f"{away} answers, but this box has no relay socket open to the cloud",
            "is the daemon running (`systemctl status qilu-edge`)? Its status shows "
            "services.portal_relay.last_error; a proxy must allow WebSockets to the cloud",
        )
    if page == 200:
        return Outcome("pass", f"residents away from home reach this box at {away}")
    return Outcome("warn", f"{away}: unexpected HTTP {entry}/{page} from the relay")


def _server_time(headers: Any) -> float | None:
    if p.H_SERVER_TIME in headers:
        try:
            return float(headers[p.H_SERVER_TIME])
        except ValueError:
            pass
    date = headers.get("Date")
    if date:
        try:
            return parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            return None
    return None


def _error_text(text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return text[:120].strip() or "no body"
    if isinstance(data, dict) and "error" in data:
        return str(data["error"])
    return text[:120]


def _reason(e: BaseException) -> str:
    if isinstance(e, TimeoutError | asyncio.TimeoutError):
        return "timed out"
    return str(e) or type(e).__name__
