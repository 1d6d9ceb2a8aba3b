"""`qilu-edge modbus scan` against a real pymodbus server answering for units 1 and 5."""

from __future__ import annotations

import asyncio
import sys

from edge.features import parse_config
from edge.installer.modbus_scan import ScanError, scan
from tests.conftest import free_port
from tests.edge.installer.modbus_peer import modbus_server


async def test_scan_finds_exactly_the_answering_units() -> None:
    async with modbus_server((1, 5)) as (port, _):
        found = await scan(range(1, 9), host="127.0.0.1", port=port, per_unit_s=0.2)
    assert [u.unit for u in found] == [1, 5]
    assert all(u.coils == 8 for u in found)


async def test_scan_of_a_dead_bus_is_a_clear_error() -> None:
    try:
        await scan(range(1, 3), host="127.0.0.1", port=free_port(), per_unit_s=0.2)
    except ScanError as e:
        assert "cannot open Modbus bus" in str(e)
    else:
        raise AssertionError("scan of a closed port did not fail")


async def test_cli_prints_snippets_that_are_valid_config(tmp_path) -> None:
    async with modbus_server((3,)) as (port, _):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from edge.cli import main; main()",
            "modbus", "scan", "--host", "127.0.0.1", "--port", str(port),
            "--units", "1-4", "--timeout", "0.2",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    text, log = out.decode(), err.decode()
    # progress on stderr (unit N/total, found so far), no pymodbus error dumps
    assert "unit 4/4 · found 1 so far" in log and "found unit 3: answers" in log, log
    assert "Traceback" not in log and "ERROR" not in log and "pymodbus" not in log, log
    assert "1 unit(s) answered" in text and "unit = 3" in text
    # The printed block pastes straight into a config that the daemon accepts.
    cfg = parse_config(text, source=tmp_path / "edge.toml")
    (door,) = cfg.doors
    assert door.id == "door-u3" and door.type == "modbus"
    assert door.options.unit == 3 and door.options.port == port
