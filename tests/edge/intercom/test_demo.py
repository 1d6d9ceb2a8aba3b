"""The intercom demo step through the real demo box: what it prints is what happened."""

from __future__ import annotations

import asyncio
from pathlib import Path

import cv2

import edge.demo
from edge.intercom.demo import step_intercom


async def test_demo_step_intercom(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(edge.demo, "steps", lambda: [step_intercom])
    await edge.demo.run_demo(tmp_path, seconds=0, mqtt_port=1, api_port=0)
    out = capsys.readouterr().out
    assert "directory at door-face: ['2-1-301']" in out, out
    assert "the phone rings: [('2号楼刷脸门', 'ringing')]" in out, out
    assert "the door screen says: opened" in out, out
    assert "relay pulses: 1; intercom_call opened, answered_by demo-r301, access event ae-" in out
    pic = cv2.imread(str(tmp_path / "intercom-door.jpg"))
    assert pic is not None and pic.shape[0] > 100  # the demo door camera's picture


def test_the_calls_command_lists_the_demo_call(tmp_path: Path, monkeypatch) -> None:
    from click.testing import CliRunner

    from edge.cli import main

    monkeypatch.setattr(edge.demo, "steps", lambda: [step_intercom])
    asyncio.run(edge.demo.run_demo(tmp_path, seconds=0, mqtt_port=1, api_port=0))
    res = CliRunner().invoke(main, ["intercom", "calls", "-c", str(tmp_path / "edge.toml")])
    assert res.exit_code == 0, res.output
    assert "door-face  2-1-301    opened    screen  demo-r301" in res.output, res.output
    res = CliRunner().invoke(main, ["intercom", "calls", "--flat", "9-9-9", "-c",
                                    str(tmp_path / "edge.toml")])
    assert res.output.strip() == "no calls"
