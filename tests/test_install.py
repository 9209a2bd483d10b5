"""appliance/install.sh, run into a temporary DESTDIR (where it runs no system command and
prints them instead): files and modes, idempotence, goapp.prev and --rollback, --cert/--key,
--uninstall (keeps settings and data) and --purge; shellcheck finds nothing in the scripts.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from services import unavailable

# runs appliance/install.sh and the installed goapp
pytestmark = [pytest.mark.server]

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "appliance" / "install.sh"
SITE_URL = "https://go.test.example"


def run(destdir: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DESTDIR": str(destdir)}
    proc = subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=120
    )
    if ok:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def fake_binary(d: Path, version: str) -> Path:
    path = d / f"goapp-{version}"
    path.write_text(f"#!/bin/sh\necho {version}\n")
    path.chmod(0o700)
    return path


def snapshot(root: Path) -> dict[str, tuple[str, str]]:
    """Every path under root: its mode and content hash (or link target)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p))
        elif p.is_dir():
            out[rel] = (oct(stat.S_IMODE(p.stat().st_mode)), "dir")
        else:
            digest = hashlib.sha256(p.read_bytes()).hexdigest()
            out[rel] = (oct(stat.S_IMODE(p.stat().st_mode)), digest)
    return out


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "root"


def test_install_twice_gives_the_same_tree(tmp_path: Path, dest: Path) -> None:
    v1 = fake_binary(tmp_path, "v1")
    first = run(dest, "--binary", str(v1), "--site-url", SITE_URL + "/")
    tree = snapshot(dest)
    second = run(dest, "--binary", str(v1))  # the site URL now comes from goapp.toml
    assert snapshot(dest) == tree  # nothing rewritten, nothing added, no goapp.prev

    # DESTDIR runs no system command; it says what it would run.
    for out in (first.stdout, second.stdout):
        assert not re.search(r"^\+ ", out, re.M), out
        assert "would run: useradd --system" in out
        assert "would run: systemctl enable goapp.service goapp-backup.timer" in out
        assert "would run: systemctl restart goapp.service" in out
        assert "would run: nginx -t" in out

    assert (dest / "usr/local/bin/goapp").read_bytes() == v1.read_bytes()
    assert mode(dest / "usr/local/bin/goapp") == 0o755
    assert not (dest / "usr/local/bin/goapp.prev").exists()
    for unit in ("goapp.service", "goapp-backup.service", "goapp-backup.timer"):
        installed = dest / "etc/systemd/system" / unit
        assert installed.read_text() == (ROOT / "systemd" / unit).read_text()
        assert mode(installed) == 0o644
    assert mode(dest / "var/lib/goapp") == 0o750
    assert (dest / "var/lib/goapp/backups").is_dir()
    assert mode(dest / "etc/goapp") == 0o750

    secret = dest / "etc/goapp/jwt_secret"
    assert mode(secret) == 0o600
    assert re.fullmatch(r"[0-9a-f]{64}\n", secret.read_text())
    toml = dest / "etc/goapp/goapp.toml"
    assert mode(toml) == 0o640
    # goapp reads the settings file install.sh wrote (the first --site-url, slash dropped).
    proc = subprocess.run(
        [sys.executable, "-m", "goapp", "settings", "--config", str(toml)],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("GOAPP_")},
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"site_url = {SITE_URL}" in proc.stdout.splitlines()
    assert "data_dir = /var/lib/goapp" in proc.stdout.splitlines()

    # A self-signed certificate for the site's host, and the Nginx site using it.
    assert mode(dest / "etc/goapp/tls/goapp.key") == 0o600
    cert = subprocess.run(
        ["openssl", "x509", "-noout", "-subject", "-in", str(dest / "etc/goapp/tls/goapp.crt")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "go.test.example" in cert.stdout
    site = (dest / "etc/nginx/sites-available/goapp.conf").read_text()
    assert "server_name go.test.example;" in site and "go.example.org" not in site
    assert "ssl_certificate /etc/goapp/tls/goapp.crt;" in site
    link = dest / "etc/nginx/sites-enabled/goapp.conf"
    assert os.readlink(link) == "../sites-available/goapp.conf" and link.resolve().exists()


def test_a_new_site_url_updates_the_settings_and_the_site(tmp_path: Path, dest: Path) -> None:
    v1 = fake_binary(tmp_path, "v1")
    run(dest, "--binary", str(v1), "--site-url", SITE_URL)
    toml = dest / "etc/goapp/goapp.toml"
    toml.write_text(toml.read_text() + 'log_level = "debug"\n')  # an admin's edit
    run(dest, "--binary", str(v1), "--site-url", "https://play.example.net")
    text = toml.read_text()
    assert 'site_url = "https://play.example.net"' in text and SITE_URL not in text
    assert 'log_level = "debug"' in text
    site = (dest / "etc/nginx/sites-available/goapp.conf").read_text()
    assert "server_name play.example.net;" in site


def test_upgrade_keeps_the_previous_binary_and_rollback_swaps(tmp_path: Path, dest: Path) -> None:
    v1, v2 = fake_binary(tmp_path, "v1"), fake_binary(tmp_path, "v2")
    run(dest, "--binary", str(v1), "--site-url", SITE_URL)
    secret = (dest / "etc/goapp/jwt_secret").read_text()
    bindir = dest / "usr/local/bin"
    run(dest, "--binary", str(v2), "--site-url", SITE_URL)
    run(dest, "--binary", str(v2), "--site-url", SITE_URL)  # same binary: prev stays v1
    assert (bindir / "goapp").read_bytes() == v2.read_bytes()
    assert (bindir / "goapp.prev").read_bytes() == v1.read_bytes()
    assert (dest / "etc/goapp/jwt_secret").read_text() == secret  # never regenerated

    out = run(dest, "--rollback").stdout
    assert "would run: systemctl restart goapp.service" in out
    assert (bindir / "goapp").read_bytes() == v1.read_bytes()
    assert (bindir / "goapp.prev").read_bytes() == v2.read_bytes()
    assert mode(bindir / "goapp") == 0o755
    run(dest, "--rollback")  # and forward again
    assert (bindir / "goapp").read_bytes() == v2.read_bytes()
    assert not (bindir / "goapp.swap").exists()


def test_rollback_without_a_previous_binary_fails(tmp_path: Path, dest: Path) -> None:
    run(dest, "--binary", str(fake_binary(tmp_path, "v1")), "--site-url", SITE_URL)
    proc = run(dest, "--rollback", ok=False)
    assert proc.returncode != 0 and "no previous binary" in proc.stderr
    assert (dest / "usr/local/bin/goapp").exists()


def test_given_certificate_is_used_and_none_is_made(tmp_path: Path, dest: Path) -> None:
    cert, key = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
    cert.write_text("cert")
    key.write_text("key")
    v1 = fake_binary(tmp_path, "v1")
    run(dest, "--binary", str(v1), "--site-url", SITE_URL, "--cert", str(cert), "--key", str(key))
    site = (dest / "etc/nginx/sites-available/goapp.conf").read_text()
    assert f"ssl_certificate {cert};" in site and f"ssl_certificate_key {key};" in site
    assert not (dest / "etc/goapp/tls").exists()
    half = run(dest, "--binary", str(v1), "--cert", str(cert), ok=False)
    assert half.returncode != 0 and "--cert and --key go together" in half.stderr


def test_missing_binary_and_bad_options_fail_clearly(tmp_path: Path, dest: Path) -> None:
    proc = run(dest, "--binary", str(tmp_path / "nope"), ok=False)
    assert proc.returncode != 0 and "no binary at" in proc.stderr
    proc = run(dest, "--frobnicate", ok=False)
    assert proc.returncode == 2 and "unknown option --frobnicate" in proc.stderr
    assert not dest.exists()


def test_uninstall_keeps_settings_and_data_unless_purged(tmp_path: Path, dest: Path) -> None:
    run(dest, "--binary", str(fake_binary(tmp_path, "v1")), "--site-url", SITE_URL)
    run(dest, "--binary", str(fake_binary(tmp_path, "v2")), "--site-url", SITE_URL)
    (dest / "var/lib/goapp/goapp.db").write_text("precious")
    out = run(dest, "--uninstall").stdout
    assert "would run: systemctl disable --now goapp.service goapp-backup.timer" in out
    assert not list((dest / "usr/local/bin").iterdir())
    assert not list((dest / "etc/systemd/system").iterdir())
    assert not (dest / "etc/nginx/sites-enabled/goapp.conf").is_symlink()
    assert not (dest / "etc/nginx/sites-available/goapp.conf").exists()
    assert (dest / "var/lib/goapp/goapp.db").read_text() == "precious"
    assert (dest / "etc/goapp/jwt_secret").exists()
    run(dest, "--uninstall")  # again: nothing left to remove, still fine

    out = run(dest, "--uninstall", "--purge").stdout
    assert "would run: userdel goapp" in out
    assert not (dest / "var/lib/goapp").exists() and not (dest / "etc/goapp").exists()


def test_shellcheck_finds_nothing() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        unavailable("shellcheck is not installed (Debian package shellcheck)")
    scripts = sorted(str(p) for p in (ROOT / "appliance").glob("*.sh"))
    assert len(scripts) >= 2
    proc = subprocess.run(
        [str(shellcheck), "--shell=bash", "--severity=style", *scripts],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.timeout(60)
def test_the_installed_settings_and_secret_start_goapp(tmp_path: Path, dest: Path) -> None:
    """goapp serve as the unit runs it: --config goapp.toml, the secret from
    GOAPP_JWT_SECRET_FILE (the credential); ports and data folder moved for the test."""
    import time
    import urllib.request

    from services import free_port

    run(dest, "--binary", str(fake_binary(tmp_path, "v1")), "--site-url", SITE_URL)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOAPP_")}
    env["GOAPP_JWT_SECRET_FILE"] = str(dest / "etc/goapp/jwt_secret")
    env["GOAPP_DATA_DIR"] = str(tmp_path / "data")
    env["GOAPP_METRICS_LISTEN"] = "127.0.0.1:0"  # any free port, not the default 9464
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "goapp", "serve"),
            *("--config", str(dest / "etc/goapp/goapp.toml")),
            *("--port", str(port), "--ws-port", "0"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "goapp did not become ready"
                time.sleep(0.05)
        # The secret came from the file: no secret was generated in the data folder.
        assert not (tmp_path / "data" / "jwt_secret").exists()
    finally:
        proc.terminate()
        assert proc.wait(15) == 0
        if proc.stderr:
            proc.stderr.close()


# -- what goes into sed expressions, goapp.toml and the Nginx site -------------------------------

BAD_SITE_URLS = [
    "https://go.example.org/path",  # a path: the site is served at the root
    "https://go.example.org/?x=1",
    "https://a|b.example.org",  # the sed delimiter
    'https://go"x.example.org',  # ends the TOML string
    "https://go.example.org\nport = 1",  # a new TOML line
    "https://go.example.org&",  # sed's "whole match"
    "https://user@go.example.org",
    "https://go example.org",
    "https://-go.example.org",
    "https://go.example.org:99999",
    "https://go.example.org:",
    "https://[::1]",
    "ftp://go.example.org",
]


@pytest.mark.parametrize("url", BAD_SITE_URLS)
def test_a_bad_site_url_is_refused_and_changes_nothing(
    tmp_path: Path, dest: Path, url: str
) -> None:
    proc = run(dest, "--binary", str(fake_binary(tmp_path, "v1")), "--site-url", url, ok=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.startswith("install.sh: --site-url"), proc.stderr
    assert not dest.exists()


def test_a_bad_site_url_in_goapp_toml_is_refused_too(tmp_path: Path, dest: Path) -> None:
    v1 = fake_binary(tmp_path, "v1")
    run(dest, "--binary", str(v1), "--site-url", SITE_URL)
    toml = dest / "etc/goapp/goapp.toml"
    toml.write_text(toml.read_text().replace(SITE_URL, "https://go.example.org/x|y"))
    tree = snapshot(dest)
    proc = run(dest, "--binary", str(v1), ok=False)
    assert proc.returncode == 1 and "--site-url must be" in proc.stderr, proc.stderr
    assert snapshot(dest) == tree


def test_a_site_url_with_a_port_and_other_ports(tmp_path: Path, dest: Path) -> None:
    """An HTTPS port other than 443 (in the site URL too), and goapp's ports from goapp.toml:
    the Nginx site listens and proxies where they say."""
    (dest / "etc/goapp").mkdir(parents=True)
    (dest / "etc/goapp/goapp.toml").write_text("port = 4310\nws_port = 4311  # websocket\n")
    v1 = fake_binary(tmp_path, "v1")
    url = "https://go.test.example:8443"
    run(dest, "--binary", str(v1), "--site-url", url, "--https-port", "8443", "--http-port", "8080")
    assert f'site_url = "{url}"' in (dest / "etc/goapp/goapp.toml").read_text()
    site = (dest / "etc/nginx/sites-available/goapp.conf").read_text()
    assert "server_name go.test.example;" in site
    assert re.findall(r"^\s*listen (.*);$", site, re.M) == [
        "8080",
        "[::]:8080",
        "8443 ssl http2",
        "[::]:8443 ssl http2",
    ]
    assert "return 301 https://$host:8443$request_uri;" in site
    assert "server 127.0.0.1:4310 max_fails" in site and "server 127.0.0.1:4311 max_fails" in site
    # Run again with the site URL from goapp.toml: its port stays Nginx's HTTPS port.
    run(dest, "--binary", str(v1), "--http-port", "8080")
    assert (dest / "etc/nginx/sites-available/goapp.conf").read_text() == site
    for bad in ("0", "65536", "8o"):
        proc = run(dest, "--binary", str(v1), "--https-port", bad, ok=False)
        assert proc.returncode == 1 and "--https-port must be a port" in proc.stderr


def test_katago_is_installed_as_goapp_into_the_state_directory(tmp_path: Path, dest: Path) -> None:
    wheel, model = tmp_path / "katrain.whl", tmp_path / "net.bin.gz"
    wheel.write_text("wheel")
    model.write_text("model")
    v1 = fake_binary(tmp_path, "v1")
    out = run(
        dest, "--binary", str(v1), "--site-url", SITE_URL,
        "--engine-wheel", str(wheel), "--engine-model", str(model),
    ).stdout  # fmt: skip
    incoming = "/var/lib/goapp/katago/incoming"
    assert (
        "would run: runuser -u goapp -- env TMPDIR=/tmp /usr/local/bin/goapp engine setup "
        f"--dest /var/lib/goapp/katago --wheel {incoming}/katrain.whl "
        f"--model {incoming}/net.bin.gz"
    ) in out, out
    assert f"would run: chown -R goapp:goapp {incoming}" in out
    assert mode(dest / "var/lib/goapp/katago") == 0o750
    assert not (dest / incoming.lstrip("/")).exists()  # the copies handed over are gone
    # The default: the binary fetches KataGo itself; --no-engine: nothing of it.
    assert (
        "goapp engine setup --dest /var/lib/goapp/katago\n" in run(dest, "--binary", str(v1)).stdout
    )
    other = tmp_path / "other"
    out = run(other, "--binary", str(v1), "--site-url", SITE_URL, "--no-engine").stdout
    assert "engine setup" not in out and not (other / "var/lib/goapp/katago").exists()
    # A file that is not there: refused before anything is written.
    proc = run(tmp_path / "third", "--binary", str(v1), "--engine-wheel", "/nope.whl", ok=False)
    assert proc.returncode == 1 and "no such file: /nope.whl" in proc.stderr
    assert not (tmp_path / "third").exists()
