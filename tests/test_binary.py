"""The one-file binary (appliance/build.sh -> dist/goapp), run as a self-hoster runs it:
copied alone into an empty folder and started with an empty environment (``env -i``).

It reports itself frozen with the compiled core; ``serve`` answers /readyz, tells systemd
it is ready and keeps the watchdog fed (from the bootloader's child: WATCHDOG_PID names the
bootloader), plays moves over the WebSocket, stops with exit status 0 on SIGTERM and
leaves no unpacked files behind; started again, it still has the users, the game and its
token secret, and ``goapp db backup`` copies the live database. The server and the backup
also run under the seccomp filter and MemoryDenyWriteExecute of their units (emulated:
tests/sandbox_exec.py).

The binary is built once per session (the ``binary`` fixture of conftest.py), and only
when a source file is newer than it (about 30-90 s); ``GOAPP_TEST_BINARY=PATH`` tests a
binary built elsewhere instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from services import free_port, unavailable

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform != "linux", reason="the appliance is built for Linux"),
]


@pytest.fixture
def workdir(binary: Path, tmp_path: Path) -> Path:
    """An empty folder holding only a copy of the binary (and a TMPDIR of its own)."""
    shutil.copy2(binary, tmp_path / "goapp")
    (tmp_path / "tmp").mkdir()
    return tmp_path


def clean_env(**extra: str) -> list[str]:
    return ["env", "-i", "PATH=/usr/bin:/bin", *(f"{k}={v}" for k, v in extra.items())]


def http(method: str, url: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw, status = resp.read(), resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


def wait_ready(proc: subprocess.Popen[bytes], port: int, timeout: float = 30) -> float:
    """Seconds until /readyz answered 200."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        assert proc.poll() is None, f"goapp exited with {proc.returncode}"
        try:
            if http("GET", f"http://127.0.0.1:{port}/readyz")[0] == 200:
                return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.02)
    raise AssertionError(f"/readyz not 200 within {timeout}s")


SANDBOX_EXEC = Path(__file__).resolve().parent / "sandbox_exec.py"
SYSTEM_PYTHON = "/usr/bin/python3"


def sandbox(unit: str) -> list[str]:
    """A command prefix imposing ``unit``'s SystemCallFilter= and MemoryDenyWriteExecute=
    (see tests/sandbox_exec.py); unavailable (skip, or fail under CI) where it cannot."""
    probe = subprocess.run(
        [SYSTEM_PYTHON, str(SANDBOX_EXEC), str(ROOT / "systemd" / unit), "/bin/true"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        unavailable(f"cannot emulate the unit's sandbox here: {probe.stderr.strip()}")
    prefix = [SYSTEM_PYTHON, str(SANDBOX_EXEC), str(ROOT / "systemd" / unit)]
    # The filter bites: setuid (@privileged) is refused with EPERM.
    denied = subprocess.run(
        [*prefix, SYSTEM_PYTHON, "-c", "import os; os.setuid(os.getuid())"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "PermissionError" in denied.stderr, denied.stderr
    return prefix


class Server:
    """``goapp serve`` from the binary, with a NOTIFY_SOCKET like systemd's."""

    def __init__(self, workdir: Path, *, wrapper: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.notify_path = workdir / "notify"
        self.notify_path.unlink(missing_ok=True)
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.notify_path))
        self.log = (workdir / "server.log").open("a")
        env = clean_env(
            TMPDIR=str(workdir / "tmp"),
            NOTIFY_SOCKET=str(self.notify_path),
            WATCHDOG_USEC="400000",
            GOAPP_METRICS_LISTEN="127.0.0.1:0",  # any free port, not the default 9464
        )
        serve = ["./goapp", "serve", "--port", str(self.port), "--ws-port", "0"]
        serve += ["--data-dir", str(workdir / "data")]
        # WATCHDOG_PID=$$ then exec: it names the process systemd would call the main PID,
        # the bootloader; the interpreter that sends the keep-alives is its child.
        argv = [*env, *wrapper, "/bin/sh", "-c", 'WATCHDOG_PID=$$ exec "$@"', "sh", *serve]
        # A session of its own: the one-file binary is a bootloader whose child runs the
        # server, and killing the bootloader alone (close(), after a failed assertion)
        # would leave that child serving; close() kills the whole group.
        self.proc = subprocess.Popen(
            argv, cwd=workdir, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def messages(self, want: str, timeout: float = 15) -> list[str]:
        got: list[str] = []
        deadline = time.monotonic() + timeout
        while want not in got:
            left = deadline - time.monotonic()
            assert left > 0, f"no {want} from goapp; got {got}"
            self.notify.settimeout(left)
            with contextlib.suppress(TimeoutError):
                got += self.notify.recv(4096).decode().split("\n")
        return got

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=20)

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):  # the group is gone: all exited
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(10)
        self.notify.close()
        self.log.close()  # both idempotent


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for s in started:
        s.close()


def test_version_reports_a_frozen_build_with_the_compiled_core(workdir: Path) -> None:
    proc = subprocess.run(
        [*clean_env(TMPDIR=str(workdir / "tmp")), "./goapp", "version"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "frozen: True" in lines and "core: compiled" in lines, proc.stdout
    assert "uvloop: available" in lines, proc.stdout


async def play_over_websocket(
    url: str, game_id: int, tokens: dict[str, str], moves: list[tuple[str, str]]
) -> list[int]:
    """Each player on its own WebSocket (token in the subprotocol, as browsers send it);
    returns the seq of each acknowledged move."""
    import aiohttp

    ws_url = url.replace("http://", "ws://") + "/ws"
    acked: list[int] = []
    async with aiohttp.ClientSession() as session:
        sockets = {
            name: await session.ws_connect(ws_url, protocols=["goapp.v1", f"bearer.{token}"])
            for name, token in tokens.items()
        }
        try:
            for n, (name, vertex) in enumerate(moves):
                ws = sockets[name]
                await ws.send_json(
                    {
                        "type": "action",
                        "id": n,
                        "game_id": game_id,
                        "action": {"type": "move", "vertex": vertex},
                        "request_id": f"binary-{n}",
                    }
                )
                while True:
                    frame = await ws.receive_json(timeout=10)
                    if frame.get("id") == n:
                        assert frame["type"] == "ack", frame
                        acked.append(frame["seq"])
                        break
        finally:
            for ws in sockets.values():
                await ws.close()
    return acked


@pytest.mark.timeout(180)
def test_serve_plays_a_game_stops_on_sigterm_and_keeps_it(
    workdir: Path, servers: list[Server]
) -> None:
    first = Server(workdir)
    servers.append(first)
    startup = wait_ready(first.proc, first.port)
    print(f"binary: {startup:.2f} s to /readyz 200 (cold, fresh data directory)")
    first.messages("READY=1")
    first.messages("WATCHDOG=1", timeout=5)  # WATCHDOG_PID naming the parent is accepted

    api = first.url + "/api"
    tokens = {}
    for name in ("alice", "bob"):
        status, body = http("POST", f"{api}/register", {"name": name, "password": "binary pw 1"})
        assert status == 201, body
        tokens[name] = body["access_token"]
    challenge = {"size": 9, "rules": "japanese", "color": "black", "opponent": "bob"}
    challenge["time_control"] = {"system": "byoyomi", "main_s": 600, "periods": 3, "period_s": 30}
    status, ch = http("POST", f"{api}/challenges", challenge, tokens["alice"])
    assert status == 201, ch
    status, accepted = http("POST", f"{api}/challenges/{ch['id']}/accept", None, tokens["bob"])
    assert status == 200, accepted
    game_id = int(accepted["game_id"])
    moves = [("alice", "E5"), ("bob", "C3"), ("alice", "G7"), ("bob", "D4")]
    acked = asyncio.run(play_over_websocket(first.url, game_id, tokens, moves))
    assert acked == [3, 4, 5, 6]  # seqs after game_created and game_started
    status, before = http("GET", f"{api}/games/{game_id}/events")
    assert status == 200 and len(before["events"]) >= 4, before

    assert first.stop() == 0
    first.messages("STOPPING=1")
    assert list((workdir / "tmp").iterdir()) == []  # the bootloader removed its _MEI folder
    assert (workdir / "data" / "goapp.db").exists()

    second = Server(workdir)
    servers.append(second)
    wait_ready(second.proc, second.port)
    status, after = http("GET", f"{second.url}/api/games/{game_id}/events")
    assert status == 200
    # Everything read before the stop is still there; the only events that may have come
    # after are the presence ones of the players' sockets closing (player_left).
    assert after["events"][: len(before["events"])] == before["events"]
    extra = after["events"][len(before["events"]) :]
    assert {e["kind"] for e in extra} <= {"player_left", "player_returned"}, extra
    # The token secret persisted in the data directory: the old token still works...
    action = {"game_id": game_id, "action": {"type": "move", "vertex": "C7"}}
    status, body = http("POST", f"{second.url}/api/action", action, tokens["alice"])
    assert status == 200, body
    # ... and the password too.
    status, body = http(
        "POST", f"{second.url}/api/login", {"name": "bob", "password": "binary pw 1"}
    )
    assert status == 200, body
    # The backup timer's command, while the server runs: a consistent copy with the game.
    (workdir / "backups").mkdir()
    backup = subprocess.run(
        [
            *clean_env(TMPDIR=str(workdir / "tmp"), GOAPP_DATA_DIR=str(workdir / "data")),
            *("./goapp", "db", "backup", "--to", str(workdir / "backups")),
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert backup.returncode == 0, backup.stdout + backup.stderr
    [copy] = (workdir / "backups").glob("goapp-*.db")
    with sqlite3.connect(copy) as db:
        assert db.execute("SELECT count(*) FROM game_events").fetchone()[0] >= 5
    assert second.stop() == 0


@pytest.mark.timeout(120)
def test_serve_and_backup_run_under_their_units_syscall_filter(
    workdir: Path, servers: list[Server]
) -> None:
    server = Server(workdir, wrapper=sandbox("goapp.service"))
    servers.append(server)
    wait_ready(server.proc, server.port)
    server.messages("READY=1")
    server.messages("WATCHDOG=1", timeout=5)
    body = {"name": "sandboxed", "password": "seccomp and mdwe"}
    status, answer = http("POST", f"{server.url}/api/register", body)
    assert status == 201, answer
    status, _ = http("GET", f"{server.url}/api/games?status=finished")
    assert status == 200

    (workdir / "backups").mkdir()
    backup = subprocess.run(
        [
            *clean_env(TMPDIR=str(workdir / "tmp"), GOAPP_DATA_DIR=str(workdir / "data")),
            *sandbox("goapp-backup.service"),
            *("./goapp", "db", "backup", "--to", str(workdir / "backups")),
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert backup.returncode == 0, backup.stdout + backup.stderr
    assert server.stop() == 0
    server.messages("STOPPING=1")
    assert list((workdir / "tmp").iterdir()) == []


def test_engine_setup_from_the_binary(workdir: Path, katrain_wheel: Path) -> None:
    """`goapp engine setup` runs from the binary (it used to call `sys.executable -m pip`,
    which is goapp itself there): offline with --wheel/--model, and online over HTTPS with an
    empty environment (no SSL_CERT_FILE: the frozen OpenSSL must find the system's CA
    bundle), completing a download an earlier run left half done (only its end travels)."""
    from engine_support import KATAGO_MODEL

    goapp = str(workdir / "goapp")
    env = clean_env(TMPDIR=str(workdir / "tmp"))
    shown = subprocess.run(
        [*env, goapp, "engine", "setup", "--help"], capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    for option in ("--dest", "--model", "--wheel", "--index-url", "--no-tune"):
        assert option in shown.stdout

    def setup(dest: Path, *args: str) -> dict[str, Any]:
        proc = subprocess.run(
            [*env, goapp, "engine", "setup", "--dest", str(dest), "--no-tune", *args],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        paths: dict[str, Any] = json.loads(proc.stdout)
        assert Path(paths["binary"]).is_file() and Path(paths["model"]).is_file()
        return paths

    model = ("--model", str(KATAGO_MODEL))
    setup(workdir / "offline", *model, "--wheel", str(katrain_wheel))

    online = workdir / "online" / "downloads"
    online.mkdir(parents=True)
    data = katrain_wheel.read_bytes()
    (online / (katrain_wheel.name + ".part")).write_bytes(data[: len(data) - 65536])
    index = os.environ.get("PIP_INDEX_URL")  # the same index `make katago` used
    setup(workdir / "online", *model, *(["--index-url", index] if index else []))
    assert (online / katrain_wheel.name).read_bytes() == data
    assert not (online / (katrain_wheel.name + ".part")).exists()
