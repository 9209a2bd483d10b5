"""Shared fixtures, and the markers that say what a test needs.

Service fixtures (PostgreSQL, Redis) live in tests/services.py.

Markers (registered in pyproject.toml): ``postgres``, ``redis``, ``katago``, ``gnugo``,
``nginx``, ``chromium``, ``binary`` (the PyInstaller binary), ``server`` (starts a goapp
process), ``tools`` (runs another checker: docker-compose, cloud-init) and ``slow`` say what
a test needs; ``unit`` is set here on every test of tests/ that has none of them (``make
test-unit`` runs ``-m unit``). A test gets its needs from:

- the fixtures it uses (``FIXTURE_NEEDS``: ``pg_url``, ``redis_url``, ``katago``, ``binary``
  ... and ``store_url``'s PostgreSQL parameter), directly or through other fixtures;
- ``pytestmark`` in its module or a ``@pytest.mark.<need>`` on the test, for what no
  fixture shows (GNU Go found on the PATH, a goapp started with ``subprocess``).

A test labelled ``unit`` that starts a process or connects to the PostgreSQL or Redis port
or off this machine fails, naming what it did (an audit hook watches), so a missing
label cannot pass silently.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Generator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from api_support import Api, fast_scrypt, make_api
from engine_support import KATAGO_MODEL
from services import pg_cluster, pg_schema_url, pg_url, redis_url

from goapp.engine.download import DownloadError, fetch_wheel
from goapp.engine.setup import (
    DOWNLOADS,
    KATRAIN_VERSION,
    KataGoPaths,
    KataGoSetupError,
    install_katago,
    tune,
)
from goapp.server.context import ServerContext
from goapp.server.wiring import close_services, open_services
from goapp.settings import load_settings
from goapp.store import Store, open_store

__all__ = ["pg_cluster", "pg_schema_url", "pg_url", "redis_url"]

BACKENDS = ["sqlite", "postgres"]

# -- what a test needs ------------------------------------------------------------------------

#: Every marker that names a need; a test of tests/ with none of them is ``unit``.
NEEDS = (
    "postgres", "redis", "katago", "gnugo", "nginx", "chromium", "binary", "server", "tools", "slow"
)  # fmt: skip

#: The shared fixtures that bring a need with them.
FIXTURE_NEEDS = {
    "pg_url": "postgres",
    "pg_schema_url": "postgres",
    "pg_cluster": "postgres",
    "redis_url": "redis",
    "katago": "katago",
    "katrain_wheel": "katago",
    "binary": "binary",
}

TESTS_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if TESTS_DIR not in item.path.parents:
            continue  # benches/: measured, not sorted by need
        fixtures = set(getattr(item, "fixturenames", ()))
        for fixture, need in FIXTURE_NEEDS.items():
            if fixture in fixtures:
                item.add_marker(need)
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("store_url") == "postgres":
            item.add_marker("postgres")
        if not any(item.get_closest_marker(need) for need in NEEDS):
            item.add_marker("unit")


def _service_ports() -> set[int]:
    ports = {5432, 6379}
    for var in ("GOAPP_TEST_PG_URL", "GOAPP_TEST_REDIS_URL"):
        url = os.environ.get(var)
        if url:
            with_port = urlsplit(url).port
            if with_port:
                ports.add(with_port)
    return ports


#: What a test labelled ``unit`` did that it may not, while it runs (None: not a unit test).
_unit_violations: list[str] | None = None
_SERVICE_PORTS = _service_ports()
_TMP = Path(tempfile.gettempdir()).resolve()
_PROGRAM_NEEDS = {
    "gnugo": "gnugo",
    "nginx": "nginx",
    "chromium": "chromium",
    "katago": "katago",
    "pg_ctl": "postgres",
    "initdb": "postgres",
    "postgres": "postgres",
    "redis-server": "redis",
}


def _spawned(argv: Any) -> str | None:
    args = [os.fsdecode(a) for a in argv] if isinstance(argv, list | tuple) else [str(argv)]
    if args and Path(args[0]).resolve().is_relative_to(_TMP):
        return None  # a fake (engine, tool) the test wrote itself: it needs nothing
    name = Path(args[0]).name if args else "?"
    need = _PROGRAM_NEEDS.get(name)
    if need is None and "goapp" in " ".join(args):
        need = "server"
    hint = f"mark it {need}" if need else "mark it with what it needs"
    return f"started a process {' '.join(args)[:200]!r} ({hint})"


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _unit_violations is None:
        return
    what = None
    if event == "subprocess.Popen":
        what = _spawned(args[1] if args[1] is not None else args[0])
    elif event in ("os.posix_spawn", "os.system"):
        what = _spawned(args[1] if event != "os.system" else args[0])
    elif event == "socket.connect" and isinstance(args[1], tuple) and len(args[1]) >= 2:
        host, port = args[1][0], args[1][1]
        try:
            local = ipaddress.ip_address(host).is_loopback
        except ValueError:
            local = host == "localhost"
        if not local:
            what = f"connected to {host}:{port} (the network)"
        elif port in _SERVICE_PORTS:
            what = f"connected to port {port} (mark it postgres or redis)"
    if what is not None:
        _unit_violations.append(what)  # the report fails the test (raising here hangs some)


sys.addaudithook(_audit)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    global _unit_violations
    _unit_violations = [] if item.get_closest_marker("unit") else None
    try:
        return (yield)
    finally:
        _unit_violations = None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if _unit_violations and report.outcome != "failed":
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid} is labelled unit (no fixture or marker says what it needs) but "
            + "; ".join(dict.fromkeys(_unit_violations))
            + ". See tests/conftest.py."
        )
    return report


@pytest.fixture
async def api(
    store_url: str, tmp_path: Path, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Api]:
    """The real app (API, WebSocket, no engine) on ``store_url``, with cheap scrypt."""
    fast_scrypt(monkeypatch)
    async for a in make_api(aiohttp_client, tmp_path, store_url):
        yield a


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[ServerContext]:
    """A server context on a fresh SQLite data directory (modules may define their own)."""
    c = await open_services(load_settings(env={}, overrides={"data_dir": tmp_path}))
    try:
        yield c
    finally:
        await close_services(c)


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each backend (the same tests run against both)."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/goapp.db"
    url: str = request.getfixturevalue("pg_schema_url")
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """An open, migrated store of each backend."""
    s = await open_store(store_url)
    try:
        yield s
    finally:
        await s.close()


# -- KataGo -----------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
KATAGO_CACHE = REPO / ".katago"


@pytest.fixture(scope="session")
def katrain_wheel() -> Path:
    """The real katrain wheel (KataGo's binary), fetched from the package index once into
    .katago/downloads (where `make katago` puts it)."""
    try:
        return fetch_wheel("katrain", KATRAIN_VERSION, KATAGO_CACHE / DOWNLOADS, progress=None)
    except DownloadError as exc:
        pytest.fail(f"the package index is needed (as for `make katago`): {exc}")


@pytest.fixture(scope="session")
def katago() -> KataGoPaths:
    """KataGo installed in .katago/ with the test model, OpenCL tuned."""
    try:
        if not KATAGO_MODEL.is_file():
            raise KataGoSetupError(f"test model not found: {KATAGO_MODEL}")
        paths = install_katago(KATAGO_CACHE, KATAGO_MODEL)
        assert paths.model is not None
        # The first start with this model tunes OpenCL into .katago/home (minutes; `make
        # katago` did it already): the same start the server makes, once.
        tune(paths)
    except (KataGoSetupError, subprocess.SubprocessError, OSError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"KataGo is required in CI: {exc}")
        pytest.skip(f"KataGo not available: {exc}")
    return paths


# -- the one-file binary ----------------------------------------------------------------------

DIST = REPO / "dist" / "goapp"
BINARY_SOURCES = [REPO / "goapp", REPO / "appliance", REPO / "setup.py", REPO / "pyproject.toml"]
SKIP_SUFFIXES = {".pyc", ".c", ".html"}


def newest_source_mtime() -> float:
    newest = 0.0
    for src in BINARY_SOURCES:
        files = [src] if src.is_file() else [p for p in src.rglob("*") if p.is_file()]
        for f in files:
            if "__pycache__" not in f.parts and f.suffix not in SKIP_SUFFIXES:
                newest = max(newest, f.stat().st_mtime)
    return newest


@pytest.fixture(scope="session")
def binary() -> Path:
    """dist/goapp (appliance/build.sh), built once per session and only when a source is
    newer than it; ``GOAPP_TEST_BINARY=PATH`` tests a binary built elsewhere instead."""
    given = os.environ.get("GOAPP_TEST_BINARY")
    if given:
        return Path(given).resolve()
    lock = REPO / "build" / "binary.lock"
    lock.parent.mkdir(exist_ok=True)
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # one build at a time across concurrent sessions
        if not DIST.exists() or DIST.stat().st_mtime < newest_source_mtime():
            proc = subprocess.run(
                [str(REPO / "appliance" / "build.sh")],
                env={**os.environ, "PYTHON": sys.executable},
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return DIST
