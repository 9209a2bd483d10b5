"""Ratings: a user's rating history (for a graph), the leaderboard, and the handicap a
challenge between two players should have. See docs/ratings.md."""

from __future__ import annotations

from datetime import datetime

import msgspec
from aiohttp import web

from goapp.rating.glicko2 import Rating
from goapp.rating.handicap import suggest_handicap
from goapp.rating.ranks import display_rank, is_provisional
from goapp.rating.service import aged_rating
from goapp.server import auth
from goapp.server.api.common import (
    Param,
    Route,
    ctx_of,
    db,
    json_response,
    query_int,
    require_user_id,
)
from goapp.server.auth import InvalidUsernameError
from goapp.server.errors import ApiError
from goapp.store import RATING_POOLS, PoolRating, Store, User
from goapp.store.errors import NotFoundError

#: The most history points and leaderboard rows one answer holds.
MAX_HISTORY = 1000
MAX_LEADERBOARD = 200


class PoolRatingOut(msgspec.Struct):
    rating: float
    rd: float
    rank: str
    provisional: bool
    games: int


class HistoryPoint(msgspec.Struct):
    game_id: int
    at: datetime
    rating_before: float
    rating: float
    rd: float
    rank: str


class RatingHistoryOut(msgspec.Struct):
    user: str
    pool: str
    points: list[HistoryPoint]


class LeaderboardRow(msgspec.Struct):
    place: int
    name: str
    rating: float
    rd: float
    rank: str
    provisional: bool
    games: int


class LeaderboardOut(msgspec.Struct):
    pool: str
    players: list[LeaderboardRow]


class SuggestionOut(msgspec.Struct):
    """A suggested game between the caller and ``opponent``: ``black`` names who takes
    Black (None: an even game, colours by nigiri)."""

    size: int
    rules: str
    pool: str
    handicap: int
    komi: float
    black: str | None
    stones: int
    rank_difference: float
    your_rank: str
    opponent_rank: str


def pool_out(r: PoolRating) -> PoolRatingOut:
    # The RD as of now: it grows with the rating periods since the last rated game
    # (docs/ratings.md), so a player back after months shows as less certain.
    g = aged_rating(r)
    return PoolRatingOut(
        rating=round(r.rating, 1),
        rd=round(g.rd, 1),
        rank=display_rank(g),
        provisional=is_provisional(g),
        games=r.games,
    )


def pool_of_size(size: int) -> str:
    return str(size) if str(size) in RATING_POOLS else "overall"


def _pool(request: web.Request) -> str:
    pool = request.query.get("pool") or "overall"
    if pool not in RATING_POOLS:
        raise ApiError(
            400, "bad_request", f"pool must be one of {', '.join(RATING_POOLS)}", path="pool"
        )
    return pool


async def user_by_name(store: Store, name: str) -> User:
    try:
        canon = auth.validate_username(name)
        return await db(
            "get_user_by_name", store.get_user_by_name(canon, key=auth.username_key(canon))
        )
    except (InvalidUsernameError, NotFoundError):
        raise ApiError(404, "user_not_found", f"no user named {name!r}") from None


async def user_ratings(store: Store, user_id: int) -> dict[str, PoolRatingOut]:
    ratings = await db("get_ratings", store.get_ratings(user_id))
    return {pool: pool_out(r) for pool, r in ratings.items()}


async def rating_history(request: web.Request) -> web.Response:
    store = ctx_of(request).store
    user = await user_by_name(store, request.match_info["name"])
    pool = _pool(request)
    limit = query_int(request, "limit", 500, 1, MAX_HISTORY)
    assert limit is not None
    rows = await db("rating_history", store.rating_history(user.id, pool, limit))
    points = [
        HistoryPoint(
            game_id=h.game_id,
            at=h.created_at,
            rating_before=round(h.rating_before, 1),
            rating=round(h.rating_after, 1),
            rd=round(h.rd_after, 1),
            rank=display_rank(Rating(h.rating_after, h.rd_after)),
        )
        for h in rows
    ]
    return json_response(RatingHistoryOut(user=user.name, pool=pool, points=points))


async def leaderboard(request: web.Request) -> web.Response:
    store = ctx_of(request).store
    pool = _pool(request)
    limit = query_int(request, "limit", 50, 1, MAX_LEADERBOARD)
    assert limit is not None
    rows = await db("leaderboard", store.leaderboard(pool, limit))
    players = []
    for i, e in enumerate(rows, 1):
        g = Rating(e.rating, e.rd, e.volatility)
        players.append(
            LeaderboardRow(
                place=i,
                name=e.name,
                rating=round(e.rating, 1),
                rd=round(e.rd, 1),
                rank=display_rank(g),
                provisional=is_provisional(g),
                games=e.games,
            )
        )
    return json_response(LeaderboardOut(pool=pool, players=players))


async def suggest(request: web.Request) -> web.Response:
    me_id = require_user_id(request)
    store = ctx_of(request).store
    name = request.query.get("opponent")
    if not name:
        raise ApiError(400, "bad_request", "query parameter opponent is required", path="opponent")
    opponent = await user_by_name(store, name)
    me = await db("get_user", store.get_user(me_id))
    size = query_int(request, "size", 19, 2, 52)
    assert size is not None
    rules = request.query.get("rules") or "japanese"
    pool = pool_of_size(size)
    mine = (await db("get_ratings", store.get_ratings(me.id))).get(pool)
    theirs = (await db("get_ratings", store.get_ratings(opponent.id))).get(pool)
    a, b = aged_rating(mine), aged_rating(theirs)
    try:
        s = suggest_handicap(a, b, rules=rules, size=size)
    except (ValueError, KeyError) as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    black = None if s.black is None else (me.name if s.black == "a" else opponent.name)
    return json_response(
        SuggestionOut(
            size=size,
            rules=rules,
            pool=pool,
            handicap=s.handicap,
            komi=s.komi,
            black=black,
            stones=s.stones,
            rank_difference=round(s.rank_difference, 2),
            your_rank=display_rank(a),
            opponent_rank=display_rank(b),
        )
    )


_POOL = Param(
    "pool",
    "query",
    {"type": "string", "enum": list(RATING_POOLS), "default": "overall"},
    "the rating pool: overall or a board size",
)

ROUTES = [
    Route(
        "GET",
        "/api/users/{name}/ratings",
        rating_history,
        "A user's rating history in one pool (oldest first), for a graph",
        "ratings",
        response=RatingHistoryOut,
        params=(
            Param("name", "path", {"type": "string"}, "the user name", required=True),
            _POOL,
            Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": MAX_HISTORY}),
        ),
        errors=(400, 404),
    ),
    Route(
        "GET",
        "/api/leaderboard",
        leaderboard,
        "The highest ratings of a pool",
        "ratings",
        response=LeaderboardOut,
        params=(
            _POOL,
            Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": MAX_LEADERBOARD}),
        ),
        errors=(400,),
    ),
    Route(
        "GET",
        "/api/challenges/suggest",
        suggest,
        "The handicap, komi and colours for a game between you and another player",
        "ratings",
        response=SuggestionOut,
        auth="required",
        params=(
            Param("opponent", "query", {"type": "string"}, "the opponent's name", required=True),
            Param("size", "query", {"type": "integer", "minimum": 2, "maximum": 52}, "board"),
            Param("rules", "query", {"type": "string"}, "ruleset (default japanese)"),
        ),
        errors=(400, 401, 404),
        description="From both players' ratings in the board size's pool (overall for "
        "other sizes); see docs/ratings.md.",
    ),
]
