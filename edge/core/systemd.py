"""systemd ``Type=notify`` readiness and watchdog pings (sd_notify protocol, no dependency)."""

from __future__ import annotations

import os
import socket


def notify(message: str) -> bool:
    """Send e.g. ``READY=1``; returns False when not running under systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(address)
        sock.sendall(message.encode())
    return True


def watchdog_interval_s() -> float | None:
    """Half the watchdog period systemd asked for, or None if there is no watchdog."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and int(pid) != os.getpid()):
        return None
    return int(usec) / 2_000_000
