"""The box's ``update`` command (the cloud's roll-out waves, docs/console.md) in a real box
daemon: it runs the configured hook with the version, refuses without a hook or on a failing
hook (saying why), and only says so when the box already runs the version."""

from __future__ import annotations

from pathlib import Path

from common.version import __version__
from edge.core.standard import Command


def hook(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "update-hook"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


async def update(box, version: str, **args: str):  # type: ignore[no-untyped-def]
    cmd = Command(id="cloud-1", action="update", args={"version": version, **args}, actor="cloud")
    return await box.commands.dispatch("box", "box-1", cmd)


async def test_update_runs_the_hook_with_the_version(make_config, run_box, tmp_path: Path) -> None:
    out = tmp_path / "asked"
    script = hook(tmp_path, f'echo "$1|$QILU_UPDATE_VERSION|$QILU_UPDATE_URL" > {out}\necho ok\n')
    box = await run_box(make_config(extra=f'[sync]\nupdate_command = "{script}"\n'))
    res = await update(box, "9.8.7", url="https://cloud.example/pkg.deb")
    assert res.ok, res.detail
    assert out.read_text().strip() == "9.8.7|9.8.7|https://cloud.example/pkg.deb"
    assert "9.8.7" in res.detail and __version__ in res.detail
    # Re-sent after the box restarted on that version: nothing runs again.
    out.unlink()
    res = await update(box, __version__)
    assert res.ok and "already running" in res.detail and not out.exists()


async def test_update_refuses_without_a_hook_or_when_it_fails(
    make_config, run_box, tmp_path: Path
) -> None:
    box = await run_box(make_config())
    res = await update(box, "9.8.7")
    assert not res.ok and "update_command" in res.detail
    res = await update(box, "9.8.7; rm -rf /")
    assert not res.ok and "malformed" in res.detail

    script = hook(tmp_path, 'echo "disk full" >&2\nexit 3\n')
    box2 = await run_box(make_config(extra=f'[sync]\nupdate_command = "{script}"\n'))
    res = await update(box2, "9.8.7")
    assert not res.ok and "exited 3" in res.detail and "disk full" in res.detail
