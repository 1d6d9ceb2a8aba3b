"""Staff tokens can live in the config as SHA-256 only (issue 13 hardening)."""

from __future__ import annotations

import hashlib
import logging
import re

import aiohttp
import pytest
from click.testing import CliRunner

from edge.cli import main
from edge.core.config import ConfigError
from edge.features import parse_config
from tests.conftest import api_url, box_toml


def hashed_toml(tmp_path, token: str) -> str:
    text = box_toml(tmp_path)
    digest = hashlib.sha256(token.encode()).hexdigest()
    return re.sub(r'token = "[^"]+"', f'token_sha256 = "{digest}"', text)


def test_cli_prints_a_token_and_its_hash() -> None:
    out = CliRunner().invoke(main, ["token", "new", "--name", "王工"])
    assert out.exit_code == 0, out.output
    tok = re.search(r"shown once; give it to 王工\): (\S+)", out.output).group(1)
    assert f'token_sha256 = "{hashlib.sha256(tok.encode()).hexdigest()}"' in out.output
    assert len(tok) >= 40


async def test_hashed_token_opens_the_api_and_plain_still_works(
    tmp_path, run_box, caplog
) -> None:
    tok = "a-new-staff-token-from-the-cli-0123"
    config = parse_config(hashed_toml(tmp_path, tok), source=tmp_path / "edge.toml")
    assert config.api.tokens[0].token is None
    box = await run_box(config)
    async with aiohttp.ClientSession() as s:
        for given, want in ((tok, 200), (tok + "x", 401), (config.api.tokens[0].token_sha256, 401)):
            async with s.get(f"{api_url(box)}/api/v1/alerts",
                             headers={"Authorization": f"Bearer {given}"}) as r:
                assert r.status == want, given
    assert "deprecated" not in caplog.text
    with caplog.at_level(logging.WARNING):
        plain = await run_box(parse_config(box_toml(tmp_path / "b2"), source=tmp_path / "b2.toml"))
    assert plain.config.api.tokens[0].token
    assert "plain token in the config is deprecated" in caplog.text


def test_token_and_hash_together_are_refused(tmp_path) -> None:
    text = box_toml(tmp_path).replace('token = "', 'token_sha256 = "' + "0" * 64 + '"\ntoken = "')
    with pytest.raises(ConfigError, match="exactly one"):
        parse_config(text)


def test_the_cli_reads_the_token_file_when_the_config_keeps_only_the_hash(
    tmp_path, monkeypatch
) -> None:
    tok = "an-installed-box-staff-token-0123"
    file = tmp_path / "staff-token"
    text = hashed_toml(tmp_path, tok).replace(
        "token_sha256 =", f'token_file = "{file}"\ntoken_sha256 =', 1
    )
    config = parse_config(text, source=tmp_path / "edge.toml")
    monkeypatch.delenv("QILU_EDGE_TOKEN", raising=False)
    assert config.api.client_token() is None  # no file yet: the CLI says how to fix it
    file.write_text(tok + "\n")
    assert config.api.client_token() == tok
    monkeypatch.setenv("QILU_EDGE_TOKEN", "from-the-environment-0123")
    assert config.api.client_token() == "from-the-environment-0123"  # the caller's choice wins
