"""The per-move hot path at many games (issue 8): what benches/README.md "Load" measured.

* Every game in progress stays in the game service's state cache: a miss reads the game's
  whole log and folds it through the rules core, so with more active games than cache
  entries (the old default was 1,024) every move of a busy instance paid for the whole
  game so far and the CPU per move grew as the games went on.
* The WebSocket gateway hands the action to the game service as JSON bytes (a prebuilt
  msgspec decoder) instead of a dict (``msgspec.convert`` re-walks the Action union on
  every call); the actions accepted and the errors given must not change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from ws_helpers import make_user, recv, request

from goapp.game import BadAction, GameService
from goapp.game.actions import decode_action
from goapp.game.service import DEFAULT_CACHE_SIZE
from goapp.server.app import create_ws_app
from goapp.server.context import ServerContext
from goapp.store import open_store

pytestmark = pytest.mark.timeout(60)

GAMES = 1_100  # more than the old default cache (1,024), fewer than the new one


async def test_every_active_game_stays_cached_when_games_take_turns(tmp_path: Path) -> None:
    assert DEFAULT_CACHE_SIZE >= 2_000  # the 10k-socket scenario: 2,000 games
    store = await open_store(f"sqlite:///{tmp_path / 'g.db'}", synchronous="NORMAL")
    try:
        service = GameService(store)
        black = (await store.create_user("black", None)).id
        white = (await store.create_user("white", None)).id
        sem = asyncio.Semaphore(200)  # many at once: group commit keeps this fast

        async def new_game() -> int:
            async with sem:
                state = await service.create_game(black, white, user_color="black", size=9)
                return state.game_id

        ids = await asyncio.gather(*(new_game() for _ in range(GAMES)))
        service.forget(ids[0])  # one game starts uncached: its first move folds the log
        for vertex, who in (("E5", black), ("C3", white)):  # round-robin, like the load test

            async def move(gid: int, vertex: str = vertex, who: int = who) -> None:
                async with sem:
                    await service.act(gid, who, {"type": "move", "vertex": vertex})

            await asyncio.gather(*(move(g) for g in ids))
        missing = [g for g in ids if service.cached_state(g) is None]
        assert missing == []
        state = service.cached_state(ids[0])
        assert state is not None and state.game.move_number == 2 and state.last_seq == 4
    finally:
        await store.close()


BAD_ACTIONS: list[Any] = [
    {"type": "move"},
    {"type": "nope"},
    {},
    {"type": "move", "vertex": 3},
    {"type": "move", "vertex": "E5", "x": 1},
    {"type": "pass", "extra": None},
    {"type": "mark_dead", "vertices": ["E5", 1]},
    ["move"],
]


async def test_ws_action_errors_are_the_service_errors(
    ctx: ServerContext, aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]]
) -> None:
    """A bad action over the WebSocket gets ``bad_action`` with the message the game
    service gives for the same action as a dict (the gateway passes JSON bytes now), and
    the socket goes on playing."""
    client = await aiohttp_client(create_ws_app(ctx))
    a, ta = await make_user(ctx, "alice")
    b, _ = await make_user(ctx, "bob")
    gid = (await ctx.games.create_game(a, b, user_color="black", size=9)).game_id
    ws = await client.ws_connect(f"/ws?token={ta}")
    assert (await recv(ws))["type"] == "welcome"
    for n, action in enumerate(BAD_ACTIONS):
        reply = await request(ws, type="action", id=f"x{n}", game_id=gid, action=action)
        if not isinstance(action, dict):  # not even an action message: the protocol says so
            assert reply["error"]["code"] == "bad_message", reply
            continue
        with pytest.raises(BadAction) as info:
            decode_action(action)
        assert reply["type"] == "error", reply
        assert reply["error"]["code"] == "bad_action"
        assert reply["error"]["message"] == str(info.value)
    move = {"type": "move", "vertex": "E5"}
    ack = await request(ws, type="action", id="ok", game_id=gid, action=move)
    assert ack["type"] == "ack" and ack["seq"] == 3, ack
    (event,) = await ctx.games.events_since(gid, 2)
    assert event.payload["vertex"] == "E5"
    await ws.close()


class CountingTransport:
    """The server's real transport, counting the ``write`` calls (one each a syscall)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.inner.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_mover_gets_its_event_and_ack_in_one_write(
    ctx: ServerContext, aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]]
) -> None:
    """The mover's own event frame is held and written together with the ack (one write
    instead of two); the opponent gets the event alone, in order; errors still come."""
    client = await aiohttp_client(create_ws_app(ctx))
    a, ta = await make_user(ctx, "alice")
    b, tb = await make_user(ctx, "bob")
    gid = (await ctx.games.create_game(a, b, user_color="black", size=9)).game_id
    black = await client.ws_connect(f"/ws?token={ta}")
    white = await client.ws_connect(f"/ws?token={tb}")
    for n, ws in enumerate((black, white)):
        assert (await recv(ws))["type"] == "welcome"
        assert (await request(ws, type="subscribe", id=f"s{n}", game_id=gid))["type"] == "ack"
    conns = {c.user_id: c for c in ctx.hub.conns}
    counting = {uid: CountingTransport(conns[uid].transport) for uid in (a, b)}
    for uid, t in counting.items():
        conns[uid].transport = t
    skipped: list[dict[str, Any]] = []
    move = {"type": "move", "vertex": "E5"}
    ack = await request(black, skipped, type="action", id="m1", game_id=gid, action=move)
    assert ack["type"] == "ack" and ack["seq"] == 3
    assert [f["seq"] for f in skipped if f["type"] == "event"] == [3]  # event, then ack
    writes = [w for w in counting[a].writes if b'"seq":3' in w]
    (both,) = writes  # one write: the event frame and the ack frame
    assert both.count(b'"type":"event"') == 1 and both.count(b'"type":"ack"') == 1
    assert both.index(b'"type":"event"') < both.index(b'"type":"ack"')
    event = await recv(white)
    assert (event["type"], event["seq"]) == ("event", 3)
    assert len([w for w in counting[b].writes if b'"seq":3' in w]) == 1
    # an error is not held back, and nothing is left held
    wrong = await request(black, type="action", id="m2", game_id=gid, action=move)
    assert wrong["error"]["code"] == "not_your_turn"
    assert conns[a].held is None and conns[a].holder is None
    reply = await request(
        white, type="action", id="w1", game_id=gid, action={"type": "move", "vertex": "C3"}
    )
    assert reply["type"] == "ack" and reply["seq"] == 4
    assert (await recv(black))["seq"] == 4
    for ws in (black, white):
        await ws.close()
