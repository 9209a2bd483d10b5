"""The container, cloud and CI files of the appliance, checked by their own tools where
they exist here and parsed otherwise:

* appliance/compose.yaml with ``docker compose config -q`` (the Compose plugin, or the
  Debian package ``docker-compose``; no Docker engine is needed), plus its services;
* appliance/Dockerfile: the stages, the non-root user, the volume and the healthcheck;
* appliance/cloud-init.yaml with ``cloud-init schema --config-file`` (Debian ``cloud-init``);
* .github/workflows/ci.yml, bench.yml and .github/dependabot.yml: YAML with the keys and steps that
  matter.

A missing tool fails the test (they are in the Makefile's TEST_DEBS), it does not skip.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
APPLIANCE = ROOT / "appliance"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def compose_command() -> list[str]:
    """``docker compose`` (v2 plugin) when present, else ``docker-compose``."""
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    pytest.fail("neither `docker compose` nor `docker-compose` (Debian: docker-compose)")


def compose_config(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*compose_command(), "-f", str(APPLIANCE / "compose.yaml"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **env},
        cwd=ROOT,
    )


@pytest.mark.tools
def test_compose_file_is_valid() -> None:
    for profiles in ([], ["--profile", "katago", "--profile", "nginx"]):
        proc = compose_config(*profiles, "config", "-q", GOAPP_DB_PASSWORD="test-password")
        assert proc.returncode == 0, proc.stdout + proc.stderr
    # The database password is required, not defaulted.
    proc = compose_config("config", "-q", GOAPP_DB_PASSWORD="")
    assert proc.returncode != 0 and "GOAPP_DB_PASSWORD" in proc.stderr, proc.stderr


def test_compose_services() -> None:
    doc = load(APPLIANCE / "compose.yaml")
    services = doc["services"]
    assert set(services) == {"goapp", "postgres", "engine", "nginx"}
    goapp = services["goapp"]
    assert goapp["build"]["dockerfile"] == "appliance/Dockerfile"
    assert goapp["depends_on"]["postgres"]["condition"] == "service_healthy"
    env = goapp["environment"]
    assert env["GOAPP_DATABASE_URL"].startswith("postgresql://goapp:")
    assert "@postgres:5432/goapp" in env["GOAPP_DATABASE_URL"]
    assert "/readyz" in " ".join(goapp["healthcheck"]["test"])
    assert any(v.endswith(":/var/lib/goapp") for v in goapp["volumes"])
    # The engine and Nginx are optional (profiles); the engine is `goapp engine serve`.
    engine = services["engine"]
    assert engine["profiles"] == ["katago"]
    assert engine["command"][:2] == ["engine", "serve"]
    assert "0.0.0.0:4100" in engine["command"]
    assert any(v.startswith("katago:") for v in engine["volumes"])
    assert services["nginx"]["profiles"] == ["nginx"]
    conf = APPLIANCE / services["nginx"]["volumes"][0].split(":")[0]
    assert "server goapp:4000" in conf.read_text()
    # goapp believes X-Forwarded-For from Nginx's fixed address only (else every client
    # behind Nginx shares its per-address buckets), an address no other container can get
    proxy = ipaddress.ip_address(services["nginx"]["networks"]["default"]["ipv4_address"])
    assert env["GOAPP_TRUSTED_PROXIES"] == f"${{GOAPP_TRUSTED_PROXIES:-{proxy}}}"
    (net,) = doc["networks"]["default"]["ipam"]["config"]
    assert proxy in ipaddress.ip_network(net["subnet"])
    assert proxy not in ipaddress.ip_network(net["ip_range"])
    assert {"goapp-data", "postgres-data", "katago"} <= set(doc["volumes"])


def test_dockerfile() -> None:
    text = (APPLIANCE / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)(?: AS (\S+))?", text, re.M)
    assert stages == [("python:3.11-slim-bookworm", "build"), ("debian:bookworm-slim", "")]
    build, run = text.split("\nFROM debian:bookworm-slim", 1)
    assert "gcc" in build and "appliance/build.sh" in build
    assert "COPY --from=build /src/dist/goapp /usr/local/bin/goapp" in run
    assert re.search(r"^USER goapp$", run, re.M)
    assert 'VOLUME ["/var/lib/goapp"]' in run
    assert re.search(r"HEALTHCHECK .*\n\s+CMD curl -fsS http://127.0.0.1:4000/readyz", run)
    assert "useradd --system" in run and "TMPDIR=/var/lib/goapp/tmp" in run
    # The build context keeps out the venv, build outputs and data.
    ignore = (APPLIANCE / "Dockerfile.dockerignore").read_text().splitlines()
    assert ignore[1] == "*" and "!goapp/" in ignore


@pytest.mark.tools
def test_cloud_init_user_data_is_valid() -> None:
    tool = shutil.which("cloud-init")
    if tool is None:
        pytest.fail("cloud-init is not installed (Debian: cloud-init, in TEST_DEBS)")
    path = APPLIANCE / "cloud-init.yaml"
    proc = subprocess.run(
        [tool, "schema", "--config-file", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0 and "Valid cloud-config" in proc.stdout, proc.stdout + proc.stderr
    assert path.read_text().startswith("#cloud-config\n")
    doc = load(path)
    files = {f["path"]: f["content"] for f in doc["write_files"]}
    assert "GOAPP_RELEASE_URL=" in files["/etc/goapp-bootstrap.env"]
    script = files["/usr/local/sbin/goapp-bootstrap"]
    assert 'install.sh" --site-url "$GOAPP_SITE_URL"' in script
    assert "command -v ufw" in script and "ufw allow 443/tcp" in script
    assert ["/usr/local/sbin/goapp-bootstrap"] in doc["runcmd"]
    # The bootstrap script is valid sh.
    sh = subprocess.run(["sh", "-n"], input=script, capture_output=True, text=True, check=False)
    assert sh.returncode == 0, sh.stderr


@pytest.mark.tools
def test_cloud_init_schema_catches_errors(tmp_path: Path) -> None:
    """The check bites: a wrongly typed key fails it."""
    tool = shutil.which("cloud-init")
    if tool is None:
        pytest.fail("cloud-init is not installed (Debian: cloud-init, in TEST_DEBS)")
    bad = tmp_path / "bad.yaml"
    bad.write_text("#cloud-config\npackages: 3\n")
    proc = subprocess.run(
        [tool, "schema", "--config-file", str(bad)], capture_output=True, text=True, check=False
    )
    assert proc.returncode != 0


def test_ci_workflow() -> None:
    wf = load(ROOT / ".github" / "workflows" / "ci.yml")
    on = wf[True] if True in wf else wf["on"]  # YAML 1.1 reads the key `on` as true
    assert "pull_request" in on and on["push"]["tags"] == ["v*"]
    test = wf["jobs"]["test"]
    assert test["runs-on"].startswith("ubuntu")
    # test_journey.py boots a container with systemd inside the job's container.
    assert "--privileged" in test["container"]["options"]
    assert {"postgres", "redis"} <= set(test["services"])
    assert test["env"]["GOAPP_TEST_PG_URL"].startswith("postgresql://")
    assert test["env"]["CI"] == "true"
    runs = [step.get("run", "") for step in test["steps"]]
    assert any(r.startswith("make test") for r in runs)
    assert test["steps"][0]["uses"].startswith("actions/checkout@")

    release = wf["jobs"]["release"]
    assert release["needs"] == "test"
    assert release["if"] == "startsWith(github.ref, 'refs/tags/v')"
    assert release["permissions"]["contents"] == "write"
    runs = [step.get("run", "") for step in release["steps"]]
    assert "make binary" in runs
    uses = [step.get("uses", "") for step in release["steps"]]
    assert any(u.startswith("actions/upload-artifact@") for u in uses)
    assert any(u.startswith("softprops/action-gh-release@") for u in uses)
    # The archive holds what install.sh needs next to the binary (cloud-init runs it).
    archive = next(r for r in runs if "tar -czf" in r)
    for part in ("dist/goapp", "appliance", "systemd", "nginx", "docs/deployment.md"):
        assert part in archive


def test_bench_workflow() -> None:
    """Pull requests run make bench-check against their merge base; a label accepts."""
    wf = load(ROOT / ".github" / "workflows" / "bench.yml")
    on = wf[True] if True in wf else wf["on"]
    assert {"opened", "synchronize", "labeled", "unlabeled"} <= set(on["pull_request"]["types"])
    job = wf["jobs"]["bench-check"]
    assert job["steps"][0]["uses"].startswith("actions/checkout@")
    assert job["steps"][0]["with"]["fetch-depth"] == 0
    step = next(s for s in job["steps"] if "make bench-check" in s.get("run", ""))
    assert 'git merge-base "$BASE_SHA" HEAD' in step["run"]
    assert 'BASE="$base"' in step["run"] and "LOAD=1" in step["run"]
    assert 'SUMMARY="$GITHUB_STEP_SUMMARY"' in step["run"]
    assert step["env"]["BASE_SHA"] == "${{ github.event.pull_request.base.sha }}"
    assert "'benchmark-regression-ok'" in step["env"]["ACCEPT"]
    assert "--accept-regressions" in step["env"]["ACCEPT"]
    assert 'BENCH_ARGS="$ACCEPT"' in step["run"]


def test_dependabot() -> None:
    doc = load(ROOT / ".github" / "dependabot.yml")
    assert doc["version"] == 2
    ecosystems = {u["package-ecosystem"]: u for u in doc["updates"]}
    assert {"pip", "github-actions"} <= set(ecosystems)
    for name in ("pip", "github-actions"):
        assert ecosystems[name]["directory"] == "/"
        assert ecosystems[name]["schedule"]["interval"] == "weekly"


def test_runbooks_are_linked_from_the_index() -> None:
    runbooks = ROOT / "docs" / "runbooks"
    index = (runbooks / "README.md").read_text()
    linked = set(re.findall(r"\]\(([\w.-]+\.md)\)", index))
    present = {p.name for p in runbooks.glob("*.md")} - {"README.md"}
    assert present <= linked, f"not linked from docs/runbooks/README.md: {present - linked}"
    for page in sorted(present):
        for target in re.findall(r"\]\(([\w./-]+\.md)\)", (runbooks / page).read_text()):
            assert (runbooks / target).exists(), f"{page} links to missing {target}"
    for name in (
        "websocket-storm.md",
        "database-failover.md",
        "engine-crash-loop.md",
        "jwt-secret-rotation.md",
        "upgrade-zero-loss.md",
    ):
        assert name in present
