"""Shared fixtures. Service fixtures (PostgreSQL, Redis) live in tests/services.py."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

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
