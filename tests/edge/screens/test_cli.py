"""``qilu-edge screens ...`` against a running box (through its staff API)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

from click.testing import CliRunner

from edge.cli import main
from tests.conftest import STAFF_TOKEN, free_port

SCREEN = '[[screens]]\nid = "scr-1"\ntype = "sim"\ntags = ["outdoor"]\n'


async def test_cli_publishes_and_broadcasts(make_config, run_box, tmp_path):
    await run_box(make_config(api_port=free_port(), extra=SCREEN))
    cfg = str(tmp_path / "edge.toml")
    runner = CliRunner()

    async def cli(*args: str) -> dict:
        res = await asyncio.to_thread(runner.invoke, main, ["screens", *args, "-c", cfg])
        assert res.exit_code == 0, res.output
        return json.loads(res.stdout)

    await cli("content", "n1", "--title", "垃圾分类", "--body", "请按时投放", "--duration", "8")
    await cli("playlist", "pl", "n1")
    await cli("schedule", "s1", "pl", "--tags", "outdoor", "--start", "06:00", "--end", "06:00")
    listed = await cli("list")
    assert listed["screens"][0]["now"] == {"content_id": "n1", "source": "schedule:s1"}
    em = await cli("emergency", "暴雨预警", "--minutes", "5")
    assert (await cli("list"))["screens"][0]["now"]["source"] == f"emergency:{em['id']}"
    await cli("cancel", em["id"])
    assert (await cli("list"))["screens"][0]["now"]["source"] == "schedule:s1"
    bad = await asyncio.to_thread(
        runner.invoke, main, ["screens", "schedule", "x", "pl", "--weekdays", "9", "-c", cfg]
    )
    assert bad.exit_code != 0 and "weekdays" in bad.output


async def test_cli_provisions_a_screen_key(make_config, run_box, tmp_path):
    box = await run_box(make_config(api_port=free_port(), extra=SCREEN))
    cfg = str(tmp_path / "edge.toml")
    runner = CliRunner()
    res = await asyncio.to_thread(
        runner.invoke, main,
        ["screens", "key", "scr-1", "--base", "http://192.168.1.10:8080", "-c", cfg])
    assert res.exit_code == 0, res.output
    url = next(line for line in res.output.splitlines() if line.startswith("http"))
    assert url.startswith("http://192.168.1.10:8080/screen/scr-1#key=")
    key = url.split("#key=")[1]
    svc = box.service("screens")
    assert svc.key_ok("scr-1", key) and not svc.key_ok("scr-1", key + "x")
    # Only a hash is stored.
    rows = box.store.sync.db.execute("SELECT key_hash FROM screen_keys").fetchall()
    assert len(rows) == 1 and key not in rows[0][0]
    res = await asyncio.to_thread(
        runner.invoke, main, ["screens", "key", "scr-1", "--revoke", "-c", cfg])
    assert res.exit_code == 0, res.output
    assert not svc.key_ok("scr-1", key)
    res = await asyncio.to_thread(runner.invoke, main, ["screens", "key", "nope", "-c", cfg])
    assert res.exit_code != 0 and "unknown screen" in res.output


def _hashed_copy(config: Path) -> Path:
    """The test config with its plain staff token replaced by token_sha256."""
    digest = hashlib.sha256(STAFF_TOKEN.encode()).hexdigest()
    text = config.read_text().replace(f'token = "{STAFF_TOKEN}"', f'token_sha256 = "{digest}"')
    assert "token_sha256" in text
    out = config.with_name("hashed.toml")
    out.write_text(text)
    return out


async def test_cli_with_a_hashed_token_uses_qilu_edge_token(make_config, run_box, tmp_path):
    """A config keeping only token_sha256 (what `qilu-edge init` writes): the CLI cannot know
    the token, so it takes QILU_EDGE_TOKEN, and says so when it is missing."""
    await run_box(make_config(api_port=free_port(), extra=SCREEN))
    hashed = await asyncio.to_thread(_hashed_copy, tmp_path / "edge.toml")
    runner = CliRunner()

    def run(env: dict[str, str]):
        return runner.invoke(main, ["screens", "list", "-c", str(hashed)], env=env)

    bad = await asyncio.to_thread(run, {"QILU_EDGE_TOKEN": ""})
    assert bad.exit_code != 0 and "QILU_EDGE_TOKEN" in bad.output
    good = await asyncio.to_thread(run, {"QILU_EDGE_TOKEN": STAFF_TOKEN})
    assert good.exit_code == 0, good.output
    assert [s["id"] for s in json.loads(good.stdout)["screens"]] == ["scr-1"]
