"""The wizard's config writes: edge.toml and edge.toml.bak hold the staff token, so 0600."""

from __future__ import annotations

import stat
from pathlib import Path

from edge.installer.setup_edit import write_atomically


def test_config_and_its_backup_are_private(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text('[[api.tokens]]\nname = "s"\ntoken = "secret-secret-secret"\n')
    path.chmod(0o644)  # as an older installer or an admin's editor left it
    write_atomically(path, path.read_text() + "# edited\n")
    bak = path.with_name("edge.toml.bak")
    assert bak.read_text().startswith("[[api.tokens]]")
    assert stat.S_IMODE(bak.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().endswith("# edited\n")
