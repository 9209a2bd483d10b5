"""Database tools behind ``goapp db migrate | status | copy | backup`` (the CLI wires
argparse to these functions and prints what they return)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from goapp.private_files import create_private_file

from . import backend_of, open_store, sqlite_path
from .base import Store
from .errors import MigrationError, NotFoundError, StoreError, StoreUnavailableError
from .migrator import load_migrations, sqlite_applied
from .schema import PRIMARY_KEYS, TABLES, us_to_dt

COPY_BATCH = 1000


async def migrate(url: str) -> list[str]:
    """Apply pending migrations; returns the names applied now (empty when up to date)."""
    store = await open_store(url, migrate=True)
    try:
        applied: list[str] = getattr(store, "applied_migrations", [])
        return list(applied)
    finally:
        await store.close()


async def status(url: str) -> list[tuple[str, str | None]]:
    """Every migration this version ships, with its applied-at time (ISO 8601, UTC) or None
    when it is pending. Changes nothing (a missing SQLite file is not created)."""
    backend = backend_of(url)
    applied: dict[str, datetime]
    if backend == "sqlite":
        path, _ = sqlite_path(url)
        applied = await asyncio.to_thread(_sqlite_status, path)
    else:
        applied = await _pg_status(url)
    return [
        (m.name, applied[m.name].isoformat() if m.name in applied else None)
        for m in load_migrations(backend)
    ]


def _sqlite_status(path: Path) -> dict[str, datetime]:
    if not path.exists():
        return {}
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            return {name: us_to_dt(us) for name, us in sqlite_applied(conn).items()}
        finally:
            conn.close()
    except sqlite3.Error as e:
        raise StoreUnavailableError(f"cannot read {path}: {e}") from e


async def _pg_status(url: str) -> dict[str, datetime]:
    from . import _PG_OPTS, _split_options
    from .postgres import pg_applied

    dsn, _ = _split_options(url, _PG_OPTS)
    try:
        conn = await asyncpg.connect(dsn, timeout=5)
    except (TimeoutError, OSError, asyncpg.PostgresError) as e:
        raise StoreUnavailableError(f"cannot connect to PostgreSQL: {e}") from e
    try:
        return await pg_applied(conn)
    finally:
        await conn.close()


# -- copy ------------------------------------------------------------------------------------


def _digest_update(h: Any, row: tuple[Any, ...]) -> None:
    """Feed one row to a checksum in a backend-neutral way (same bytes for the same values
    whichever database they came from)."""
    parts: list[str] = []
    for v in row:
        if v is None:
            parts.append("N")
        elif isinstance(v, bool):
            parts.append(f"b{int(v)}")
        elif isinstance(v, int):
            parts.append(f"i{v}")
        elif isinstance(v, float):
            parts.append(f"f{v.hex()}")
        elif isinstance(v, datetime):
            parts.append(f"t{v.astimezone(UTC).isoformat()}")
        else:
            s = str(v)
            parts.append(f"s{len(s)}:{s}")
    h.update(("\x1f".join(parts) + "\x1e").encode("utf-8"))


async def table_digest(store: Store, table: str) -> tuple[int, str]:
    """(row count, sha256) of a table, rows in primary-key order."""
    h = hashlib.sha256()
    count = 0
    after: tuple[Any, ...] | None = None
    npk = PRIMARY_KEYS[table]
    while True:
        rows = await store.dump_rows(table, after, COPY_BATCH)
        if not rows:
            break
        for row in rows:
            _digest_update(h, row)
        count += len(rows)
        after = rows[-1][:npk]
    return count, h.hexdigest()


async def copy(src_url: str, dst_url: str) -> dict[str, Any]:
    """Copy every table from one store to another (typically SQLite -> PostgreSQL), then
    verify row counts and checksums table by table.

    Safe to re-run: rows whose primary key already exists in the destination are skipped,
    never overwritten, so an interrupted copy is finished by running it again. Stop the
    server (or copy from a backup) so that the source does not change during the copy.

    Returns ``{"ok": bool, "tables": {table: {"source_rows", "copied", "skipped",
    "dest_rows", "source_checksum", "dest_checksum", "ok"}}, "seconds": float}``.
    """
    if src_url == dst_url:
        raise ValueError("source and destination are the same")
    started = time.monotonic()
    pending = [name for name, at in await status(src_url) if at is None]
    if pending:
        raise MigrationError(
            f"the source database is not up to date (pending: {', '.join(pending)}); "
            "run `goapp db migrate` on it first"
        )
    src = await open_store(src_url, migrate=False)
    try:
        dst = await open_store(dst_url, migrate=True)
        try:
            tables: dict[str, dict[str, Any]] = {}
            for table in TABLES:
                copied = read = 0
                after: tuple[Any, ...] | None = None
                while True:
                    rows = await src.dump_rows(table, after, COPY_BATCH)
                    if not rows:
                        break
                    read += len(rows)
                    copied += await dst.load_rows(table, rows)
                    after = rows[-1][: PRIMARY_KEYS[table]]
                tables[table] = {"copied": copied, "skipped": read - copied}
            await dst.finish_load()
            ok = True
            for table in TABLES:
                n_src, sum_src = await table_digest(src, table)
                n_dst, sum_dst = await table_digest(dst, table)
                same = n_src == n_dst and sum_src == sum_dst
                ok = ok and same
                tables[table].update(
                    source_rows=n_src,
                    dest_rows=n_dst,
                    source_checksum=sum_src,
                    dest_checksum=sum_dst,
                    ok=same,
                )
        finally:
            await dst.close()
    finally:
        await src.close()
    return {"ok": ok, "tables": tables, "seconds": round(time.monotonic() - started, 3)}


# -- backup ----------------------------------------------------------------------------------


async def backup(url: str, dest: str) -> dict[str, Any]:
    """Consistent online backup of a SQLite store into ``dest`` (a file, or an existing
    directory in which ``goapp-YYYYmmddTHHMMSSZ.db`` is created).

    Uses SQLite's backup API in one step: the copy is one snapshot of the database, taken
    while the server keeps writing (WAL readers do not block the writer). The result is a
    self-contained file (journal mode DELETE), checked with ``PRAGMA integrity_check``,
    written under a temporary name, fsynced and renamed into place.

    PostgreSQL: raises StoreError; use ``pg_dump`` (see docs/storage.md).
    """
    if backend_of(url) == "postgres":
        raise StoreError(
            "goapp db backup only handles SQLite; back up PostgreSQL with pg_dump, e.g. "
            "`pg_dump --format=custom --file=goapp.dump DBURL` (restore with pg_restore); "
            "see docs/storage.md"
        )
    path, _ = sqlite_path(url)
    if not path.exists():
        raise NotFoundError(f"no database at {path}")
    target = Path(dest)
    if target.is_dir():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = target / f"goapp-{stamp}.db"
    return await asyncio.to_thread(_backup_sqlite, path, target.absolute())


def _backup_sqlite(path: Path, target: Path) -> dict[str, Any]:
    started = time.monotonic()
    tmp = target.with_name(target.name + ".partial")
    tmp.unlink(missing_ok=True)
    try:
        create_private_file(tmp)  # 0600 whatever the umask: the backup holds every account
        src = sqlite3.connect(str(path), timeout=30)
        try:
            dst = sqlite3.connect(str(tmp))
            try:
                src.backup(dst)  # pages=-1: the whole database in one step, one snapshot
                dst.execute("PRAGMA journal_mode = DELETE")
                integrity = [r[0] for r in dst.execute("PRAGMA integrity_check").fetchall()]
                counts = {
                    t: dst.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                    for t in TABLES
                    if _has_table(dst, t)
                }
            finally:
                dst.close()
        finally:
            src.close()
        if integrity != ["ok"]:
            raise StoreError(f"backup failed integrity_check: {integrity[:5]}")
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except sqlite3.Error as e:
        tmp.unlink(missing_ok=True)
        raise StoreUnavailableError(f"backup of {path} failed: {e}") from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {
        "source": str(path),
        "path": str(target),
        "bytes": target.stat().st_size,
        "integrity": "ok",
        "tables": counts,
        "seconds": round(time.monotonic() - started, 3),
    }


def _has_table(conn: sqlite3.Connection, table: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).fetchone()
    return row is not None


__all__ = ["backup", "copy", "migrate", "status", "table_digest"]
