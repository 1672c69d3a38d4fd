from __future__ import annotations

import pytest

from node.config import ConfigError, parse_config, render_default_config

BASE = 'name = "acme.example"\nlisten = "127.0.0.1:8700"\n'


def test_minimal_config_gets_defaults() -> None:
    config = parse_config(BASE)
    assert config.name == "acme.example"
    assert config.listen_port == 8700
    assert config.limits.peer_rps > 0
    assert config.base_url == "http://acme.example"
    assert not config.tls_enabled


def test_default_template_is_valid_and_commented() -> None:
    text = render_default_config("acme.example", "0.0.0.0:443")
    assert "# " in text
    assert parse_config(text).listen == "0.0.0.0:443"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("[limits]\npeer_rps = 0\n", "limits.peer_rps: must be a positive integer"),
        ("[limits]\npeer_rps = true\n", "limits.peer_rps: must be an integer"),
        ("[limits]\npeer_rps = 1.5\n", "limits.peer_rps: must be an integer"),
        ("[limits]\npeer_rsp = 3\n", "limits.peer_rsp: unknown key"),
        ("colour = 1\n", "colour: unknown key"),
        ("[log]\nlevel = \"loud\"\n", "log.level: must be one of"),
        ("limits = 3\n", "limits: must be a table"),
        ("public_url = \"ftp://x\"\n", "public_url: must be an http(s) URL"),
        ("[tls]\ncert = \"c.pem\"\n", "tls: set both"),
    ],
)
def test_errors_name_the_key(extra: str, message: str) -> None:
    # Top-level keys must precede tables in TOML, so put them first.
    text = extra + BASE if not extra.startswith("[") else BASE + extra
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('listen = "127.0.0.1:8700"\n', "name: required"),
        ('name = "Acme.Example"\nlisten = "127.0.0.1:1"\n', "name: must be a lower-case"),
        ('name = "a.example"\nlisten = "127.0.0.1"\n', "listen: must be HOST:PORT"),
        ('name = "a.example"\nlisten = "127.0.0.1:70000"\n', "listen: port must be"),
        ("name = \n", "not valid TOML"),
    ],
)
def test_top_level_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(text)


def test_tls_both_set_enables_https_url() -> None:
    config = parse_config(BASE + '[tls]\ncert = "c.pem"\nkey = "k.pem"\n')
    assert config.tls_enabled
    assert config.base_url == "https://acme.example"
