"""``qilu-edge portal ...`` on a box's store: a printed code logs in once; moderation hides."""

from __future__ import annotations

import re

from click.testing import CliRunner

from edge.cli import main
from edge.core.standard import BoardPost
from edge.core.store import Store
from edge.portal import store as db


def test_code_and_moderation_from_the_command_line(make_config, tmp_path) -> None:
    config = make_config()
    cfg = str(tmp_path / "edge.toml")
    run = CliRunner()
    out = run.invoke(main, ["portal", "code", "-c", cfg, "r-7", "--building", "2"])
    assert out.exit_code == 0, out.output
    code = re.search(r"code (\d{8})", out.output).group(1)
    assert f"/r/login?code={code}" in out.output
    store = Store(config.db_path)
    try:
        got = db.redeem_code(store, code, "t" * 40, 1, "test")
        assert got["resident_id"] == "r-7"
        assert db.redeem_code(store, code, "u" * 40, 1, "test") is None  # one time only
        db.add_post(store, BoardPost(id="p1", board="exchange", title="旧冰箱"), "r-7")
        db.flag_post(store, "p1", "r-8", "other", "广告")
    finally:
        store.close()
    out = run.invoke(main, ["portal", "flagged", "-c", cfg])
    assert "p1  [other]" in out.output
    out = run.invoke(main, ["portal", "moderate", "-c", cfg, "p1", "hide"])
    assert out.exit_code != 0 and "category" in out.output
    out = run.invoke(main, ["portal", "moderate", "-c", cfg, "p1", "hide", "--category", "other"])
    assert out.exit_code == 0 and "hidden" in out.output
    out = run.invoke(main, ["portal", "revoke", "-c", cfg, "--resident", "r-7"])
    assert "revoked 1" in out.output
    store = Store(config.db_path)
    try:
        assert db.list_posts(store, "exchange") == []
        assert db.session_for(store, "t" * 40) is None
    finally:
        store.close()
