"""Processes for multi-instance tests: ``goapp serve`` instances and an Nginx load balancer.

:class:`Instance` runs one ``goapp serve`` subprocess (its own port and data directory, the
shared database, Redis and token secret given as ``GOAPP_*`` variables) and waits for its
"is running at" line. :class:`Balancer` runs the real Debian ``nginx``, unprivileged, as a
plain-HTTP upstream over the instances with the WebSocket upgrade and the failover
directives of ``nginx/goapp.conf``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services import free_port, unavailable


def wait_healthy(
    url: str, proc: subprocess.Popen[Any], timeout: float, name: str, log: Callable[[], str]
) -> None:
    """Poll ``url/healthz`` until it answers 200; fail with ``log()`` if ``proc`` exits
    first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited at start:\n{log()}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{name} did not start in {timeout}s:\n{log()}")


class Instance:
    """One ``goapp serve`` process."""

    def __init__(self, name: str, root: Path, env: dict[str, str]) -> None:
        self.name = name
        self.port = free_port()
        self.data_dir = root / name
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = root / f"{name}.log"
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GOAPP_")}
        env.update({"GOAPP_LOG_LEVEL": "warning", "GOAPP_ENGINE": "none"})
        env["GOAPP_METRICS_LISTEN"] = "127.0.0.1:0"  # not the default 9464: several run at once
        env.update(self.env)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "goapp", "serve", "--port", str(self.port)),
                *("--ws-port", "0", "--data-dir", str(self.data_dir)),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()
        wait_healthy(self.url, self.proc, timeout, self.name, self.log_tail)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush; what was acknowledged must already be durable."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            return None

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def nginx_binary() -> str:
    exe = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None
    )
    if exe is None:
        unavailable("nginx is not installed (Debian package nginx)")
    assert exe is not None
    return exe


class Balancer:
    """Nginx round-robin over ``upstreams`` on a port of its own (plain HTTP on 127.0.0.1).

    The proxy directives are those of the shipped site's locations (HTTP/1.1 upstreams, the
    Upgrade/Connection pair for WebSockets, ``proxy_next_upstream`` on connection errors so a
    dead instance is skipped); TLS and the login rate limits are tested in test_nginx.py.
    """

    def __init__(self, root: Path, upstreams: list[int]) -> None:
        self.root = root
        self.port = free_port()
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        servers = "\n".join(
            f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=30s;" for p in upstreams
        )
        temp = " ".join(
            f"{kind}_temp_path {root}/tmp/{kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (root / "nginx.conf").write_text(
            f"""
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    {temp}
    upstream goapp {{
{servers}
    }}
    map $http_upgrade $goapp_connection_upgrade {{
        default upgrade;
        ''      '';
    }}
    server {{
        listen 127.0.0.1:{self.port};
        location / {{
            proxy_pass http://goapp;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $goapp_connection_upgrade;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_connect_timeout 2s;
            proxy_read_timeout 120s;
            proxy_next_upstream error timeout http_502 http_503;
        }}
    }}
}}
"""
        )
        if os.geteuid() == 0:  # workers run as nobody
            os.chmod(root, 0o755)
            shutil.chown(root / "tmp", "nobody")
        exe = nginx_binary()
        self.args = [
            exe,
            "-p",
            str(root),
            "-e",
            str(root / "error.log"),
            "-c",
            str(root / "nginx.conf"),
        ]
        check = subprocess.run(
            [*self.args, "-t", "-q"], capture_output=True, text=True, check=False
        )
        assert check.returncode == 0, check.stderr
        self.proc = subprocess.Popen(
            [*self.args, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_healthy(self.url, self.proc, 20, "nginx", (root / "error.log").read_text)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
