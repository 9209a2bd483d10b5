"""Games: actions, views, event replay, lists, SGF export and import, chat history."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Annotated, Any

import msgspec
from aiohttp import web

from goapp.game.actions import Action
from goapp.game.errors import GameNotFound
from goapp.game.state import GameState
from goapp.obs.metrics import ACTION_LATENCY
from goapp.protocol import ROOM_RE
from goapp.rules import PASS_LOC, Result, Rules
from goapp.rules.sgf import GameInfo, Move, SgfError, read_record, record_to_sgf, replay
from goapp.server.api.common import (
    Names,
    Param,
    Route,
    client_ip,
    ctx_of,
    db,
    decode_body,
    id_param,
    json_response,
    optional_user_id,
    path_id,
    query_int,
    rate_limit,
    read_body,
    require_user_id,
)
from goapp.server.auth import InvalidUsernameError, username_key, validate_username
from goapp.server.errors import ApiError
from goapp.store.errors import NotFoundError
from goapp.store.records import Game

#: Largest SGF accepted by ``POST /api/sgf``.
MAX_SGF_BYTES = 1024 * 1024
#: Content types accepted by ``POST /api/sgf``.
SGF_MEDIA_TYPES = frozenset(
    {"application/x-go-sgf", "text/plain", "application/octet-stream", "application/sgf"}
)
#: How many SGF uploads are parsed at once (the others wait their turn).
SGF_PARALLEL = 2
SGF_SLOTS = web.AppKey("sgf_slots", asyncio.Semaphore)
#: Most events one ``/events`` call returns (page with ``since``).
MAX_EVENTS_PAGE = 5000


# -- actions -------------------------------------------------------------------------------


class ActionBody(msgspec.Struct, forbid_unknown_fields=True):
    """The same body as the WebSocket's action message."""

    game_id: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
    action: Action
    request_id: str | None = None


class ActionResult(msgspec.Struct):
    ok: bool
    events: list[dict[str, Any]]
    seq: int


async def post_action(request: web.Request) -> web.Response:
    start = time.perf_counter()
    try:
        me = require_user_id(request)
        await rate_limit(request, ("action:user", str(me)), ("action:ip", client_ip(request)))
        body = await decode_body(request, ActionBody)
        events = await ctx_of(request).games.act(
            body.game_id, me, body.action, request_id=body.request_id
        )
        wire = [e.to_wire() for e in events]
        seq = events[-1].seq if events else 0
        return json_response(ActionResult(ok=True, events=wire, seq=seq))
    finally:
        ACTION_LATENCY.labels(via="http").observe(time.perf_counter() - start)


# -- reading games -------------------------------------------------------------------------


async def _state(request: web.Request, game_id: int) -> GameState:
    return await ctx_of(request).games.state(game_id)


async def _row(request: web.Request, game_id: int) -> Game:
    try:
        return await db("get_game", ctx_of(request).store.get_game(game_id))
    except NotFoundError:
        raise GameNotFound(f"game {game_id} not found") from None


async def get_game(request: web.Request) -> web.Response:
    game_id = path_id(request)
    view = await ctx_of(request).games.view(game_id)
    names = Names(request)
    out = msgspec.to_builtins(view)
    out["players"] = {
        "black": await names.player(view.black_id, view.black_bot),
        "white": await names.player(view.white_id, view.white_bot),
    }
    return json_response(out)


async def get_events(request: web.Request) -> web.Response:
    game_id = path_id(request)
    since = query_int(request, "since", 0, 0, 2**62)
    limit = query_int(request, "limit", 1000, 1, MAX_EVENTS_PAGE)
    row = await _row(request, game_id)
    events = await ctx_of(request).games.events_since(game_id, since or 0, limit=limit)
    return json_response(
        {"game_id": game_id, "last_seq": row.last_seq, "events": [e.to_wire() for e in events]}
    )


async def game_summary(
    names: Names, g: Game, *, state: GameState | None = None, me: int | None = None
) -> dict[str, Any]:
    """A game of a list. With its ``state`` (active games): whose turn it is (``to_move``
    colour, ``to_move_id`` user, ``your_turn`` for the requester ``me``) and the clock's
    ``deadline`` (correspondence lists sort by it)."""
    to_move_id = state.to_move_id() if state is not None else None
    return {
        "to_move": state.to_move if state is not None and state.phase == "playing" else None,
        "to_move_id": to_move_id,
        "your_turn": me is not None and to_move_id == me,
        "deadline": g.deadline,
        "id": g.id,
        "black": await names.player(g.black_id, g.black_bot),
        "white": await names.player(g.white_id, g.white_bot),
        "width": g.width,
        "height": g.height,
        "komi": g.komi,
        "rules": g.rules,
        "handicap": g.handicap,
        "time_control": g.time_control,
        "status": g.status,
        "result": g.result,
        "created_at": g.created_at,
        "started_at": g.started_at,
        "finished_at": g.finished_at,
        "last_seq": g.last_seq,
    }


async def list_games(request: web.Request) -> web.Response:
    store = ctx_of(request).store
    name = request.query.get("user")
    status = request.query.get("status") or ("active" if name else "finished")
    if status not in ("active", "finished"):
        raise ApiError(400, "bad_request", "status must be active or finished", path="status")
    limit = query_int(request, "limit", 50, 1, 100) or 50
    size = query_int(request, "size", None, 2, 25)
    user_id: int | None = None
    if name:
        try:
            canon = validate_username(name)
            user = await db(
                "get_user_by_name", store.get_user_by_name(canon, key=username_key(canon))
            )
        except (InvalidUsernameError, NotFoundError):
            raise ApiError(404, "user_not_found", f"no user named {name!r}") from None
        user_id = user.id
    if status == "active":
        if user_id is None:
            raise ApiError(400, "bad_request", "status=active needs user=NAME", path="user")
        games = await db("list_active_games", store.list_active_games(user_id))
    else:
        games = await db(
            "list_recent_finished",
            store.list_recent_finished(limit if user_id is None and size is None else 500),
        )
        if user_id is not None:
            games = [g for g in games if user_id in (g.black_id, g.white_id)]
    games = filter_games(games, user_id, request.query.get("result"), size)  # player page
    names = Names(request)
    me = optional_user_id(request)
    return json_response(
        {
            "games": [
                await game_summary(names, g, **await _turn(request, g, me)) for g in games[:limit]
            ]
        }
    )


async def _turn(request: web.Request, g: Game, me: int | None) -> dict[str, Any]:
    """``game_summary``'s whose-turn arguments: the state of a game being played."""
    if g.status not in ("playing", "scoring"):
        return {"me": me}
    try:
        return {"state": await ctx_of(request).games.state(g.id), "me": me}
    except (GameNotFound, ValueError):
        return {"me": me}


#: ``result=`` of ``GET /api/games``: the games the user won, lost, or drew (jigo).
RESULT_FILTERS = ("win", "loss", "draw")


def game_outcome(g: Game, user_id: int) -> str | None:
    """``win``, ``loss`` or ``draw`` for ``user_id`` in a finished game (None: no result,
    an aborted or void game, or not the user's game)."""
    r = (g.result or "").upper()
    if r in ("0", "DRAW", "JIGO"):
        return "draw" if user_id in (g.black_id, g.white_id) else None
    if r.startswith("B+"):
        winner = g.black_id
    elif r.startswith("W+"):
        winner = g.white_id
    else:
        return None
    if user_id == winner:
        return "win"
    return "loss" if user_id in (g.black_id, g.white_id) else None


def filter_games(
    games: list[Game], user_id: int | None, result: str | None, size: int | None
) -> list[Game]:
    """The player page's filters: ``result`` (needs a user) and square board ``size``."""
    if result:
        if result not in RESULT_FILTERS:
            raise ApiError(
                400,
                "bad_request",
                f"result must be one of {', '.join(RESULT_FILTERS)}",
                path="result",
            )
        if user_id is None:
            raise ApiError(400, "bad_request", "result=... needs user=NAME", path="user")
        games = [g for g in games if game_outcome(g, user_id) == result]
    if size is not None:
        games = [g for g in games if g.width == size and g.height == size]
    return games


# -- SGF -----------------------------------------------------------------------------------


def game_sgf(state: GameState, row: Game, black: str | None, white: str | None) -> str:
    """The SGF of a game: info, result, handicap stones and the moves played so far."""
    g = state.game
    setup = state.setup
    info = GameInfo(
        width=g.width,
        height=g.height,
        komi=g.komi,
        handicap=g.handicap,
        rules=Rules.from_name(setup.rules),
        rules_name=setup.rules,
        result=Result.parse(row.result, strict=False) if row.result else None,
        black=black,
        white=white,
        game_name=f"goapp game {row.id}",
        date=(row.started_at or row.created_at).date().isoformat(),
    )
    control = setup.time_control
    if control is not None:
        props = control.sgf_properties()
        if "TM" in props:
            info.time_limit = float(props["TM"])
        info.overtime = props.get("OT")
    moves = [
        Move("B" if t.color.letter == "B" else "W", None if t.loc == PASS_LOC else g.xy(t.loc))
        for t in g.history
    ]
    setup_black = [g.xy(loc) for loc in g.handicap_locs]
    return record_to_sgf(info, moves, setup_black=setup_black)


async def get_sgf(request: web.Request) -> web.Response:
    game_id = path_id(request)
    state = await _state(request, game_id)
    row = await _row(request, game_id)
    names = Names(request)
    black = await names.player(state.black_id, state.setup.black_bot)
    white = await names.player(state.white_id, state.setup.white_bot)

    def label(p: dict[str, Any] | None) -> str | None:
        if p is None:
            return None
        return str(p.get("name") or p.get("bot") or "")

    text = game_sgf(state, row, label(black), label(white))
    return web.Response(
        body=text.encode("utf-8"),
        content_type="application/x-go-sgf",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="goapp-{game_id}.sgf"'},
    )


def review_sgf(data: bytes) -> dict[str, Any]:
    """Parse an uploaded SGF and replay its main line through the rules core.

    The work is bounded by the input, whatever its shape: the size cap, the parser's node
    and value limits, and the point budget of the set-up stones (see goapp.rules.sgf)."""
    record = read_record(data, max_bytes=MAX_SGF_BYTES)
    game = replay(record)
    info = record.info

    def vertices(points: list[tuple[int, int]]) -> list[str]:
        return [game.vertex(game.to_loc(p)) for p in points]

    setup = [
        {
            "move": s.before_move,
            "black": vertices(s.black),
            "white": vertices(s.white),
            "empty": vertices(s.empty),
        }
        for s in record.setups
        # the starting position is already given as handicap_stones when it is a handicap
        if (s.black or s.white or s.empty) and not (s.before_move == 0 and game.handicap)
    ]
    moves: list[dict[str, Any]] = []
    for t in game.history:
        moves.append(
            {"color": "black" if t.color.letter == "B" else "white", "vertex": game.vertex(t.loc)}
        )
    return {
        "info": {
            "width": info.width,
            "height": info.height,
            "komi": info.komi,
            "handicap": info.handicap,
            "rules": info.rules.name,
            "rules_name": info.rules_name,
            "black": info.black,
            "white": info.white,
            "black_rank": info.black_rank,
            "white_rank": info.white_rank,
            "date": info.date,
            "game_name": info.game_name,
            "event": info.event,
            "time_limit": info.time_limit,
            "overtime": info.overtime,
        },
        "handicap_stones": [game.vertex(loc) for loc in game.handicap_locs],
        "setup": setup,
        "moves": moves,
        "result": None if info.result is None else str(info.result),
        "warnings": list(record.warnings),
    }


async def post_sgf(request: web.Request) -> web.Response:
    await rate_limit(request, ("sgf:ip", client_ip(request)))
    if request.content_type not in SGF_MEDIA_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            "send the SGF file as the body, as application/x-go-sgf (or text/plain)",
        )
    data = await read_body(request, MAX_SGF_BYTES)
    loop = asyncio.get_running_loop()
    try:
        async with request.app[SGF_SLOTS]:
            out = await loop.run_in_executor(None, review_sgf, data)
    except SgfError as exc:
        raise ApiError(400, "bad_sgf", str(exc), line=exc.line, column=exc.column) from None
    return json_response(out)


# -- chat ----------------------------------------------------------------------------------


class ChatMessageOut(msgspec.Struct):
    id: int
    room: str
    user: dict[str, Any] | None
    text: str
    created_at: datetime


async def get_chat(request: web.Request) -> web.Response:
    room = request.match_info["room"]
    if not ROOM_RE.fullmatch(room):
        raise ApiError(404, "room_not_found", "rooms are lobby and game:ID")
    before = query_int(request, "before", None, 1, 2**62)
    limit = query_int(request, "limit", 50, 1, 200) or 50
    rows = await db(
        "list_chat", ctx_of(request).store.list_chat(room, limit=limit, before_id=before)
    )
    names = Names(request)
    messages = [
        ChatMessageOut(
            id=m.id,
            room=m.room,
            user=await names.user(m.user_id),
            text=m.text,
            created_at=m.created_at,
        )
        for m in rows
    ]
    return json_response({"room": room, "messages": messages})


_ID = r"{id:\d+}"
_GAME_ID = id_param(what="the game id")

ROUTES = [
    Route(
        "POST",
        "/api/action",
        post_action,
        "Act in a game (move, pass, resign, undo, mark dead, accept score, resume, abort)",
        "games",
        body=ActionBody,
        response=ActionResult,
        auth="required",
        errors=(400, 401, 403, 404, 409, 413, 415, 429),
        description="The same body as the WebSocket `action` message. `request_id` makes a "
        "retry safe: the same id returns the original events. Errors carry the game's "
        "codes (`not_your_turn`, `illegal_move`, ...).",
    ),
    Route(
        "GET",
        f"/api/games/{_ID}",
        get_game,
        "A game's full state: board, clocks, phase, players, last seq",
        "games",
        params=(_GAME_ID,),
        errors=(404,),
    ),
    Route(
        "GET",
        f"/api/games/{_ID}/events",
        get_events,
        "Replay a game's events after `since`",
        "games",
        params=(
            _GAME_ID,
            Param("since", "query", {"type": "integer", "minimum": 0}, "last seq already seen"),
            Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": MAX_EVENTS_PAGE}),
        ),
        errors=(400, 404),
    ),
    Route(
        "GET",
        "/api/games",
        list_games,
        "Games of a user (active) or recently finished games",
        "games",
        params=(
            Param("user", "query", {"type": "string"}, "a user name"),
            Param("status", "query", {"type": "string", "enum": ["active", "finished"]}),
            Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 100}),
            Param(
                "result",
                "query",
                {"type": "string", "enum": list(RESULT_FILTERS)},
                "only the games the user won, lost or drew (needs user)",
            ),
            Param(
                "size",
                "query",
                {"type": "integer", "minimum": 2, "maximum": 25},
                "only games on this square board",
            ),
        ),
        errors=(400, 401, 404),
        auth="optional",
        description="Each game has `to_move` (colour), `to_move_id` (the user to move while "
        "the game is played, else null), `your_turn` (the requester is to move; needs a "
        "token) and `deadline` (when the player to move runs out of time, or when the "
        "scoring phase ends).",
    ),
    Route(
        "GET",
        f"/api/games/{_ID}/sgf",
        get_sgf,
        "Download a game as SGF",
        "games",
        response_media="application/x-go-sgf",
        params=(_GAME_ID,),
        errors=(404,),
    ),
    Route(
        "POST",
        "/api/sgf",
        post_sgf,
        "Upload an SGF file for review: parsed and replayed through the rules",
        "games",
        body_media="application/x-go-sgf",
        errors=(400, 413, 415, 429),
        description=f"At most {MAX_SGF_BYTES} bytes. Set-up stones in any node come back in "
        "`setup` ([{move, black, white, empty}], applied before move `move`). A malformed or "
        "illegal record, or one over the set-up point budget, answers 400 `bad_sgf` with "
        "`line` and `column` when known.",
    ),
    Route(
        "GET",
        "/api/chat/{room}",
        get_chat,
        "Chat history of a room (`lobby` or `game:ID`), oldest first",
        "chat",
        params=(
            Param("room", "path", {"type": "string"}, "lobby or game:ID", required=True),
            Param("before", "query", {"type": "integer", "minimum": 1}, "page back from this id"),
            Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 200}),
        ),
        errors=(400, 404),
    ),
]
