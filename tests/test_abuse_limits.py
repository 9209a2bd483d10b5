"""Abuse limits against a real server (the app on a real store, real sockets): private
challenges stay private, per-user caps on open challenges, bot games, sockets and chat,
per-IP socket caps, and the per-account login back-off."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import ClientWebSocketResponse

try:
    from .api_support import Api
    from .ws_helpers import recv_type, request
except ImportError:
    from api_support import Api  # type: ignore[no-redef]
    from ws_helpers import recv_type, request  # type: ignore[no-redef]


async def socket(api: Api, user: str | None) -> ClientWebSocketResponse:
    """A socket (as ``user``, or a guest) subscribed to the lobby."""
    path = "/ws" if user is None else f"/ws?token={api.tokens[user]['access_token']}"
    ws = await api.client.ws_connect(path)
    await recv_type(ws, "welcome")
    assert (await request(ws, type="subscribe_lobby", id="lobby"))["type"] == "ack"
    return ws


async def lobby_kinds_until(ws: ClientWebSocketResponse, marker: int) -> list[tuple[str, Any]]:
    """The lobby events ``ws`` gets up to and including the one about challenge
    ``marker`` (an open challenge everyone sees: what came before it is all it saw)."""
    seen: list[tuple[str, Any]] = []
    while True:
        frame = await recv_type(ws, "lobby")
        payload = frame["payload"]
        ident = payload.get("id", payload.get("challenge_id"))
        seen.append((frame["kind"], ident))
        if ident == marker:
            return seen


# -- private challenges ----------------------------------------------------------------------


async def test_direct_challenges_reach_their_two_parties_only(api: Api) -> None:
    """A direct challenge, its decline, and another one's acceptance go to the challenger
    and the target; the lobby (other users, guests) sees none of them, as the HTTP list
    hides them. Open challenges still reach everyone."""
    for name in ("alice", "bob", "carol"):
        await api.register(name)
    sockets = {name: await socket(api, name) for name in ("alice", "bob", "carol")}
    sockets["guest"] = await socket(api, None)
    nine = {"size": 9, "rules": "japanese"}
    status, first = await api.call(
        "POST", "/api/challenges", {**nine, "opponent": "bob"}, user="alice"
    )
    assert status == 201
    status, _ = await api.call("DELETE", f"/api/challenges/{first['id']}", user="bob")
    assert status == 200
    status, second = await api.call(
        "POST", "/api/challenges", {**nine, "opponent": "alice"}, user="bob"
    )
    status, accepted = await api.call(
        "POST", f"/api/challenges/{second['id']}/accept", user="alice"
    )
    assert status == 200
    status, public = await api.call("POST", "/api/challenges", nine, user="carol")
    assert status == 201
    private = [
        ("challenge_created", first["id"]),
        ("challenge_declined", first["id"]),
        ("challenge_created", second["id"]),
        ("challenge_accepted", second["id"]),
    ]
    marker = ("challenge_created", public["id"])
    for name in ("alice", "bob"):
        assert await lobby_kinds_until(sockets[name], public["id"]) == [*private, marker]
    for name in ("carol", "guest"):
        assert await lobby_kinds_until(sockets[name], public["id"]) == [marker], name
    for ws in sockets.values():
        await ws.close()
