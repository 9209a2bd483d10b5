"""PostgreSQL backend (production and multi-instance), through asyncpg.

A connection pool; asyncpg prepares and caches every statement per connection. Most writes
are one statement (autocommit is its own transaction); the rest run in an explicit
transaction. Appending events is a single statement::

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
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from . import _sql as S
from . import _sql_automatch as SA
from .base import (
    BOOL_COLUMNS,
    COLUMNS,
    IDENTITY_TABLES,
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
from .migrator import (
    PG_LOCK_KEY,
    PG_MIGRATIONS_TABLE,
    Migration,
    check_applied,
    load_migrations,
)
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


def _args(args: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(check_dt(a) if isinstance(a, datetime) else a for a in args)


class PostgresStore(Store):
    backend = "postgres"

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
        self._closed = False
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        #: names of the migrations applied when this store was opened
        self.applied_migrations: list[str] = []

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
        try:
            store._pool = await asyncpg.create_pool(
                dsn or url,
                min_size=store._pool_min,
                max_size=store._pool_max,
                command_timeout=store._command_timeout,
                timeout=store._connect_timeout,
                reset=_keep_session,
            )
            if migrate:
                found = load_migrations("postgres", migrations)
                async with store._pool.acquire() as conn:
                    store.applied_migrations = await apply_postgres(conn, found)
        except BaseException as e:
            await store._abort()
            mapped = map_error(e)
            if mapped is e:
                raise
            raise mapped from e
        return store

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
            await asyncio.wait_for(self._idle.wait(), timeout)
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.close(), timeout=10)
            except (TimeoutError, Exception):
                self._pool.terminate()

    async def ping(self) -> None:
        await self._fetchval("SELECT 1", retry=False)

    # -- plumbing ----------------------------------------------------------------------------

    async def _run(self, fn: Callable[[asyncpg.Connection], Awaitable[T]], retry: bool) -> T:
        if self._closed or self._pool is None:
            raise StoreUnavailableError("the store is closed")
        self._inflight += 1
        self._idle.clear()
        try:
            return await self._run_once(fn, retry)
        finally:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()

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
                if mapped is e:
                    raise
                raise mapped from e
        raise AssertionError("unreachable")

    async def _fetch(self, sql: str, *args: Any, retry: bool = True) -> list[asyncpg.Record]:
        a = _args(args)
        return await self._run(lambda c: c.fetch(sql, *a), retry)

    async def _fetchrow(self, sql: str, *args: Any, retry: bool = True) -> asyncpg.Record | None:
        a = _args(args)
        return await self._run(lambda c: c.fetchrow(sql, *a), retry)

    async def _fetchval(self, sql: str, *args: Any, retry: bool = True) -> Any:
        a = _args(args)
        return await self._run(lambda c: c.fetchval(sql, *a), retry)

    async def _write(self, sql: str, *args: Any) -> asyncpg.Record | None:
        return await self._fetchrow(sql, *args, retry=False)

    async def _execute_count(self, sql: str, *args: Any) -> int:
        a = _args(args)
        status: str = await self._run(lambda c: c.execute(sql, *a), False)
        return int(status.rsplit(" ", 1)[-1])

    async def _tx(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        async def run(conn: asyncpg.Connection) -> T:
            async with conn.transaction():
                return await fn(conn)

        return await self._run(run, False)

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
        try:
            row = await self._write(
                S.INSERT_USER,
                name,
                key or name_key(name),
                password_hash,
                float(rating),
                float(rd),
                float(volatility),
                utcnow(),
            )
        except ConflictError as e:
            raise ConflictError(f"user name {name!r} is taken") from e
        assert row is not None
        return user_from_row(row)

    async def get_user(self, user_id: int) -> User:
        row = await self._fetchrow(S.GET_USER, user_id)
        if row is None:
            raise NotFoundError(f"user {user_id} not found")
        return user_from_row(row)

    async def get_user_by_name(self, name: str, *, key: str | None = None) -> User:
        row = await self._fetchrow(S.GET_USER_BY_NAME, key or name_key(name))
        if row is None:
            raise NotFoundError(f"user {name!r} not found")
        return user_from_row(row)

    async def update_user_rating(
        self, user_id: int, *, rating: float, rd: float, volatility: float, games_count: int
    ) -> User:
        row = await self._write(
            S.UPDATE_RATING, user_id, float(rating), float(rd), float(volatility), games_count
        )
        if row is None:
            raise NotFoundError(f"user {user_id} not found")
        return user_from_row(row)

    async def set_password_hash(self, user_id: int, password_hash: str | None) -> None:
        if await self._write(S.SET_PASSWORD, user_id, password_hash) is None:
            raise NotFoundError(f"user {user_id} not found")

    # -- games -------------------------------------------------------------------------------

    async def create_game(self, game: NewGame) -> Game:
        check_new_game(game)
        row = await self._write(S.INSERT_GAME, *_game_args(game))
        assert row is not None
        return game_from_row(row)

    async def get_game(self, game_id: int) -> Game:
        row = await self._fetchrow(S.GET_GAME, game_id)
        if row is None:
            raise NotFoundError(f"game {game_id} not found")
        return game_from_row(row)

    async def list_active_games(self, user_id: int) -> list[Game]:
        return [game_from_row(r) for r in await self._fetch(S.ACTIVE_GAMES, user_id)]

    async def list_active_bot_games(self, limit: int = 1000) -> list[Game]:
        return [game_from_row(r) for r in await self._fetch(S.ACTIVE_BOT_GAMES, limit)]

    async def save_analysis(self, game_id: int, turns: Sequence[tuple[int, Any]]) -> int:
        now = utcnow()
        rows = [(game_id, int(t), encode_json(p), now) for t, p in turns]

        async def job(conn: asyncpg.Connection) -> int:
            if await conn.fetchval("SELECT 1 FROM games WHERE id = $1", game_id) is None:
                raise NotFoundError(f"game {game_id} not found")
            await conn.executemany(S.UPSERT_ANALYSIS, rows)
            return len(rows)

        return await self._tx(job)

    async def load_analysis(self, game_id: int) -> list[AnalysisTurn]:
        rows = await self._fetch(S.LOAD_ANALYSIS, game_id)
        return [
            AnalysisTurn(game_id=r[0], turn=r[1], payload=decode_json(r[2]), created_at=r[3])
            for r in rows
        ]

    async def list_recent_finished(
        self, limit: int = 50, *, before: datetime | None = None
    ) -> list[Game]:
        if before is None:
            rows = await self._fetch(S.RECENT_FINISHED, limit)
        else:
            rows = await self._fetch(S.RECENT_FINISHED_BEFORE, limit, before)
        return [game_from_row(r) for r in rows]

    async def update_game(
        self,
        game_id: int,
        change: GameChange,
        *,
        expect_status: str | Sequence[str] | None = None,
        expect_seq: int | None = None,
    ) -> Game:
        sql, args = S.update_game_sql(change.columns(), statuses(expect_status), expect_seq)
        row = await self._write(sql, game_id, *args)
        if row is None:
            raise await self._game_conflict(game_id, "game changed")
        return game_from_row(row)

    async def _game_conflict(self, game_id: int, what: str) -> StoreError:
        state = await self._fetchrow(S.GAME_STATE, game_id)
        if state is None:
            return NotFoundError(f"game {game_id} not found")
        return ConflictError(f"{what} (game {game_id}: last_seq={state[0]} status={state[1]!r})")

    async def expired_games(self, now: datetime | None = None, limit: int = 100) -> list[Game]:
        rows = await self._fetch(S.EXPIRED_GAMES, now or utcnow(), limit)
        return [game_from_row(r) for r in rows]

    # -- ratings -------------------------------------------------------------------------------

    async def get_ratings(self, user_id: int) -> dict[str, PoolRating]:
        rows = await self._fetch(S.GET_RATINGS, user_id)
        return {r[1]: rating_from_row(r) for r in rows}

    async def apply_rating_update(
        self, game_id: int, updates: Sequence[RatingUpdate], *, now: datetime | None = None
    ) -> bool:
        check_rating_updates(updates)
        when = check_dt(now or utcnow())

        async def tx(conn: asyncpg.Connection) -> bool:
            for u in updates:
                hist = (game_id, u.user_id, u.pool, u.rating_before, u.rating, u.rd, when)
                if await conn.fetchrow(S.INSERT_HISTORY, *hist) is None:
                    raise RatingAlreadyApplied(f"game {game_id} is rated already")
            for u in updates:
                args = (u.user_id, u.pool, u.rating, u.rd, u.volatility, u.games_before, when)
                if await conn.fetchrow(S.UPSERT_RATING, *args) is None:
                    raise ConflictError(f"the {u.pool} rating of user {u.user_id} changed")
                if u.pool == "overall":
                    mirror = (u.user_id, u.rating, u.rd, u.volatility, u.games_before + 1)
                    await conn.execute(S.MIRROR_OVERALL, *mirror)
            return True

        try:
            return await self._tx(tx)
        except RatingAlreadyApplied:
            return False

    async def rating_history(
        self, user_id: int, pool: str, limit: int = 500
    ) -> list[RatingHistoryEntry]:
        return [
            history_from_row(r) for r in await self._fetch(S.RATING_HISTORY, user_id, pool, limit)
        ]

    async def leaderboard(
        self, pool: str, limit: int = 50, *, max_rd: float | None = None
    ) -> list[LeaderboardEntry]:
        bound = float("inf") if max_rd is None else max_rd
        return [leader_from_row(r) for r in await self._fetch(S.LEADERBOARD, pool, limit, bound)]

    async def is_game_rated(self, game_id: int) -> bool:
        row = await self._fetchrow(S.GAME_RATED, game_id)
        if row is None:
            raise NotFoundError(f"game {game_id} not found")
        return bool(row[0])

    async def set_game_rated(self, game_id: int, rated: bool) -> None:
        if await self._write(S.SET_GAME_RATED, game_id, rated) is None:
            raise NotFoundError(f"game {game_id} not found")

    async def unrated_finished_games(self, limit: int = 100) -> list[Game]:
        return [game_from_row(r) for r in await self._fetch(S.UNRATED_FINISHED, limit)]

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
        where = S.conditions(args, statuses(expect_status), None)
        now = utcnow()
        args.append(now)
        ts = f"${len(args) + 1}"
        if len(events) == 1:
            e = events[0]
            args += [e.seq, e.kind, encode_json(e.payload)]
            n = len(args) + 1  # $n is the last argument
            source = f"SELECT g.id, ${n - 2}::bigint, ${n - 1}::text, ${n}::text, {ts} FROM g"
        else:
            args += [
                [e.seq for e in events],
                [e.kind for e in events],
                [encode_json(e.payload) for e in events],
            ]
            n = len(args) + 1
            source = (
                f"SELECT g.id, e.seq, e.kind, e.payload, {ts} FROM g,"
                f" unnest(${n - 2}::bigint[], ${n - 1}::text[], ${n}::text[])"
                " AS e(seq, kind, payload)"
            )
        sql = (
            f"WITH g AS (UPDATE games SET last_seq = $2{extra_sql}"
            f" WHERE id = $1 AND last_seq = $3{where} RETURNING id)"
            f" INSERT INTO game_events (game_id, seq, kind, payload, created_at) {source}"
        )
        try:
            inserted = await self._execute_count(sql, game_id, *args)
        except ConflictError as e:  # the key backs up the last_seq check
            raise ConflictError(f"seq {first} of game {game_id} is taken") from e
        if inserted != len(events):
            raise await self._game_conflict(game_id, f"cannot append seq {first}")
        return [
            Event(game_id=game_id, seq=e.seq, kind=e.kind, payload=e.payload, created_at=now)
            for e in events
        ]

    async def events_since(
        self, game_id: int, seq: int = 0, *, limit: int | None = None
    ) -> list[Event]:
        if limit is None:
            rows = await self._fetch(S.EVENTS_SINCE, game_id, seq)
        else:
            rows = await self._fetch(S.EVENTS_SINCE_LIMIT, game_id, seq, limit)
        return [event_from_row(r) for r in rows]

    # -- chat --------------------------------------------------------------------------------

    async def add_chat(self, room: str, user_id: int | None, text: str) -> ChatMessage:
        row = await self._write(S.INSERT_CHAT, room, user_id, text, utcnow())
        assert row is not None
        return chat_from_row(row)

    async def list_chat(
        self, room: str, *, limit: int = 50, before_id: int | None = None
    ) -> list[ChatMessage]:
        if before_id is None:
            rows = await self._fetch(S.LIST_CHAT, room, limit)
        else:
            rows = await self._fetch(S.LIST_CHAT_BEFORE, room, limit, before_id)
        return [chat_from_row(r) for r in rows]

    # -- challenges --------------------------------------------------------------------------

    async def create_challenge(
        self,
        challenger_id: int,
        params: Any,
        *,
        target_id: int | None = None,
        expires_at: datetime | None = None,
    ) -> Challenge:
        row = await self._write(
            S.INSERT_CHALLENGE, challenger_id, target_id, encode_json(params), utcnow(), expires_at
        )
        assert row is not None
        return challenge_from_row(row)

    async def get_challenge(self, challenge_id: int) -> Challenge:
        row = await self._fetchrow(S.GET_CHALLENGE, challenge_id)
        if row is None:
            raise NotFoundError(f"challenge {challenge_id} not found")
        return challenge_from_row(row)

    async def list_open_challenges(
        self, *, user_id: int | None = None, now: datetime | None = None, limit: int = 100
    ) -> list[Challenge]:
        when = now or utcnow()
        if user_id is None:
            rows = await self._fetch(S.LIST_OPEN_PUBLIC, when, limit)
        else:
            rows = await self._fetch(S.LIST_OPEN_FOR_USER, when, limit, user_id)
        return [challenge_from_row(r) for r in rows]

    async def accept_challenge(
        self,
        challenge_id: int,
        acceptor_id: int,
        *,
        game: NewGame | None = None,
        now: datetime | None = None,
    ) -> Challenge:
        when = check_dt(now or utcnow())
        if game is not None:
            check_new_game(game)
        game_args = _game_args(game) if game is not None else None

        async def tx(conn: asyncpg.Connection) -> Challenge:
            row = await conn.fetchrow(S.ACCEPT_CHALLENGE, challenge_id, acceptor_id, when)
            if row is None:
                old = await conn.fetchrow(S.GET_CHALLENGE, challenge_id)
                raise accept_failure(
                    challenge_id,
                    acceptor_id,
                    None if old is None else challenge_from_row(old),
                    when,
                )
            if game_args is not None:
                new_game = await conn.fetchrow(S.INSERT_GAME, *game_args)
                row = await conn.fetchrow(S.SET_CHALLENGE_GAME, challenge_id, new_game["id"])
            return challenge_from_row(row)

        return await self._tx(tx)

    async def close_challenge(
        self, challenge_id: int, status: str, *, user_id: int | None = None
    ) -> Challenge:
        check_close_status(status)
        if user_id is None:
            row = await self._write(S.CLOSE_CHALLENGE, challenge_id, status)
        else:
            row = await self._write(S.CLOSE_CHALLENGE_BY, challenge_id, status, user_id)
        if row is None:
            old = await self._fetchrow(S.GET_CHALLENGE, challenge_id)
            if old is None:
                raise NotFoundError(f"challenge {challenge_id} not found")
            raise ConflictError(f"challenge {challenge_id} is {old['status']!r}, or not yours")
        return challenge_from_row(row)

    async def expire_challenges(self, now: datetime | None = None) -> int:
        return await self._execute_count(S.EXPIRE_CHALLENGES, now or utcnow())

    # -- refresh tokens ----------------------------------------------------------------------

    async def create_refresh_token(
        self, token_hash: str, user_id: int, expires_at: datetime
    ) -> RefreshToken:
        row = await self._write(S.INSERT_TOKEN, token_hash, user_id, utcnow(), expires_at)
        assert row is not None
        return token_from_row(row)

    async def get_refresh_token(self, token_hash: str) -> RefreshToken:
        row = await self._fetchrow(S.GET_TOKEN, token_hash)
        if row is None:
            raise NotFoundError("refresh token not found")
        return token_from_row(row)

    async def rotate_refresh_token(
        self,
        old_hash: str,
        new_hash: str,
        expires_at: datetime,
        *,
        now: datetime | None = None,
    ) -> RefreshToken:
        when = check_dt(now or utcnow())
        expires = check_dt(expires_at)

        async def tx(conn: asyncpg.Connection) -> RefreshToken:
            user_id = await conn.fetchval(S.REVOKE_FOR_ROTATION, old_hash, when, new_hash)
            if user_id is None:
                if await conn.fetchrow(S.GET_TOKEN, old_hash) is None:
                    raise NotFoundError("refresh token not found")
                raise ConflictError("refresh token already used, revoked or expired")
            row = await conn.fetchrow(S.INSERT_TOKEN, new_hash, user_id, when, expires)
            return token_from_row(row)

        return await self._tx(tx)

    async def revoke_refresh_token(self, token_hash: str) -> bool:
        return bool(await self._execute_count(S.REVOKE_TOKEN, token_hash, utcnow()))

    async def revoke_user_tokens(self, user_id: int) -> int:
        return await self._execute_count(S.REVOKE_USER_TOKENS, user_id, utcnow())

    async def purge_refresh_tokens(self, now: datetime | None = None) -> int:
        return await self._execute_count(S.PURGE_TOKENS, now or utcnow())

    async def revoke_access_tokens(self, user_id: int, not_before_ms: int) -> None:
        await self._execute_count(S.REVOKE_ACCESS, user_id, not_before_ms)

    async def access_revocations(self, since_ms: int) -> dict[int, int]:
        rows = await self._fetch(S.ACCESS_REVOCATIONS, since_ms)
        return {int(r[0]): int(r[1]) for r in rows}

    async def purge_access_revocations(self, before_ms: int) -> int:
        return await self._execute_count(S.PURGE_ACCESS_REVOCATIONS, before_ms)

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
            marks = ", ".join(f"${i + 1}" for i in range(npk))
            sql += f" WHERE ({pk}) > ({marks})"
            args = tuple(after)
        sql += f" ORDER BY {pk} LIMIT {int(limit)}"
        return [tuple(r) for r in await self._fetch(sql, *args)]

    async def load_rows(self, table: str, rows: Sequence[tuple[Any, ...]]) -> int:
        if not rows:
            return 0
        cols = COLUMNS[table]
        arrays = ", ".join(f"${i + 1}::{_pg_type(c)}[]" for i, c in enumerate(cols))
        sql = (
            f"INSERT INTO {table} ({', '.join(cols)}) SELECT * FROM unnest({arrays})"
            " ON CONFLICT DO NOTHING"
        )
        columns = [[_args((r[i],))[0] for r in rows] for i in range(len(cols))]
        return await self._execute_count(sql, *columns)

    async def finish_load(self) -> None:
        for table in IDENTITY_TABLES:
            await self._fetchval(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" coalesce(max(id), 0) + 1, false) FROM {table}",
                retry=False,
            )

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
        when = check_dt(now or utcnow())

        async def tx(conn: asyncpg.Connection) -> tuple[AutomatchRequest, AutomatchRequest | None]:
            old = await conn.fetchrow(SA.CANCEL_OF_USER, user_id, when)
            row = await conn.fetchrow(
                SA.INSERT_AUTOMATCH, user_id, speed, mask, bool(rated), float(rating), when
            )
            return automatch_from_row(row), None if old is None else automatch_from_row(old)

        return await self._tx(tx)

    async def get_automatch_request(self, request_id: int) -> AutomatchRequest:
        row = await self._fetchrow(SA.GET_AUTOMATCH, request_id)
        if row is None:
            raise NotFoundError(f"automatch request {request_id} not found")
        return automatch_from_row(row)

    async def waiting_automatch_request(self, user_id: int) -> AutomatchRequest | None:
        row = await self._fetchrow(SA.WAITING_OF_USER, user_id)
        return None if row is None else automatch_from_row(row)

    async def waiting_automatch_requests(
        self, speed: str | None = None, limit: int = 1000
    ) -> list[AutomatchRequest]:
        if speed is None:
            rows = await self._fetch(SA.WAITING_ALL, limit)
        else:
            rows = await self._fetch(SA.WAITING_OF_SPEED, limit, speed)
        return [automatch_from_row(r) for r in rows]

    async def cancel_automatch_request(
        self, user_id: int, *, request_id: int | None = None, now: datetime | None = None
    ) -> AutomatchRequest | None:
        when = check_dt(now or utcnow())
        if request_id is None:
            row = await self._write(SA.CANCEL_OF_USER, user_id, when)
        else:
            row = await self._write(SA.CANCEL_BY_ID, user_id, request_id, when)
        return None if row is None else automatch_from_row(row)

    async def claim_automatch_pair(
        self, request_id: int, candidate_ids: Sequence[int], *, now: datetime | None = None
    ) -> tuple[AutomatchRequest, AutomatchRequest] | None:
        when = check_dt(now or utcnow())
        ids = [i for i in candidate_ids if i != request_id]
        if not ids:
            return None

        # Both SELECTs skip rows another claimer holds: a claim never waits for another,
        # so concurrent claims cannot deadlock, and a row is paired at most once.
        async def tx(conn: asyncpg.Connection) -> tuple[AutomatchRequest, AutomatchRequest] | None:
            own = await conn.fetchrow(SA.LOCK_OWN_PG, request_id)
            if own is None:
                return None
            other = await conn.fetchrow(SA.CANDIDATE_PG, ids, own["user_id"])
            if other is None:
                return None
            a = await conn.fetchrow(SA.MARK_PAIRED, request_id, other["id"], other["user_id"], when)
            b = await conn.fetchrow(SA.MARK_PAIRED, other["id"], request_id, own["user_id"], when)
            if a is None or b is None:  # cannot happen under the row locks
                raise ConflictError("automatch request changed during the claim")
            return automatch_from_row(a), automatch_from_row(b)

        return await self._tx(tx)

    async def set_automatch_game(self, request_ids: Sequence[int], game_id: int | None) -> int:
        ids = list(request_ids)

        async def tx(conn: asyncpg.Connection) -> int:
            n = 0
            for rid in ids:
                if game_id is None:
                    status = await conn.execute(SA.CANCEL_PAIRED, rid)
                else:
                    status = await conn.execute(SA.SET_GAME, rid, game_id)
                n += int(status.rsplit(" ", 1)[-1])
            return n

        return await self._tx(tx)

    async def acquire_lease(self, name: str, holder: str, ttl_ms: int, now_ms: int) -> bool:
        n = await self._execute_count(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
            "expires_at = excluded.expires_at "
            "WHERE leases.holder = excluded.holder OR leases.expires_at <= $4",
            name,
            holder,
            now_ms + ttl_ms,
            now_ms,
        )
        return n == 1

    async def release_lease(self, name: str, holder: str) -> bool:
        n = await self._execute_count(
            "DELETE FROM leases WHERE name = $1 AND holder = $2", name, holder
        )
        return n == 1

    async def last_seqs(self, game_ids: Sequence[int]) -> dict[int, int]:
        ids = [int(g) for g in game_ids]
        out: dict[int, int] = {}
        for i in range(0, len(ids), 500):
            rows = await self._fetch(
                "SELECT id, last_seq FROM games WHERE id = ANY($1::bigint[])", ids[i : i + 500]
            )
            out.update((r[0], r[1]) for r in rows)
        return out


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool reset hook. asyncpg's default runs ``RESET ALL; UNLISTEN *; ...`` at every
    release: one more round trip per call, for session state this store never leaves
    behind (no SET, LISTEN, cursors or advisory locks outlive a call). An open transaction
    is still rolled back by asyncpg before this hook runs."""


def _game_args(game: NewGame) -> tuple[Any, ...]:
    return (
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
