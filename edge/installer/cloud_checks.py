"""Doctor's cloud checks: box provisioned, cloud reachable (an authenticated request), clock.

One signed, read-only request (the download feed past its end, no long-poll) proves that the
network, the cloud and this box's identity all work. The clock skew comes from the same answer:
the cloud's ``Date`` header (or its server-time header when it refused our timestamp), compared
with the middle of our request. Both have one-second resolution, so the estimate is good to
about half a second plus half the round trip: fine for thresholds of seconds.
"""

from __future__ import annotations

import asyncio
import ipaddress
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
from edge.core.i18n import Msg
from edge.installer.config import InstallerConfig
from edge.installer.doctor_texts import TIMED_OUT, T
from edge.sync.client import cloud_ssl
from edge.sync.config import SyncConfig
from edge.sync.identity import Identity, identity_path, load

PROBE_PATH = "/api/v1/box/feed"


@dataclass
class Outcome:
    status: str  # pass / warn / fail / skip
    detail: Msg
    hint: Msg | None = None


@dataclass
class Probe:
    """What one authenticated request to the cloud found."""

    outcome: Outcome
    skew_s: float | None = None  # box clock minus cloud clock


def provision_hint(config: CoreConfig, force: bool = False) -> Msg:
    cfg = f"-c {config.source} " if config.source else ""
    return T("provisioned.hint", force="--force " if force else "", cfg=cfg)


def read_identity(config: CoreConfig) -> tuple[Identity | None, Outcome]:
    """The identity file and the verdict on it (present, parseable, mode 0600)."""
    path = identity_path(config)
    try:
        ident = load(path)
    except (ValueError, TypeError) as e:  # half-edited or foreign JSON
        return None, Outcome(
            "fail",
            T("provisioned.unreadable", path=path, error=e),
            provision_hint(config, force=True),
        )
    except PermissionError:
        return None, Outcome(
            "fail", T("provisioned.denied", path=path), T("provisioned.denied_hint")
        )
    if ident is None:
        return None, Outcome("fail", T("provisioned.missing", path=path), provision_hint(config))
    st, folder = path.stat(), path.parent.stat()
    if st.st_uid != folder.st_uid:  # e.g. written by root into the daemon user's folder
        who = {"owner": _user(st.st_uid), "daemon": _user(folder.st_uid), "path": path}
        return ident, Outcome("fail", T("provisioned.owner", **who),
                              T("provisioned.owner_hint", **who))  # fmt: skip
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        return ident, Outcome(
            "fail",
            T("provisioned.loose", path=path, mode=f"{mode:04o}"),
            T("provisioned.loose_hint", path=path),
        )
    if ident.area_path:
        return ident, Outcome(
            "pass",
            T(
                "provisioned.ok_area",
                box_id=ident.box_id,
                area=ident.area_path,
                cloud=ident.cloud,
                path=path,
            ),
        )
    return ident, Outcome(
        "pass", T("provisioned.ok", box_id=ident.box_id, cloud=ident.cloud, path=path)
    )


async def probe_cloud(config: CoreConfig, ident: Identity, timeout_s: float = 8.0) -> Probe:
    """A signed GET of the feed past its end: proves reachability and the identity."""
    url = URL(ident.cloud).with_path(PROBE_PATH).with_query({"after": p.SEQ_MAX, "limit": 1})
    ctx = cloud_ssl(config)
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
                    subject = p.reply_subject(ident.box_id, url.raw_path_qs, headers[p.H_TS],
                                              headers[p.H_NONCE])  # fmt: skip
                    signed = p.check_message(
                        ident.secret, subject, await r.read(), headers[p.H_TS],
                        headers[p.H_NONCE], r.headers.get(p.H_REPLY_SIG, ""))
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
    except aiohttp.ClientConnectorCertificateError as e:
        # "Not yet valid" / "expired" is what a box clock days off sees of a good certificate:
        # the cloud's time, read without verification (nothing is sent but a plain GET),
        # says whether the clock is the problem.
        skew = await _unverified_skew(url, timeout_s)
        ic = config.section(InstallerConfig)
        if skew is not None and abs(skew) > ic.max_clock_skew_s:
            return Probe(Outcome("fail", T("cloud.cert_clock", cloud=ident.cloud,
                                           reason=_reason(e), skew=skew),
                                 T("cloud.cert_clock_hint")), skew)  # fmt: skip
        return Probe(_unreachable(ident, e), None)
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        return Probe(_unreachable(ident, e), None)
    rtt = (t1 - t0) * 1000
    if r.status == 200 and not signed:
        # The box refuses such feed answers (edge/sync/client.py UnsignedReply): no command
        # from this cloud would be applied.
        return Probe(Outcome("fail", T("cloud.unsigned", cloud=ident.cloud),
                             T("cloud.unsigned_hint")), skew)  # fmt: skip
    return Probe(_verdict(config, ident, r.status, text, rtt), skew)


async def _unverified_skew(url: URL, timeout_s: float) -> float | None:
    """Box clock minus the cloud's, from an unsigned GET that skips certificate checks."""
    try:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=False),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as s:
            t0 = time.time()
            async with s.get(url) as r:
                t1 = time.time()
                server = _server_time(r.headers)
    except (aiohttp.ClientError, TimeoutError, OSError):
        return None
    return None if server is None else (t0 + t1) / 2 - (server + 0.5)


def loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def transport_outcome(config: CoreConfig, ident: Identity | None) -> Outcome:
    """Commands from the cloud are signed (the feed), but the link also carries the box's
    uploads and the resident pages: plain http:// or an unverified certificate lets anyone on
    the path read them. Loopback (tests, a cloud on the box) is fine."""
    sync = config.section(SyncConfig)
    cloud = ident.cloud if ident else None
    local = loopback(URL(cloud).host) if cloud else False
    problems = []
    if cloud and URL(cloud).scheme == "http" and not local:
        problems.append(T("transport.http", cloud=cloud))
    if not sync.tls_verify and not local:
        problems.append(T("transport.no_verify"))
    if problems:
        return Outcome("warn", problems[0] if len(problems) == 1 else
                       T("transport.both", cloud=cloud), T("transport.hint"))  # fmt: skip
    if cloud is None:
        return Outcome("skip", T("cloud.not_provisioned"))
    return Outcome("pass", T("transport.ok", cloud=cloud))


def _verdict(config: CoreConfig, ident: Identity, status: int, text: str, rtt: float) -> Outcome:
    err = _error_text(text)
    reprovision = provision_hint(config, force=True)
    cloud = ident.cloud
    if status == 200:
        return Outcome("pass", T("cloud.ok", cloud=cloud, box_id=ident.box_id, rtt=rtt))
    if status == 403 and "revoked" in err:
        return Outcome(
            "fail",
            T("cloud.revoked", cloud=cloud, box_id=ident.box_id),
            T("cloud.revoked_hint", reprovision=reprovision),
        )
    if status == 401:
        return Outcome(
            "fail",
            T("cloud.refused", cloud=cloud, error=err),
            T("cloud.refused_hint", reprovision=reprovision),
        )
    if status >= 500:
        return Outcome(
            "fail", T("cloud.server_error", cloud=cloud, status=status, error=err),
            T("cloud.net_hint"),
        )  # fmt: skip
    return Outcome(
        "fail", T("cloud.unexpected", cloud=cloud, status=status, error=err), reprovision
    )


def clock_outcome(config: CoreConfig, skew: float | None) -> Outcome:
    if skew is None:
        return Outcome("skip", T("clock.no_time"))
    ic = config.section(InstallerConfig)
    detail = T("clock.skew", skew=skew, warn=ic.warn_clock_skew_s, fail=ic.max_clock_skew_s)
    hint = T("clock.hint")
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
    ctx = cloud_ssl(config)
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
        return _unreachable(ident, e)
    if entry == 404 and page == 404:
        return Outcome(
            "warn", T("relay.old_cloud", cloud=ident.cloud), T("relay.old_cloud_hint"),
        )  # fmt: skip
    if page == 503:
        return Outcome("warn", T("relay.no_socket", away=away), T("relay.no_socket_hint"))
    if page == 200:
        return Outcome("pass", T("relay.ok", away=away))
    return Outcome("warn", T("relay.unexpected", away=away, entry=entry, page=page))


def _user(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _unreachable(ident: Identity, e: BaseException) -> Outcome:
    return Outcome(
        "fail", T("cloud.unreachable", cloud=ident.cloud, reason=_reason(e)), T("cloud.net_hint")
    )


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


def _reason(e: BaseException) -> Any:
    if isinstance(e, TimeoutError | asyncio.TimeoutError):
        return TIMED_OUT
    return str(e) or type(e).__name__
