"""zeroconf advertise (the daemon) and browse (`qilu-edge discover`, another process) on
127.0.0.1 only."""

from __future__ import annotations

import asyncio
import json
import sys

from common.version import __version__
from tests.conftest import api_url

PINNED = '\n[installer]\nadvertise = true\nadvertise_interfaces = ["127.0.0.1"]\n'


async def test_discover_lists_the_advertising_box(make_config, run_box) -> None:
    box = await run_box(make_config(extra=PINNED))
    port = box.service("api").port
    advert = box.service("advertise")
    for _ in range(100):  # registration probes the network for ~1.5 s
        if advert.status()["advertising"]:
            break
        await asyncio.sleep(0.1)
    assert advert.status()["advertising"], advert.status()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from edge.cli import main; main()",
        "discover", "--interface", "127.0.0.1", "--timeout", "2", "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    boxes = json.loads(out)
    # This box by its port: loopback multicast is shared with the other test worker, where
    # another "box-test" may be advertising (two fresh-clone CI runs found one).
    mine = [b for b in boxes if b["port"] == port]
    assert len(mine) == 1, boxes
    b = mine[0]
    assert b["box_id"] == "box-test" and b["community"] == "test-community"
    assert b["version"] == __version__
    assert b["port"] == port and "127.0.0.1" in b["addresses"]
    assert b["url"] == api_url(box)


async def test_stopped_box_is_no_longer_found(make_config, run_box) -> None:
    from edge.installer.discovery import discover

    box = await run_box(make_config(extra=PINNED))
    port = box.service("api").port
    advert = box.service("advertise")
    for _ in range(100):
        if advert.status()["advertising"]:
            break
        await asyncio.sleep(0.1)
    assert [b for b in await discover(1.5, ["127.0.0.1"]) if b.port == port]
    await advert.stop()  # goodbye packets
    boxes = await discover(1.5, ["127.0.0.1"])
    # This box by its port: loopback multicast is shared with the other test worker, where
    # another "box-test" may be advertising (a fresh-clone CI run found "box-test-2").
    assert not [b for b in boxes if b.port == port]


async def test_advertising_is_off_by_default(make_config, run_box) -> None:
    box = await run_box(make_config())
    await asyncio.sleep(0.2)
    assert box.service("advertise").status()["advertising"] is None


async def test_a_box_whose_address_changes_is_announced_at_its_new_one(
    make_config, run_box, monkeypatch
) -> None:
    """A box that started before DHCP gave it an address announced 127.0.0.1 (the fallback)
    until it was restarted: the installer's laptop found it at an address it cannot reach.
    The address source is injected (a network namespace would be needed to change lo's);
    the announcement and the browse are the real zeroconf on 127.0.0.1."""
    from edge.installer import discovery
    from edge.installer.discovery import Advertiser, discover

    addresses = ["127.0.0.1"]  # what getifaddrs gives before the lease
    monkeypatch.setattr(discovery, "_local_ipv4", lambda ifaces: list(addresses))
    monkeypatch.setattr(Advertiser, "readdress_s", 0.3, raising=False)
    box = await run_box(make_config(extra=PINNED))
    advert = box.service("advertise")
    for _ in range(100):
        if advert.status()["advertising"]:
            break
        await asyncio.sleep(0.1)
    mine = [b for b in await discover(1.5, ["127.0.0.1"]) if b.box_id == "box-test"]
    assert mine and mine[0].addresses == ("127.0.0.1",)

    addresses[:] = ["127.0.0.7"]  # the DHCP lease arrived
    for _ in range(5):
        await asyncio.sleep(0.5)
        mine = [b for b in await discover(1.5, ["127.0.0.1"]) if b.box_id == "box-test"]
        if mine and mine[0].addresses == ("127.0.0.7",):
            break
    assert mine and mine[0].addresses == ("127.0.0.7",), mine
