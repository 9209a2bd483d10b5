"""The settings table: sources, priorities, validation, and the docs generated from it."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from goapp.settings import SettingsError, load_settings, setting_specs, settings_markdown

ROOT = Path(__file__).resolve().parent.parent


def test_defaults() -> None:
    s = load_settings(env={})
    assert s.port == 4000
    assert s.host == "127.0.0.1"
    assert s.effective_database_url.startswith("sqlite:///")
    assert s.effective_database_url.endswith("/data/goapp.db")


def test_priority_file_then_env_then_command_line(tmp_path: Path) -> None:
    config = tmp_path / "goapp.toml"
    config.write_text('port = 5000\nhost = "0.0.0.0"\nlog_level = "debug"\n')
    s = load_settings(config, env={})
    assert (s.port, s.host, s.log_level) == (5000, "0.0.0.0", "debug")
    s = load_settings(config, env={"GOAPP_PORT": "6000"})
    assert (s.port, s.host) == (6000, "0.0.0.0")
    s = load_settings(config, env={"GOAPP_PORT": "6000"}, overrides={"port": 7000, "host": None})
    assert (s.port, s.host) == (7000, "0.0.0.0")


def test_config_file_from_environment(tmp_path: Path) -> None:
    config = tmp_path / "goapp.toml"
    config.write_text("port = 5001\n")
    assert load_settings(env={"GOAPP_CONFIG": str(config)}).port == 5001


def test_secret_from_file(tmp_path: Path) -> None:
    secret = tmp_path / "db_url"
    secret.write_text("postgresql://goapp@db/goapp\n")
    s = load_settings(env={"GOAPP_DATABASE_URL_FILE": str(secret)})
    assert s.database_url == "postgresql://goapp@db/goapp"
    assert s.redacted()["database_url"] == "********"


def test_file_variant_only_for_secrets() -> None:
    with pytest.raises(SettingsError, match="GOAPP_PORT_FILE"):
        load_settings(env={"GOAPP_PORT_FILE": "/nonexistent"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GOAPP_PORT": "eighty"}, "port from environment GOAPP_PORT"),
        ({"GOAPP_PORT": "70000"}, "TCP port"),
        ({"GOAPP_LOG_LEVEL": "loud"}, "must be one of"),
        ({"GOAPP_DATABASE_URL": "mysql://x"}, r"\(secret\) must start with"),
        ({"GOAPP_PROT": "80"}, "unknown environment setting"),
        ({"GOAPP_DATABASE_URL_FILE": "/nonexistent/secret"}, "cannot read"),
    ],
)
def test_bad_values_are_refused_with_their_source(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(env=env)


def test_config_file_errors(tmp_path: Path) -> None:
    config = tmp_path / "goapp.toml"
    config.write_text("prot = 80\n")
    with pytest.raises(SettingsError, match="unknown setting 'prot'"):
        load_settings(config, env={})
    config.write_text("port = \n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(config, env={})
    config.write_text("port = 1.5\n")
    with pytest.raises(SettingsError, match="must be an integer"):
        load_settings(config, env={})
    with pytest.raises(SettingsError, match="cannot read config file"):
        load_settings(tmp_path / "missing.toml", env={})


def test_docs_show_every_setting() -> None:
    """docs/configuration.md embeds the generated table verbatim; regenerate it with
    `goapp settings --markdown` when a setting changes."""
    doc = (ROOT / "docs" / "configuration.md").read_text()
    assert settings_markdown() in doc


def test_every_setting_is_documented_in_help() -> None:
    from goapp.cli import build_parser

    parser = build_parser()
    [subcommands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    serve = subcommands.choices["serve"]
    text = serve.format_help()
    for spec in setting_specs():
        assert spec.env in text
