"""The command line, run as a user runs it (a subprocess)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from goapp import __version__

pytestmark = [pytest.mark.server]  # each test runs `python -m goapp`


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


def test_db_migrate_status_backup(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'goapp.db'}"
    status = goapp("db", "status", "--database-url", url)
    assert status.returncode == 0, status.stderr
    assert "0001_initial\tpending" in status.stdout
    assert "0002_analysis\tpending" in status.stdout
    assert "0003_ratings\tpending" in status.stdout

    migrate = goapp("db", "migrate", "--database-url", url)
    assert migrate.returncode == 0, migrate.stderr
    assert "applied 0001_initial" in migrate.stdout
    assert "applied 0002_analysis" in migrate.stdout
    assert goapp("db", "migrate", "--database-url", url).stdout.strip() == "up to date"
    assert "pending" not in goapp("db", "status", "--database-url", url).stdout

    backup_file = tmp_path / "backup.db"
    backup = goapp("db", "backup", "--database-url", url, "--to", str(backup_file))
    assert backup.returncode == 0, backup.stderr
    with sqlite3.connect(backup_file) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (0,)


def test_db_copy_reports_and_exits_zero_when_verified(tmp_path: Path) -> None:
    src = f"sqlite:///{tmp_path / 'src.db'}"
    dst = f"sqlite:///{tmp_path / 'dst.db'}"
    assert goapp("db", "migrate", "--database-url", src).returncode == 0
    result = goapp("db", "copy", "--from", src, "--to", dst)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ok"] is True
