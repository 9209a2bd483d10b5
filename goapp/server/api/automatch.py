"""Automatch: ask for a game by board sizes and speed; the server pairs you with a player
of a similar rating (goapp.match, docs/api.md "Automatch").

A player has at most one waiting request: a second POST replaces the first (the old one is
cancelled, with a ``cancelled`` frame of reason ``replaced``), so the browser's button can
simply post again after the player changes the sizes or speed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import msgspec
from aiohttp import web

from goapp.match import policy
from goapp.match.service import AutomatchService
from goapp.server.api.common import Route, ctx_of, db, decode_body, json_response, require_user_id
from goapp.server.errors import ApiError
from goapp.store.errors import NotFoundError
from goapp.store.records import AutomatchRequest


class AutomatchBody(msgspec.Struct, forbid_unknown_fields=True):
    """What game the player wants."""

    sizes: Annotated[
        list[Literal[9, 13, 19]],
        msgspec.Meta(
            min_length=1,
            max_length=3,
            description="board sizes the player accepts (the game is on the largest one "
            "both players accept)",
        ),
    ]
    speed: Annotated[
        Literal["blitz", "live", "correspondence"],
        msgspec.Meta(
            description="blitz: Fischer 3 min + 5 s; live: Fischer 10 min + 20 s; "
            "correspondence: 3 days per move"
        ),
    ]
    rated: bool = True


class AutomatchRequestOut(msgspec.Struct):
    id: int
    sizes: list[int]
    speed: str
    rated: bool
    created_at: datetime
    range: Annotated[
        tuple[float, float],
        msgspec.Meta(description="the ratings this request accepts now: [lo, hi]"),
    ]
    status: str
    rating: float


class AutomatchOut(msgspec.Struct, omit_defaults=True):
    status: Literal["paired", "waiting"]
    request: AutomatchRequestOut
    game_id: int | None = None


def request_out(req: AutomatchRequest, now: datetime | None = None) -> AutomatchRequestOut:
    lo, hi = policy.rating_window(req, now or datetime.now(UTC))
    return AutomatchRequestOut(
        id=req.id,
        sizes=list(req.sizes),
        speed=req.speed,
        rated=req.rated,
        created_at=req.created_at,
        range=(lo, hi),
        status=req.status,
        rating=round(req.rating, 1),
    )


def _service(request: web.Request) -> AutomatchService:
    return ctx_of(request).automatch


def _not_found() -> ApiError:
    return ApiError(404, "automatch_not_found", "you have no waiting automatch request")


async def post_automatch(request: web.Request) -> web.Response:
    me = require_user_id(request)
    body = await decode_body(request, AutomatchBody)
    if len(set(body.sizes)) != len(body.sizes):
        raise ApiError(400, "bad_request", "each board size at most once", path="$.sizes")
    svc = _service(request)
    try:
        outcome = await db(
            "automatch_request",
            svc.request(me, sizes=body.sizes, speed=body.speed, rated=body.rated),
        )
    except NotFoundError:
        raise ApiError(401, "unauthorized", "your account no longer exists") from None
    out = AutomatchOut(
        status=outcome.status, request=request_out(outcome.request), game_id=outcome.game_id
    )
    return json_response(out, status=200 if outcome.status == "paired" else 202)


async def get_automatch(request: web.Request) -> web.Response:
    me = require_user_id(request)
    req = await db("automatch_current", _service(request).current(me))
    if req is None:
        raise _not_found()
    return json_response(request_out(req))


async def delete_automatch(request: web.Request) -> web.Response:
    me = require_user_id(request)
    req = await db("automatch_cancel", _service(request).cancel(me))
    if req is None:
        raise _not_found()
    return web.Response(status=204)


ROUTES = [
    Route(
        "POST",
        "/api/automatch",
        post_automatch,
        "Ask for a game: board sizes, speed, rated",
        "automatch",
        body=AutomatchBody,
        response=AutomatchOut,
        status=202,
        auth="required",
        errors=(400, 401, 413, 415),
        extra={"also_ok": (200,)},
        description="202 `{status: waiting, request}` while the request waits for an "
        "opponent; 200 `{status: paired, game_id, request}` when it was paired at once. "
        "Both players then get an `automatch` WebSocket frame (`kind: paired`). A second "
        "POST replaces the waiting request. The rating range widens with waiting time "
        "(100 points, plus 50 every 10 s, up to 500); games are even, Japanese rules, "
        "colours by nigiri. See docs/api.md.",
    ),
    Route(
        "GET",
        "/api/automatch",
        get_automatch,
        "My waiting automatch request",
        "automatch",
        response=AutomatchRequestOut,
        auth="required",
        errors=(401, 404),
    ),
    Route(
        "DELETE",
        "/api/automatch",
        delete_automatch,
        "Cancel my waiting automatch request",
        "automatch",
        status=204,
        auth="required",
        errors=(401, 404),
        description="204 when cancelled (every connection of mine gets an `automatch` "
        "frame, `kind: cancelled`); 404 when there was no waiting request.",
    ),
]
