"""Challenges: offer a game (open to anyone, or to one player), list, accept, cancel/decline.

Lobby events (``ctx.hub.publish_lobby``): ``challenge_created`` (the challenge),
``challenge_accepted`` (``challenge_id``, ``game_id``, ``black_id``, ``white_id``),
``challenge_cancelled`` / ``challenge_declined`` (``challenge_id``). The events of a direct
challenge go to its challenger and target only (every connection of theirs).
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web

from goapp.game.service import challenge_settings
from goapp.rules import DEFAULT_KOMI, Game, Rules
from goapp.rules.clock import TimeControl
from goapp.server.api.common import (
    Names,
    Route,
    ctx_of,
    db,
    decode_body,
    id_param,
    json_response,
    optional_user_id,
    path_id,
    require_user_id,
)
from goapp.server.auth import InvalidUsernameError, username_key, validate_username
from goapp.server.errors import ApiError
from goapp.server.ratelimit import at_cap
from goapp.store.errors import ConflictError, NotFoundError
from goapp.store.records import Challenge

log = logging.getLogger("goapp.api")

#: How long an unanswered challenge stays in the lobby.
CHALLENGE_TTL = timedelta(hours=24)
#: Largest komi accepted (either sign).
MAX_KOMI = 150.0
#: Opponent names that mean "play the computer" (with ``level``, see goapp.engine.bots).
ENGINE_NAMES = frozenset({"computer", "katago", "gnugo", "bot", "ai"})


class ChallengeBody(msgspec.Struct, forbid_unknown_fields=True):
    """A game offer. Without ``opponent`` anyone may accept it."""

    size: Annotated[int, msgspec.Meta(ge=2, le=25, description="board size; 9, 13 or 19")]
    rules: Annotated[
        str,
        msgspec.Meta(
            max_length=40,
            description="japanese, korean, chinese, aga, new_zealand, tromp_taylor",
        ),
    ] = "japanese"
    komi: Annotated[float, msgspec.Meta(ge=-MAX_KOMI, le=MAX_KOMI)] | None = None
    handicap: Annotated[int, msgspec.Meta(ge=0, le=9)] = 0
    color: Literal["black", "white", "random"] = "random"
    time_control: TimeControl | None = None
    opponent: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    rated: Annotated[
        bool,
        msgspec.Meta(
            description="false: the game moves no ratings (games against the computer never do)"
        ),
    ] = True
    level: (
        Annotated[
            str,
            msgspec.Meta(
                max_length=20, description="with opponent computer: beginner, easy, medium, strong"
            ),
        ]
        | None
    ) = None


class ComputerGame(msgspec.Struct):
    """A game against the computer: it starts at once."""

    game_id: int
    bot: str
    level: str
    color: str
    black: dict[str, Any] | None
    white: dict[str, Any] | None


class ChallengeOut(msgspec.Struct):
    id: int
    challenger: dict[str, Any] | None
    target: dict[str, Any] | None
    size: int
    rules: str
    komi: float
    handicap: int
    color: str
    time_control: dict[str, Any] | None
    rated: bool
    status: str
    created_at: datetime
    expires_at: datetime | None
    game_id: int | None


class ChallengeList(msgspec.Struct):
    challenges: list[ChallengeOut]


class Accepted(msgspec.Struct):
    game_id: int
    challenge_id: int


class Closed(msgspec.Struct):
    ok: bool
    challenge: ChallengeOut


def _bad(message: str, path: str) -> ApiError:
    return ApiError(400, "bad_settings", message, path=path)


def challenge_params(body: ChallengeBody) -> dict[str, Any]:
    """The stored parameters of a valid challenge, or a 400 ``bad_settings`` naming the
    field. The same checks as GameService.create_game, so an accepted challenge always
    makes a game."""
    try:
        rules_obj = Rules.from_name(body.rules)
    except ValueError as exc:
        raise _bad(str(exc), "$.rules") from None
    rules = "korean" if body.rules.strip().lower() in ("korean", "kr") else rules_obj.name
    komi = body.komi
    if komi is None:
        komi = 0.5 if body.handicap else DEFAULT_KOMI.get(rules, 7.5)
    if not math.isfinite(komi) or komi * 2 != int(komi * 2):
        raise _bad(f"komi must be a multiple of 0.5, not {komi}", "$.komi")
    try:
        Game(body.size, body.size, rules=rules_obj, komi=komi, handicap=body.handicap)
    except ValueError as exc:
        raise _bad(
            f"handicap {body.handicap} on {body.size}x{body.size}: {exc}", "$.handicap"
        ) from None
    control = None if body.time_control is None else msgspec.to_builtins(body.time_control)
    return {
        "size": body.size,
        "rules": rules,
        "komi": float(komi),
        "handicap": body.handicap,
        "color": body.color,
        "time_control": control,
        "rated": body.rated,
    }


async def challenge_out(names: Names, ch: Challenge) -> ChallengeOut:
    p = ch.params if isinstance(ch.params, dict) else {}
    return ChallengeOut(
        id=ch.id,
        challenger=await names.user(ch.challenger_id),
        target=await names.user(ch.target_id),
        size=int(p.get("size", 19)),
        rules=str(p.get("rules", "japanese")),
        komi=float(p.get("komi", 6.5)),
        handicap=int(p.get("handicap", 0)),
        color=str(p.get("color", "random")),
        time_control=p.get("time_control"),
        rated=bool(p.get("rated", True)),
        status=ch.status,
        created_at=ch.created_at,
        expires_at=ch.expires_at,
        game_id=ch.game_id,
    )


def publish(request: web.Request, ch: Challenge, kind: str, payload: Any) -> None:
    """A lobby event about ``ch``; never fails the request (the change is committed
    already). A direct challenge's events go to its two parties only (the HTTP list hides
    it from everyone else too)."""
    parties = None if ch.target_id is None else {ch.challenger_id, ch.target_id}
    try:
        data = msgspec.to_builtins(payload)
        ctx_of(request).hub.publish_lobby(kind, data, only=parties)
    except Exception:
        log.exception("publishing a lobby event failed", extra={"kind": kind})


async def create_challenge(request: web.Request) -> web.Response:
    me = require_user_id(request)
    body = await decode_body(request, ChallengeBody)
    ctx = ctx_of(request)
    target_id: int | None = None
    if body.opponent is not None:
        if body.opponent.strip().lower() in ENGINE_NAMES:
            return await _computer_game(request, me, body)
        try:
            canon = validate_username(body.opponent)
            target = await db(
                "get_user_by_name", ctx.store.get_user_by_name(canon, key=username_key(canon))
            )
        except (InvalidUsernameError, NotFoundError):
            raise ApiError(
                404, "user_not_found", f"no user named {body.opponent!r}", path="$.opponent"
            ) from None
        if target.id == me:
            raise _bad("you cannot challenge yourself", "$.opponent")
        target_id = target.id
    params = challenge_params(body)
    expires = datetime.now(UTC) + CHALLENGE_TTL
    cap = ctx.settings.max_open_challenges
    async with ctx.user_locks.hold(me):  # the cap is counted and kept under one lock
        if at_cap(await db("count_open_challenges", ctx.store.count_open_challenges(me)), cap):
            raise ApiError(
                409,
                "too_many_challenges",
                f"you have {cap} open challenges, the most allowed; cancel one first",
                limit=cap,
            )
        ch = await db(
            "create_challenge",
            ctx.store.create_challenge(me, params, target_id=target_id, expires_at=expires),
        )
    out = await challenge_out(Names(request), ch)
    publish(request, ch, "challenge_created", out)
    return json_response(out, status=201)


async def _computer_game(request: web.Request, me: int, body: ChallengeBody) -> web.Response:
    """``opponent: "computer"``: no challenge, the game against a bot starts at once (the
    bot driver answers as soon as the bot is to move)."""
    from goapp.engine.bots import DEFAULT_LEVEL, LEVELS, bot_name

    ctx = ctx_of(request)
    if ctx.engine is None:
        raise ApiError(
            400,
            "engine_unavailable",
            "playing the computer is not available on this server (no engine is configured); "
            "challenge a player or leave the opponent out for an open challenge",
        )
    level = (body.level or DEFAULT_LEVEL).strip().lower()
    if level not in LEVELS:
        raise _bad(f"level must be one of {', '.join(LEVELS)}", "$.level")
    params = challenge_params(body)
    bot = bot_name(ctx.engine.kind, level)
    cap = ctx.settings.max_bot_games
    async with ctx.user_locks.hold(me):  # the cap is counted and kept under one lock
        active = await db("list_active_games", ctx.store.list_active_games(me))
        if at_cap(sum(1 for g in active if g.black_bot or g.white_bot), cap):
            raise ApiError(
                409,
                "too_many_bot_games",
                f"you have {cap} games against the computer in progress, the most allowed; "
                "finish or resign one first",
                limit=cap,
            )
        state = await ctx.games.create_game(
            me, None, **challenge_settings(params), opponent_bot=bot
        )
    names = Names(request)
    color = "black" if state.black_id == me else "white"
    return json_response(
        ComputerGame(
            game_id=state.game_id,
            bot=bot,
            level=level,
            color=color,
            black=await names.player(state.black_id, state.setup.black_bot),
            white=await names.player(state.white_id, state.setup.white_bot),
        ),
        status=201,
    )


async def list_challenges(request: web.Request) -> web.Response:
    me = optional_user_id(request)
    rows = await db("list_open_challenges", ctx_of(request).store.list_open_challenges(user_id=me))
    names = Names(request)
    return json_response(ChallengeList([await challenge_out(names, ch) for ch in rows]))


async def _get(request: web.Request, challenge_id: int) -> Challenge:
    try:
        return await db("get_challenge", ctx_of(request).store.get_challenge(challenge_id))
    except NotFoundError:
        raise ApiError(404, "challenge_not_found", f"challenge {challenge_id} not found") from None


async def accept_challenge(request: web.Request) -> web.Response:
    me = require_user_id(request)
    challenge_id = path_id(request)
    ctx = ctx_of(request)
    ch = await _get(request, challenge_id)
    if ch.challenger_id == me:
        raise ApiError(409, "challenge_unavailable", "you cannot accept your own challenge")
    try:
        # one transaction: the accept and the game's start commit together or not at all
        ch, state = await db("accept_challenge", ctx.games.accept_challenge(ch, me))
    except ConflictError as exc:
        raise ApiError(409, "challenge_unavailable", str(exc)) from None
    except NotFoundError:
        raise ApiError(404, "challenge_not_found", f"challenge {challenge_id} not found") from None
    publish(
        request,
        ch,
        "challenge_accepted",
        {
            "challenge_id": challenge_id,
            "game_id": state.game_id,
            "black_id": state.black_id,
            "white_id": state.white_id,
        },
    )
    return json_response(Accepted(game_id=state.game_id, challenge_id=challenge_id))


async def delete_challenge(request: web.Request) -> web.Response:
    me = require_user_id(request)
    challenge_id = path_id(request)
    ch = await _get(request, challenge_id)
    if me == ch.challenger_id:
        status = "cancelled"
    elif me == ch.target_id:
        status = "declined"
    else:
        raise ApiError(
            403, "not_a_party", "only the challenger can cancel (or the target decline) it"
        )
    try:
        ch = await db(
            "close_challenge",
            ctx_of(request).store.close_challenge(challenge_id, status, user_id=me),
        )
    except ConflictError as exc:
        raise ApiError(409, "challenge_unavailable", str(exc)) from None
    publish(request, ch, f"challenge_{status}", {"challenge_id": challenge_id})
    return json_response(Closed(ok=True, challenge=await challenge_out(Names(request), ch)))


_ID = r"{id:\d+}"

ROUTES = [
    Route(
        "POST",
        "/api/challenges",
        create_challenge,
        "Offer a game (open, or to one player with `opponent`)",
        "challenges",
        body=ChallengeBody,
        response=ChallengeOut,
        status=201,
        auth="required",
        errors=(400, 401, 404, 409, 413, 415),
        description='`time_control` is `{"system": "none"|"absolute"|"fischer"|'
        '"byoyomi"|"canadian"|"simple"|"correspondence", ...}` (see docs/api.md). '
        "`rated: false` makes a game that moves no ratings. "
        '`opponent: "computer"` (with `level`: beginner, easy, medium, strong) starts a game '
        "against the computer at once and answers 201 `{game_id, bot, level, color, black, "
        "white}` instead of a challenge; 400 `engine_unavailable` when the server has no "
        "engine. Caps per user (settings): 409 `too_many_challenges` past "
        "`max_open_challenges` open challenges, 409 `too_many_bot_games` past "
        "`max_bot_games` games against the computer in progress; `limit` is the cap.",
    ),
    Route(
        "GET",
        "/api/challenges",
        list_challenges,
        "Open challenges, plus direct ones to or from me when logged in",
        "challenges",
        response=ChallengeList,
        auth="optional",
        errors=(401,),
    ),
    Route(
        "POST",
        f"/api/challenges/{_ID}/accept",
        accept_challenge,
        "Accept a challenge: the game starts",
        "challenges",
        response=Accepted,
        auth="required",
        params=(id_param(what="the challenge id"),),
        errors=(401, 404, 409),
        description="Exactly one of several concurrent acceptors wins; the others get 409 "
        "`challenge_unavailable`. The accept and the start of the game are one transaction: "
        "409 `bad_settings` when the challenge's settings make no game (the challenge "
        "stays open).",
    ),
    Route(
        "DELETE",
        f"/api/challenges/{_ID}",
        delete_challenge,
        "Cancel my challenge, or decline one sent to me",
        "challenges",
        response=Closed,
        auth="required",
        params=(id_param(what="the challenge id"),),
        errors=(401, 403, 404, 409),
    ),
]
