"""Config is validated once; bad files fail naming the key and its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.core.config import ConfigError
from edge.features import load_config, parse_config

ROOT = Path(__file__).resolve().parents[3]


def test_example_config_is_valid() -> None:
    config = load_config(ROOT / "config" / "edge.example.toml")
    assert config.box.id == "box-dev"
    assert config.doors[0].options.pulse_ms == 3000
    # Relative data_dir is relative to the config file, not the cwd.
    assert config.box.data_dir == (ROOT / "var" / "edge").resolve()


def test_unknown_key_names_key_and_line() -> None:
    text = '[box]\nid = "b1"\n\n[mqtt]\nhost = "127.0.0.1"\nprot = 1883\n'
    with pytest.raises(ConfigError) as e:
        parse_config(text, source=Path("edge.toml"))
    assert "edge.toml:6: mqtt.prot: unknown key" in str(e.value)


def test_bad_value_names_key_line_and_value() -> None:
    text = "[api]\nport = 70000\n"
    with pytest.raises(ConfigError) as e:
        parse_config(text, source=Path("edge.toml"))
    assert "edge.toml:2: api.port:" in str(e.value)
    assert "70000" in str(e.value)


def test_driver_option_checked_by_the_driver() -> None:
    text = (
        '[[doors]]\nid = "d1"\ntype = "sim"\n\n'
        '[[doors]]\nid = "d2"\ntype = "sim"\npulse_ms = 90000\n'
    )
    with pytest.raises(ConfigError) as e:
        parse_config(text, source=Path("edge.toml"))
    assert "edge.toml:8: doors[1].pulse_ms:" in str(e.value)


def test_unknown_driver_type_lists_known_types() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config('[[doors]]\nid = "d1"\ntype = "acme9000"\n', source=Path("c.toml"))
    msg = str(e.value)
    assert "c.toml:3: doors[0].type: unknown door type 'acme9000'" in msg
    assert "sim" in msg


def test_every_problem_is_reported_at_once() -> None:
    text = '[box]\nid = "Bad Id"\n[mqtt]\nport = 0\n'
    with pytest.raises(ConfigError) as e:
        parse_config(text)
    assert "box.id" in str(e.value) and "mqtt.port" in str(e.value)


def test_duplicate_device_ids_refused() -> None:
    text = '[[doors]]\nid = "d1"\ntype = "sim"\n[[doors]]\nid = "d1"\ntype = "sim"\n'
    with pytest.raises(ConfigError, match="used twice"):
        parse_config(text)


def test_toml_syntax_error_has_line() -> None:
    with pytest.raises(ConfigError, match="line 2"):
        parse_config("[box]\nid = \n", source=Path("x.toml"))


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.toml")


def test_an_unknown_key_names_the_closest_valid_one(tmp_path) -> None:
    from edge.core.config import ConfigError
    from edge.features import parse_config

    text = '[box]\nid = "b"\ncomunity = "x"\n\n[player]\nlayot = "side"\n\n[mqtt]\nxyzzy = 1\n'
    with pytest.raises(ConfigError) as e:
        parse_config(text, source=tmp_path / "edge.toml")
    msg = str(e.value)
    assert "edge.toml:3: box.comunity: unknown key; did you mean 'community'?" in msg
    assert "player.layot: unknown key; did you mean 'layout'?" in msg
    assert "mqtt.xyzzy: unknown key\n" in msg + "\n" and "xyzzy: unknown key;" not in msg
