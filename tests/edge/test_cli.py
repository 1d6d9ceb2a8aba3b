"""The qilu-edge command line: init, db, events tail, standard schema, demo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge.cli import main
from edge.core.standard import AccessEvent
from edge.core.store import Store
from edge.features import load_config


def test_help_lists_the_commands() -> None:
    out = CliRunner().invoke(main, ["--help"]).output
    for cmd in ("run", "init", "db", "events", "demo", "standard"):
        assert f"  {cmd} " in out


def test_init_then_db_commands(tmp_path: Path) -> None:
    cfg = tmp_path / "etc" / "edge.toml"
    r = CliRunner().invoke(
        main, ["init", "--config", str(cfg), "--community", "lixia-01", "--box-id", "box-7"]
    )
    assert r.exit_code == 0, r.output
    config = load_config(cfg)
    assert (config.box.community, config.box.id) == ("lixia-01", "box-7")
    assert config.db_path.exists()
    # The staff token is printed once; the file keeps only its SHA-256 (issue 13 hardening).
    tok = config.api.tokens[0]
    printed = r.stderr.split("staff token (shown once; the config keeps only its SHA-256): ")[1]
    printed = printed.split()[0]
    assert tok.token is None and tok.matches(printed.encode()) and len(printed) >= 32
    assert printed not in cfg.read_text() and "change-me" not in cfg.read_text()
    assert printed not in r.stdout
    assert cfg.stat().st_mode & 0o077 == 0  # owner only
    again = CliRunner().invoke(main, ["init", "--config", str(cfg)])
    assert again.exit_code != 0 and "exists" in again.output

    assert CliRunner().invoke(main, ["db", "migrate", "-c", str(cfg)]).exit_code == 0
    check = CliRunner().invoke(main, ["db", "check", "-c", str(cfg)])
    assert check.exit_code == 0 and check.output.strip().endswith(": ok")
    backup = CliRunner().invoke(main, ["db", "backup", "-c", str(cfg)])
    assert backup.exit_code == 0 and Path(backup.output.strip()).exists()

    config.db_path.write_bytes(b"broken" * 100)
    assert CliRunner().invoke(main, ["db", "check", "-c", str(cfg)]).exit_code == 1


def test_events_tail_prints_stored_events(tmp_path: Path) -> None:
    cfg = tmp_path / "edge.toml"
    CliRunner().invoke(main, ["init", "--config", str(cfg)])
    config = load_config(cfg)
    store = Store(config.db_path)
    for i in range(3):
        store.record(AccessEvent(id=f"a{i}", door_id="door-1", method="pin", decision="denied"))
    store.close()
    out = (
        CliRunner().invoke(main, ["events", "tail", "-c", str(cfg), "-n", "2"]).output.splitlines()
    )
    assert len(out) == 2 and "qilu/demo-community/door/door-1/access" in out[0] and "a2" in out[1]
    js = CliRunner().invoke(main, ["events", "tail", "-c", str(cfg), "--json"]).output.splitlines()
    assert [json.loads(line)["id"] for line in js] == ["a0", "a1", "a2"]


def test_bad_config_is_a_clear_cli_error(tmp_path: Path) -> None:
    cfg = tmp_path / "edge.toml"
    cfg.write_text("[mqtt]\nport = -1\n")
    r = CliRunner().invoke(main, ["check-config", "-c", str(cfg)])
    assert r.exit_code != 0 and "mqtt.port" in r.output and ":2:" in r.output


def test_standard_schema_is_json() -> None:
    out = CliRunner().invoke(main, ["standard", "schema"]).output
    assert "qilu.v1.access_event" in json.loads(out)


@pytest.mark.timeout(180)
def test_demo_runs_end_to_end(tmp_path: Path, mosquitto) -> None:
    cmd = [sys.executable, "-m", "edge", "demo", "--dir", str(tmp_path / "demo"),
           "--seconds", "0.5", "--mqtt-port", str(mosquitto.port), "--port", "0"]  # fmt: skip
    # Unbuffered, so a hang shows how far the demo got.
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        output, _ = proc.communicate(timeout=150)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        pytest.fail(f"demo did not finish in 150 s; it printed:\n{output[-6000:]}")
    assert proc.returncode == 0, output
    assert '"detail":"pong"' in output
    assert "broker connected: True" in output
    steps = ("Face doors", "Cloud sync", "Resident portal", "Commissioning", "publicity screen")
    for step in steps:
        assert step in output, step
    assert "logged in through the cloud (200); feed: " in output  # the portal relay
    assert "/screen/scr-east#key=" in output  # the demo screen has its device key
    assert "wrote 2 login card(s) for building 1" in output  # portal codes-sheet
