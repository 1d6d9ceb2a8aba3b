"""The office's demo step through the real demo box: the closing block names /office/ and a
login that really signs in (checked against the stored scrypt hash)."""

from __future__ import annotations

import re
from pathlib import Path

import edge.demo
from common.staffauth import check_password
from edge.core.store import Store
from edge.features import load_config
from edge.office import store as db
from edge.office.demo import step_office


async def test_demo_prints_the_office_and_its_login(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(edge.demo, "steps", lambda: [step_office])
    await edge.demo.run_demo(tmp_path, seconds=0, mqtt_port=1, api_port=0)
    out = capsys.readouterr().out
    closing = out.split("Demo box running: open these", 1)[1]
    m = re.search(r"物业 Office\s+(http://127\.0\.0\.1:\d+/office/)\s+.*sign in: wuye / (\S+)",
                  closing)
    assert m is not None, closing
    store = Store(load_config(tmp_path / "edge.toml").db_path)
    try:
        user = db.get_user(store, "wuye")
    finally:
        store.close()
    assert user is not None and user["role"] == "admin"
    assert check_password(m.group(2), user["password_hash"])
