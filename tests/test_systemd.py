"""The systemd units and the sd_notify client.

* Every unit in systemd/ passes ``systemd-analyze verify`` with no output at all (verify
  exits 0 even for unknown keys and bad values, so any output is a failure).
* ``systemd-analyze security --offline=yes`` rates the services' exposure below a bar.
* ``goapp.obs.systemd`` speaks the notify protocol to a real AF_UNIX datagram socket (path
  and abstract names).
* A real ``goapp serve`` under ``NOTIFY_SOCKET``/``WATCHDOG_USEC`` sends READY=1, then
  WATCHDOG=1 while its database answers; when the database goes away (a throwaway
  PostgreSQL cluster this test stops) the keep-alives stop, so systemd would restart it;
  they resume when the database is back; SIGTERM sends STOPPING=1 and exits 0.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from services import PgCluster, free_port, unavailable

from goapp.obs.systemd import Notifier, watchdog_loop

# goapp serve under a fake notify socket
pytestmark = [pytest.mark.server]

ROOT = Path(__file__).resolve().parent.parent
UNIT_DIR = ROOT / "systemd"
UNITS = sorted(p.name for p in UNIT_DIR.iterdir() if p.suffix in (".service", ".timer"))
SHIPPED_BINARY = "/usr/local/bin/goapp"
#: Highest acceptable `systemd-analyze security` exposure (0 = locked down, 10 = exposed;
#: systemd calls < 2 "OK" and < 1 "SAFE").
MAX_EXPOSURE = {"goapp.service": 2.0, "goapp-backup.service": 1.0}


@pytest.fixture
def systemd_analyze() -> None:
    """systemd-analyze comes with Debian's systemd package; without it: fail in CI."""
    if shutil.which("systemd-analyze") is None:
        unavailable("systemd-analyze is not installed")


needs_analyze = pytest.mark.usefixtures("systemd_analyze")


@pytest.fixture(scope="module")
def verify_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The units, with the binary path pointed at an executable that exists here (verify
    checks that ExecStart's program exists)."""
    out = tmp_path_factory.mktemp("units")
    stand_in = shutil.which("true")
    assert stand_in is not None
    for name in UNITS:
        text = (UNIT_DIR / name).read_text()
        (out / name).write_text(text.replace(SHIPPED_BINARY, stand_in))
    return out


def test_the_units_are_there_and_run_the_installed_binary() -> None:
    assert UNITS == ["goapp-backup.service", "goapp-backup.timer", "goapp.service"]
    service = (UNIT_DIR / "goapp.service").read_text()
    assert re.search(
        r"^ExecStart=/usr/local/bin/goapp serve --config /etc/goapp/goapp.toml$", service, re.M
    )
    assert re.search(r"^Type=notify$", service, re.M)
    assert re.search(r"^NotifyAccess=all$", service, re.M)  # the one-file binary's child
    assert re.search(r"^WatchdogSec=30$", service, re.M)
    assert re.search(r"^LoadCredential=jwt_secret:/etc/goapp/jwt_secret$", service, re.M)
    assert re.search(r"^Environment=GOAPP_JWT_SECRET_FILE=%d/jwt_secret$", service, re.M)
    backup = (UNIT_DIR / "goapp-backup.service").read_text()
    assert re.search(r"^ExecStart=/usr/local/bin/goapp db backup ", backup, re.M)


@needs_analyze
@pytest.mark.parametrize("unit", UNITS)
def test_systemd_analyze_verify_says_nothing(verify_dir: Path, unit: str) -> None:
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(verify_dir / unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout + proc.stderr == "", proc.stdout + proc.stderr


@needs_analyze
@pytest.mark.parametrize("unit", sorted(MAX_EXPOSURE))
def test_security_exposure_is_low(verify_dir: Path, unit: str) -> None:
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(verify_dir / unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", proc.stdout)
    assert found, proc.stdout + proc.stderr
    score = float(found.group(1))
    print(f"systemd-analyze security {unit}: {score} {found.group(2)}")
    assert score <= MAX_EXPOSURE[unit], proc.stdout


# -- the notify client ----------------------------------------------------------------------


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(path))
        s.settimeout(5)
        yield s


def test_notifier_sends_datagrams_to_a_path_socket(notify_socket: socket.socket) -> None:
    n = Notifier({"NOTIFY_SOCKET": notify_socket.getsockname()})
    assert n.enabled and n.watchdog_interval is None
    assert n.ready("listening")
    assert notify_socket.recv(4096) == b"READY=1\nSTATUS=listening"
    assert n.watchdog()
    assert notify_socket.recv(4096) == b"WATCHDOG=1"
    assert n.stopping()
    assert notify_socket.recv(4096) == b"STOPPING=1"


def test_notifier_speaks_the_abstract_namespace() -> None:
    name = f"goapp-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind("\0" + name)
        s.settimeout(5)
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).status("hello")
        assert s.recv(4096) == b"STATUS=hello"


def test_notifier_is_a_no_op_outside_systemd(tmp_path: Path) -> None:
    assert not Notifier({}).ready()
    # A socket nobody listens on: a warning, never an exception.
    assert not Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")}).ready()


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    assert Notifier({"WATCHDOG_USEC": "30000000"}).watchdog_interval == 15.0
    own = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier(own).watchdog_interval == 1.0
    # The one-file binary's interpreter is a child of the main PID systemd names.
    parent = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getppid())}
    assert Notifier(parent).watchdog_interval == 1.0
    assert Notifier({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}).watchdog_interval is None
    assert Notifier({"WATCHDOG_USEC": "0"}).watchdog_interval is None


async def test_watchdog_loop_pings_only_while_the_check_passes(
    notify_socket: socket.socket,
) -> None:
    notify_socket.setblocking(False)
    healthy = True

    async def check() -> None:
        if not healthy:
            raise ConnectionError("db down")

    def drain() -> list[bytes]:
        got = []
        while True:
            try:
                got.append(notify_socket.recv(4096))
            except BlockingIOError:
                return got

    n = Notifier({"NOTIFY_SOCKET": notify_socket.getsockname(), "WATCHDOG_USEC": "100000"})
    task = asyncio.create_task(watchdog_loop(n, check))
    try:
        await asyncio.sleep(0.3)
        assert drain().count(b"WATCHDOG=1") >= 3
        healthy = False
        await asyncio.sleep(0.1)
        drain()
        await asyncio.sleep(0.3)
        assert drain() == []  # nothing while failing (the STATUS came in the first 0.1 s)
        healthy = True
        await asyncio.sleep(0.2)
        got = drain()
        assert b"STATUS=ready" in got and b"WATCHDOG=1" in got
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


# -- a real server ----------------------------------------------------------------------------


class NotifyListener:
    """A NOTIFY_SOCKET as systemd has it: every datagram, with its arrival time."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.path = path
        self.messages: list[tuple[float, str]] = []

    def wait_for(self, line: str, timeout: float = 30) -> float:
        """Read until a message with ``line`` arrives; its arrival time."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {line!r} in {timeout}s; got {self.messages}")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            now = time.monotonic()
            self.messages.append((now, data))
            if line in data.split("\n"):
                return now

    def collect(self, seconds: float) -> list[str]:
        deadline = time.monotonic() + seconds
        got = []
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096).decode()
            except TimeoutError:
                break
            self.messages.append((time.monotonic(), data))
            got.append(data)
        return got

    def close(self) -> None:
        self.sock.close()


@pytest.mark.timeout(120)
def test_serve_notifies_systemd_and_withholds_the_watchdog_while_the_database_is_down(
    tmp_path: Path,
) -> None:
    try:
        cluster = PgCluster.create()
        cluster.start()
    except Exception as exc:  # same policy as the pg_cluster fixture
        unavailable(f"cannot start a throwaway PostgreSQL cluster: {exc}")
    listener = NotifyListener(tmp_path / "notify")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOAPP_")}
    env.update(NOTIFY_SOCKET=str(listener.path), WATCHDOG_USEC="1000000")  # every 0.5 s
    env["GOAPP_METRICS_LISTEN"] = "127.0.0.1:0"  # any free port, not the default 9464
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "goapp", "serve", "--port", str(free_port())),
            *("--ws-port", "0", "--data-dir", str(tmp_path / "data")),
            *("--database-url", cluster.url),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        listener.wait_for("READY=1")
        first = listener.wait_for("WATCHDOG=1", timeout=5)
        second = listener.wait_for("WATCHDOG=1", timeout=5)
        assert 0.3 < second - first < 0.8

        cluster.stop("immediate")
        stopped = time.monotonic()
        listener.collect(3.0)  # systemd (WatchdogSec=1 here) would have restarted us
        after = [m for t, m in listener.messages if t > stopped]
        # One keep-alive may have been on its way when the database stopped; none after.
        late = [m for t, m in listener.messages if t > stopped + 0.6 and "WATCHDOG=1" in m]
        assert late == [], after
        assert any(m.startswith("STATUS=database unavailable") for m in after), after

        cluster.start()
        listener.wait_for("STATUS=ready", timeout=20)
        listener.wait_for("WATCHDOG=1", timeout=5)

        proc.send_signal(signal.SIGTERM)
        listener.wait_for("STOPPING=1", timeout=15)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        listener.close()
        cluster.destroy()
        log.close()
