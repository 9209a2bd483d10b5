"""The command line, run as a user runs it (a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys

from goapp import __version__


def goapp(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "goapp", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_version() -> None:
    result = goapp("version")
    assert result.returncode == 0
    assert f"version: {__version__}" in result.stdout
    assert "core: compiled" in result.stdout


def test_help_lists_commands() -> None:
    result = goapp("--help")
    assert result.returncode == 0
    for command in ("serve", "db", "bench", "settings", "version"):
        assert command in result.stdout


def test_configuration_error_is_reported_not_raised() -> None:
    result = goapp("settings", env={"GOAPP_PORT": "nope", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert "configuration error: port from environment GOAPP_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_bench_core_json() -> None:
    result = goapp("bench", "core", "--seconds", "0.5", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["playout_ns_per_move"] > 0
    assert report["replay_us_per_pair"] > 0
