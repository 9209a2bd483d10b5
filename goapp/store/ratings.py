"""Glicko-2 ratings per pool, their history, the leaderboard (migration 0003_ratings)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .errors import ConflictError, NotFoundError
from .games import SET_GAME_RATED, game_from_row
from .records import (
    RATING_POOLS,
    Game,
    LeaderboardEntry,
    PoolRating,
    RatingHistoryEntry,
    RatingUpdate,
)
from .schema import cols, utcnow
from .seam import Backend, Plan, count, one, rows

RATING = cols("ratings")
HISTORY = cols("rating_history")
GAME = cols("games")

GET_RATINGS = f"SELECT {RATING} FROM ratings WHERE user_id = $1 ORDER BY pool"
INSERT_HISTORY = (
    f"INSERT INTO rating_history ({HISTORY}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    " ON CONFLICT (game_id, user_id, pool) DO NOTHING RETURNING game_id"
)
# the new rating, only if nobody changed it since it was read (games = $6)
UPSERT_RATING = (
    f"INSERT INTO ratings ({RATING}) VALUES ($1, $2, $3, $4, $5, $6 + 1, $7)"
    " ON CONFLICT (user_id, pool) DO UPDATE SET rating = excluded.rating, rd = excluded.rd,"
    " volatility = excluded.volatility, games = excluded.games,"
    " updated_at = excluded.updated_at WHERE ratings.games = $6 RETURNING user_id"
)
# the overall pool is mirrored in the users row (users.rating ... games_count)
MIRROR_OVERALL = (
    "UPDATE users SET rating = $2, rd = $3, volatility = $4, games_count = $5 WHERE id = $1"
)
RATING_HISTORY = (
    f"SELECT {HISTORY} FROM (SELECT {HISTORY} FROM rating_history"
    " WHERE user_id = $1 AND pool = $2 ORDER BY created_at DESC, game_id DESC LIMIT $3) AS t"
    " ORDER BY created_at, game_id"
)
LEADERBOARD = (
    "SELECT r.user_id, u.name, r.rating, r.rd, r.volatility, r.games FROM ratings AS r"
    " JOIN users AS u ON u.id = r.user_id WHERE r.pool = $1 AND r.rd < $3"
    " ORDER BY r.rating DESC, r.user_id LIMIT $2"
)
GAME_RATED = "SELECT rated FROM games WHERE id = $1"
# finished rated games between two users that have no rating history yet (catch-up)
UNRATED_FINISHED = (
    f"SELECT {GAME} FROM games AS g WHERE g.status = 'finished' AND g.rated"
    " AND g.black_id IS NOT NULL AND g.white_id IS NOT NULL"
    " AND g.black_bot IS NULL AND g.white_bot IS NULL"
    " AND NOT EXISTS (SELECT 1 FROM rating_history AS h WHERE h.game_id = g.id)"
    " ORDER BY g.finished_at, g.id LIMIT $1"
)


def rating_from_row(r: Sequence[Any]) -> PoolRating:
    return PoolRating(
        user_id=r[0], pool=r[1], rating=r[2], rd=r[3], volatility=r[4], games=r[5], updated_at=r[6]
    )


def history_from_row(r: Sequence[Any]) -> RatingHistoryEntry:
    return RatingHistoryEntry(
        game_id=r[0],
        user_id=r[1],
        pool=r[2],
        rating_before=r[3],
        rating_after=r[4],
        rd_after=r[5],
        created_at=r[6],
    )


def leader_from_row(r: Sequence[Any]) -> LeaderboardEntry:
    return LeaderboardEntry(
        user_id=r[0], name=r[1], rating=r[2], rd=r[3], volatility=r[4], games=r[5]
    )


def check_rating_updates(updates: Sequence[RatingUpdate]) -> None:
    if not updates:
        raise ValueError("apply_rating_update needs at least one update")
    for u in updates:
        if u.pool not in RATING_POOLS:
            raise ValueError(f"unknown rating pool {u.pool!r}")


class RatingAlreadyApplied(ConflictError):
    """Internal to :meth:`RatingQueries.apply_rating_update`: the game has history rows
    already (raised inside the transaction to roll it back; the method returns False)."""


class RatingQueries(Backend):
    async def get_ratings(self, user_id: int) -> dict[str, PoolRating]:
        """A user's ratings by pool (``"overall"``, ``"9"``, ``"13"``, ``"19"``); pools the
        user has no rated game in are absent."""
        found = await self._read(rows(GET_RATINGS, user_id, table="ratings"))
        return {r[1]: rating_from_row(r) for r in found}

    async def apply_rating_update(
        self, game_id: int, updates: Sequence[RatingUpdate], *, now: datetime | None = None
    ) -> bool:
        """Record a rated game: history rows for ``game_id`` and the new ratings, in one
        transaction (the ``overall`` pool is mirrored in the user's row). Returns False,
        changing nothing, when the game already has history rows: a rating update applies
        exactly once, across retries and instances. ConflictError (nothing changed) when a
        rating changed since it was read (``games_before``): recompute and retry."""
        check_rating_updates(updates)
        when = now or utcnow()

        def plan() -> Plan[bool]:
            for u in updates:
                hist = (game_id, u.user_id, u.pool, u.rating_before, u.rating, u.rd, when)
                if (yield from one(INSERT_HISTORY, *hist)) is None:
                    raise RatingAlreadyApplied(f"game {game_id} is rated already")
            for u in updates:
                args = (u.user_id, u.pool, u.rating, u.rd, u.volatility, u.games_before, when)
                if (yield from one(UPSERT_RATING, *args)) is None:
                    raise ConflictError(f"the {u.pool} rating of user {u.user_id} changed")
                if u.pool == "overall":
                    mirror = (u.user_id, u.rating, u.rd, u.volatility, u.games_before + 1)
                    yield from count(MIRROR_OVERALL, *mirror)
            return True

        try:
            return await self._write(plan(), atomic=True)
        except RatingAlreadyApplied:
            return False

    async def rating_history(
        self, user_id: int, pool: str, limit: int = 500
    ) -> list[RatingHistoryEntry]:
        """The latest ``limit`` rated games of a user in a pool, oldest first."""
        plan = rows(RATING_HISTORY, user_id, pool, limit, table="rating_history")
        return [history_from_row(r) for r in await self._read(plan)]

    async def leaderboard(
        self, pool: str, limit: int = 50, *, max_rd: float | None = None
    ) -> list[LeaderboardEntry]:
        """The highest ratings of a pool (only RD below ``max_rd`` when given)."""
        bound = float("inf") if max_rd is None else max_rd
        return [leader_from_row(r) for r in await self._read(rows(LEADERBOARD, pool, limit, bound))]

    async def is_game_rated(self, game_id: int) -> bool:
        """The game's ``rated`` flag (default true). NotFoundError when there is no game."""
        row = await self._read(one(GAME_RATED, game_id))
        if row is None:
            raise NotFoundError(f"game {game_id} not found")
        return bool(row[0])

    async def set_game_rated(self, game_id: int, rated: bool) -> None:
        """Set the game's ``rated`` flag. NotFoundError when there is no game."""
        if await self._write(one(SET_GAME_RATED, game_id, bool(rated))) is None:
            raise NotFoundError(f"game {game_id} not found")

    async def unrated_finished_games(self, limit: int = 100) -> list[Game]:
        """Finished rated games between two users with no rating history yet, the earliest
        finished first (``RatingService.catch_up``)."""
        found = await self._read(rows(UNRATED_FINISHED, limit, table="games"))
        return [game_from_row(r) for r in found]
