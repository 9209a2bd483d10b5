"""Numbered SQL migrations, one directory per dialect.

Files are ``goapp/store/migrations/<dialect>/NNNN_name.sql``, loaded with
:mod:`importlib.resources` so that they are found inside a wheel or a PyInstaller binary
(built with ``--collect-data goapp``). Each file is applied in its own transaction and
recorded in ``schema_migrations(name, checksum, applied_at)``; the runner holds a lock
(PostgreSQL: a session advisory lock; SQLite: ``BEGIN EXCLUSIVE``) so that several
processes starting at once apply each migration exactly once. A process killed in the
middle of a migration leaves that migration rolled back; the next start applies it.

A migration file must therefore be transactional: no ``VACUUM`` or ``PRAGMA journal_mode``
(SQLite), no ``CREATE INDEX CONCURRENTLY`` (PostgreSQL).
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from .errors import MigrationError

DIALECTS = ("sqlite", "postgres")
_NAME_RE = re.compile(r"^(\d{4})_[A-Za-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    name: str  #: file name without ``.sql``, e.g. ``0001_initial``
    sql: str
    checksum: str  #: sha256 of the file's bytes, hex


def load_migrations(dialect: str, source: str | Path | None = None) -> list[Migration]:
    """The migrations of ``dialect`` in order. ``source`` overrides the packaged directory
    (tests use it to inject failing or slow migrations)."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown SQL dialect {dialect!r}")
    root: Traversable | Path
    if source is None:
        root = resources.files("goapp.store.migrations").joinpath(dialect)
    else:
        root = Path(source)
    found: list[Migration] = []
    numbers: set[str] = set()
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        match = _NAME_RE.match(entry.name)
        if match is None:
            raise MigrationError(f"bad migration file name {entry.name!r} (want NNNN_name.sql)")
        if match.group(1) in numbers:
            raise MigrationError(f"two migrations numbered {match.group(1)} in {dialect}")
        numbers.add(match.group(1))
        data = entry.read_bytes()
        found.append(
            Migration(
                name=entry.name[: -len(".sql")],
                sql=data.decode("utf-8"),
                checksum=hashlib.sha256(data).hexdigest(),
            )
        )
    if not found:
        raise MigrationError(f"no migrations found for {dialect} in {root}")
    return found


def split_sqlite_statements(sql: str) -> list[str]:
    """Split a script into statements (``executescript`` would COMMIT first, which would
    break the one-transaction-per-migration rule). Handles quotes, comments and triggers
    through :func:`sqlite3.complete_statement`."""
    statements: list[str] = []
    buf = ""
    for piece in sql.split(";"):
        buf += piece + ";"
        if sqlite3.complete_statement(buf):
            stmt = buf.strip()
            if _has_code(stmt):
                statements.append(stmt)
            buf = ""
    if _has_code(buf.rstrip(";")):
        raise MigrationError(f"incomplete SQL statement at the end: {buf.strip()[:80]!r}")
    return statements


def _has_code(text: str) -> bool:
    for line in text.splitlines():
        line = line.split("--", 1)[0].strip().strip(";").strip()
        if line:
            return True
    return False


def check_applied(known: Iterable[Migration], applied: dict[str, str]) -> None:
    """Refuse to run when an applied migration was edited or is unknown to this version."""
    by_name = {m.name: m for m in known}
    for name, checksum in applied.items():
        m = by_name.get(name)
        if m is None:
            raise MigrationError(
                f"database has migration {name!r} that this version of goapp does not know "
                "(was it written by a newer version?)"
            )
        if m.checksum != checksum:
            raise MigrationError(
                f"migration {name!r} was changed after it was applied "
                f"(checksum {checksum[:12]} in the database, {m.checksum[:12]} in the file)"
            )


# -- SQLite runner (synchronous: runs in the connection's thread) -------------------------

SQLITE_MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " name TEXT PRIMARY KEY, checksum TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT"
)


def apply_sqlite(conn: sqlite3.Connection, migrations: list[Migration], now_us: int) -> list[str]:
    """Apply pending migrations on an autocommit (``isolation_level=None``) connection."""
    # BEGIN IMMEDIATE takes the write lock (waiting in the busy handler) before anything is
    # read. A bare CREATE TABLE IF NOT EXISTS would read the schema first and then upgrade to
    # a write: when another process created the table in between, WAL answers SQLITE_BUSY at
    # once, without waiting (seen when several servers start on a new database).
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(SQLITE_MIGRATIONS_TABLE)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    applied: list[str] = []
    for m in migrations:
        conn.execute("BEGIN EXCLUSIVE")
        try:
            done = dict(conn.execute("SELECT name, checksum FROM schema_migrations").fetchall())
            check_applied(migrations, done)
            if m.name in done:
                conn.execute("ROLLBACK")
                continue
            for stmt in split_sqlite_statements(m.sql):
                conn.execute(stmt)
            conn.execute(
                "INSERT INTO schema_migrations (name, checksum, applied_at) VALUES (?, ?, ?)",
                (m.name, m.checksum, now_us),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        applied.append(m.name)
    return applied


def sqlite_applied(conn: sqlite3.Connection) -> dict[str, int]:
    """name -> applied_at (µs) of the applied migrations; empty when none ever ran."""
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if row is None:
        return {}
    return dict(conn.execute("SELECT name, applied_at FROM schema_migrations").fetchall())


# -- PostgreSQL runner ---------------------------------------------------------------------

PG_MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL)"
)
# One lock per schema, so that test schemas (or two goapp installs in one database, each
# with its own search_path) do not wait for each other.
PG_LOCK_KEY = "hashtextextended('goapp.migrations.' || coalesce(current_schema(), ''), 0)"
