"""End to end: a real ``goapp serve`` process, real sockets, SQLite and PostgreSQL.

Two users register and play a 9x9 game to a scored result over the WebSocket, with
byo-yomi clocks running; a guest watches and sees every event exactly once, in order; a
player drops off mid-game and resumes from its last seq without missing anything; a second
game runs out of time with no one connected and is ended by the server alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cluster_support import Instance

# goapp serve processes
pytestmark = [pytest.mark.server]

HANDSHAKE = ["goapp.v1"]


@pytest.fixture
def server(store_url: str, tmp_path: Path) -> Iterator[str]:
    """A goapp server process on the test's database; yields its base URL."""
    instance = Instance("goapp", tmp_path, {"GOAPP_DATABASE_URL": store_url})
    instance.start()
    try:
        yield instance.url
    finally:
        assert instance.stop() == 0, instance.log_tail()


@dataclass
class Player:
    name: str
    token: str
    http: aiohttp.ClientSession
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def register(http: aiohttp.ClientSession, base: str, name: str) -> Player:
    async with http.post(
        f"{base}/api/register", json={"name": name, "password": "correct horse battery"}
    ) as r:
        assert r.status == 201, await r.text()
        body = await r.json()
    return Player(name=name, token=body["access_token"], http=http)


@contextlib.asynccontextmanager
async def socket_of(
    http: aiohttp.ClientSession, base: str, token: str | None
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    protocols = [*HANDSHAKE, f"bearer.{token}"] if token else HANDSHAKE
    ws = await http.ws_connect(f"{base.replace('http', 'ws')}/ws", protocols=protocols)
    try:
        welcome = await ws.receive_json(timeout=10)
        assert welcome["type"] == "welcome"
        yield ws
    finally:
        await ws.close()


async def next_frame(
    ws: aiohttp.ClientWebSocketResponse, kind: str, timeout: float = 10.0
) -> dict[str, Any]:
    """The next frame of type ``kind``, skipping presence/lobby/pong chatter."""
    deadline = time.monotonic() + timeout
    while True:
        frame = await ws.receive_json(timeout=max(0.1, deadline - time.monotonic()))
        if frame["type"] == kind:
            return frame
        assert frame["type"] != "error", frame


async def act(
    player: Player, ws: aiohttp.ClientWebSocketResponse, game_id: int, action: dict[str, Any]
) -> dict[str, Any]:
    """Send an action and return its ack (events from the live stream are left queued)."""
    return (await act_seen(player, ws, game_id, action))[0]


async def act_seen(
    player: Player, ws: aiohttp.ClientWebSocketResponse, game_id: int, action: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Send an action; its ack and the game's event frames that came before it (the
    mover's own events arrive as frames just before the ack)."""
    msg_id = next(player.ids)
    seen: list[dict[str, Any]] = []
    await ws.send_json(
        {
            "type": "action",
            "id": msg_id,
            "game_id": game_id,
            "action": action,
            "request_id": f"{player.name}-{msg_id}",
        }
    )
    while True:
        frame = await ws.receive_json(timeout=10)
        if frame.get("id") == msg_id:
            assert frame["type"] == "ack", frame
            return frame, seen
        if frame["type"] == "event" and frame["game_id"] == game_id:
            seen.append(frame)


async def start_game(base: str, black: Player, white: Player, **params: Any) -> int:
    body = {"size": 9, "rules": "japanese", "komi": 6.5, "color": "black", **params}
    async with black.http.post(f"{base}/api/challenges", json=body, headers=black.headers) as r:
        assert r.status == 201, await r.text()
        challenge = await r.json()
    challenge_id = challenge.get("id") or challenge["challenge"]["id"]
    async with white.http.post(
        f"{base}/api/challenges/{challenge_id}/accept", headers=white.headers
    ) as r:
        assert r.status == 200, await r.text()
        return int((await r.json())["game_id"])


def seqs(frames: list[dict[str, Any]]) -> list[int]:
    return [f["seq"] for f in frames]


# Black walls off the three left columns (D), White the three right ones (F); column E stays
# neutral. White then throws in a stone at B5 that is marked dead: Black has 27 points of
# territory + 1 prisoner = 28, White 27 + komi 6.5 = 33.5 -> W+5.5 under Japanese rules.
WALLS = [(f"D{row}", f"F{row}") for row in range(9, 0, -1)]


@pytest.mark.timeout(180)
async def test_full_game_watched_with_a_reconnect(server: str) -> None:
    base = server
    async with aiohttp.ClientSession() as http:
        alice = await register(http, base, "alice")
        bob = await register(http, base, "bob")
        game_id = await start_game(
            base,
            alice,
            bob,
            time_control={"system": "byoyomi", "main_s": 300, "periods": 3, "period_s": 30},
        )

        async with (
            socket_of(http, base, alice.token) as black,
            socket_of(http, base, None) as guest,
        ):
            for ws in (black, guest):
                await ws.send_json({"type": "subscribe", "game_id": game_id, "since": 0})
            seen: list[dict[str, Any]] = []  # what the guest watched

            async def watch_until(seq: int) -> None:
                while not seen or seen[-1]["seq"] < seq:
                    frame = await next_frame(guest, "event")
                    if frame["game_id"] == game_id:
                        seen.append(frame)

            # Bob plays the first half from one socket, then drops off.
            async with socket_of(http, base, bob.token) as white:
                await white.send_json({"type": "subscribe", "game_id": game_id, "since": 0})
                for b, w in WALLS[:4]:
                    await act(alice, black, game_id, {"type": "move", "vertex": b})
                    ack, own = await act_seen(bob, white, game_id, {"type": "move", "vertex": w})
                    assert own[-1]["seq"] == ack["seq"] and own[-1]["kind"] == "move"
                    assert own[-1]["payload"]["clock"]["black"]["main_ms"] <= 300_000
                bob_seen = ack["seq"]

            # While Bob is away Alice moves; then Bob comes back from his last seq.
            ack = await act(alice, black, game_id, {"type": "move", "vertex": WALLS[4][0]})
            missed_seq = ack["seq"]
            async with socket_of(http, base, bob.token) as white:
                await white.send_json({"type": "subscribe", "game_id": game_id, "since": bob_seen})
                replay = await next_frame(white, "event")
                # his absence is in the log too (player_left, then player_returned)
                while replay["kind"] in ("player_left", "player_returned"):
                    assert replay["payload"]["color"] == "white"
                    replay = await next_frame(white, "event")
                assert replay["seq"] == missed_seq > bob_seen
                assert replay["payload"]["vertex"] == WALLS[4][0]

                await act(bob, white, game_id, {"type": "move", "vertex": WALLS[4][1]})
                for b, w in WALLS[5:]:
                    await act(alice, black, game_id, {"type": "move", "vertex": b})
                    await act(bob, white, game_id, {"type": "move", "vertex": w})
                await act(alice, black, game_id, {"type": "pass"})
                await act(bob, white, game_id, {"type": "move", "vertex": "B5"})
                await act(alice, black, game_id, {"type": "pass"})
                ack, own = await act_seen(bob, white, game_id, {"type": "pass"})
                assert own[-1]["seq"] == ack["seq"] and own[-1]["kind"] == "scoring_started"

                await act(alice, black, game_id, {"type": "mark_dead", "vertex": "B5"})
                await act(alice, black, game_id, {"type": "accept_score"})
                ack, own = await act_seen(bob, white, game_id, {"type": "accept_score"})
                final_seq = ack["seq"]
                assert own[-1]["seq"] == final_seq and own[-1]["kind"] == "game_finished"

            await watch_until(final_seq)

        async with http.get(f"{base}/api/games/{game_id}") as r:
            view = await r.json()
        assert view["phase"] == "finished"
        assert view["result"] == "W+5.5"

        async with http.get(f"{base}/api/games/{game_id}/events?since=0") as r:
            log = (await r.json())["events"]
        # The guest saw the whole log, each event once, in order, with the same content.
        assert seqs(seen) == seqs(log) == list(range(1, final_seq + 1))
        assert [f["kind"] for f in seen] == [e["kind"] for e in log]


@pytest.mark.timeout(120)
async def test_game_times_out_with_no_one_connected(server: str) -> None:
    base = server
    async with aiohttp.ClientSession() as http:
        alice = await register(http, base, "carol")
        bob = await register(http, base, "dave")
        game_id = await start_game(
            base, alice, bob, time_control={"system": "absolute", "main_s": 1}
        )
        # Nobody connects, nobody moves: Black's second (plus the lag grace) runs out and
        # the server's sweeper ends the game on its own.
        deadline = time.monotonic() + 30
        view: dict[str, Any] = {}
        while time.monotonic() < deadline:
            async with http.get(f"{base}/api/games/{game_id}") as r:
                view = await r.json()
            if view["phase"] == "finished":
                break
            await asyncio.sleep(0.25)
        assert view["phase"] == "finished", view
        assert view["result"] == "W+T"
        async with http.get(f"{base}/api/games/{game_id}/events?since=0") as r:
            kinds = [e["kind"] for e in (await r.json())["events"]]
        # Ended exactly once.
        assert kinds.count("timeout") == 1
        assert kinds.count("game_finished") == 1
