"""The ``[installer]`` config section of this capability (validated once at start-up)."""

from __future__ import annotations

from pydantic import Field

from edge.core.config import Section


class InstallerConfig(Section):
    # Announce the box on the LAN (zeroconf _qilu-edge._tcp). Off unless asked (install.sh
    # turns it on) so dev and test boxes never multicast on a real network.
    advertise: bool = False
    advertise_interfaces: tuple[str, ...] = ()  # IPv4 addresses to announce on; empty = all
    web: bool = True  # the installer page (wizard + doctor) at /installer/
    warn_free_disk_mb: int = Field(1024, ge=0)  # doctor warns below this much free disk
    fail_free_disk_mb: int = Field(200, ge=0)  # and fails below this
    warn_clock_skew_s: float = Field(2.0, gt=0)  # doctor warns beyond this skew to the cloud
    max_clock_skew_s: float = Field(5.0, gt=0)  # doctor fails beyond this skew to the cloud
    device_timeout_s: float = Field(8.0, gt=0)  # doctor's budget per device check
