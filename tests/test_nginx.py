"""The shipped Nginx site (nginx/goapp.conf) run by the real Debian nginx, unprivileged, in
front of a real ``goapp serve``: plain HTTP redirects to HTTPS, HTTPS carries HSTS and
reaches goapp (/readyz), a ``wss://`` WebSocket reaches goapp's gateway through the upgrade,
the login rate limit answers 429, /metrics is not public, and every response carries the
Content-Security-Policy that forbids framing.

The site file is used as shipped; only its ports, certificate paths and webroot are
substituted (each substitution must match, so the test follows the file). A throwaway CA
and a localhost certificate are made with openssl.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from services import free_port, unavailable

from goapp.server.web import CONTENT_SECURITY_POLICY

# Nginx in front of goapp
pytestmark = [pytest.mark.nginx]

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "nginx" / "goapp.conf"


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None
    )


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(d: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate for localhost / 127.0.0.1 signed by it."""
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=goapp test CA", "-keyout", "ca.key", "-out", "ca.crt", cwd=d,
    )  # fmt: skip
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", "site.key", "-out", "site.csr", cwd=d,
    )  # fmt: skip
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl(
        "x509", "-req", "-in", "site.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "site.crt", cwd=d,
    )  # fmt: skip
    return d / "ca.crt", d / "site.crt", d / "site.key"


def substitute(text: str, old: str, new: str) -> str:
    assert old in text, f"nginx/goapp.conf no longer has {old!r}: update the test"
    return text.replace(old, new)


#: The site's ``limit_conn`` on /ws, as this test sets it.
WS_PER_ADDRESS = 4


def render_site(ports: dict[str, int], cert: Path, key: Path, webroot: Path) -> str:
    """nginx/goapp.conf for this test's ports and files."""
    text = SITE.read_text()
    for old, new in [
        ("listen 80;", f"listen 127.0.0.1:{ports['http']};"),
        ("listen [::]:80;", ""),
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{ports['https']} ssl http2;"),
        ("listen [::]:443 ssl http2;", ""),
        ("server 127.0.0.1:4000 ", f"server 127.0.0.1:{ports['goapp']} "),
        ("server 127.0.0.1:4001 ", f"server 127.0.0.1:{ports['goapp_ws']} "),
        ("server_name go.example.org;", "server_name localhost;"),
        ("/etc/goapp/tls/goapp.crt", str(cert)),
        ("/etc/goapp/tls/goapp.key", str(key)),
        ("root /var/www/html;", f"root {webroot};"),
        # the per-address WebSocket cap, low enough for a test to reach
        ("limit_conn goapp_ws_conn 100;", f"limit_conn goapp_ws_conn {WS_PER_ADDRESS};"),
    ]:
        text = substitute(text, old, new)
    return text


def main_conf(prefix: Path) -> str:
    """What Debian's /etc/nginx/nginx.conf provides around a site file, under ``prefix``."""
    temp = " ".join(
        f"{kind}_temp_path {prefix}/tmp/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {prefix}/access.log;
    {temp}
    include {prefix}/goapp.conf;
}}
"""


@dataclass
class Site:
    ports: dict[str, int]
    ca: Path

    @property
    def https(self) -> str:
        return f"https://localhost:{self.ports['https']}"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


def wait_for(check: object, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():  # type: ignore[operator]
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"{what} did not come up in {timeout}s"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    nginx = nginx_binary()
    if nginx is None:
        unavailable("nginx is not installed (Debian package nginx)")
    if shutil.which("openssl") is None:
        unavailable("openssl is not installed")
    assert nginx is not None
    d = tmp_path_factory.mktemp("nginx")
    ca, cert, key = make_certificates(d)
    (d / "tmp").mkdir()
    # The webroot must be readable by the workers (nobody when run as root).
    webroot = Path(tempfile.mkdtemp(prefix="goapp-www-"))
    webroot.chmod(0o755)
    challenge = webroot / ".well-known" / "acme-challenge"
    challenge.mkdir(parents=True)
    (challenge / "token123").write_text("token123.key\n")
    for p in (challenge, challenge.parent):
        p.chmod(0o755)
    (challenge / "token123").chmod(0o644)
    ports = {name: free_port() for name in ("http", "https", "goapp", "goapp_ws")}
    (d / "goapp.conf").write_text(render_site(ports, cert, key, webroot))
    (d / "nginx.conf").write_text(main_conf(d))
    if os.geteuid() == 0:  # workers run as nobody: let them into the temp paths
        os.chmod(d, 0o755)
        shutil.chown(d / "tmp", "nobody")

    env = {k: v for k, v in os.environ.items() if not k.startswith("GOAPP_")}
    env["GOAPP_SITE_URL"] = f"https://localhost:{ports['https']}"
    env["GOAPP_ENGINE"] = "none"
    env["GOAPP_METRICS_LISTEN"] = "127.0.0.1:0"  # any free port, not the default 9464
    goapp_log = (d / "goapp.log").open("w")
    goapp = subprocess.Popen(
        [
            *(sys.executable, "-m", "goapp", "serve", "--port", str(ports["goapp"])),
            *("--ws-port", str(ports["goapp_ws"]), "--data-dir", str(d / "data")),
        ],
        stdout=goapp_log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    nginx_args = [nginx, "-p", str(d), "-e", str(d / "error.log"), "-c", str(d / "nginx.conf")]
    check = subprocess.run(
        [*nginx_args, "-t", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    server = subprocess.Popen(
        [*nginx_args, "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        goapp_url = f"http://127.0.0.1:{ports['goapp']}/readyz"
        wait_for(lambda: urllib.request.urlopen(goapp_url, timeout=2).status == 200, "goapp")
        wait_for(lambda: (d / "nginx.pid").exists() and server.poll() is None, "nginx")
        yield Site(ports, ca)
    finally:
        server.send_signal(signal.SIGQUIT)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
        goapp.send_signal(signal.SIGTERM)
        try:
            assert goapp.wait(15) == 0
        finally:
            if goapp.poll() is None:
                goapp.kill()
            goapp_log.close()
            shutil.rmtree(webroot, ignore_errors=True)


def test_plain_http_redirects_to_https(site: Site) -> None:
    conn = http.client.HTTPConnection("localhost", site.ports["http"], timeout=5)
    conn.request("GET", "/readyz?x=1")
    resp = conn.getresponse()
    assert resp.status == 301
    assert resp.getheader("Location") == "https://localhost/readyz?x=1"
    conn.close()


def test_acme_challenges_are_served_over_plain_http(site: Site) -> None:
    conn = http.client.HTTPConnection("localhost", site.ports["http"], timeout=5)
    conn.request("GET", "/.well-known/acme-challenge/token123")
    resp = conn.getresponse()
    assert (resp.status, resp.read()) == (200, b"token123.key\n")  # not redirected
    conn.close()


def test_https_reaches_goapp_with_hsts(site: Site) -> None:
    with urllib.request.urlopen(
        f"{site.https}/readyz", context=site.ssl_context(), timeout=5
    ) as resp:
        assert resp.status == 200
        assert json.loads(resp.read())["status"] == "ready"
        hsts = resp.headers["Strict-Transport-Security"]
    assert hsts is not None and "max-age=63072000" in hsts


def test_metrics_are_not_public(site: Site) -> None:
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{site.https}/metrics", context=site.ssl_context(), timeout=5)
    assert err.value.code == 404
    assert err.value.headers["Strict-Transport-Security"]  # on errors too ("always")


def test_every_response_carries_the_csp_once(site: Site) -> None:
    """The site's Content-Security-Policy and X-Frame-Options on goapp's answers (goapp's
    own copies dropped: each header once) and on Nginx's own (the /metrics 404), equal to
    what goapp sends without Nginx."""
    for path, status in (("/", 200), ("/readyz", 200), ("/game/1", 200), ("/metrics", 404)):
        try:
            with urllib.request.urlopen(
                f"{site.https}{path}", context=site.ssl_context(), timeout=5
            ) as resp:
                code, headers = resp.status, resp.headers
        except urllib.error.HTTPError as exc:
            code, headers = exc.code, exc.headers
        assert code == status, path
        assert headers.get_all("Content-Security-Policy") == [CONTENT_SECURITY_POLICY], path
        assert headers.get_all("X-Frame-Options") == ["DENY"], path
        assert headers.get_all("X-Content-Type-Options") == ["nosniff"], path


async def test_websocket_upgrade_reaches_the_gateway(site: Site) -> None:
    ssl_ctx = site.ssl_context()
    async with aiohttp.ClientSession() as http_session:
        async with http_session.post(
            f"{site.https}/api/register",
            json={"name": "nginxuser", "password": "through the proxy"},
            ssl=ssl_ctx,
        ) as resp:
            assert resp.status == 201, await resp.text()
            token = (await resp.json())["access_token"]
        # Without a token the socket opens as a guest; a bad token is refused by goapp
        # (its 401 body proves the handshake went through Nginx to the gateway).
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await http_session.ws_connect(
                f"wss://localhost:{site.ports['https']}/ws?token=x", ssl=ssl_ctx
            )
        assert err.value.status == 401
        async with http_session.ws_connect(
            f"wss://localhost:{site.ports['https']}/ws?token={token}",
            ssl=ssl_ctx,
            protocols=("goapp.v1",),
            origin=site.https,
        ) as ws:
            assert ws.protocol == "goapp.v1"
            await ws.send_str(json.dumps({"type": "ping", "id": "p1", "t": 42}))
            deadline = asyncio.get_running_loop().time() + 10
            while True:
                left = deadline - asyncio.get_running_loop().time()
                assert left > 0, "no pong through Nginx"
                msg = await ws.receive(timeout=left)
                assert msg.type is aiohttp.WSMsgType.TEXT, msg
                frame = json.loads(msg.data)
                if frame.get("type") == "pong":
                    break
            assert frame.get("t") == 42, frame


async def test_websocket_connections_are_capped_per_address(site: Site) -> None:
    """``limit_conn`` on /ws: a client holding the cap in open sockets gets 429 from Nginx
    for the next one (an HTML body: goapp's own cap answers JSON); closing one frees a
    place."""
    ssl_ctx = site.ssl_context()
    url = f"wss://localhost:{site.ports['https']}/ws"
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http_session:
        sockets = [await http_session.ws_connect(url, ssl=ssl_ctx) for _ in range(WS_PER_ADDRESS)]
        for ws in sockets:
            assert json.loads((await ws.receive(timeout=10)).data)["type"] == "welcome"
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await http_session.ws_connect(url, ssl=ssl_ctx)
        assert err.value.status == 429
        assert err.value.headers is not None
        assert err.value.headers.get("Content-Type", "").startswith("text/html")
        await sockets.pop().close()
        deadline = asyncio.get_running_loop().time() + 10
        while True:  # Nginx counts the closed one out once its upstream side is closed
            try:
                sockets.append(await http_session.ws_connect(url, ssl=ssl_ctx))
                break
            except aiohttp.WSServerHandshakeError as exc:
                assert exc.status == 429
                assert asyncio.get_running_loop().time() < deadline, "no place freed"
                await asyncio.sleep(0.1)
        for ws in sockets:
            await ws.close()


def test_login_is_rate_limited_per_address(site: Site) -> None:
    """burst=10 at 10 a minute: after eleven quick tries Nginx answers 429 itself (an HTML
    body; goapp's own limit answers JSON)."""
    answers = []
    for _ in range(14):
        req = urllib.request.Request(
            f"{site.https}/api/login",
            data=json.dumps({"name": "nobody", "password": "wrong password"}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, context=site.ssl_context(), timeout=5) as resp:
                answers.append((resp.status, resp.headers.get_content_type()))
        except urllib.error.HTTPError as exc:
            answers.append((exc.code, exc.headers.get_content_type()))
    assert answers[0][0] != 429, answers
    assert (429, "text/html") in answers, answers
