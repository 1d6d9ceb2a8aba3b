"""LAN discovery of boxes with zeroconf (mDNS/DNS-SD): ``_qilu-edge._tcp``.

The daemon advertises itself (service ``advertise``) with community, version and box id in the
TXT record, so an installer's laptop finds every box on the LAN with ``qilu-edge discover``
without knowing its address.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from common.version import __version__
from edge.core.box import Box
from edge.core.http import API
from edge.core.service import Service

if TYPE_CHECKING:  # zeroconf (~3 MB RSS) loads only where a box advertises or browses
    from zeroconf import ServiceStateChange, Zeroconf
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

log = logging.getLogger(__name__)
SERVICE_TYPE = "_qilu-edge._tcp.local."


@dataclass(frozen=True)
class FoundBox:
    box_id: str
    community: str
    version: str
    name: str
    addresses: tuple[str, ...]
    port: int
    service: str  # the full DNS-SD instance name

    def url(self) -> str:
        host = self.addresses[0] if self.addresses else "?"
        return f"http://{host}:{self.port}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"url": self.url()}


def _interfaces(interfaces: tuple[str, ...] | list[str] | None) -> Any:
    from zeroconf import InterfaceChoice

    return list(interfaces) if interfaces else InterfaceChoice.All


def service_info(
    *, box_id: str, community: str, name: str, port: int, addresses: list[str]
) -> AsyncServiceInfo:
    from zeroconf.asyncio import AsyncServiceInfo

    return AsyncServiceInfo(
        SERVICE_TYPE,
        f"{box_id}.{SERVICE_TYPE}",
        port=port,
        addresses=[socket.inet_aton(a) for a in addresses],
        # TXT values are bytes on the wire; UTF-8 keeps Chinese names readable.
        properties={
            "box_id": box_id,
            "community": community,
            "version": __version__,
            "name": name,
        },
        server=f"qilu-{box_id}.local.",
    )


def _local_ipv4(interfaces: tuple[str, ...]) -> list[str]:
    """The addresses to announce: the pinned interfaces, else this host's IPv4 addresses."""
    if interfaces:
        return list(interfaces)
    import ifaddr  # zeroconf's own dependency

    found = [
        ip.ip
        for adapter in ifaddr.get_adapters()
        for ip in adapter.ips
        if isinstance(ip.ip, str) and not ip.ip.startswith("127.")
    ]
    return found or ["127.0.0.1"]


class Advertiser(Service):
    """Announces this box on the LAN while the daemon runs; goodbye packets on stop."""

    name = "advertise"
    # How often the announced addresses are compared with the box's own (cheap: one
    # getifaddrs). A box started before DHCP gave it an address announced 127.0.0.1 until
    # it was restarted; a changed set is re-announced (zeroconf's update_service).
    readdress_s = 30.0

    def __init__(self, box: Box) -> None:
        super().__init__(box)
        self.zc: AsyncZeroconf | None = None
        self.info: AsyncServiceInfo | None = None
        self.error: str | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        if not self.box.config.installer.advertise:
            return
        # Registering probes the network for ~1.5 s; do it in the background so start-up
        # (and the systemd READY) does not wait for it.
        self._task = asyncio.create_task(self._register())

    def _port(self) -> int:
        api = self.box.config.api
        if api.port:
            return api.port
        try:  # port 0 (tests): the API picks its port when it starts, after us
            return self.box.get(API).port or 0
        except KeyError:
            return 0

    async def _register(self) -> None:
        from zeroconf import IPVersion
        from zeroconf.asyncio import AsyncZeroconf

        cfg = self.box.config
        ifaces = cfg.installer.advertise_interfaces
        try:
            for _ in range(100):  # the API starts after this service; wait for its port
                if self._port():
                    break
                await asyncio.sleep(0.05)
            self.zc = AsyncZeroconf(interfaces=_interfaces(ifaces), ip_version=IPVersion.V4Only)
            self.info = service_info(
                box_id=cfg.box.id,
                community=cfg.box.community,
                name=cfg.box.name,
                port=self._port(),
                addresses=await asyncio.to_thread(_local_ipv4, ifaces),
            )
            await self.zc.async_register_service(self.info, allow_name_change=True)
            log.info("advertising %s on the LAN", self.info.name)
        except Exception as e:  # no network must not stop the box
            self.error = str(e)
            log.warning("zeroconf advertising failed: %s", e)
            return
        await self._follow_addresses(ifaces)

    async def _follow_addresses(self, ifaces: tuple[str, ...]) -> None:
        """Re-announce when the box's addresses change (DHCP came late, a new lease)."""
        while True:
            await asyncio.sleep(self.readdress_s)
            assert self.zc is not None and self.info is not None
            try:
                now = await asyncio.to_thread(_local_ipv4, ifaces)
                if sorted(now) == sorted(self.info.parsed_addresses()):
                    continue
                old, info = self.info, service_info(
                    box_id=self.box.config.box.id,
                    community=self.box.config.box.community,
                    name=self.box.config.box.name,
                    port=self.info.port or self._port(),
                    addresses=now,
                )
                info.name = old.name  # the name registration settled on (a rename if taken)
                await self.zc.async_update_service(info)
                self.info = info
                self.error = None
                log.info("zeroconf: addresses changed %s -> %s; re-announced",
                         old.parsed_addresses(), now)  # fmt: skip
            except Exception as e:  # keep the old announcement, try again next time
                self.error = str(e)
                log.warning("zeroconf re-announce failed: %s", e)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.zc:
            try:
                if self.info:
                    await asyncio.wait_for(self.zc.async_unregister_service(self.info), 1.5)
            except (TimeoutError, Exception) as e:
                log.debug("zeroconf unregister: %s", e)
            await self.zc.async_close()

    def status(self) -> dict[str, Any]:
        return {
            "advertising": self.info.name if self.info and self.zc else None,
            "error": self.error,
        }


async def discover(
    seconds: float = 3.0, interfaces: tuple[str, ...] | list[str] | None = None
) -> list[FoundBox]:
    """Browse for boxes for ``seconds`` and return each one resolved."""
    from zeroconf import IPVersion, ServiceStateChange
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

    azc = AsyncZeroconf(interfaces=_interfaces(interfaces), ip_version=IPVersion.V4Only)
    names: set[str] = set()

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is not ServiceStateChange.Removed:
            names.add(name)

    browser = AsyncServiceBrowser(azc.zeroconf, [SERVICE_TYPE], handlers=[on_change])
    try:
        await asyncio.sleep(seconds)
        infos = [AsyncServiceInfo(SERVICE_TYPE, n) for n in sorted(names)]
        await asyncio.gather(*(i.async_request(azc.zeroconf, 1500) for i in infos))
    finally:
        await browser.async_cancel()
        await azc.async_close()
    boxes = []
    for info in infos:
        props = {
            k.decode(): (v or b"").decode("utf-8", "replace")
            for k, v in (info.properties or {}).items()
        }
        boxes.append(
            FoundBox(
                box_id=props.get("box_id", ""),
                community=props.get("community", ""),
                version=props.get("version", ""),
                name=props.get("name", ""),
                addresses=tuple(info.parsed_addresses(IPVersion.V4Only)),
                port=info.port or 0,
                service=info.name,
            )
        )
    return boxes
