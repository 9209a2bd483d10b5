"""The WebSocket gateway end to end: a real aiohttp server on SQLite, real clients."""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse, WSMsgType, WSServerHandshakeError
from aiohttp.test_utils import TestClient
from websockets.typing import Subprotocol
from ws_helpers import (
    ORIGIN,
    closed_code,
    make_user,
    recv,
    recv_type,
    request,
    send,
    token_for,
)

from goapp.obs.metrics import WS_DROPPED
from goapp.server import ws as gateway
from goapp.server.app import create_app, create_ws_app
from goapp.server.auth import issue_access_token
from goapp.server.context import ServerContext

pytestmark = pytest.mark.timeout(60)

Client = TestClient[Any, Any]


@pytest.fixture
async def client(ctx: ServerContext, aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    return await aiohttp_client(create_ws_app(ctx))


async def connect(client: Client, token: str | None = None, **kw: Any) -> ClientWebSocketResponse:
    """Open a socket and read the welcome frame."""
    path = "/ws" if token is None else f"/ws?token={token}"
    ws = await client.ws_connect(path, **kw)
    welcome = await recv(ws)
    assert welcome["type"] == "welcome"
    return ws


async def new_game(ctx: ServerContext, black: int, white: int) -> int:
    state = await ctx.games.create_game(black, white, user_color="black", size=9)
    return state.game_id


async def log_length(ctx: ServerContext, game_id: int) -> int:
    return len(await ctx.store.events_since(game_id, 0))


MOVES = ["E5", "C3", "G7", "C7", "G3", "D4", "F6", "B5", "H5", "E3"]


# -- handshake -------------------------------------------------------------------------------


async def test_guest_without_origin_is_welcomed(client: Client) -> None:
    ws = await client.ws_connect("/ws")
    welcome = await recv(ws)
    assert welcome["type"] == "welcome"
    assert welcome["user"] is None
    assert welcome["protocol"] == "goapp.v1"
    assert welcome["limits"]["max_msg_size"] == gateway.MAX_MSG_SIZE
    await ws.close()


async def test_origin_must_be_allowed(client: Client, ctx: ServerContext) -> None:
    ws = await connect(client, headers={"Origin": ORIGIN})
    await ws.close()
    with pytest.raises(WSServerHandshakeError) as info:
        await client.ws_connect("/ws", headers={"Origin": "http://evil.example"})
    assert info.value.status == 403
    assert len(ctx.hub.conns) == 0


def _upgrade_headers(**extra: str) -> dict[str, str]:
    return {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        **extra,
    }


def _b64(obj: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


async def test_bad_tokens_get_401_before_upgrade(client: Client, ctx: ServerContext) -> None:
    user_id, good = await make_user(ctx, "alice")
    forged = issue_access_token(b"x" * 32, user_id, "alice", 900, 1_900_000_000 - 10**6)
    expired = issue_access_token(ctx.secret, user_id, "alice", 10, 1_000_000_000)
    claims = {"sub": str(user_id), "name": "alice", "iat": 1, "exp": 2**40, "jti": "j"}
    alg_none = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64({**claims, 'typ': 'access'})}."
    cases = {
        forged: "token_invalid",
        expired: "token_expired",
        alg_none: "token_invalid",
        "garbage": "token_invalid",
    }
    for token, code in cases.items():
        for how in ("query", "protocol"):
            if how == "query":
                resp = await client.get(f"/ws?token={token}", headers=_upgrade_headers())
            else:
                headers = _upgrade_headers(
                    **{"Sec-WebSocket-Protocol": f"goapp.v1, bearer.{token}"}
                )
                resp = await client.get("/ws", headers=headers)
            assert resp.status == 401, (token, how)
            body = await resp.json()
            assert body["error"]["code"] == code
            assert set(body["error"]) >= {"code", "message"}
        with pytest.raises(WSServerHandshakeError) as info:
            await client.ws_connect(f"/ws?token={token}")
        assert info.value.status == 401
    assert len(ctx.hub.conns) == 0
    ws = await connect(client, good)
    await ws.close()


async def test_plain_get_is_refused(client: Client) -> None:
    resp = await client.get("/ws")
    assert resp.status == 426
    assert (await resp.json())["error"]["code"] == "upgrade_required"


async def test_token_in_subprotocol(client: Client, ctx: ServerContext) -> None:
    _, token = await make_user(ctx, "alice")
    ws = await client.ws_connect("/ws", protocols=("goapp.v1", f"bearer.{token}"))
    assert ws.protocol == "goapp.v1"
    welcome = await recv(ws)
    assert welcome["user"]["name"] == "alice"
    await ws.close()


async def test_http_port_app_serves_ws_too(
    ctx: ServerContext, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    client = await aiohttp_client(create_app(ctx))
    ws = await connect(client)
    await ws.close()


# -- guests, games, resume ---------------------------------------------------------------------


async def test_guest_can_watch_but_not_act_or_chat(client: Client, ctx: ServerContext) -> None:
    a, _ = await make_user(ctx, "alice")
    b, _ = await make_user(ctx, "bob")
    game = await new_game(ctx, a, b)
    ws = await connect(client)
    await send(ws, type="subscribe", id="s", game_id=game)
    state = await recv_type(ws, "state")
    assert state["game_id"] == game and state["seq"] == 2
    assert state["view"]["width"] == 9
    assert (await recv_type(ws, "ack", id="s"))["watchers"] == 1
    act = await request(ws, type="action", id="m", game_id=game, action={"type": "pass"})
    assert act["error"]["code"] == "auth_required"
    chat = await request(ws, type="chat", id="c", room=f"game:{game}", text="hi")
    assert chat["error"]["code"] == "auth_required"
    assert await log_length(ctx, game) == 2
    assert await ctx.store.list_chat(f"game:{game}") == []
    await ws.close()


async def test_unknown_game_is_an_error(client: Client) -> None:
    ws = await connect(client)
    got = await request(ws, type="subscribe", id=1, game_id=999)
    assert got["error"]["code"] == "game_not_found"
    got = await request(ws, type="subscribe", id=2, game_id=999, since=0)
    assert got["error"]["code"] == "game_not_found"
    got = await request(ws, type="subscribe", id=3, game_id=999, since=5)
    assert got["error"]["code"] == "game_not_found"
    await ws.close()


async def test_since_beyond_the_log_is_clamped(client: Client, ctx: ServerContext) -> None:
    a, _ = await make_user(ctx, "alice")
    b, _ = await make_user(ctx, "bob")
    game = await new_game(ctx, a, b)
    ws = await connect(client)
    assert (await request(ws, type="subscribe", id=1, game_id=game, since=50))["type"] == "ack"
    await ctx.games.act(game, a, {"type": "pass"})
    assert (await recv_type(ws, "event"))["seq"] == 3
    await ws.close()


async def collect_events(ws: ClientWebSocketResponse, game: int, last_seq: int) -> list[int]:
    """Seqs of the event frames of ``game`` until ``last_seq``, then any extras within 0.2 s."""
    seqs: list[int] = []
    while not seqs or seqs[-1] < last_seq:
        frame = await recv(ws)
        if frame["type"] == "event" and frame["game_id"] == game:
            seqs.append(frame["seq"])
    while True:
        try:
            frame = await recv(ws, 0.2)
        except TimeoutError:
            return seqs
        if frame["type"] == "event":
            seqs.append(frame["seq"])


async def test_two_players_and_a_spectator(client: Client, ctx: ServerContext) -> None:
    a, ta = await make_user(ctx, "alice")
    b, tb = await make_user(ctx, "bob")
    game = await new_game(ctx, a, b)
    black, white, watcher = (
        await connect(client, ta),
        await connect(client, tb),
        await connect(client),
    )
    for n, ws in enumerate((black, white, watcher)):
        assert (await request(ws, type="subscribe", id=f"s{n}", game_id=game))["type"] == "ack"
    skipped: dict[ClientWebSocketResponse, list[dict[str, Any]]] = {black: [], white: []}
    for i, vertex in enumerate(MOVES):
        ws = black if i % 2 == 0 else white
        move = {"type": "move", "vertex": vertex}
        ack = await request(ws, skipped[ws], type="action", id=f"m{i}", game_id=game, action=move)
        assert ack["type"] == "ack", ack
        assert ack["seq"] == 3 + i
        # the mover's own move comes as an event frame, just before the ack (not inside it)
        assert "events" not in ack
        own = skipped[ws][-1]
        assert (own["type"], own["seq"], own["kind"]) == ("event", 3 + i, "move")
    wrong = await request(
        ws, skipped[ws], type="action", id="x", game_id=game, action={"type": "pass"}
    )
    assert wrong["error"]["code"] == "not_your_turn"
    last = 2 + len(MOVES)
    assert await collect_events(watcher, game, last) == list(range(3, last + 1))
    for player in (black, white):
        early = [f["seq"] for f in skipped[player] if f["type"] == "event"]
        rest = await collect_events(player, game, last) if early[-1:] != [last] else []
        assert early + rest == list(range(3, last + 1))
    await send(watcher, type="unsubscribe", id="u", game_id=game)
    await recv_type(watcher, "ack", id="u")
    await request(black, type="action", id="p", game_id=game, action={"type": "pass"})
    with pytest.raises(TimeoutError):
        await recv_type(watcher, "event", timeout=0.3)
    for ws in (black, white, watcher):
        await ws.close()


async def test_event_frames_carry_clocks(client: Client, ctx: ServerContext) -> None:
    a, ta = await make_user(ctx, "alice")
    b, _ = await make_user(ctx, "bob")
    state = await ctx.games.create_game(
        a,
        b,
        user_color="black",
        size=9,
        time_control={"system": "absolute", "main_s": 600},
    )
    ws = await connect(client, ta)
    await request(ws, type="subscribe", id="s", game_id=state.game_id)
    await send(ws, type="action", id="m", game_id=state.game_id, action={"type": "pass"})
    event = await recv_type(ws, "event")
    assert event["kind"] == "pass"
    clock = event["payload"]["clock"]
    assert clock["server_ms"] > 0 and clock["black"]["remaining_ms"] > 0
    await ws.close()


async def test_claimed_lag_reaches_the_clock_and_is_bounded(
    client: Client, ctx: ServerContext
) -> None:
    """The client's measured lag goes with its action to the clock (which credits it only up
    to the player's quota); an absurd claim is refused before it reaches the game."""
    a, ta = await make_user(ctx, "alice")
    b, _ = await make_user(ctx, "bob")
    state = await ctx.games.create_game(
        a, b, user_color="black", size=9, time_control={"system": "absolute", "main_s": 600}
    )
    ws = await connect(client, ta)
    await request(ws, type="subscribe", id="s", game_id=state.game_id)
    action = {"type": "move", "vertex": "E5"}
    await send(ws, type="action", id="x", game_id=state.game_id, action=action, lag_ms=60_000)
    error = await recv_type(ws, "error")
    assert error["id"] == "x" and error["error"]["code"] == "bad_message"
    assert len(await ctx.games.events_since(state.game_id, 0)) == 2  # created + started

    await send(ws, type="action", id="m", game_id=state.game_id, action=action, lag_ms=250)
    event = await recv_type(ws, "event")
    assert event["kind"] == "move" and event["payload"]["lag_ms"] == 250
    credited = (await ctx.games.state(state.game_id)).clock.black.lag_credited_ms
    assert 0 < credited <= 250
    await ws.close()


async def test_resume_after_disconnect(client: Client, ctx: ServerContext) -> None:
    a, _ = await make_user(ctx, "alice")
    b, _ = await make_user(ctx, "bob")
    game = await new_game(ctx, a, b)
    players = [a, b]
    watcher = await connect(client)
    await request(watcher, type="subscribe", id="s", game_id=game)
    for i, v in enumerate(MOVES[:3]):
        await ctx.games.act(game, players[i % 2], {"type": "move", "vertex": v})
    seen = await collect_events(watcher, game, 5)
    assert seen == [3, 4, 5]
    await watcher.close()
    for i, v in enumerate(MOVES[3:7], 3):
        await ctx.games.act(game, players[i % 2], {"type": "move", "vertex": v})
    watcher = await connect(client)
    await send(watcher, type="subscribe", id="r", game_id=game, since=seen[-1])
    ctx_moves = MOVES[7:9]
    got: list[int] = []
    while len(got) < 4:
        frame = await recv(watcher)
        if frame["type"] == "event":
            got.append(frame["seq"])
    assert got == [6, 7, 8, 9]
    for i, v in enumerate(ctx_moves, 7):
        await ctx.games.act(game, players[i % 2], {"type": "move", "vertex": v})
    assert await collect_events(watcher, game, 11) == [10, 11]
    await watcher.close()

    # the same through hello/resume
    watcher = await connect(client)
    await send(watcher, type="hello", id="h", resume={str(game): 8})
    assert await collect_events(watcher, game, 11) == [9, 10, 11]
    await watcher.close()


async def test_resume_while_moves_are_committed(client: Client, ctx: ServerContext) -> None:
    """Subscribing with since= while another task commits moves: every event exactly once."""
    a, _ = await make_user(ctx, "alice")
    b, _ = await make_user(ctx, "bob")
    game = await new_game(ctx, a, b)
    players = [a, b]
    vertices = [f"{c}{r}" for c in "ABCDEFGHJ" for r in range(1, 10)][:40]
    for attempt in range(3):
        watcher = await connect(client)

        async def play(first: int) -> None:
            for i in range(first, first + 10):
                await ctx.games.act(game, players[i % 2], {"type": "move", "vertex": vertices[i]})
                await asyncio.sleep(0)

        start = 10 * attempt
        mover = asyncio.create_task(play(start))
        await asyncio.sleep(0)
        await send(watcher, type="subscribe", id="r", game_id=game, since=2)
        await mover
        last = 2 + start + 10
        assert await collect_events(watcher, game, last) == list(range(3, last + 1))
        await watcher.close()


# -- bad input ---------------------------------------------------------------------------------


async def test_bad_messages_get_error_frames_and_the_socket_stays_open(client: Client) -> None:
    ws = await connect(client)
    bad = [
        "not json",
        "[1, 2]",
        '{"type": "nope"}',
        '{"type": "ping", "surprise": 1}',
        '{"type": "subscribe"}',
        '{"type": "subscribe", "game_id": "x"}',
        '{"no_type": true}',
    ]
    for text in bad:
        await ws.send_str(text)
        frame = await recv(ws)
        assert frame["type"] == "error" and frame["error"]["code"] == "bad_message", (text, frame)
    await ws.send_str('{"type": "nope", "id": "keep-me"}')
    assert (await recv(ws))["id"] == "keep-me"
    await ws.send_bytes(b'{"type": "ping"}')
    assert (await recv(ws))["error"]["code"] == "bad_message"
    await send(ws, type="ping", id=9, t=123.5)
    pong = await recv(ws)
    assert pong == {"type": "pong", "id": 9, "t": 123.5, "server_time": pong["server_time"]}
    await ws.close()


async def test_oversize_frame_closes_1009(client: Client) -> None:
    ws = await connect(client)
    await ws.send_str(json.dumps({"type": "ping", "id": "x" * gateway.MAX_MSG_SIZE}))
    assert await closed_code(ws) == 1009


async def test_rate_limit(client: Client) -> None:
    ws = await connect(client)
    n = int(gateway.MSG_BURST) + 20
    for i in range(n):
        await send(ws, type="ping", id=i)
    kinds = [(await recv(ws))["type"] for _ in range(n)]
    assert kinds.count("error") >= 10
    assert kinds[: int(gateway.MSG_BURST)] == ["pong"] * int(gateway.MSG_BURST)
    await asyncio.sleep(0.2)
    assert (await request(ws, type="subscribe_lobby", id="ok"))["type"] == "ack"
    await ws.close()


# -- the inbox: frames applied in order, no reader parked on an idle socket -----------------


def _live_coroutines(*qualnames: str) -> int:
    gc.collect()
    return sum(
        1
        for o in gc.get_objects()
        if type(o).__name__ == "coroutine" and o.__qualname__ in qualnames
    )


async def test_idle_sockets_hold_no_reader(client: Client) -> None:
    """A socket at rest keeps no coroutine waiting for its next frame (the 10k-socket GC
    pauses came from those: goapp/server/ws_inbox.py), yet every frame is still read."""
    sockets = [await connect(client) for _ in range(20)]
    for n, ws in enumerate(sockets):
        await ws.ping()
        await ws.pong()
        assert (await request(ws, type="subscribe_lobby", id=n))["type"] == "ack"
        await recv_type(ws, "presence")
    assert _live_coroutines("WebSocketResponse.receive", "_Reader._work") == 0
    for ws in sockets:
        assert (await request(ws, type="unsubscribe_lobby", id="u"))["type"] == "ack"
        await ws.close()


async def test_pings_with_a_payload_get_their_pong_from_a_websockets_client(
    client: Client,
) -> None:
    """Python's ``websockets`` pings with a payload (4 random bytes by default); the pong
    must echo it and the socket stay open (it was closed with 1011: aiohttp hands the
    payload over as a bytearray)."""
    from websockets.asyncio.client import connect as ws_connect

    url = str(client.make_url("/ws")).replace("http://", "ws://")
    async with ws_connect(url, subprotocols=[Subprotocol("goapp.v1")]) as ws:
        assert json.loads(await ws.recv())["type"] == "welcome"
        for payload in (b"goapp", b"", bytes(range(125))):
            latency = await asyncio.wait_for(await ws.ping(payload), 5)
            assert latency >= 0
        await asyncio.wait_for(await ws.ping(), 5)  # the library's own random payload
        await ws.send(json.dumps({"type": "ping", "id": 1}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "pong"
    assert ws.close_code == 1000


async def test_pipelined_messages_are_answered_in_order(client: Client) -> None:
    ws = await connect(client)
    for i in range(30):
        await send(ws, type="subscribe_lobby" if i % 2 == 0 else "unsubscribe_lobby", id=i)
    ids: list[int] = []
    while len(ids) < 30:
        frame = await recv(ws)
        if frame["type"] == "ack":
            ids.append(frame["id"])
    assert ids == list(range(30))
    await ws.close()


def _client_frame(body: bytes) -> bytes:
    """One masked text frame, as a client sends it (bodies under 126 bytes)."""
    mask = os.urandom(4)
    return (
        bytes([0x81, 0x80 | len(body)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(body))
    )


def _read_text_frames(sock: socket.socket, n: int) -> list[dict[str, Any]]:
    """Read ``n`` text frames from the server, skipping its pings (blocking: run it in a
    thread). Server frames are unmasked; ours are all under 64 KiB."""
    buf = b""
    out: list[dict[str, Any]] = []
    sock.settimeout(10)
    while len(out) < n:
        end = _frame_end(buf)
        while end is None or len(buf) < end:
            chunk = sock.recv(65536)
            assert chunk, "the server closed the socket"
            buf += chunk
            end = _frame_end(buf)
        frame, buf = buf[:end], buf[end:]
        if frame[0] == 0x89:  # the hub's ping
            continue
        assert frame[0] == 0x81, frame[:2]
        out.append(json.loads(frame[4 if frame[1] == 126 else 2 :]))
    return out


def _frame_end(buf: bytes) -> int | None:
    if len(buf) < 2 or (buf[1] == 126 and len(buf) < 4):
        return None
    if buf[1] == 126:
        return 4 + int.from_bytes(buf[2:4], "big")
    return 2 + buf[1]


async def test_a_flood_pauses_reading_and_the_socket_recovers(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hundreds of frames in one write: they queue, reading pauses at MAX_PENDING and
    resumes, credits are charged on arrival, and the answers keep the frames' order."""
    pauses: list[int] = []
    real_pause = gateway.Inbox.pause

    def pause(self: gateway.Inbox) -> None:
        pauses.append(1)
        real_pause(self)

    monkeypatch.setattr(gateway.Inbox, "pause", pause)
    port = client.server.port
    assert port is not None
    raw = await asyncio.to_thread(_raw_ws_socket, port)
    n = 4 * gateway.MAX_PENDING
    burst = b"".join(
        _client_frame(json.dumps({"type": "ping", "id": i}).encode()) for i in range(n)
    )
    raw.sendall(burst)
    frames = await asyncio.to_thread(_read_text_frames, raw, n + 1)
    assert frames[0]["type"] == "welcome"
    answers = frames[1:]
    pongs = [f["id"] for f in answers if f["type"] == "pong"]
    burst_credit = int(gateway.MSG_BURST)
    assert pongs[:burst_credit] == list(range(burst_credit)) and pongs == sorted(pongs)
    limited = [f for f in answers if f["type"] == "error"]
    assert len(limited) == n - len(pongs) > 0
    assert {f["error"]["code"] for f in limited} == {"rate_limited"}
    assert pauses, "reading never paused"
    await asyncio.sleep(0.2)
    raw.sendall(_client_frame(b'{"type": "ping", "id": "after"}'))
    (after,) = await asyncio.to_thread(_read_text_frames, raw, 1)
    assert after["type"] == "pong" and after["id"] == "after"
    raw.close()


async def test_a_move_sent_just_before_close_is_applied(client: Client, ctx: ServerContext) -> None:
    """The client's close frame waits behind the move it sent first: the move commits and
    the close is answered cleanly."""
    a, ta = await make_user(ctx, "alice")
    b, _ = await make_user(ctx, "bob")
    game = await new_game(ctx, a, b)
    ws = await connect(client, ta)
    move = {"type": "move", "vertex": "E5"}
    await send(ws, type="action", id="m", game_id=game, action=move)
    await ws.close()
    assert ws.close_code == 1000
    kinds: list[str] = []
    for _ in range(50):
        kinds = [e.kind for e in await ctx.games.events_since(game, 2)]
        if "move" in kinds:
            break
        await asyncio.sleep(0.05)
    assert kinds[:1] == ["move"], kinds  # then, maybe, player_left: alice has no socket


# -- slow clients, logout, expiry, liveness --------------------------------------------------


def _raw_ws_socket(port: int) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


async def test_slow_consumer_is_dropped_and_others_keep_receiving(
    client: Client, ctx: ServerContext
) -> None:
    ctx.hub.write_buffer_limit = 64 * 1024
    fast = await connect(client)
    await request(fast, type="subscribe_lobby", id="l")
    port = client.server.port
    assert port is not None
    raw = await asyncio.to_thread(_raw_ws_socket, port)
    for _ in range(100):
        await asyncio.sleep(0.01)
        if len(ctx.hub.conns) == 2:
            break
    slow = next(c for c in ctx.hub.conns if not c.lobby)
    sock = slow.transport.get_extra_info("socket")  # type: ignore[attr-defined]
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    # the raw client subscribes to the lobby (one frame it sends, then it stops reading)
    mask = os.urandom(4)
    body = b'{"type":"subscribe_lobby"}'
    raw.sendall(
        bytes([0x81, 0x80 | len(body)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(body))
    )
    for _ in range(100):
        await asyncio.sleep(0.01)
        if slow.lobby:
            break
    assert slow.lobby
    dropped = WS_DROPPED.labels(reason="slow")._value.get()
    blob = "x" * 16 * 1024
    for i in range(60):
        ctx.hub.publish_lobby("challenge_created", {"i": i, "blob": blob})
        await asyncio.sleep(0.005)
    assert slow.closed
    assert WS_DROPPED.labels(reason="slow")._value.get() == dropped + 1
    got: list[int] = []
    while len(got) < 60:
        frame = await recv(fast)
        if frame["type"] == "lobby":
            got.append(frame["payload"]["i"])
    assert got == list(range(60))
    raw.close()
    for _ in range(100):
        await asyncio.sleep(0.01)
        if len(ctx.hub.conns) == 1:
            break
    assert len(ctx.hub.conns) == 1
    await fast.close()


async def test_disconnect_user_closes_1008(client: Client, ctx: ServerContext) -> None:
    a, ta = await make_user(ctx, "alice")
    one, two, guest = await connect(client, ta), await connect(client, ta), await connect(client)
    assert ctx.hub.disconnect_user(a, code=1008) == 2
    assert await closed_code(one) == 1008
    assert await closed_code(two) == 1008
    await send(guest, type="ping", id=1)
    assert (await recv(guest))["type"] == "pong"
    await guest.close()


async def test_token_expiry_closes_1008_unless_renewed(client: Client, ctx: ServerContext) -> None:
    a, short = await make_user(ctx, "alice", ttl=1)
    ws = await connect(client, short)
    renewed = await connect(client, short)
    ack = await request(renewed, type="auth", id="a", token=token_for(ctx, a, "alice", 60))
    assert ack["type"] == "ack" and ack["user"]["id"] == a
    _, other = await make_user(ctx, "bob")
    refused = await request(renewed, type="auth", id="b", token=other)
    assert refused["error"]["code"] == "forbidden"
    assert await closed_code(ws, timeout=5) == 1008
    await send(renewed, type="ping", id=1)
    assert (await recv_type(renewed, "pong"))["id"] == 1
    await renewed.close()


async def test_guest_can_log_in_with_auth(client: Client, ctx: ServerContext) -> None:
    a, token = await make_user(ctx, "alice")
    ws = await connect(client)
    ack = await request(ws, type="auth", id="a", token=token)
    assert ack["user"] == {"id": a, "name": "alice"}
    assert ctx.hub.online() == [{"id": a, "name": "alice"}]
    bad = await request(ws, type="auth", id="b", token="nope")
    assert bad["error"]["code"] == "token_invalid"
    await ws.close()


async def test_server_pings_and_idle_timeout(
    ctx: ServerContext, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    ctx.hub.ping_interval = 0.2
    ctx.hub.tick = 0.05
    ctx.hub.idle_timeout = 0.5
    client = await aiohttp_client(create_ws_app(ctx))
    lively = await connect(client)
    frames: list[dict[str, Any]] = []

    async def read_lively() -> None:  # receive() answers the pings: never idle
        async for msg in lively:
            frames.append(json.loads(msg.data))

    reader = asyncio.create_task(read_lively())
    quiet = await connect(client, autoping=False)
    msg = await quiet.receive(timeout=2)
    assert msg.type is WSMsgType.PING
    assert await closed_code(quiet, timeout=3) == 1001
    await send(lively, type="ping", id=1)
    for _ in range(100):
        if frames:
            break
        await asyncio.sleep(0.02)
    assert frames[0]["type"] == "pong"
    await lively.close()
    await reader


# -- chat and presence -------------------------------------------------------------------------


async def test_room_ids_are_ascii_digits_only(client: Client, ctx: ServerContext) -> None:
    """``game:²`` raised ValueError (an ``internal`` frame); ``game:`` with a fullwidth 3 reached
    game 3's sockets but was stored under a room that history never returns."""
    a, ta = await make_user(ctx, "alice")
    b, _ = await make_user(ctx, "bob")
    game = await new_game(ctx, a, b)
    assert game < 10
    alice, guest = await connect(client, ta), await connect(client)
    for ws in (alice, guest):
        await request(ws, type="subscribe", id="g", game_id=game)
    odd_rooms = [
        "game:²",
        f"game:{chr(0xFF10 + game)}",  # fullwidth digit
        f"game:{chr(0x0660 + game)}",  # Arabic-Indic digit
        f"game:0{game}",
        f"game:{game} ",
        f"game:+{game}",
        "game:" + "9" * 19,  # past the largest game id
    ]
    for n, room in enumerate(odd_rooms):
        got = await request(alice, type="chat", id=n, room=room, text="hidden")
        assert got["error"]["code"] == "bad_message", (room, got)
    ok = await request(alice, type="chat", id="ok", room=f"game:{game}", text="seen")
    assert ok["type"] == "ack"
    assert (await recv_type(guest, "chat"))["text"] == "seen"  # the first chat it got
    assert [m.text for m in await ctx.store.list_chat(f"game:{game}")] == ["seen"]
    for room in odd_rooms:
        assert await ctx.store.list_chat(room) == []
    for ws in (alice, guest):
        await ws.close()


async def test_chat_is_stored_and_broadcast(client: Client, ctx: ServerContext) -> None:
    a, ta = await make_user(ctx, "alice")
    b, tb = await make_user(ctx, "bob")
    game = await new_game(ctx, a, b)
    alice, bob, guest = await connect(client, ta), await connect(client, tb), await connect(client)
    for ws in (alice, bob, guest):
        await request(ws, type="subscribe_lobby", id="l")
        await request(ws, type="subscribe", id="g", game_id=game)
    ack = await request(alice, type="chat", id="c1", room="lobby", text="  hello all ")
    assert ack["type"] == "ack"
    for ws in (alice, bob, guest):
        line = await recv_type(ws, "chat")
        assert line["room"] == "lobby" and line["text"] == "hello all"
        assert line["user"] == {"id": a, "name": "alice"} and line["id"] == ack["chat_id"]
    await request(bob, type="chat", id="c2", room=f"game:{game}", text="gg")
    assert (await recv_type(guest, "chat"))["room"] == f"game:{game}"
    stored = await ctx.store.list_chat("lobby")
    assert [(m.user_id, m.text) for m in stored] == [(a, "hello all")]
    assert [m.text for m in await ctx.store.list_chat(f"game:{game}")] == ["gg"]

    long = await request(alice, type="chat", id="c3", room="lobby", text="x" * 501)
    assert long["error"]["code"] == "bad_chat"
    ctrl = await request(alice, type="chat", id="c4", room="lobby", text="a\x00b")
    assert ctrl["error"]["code"] == "bad_chat"
    other = await request(alice, type="chat", id="c5", room="game:12345", text="hi")
    assert other["error"]["code"] == "not_subscribed"
    odd = await request(alice, type="chat", id="c6", room="kitchen", text="hi")
    assert odd["error"]["code"] == "bad_message"
    answers = [
        (await request(bob, type="chat", id=f"r{i}", room="lobby", text=f"spam {i}"))["type"]
        for i in range(8)
    ]
    assert answers.count("ack") == 4 and answers[-1] == "error"  # burst 5, one used above
    for ws in (alice, bob, guest):
        await ws.close()


async def test_presence(client: Client, ctx: ServerContext) -> None:
    a, ta = await make_user(ctx, "alice")
    b, tb = await make_user(ctx, "bob")
    game = await new_game(ctx, a, b)
    alice = await connect(client, ta)
    await send(alice, type="subscribe_lobby", id="l")
    snap = await recv_type(alice, "presence")
    assert snap["online"] == [{"id": a, "name": "alice"}] and snap["guests"] == 0
    bob = await connect(client, tb)
    joined = await recv_type(alice, "presence")
    assert joined["joined"] == [{"id": b, "name": "bob"}] and joined["users"] == 2
    bob2 = await connect(client, tb)  # a second tab: no new presence frame
    await bob2.close()
    guest = await connect(client)
    await request(alice, type="subscribe", id="g", game_id=game)
    await send(guest, type="subscribe", id="g", game_id=game)
    watchers = await recv_type(alice, "presence", game_id=game)
    assert watchers["watchers"] == 2
    assert ctx.hub.watchers(game) == 2
    await guest.close()
    assert (await recv_type(alice, "presence", game_id=game))["watchers"] == 1
    await bob.close()
    left = await recv_type(alice, "presence", left=[{"id": b, "name": "bob"}])
    assert left["users"] == 1
    assert ctx.hub.online() == [{"id": a, "name": "alice"}]
    await alice.close()


async def test_shutdown_closes_sockets_1001(
    ctx: ServerContext, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    client = await aiohttp_client(create_ws_app(ctx))
    ws = await connect(client)
    await ctx.hub.stop()
    assert await closed_code(ws) == 1001
