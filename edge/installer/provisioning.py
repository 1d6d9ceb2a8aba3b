"""Provisioning from the installer page: the same steps as ``qilu-edge provision``.

``edge.sync.client.provision`` exchanges the claim code for an identity and
``edge.sync.identity.save`` writes it (mode 0600, atomically) where the sync service reads it;
here they gain input checks and errors that name the wizard field to fix.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp
from yarl import URL

from edge.core.config import CoreConfig
from edge.sync.client import CloudError, cloud_ssl, provision
from edge.sync.identity import Identity, identity_path, load, save


@dataclass
class ProvisionError(Exception):
    status: int  # HTTP status for the wizard's answer
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def check_url(cloud_url: str) -> str:
    url = cloud_url.strip()
    try:
        u = URL(url)
    except ValueError as e:
        raise ProvisionError(400, "cloud_url", f"not a URL ({e})") from e
    if u.scheme not in ("http", "https") or not u.host:
        raise ProvisionError(400, "cloud_url", "expected http(s)://host[:port]")
    return url.rstrip("/")


async def provision_box(
    config: CoreConfig, cloud_url: str, claim_code: str, *, name: str = "", force: bool = False
) -> Identity:
    """Exchange the claim code and save the identity; raises ProvisionError naming a field."""
    url = check_url(cloud_url or "")
    code = (claim_code or "").strip()
    if not code:
        raise ProvisionError(400, "claim_code", "required (from the ops console)")
    path = identity_path(config)
    current = load(path)
    if current is not None and not force:
        raise ProvisionError(
            409,
            "force",
            f"already provisioned as {current.box_id} at {current.cloud}; "
            "tick 'replace' to provision again",
        )
    ctx = cloud_ssl(config)
    try:
        ident = await provision(url, code, name or config.box.name, ssl_ctx=ctx, timeout_s=15)
    except CloudError as e:
        if e.status == 409:
            detail = str(e).split(":", 1)[-1].strip()
            raise ProvisionError(
                409, "claim_code", f"refused by the cloud: unknown, used or expired ({detail})"
            ) from e
        if e.status in (400, 422):
            raise ProvisionError(400, "claim_code", f"refused by the cloud ({e})") from e
        raise ProvisionError(502, "cloud_url", f"{url}: {e}") from e
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        raise ProvisionError(
            502, "cloud_url", f"cloud unreachable: {url}: {e or 'timed out'}"
        ) from e
    except (ValueError, KeyError) as e:  # an answer that is not the cloud's JSON
        raise ProvisionError(502, "cloud_url", f"{url} is not a Qilu cloud ({e})") from e
    await asyncio.to_thread(save, path, ident)  # fsync: off the event loop
    return ident
