"""Devices: one driver instance per configured door, camera and screen (drivers/), their
health and state. Other capabilities reach them through ``box.get(DEVICES)``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.core.feature import Feature, ServiceKey, ServiceSpec

if TYPE_CHECKING:
    from edge.devices.service import DeviceManager

DEVICES: ServiceKey[DeviceManager] = ServiceKey("devices")

FEATURE = Feature(
    name="devices",
    services=(ServiceSpec(DEVICES, "edge.devices.service:DeviceManager"),),
)
