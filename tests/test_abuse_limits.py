"""Abuse limits against a real server (the app on a real store, real sockets): private
challenges stay private, per-user caps on open challenges, bot games, sockets and chat,
per-IP socket caps, and the per-account login back-off."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import ClientWebSocketResponse
from api_support import Api, fast_scrypt, make_api
from ws_helpers import recv_type, request

from goapp.server.api.accounts import DEVICE_COOKIE
from goapp.server.ratelimit import RateLimiter


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
    status, _ = await api.call("POST", f"/api/challenges/{second['id']}/accept", user="alice")
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


# -- caps on challenges and games against the computer ---------------------------------------


async def test_open_challenges_are_capped_per_user(api: Api) -> None:
    """A burst of concurrent offers (they came 60 in 0.3 s) leaves exactly the cap open;
    the rest get 409 ``too_many_challenges`` and change nothing. Cancelling one frees a
    place; another user has a cap of their own."""
    await api.register("alice")
    await api.register("bob")
    cap = api.ctx.settings.max_open_challenges
    assert cap == 10  # the default
    offer = {"size": 9, "rules": "japanese"}
    answers = await asyncio.gather(
        *(api.call("POST", "/api/challenges", offer, user="alice") for _ in range(cap + 5))
    )
    assert sorted(status for status, _ in answers) == [201] * cap + [409] * 5
    refused = [body for status, body in answers if status == 409]
    assert all(b["error"]["code"] == "too_many_challenges" for b in refused)
    assert refused[0]["error"]["limit"] == cap
    alice = api.tokens["alice"]["user"]["id"]
    assert await api.ctx.store.count_open_challenges(alice) == cap
    status, body = await api.call(
        "POST", "/api/challenges", {**offer, "opponent": "bob"}, user="alice"
    )  # direct ones count too
    assert status == 409 and body["error"]["code"] == "too_many_challenges"
    first = next(body for status, body in answers if status == 201)
    assert (await api.call("DELETE", f"/api/challenges/{first['id']}", user="alice"))[0] == 200
    assert (await api.call("POST", "/api/challenges", offer, user="alice"))[0] == 201
    assert (await api.call("POST", "/api/challenges", offer, user="bob"))[0] == 201


@pytest.mark.gnugo
async def test_games_against_the_computer_are_capped_per_user(
    tmp_path: Path, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With GNU Go as the engine: a burst of bot games leaves the cap (default 3) in
    progress, the rest 409 ``too_many_bot_games``; resigning one frees a place."""
    fast_scrypt(monkeypatch)
    async for api in make_api(
        aiohttp_client, tmp_path, f"sqlite://{tmp_path}/bots.db", engine="gnugo"
    ):
        await api.register("alice")
        cap = api.ctx.settings.max_bot_games
        assert cap == 3
        offer = {"size": 9, "rules": "chinese", "opponent": "computer", "level": "beginner"}
        answers = await asyncio.gather(
            *(api.call("POST", "/api/challenges", offer, user="alice") for _ in range(cap + 4))
        )
        assert sorted(status for status, _ in answers) == [201] * cap + [409] * 4
        refused = [body for status, body in answers if status == 409]
        assert {b["error"]["code"] for b in refused} == {"too_many_bot_games"}
        games = [body["game_id"] for status, body in answers if status == 201]
        assert len(await api.ctx.store.list_active_games(api.tokens["alice"]["user"]["id"])) == cap
        status, body = await api.act("alice", games[0], {"type": "resign"})
        assert status == 200, body
        status, body = await api.call("POST", "/api/challenges", offer, user="alice")
        assert status == 201, body
        # games between people do not count
        await api.register("bob")
        assert (await api.call("POST", "/api/challenges", {"size": 9}, user="alice"))[0] == 201


# -- WebSocket connections and chat ----------------------------------------------------------


async def refused(api: Api, path: str, **kw: Any) -> dict[str, Any]:
    """The handshake of ``path`` is refused with 429: its error body."""
    async with api.client.get(path, headers=_upgrade(), **kw) as resp:
        assert resp.status == 429, await resp.text()
        body: dict[str, Any] = await resp.json()
    return body


async def until_held(api: Api, key: str, held: int) -> None:
    """Wait (5 s at most) until this instance counts ``held`` sockets for ``key``: a
    client's close() can return before the server's handler has given the place back."""
    for _ in range(500):
        if api.ctx.sockets.get(key) == held:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{key} holds {api.ctx.sockets.get(key)} sockets, not {held}")


def _upgrade() -> dict[str, str]:
    return {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }


async def test_websocket_connections_are_capped_per_address_and_user(
    tmp_path: Path, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sockets from one address (it opened 1,500 in 0.7 s) and of one user stop at their
    caps with 429 ``too_many_connections`` before the upgrade; a closed socket frees its
    place; behind a trusted proxy each forwarded address has a cap of its own; a guest
    socket logging in (``auth``) counts against the user's cap."""
    fast_scrypt(monkeypatch)
    overrides = {"ws_max_per_ip": 6, "ws_max_per_user": 3, "trusted_proxies": "127.0.0.1"}
    async for api in make_api(
        aiohttp_client, tmp_path, f"sqlite://{tmp_path}/ws.db", settings_overrides=overrides
    ):
        await api.register("alice")
        await api.register("bob")
        token = api.tokens["alice"]["access_token"]
        alice = [await socket(api, "alice") for _ in range(3)]
        body = await refused(api, f"/ws?token={token}")
        assert body["error"] == {
            "code": "too_many_connections",
            "message": "at most 3 WebSocket connections per user; close one first",
            "scope": "user",
            "limit": 3,
        }
        guests = [await socket(api, None) for _ in range(3)]  # 6 from this address now
        body = await refused(api, "/ws")
        assert body["error"]["scope"] == "address" and body["error"]["limit"] == 6
        body = await refused(api, f"/ws?token={api.tokens['bob']['access_token']}")
        assert body["error"]["scope"] == "address"
        # another client behind the trusted proxy: its own count
        other = await api.client.ws_connect("/ws", headers={"X-Forwarded-For": "203.0.113.9"})
        await recv_type(other, "welcome")
        # a guest socket cannot log in as a user at the cap
        got = await request(guests[0], type="auth", id="a", token=token)
        assert got["error"]["code"] == "too_many_connections", got
        alice_key = f"user:{api.tokens['alice']['user']['id']}"
        await alice.pop().close()
        await guests.pop().close()
        await until_held(api, alice_key, 2)
        await until_held(api, "127.0.0.1", 4)
        got = await request(guests[0], type="auth", id="b", token=token)
        assert got["type"] == "ack", got  # the place alice's closed socket left
        await refused(api, f"/ws?token={token}")
        bob = await socket(api, "bob")  # the guest's place
        for ws in [*alice, *guests, other, bob]:
            await ws.close()
        # every place given back
        for key in ("127.0.0.1", "203.0.113.9", alice_key):
            await until_held(api, key, 0)
        assert api.ctx.sockets.get(f"user:{api.tokens['bob']['user']['id']}") == 0


async def test_chat_budget_is_per_user_across_sockets(api: Api) -> None:
    """One user with ten sockets got ten times the chat budget (50 lobby lines in a
    second): the budget (5 at once, then 1 a second) is the user's, whatever the socket.
    Another user has a budget of their own."""
    await api.register("alice")
    await api.register("bob")
    sockets = [await socket(api, "alice") for _ in range(10)]
    answers = [
        await request(ws, type="chat", id=n, room="lobby", text=f"line {n}")
        for n, ws in enumerate(sockets)
    ]
    assert [a["type"] for a in answers] == ["ack"] * 5 + ["error"] * 5
    assert {a["error"]["code"] for a in answers[5:]} == {"rate_limited"}
    assert answers[5]["error"]["retry_after"] > 0
    assert len(await api.ctx.store.list_chat("lobby")) == 5
    bob = await socket(api, "bob")
    assert (await request(bob, type="chat", id="b", room="lobby", text="hi"))["type"] == "ack"
    for ws in [*sockets, bob]:
        await ws.close()


# -- the per-account login back-off ----------------------------------------------------------


async def login_from(
    api: Api, address: str, name: str, password: str, cookie: str | None = None
) -> tuple[int, dict[str, Any], str | None]:
    """``POST /api/login`` from the loopback ``address`` (the client socket is bound to
    it): status, body, and the device cookie set, if any."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    headers = {} if cookie is None else {"Cookie": f"{DEVICE_COOKIE}={cookie}"}
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post(
            api.client.make_url("/api/login"),
            json={"name": name, "password": password},
            headers=headers,
        ) as resp,
    ):
        body = await resp.json()
        morsel = resp.cookies.get(DEVICE_COOKIE)
        if morsel is not None:
            assert morsel["httponly"] and morsel["samesite"] == "Strict"
            assert morsel["path"] == "/api/login"
        return resp.status, body, None if morsel is None else morsel.value


async def test_login_guesses_from_many_addresses_are_delayed_per_account(
    tmp_path: Path, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """120 guesses at one account from 40 addresses (3 each: under the per-address limit)
    all got 401 and no 429. Now the account's failures delay every client it does not
    know: after 5 free failures the guesses get 429 ``login_delayed`` (even with the right
    password, which is not checked then), while the owner, on the address or with the
    device cookie of an earlier login, logs in at once."""
    fast_scrypt(monkeypatch)
    async for api in make_api(
        aiohttp_client, tmp_path, f"sqlite://{tmp_path}/login.db", limiter=RateLimiter()
    ):
        await api.register("alice", "the real password")
        status, _, cookie = await login_from(api, "127.0.0.200", "alice", "the real password")
        assert status == 200 and cookie is not None
        statuses: list[tuple[int, str | None]] = []
        for n in range(120):
            address = f"127.0.0.{2 + n // 3}"
            status, body, _ = await login_from(api, address, "alice", f"guess {n}")
            statuses.append((status, body["error"]["code"]))
        assert statuses[:5] == [(401, "bad_credentials")] * 5
        delayed = statuses.count((429, "login_delayed"))
        # the wait doubles from 1 s: a slow run may see a few more guesses checked
        assert delayed >= 110 and delayed + statuses.count((401, "bad_credentials")) == 120
        # an unknown client is delayed even with the right password ...
        status, body, _ = await login_from(api, "127.0.0.250", "alice", "the real password")
        assert status == 429 and body["error"]["code"] == "login_delayed"
        assert body["error"]["retry_after"] >= 1
        # ... the owner's device (cookie, from a new address) and address are not
        status, body, _ = await login_from(
            api, "127.0.0.251", "alice", "the real password", cookie=cookie
        )
        assert status == 200, body
        status, body, _ = await login_from(api, "127.0.0.200", "alice", "the real password")
        assert status == 200, body
        # a forged or another user's cookie is no help
        await api.register("mallory")
        _, _, other = await login_from(api, "127.0.0.3", "mallory", "correct horse")
        for n in range(6):
            await login_from(api, "127.0.0.4", "alice", f"again {n}")
        for bad in (other, "1.9999999999.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"):
            status, body, _ = await login_from(api, "127.0.0.5", "alice", "x" * 10, cookie=bad)
            assert status == 429 and body["error"]["code"] == "login_delayed"
