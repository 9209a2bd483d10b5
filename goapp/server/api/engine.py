"""The engine in the API: the bots on offer, the score estimate of a position, AI reviews of
finished games. See docs/engine.md and docs/api.md."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from goapp.engine.bots import DEFAULT_LEVEL, LEVELS
from goapp.engine.errors import EngineBusyError, EngineError, EngineUnavailableError
from goapp.engine.review import ReviewBusy
from goapp.game.errors import NotAPlayer, WrongPhase
from goapp.server.api.common import (
    Route,
    client_ip,
    ctx_of,
    id_param,
    json_response,
    optional_user_id,
    path_id,
    rate_limit,
    require_user_id,
)
from goapp.server.context import ServerContext
from goapp.server.errors import ApiError


class BotLevelOut(msgspec.Struct):
    name: str
    visits: int
    gnugo_level: int
    description: str


class BotsOut(msgspec.Struct):
    engine: str
    state: str
    default_level: str
    levels: list[BotLevelOut]


class EstimateOut(msgspec.Struct):
    game_id: int
    seq: int
    engine: str
    dead: list[str]
    ownership: list[float] | None
    score_lead: float | None
    winrate: float | None


class ReviewOut(msgspec.Struct):
    game_id: int
    status: str
    visits: int
    turns: list[dict[str, Any]]
    error: str | None = None


def _unavailable(exc: EngineError) -> ApiError:
    if isinstance(exc, ReviewBusy | EngineBusyError):
        return ApiError(503, "engine_busy", str(exc), retry_after=30)
    return ApiError(503, "engine_unavailable", str(exc), retry_after=30)


def _need_engine(ctx: ServerContext) -> None:
    if ctx.engine is None:
        raise ApiError(503, "engine_unavailable", "no engine is configured on this server")


async def get_bots(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    return json_response(
        BotsOut(
            engine="none" if ctx.engine is None else ctx.engine.kind,
            state=ctx.engine_state,
            default_level=DEFAULT_LEVEL,
            levels=[
                BotLevelOut(lv.name, lv.visits, lv.gnugo_level, lv.description)
                for lv in LEVELS.values()
            ],
        )
    )


async def get_estimate(request: web.Request) -> web.Response:
    game_id = path_id(request)
    ctx = ctx_of(request)
    state = await ctx.games.state(game_id)
    if state.phase == "finished":
        # anyone may look at a finished game's estimate (it is computed once, then cached)
        user_id = optional_user_id(request)
        if user_id is None:
            await rate_limit(request, ("estimate:ip", client_ip(request)))
        else:
            await rate_limit(request, ("estimate:user", str(user_id)))
    else:
        # a live game's estimate is for its players only (never help for onlookers)
        user_id = require_user_id(request)
        if state.color_of(user_id) is None:
            raise NotAPlayer("only the players of a game see its estimate before it ends")
        if state.phase != "scoring":
            raise WrongPhase("the engine's estimate is shown once the game is being scored")
        await rate_limit(request, ("estimate:user", str(user_id)))
    _need_engine(ctx)
    assert ctx.estimator is not None and ctx.engine is not None
    try:
        est = await ctx.estimator.estimate(state)
    except EngineError as exc:
        raise _unavailable(exc) from None
    return json_response(
        EstimateOut(
            game_id=game_id,
            seq=state.last_seq,
            engine=ctx.engine.kind,
            dead=list(est.dead or []),
            ownership=est.ownership,
            score_lead=est.score_lead,
            winrate=est.winrate,
        )
    )


async def _review_out(ctx: ServerContext, game_id: int) -> ReviewOut:
    return msgspec.convert(await ctx.reviews.status(game_id), ReviewOut)


async def post_review(request: web.Request) -> web.Response:
    require_user_id(request)
    game_id = path_id(request)
    ctx = ctx_of(request)
    try:
        status = await ctx.reviews.request(game_id)
    except (EngineUnavailableError, ReviewBusy) as exc:
        raise _unavailable(exc) from None
    out = await _review_out(ctx, game_id)
    return json_response(out, status=200 if status == "done" else 202)


async def get_review(request: web.Request) -> web.Response:
    game_id = path_id(request)
    ctx = ctx_of(request)
    await ctx.games.state(game_id)  # 404 for an unknown game
    return json_response(await _review_out(ctx, game_id))


_ID = r"{id:\d+}"
_GAME_ID = id_param(what="the game id")

ROUTES = [
    Route(
        "GET",
        "/api/bots",
        get_bots,
        "The computer opponents on offer: the engine, its state and the levels",
        "engine",
        response=BotsOut,
    ),
    Route(
        "GET",
        f"/api/games/{_ID}/estimate",
        get_estimate,
        "The engine's ownership map and proposed dead stones for a game being scored",
        "engine",
        response=EstimateOut,
        auth="optional",
        params=(_GAME_ID,),
        errors=(401, 403, 404, 409, 429, 503),
        description="A live game's estimate is for its players only (401 without a login, "
        "403 `not_a_player` for anyone else), in the scoring phase only (409 `wrong_phase`: "
        "never as help during play); a finished game's is for anyone. `ownership` is "
        "row-major from the top-left, +1 = Black (null from GNU Go); `dead` lists the stones "
        "of chains the engine sees as dead. Cached per game and seq: a finished position is "
        "estimated once. Limited per user (per IP without a login): 429 `rate_limited` with "
        "Retry-After. Estimates queue behind every bot move, and only a few may wait: 503 "
        "`engine_busy` with Retry-After when the queue is full, `engine_unavailable` "
        "without an engine.",
    ),
    Route(
        "POST",
        f"/api/games/{_ID}/review",
        post_review,
        "Start the AI review of a finished game (once; later calls return it)",
        "engine",
        response=ReviewOut,
        status=202,
        auth="required",
        params=(_GAME_ID,),
        errors=(401, 404, 409, 503),
        description="202 with `status` queued/running while it is computed, 200 with the "
        "turns once stored. 503 `engine_unavailable` without KataGo, `engine_busy` when too "
        "many reviews wait. 409 `wrong_phase` for a game not finished.",
    ),
    Route(
        "GET",
        f"/api/games/{_ID}/review",
        get_review,
        "The AI review of a game: status and, when done, every turn's winrate, score lead "
        "and best moves",
        "engine",
        response=ReviewOut,
        params=(_GAME_ID,),
        errors=(404,),
    ),
]
