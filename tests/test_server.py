"""The server process: it starts on SQLite in a fresh data directory, answers the health
endpoints, reports an unreachable database as not ready, and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from goapp.server.app import create_app
from goapp.server.wiring import open_services
from goapp.settings import load_settings

# goapp serve processes
pytestmark = [pytest.mark.server]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.timeout(60)
def test_serve_starts_on_sqlite_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "data"  # does not exist yet: serve creates it
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOAPP_")}
    env["GOAPP_ENGINE"] = "none"
    env["GOAPP_METRICS_LISTEN"] = "127.0.0.1:0"  # any free port, not the default 9464
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "goapp", "serve", "--port", str(port)),
            *("--ws-port", "0", "--data-dir", str(data_dir)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        banner = ""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if "is running at" in line:
                banner = line
                break
        assert f"http://localhost:{port}/" in banner, banner
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        status, body = get(f"http://127.0.0.1:{port}/readyz")
        assert status == 200, body
        assert json.loads(body) == {
            "status": "ready",
            "checks": {"database": "ok", "bus": "absent"},
            "engine": "absent",
        }
        assert (data_dir / "goapp.db").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0


@pytest.mark.timeout(90)
def test_data_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    """Under umask 022 (``make serve``, Docker) the data directory is made 0700 and the
    database with its -wal/-shm, the token secret and a backup 0600: other local users
    cannot read password hashes or forge tokens."""
    port = free_port()
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOAPP_")}
    env["GOAPP_ENGINE"] = "none"
    env["GOAPP_METRICS_LISTEN"] = "127.0.0.1:0"  # any free port, not the default 9464
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "goapp", "serve", "--port", str(port)),
            *("--ws-port", "0", "--data-dir", str(data_dir)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        umask=0o022,
    )
    try:
        deadline = time.monotonic() + 30
        while get_status(f"http://127.0.0.1:{port}/readyz") != 200:
            assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.1)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/register",
            data=json.dumps({"name": "umask", "password": "correct horse"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201  # a write: the -wal file exists
        backups = tmp_path / "backups"
        backups.mkdir()
        subprocess.run(
            [*(sys.executable, "-m", "goapp", "db", "backup", "--to", str(backups))],
            check=True,
            capture_output=True,
            env={**env, "GOAPP_DATA_DIR": str(data_dir)},
            umask=0o022,
            timeout=60,
        )
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in data_dir.iterdir()}
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        assert {"goapp.db", "goapp.db-wal", "goapp.db-shm", "jwt_secret"} <= set(modes), modes
        assert all(mode == 0o600 for mode in modes.values()), {
            name: oct(mode) for name, mode in modes.items()
        }
        (backup,) = backups.iterdir()
        assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0


def get_status(url: str) -> int:
    try:
        return get(url)[0]
    except OSError:
        return 0


def _start(data_dir: Path, port: int, **env_extra: str) -> subprocess.Popen[str]:
    """``goapp serve`` on ``port``, waited for (its /healthz answers)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOAPP_")}
    env.update(GOAPP_ENGINE="none", **env_extra)
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "goapp", "serve", "--port", str(port)),
            *("--ws-port", "0", "--data-dir", str(data_dir)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 30
    while get_status(f"http://127.0.0.1:{port}/healthz") != 200:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"serve did not start: {proc.communicate()[1][-2000:]}")
        time.sleep(0.1)
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.stderr:
            proc.stderr.close()


def _scrape(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.timeout(120)
def test_metrics_have_a_listener_of_their_own(tmp_path: Path) -> None:
    """/metrics is not on the HTTP port (the one Docker publishes): it answers 404 there,
    200 on metrics_listen; with metrics_token, both serve it and both require the token; an
    address in use stops the start with a clear message."""
    port, metrics_port = free_port(), free_port()
    app, metrics = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}"
    proc = _start(tmp_path, port, GOAPP_METRICS_LISTEN=f"127.0.0.1:{metrics_port}")
    try:
        status, body = _scrape(f"{app}/metrics")
        assert status == 404 and json.loads(body)["error"]["code"] == "not_found", body
        status, body = _scrape(f"{metrics}/metrics")
        assert status == 200 and b"goapp_http_requests_total" in body
        assert _scrape(f"{metrics}/")[0] == 404  # nothing else there
        assert _scrape(f"{metrics}/api/games")[0] == 404
    finally:
        _stop(proc)

    token = "m" * 40
    proc = _start(
        tmp_path, port, GOAPP_METRICS_LISTEN=f"127.0.0.1:{metrics_port}", GOAPP_METRICS_TOKEN=token
    )
    try:
        for base in (app, metrics):
            status, body = _scrape(f"{base}/metrics")
            assert status == 401 and json.loads(body)["error"]["code"] == "token_invalid", base
            assert _scrape(f"{base}/metrics", "m" * 39 + "x")[0] == 401
            status, body = _scrape(f"{base}/metrics", token)
            assert status == 200 and b"goapp_http_requests_total" in body, base
    finally:
        _stop(proc)

    with socket.socket() as taken:  # another goapp's metrics listener, say
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("GOAPP_")}
        env.update(GOAPP_ENGINE="none", GOAPP_METRICS_LISTEN=f"127.0.0.1:{busy}")
        done = subprocess.run(
            [
                *(sys.executable, "-m", "goapp", "serve", "--port", str(free_port())),
                *("--ws-port", "0", "--data-dir", str(tmp_path)),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"metrics_listen = '127.0.0.1:{busy}'" in done.stderr, done.stderr[-2000:]


@pytest.mark.timeout(90)
def test_a_port_in_use_is_a_configuration_error(tmp_path: Path) -> None:
    """The HTTP and WebSocket ports, like metrics_listen: an address in use stops the start
    with one line naming the setting (exit 2), not a traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOAPP_")}
    env.update(GOAPP_ENGINE="none", GOAPP_METRICS_LISTEN="")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        for name, ports in (("port", (busy, 0)), ("ws_port", (free_port(), busy))):
            done = subprocess.run(
                [
                    *(sys.executable, "-m", "goapp", "serve", "--port", str(ports[0])),
                    *("--ws-port", str(ports[1]), "--data-dir", str(tmp_path / name)),
                ],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
            )
            assert done.returncode == 2, done.stderr[-2000:]
            assert "Traceback" not in done.stderr, done.stderr[-2000:]
            assert f"configuration error: {name} = {busy} (host = '127.0.0.1')" in done.stderr


async def test_readyz_reports_an_unavailable_database(
    tmp_path: Path, aiohttp_client: object
) -> None:
    settings = load_settings(env={}, overrides={"data_dir": str(tmp_path)})
    ctx = await open_services(settings)
    store = ctx.store
    client: TestClient = await aiohttp_client(create_app(ctx))  # type: ignore[operator]
    response = await client.get("/readyz")
    assert response.status == 200
    await store.close()  # from now on every query fails with StoreUnavailableError
    response = await client.get("/readyz")
    assert response.status == 503
    body = await response.json()
    assert body["status"] == "not ready"
    assert body["checks"]["database"].startswith("unavailable")
