"""The narrow interface every door driver implements, and the pulse logic relay boards share.

A relay-board driver only says how to switch and read its relay (``_write_relay`` and
``_read_relay``); :class:`RelayDoor` does the rest the same way for every vendor: the relay is
forced closed at start-up, an unlock is a pulse whose end is guarded by a watchdog (a
cancelled or crashed pulse still closes, a failed close is retried until it reads back off),
and a second unlock during a pulse extends it instead of toggling the relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from drivers.base import Driver

STOP_CLOSE_TRIES = 3  # forced closes at stop before giving up


@dataclass(frozen=True)
class UnlockResult:
    ok: bool  # the pulse was sent (and, for unlock(), the relay closed again)
    changed: bool | None  # the relay read back as switched on; None: the board cannot tell
    detail: str = ""


class DoorOptions(BaseModel):
    """Keys every relay door has; a driver's Options subclass adds its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    pulse_ms: int = Field(3000, ge=50, le=30000)  # how long the relay stays energised
    # The watchdog retries a close that did not read back off this often.
    close_retry_ms: int = Field(250, ge=20, le=10000)


class DoorDriver(Driver):
    KIND = "door"

    @property
    def pulse_ms(self) -> int:
        return int(getattr(self.options, "pulse_ms", 3000))

    async def _reads_on(self) -> bool:
        """After a failed write: does the relay read back on? False if it cannot be read."""
        if not self.READBACK:
            return False
        try:
            return bool(await self._read_relay())
        except (OSError, TimeoutError, ConnectionError):
            return False

    async def unlock(self, pulse_ms: int) -> UnlockResult:
        """Energise the relay for ``pulse_ms`` then close it; report what was read back."""
        raise NotImplementedError

    async def open(self, pulse_ms: int | None = None) -> UnlockResult:
        """Energise now and return at once (the close happens in the background).

        The access engine uses this so the decision is logged while the door is still open.
        Drivers without a faster path run :meth:`unlock` as a task.
        """
        task = asyncio.create_task(self.unlock(pulse_ms or self.pulse_ms))
        self._bg = task  # keep a reference: un-referenced tasks can be collected
        return UnlockResult(ok=True, changed=None, detail="pulse started")

    async def is_open(self) -> bool | None:
        """Door-contact sensor: True open, False closed, None if the door has no sensor."""
        return None

    async def relay_state(self) -> bool | None:
        """The relay as read back from the device; None if it cannot be read."""
        return None


class RelayDoor(DoorDriver):
    """A door switched by one relay the driver can write and (maybe) read back."""

    READBACK = True  # False for boards that cannot report their relay

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._pulse_until = 0.0  # monotonic time the current pulse ends
        self._closer: asyncio.Task | None = None
        self._op = asyncio.Lock()  # one switch at a time per door
        self.pulses = 0

    # --- what a vendor driver provides ------------------------------------------------------

    async def _write_relay(self, on: bool) -> None:
        """Switch the relay; raise OSError/TimeoutError/ConnectionError when it fails."""
        raise NotImplementedError

    async def _read_relay(self) -> bool | None:
        """Read the relay back; None when the board has no read-back."""
        return None

    # --- shared behaviour -----------------------------------------------------------------

    async def relay_state(self) -> bool | None:
        try:
            return await self._read_relay()
        except (OSError, TimeoutError, ConnectionError):
            return None

    async def force_closed(self, *, quiet: bool = False) -> bool:
        """Start-up and shutdown: whatever happened before (a crash mid-pulse), close it.

        ``quiet``: a retry on a device already known to be offline logs at debug level only."""
        try:
            await self._write_relay(False)
            return True
        except (OSError, TimeoutError, ConnectionError) as e:
            (self.log.debug if quiet else self.log.warning)(
                "could not force the relay closed: %s", e
            )
            return False

    async def open(self, pulse_ms: int | None = None) -> UnlockResult:
        pulse_ms = pulse_ms or self.pulse_ms
        deadline = time.monotonic() + pulse_ms / 1000
        async with self._op:
            # Arm the watchdog before switching on: if this task is cancelled while the
            # write is on the wire, the relay may be on and must still be closed.
            # A second unlock during a pulse extends it; the relay is simply left on.
            self._pulse_until = max(self._pulse_until, deadline)
            if self._closer is None or self._closer.done():
                self._closer = asyncio.create_task(self._watchdog(), name=f"door-{self.id}-close")
            try:
                await self._write_relay(True)
            except (OSError, TimeoutError, ConnectionError) as e:
                # The request may have switched the relay and only the answer got lost (a
                # noisy line): if it reads back on, the door is open and is recorded so.
                if not await self._reads_on():
                    await self.set_health("offline", f"unlock failed: {e}")
                    return UnlockResult(ok=False, changed=None, detail=f"unlock failed: {e}")
                self.log.warning("relay switched but its answer was lost (%s)", e)
            self.pulses += 1
            changed: bool | None = None
            if self.READBACK:
                try:
                    changed = bool(await self._read_relay())
                except (OSError, TimeoutError, ConnectionError) as e:
                    return UnlockResult(ok=True, changed=None, detail=f"read-back failed: {e}")
        await self.set_health("online", "")
        return UnlockResult(ok=True, changed=changed)

    async def unlock(self, pulse_ms: int) -> UnlockResult:
        res = await self.open(pulse_ms)
        if not res.ok:
            return res
        closer = self._closer
        if closer is not None:
            closed = await asyncio.shield(closer)
            if not closed:
                return UnlockResult(ok=False, changed=res.changed, detail="relay did not close")
        return res

    async def _watchdog(self) -> bool:
        """Close the relay when the pulse ends; retry until it reads back off.

        It runs as its own task, so a cancelled caller (HTTP client gone, engine stopping)
        cannot leave the door open.
        """
        retry = getattr(self.options, "close_retry_ms", 250) / 1000
        attempts = 0
        while True:
            wait = self._pulse_until - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            async with self._op:
                if self._pulse_until > time.monotonic():
                    continue  # extended meanwhile
                try:
                    await self._write_relay(False)
                    state = await self._read_relay() if self.READBACK else False
                    if not state:
                        return True
                    err = "relay still reads on"
                except (OSError, TimeoutError, ConnectionError) as e:
                    err = str(e)
            attempts += 1
            if attempts == 1 or attempts % 20 == 0:
                self.log.error("door relay did not close (%s); retrying", err)
                await self.set_health("degraded", f"relay did not close: {err}")
            await asyncio.sleep(retry)
            # Back off: a dead board must not keep a shared bus busy with our retries.
            retry = min(retry * 2, 5.0)

    async def stop_pulses(self) -> None:
        """On stop: end any pulse now and close the relay (bounded by the caller)."""
        self._pulse_until = 0.0
        if self._closer is not None and not self._closer.done():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self._closer), 1.0)
            if not self._closer.done():
                self._closer.cancel()
        # The watchdog is gone now: a close frame lost on a noisy line would leave the door
        # unlocked while the box is down. Retry a few times (the caller bounds the stop).
        for _ in range(STOP_CLOSE_TRIES):
            if await self.force_closed():
                return
