"""SQLite backend (the embedded default), through aiosqlite.

Layout of a running store:

* one **writer** connection. Every write is a job (a plain function of a ``sqlite3``
  connection) put on an asyncio queue; a single writer task takes every job that is waiting
  (up to ``batch_max``), runs them in one ``BEGIN IMMEDIATE`` transaction on the
  connection's thread, each job inside its own ``SAVEPOINT`` so that a job that fails
  (seq taken, name taken, ...) is undone alone, then ``COMMIT`` s once (group commit: one
  fsync for the whole batch) and only then answers every caller. The event loop never
  blocks on SQLite: aiosqlite runs the connection in its own thread.
* a small pool of **read-only** connections (``mode=ro``); in WAL mode readers never block
  the writer nor each other, and each read sees every commit acknowledged before it began.

Durability (``synchronous``, see docs/storage.md): in WAL mode a commit is in the WAL file
when ``COMMIT`` returns, so a crash or kill -9 of the process never loses an acknowledged
write with either setting. ``FULL`` (the default) also fsyncs the WAL at every commit, so a
power loss or kernel crash loses nothing acknowledged either; ``NORMAL`` fsyncs only at
checkpoints and may lose the last commits on power loss (the database stays consistent).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import aiosqlite

from goapp.private_files import create_private_file, make_private_dir

from . import _sql as S
from . import _sql_automatch as SA
from .base import (
    BOOL_COLUMNS,
    COLUMNS,
    PRIMARY_KEYS,
    TIMESTAMP_COLUMNS,
    RatingAlreadyApplied,
    Store,
    accept_failure,
    automatch_from_row,
    challenge_from_row,
    chat_from_row,
    check_automatch_speed,
    check_close_status,
    check_dt,
    check_events,
    check_new_game,
    check_rating_updates,
    decode_json,
    dt_to_us,
    encode_json,
    event_from_row,
    game_from_row,
    history_from_row,
    leader_from_row,
    name_key,
    rating_from_row,
    sizes_to_mask,
    statuses,
    token_from_row,
    us_to_dt,
    user_from_row,
    utcnow,
)
from .errors import (
    ConflictError,
    MigrationError,
    NotFoundError,
    StoreError,
    StoreUnavailableError,
)
from .migrator import Migration, apply_sqlite, load_migrations
from .records import (
    AnalysisTurn,
    AutomatchRequest,
    Challenge,
    ChatMessage,
    Event,
    Game,
    GameChange,
    LeaderboardEntry,
    NewEvent,
    NewGame,
    PoolRating,
    RatingHistoryEntry,
    RatingUpdate,
    RefreshToken,
    User,
)

log = logging.getLogger(__name__)

#: How long opening a store waits for another process's migration to finish.
MIGRATION_LOCK_WAIT_S = 120

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], Any]

SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")
DEFAULT_SYNCHRONOUS = "FULL"

# Primary result codes that mean "the database cannot be used now" (503), not "bad request".
_UNAVAILABLE_CODES = frozenset(
    {
        5,  # SQLITE_BUSY (still locked after busy_timeout)
        6,  # SQLITE_LOCKED
        7,  # SQLITE_NOMEM
        8,  # SQLITE_READONLY
        10,  # SQLITE_IOERR
        11,  # SQLITE_CORRUPT
        13,  # SQLITE_FULL
        14,  # SQLITE_CANTOPEN
        15,  # SQLITE_PROTOCOL
        26,  # SQLITE_NOTADB
    }
)

_TS_INDEXES = {
    table: tuple(i for i, c in enumerate(cols) if c in TIMESTAMP_COLUMNS)
    for table, cols in COLUMNS.items()
}
_BOOL_INDEXES = {
    t: tuple(i for i, c in enumerate(cols) if c in BOOL_COLUMNS) for t, cols in COLUMNS.items()
}


def map_error(exc: BaseException) -> BaseException:
    """A sqlite3/OS exception as the matching StoreError (others are returned unchanged)."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, sqlite3.Error):
        name = getattr(exc, "sqlite_errorname", "") or ""
        code = getattr(exc, "sqlite_errorcode", None)
        if name in ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"):
            return ConflictError(f"already exists: {exc}")
        if name == "SQLITE_CONSTRAINT_FOREIGNKEY":
            return NotFoundError(f"a referenced row does not exist: {exc}")
        if code is not None and (code & 0xFF) in _UNAVAILABLE_CODES:
            return StoreUnavailableError(f"SQLite database unavailable ({name}): {exc}")
        if isinstance(exc, sqlite3.ProgrammingError) and "closed" in str(exc):
            return StoreUnavailableError(f"SQLite connection closed: {exc}")
        return StoreError(f"SQLite error ({name or type(exc).__name__}): {exc}")
    if isinstance(exc, OSError):
        return StoreUnavailableError(f"SQLite database unavailable: {exc}")
    if isinstance(exc, ValueError) and "closed" in str(exc):  # aiosqlite after close
        return StoreUnavailableError(f"SQLite connection closed: {exc}")
    return exc


@lru_cache(maxsize=512)
def q(sql: str) -> str:
    """The SQLite text of a ``$n`` statement."""
    return S.to_sqlite(sql)


def _args(args: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(dt_to_us(a) if isinstance(a, datetime) else a for a in args)


def _row(table: str, row: Sequence[Any]) -> list[Any]:
    out = list(row)
    for i in _TS_INDEXES[table]:
        if out[i] is not None:
            out[i] = us_to_dt(out[i])
    for i in _BOOL_INDEXES.get(table, ()):  # 0/1 -> bool, the neutral form (db copy)
        if out[i] is not None:
            out[i] = bool(out[i])
    return out


def _one(c: sqlite3.Connection, sql: str, args: Sequence[Any]) -> Any:
    rows = c.execute(q(sql), _args(args)).fetchall()
    return rows[0] if rows else None


async def _in_thread(conn: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn(sqlite3_connection)`` on the aiosqlite connection's own thread, in one hop.

    aiosqlite's public helpers (``execute_fetchall``, ...) are built the same way on its
    ``_execute``; a whole transaction as one call saves a thread round trip per statement.
    """
    raw: Callable[[], sqlite3.Connection] = lambda: conn._conn  # noqa: E731
    result: T = await conn._execute(lambda: fn(raw()))
    return result


def _run_batch(c: sqlite3.Connection, jobs: list[Job]) -> list[tuple[bool, Any]]:
    """Run jobs in one transaction; each job's own failure is undone by its savepoint and
    returned as ``(False, exc)``. Any other failure (I/O, disk full) aborts the batch."""
    results: list[tuple[bool, Any]] = []
    c.execute("BEGIN IMMEDIATE")
    try:
        if len(jobs) == 1:
            try:
                results.append((True, jobs[0](c)))
            except (sqlite3.IntegrityError, ConflictError, NotFoundError, ValueError) as e:
                c.execute("ROLLBACK")
                return [(False, e)]
        else:
            for job in jobs:
                c.execute("SAVEPOINT job")
                try:
                    res = job(c)
                except (sqlite3.IntegrityError, ConflictError, NotFoundError, ValueError) as e:
                    c.execute("ROLLBACK TO job")
                    c.execute("RELEASE job")
                    results.append((False, e))
                    continue
                c.execute("RELEASE job")
                results.append((True, res))
        c.execute("COMMIT")
    except BaseException:
        if c.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                c.execute("ROLLBACK")
        raise
    return results


def _retry_while_busy(step: Callable[[], T], wait_s: float = MIGRATION_LOCK_WAIT_S) -> T:
    """Run ``step``, retrying while the database is busy or locked (up to ``wait_s``).

    ``PRAGMA journal_mode`` does not always go through the busy handler: while another
    process holds the database for a migration it can answer SQLITE_BUSY at once. It runs on
    the connection's own thread, so sleeping here does not block the event loop."""
    deadline = time.monotonic() + wait_s
    delay = 0.01
    while True:
        try:
            return step()
        except sqlite3.OperationalError as e:
            code = getattr(e, "sqlite_errorcode", 0) & 0xFF
            if code not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise
            if time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.25)


class SQLiteStore(Store):
    backend = "sqlite"

    def __init__(
        self,
        url: str,
        path: str | Path,
        *,
        synchronous: str = DEFAULT_SYNCHRONOUS,
        readers: int = 3,
        busy_timeout: float = 5.0,
        batch_max: int = 256,
        queue_max: int = 10_000,
    ) -> None:
        super().__init__(url)
        sync = synchronous.upper()
        if sync not in SYNCHRONOUS_LEVELS:
            raise ValueError(
                f"synchronous must be one of {SYNCHRONOUS_LEVELS}, got {synchronous!r}"
            )
        if readers < 1 or batch_max < 1:
            raise ValueError("readers and batch_max must be at least 1")
        self.path = Path(path)
        self.synchronous = sync
        self._n_readers = readers
        self._busy_ms = int(busy_timeout * 1000)
        self._batch_max = batch_max
        self._queue: asyncio.Queue[tuple[Job, asyncio.Future[Any]] | None] = asyncio.Queue(
            queue_max
        )
        self._writer: aiosqlite.Connection | None = None
        self._readers: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._all_readers: list[aiosqlite.Connection] = []
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        self._reads = 0
        self._reads_idle = asyncio.Event()
        self._reads_idle.set()
        #: names of the migrations applied when this store was opened
        self.applied_migrations: list[str] = []

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        url: str,
        path: str | Path,
        *,
        migrate: bool = True,
        migrations: str | Path | None = None,
        **opts: Any,
    ) -> SQLiteStore:
        store = cls(url, path, **opts)
        try:
            await store._open(migrate, load_migrations("sqlite", migrations) if migrate else [])
        except BaseException as e:
            await store._abort()
            mapped = map_error(e)
            if mapped is e:
                raise
            raise mapped from e
        return store

    async def _open(self, migrate: bool, migrations: list[Migration]) -> None:
        if str(self.path) in ("", ":memory:") or str(self.path).startswith("file:"):
            raise ValueError("the SQLite store needs a file path (WAL does not work in memory)")
        try:
            make_private_dir(self.path.parent)
            # 0600 whatever the umask; SQLite gives the -wal and -shm files the same mode
            create_private_file(self.path)
        except OSError as e:
            raise StoreUnavailableError(f"cannot create {self.path}: {e}") from e
        self._writer = await aiosqlite.connect(
            str(self.path), isolation_level=None, timeout=self._busy_ms / 1000
        )
        self.applied_migrations = await _in_thread(
            self._writer, lambda c: self._setup_writer(c, migrate, migrations)
        )
        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
        for _ in range(self._n_readers):
            conn = await aiosqlite.connect(
                uri, uri=True, isolation_level=None, timeout=self._busy_ms / 1000
            )
            self._all_readers.append(conn)
            self._readers.put_nowait(conn)
        self._task = asyncio.create_task(self._writer_loop(), name=f"sqlite-writer:{self.path}")

    def _setup_writer(
        self, c: sqlite3.Connection, migrate: bool, migrations: list[Migration]
    ) -> list[str]:
        # Another process may hold the lock for a long migration; a starting server waits
        # for it (up to MIGRATION_LOCK_WAIT_S) instead of failing after busy_timeout.
        c.execute(f"PRAGMA busy_timeout = {max(self._busy_ms, MIGRATION_LOCK_WAIT_S * 1000)}")
        try:
            return self._prepare_writer(c, migrate, migrations)
        finally:
            c.execute(f"PRAGMA busy_timeout = {self._busy_ms}")

    def _prepare_writer(
        self, c: sqlite3.Connection, migrate: bool, migrations: list[Migration]
    ) -> list[str]:
        mode = _retry_while_busy(lambda: c.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        if str(mode).lower() != "wal":
            raise StoreUnavailableError(
                f"cannot put {self.path} in WAL mode (journal_mode is {mode!r}): "
                "is the file or its directory read-only?"
            )
        c.execute(f"PRAGMA synchronous = {self.synchronous}")
        c.execute("PRAGMA foreign_keys = ON")
        # Fail now, not at the first move, when the file cannot be written.
        c.execute("BEGIN IMMEDIATE")
        c.execute("ROLLBACK")
        if not migrate:
            return []
        try:
            return apply_sqlite(c, migrations, dt_to_us(utcnow()))
        except sqlite3.Error as e:
            mapped = map_error(e)
            if isinstance(mapped, StoreUnavailableError):
                raise mapped from e
            raise MigrationError(f"migration failed: {e}") from e

    async def _abort(self) -> None:
        self._closing = self._closed = True
        for conn in [self._writer, *self._all_readers]:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()

    async def close(self) -> None:
        """Stop accepting writes, finish every queued one, then close the connections."""
        if self._closing:
            if self._task is not None and not self._task.done():
                await asyncio.shield(self._task)
            return
        self._closing = True
        if self._task is not None:
            await self._queue.put(None)
            await self._task
        while not self._queue.empty():  # writes that raced with close()
            item = self._queue.get_nowait()
            if item is not None and not item[1].done():
                item[1].set_exception(StoreUnavailableError("the store is closed"))
        await self._reads_idle.wait()  # reads in flight finish
        self._closed = True
        for conn in [self._writer, *self._all_readers]:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()

    async def ping(self) -> None:
        await self._read(lambda c: c.execute("SELECT 1").fetchone())

    # -- the writer --------------------------------------------------------------------------

    async def _write(self, job: Callable[[sqlite3.Connection], T]) -> T:
        if self._closing:
            raise StoreUnavailableError("the store is closed")
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self._queue.put((job, fut))
        return await fut

    async def _writer_loop(self) -> None:
        assert self._writer is not None
        writer = self._writer
        stop = False
        while not stop:
            item = await self._queue.get()
            if item is None:
                break
            batch = [item]
            while len(batch) < self._batch_max:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            live = [(job, fut) for job, fut in batch if not fut.done()]
            if not live:
                continue
            jobs = [job for job, _ in live]
            try:
                results = await _in_thread(writer, functools.partial(_run_batch, jobs=jobs))
            except BaseException as e:
                mapped = map_error(e)
                if isinstance(e, Exception):
                    log.warning("SQLite write batch of %d failed: %s", len(live), e)
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(_chain(mapped, e))
                if isinstance(e, asyncio.CancelledError):
                    raise
                continue
            for (_, fut), (ok, value) in zip(live, results, strict=True):
                if fut.done():
                    continue
                if ok:
                    fut.set_result(value)
                else:
                    fut.set_exception(_chain(map_error(value), value))

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreUnavailableError("the store is closed")
        self._reads += 1
        self._reads_idle.clear()
        try:
            conn = await self._readers.get()
            try:
                return await _in_thread(conn, fn)
            finally:
                self._readers.put_nowait(conn)
        except (sqlite3.Error, OSError, ValueError) as e:
            mapped = map_error(e)
            if mapped is e:
                raise
            raise mapped from e
        finally:
            self._reads -= 1
            if not self._reads:
                self._reads_idle.set()

    # -- users -------------------------------------------------------------------------------

    async def create_user(
        self,
        name: str,
        password_hash: str | None,
        *,
        rating: float = 1500.0,
        rd: float = 350.0,
        volatility: float = 0.06,
        key: str | None = None,
    ) -> User:
        args = (name, key or name_key(name), password_hash, rating, rd, volatility, utcnow())

        def job(c: sqlite3.Connection) -> User:
            try:
                row = _one(c, S.INSERT_USER, args)
            except sqlite3.IntegrityError as e:
                if "name_key" in str(e):
                    raise ConflictError(f"user name {name!r} is taken") from e
                raise
            return user_from_row(_row("users", row))

        return await self._write(job)

    async def get_user(self, user_id: int) -> User:
        row = await self._read(lambda c: _one(c, S.GET_USER, (user_id,)))
        if row is None:
            raise NotFoundError(f"user {user_id} not found")
        return user_from_row(_row("users", row))

    async def get_user_by_name(self, name: str, *, key: str | None = None) -> User:
        row = await self._read(lambda c: _one(c, S.GET_USER_BY_NAME, (key or name_key(name),)))
        if row is None:
            raise NotFoundError(f"user {name!r} not found")
        return user_from_row(_row("users", row))

    async def update_user_rating(
        self, user_id: int, *, rating: float, rd: float, volatility: float, games_count: int
    ) -> User:
        args = (user_id, rating, rd, volatility, games_count)

        def job(c: sqlite3.Connection) -> User:
            row = _one(c, S.UPDATE_RATING, args)
            if row is None:
                raise NotFoundError(f"user {user_id} not found")
            return user_from_row(_row("users", row))

        return await self._write(job)

    async def set_password_hash(self, user_id: int, password_hash: str | None) -> None:
        def job(c: sqlite3.Connection) -> None:
            if _one(c, S.SET_PASSWORD, (user_id, password_hash)) is None:
                raise NotFoundError(f"user {user_id} not found")

        await self._write(job)

    # -- games -------------------------------------------------------------------------------

    async def create_game(self, game: NewGame) -> Game:
        check_new_game(game)
        args = _game_args(game)
        return await self._write(lambda c: _insert_game(c, args))

    async def get_game(self, game_id: int) -> Game:
        row = await self._read(lambda c: _one(c, S.GET_GAME, (game_id,)))
        if row is None:
            raise NotFoundError(f"game {game_id} not found")
        return game_from_row(_row("games", row))

    async def _games(self, sql: str, args: Sequence[Any]) -> list[Game]:
        rows = await self._read(lambda c: c.execute(q(sql), _args(args)).fetchall())
        return [game_from_row(_row("games", r)) for r in rows]

    async def list_active_games(self, user_id: int) -> list[Game]:
        return await self._games(S.ACTIVE_GAMES, (user_id,))

    async def list_active_bot_games(self, limit: int = 1000) -> list[Game]:
        return await self._games(S.ACTIVE_BOT_GAMES, (limit,))

    async def save_analysis(self, game_id: int, turns: Sequence[tuple[int, Any]]) -> int:
        now = dt_to_us(utcnow())
        rows = [(game_id, int(t), encode_json(p), now) for t, p in turns]

        def job(c: sqlite3.Connection) -> int:
            if c.execute("SELECT 1 FROM games WHERE id = ?", (game_id,)).fetchone() is None:
                raise NotFoundError(f"game {game_id} not found")
            c.executemany(q(S.UPSERT_ANALYSIS), rows)
            return len(rows)

        return await self._write(job)

    async def load_analysis(self, game_id: int) -> list[AnalysisTurn]:
        rows = await self._read(lambda c: c.execute(q(S.LOAD_ANALYSIS), (game_id,)).fetchall())
        return [
            AnalysisTurn(
                game_id=r[0], turn=r[1], payload=decode_json(r[2]), created_at=us_to_dt(r[3])
            )
            for r in rows
        ]

    async def list_recent_finished(
        self, limit: int = 50, *, before: datetime | None = None
    ) -> list[Game]:
        if before is None:
            return await self._games(S.RECENT_FINISHED, (limit,))
        return await self._games(S.RECENT_FINISHED_BEFORE, (limit, before))

    async def update_game(
        self,
        game_id: int,
        change: GameChange,
        *,
        expect_status: str | Sequence[str] | None = None,
        expect_seq: int | None = None,
    ) -> Game:
        sql, args = S.update_game_sql(change.columns(), statuses(expect_status), expect_seq)
        full = _args([game_id, *args])

        def job(c: sqlite3.Connection) -> Game:
            rows = c.execute(q(sql), full).fetchall()
            if not rows:
                state = _one(c, S.GAME_STATE, (game_id,))
                if state is None:
                    raise NotFoundError(f"game {game_id} not found")
                raise ConflictError(
                    f"game {game_id} changed: last_seq={state[0]} status={state[1]!r}"
                )
            return game_from_row(_row("games", rows[0]))

        return await self._write(job)

    async def expired_games(self, now: datetime | None = None, limit: int = 100) -> list[Game]:
        return await self._games(S.EXPIRED_GAMES, (now or utcnow(), limit))

    # -- ratings -------------------------------------------------------------------------------

    async def get_ratings(self, user_id: int) -> dict[str, PoolRating]:
        rows = await self._read(lambda c: c.execute(q(S.GET_RATINGS), (user_id,)).fetchall())
        return {r[1]: rating_from_row((*r[:6], us_to_dt(r[6]))) for r in rows}

    async def apply_rating_update(
        self, game_id: int, updates: Sequence[RatingUpdate], *, now: datetime | None = None
    ) -> bool:
        check_rating_updates(updates)
        when = dt_to_us(now or utcnow())

        def job(c: sqlite3.Connection) -> bool:
            for u in updates:
                hist = (game_id, u.user_id, u.pool, u.rating_before, u.rating, u.rd, when)
                if _one(c, S.INSERT_HISTORY, hist) is None:
                    raise RatingAlreadyApplied(f"game {game_id} is rated already")
            for u in updates:
                args = (u.user_id, u.pool, u.rating, u.rd, u.volatility, u.games_before, when)
                if _one(c, S.UPSERT_RATING, args) is None:
                    raise ConflictError(f"the {u.pool} rating of user {u.user_id} changed")
                if u.pool == "overall":
                    mirror = (u.user_id, u.rating, u.rd, u.volatility, u.games_before + 1)
                    c.execute(q(S.MIRROR_OVERALL), mirror)
            return True

        try:
            return await self._write(job)
        except RatingAlreadyApplied:
            return False

    async def rating_history(
        self, user_id: int, pool: str, limit: int = 500
    ) -> list[RatingHistoryEntry]:
        args = (user_id, pool, limit)
        rows = await self._read(lambda c: c.execute(q(S.RATING_HISTORY), args).fetchall())
        return [history_from_row((*r[:6], us_to_dt(r[6]))) for r in rows]

    async def leaderboard(
        self, pool: str, limit: int = 50, *, max_rd: float | None = None
    ) -> list[LeaderboardEntry]:
        args = (pool, limit, float("inf") if max_rd is None else max_rd)
        rows = await self._read(lambda c: c.execute(q(S.LEADERBOARD), args).fetchall())
        return [leader_from_row(r) for r in rows]

    async def is_game_rated(self, game_id: int) -> bool:
        row = await self._read(lambda c: _one(c, S.GAME_RATED, (game_id,)))
        if row is None:
            raise NotFoundError(f"game {game_id} not found")
        return bool(row[0])

    async def set_game_rated(self, game_id: int, rated: bool) -> None:
        row = await self._write(lambda c: _one(c, S.SET_GAME_RATED, (game_id, int(rated))))
        if row is None:
            raise NotFoundError(f"game {game_id} not found")

    async def unrated_finished_games(self, limit: int = 100) -> list[Game]:
        return await self._games(S.UNRATED_FINISHED, (limit,))

    # -- the event log -----------------------------------------------------------------------

    async def append_events(
        self,
        game_id: int,
        events: Sequence[NewEvent],
        *,
        change: GameChange | None = None,
        expect_status: str | Sequence[str] | None = None,
    ) -> list[Event]:
        check_events(events)
        cols = change.columns() if change is not None else {}
        first, last = events[0].seq, events[-1].seq
        extra_sql, extra_args = S.events_table_args(cols, 4)
        args: list[Any] = [last, first - 1, *extra_args]
        sql = (
            f"UPDATE games SET last_seq = $2{extra_sql} WHERE id = $1 AND last_seq = $3"
            + S.conditions(args, statuses(expect_status), None)
        )
        sql = q(sql)
        full = _args([game_id, *args])
        items = [(e.seq, e.kind, encode_json(e.payload), e.payload) for e in events]

        def job(c: sqlite3.Connection) -> list[Event]:
            if c.execute(sql, full).rowcount != 1:
                state = _one(c, S.GAME_STATE, (game_id,))
                if state is None:
                    raise NotFoundError(f"game {game_id} not found")
                raise ConflictError(
                    f"cannot append seq {first} to game {game_id}: "
                    f"last_seq={state[0]} status={state[1]!r}"
                )
            now = utcnow()
            ts = dt_to_us(now)
            c.executemany(q(S.INSERT_EVENT), [(game_id, s, k, p, ts) for s, k, p, _ in items])
            return [
                Event(game_id=game_id, seq=s, kind=k, payload=v, created_at=now)
                for s, k, _, v in items
            ]

        return await self._write(job)

    async def events_since(
        self, game_id: int, seq: int = 0, *, limit: int | None = None
    ) -> list[Event]:
        args: tuple[Any, ...]
        if limit is None:
            sql, args = S.EVENTS_SINCE, (game_id, seq)
        else:
            sql, args = S.EVENTS_SINCE_LIMIT, (game_id, seq, limit)
        rows = await self._read(lambda c: c.execute(q(sql), args).fetchall())
        return [event_from_row((r[0], r[1], r[2], r[3], us_to_dt(r[4]))) for r in rows]

    # -- chat --------------------------------------------------------------------------------

    async def add_chat(self, room: str, user_id: int | None, text: str) -> ChatMessage:
        args = (room, user_id, text, utcnow())
        row = await self._write(lambda c: _one(c, S.INSERT_CHAT, args))
        return chat_from_row(_row("chat_messages", row))

    async def list_chat(
        self, room: str, *, limit: int = 50, before_id: int | None = None
    ) -> list[ChatMessage]:
        args: tuple[Any, ...]
        if before_id is None:
            sql, args = S.LIST_CHAT, (room, limit)
        else:
            sql, args = S.LIST_CHAT_BEFORE, (room, limit, before_id)
        rows = await self._read(lambda c: c.execute(q(sql), args).fetchall())
        return [chat_from_row(_row("chat_messages", r)) for r in rows]

    # -- challenges --------------------------------------------------------------------------

    async def create_challenge(
        self,
        challenger_id: int,
        params: Any,
        *,
        target_id: int | None = None,
        expires_at: datetime | None = None,
    ) -> Challenge:
        args = (challenger_id, target_id, encode_json(params), utcnow(), expires_at)
        row = await self._write(lambda c: _one(c, S.INSERT_CHALLENGE, args))
        return challenge_from_row(_row("challenges", row))

    async def get_challenge(self, challenge_id: int) -> Challenge:
        row = await self._read(lambda c: _one(c, S.GET_CHALLENGE, (challenge_id,)))
        if row is None:
            raise NotFoundError(f"challenge {challenge_id} not found")
        return challenge_from_row(_row("challenges", row))

    async def list_open_challenges(
        self, *, user_id: int | None = None, now: datetime | None = None, limit: int = 100
    ) -> list[Challenge]:
        when = now or utcnow()
        if user_id is None:
            sql, args = S.LIST_OPEN_PUBLIC, _args((when, limit))
        else:
            sql, args = S.LIST_OPEN_FOR_USER, _args((when, limit, user_id))
        rows = await self._read(lambda c: c.execute(q(sql), args).fetchall())
        return [challenge_from_row(_row("challenges", r)) for r in rows]

    async def accept_challenge(
        self,
        challenge_id: int,
        acceptor_id: int,
        *,
        game: NewGame | None = None,
        now: datetime | None = None,
    ) -> Challenge:
        when = now or utcnow()
        if game is not None:
            check_new_game(game)
        game_args = _game_args(game) if game is not None else None

        def job(c: sqlite3.Connection) -> Challenge:
            row = _one(c, S.ACCEPT_CHALLENGE, (challenge_id, acceptor_id, when))
            if row is None:
                old = _one(c, S.GET_CHALLENGE, (challenge_id,))
                raise accept_failure(
                    challenge_id,
                    acceptor_id,
                    None if old is None else challenge_from_row(_row("challenges", old)),
                    check_dt(when),
                )
            if game_args is not None:
                new_game = _insert_game(c, game_args)
                row = _one(c, S.SET_CHALLENGE_GAME, (challenge_id, new_game.id))
            return challenge_from_row(_row("challenges", row))

        return await self._write(job)

    async def close_challenge(
        self, challenge_id: int, status: str, *, user_id: int | None = None
    ) -> Challenge:
        check_close_status(status)

        def job(c: sqlite3.Connection) -> Challenge:
            if user_id is None:
                row = _one(c, S.CLOSE_CHALLENGE, (challenge_id, status))
            else:
                row = _one(c, S.CLOSE_CHALLENGE_BY, (challenge_id, status, user_id))
            if row is None:
                old = _one(c, S.GET_CHALLENGE, (challenge_id,))
                if old is None:
                    raise NotFoundError(f"challenge {challenge_id} not found")
                raise ConflictError(f"challenge {challenge_id} is {old[4]!r}, or not yours")
            return challenge_from_row(_row("challenges", row))

        return await self._write(job)

    async def expire_challenges(self, now: datetime | None = None) -> int:
        args = _args((now or utcnow(),))
        return await self._write(lambda c: c.execute(q(S.EXPIRE_CHALLENGES), args).rowcount)

    # -- refresh tokens ----------------------------------------------------------------------

    async def create_refresh_token(
        self, token_hash: str, user_id: int, expires_at: datetime
    ) -> RefreshToken:
        args = (token_hash, user_id, utcnow(), expires_at)
        row = await self._write(lambda c: _one(c, S.INSERT_TOKEN, args))
        return token_from_row(_row("refresh_tokens", row))

    async def get_refresh_token(self, token_hash: str) -> RefreshToken:
        row = await self._read(lambda c: _one(c, S.GET_TOKEN, (token_hash,)))
        if row is None:
            raise NotFoundError("refresh token not found")
        return token_from_row(_row("refresh_tokens", row))

    async def rotate_refresh_token(
        self,
        old_hash: str,
        new_hash: str,
        expires_at: datetime,
        *,
        now: datetime | None = None,
    ) -> RefreshToken:
        when = check_dt(now or utcnow())
        check_dt(expires_at)

        def job(c: sqlite3.Connection) -> RefreshToken:
            row = _one(c, S.REVOKE_FOR_ROTATION, (old_hash, when, new_hash))
            if row is None:
                if _one(c, S.GET_TOKEN, (old_hash,)) is None:
                    raise NotFoundError("refresh token not found")
                raise ConflictError("refresh token already used, revoked or expired")
            new = _one(c, S.INSERT_TOKEN, (new_hash, row[0], when, expires_at))
            return token_from_row(_row("refresh_tokens", new))

        return await self._write(job)

    async def revoke_refresh_token(self, token_hash: str) -> bool:
        args = _args((token_hash, utcnow()))
        n = await self._write(lambda c: c.execute(q(S.REVOKE_TOKEN), args).rowcount)
        return bool(n)

    async def revoke_user_tokens(self, user_id: int) -> int:
        args = _args((user_id, utcnow()))
        return await self._write(lambda c: c.execute(q(S.REVOKE_USER_TOKENS), args).rowcount)

    async def purge_refresh_tokens(self, now: datetime | None = None) -> int:
        args = _args((now or utcnow(),))
        return await self._write(lambda c: c.execute(q(S.PURGE_TOKENS), args).rowcount)

    async def revoke_access_tokens(self, user_id: int, not_before_ms: int) -> None:
        args = (user_id, not_before_ms)
        await self._write(lambda c: c.execute(q(S.REVOKE_ACCESS), args).rowcount)

    async def access_revocations(self, since_ms: int) -> dict[int, int]:
        rows = await self._read(
            lambda c: c.execute(q(S.ACCESS_REVOCATIONS), (since_ms,)).fetchall()
        )
        return {int(uid): int(nb) for uid, nb in rows}

    async def purge_access_revocations(self, before_ms: int) -> int:
        sql = q(S.PURGE_ACCESS_REVOCATIONS)
        return await self._write(lambda c: c.execute(sql, (before_ms,)).rowcount)

    # -- copy support ------------------------------------------------------------------------

    async def dump_rows(
        self, table: str, after: tuple[Any, ...] | None, limit: int
    ) -> list[tuple[Any, ...]]:
        cols = COLUMNS[table]
        npk = PRIMARY_KEYS[table]
        pk = ", ".join(cols[:npk])
        sql = f"SELECT {', '.join(cols)} FROM {table}"
        args: tuple[Any, ...] = ()
        if after is not None:
            marks = ", ".join("?" for _ in range(npk))
            sql += f" WHERE ({pk}) > ({marks})"
            args = tuple(after)
        sql += f" ORDER BY {pk} LIMIT {int(limit)}"
        rows = await self._read(lambda c: c.execute(sql, args).fetchall())
        return [tuple(_row(table, r)) for r in rows]

    async def load_rows(self, table: str, rows: Sequence[tuple[Any, ...]]) -> int:
        cols = COLUMNS[table]
        sql = (
            f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"
            " ON CONFLICT DO NOTHING"
        )
        data = [_args(r) for r in rows]

        def job(c: sqlite3.Connection) -> int:
            before = c.total_changes
            c.executemany(sql, data)
            return c.total_changes - before

        return await self._write(job)

    async def finish_load(self) -> None:
        return None  # INTEGER PRIMARY KEY picks max(id) + 1 by itself

    # -- automatch (migration 0004_automatch) ---------------------------------------------------

    async def create_automatch_request(
        self,
        user_id: int,
        *,
        speed: str,
        sizes: Sequence[int],
        rated: bool,
        rating: float,
        now: datetime | None = None,
    ) -> tuple[AutomatchRequest, AutomatchRequest | None]:
        check_automatch_speed(speed)
        mask = sizes_to_mask(sizes)
        when = now or utcnow()

        def job(c: sqlite3.Connection) -> tuple[AutomatchRequest, AutomatchRequest | None]:
            old = _one(c, SA.CANCEL_OF_USER, (user_id, when))
            row = _one(c, SA.INSERT_AUTOMATCH, (user_id, speed, mask, int(rated), rating, when))
            return _automatch(row), None if old is None else _automatch(old)

        return await self._write(job)

    async def get_automatch_request(self, request_id: int) -> AutomatchRequest:
        row = await self._read(lambda c: _one(c, SA.GET_AUTOMATCH, (request_id,)))
        if row is None:
            raise NotFoundError(f"automatch request {request_id} not found")
        return _automatch(row)

    async def waiting_automatch_request(self, user_id: int) -> AutomatchRequest | None:
        row = await self._read(lambda c: _one(c, SA.WAITING_OF_USER, (user_id,)))
        return None if row is None else _automatch(row)

    async def waiting_automatch_requests(
        self, speed: str | None = None, limit: int = 1000
    ) -> list[AutomatchRequest]:
        args: tuple[Any, ...]
        if speed is None:
            sql, args = SA.WAITING_ALL, (limit,)
        else:
            sql, args = SA.WAITING_OF_SPEED, (limit, speed)
        rows = await self._read(lambda c: c.execute(q(sql), args).fetchall())
        return [_automatch(r) for r in rows]

    async def cancel_automatch_request(
        self, user_id: int, *, request_id: int | None = None, now: datetime | None = None
    ) -> AutomatchRequest | None:
        when = now or utcnow()
        args: tuple[Any, ...]
        if request_id is None:
            sql, args = SA.CANCEL_OF_USER, (user_id, when)
        else:
            sql, args = SA.CANCEL_BY_ID, (user_id, request_id, when)
        row = await self._write(lambda c: _one(c, sql, args))
        return None if row is None else _automatch(row)

    async def claim_automatch_pair(
        self, request_id: int, candidate_ids: Sequence[int], *, now: datetime | None = None
    ) -> tuple[AutomatchRequest, AutomatchRequest] | None:
        when = now or utcnow()
        ids = list(candidate_ids)

        # The single writer runs this whole job as one transaction, so claims are serial.
        def job(c: sqlite3.Connection) -> tuple[AutomatchRequest, AutomatchRequest] | None:
            own = _one(c, SA.GET_AUTOMATCH, (request_id,))
            if own is None or own[6] != "waiting":
                return None
            for cid in ids:
                other = _one(c, SA.CANDIDATE_SQLITE, (cid, own[1]))
                if other is None or other[0] == request_id:
                    continue
                a = _one(c, SA.MARK_PAIRED, (request_id, other[0], other[1], when))
                b = _one(c, SA.MARK_PAIRED, (other[0], request_id, own[1], when))
                return _automatch(a), _automatch(b)
            return None

        return await self._write(job)

    async def set_automatch_game(self, request_ids: Sequence[int], game_id: int | None) -> int:
        ids = list(request_ids)

        def job(c: sqlite3.Connection) -> int:
            n = 0
            for rid in ids:
                if game_id is None:
                    n += c.execute(q(SA.CANCEL_PAIRED), (rid,)).rowcount
                else:
                    n += c.execute(q(SA.SET_GAME), (rid, game_id)).rowcount
            return n

        return await self._write(job)

    async def acquire_lease(self, name: str, holder: str, ttl_ms: int, now_ms: int) -> bool:
        def job(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
                "expires_at = excluded.expires_at "
                "WHERE leases.holder = excluded.holder OR leases.expires_at <= ?",
                (name, holder, now_ms + ttl_ms, now_ms),
            )
            return cur.rowcount == 1

        return await self._write(job)

    async def release_lease(self, name: str, holder: str) -> bool:
        def job(c: sqlite3.Connection) -> bool:
            cur = c.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))
            return cur.rowcount == 1

        return await self._write(job)

    async def last_seqs(self, game_ids: Sequence[int]) -> dict[int, int]:
        ids = [int(g) for g in game_ids]

        def job(c: sqlite3.Connection) -> dict[int, int]:
            out: dict[int, int] = {}
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT id, last_seq FROM games WHERE id IN ({marks})"
                out.update((r[0], r[1]) for r in c.execute(sql, chunk))
            return out

        return await self._read(job)


def _chain(mapped: BaseException, original: BaseException) -> BaseException:
    if mapped is not original and mapped.__cause__ is None:
        mapped.__cause__ = original
    return mapped


def _game_args(game: NewGame) -> tuple[Any, ...]:
    return _args(
        (
            game.black_id,
            game.white_id,
            game.black_bot,
            game.white_bot,
            game.width,
            game.height,
            float(game.komi),
            game.rules,
            game.handicap,
            encode_json(game.time_control),
            game.status,
            utcnow(),
        )
    )


def _automatch(row: Sequence[Any]) -> AutomatchRequest:
    r = list(row)
    for i in (7, 8):  # created_at, closed_at
        if r[i] is not None:
            r[i] = us_to_dt(r[i])
    return automatch_from_row(r)


def _insert_game(c: sqlite3.Connection, args: tuple[Any, ...]) -> Game:
    return game_from_row(_row("games", _one(c, S.INSERT_GAME, args)))
