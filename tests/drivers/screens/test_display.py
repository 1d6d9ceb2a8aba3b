"""Display drivers: the daily power/brightness schedule, and the RS-232 driver against a fake
LG-protocol display on the far end of a socat pty pair."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from datetime import time as tod
from pathlib import Path

import pytest
import serial

from drivers.screens.base import DisplayOptions, display_target
from drivers.screens.rs232 import DisplayError, Rs232Display, Rs232Options
from edge.core.config import ScreenConfig
from tests.drivers.doors.relay_peers import SocatPair


def test_power_and_brightness_schedule():
    o = DisplayOptions(
        power_on_at=tod(6, 30), power_off_at=tod(23, 0), brightness={"07:00": 60, "18:00": 100}
    )
    assert display_target(o, tod(6, 0)) == (False, 100)  # before 07:00: yesterday's last mark
    assert display_target(o, tod(6, 30)) == (True, 100)
    assert display_target(o, tod(12, 0)) == (True, 60)
    assert display_target(o, tod(23, 0)) == (False, 100)
    night = DisplayOptions(power_on_at=tod(18), power_off_at=tod(2))  # on over midnight
    assert display_target(night, tod(1))[0] and not display_target(night, tod(3))[0]
    assert display_target(DisplayOptions(), tod(3)) == (True, None)
    with pytest.raises(ValueError, match="brightness"):
        DisplayOptions(brightness={"25:00": 10})
    with pytest.raises(ValueError, match=r"0\.\.100"):
        DisplayOptions(brightness={"07:00": 150})


class FakeLgDisplay(threading.Thread):
    """Answers ka/kh like an LG commercial display; ``mute`` makes it stop answering.
    ``set_id``: answer only that id (and 0), as one display of a daisy chain; ``delay_s``:
    answer that late (a slow controller)."""

    def __init__(self, port: str, set_id: int | None = None, delay_s: float = 0.0) -> None:
        super().__init__(daemon=True)
        self.ser = serial.Serial(port, 9600, timeout=0.05)
        self.power, self.brightness = 0, 50
        self.mute = False
        self.set_id, self.delay_s = set_id, delay_s
        self.running = True
        self.log: list[str] = []

    def run(self) -> None:
        buf = b""
        while self.running:
            buf += self.ser.read(64)
            while b"\r" in buf:
                line, buf = buf.split(b"\r", 1)
                m = re.fullmatch(rb"k([ah]) ([0-9a-f]{2}) ([0-9a-f]{2})", line.strip())
                if not m or self.mute:
                    continue
                cmd, sid, data = m.group(1).decode(), m.group(2).decode(), int(m.group(3), 16)
                if self.set_id is not None and int(sid, 16) not in (0, self.set_id):
                    continue
                self.log.append(line.decode())
                time.sleep(self.delay_s)
                attr = "power" if cmd == "a" else "brightness"
                if data != 0xFF:
                    if cmd == "h" and data > 100:
                        self.ser.write(f"{cmd} {sid} NG{data:02x}x".encode())
                        continue
                    setattr(self, attr, data)
                self.ser.write(f"{cmd} {sid} OK{getattr(self, attr):02x}x".encode())


@pytest.fixture
def pty_pair(tmp_path: Path):
    if shutil.which("socat") is None:
        pytest.fail("socat is not installed (scripts/setup.sh test installs it)")
    a, b = tmp_path / "box", tmp_path / "display"
    proc = subprocess.Popen(
        ["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 5
    while not (a.exists() and b.exists()) and time.monotonic() < deadline:
        time.sleep(0.02)
    yield str(a), str(b)
    proc.terminate()
    proc.wait(5)


def make_driver(port: str, health: list, set_id: int = 1, sid: str = "scr-1") -> Rs232Display:
    opts = Rs232Options(port=port, timeout_s=0.3, set_id=set_id)
    cfg = ScreenConfig(id=sid, type="rs232", options=opts)

    async def on_health(state: str, reason: str) -> None:
        health.append((state, reason))

    return Rs232Display(cfg, on_health=on_health)


async def test_rs232_power_brightness_and_health(pty_pair):
    box_end, display_end = pty_pair
    display = FakeLgDisplay(display_end)
    display.start()
    health: list = []
    drv = make_driver(box_end, health)
    try:
        await drv.start()
        assert health[-1][0] == "online"
        await drv.set_power(True)
        await drv.set_brightness(80)
        st = await drv.read_status()
        assert (st.power, st.brightness) == (True, 80)
        assert (display.power, display.brightness) == (1, 80)
        assert "ka 01 01" in display.log and "kh 01 50" in display.log  # 80 % = 0x50
        display.mute = True
        with pytest.raises(Exception, match="no answer"):
            await drv.read_status()
    finally:
        await drv.stop()
        display.running = False
        display.join(2)
        display.ser.close()


async def test_rs232_missing_port_is_offline_not_a_crash(tmp_path):
    health: list = []
    drv = make_driver(str(tmp_path / "no-such-tty"), health)
    await drv.start()
    assert health[-1][0] == "offline" and "no-such-tty" in health[-1][1]


async def test_rs232_display_comes_back_after_its_usb_adapter_is_replugged(tmp_path):
    """The display's USB-RS232 adapter drops off the bus and comes back under the same name
    (a loose plug, a USB reset). The driver kept the dead handle (pyserial still calls it
    open), so every later command failed on it: the display stayed 'not answering' and its
    power/brightness schedule was never applied again until the box restarted."""
    pair = SocatPair(tmp_path)
    display = FakeLgDisplay(pair.b)
    display.start()
    health: list = []
    drv = make_driver(pair.a, health)
    replugged = again = None
    try:
        await drv.start()
        assert health[-1][0] == "online"
        display.running = False
        display.join(2)
        display.ser.close()
        pair.close()  # unplugged: the pty is gone
        with pytest.raises(Exception):  # noqa: B017 - whatever the dead port raises
            await drv.read_status()
        replugged = SocatPair(tmp_path)  # plugged in again, under the same name
        again = FakeLgDisplay(replugged.b)
        again.start()
        errors = []
        for _ in range(3):  # the display service retries every display_check_s
            try:
                await drv.set_power(True)
                break
            except Exception as e:
                errors.append(repr(e))
        else:
            raise AssertionError(f"never reopened the port: {errors}")
        assert again.power == 1
    finally:
        await drv.stop()
        for d in (display, again):
            if d is not None:
                d.running = False
                d.join(2)
                d.ser.close()
        pair.close()
        if replugged is not None:
            replugged.close()


async def test_rs232_daisy_chain_does_not_take_another_displays_answer(pty_pair):
    """Two displays on one RS-232 daisy chain (set ids 1 and 2, the LG way). Display 1 is
    slow and answers after the box stopped waiting; display 2 is dead. The driver for
    display 2 took display 1's late answer (``a 01 OK01x``) as its own: display 2 read
    'on' and healthy while it was dark. A reply counts only from the display asked."""
    box_end, display_end = pty_pair
    slow = FakeLgDisplay(display_end, set_id=1, delay_s=0.4)
    slow.power = 1
    slow.start()
    drv1 = make_driver(box_end, [], set_id=1, sid="scr-1")
    drv2 = make_driver(box_end, [], set_id=2, sid="scr-2")  # its display is dead
    try:
        with pytest.raises(DisplayError, match="no answer"):
            await drv1._cmd("a", 0xFF)  # display 1 answers after 0.4 s: too late
        with pytest.raises(DisplayError, match=r"no answer|refused"):
            got = await drv2._cmd("a", 0xFF)
            raise AssertionError(f"display 2 read {got:02x}: display 1's answer")
    finally:
        await drv1.stop()
        await drv2.stop()
        slow.running = False
        slow.join(2)
        slow.ser.close()
