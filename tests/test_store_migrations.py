"""Migrations: packaged files, the lock (several processes at once apply each migration
once), one transaction per migration (a failing or killed migration leaves nothing
behind and the next start completes it), checksums."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest

from goapp.store import MigrationError, admin, backend_of, open_store, sqlite_path
from goapp.store.migrator import load_migrations, split_sqlite_statements

ROOT = Path(__file__).resolve().parents[1]


def slow(backend: str, seconds: int) -> str:
    """A statement that keeps a migration busy for roughly ``seconds``."""
    if backend == "postgres":
        return f"SELECT pg_sleep({seconds});"
    n = seconds * 3_500_000  # rows of a recursive CTE, about 0.3 s per million here
    return (
        "CREATE TABLE slow AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL"
        f" SELECT x + 1 FROM c WHERE x < {n}) SELECT count(*) AS n FROM c;"
    )


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def _write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, sql in files.items():
        (directory / name).write_text(sql)
    return directory


async def _applied(url: str) -> list[str]:
    """Names recorded in schema_migrations (in order)."""
    if backend_of(url) == "sqlite":
        path, _ = sqlite_path(url)
        conn = sqlite3.connect(path)
        try:
            return [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY name")]
        finally:
            conn.close()
    conn2 = await asyncpg.connect(url)
    try:
        return [r[0] for r in await conn2.fetch("SELECT name FROM schema_migrations ORDER BY name")]
    finally:
        await conn2.close()


async def _tables(url: str) -> set[str]:
    if backend_of(url) == "sqlite":
        path, _ = sqlite_path(url)
        conn = sqlite3.connect(path)
        try:
            return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            conn.close()
    conn2 = await asyncpg.connect(url)
    try:
        rows = await conn2.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
        return {r[0] for r in rows}
    finally:
        await conn2.close()


def test_packaged_migrations() -> None:
    lite = load_migrations("sqlite")
    pg = load_migrations("postgres")
    assert [m.name for m in lite] == [m.name for m in pg]
    assert lite[0].name == "0001_initial"
    assert len(lite[0].checksum) == 64
    statements = split_sqlite_statements(lite[0].sql)
    assert any("CREATE TABLE game_events" in s for s in statements)
    conn = sqlite3.connect(":memory:")
    for s in statements:
        conn.execute(s)
    with pytest.raises(ValueError):
        load_migrations("oracle")


def test_split_statements_handles_quotes_and_triggers() -> None:
    sql = """
    -- comment; with a semicolon
    CREATE TABLE t (a TEXT DEFAULT 'x;y');
    CREATE TRIGGER tr AFTER INSERT ON t BEGIN
        UPDATE t SET a = 'z;' WHERE rowid = new.rowid;
    END;
    /* block; comment */
    INSERT INTO t VALUES ('1;2');
    """
    stmts = split_sqlite_statements(sql)
    assert len(stmts) == 3
    assert stmts[1].startswith("CREATE TRIGGER") and stmts[1].endswith("END;")
    with pytest.raises(MigrationError):
        split_sqlite_statements("CREATE TABLE x (a INT); INSERT INTO x VALUES ('1")


async def test_migrate_and_status(store_url: str) -> None:
    # every packaged migration, in order (the numbers other features add included)
    names = [m.name for m in load_migrations("sqlite" if "sqlite" in store_url else "postgres")]
    assert names[:4] == ["0001_initial", "0002_analysis", "0003_ratings", "0004_automatch"]
    assert await admin.status(store_url) == [(n, None) for n in names]
    assert await admin.migrate(store_url) == names
    assert await admin.migrate(store_url) == []
    status = await admin.status(store_url)
    assert [name for name, _ in status] == names
    assert all(at is not None and at[:4].isdigit() for _, at in status)
    assert {
        "users",
        "games",
        "game_events",
        "chat_messages",
        "challenges",
        "game_analysis",
    } <= await _tables(store_url)


async def test_concurrent_stores_migrate_once(store_url: str, tmp_path: Path) -> None:
    migrations = _write(
        tmp_path / "m",
        {
            "0001_a.sql": "CREATE TABLE a (x INTEGER);",
            "0002_slow.sql": slow(backend_of(store_url), 1) + "\nCREATE TABLE b (x INTEGER);",
            "0003_c.sql": "CREATE TABLE c (x INTEGER);",
        },
    )
    stores = await asyncio.gather(*(open_store(store_url, migrations=migrations) for _ in range(3)))
    try:
        applied = [name for s in stores for name in s.applied_migrations]
        assert sorted(applied) == ["0001_a", "0002_slow", "0003_c"]
    finally:
        for s in stores:
            await s.close()
    assert await _applied(store_url) == ["0001_a", "0002_slow", "0003_c"]


@pytest.mark.server
async def test_two_processes_migrate_once(store_url: str, tmp_path: Path) -> None:
    """Two processes start at once on a fresh database; the slow migration makes them
    overlap. Each migration is applied by exactly one of them."""
    migrations = _write(
        tmp_path / "m",
        {
            "0001_a.sql": "CREATE TABLE a (x INTEGER);",
            "0002_slow.sql": slow(backend_of(store_url), 1) + "\nCREATE TABLE b (x INTEGER);",
        },
    )
    code = (
        "import asyncio, sys\n"
        "from goapp.store import open_store\n"
        "async def main():\n"
        "    s = await open_store(sys.argv[1], migrations=sys.argv[2])\n"
        "    await s.close()\n"
        "    print(','.join(s.applied_migrations))\n"
        "asyncio.run(main())\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, store_url, str(migrations)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(),
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err.decode()[-2000:]
    applied = [n for out, _ in outs for n in out.decode().strip().split(",") if n]
    assert sorted(applied) == ["0001_a", "0002_slow"]
    assert await _applied(store_url) == ["0001_a", "0002_slow"]


async def test_failing_migration_leaves_nothing(store_url: str, tmp_path: Path) -> None:
    good = {"0001_a.sql": "CREATE TABLE a (x INTEGER);"}
    bad = "CREATE TABLE b (x INTEGER);\nINSERT INTO no_such_table VALUES (1);\n"
    migrations = _write(tmp_path / "m", {**good, "0002_b.sql": bad})
    with pytest.raises(MigrationError):
        await open_store(store_url, migrations=migrations)
    assert await _applied(store_url) == ["0001_a"]
    tables = await _tables(store_url)
    assert "a" in tables and "b" not in tables  # 0002 rolled back as a whole
    _write(migrations, {"0002_b.sql": "CREATE TABLE b (x INTEGER);\n"})
    store = await open_store(store_url, migrations=migrations)
    await store.close()
    assert store.applied_migrations == ["0002_b"]
    assert await _applied(store_url) == ["0001_a", "0002_b"]


@pytest.mark.server
async def test_kill_9_during_migration(store_url: str, tmp_path: Path) -> None:
    backend = backend_of(store_url)
    migrations = _write(
        tmp_path / "m",
        {
            "0001_a.sql": "CREATE TABLE a (x INTEGER);",
            "0002_b.sql": "CREATE TABLE b (x INTEGER);\n"
            + slow(backend, 6)
            + "\nCREATE TABLE c (x INTEGER);",
        },
    )
    code = (
        "import asyncio, sys\n"
        "from goapp.store import open_store\n"
        "print('start', flush=True)\n"
        "asyncio.run(open_store(sys.argv[1], migrations=sys.argv[2]))\n"
        "print('done', flush=True)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, store_url, str(migrations)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"start\n"
        if backend == "postgres":  # wait until the slow statement runs
            conn = await asyncpg.connect(store_url)
            try:
                for _ in range(200):
                    busy = await conn.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(6)%'"
                        " AND pid <> pg_backend_pid()"
                    )
                    if busy:
                        break
                    await asyncio.sleep(0.05)
                assert busy, "the migration never reached its slow step"
            finally:
                await conn.close()
        else:
            await asyncio.sleep(1.5)
        assert proc.poll() is None, "the migration finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    # what the killed process left: 0001 done, nothing of 0002
    started = time.monotonic()
    store = await open_store(
        store_url, migrations=_write(migrations, {"0002_b.sql": "CREATE TABLE b (x INTEGER);"})
    )
    await store.close()
    assert store.applied_migrations in (["0002_b"], ["0001_a", "0002_b"])
    assert await _applied(store_url) == ["0001_a", "0002_b"]
    tables = await _tables(store_url)
    assert {"a", "b"} <= tables and "c" not in tables and "slow" not in tables
    assert time.monotonic() - started < 30


async def test_edited_or_unknown_migration_is_refused(store_url: str, tmp_path: Path) -> None:
    migrations = _write(
        tmp_path / "m",
        {"0001_a.sql": "CREATE TABLE a (x INTEGER);", "0002_b.sql": "CREATE TABLE b (x INTEGER);"},
    )
    store = await open_store(store_url, migrations=migrations)
    await store.close()
    _write(migrations, {"0001_a.sql": "CREATE TABLE a (x INTEGER, y INTEGER);"})
    with pytest.raises(MigrationError, match="changed"):
        await open_store(store_url, migrations=migrations)
    older = _write(tmp_path / "older", {"0001_a.sql": "CREATE TABLE a (x INTEGER);"})
    with pytest.raises(MigrationError, match="does not know"):
        await open_store(store_url, migrations=older)
