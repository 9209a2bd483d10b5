"""Real PostgreSQL and Redis for tests.

* ``pg_url`` (session): ``GOAPP_TEST_PG_URL`` if set; else the server at
  127.0.0.1:5432/test if it answers; else a throwaway cluster (initdb + pg_ctl, as user
  ``postgres`` when running as root) on a free port, removed at the end.
* ``pg_schema_url`` (function): ``pg_url`` plus ``search_path`` set to a fresh schema that
  is dropped after the test, so tests never see each other's tables.
* ``pg_cluster`` (function): a throwaway cluster the test owns (stop/start/restart it).
* ``redis_url`` (session): ``GOAPP_TEST_REDIS_URL``; else 127.0.0.1:6379 if it answers
  PING; else a throwaway ``redis-server`` on a free port.

When a service cannot be had, the tests that need it FAIL when the ``CI`` environment
variable is set and are skipped (with the reason) otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

T = TypeVar("T")
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def unavailable(what: str) -> None:
    """Fail under CI, skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} (CI is set, so this is an error)", pytrace=False)
    pytest.skip(what)


def run_async(fn: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, even inside a running event loop."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(fn())  # type: ignore[arg-type]
        except BaseException as e:
            box["error"] = e

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return,unused-ignore]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(params)
    return urlunsplit(parts._replace(query=urlencode(query)))


def pg_reachable(url: str) -> bool:
    import asyncpg

    async def probe() -> bool:
        conn = await asyncpg.connect(url, timeout=3)
        await conn.close()
        return True

    try:
        return run_async(probe)
    except Exception:
        return False


def pg_bin_dir() -> Path | None:
    env = os.environ.get("GOAPP_PG_BIN")
    candidates = [Path(env)] if env else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    found = shutil.which("pg_ctl")
    if found:
        candidates.append(Path(found).parent)
    for c in candidates:
        if (c / "pg_ctl").exists() and (c / "initdb").exists():
            return c
    return None


class PgCluster:
    """A throwaway PostgreSQL cluster in a temporary directory."""

    def __init__(self, bindir: Path, root: Path, port: int) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.port = port
        self.log = root / "server.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _cmd(self, *args: str) -> list[str]:
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            return ["runuser", "-u", "postgres", "--", *args]
        return list(args)

    def _run(self, *args: str, timeout: float = 60) -> None:
        proc = subprocess.run(
            self._cmd(*args), capture_output=True, text=True, timeout=timeout, check=False
        )
        if proc.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({proc.returncode}): {proc.stderr.strip()}\n{log}"
            )

    @classmethod
    def create(cls) -> PgCluster:
        bindir = pg_bin_dir()
        if bindir is None:
            raise RuntimeError("PostgreSQL binaries (initdb, pg_ctl) not found")
        root = Path(tempfile.mkdtemp(prefix="goapp-pg-"))
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        cluster = cls(bindir, root, free_port())
        cluster._run(
            str(bindir / "initdb"), "-D", str(cluster.data), "-U", "postgres", "-A", "trust",
            "--no-sync", "-E", "UTF8",
        )  # fmt: skip
        return cluster

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200"
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
            "-t", "60", "-o", opts, "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-w", "-m", mode, "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a PostgreSQL database the tests may create schemas in."""
    env = os.environ.get("GOAPP_TEST_PG_URL")
    if env:
        if not pg_reachable(env):
            unavailable(f"GOAPP_TEST_PG_URL={env} does not answer")
        yield env
        return
    if pg_reachable(DEFAULT_PG_URL):
        yield DEFAULT_PG_URL
        return
    try:
        cluster = PgCluster.create()
        cluster.start()
    except Exception as e:
        unavailable(f"no PostgreSQL for tests: {e}")
        raise  # unreachable: unavailable() fails or skips
    try:
        yield cluster.url
    finally:
        cluster.destroy()


@pytest.fixture
def pg_schema_url(pg_url: str) -> Iterator[str]:
    """``pg_url`` with ``search_path`` set to a schema of this test's own."""
    import asyncpg

    schema = f"t_{uuid.uuid4().hex[:12]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(pg_url, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    run_async(lambda: run(f"CREATE SCHEMA {schema}"))
    try:
        yield with_query(pg_url, search_path=schema)
    finally:
        run_async(lambda: run(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))


@pytest.fixture
def pg_cluster() -> Iterator[PgCluster]:
    """A PostgreSQL cluster of this test's own, started; the test may stop/restart it."""
    try:
        cluster = PgCluster.create()
        cluster.start()
    except Exception as e:
        unavailable(f"cannot start a throwaway PostgreSQL cluster: {e}")
        raise
    try:
        yield cluster
    finally:
        cluster.destroy()


def redis_ping(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A throwaway ``redis-server`` (no persistence) on a free port; it can be stopped and
    started again on the same port (tests of a Redis restart)."""

    def __init__(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed")
        self.exe = exe
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not redis_ping("127.0.0.1", self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self, *, kill: bool = False) -> None:
        """Stop it (``kill``: SIGKILL, as a crash; else SIGTERM); idempotent."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if kill:
            proc.kill()
        else:
            proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a Redis server (database 0 is shared: use unique key prefixes)."""
    env = os.environ.get("GOAPP_TEST_REDIS_URL")
    if env:
        parts = urlsplit(env)
        if not redis_ping(parts.hostname or "127.0.0.1", parts.port or 6379):
            unavailable(f"GOAPP_TEST_REDIS_URL={env} does not answer")
        yield env
        return
    if redis_ping("127.0.0.1", 6379):
        yield DEFAULT_REDIS_URL
        return
    try:
        server = RedisServer()
    except Exception as e:
        unavailable(f"no Redis for tests: 127.0.0.1:6379 does not answer and {e}")
        raise
    try:
        yield server.url
    finally:
        server.stop()
