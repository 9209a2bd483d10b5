"""PostgreSQL backend (production and multi-instance), through asyncpg.

A connection pool; asyncpg prepares and caches every statement per connection. A plan
(see ``seam.py``) runs on one pooled connection; most writes are one statement
(autocommit is its own transaction), ``atomic`` plans run in an explicit transaction.
Appending events is a single statement::

    WITH g AS (UPDATE games SET last_seq = <last> WHERE id = $1 AND last_seq = <first - 1>
               RETURNING id)
    INSERT INTO game_events ... SELECT ... FROM g

so the row lock on the game serializes appends of one game across every instance, and the
primary key ``(game_id, seq)`` backs it up: a second writer of the same ``seq`` matches no
row (or hits the key) and gets ConflictError; the log stays gap-free.

Connection loss (server restart, failover) makes the pool drop its connections; reads are
retried once on a fresh connection, writes are not (the caller cannot know whether a lost
COMMIT happened; it gets StoreUnavailableError and the event log tells the truth later).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from .base import Store
from .challenges import AVAILABLE, CANDIDATE_COLUMNS
from .errors import (
    ConflictError,
    MigrationError,
    NotFoundError,
    StoreError,
    StoreUnavailableError,
    reraise,
)
from .migrator import (
    PG_LOCK_KEY,
    PG_MIGRATIONS_TABLE,
    Migration,
    check_applied,
    load_migrations,
)
from .schema import BOOL_COLUMNS, COLUMNS, IDENTITY_TABLES, TIMESTAMP_COLUMNS, check_dt
from .seam import Op, Plan, count, one

log = logging.getLogger(__name__)
T = TypeVar("T")

# Errors after which the connection is gone (the pool replaces it).
_CONNECTION_LOST: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    ConnectionError,
    OSError,
)
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    *_CONNECTION_LOST,
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,  # disk full, out of memory, too many connections
    asyncpg.ReadOnlySQLTransactionError,  # a standby, or default_transaction_read_only
    asyncpg.InvalidCatalogNameError,  # database does not exist
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncio.TimeoutError,
)

_INT_COLUMNS = frozenset(
    {
        "id",
        "black_id",
        "white_id",
        "user_id",
        "challenger_id",
        "target_id",
        "accepted_by",
        "game_id",
        "seq",
        "last_seq",
        "width",
        "height",
        "handicap",
        "games_count",
        "games",
    }
)
_FLOAT_COLUMNS = frozenset(
    {"rating", "rd", "volatility", "komi", "rating_before", "rating_after", "rd_after"}
)


def _pg_type(column: str) -> str:
    if column in BOOL_COLUMNS:
        return "boolean"
    if column in _INT_COLUMNS:
        return "bigint"
    if column in _FLOAT_COLUMNS:
        return "float8"
    if column in TIMESTAMP_COLUMNS:
        return "timestamptz"
    return "text"


def map_error(exc: BaseException) -> BaseException:
    """An asyncpg/OS exception as the matching StoreError (others returned unchanged)."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, asyncpg.UniqueViolationError):
        return ConflictError(f"already exists: {exc}")
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        return NotFoundError(f"a referenced row does not exist: {exc}")
    if isinstance(exc, asyncpg.TransactionRollbackError):  # serialization failure, deadlock
        return ConflictError(f"lost a race: {exc}")
    if isinstance(exc, _UNAVAILABLE):
        return StoreUnavailableError(f"PostgreSQL unavailable: {type(exc).__name__}: {exc}")
    if isinstance(exc, asyncpg.InterfaceError):
        text = str(exc)
        if "closed" in text or "closing" in text or "connection" in text:
            return StoreUnavailableError(f"PostgreSQL unavailable: {exc}")
        return StoreError(f"asyncpg: {exc}")
    if isinstance(exc, asyncpg.PostgresError):
        return StoreError(f"PostgreSQL error: {type(exc).__name__}: {exc}")
    return exc


def _connection_lost(exc: BaseException) -> bool:
    """The connection died (not: a statement timed out, the pool was busy)."""
    if isinstance(exc, TimeoutError):
        return False
    if isinstance(exc, _CONNECTION_LOST):
        return True
    return isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc)


def _encode(args: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(check_dt(a) if isinstance(a, datetime) else a for a in args)


async def _execute(conn: asyncpg.Connection, op: Op) -> Any:
    kind, sql, args, _ = op  # asyncpg gives every column its Python type: no table needed
    if kind == "one":
        return await conn.fetchrow(sql, *_encode(args))
    if kind == "all":
        return await conn.fetch(sql, *_encode(args))
    if kind == "count":
        status: str = await conn.execute(sql, *_encode(args))
        return int(status.rsplit(" ", 1)[-1])
    await conn.executemany(sql, [_encode(r) for r in args])
    return None


async def run_plan(conn: asyncpg.Connection, plan: Plan[T]) -> T:
    """Run a plan to its end on one connection, awaiting each statement."""
    result: Any = None
    try:
        while True:
            result = await _execute(conn, plan.send(result))
    except StopIteration as done:
        value: T = done.value
        return value


class PostgresStore(Store):
    backend = "postgres"
    _map_error = staticmethod(map_error)

    def __init__(
        self,
        url: str,
        *,
        pool_min: int = 1,
        pool_max: int = 10,
        command_timeout: float = 30.0,
        connect_timeout: float = 5.0,
    ) -> None:
        super().__init__(url)
        self._pool_min = pool_min
        self._pool_max = pool_max
        self._command_timeout = command_timeout
        self._connect_timeout = connect_timeout
        self._pool: asyncpg.Pool | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        dsn: str | None = None,
        migrate: bool = True,
        migrations: str | Path | None = None,
        **opts: Any,
    ) -> PostgresStore:
        """``dsn`` is what asyncpg gets (``url`` without goapp's own query options)."""
        store = cls(url, **opts)
        await store._start(store._open(dsn or url, migrate, migrations))
        return store

    async def _open(self, dsn: str, migrate: bool, migrations: str | Path | None) -> None:
        self._pool = await asyncpg.create_pool(
            dsn,
            min_size=self._pool_min,
            max_size=self._pool_max,
            command_timeout=self._command_timeout,
            timeout=self._connect_timeout,
            reset=_keep_session,
        )
        if migrate:
            found = load_migrations("postgres", migrations)
            async with self._pool.acquire() as conn:
                self.applied_migrations = await apply_postgres(conn, found)

    async def _abort(self) -> None:
        self._closed = True
        if self._pool is not None:
            self._pool.terminate()

    async def close(self, timeout: float = 30.0) -> None:
        """Refuse new calls, let the calls in flight finish (up to ``timeout``), close."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._calls.wait_idle(), timeout)
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.close(), timeout=10)
            except (TimeoutError, Exception):
                self._pool.terminate()

    # -- running plans -----------------------------------------------------------------------

    async def _read(self, plan: Plan[T]) -> T:
        # Each statement of a read plan takes a pooled connection of its own and is retried
        # once on a fresh one when the connection was lost (reads change nothing).
        result: Any = None
        try:
            while True:
                op = plan.send(result)
                result = await self._run(functools.partial(_execute, op=op), retry=True)
        except StopIteration as done:
            value: T = done.value
            return value

    async def _write(self, plan: Plan[T], *, atomic: bool = False) -> T:
        async def run(conn: asyncpg.Connection) -> T:
            if not atomic:
                return await run_plan(conn, plan)
            async with conn.transaction():
                return await run_plan(conn, plan)

        return await self._run(run, retry=False)

    async def _run(self, fn: Callable[[asyncpg.Connection], Awaitable[T]], retry: bool) -> T:
        if self._closed or self._pool is None:
            raise StoreUnavailableError("the store is closed")
        with self._calls:
            return await self._run_once(fn, retry)

    async def _run_once(self, fn: Callable[[asyncpg.Connection], Awaitable[T]], retry: bool) -> T:
        assert self._pool is not None
        attempts = 2 if retry else 1
        for attempt in range(attempts):
            try:
                async with self._pool.acquire(timeout=self._connect_timeout) as conn:
                    return await fn(conn)
            except BaseException as e:
                mapped = map_error(e)
                if _connection_lost(e):
                    # Every pooled connection is probably dead too (server restart): open
                    # fresh ones from now on instead of failing once per connection.
                    with contextlib.suppress(Exception):
                        await self._pool.expire_connections()
                    if attempt + 1 < attempts:
                        continue
                reraise(e, mapped)
        raise AssertionError("unreachable")

    # -- what differs from SQLite ------------------------------------------------------------

    def _append(
        self,
        update_sql: str,
        args: list[Any],
        events: list[tuple[int, str, str]],
        now: datetime,
    ) -> Plan[bool]:
        # one statement: the UPDATE's row lock serializes the appends of a game
        args = [*args, now]
        ts = f"${len(args)}"
        if len(events) == 1:
            args += events[0]
            n = len(args)  # $n is the last argument
            source = f"SELECT g.id, ${n - 2}::bigint, ${n - 1}::text, ${n}::text, {ts} FROM g"
        else:
            args += [[e[0] for e in events], [e[1] for e in events], [e[2] for e in events]]
            n = len(args)
            source = (
                f"SELECT g.id, e.seq, e.kind, e.payload, {ts} FROM g,"
                f" unnest(${n - 2}::bigint[], ${n - 1}::text[], ${n}::text[])"
                " AS e(seq, kind, payload)"
            )
        sql = (
            f"WITH g AS ({update_sql} RETURNING id)"
            f" INSERT INTO game_events (game_id, seq, kind, payload, created_at) {source}"
        )
        return (yield from count(sql, *args)) == len(events)

    def _claim_automatch(
        self, request_id: int, candidate_ids: list[int]
    ) -> Plan[tuple[Any, Any] | None]:
        # Both SELECTs skip rows another claimer holds: a claim never waits for another,
        # so concurrent claims cannot deadlock, and a row is paired at most once.
        own = yield from one(
            "SELECT id, user_id FROM automatch_requests WHERE id = $1 AND status = 'waiting'"
            " FOR UPDATE SKIP LOCKED",
            request_id,
        )
        if own is None:
            return None
        other = yield from one(
            f"SELECT {CANDIDATE_COLUMNS} FROM automatch_requests AS r"
            f" WHERE r.id = ANY($1::bigint[]) AND {AVAILABLE}"
            " ORDER BY array_position($1::bigint[], r.id) LIMIT 1 FOR UPDATE OF r SKIP LOCKED",
            candidate_ids,
            own["user_id"],
        )
        return None if other is None else (own, other)

    def _id_in(self, column: str, first: int, ids: Sequence[int]) -> tuple[str, list[Any]]:
        return f"{column} = ANY(${first}::bigint[])", [list(ids)]

    # -- copy support ------------------------------------------------------------------------

    async def load_rows(self, table: str, rows: Sequence[tuple[Any, ...]]) -> int:
        if not rows:
            return 0
        columns = COLUMNS[table]
        arrays = ", ".join(f"${i + 1}::{_pg_type(c)}[]" for i, c in enumerate(columns))
        sql = (
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays})"
            " ON CONFLICT DO NOTHING"
        )
        by_column = [list(_encode([r[i] for r in rows])) for i in range(len(columns))]
        return await self._write(count(sql, *by_column))

    async def finish_load(self) -> None:
        for table in IDENTITY_TABLES:
            sql = (
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" coalesce(max(id), 0) + 1, false) FROM {table}"
            )
            await self._write(one(sql))


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool reset hook. asyncpg's default runs ``RESET ALL; UNLISTEN *; ...`` at every
    release: one more round trip per call, for session state this store never leaves
    behind (no SET, LISTEN, cursors or advisory locks outlive a call). An open transaction
    is still rolled back by asyncpg before this hook runs."""


async def apply_postgres(conn: asyncpg.Connection, migrations: list[Migration]) -> list[str]:
    """Apply pending migrations under a session advisory lock, one transaction each."""
    # Up to date (the usual start): no lock, no DDL, so a read-only server (a standby)
    # can still be opened for reads.
    applied_now = await pg_checksums(conn)
    if all(m.name in applied_now for m in migrations):
        check_applied(migrations, applied_now)
        return []
    # A killed client leaves its backend running until it next talks to the socket; ask
    # PostgreSQL (14+) to notice sooner so that the lock and the open transaction go away.
    with contextlib.suppress(asyncpg.PostgresError):
        await conn.execute("SET client_connection_check_interval = 1000")
    await conn.execute(f"SELECT pg_advisory_lock({PG_LOCK_KEY})")
    try:
        await conn.execute(PG_MIGRATIONS_TABLE)
        applied: list[str] = []
        for m in migrations:
            done = await pg_checksums(conn)
            check_applied(migrations, done)
            if m.name in done:
                continue
            try:
                async with conn.transaction():
                    await conn.execute(m.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (name, checksum, applied_at)"
                        " VALUES ($1, $2, now())",
                        m.name,
                        m.checksum,
                    )
            except asyncpg.PostgresError as e:
                mapped = map_error(e)
                if isinstance(mapped, StoreUnavailableError):
                    raise
                raise MigrationError(f"migration {m.name} failed: {e}") from e
            applied.append(m.name)
        return applied
    finally:
        with contextlib.suppress(Exception):
            await conn.execute(f"SELECT pg_advisory_unlock({PG_LOCK_KEY})")
        with contextlib.suppress(Exception):
            await conn.execute("RESET client_connection_check_interval")


async def pg_checksums(conn: asyncpg.Connection) -> dict[str, str]:
    """name -> checksum of the applied migrations; empty when none ever ran."""
    if not await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
        return {}
    rows = await conn.fetch("SELECT name, checksum FROM schema_migrations")
    return {r[0]: r[1] for r in rows}


async def pg_applied(conn: asyncpg.Connection) -> dict[str, datetime]:
    """name -> applied_at of the applied migrations; empty when none ever ran."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    return {r[0]: r[1] for r in await conn.fetch("SELECT name, applied_at FROM schema_migrations")}
