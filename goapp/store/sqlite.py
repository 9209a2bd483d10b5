"""SQLite backend (the embedded default), on the standard library's ``sqlite3``.

Layout of a running store:

* one **writer** connection on a thread of its own (:class:`ConnectionThread`: the
  connection is opened, used and closed on that thread only). Every write is a plan (see
  ``seam.py``) put on an asyncio queue; a single writer task takes every plan that is
  waiting (up to ``batch_max``), runs them on the writer thread in one ``BEGIN IMMEDIATE``
  transaction, each inside its own ``SAVEPOINT`` so that a plan that fails (seq taken,
  name taken, ...) is undone alone, then ``COMMIT`` s once (group commit: one fsync for the
  whole batch) and only then answers every caller. The event loop never blocks on SQLite.
* a small pool of **read-only** connections (``mode=ro``), each on its own thread too; in
  WAL mode readers never block the writer nor each other, and each read sees every commit
  acknowledged before it began.

Durability (``synchronous``, see docs/storage.md): in WAL mode a commit is in the WAL file
when ``COMMIT`` returns, so a crash or kill -9 of the process never loses an acknowledged
write with either setting. ``FULL`` (the default) also fsyncs the WAL at every commit, so a
power loss or kernel crash loses nothing acknowledged either; ``NORMAL`` fsyncs only at
checkpoints and may lose the last commits on power loss (the database stays consistent).

What differs from PostgreSQL: placeholders ``?n``, timestamps stored as integer
microseconds since the epoch, appending events as an UPDATE then an INSERT (the single
writer serializes them), and claims that need no row locks (the single writer again).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from goapp.private_files import create_private_file, make_private_dir

from .base import Store
from .challenges import AVAILABLE, CANDIDATE_COLUMNS, GET_AUTOMATCH
from .errors import (
    ConflictError,
    MigrationError,
    NotFoundError,
    StoreError,
    StoreUnavailableError,
    reraise,
)
from .games import INSERT_EVENT
from .migrator import Migration, apply_sqlite, load_migrations
from .schema import (
    BOOL_COLUMNS,
    COLUMNS,
    OTHER_COLUMNS,
    TIMESTAMP_COLUMNS,
    dt_to_us,
    us_to_dt,
    utcnow,
)
from .seam import Op, Plan, many, one

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
    return exc


def _chain(mapped: BaseException, original: BaseException) -> BaseException:
    if mapped is not original and mapped.__cause__ is None:
        mapped.__cause__ = original
    return mapped


# -- one connection, one thread ------------------------------------------------------------------


class ConnectionThread:
    """A ``sqlite3`` connection that lives on a thread of its own: :meth:`run` sends a
    function of the connection to that thread and awaits its result, so the event loop
    never waits on SQLite. Jobs run one at a time, in the order they were sent."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[tuple[Job, asyncio.Future[Any]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._finished: asyncio.Future[None] | None = None
        self._closed = False

    async def open(self, connect: Callable[[], sqlite3.Connection]) -> None:
        """Start the thread and open the connection on it (``connect`` runs there)."""
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = loop.create_future()
        self._finished = loop.create_future()
        self._thread = threading.Thread(
            target=self._main, args=(connect, opened, self._finished), name=self.name, daemon=True
        )
        self._thread.start()
        await opened

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn(connection)`` on the connection's thread."""
        if self._closed:
            raise StoreUnavailableError("the store is closed")
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._jobs.put((fn, fut))
        return await fut

    async def close(self) -> None:
        """Finish the jobs already sent, close the connection, end the thread."""
        self._closed = True
        self._jobs.put(None)
        if self._finished is not None:
            await asyncio.shield(self._finished)

    def _main(
        self,
        connect: Callable[[], sqlite3.Connection],
        opened: asyncio.Future[None],
        finished: asyncio.Future[None],
    ) -> None:
        try:
            conn = connect()
        except BaseException as e:
            self._closed = True
            _answer(opened, None, e)
            _answer(finished, None, None)
            return
        _answer(opened, None, None)
        try:
            while (item := self._jobs.get()) is not None:
                fn, fut = item
                try:
                    result = fn(conn)
                except BaseException as e:
                    _answer(fut, None, e)
                else:
                    _answer(fut, result, None)
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
            with contextlib.suppress(queue.Empty):  # jobs that raced with close()
                while True:
                    if (item := self._jobs.get_nowait()) is not None:
                        _answer(item[1], None, StoreUnavailableError("the store is closed"))
            _answer(finished, None, None)


def _answer(fut: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """Settle an asyncio future from another thread (unless its caller gave up on it)."""

    def settle() -> None:
        if fut.done():
            return
        if error is None:
            fut.set_result(result)
        else:
            fut.set_exception(error)

    with contextlib.suppress(RuntimeError):  # the event loop is closed: nobody is waiting
        fut.get_loop().call_soon_threadsafe(settle)


# -- running plans -------------------------------------------------------------------------------

_PARAM = re.compile(r"\$(\d+)")


@lru_cache(maxsize=512)
def to_sqlite(sql: str) -> str:
    """SQLite reads PostgreSQL's ``$n`` placeholders as ``?n``."""
    return _PARAM.sub(r"?\1", sql)


def _encode(args: Sequence[Any]) -> list[Any]:
    return [dt_to_us(a) if isinstance(a, datetime) else a for a in args]


def _converters(table: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    columns = COLUMNS.get(table) or OTHER_COLUMNS[table]
    times = tuple(i for i, c in enumerate(columns) if c in TIMESTAMP_COLUMNS)
    return times, tuple(i for i, c in enumerate(columns) if c in BOOL_COLUMNS)


#: table -> (indexes of timestamp columns, indexes of boolean columns)
_DECODE = {t: _converters(t) for t in (*COLUMNS, *OTHER_COLUMNS)}


def _decode(table: str, row: Sequence[Any]) -> list[Any]:
    """A row in the neutral form: timestamps as datetimes, booleans as bool."""
    out = list(row)
    times, bools = _DECODE[table]
    for i in times:
        if out[i] is not None:
            out[i] = us_to_dt(out[i])
    for i in bools:
        if out[i] is not None:
            out[i] = bool(out[i])
    return out


def _execute(c: sqlite3.Connection, op: Op) -> Any:
    kind, sql, args, table = op
    if kind == "many":
        c.executemany(to_sqlite(sql), map(_encode, args))
        return None
    cur = c.execute(to_sqlite(sql), _encode(args))
    if kind == "count":
        return cur.rowcount
    found = cur.fetchall()  # to the end: a statement is done only when its cursor is
    if kind == "one":
        row = found[0] if found else None
        return row if row is None or table is None else _decode(table, row)
    return found if table is None else [_decode(table, r) for r in found]


def run_plan(c: sqlite3.Connection, plan: Plan[T]) -> T:
    """Run a plan to its end on a connection (on the connection's thread)."""
    result: Any = None
    try:
        while True:
            result = _execute(c, plan.send(result))
    except StopIteration as done:
        value: T = done.value
        return value


def _run_batch(c: sqlite3.Connection, plans: list[Plan[Any]]) -> list[tuple[bool, Any]]:
    """Run plans in one transaction; each plan's own failure is undone by its savepoint and
    returned as ``(False, exc)``. Any other failure (I/O, disk full) aborts the batch."""
    results: list[tuple[bool, Any]] = []
    c.execute("BEGIN IMMEDIATE")
    try:
        if len(plans) == 1:
            try:
                results.append((True, run_plan(c, plans[0])))
            except (sqlite3.IntegrityError, ConflictError, NotFoundError, ValueError) as e:
                c.execute("ROLLBACK")
                return [(False, e)]
        else:
            for plan in plans:
                c.execute("SAVEPOINT job")
                try:
                    res = run_plan(c, plan)
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
    _map_error = staticmethod(map_error)

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
        self._queue: asyncio.Queue[tuple[Plan[Any], asyncio.Future[Any]] | None] = asyncio.Queue(
            queue_max
        )
        self._writer: ConnectionThread | None = None
        self._readers: asyncio.Queue[ConnectionThread] = asyncio.Queue()
        self._all_readers: list[ConnectionThread] = []
        self._task: asyncio.Task[None] | None = None
        self._closing = False  # refuses writes; reads go on until _closed

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
        await store._start(
            store._open(migrate, load_migrations("sqlite", migrations) if migrate else [])
        )
        return store

    def _connect(self, target: str, *, uri: bool = False) -> Callable[[], sqlite3.Connection]:
        def connect() -> sqlite3.Connection:
            return sqlite3.connect(
                target,
                uri=uri,
                isolation_level=None,  # autocommit: the writer says BEGIN and COMMIT itself
                timeout=self._busy_ms / 1000,
            )

        return connect

    async def _open(self, migrate: bool, migrations: list[Migration]) -> None:
        if str(self.path) in ("", ":memory:") or str(self.path).startswith("file:"):
            raise ValueError("the SQLite store needs a file path (WAL does not work in memory)")
        try:
            make_private_dir(self.path.parent)
            # 0600 whatever the umask; SQLite gives the -wal and -shm files the same mode
            create_private_file(self.path)
        except OSError as e:
            raise StoreUnavailableError(f"cannot create {self.path}: {e}") from e
        self._writer = ConnectionThread(f"sqlite-writer:{self.path.name}")
        await self._writer.open(self._connect(str(self.path)))
        self.applied_migrations = await self._writer.run(
            lambda c: self._setup_writer(c, migrate, migrations)
        )
        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
        for i in range(self._n_readers):
            reader = ConnectionThread(f"sqlite-reader-{i}:{self.path.name}")
            self._all_readers.append(reader)
            await reader.open(self._connect(uri, uri=True))
            self._readers.put_nowait(reader)
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

    async def _close_connections(self) -> None:
        for conn in [self._writer, *self._all_readers]:
            if conn is not None:
                await conn.close()

    async def _abort(self) -> None:
        self._closing = self._closed = True
        await self._close_connections()

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
        await self._calls.wait_idle()  # reads in flight finish
        self._closed = True
        await self._close_connections()

    # -- the writer --------------------------------------------------------------------------

    async def _write(self, plan: Plan[T], *, atomic: bool = False) -> T:
        # every write plan is atomic here: it runs inside the writer's transaction
        if self._closing:
            raise StoreUnavailableError("the store is closed")
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self._queue.put((plan, fut))
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
            live = [(plan, fut) for plan, fut in batch if not fut.done()]
            if not live:
                continue
            plans = [plan for plan, _ in live]
            try:
                results = await writer.run(functools.partial(_run_batch, plans=plans))
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

    async def _read(self, plan: Plan[T]) -> T:
        if self._closed:
            raise StoreUnavailableError("the store is closed")
        with self._calls:
            reader = await self._readers.get()
            try:
                return await reader.run(lambda c: run_plan(c, plan))
            except (sqlite3.Error, OSError) as e:
                reraise(e, map_error(e))
            finally:
                self._readers.put_nowait(reader)

    # -- what differs from PostgreSQL --------------------------------------------------------

    def _append(
        self,
        update_sql: str,
        args: list[Any],
        events: list[tuple[int, str, str]],
        now: datetime,
    ) -> Plan[bool]:
        # the hot path (every move): Ops yielded directly, the timestamp converted once
        if (yield ("count", update_sql, args, None)) != 1:
            return False
        ts = dt_to_us(now)
        if len(events) == 1:
            yield ("count", INSERT_EVENT, (args[0], *events[0], ts), None)
        else:
            yield ("many", INSERT_EVENT, [(args[0], *e, ts) for e in events], None)
        return True

    def _claim_automatch(
        self, request_id: int, candidate_ids: list[int]
    ) -> Plan[tuple[Any, Any] | None]:
        # The single writer runs the whole claim as one transaction: no locks needed.
        own = yield from one(GET_AUTOMATCH, request_id)
        if own is None or own[6] != "waiting":
            return None
        candidate = f"SELECT {CANDIDATE_COLUMNS} FROM automatch_requests AS r WHERE r.id = $1"
        for cid in candidate_ids:
            other = yield from one(f"{candidate} AND {AVAILABLE}", cid, own[1])
            if other is not None:
                return own, other
        return None

    def _id_in(self, column: str, first: int, ids: Sequence[int]) -> tuple[str, list[Any]]:
        marks = ", ".join(f"${first + i}" for i in range(len(ids)))
        return f"{column} IN ({marks})", list(ids)

    # -- copy support ------------------------------------------------------------------------

    async def load_rows(self, table: str, rows: Sequence[tuple[Any, ...]]) -> int:
        columns = COLUMNS[table]
        marks = ", ".join(f"${i + 1}" for i in range(len(columns)))
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) ON CONFLICT DO NOTHING"

        def plan() -> Plan[int]:
            before = yield from one("SELECT total_changes()")
            yield from many(sql, rows)
            after = yield from one("SELECT total_changes()")
            return int(after[0] - before[0])

        return await self._write(plan())

    async def finish_load(self) -> None:
        return None  # INTEGER PRIMARY KEY picks max(id) + 1 by itself
