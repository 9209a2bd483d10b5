"""The gateway's hot paths in goapp._core (frame encoder, dispatch) and the hub's fan-out,
with fake transports where no socket is needed."""

from __future__ import annotations

import struct
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, cast

import msgspec
import orjson
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient

from goapp import protocol
from goapp._core import encode_ws_frame, encode_ws_text_frame
from goapp.bus.conn import Conn
from goapp.bus.hub import Hub
from goapp.game.events import Pass, StoredEvent
from goapp.server import ws

LENGTHS = [0, 1, 125, 126, 127, 65535, 65536, 70000]


@pytest.mark.parametrize("n", LENGTHS)
def test_frame_header(n: int) -> None:
    payload = bytes(i % 251 for i in range(n))
    frame = encode_ws_text_frame(payload)
    assert frame[0] == 0x81  # FIN + text, no RSV bits
    if n < 126:
        assert frame[1] == n and frame[2:] == payload
    elif n < 65536:
        assert frame[1] == 126 and struct.unpack("!H", frame[2:4])[0] == n
        assert frame[4:] == payload
    else:
        assert frame[1] == 127 and struct.unpack("!Q", frame[2:10])[0] == n
        assert frame[10:] == payload


def test_control_frames() -> None:
    assert encode_ws_frame(0x9, b"") == b"\x89\x00"
    assert encode_ws_frame(0xA, b"hi") == b"\x8a\x02hi"
    assert encode_ws_frame(0x8, b"\x03\xe8") == b"\x88\x02\x03\xe8"
    # aiohttp hands a ping's payload over as a bytearray: the pong echoes any bytes-like
    assert encode_ws_frame(0xA, bytearray(b"hi")) == encode_ws_frame(0xA, memoryview(b"hi"))
    assert encode_ws_frame(0xA, bytearray(b"hi")) == b"\x8a\x02hi"
    with pytest.raises(ValueError):
        encode_ws_frame(0xA, bytearray(126))
    with pytest.raises(ValueError):
        encode_ws_frame(0x9, b"x" * 126)
    with pytest.raises(ValueError):
        encode_ws_frame(16, b"")
    with pytest.raises(TypeError):
        encode_ws_text_frame(None)  # type: ignore[arg-type]


async def test_frames_decode_with_aiohttp_client(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> None:
    """Frames written raw to the transport are read by aiohttp's own WebSocket reader."""

    async def handler(request: web.Request) -> web.WebSocketResponse:
        resp = web.WebSocketResponse(compress=False)
        await resp.prepare(request)
        assert request.transport is not None
        for n in LENGTHS:
            request.transport.write(encode_ws_text_frame(b"a" * n))
        request.transport.write(encode_ws_text_frame("h\u00e9\u68cb".encode()))
        await resp.receive()
        return resp

    app = web.Application()
    app.router.add_get("/", handler)
    client = await aiohttp_client(app)
    sock = await client.ws_connect("/", max_msg_size=1 << 20)
    for n in LENGTHS:
        msg = await sock.receive(timeout=5)
        assert msg.type is WSMsgType.TEXT
        assert msg.data == "a" * n
    assert (await sock.receive(timeout=5)).data == "h\u00e9\u68cb"
    await sock.close()


def test_dispatch_table_matches_the_protocol() -> None:
    tags = {t.__struct_config__.tag for t in protocol.ClientMessage.__args__}
    assert tags == set(protocol.CLIENT_TYPES)
    assert [h.__name__ for h in ws._HANDLERS] == [f"on_{t}" for t in protocol.CLIENT_TYPES]
    for cls, i in ws._DISPATCH.items():
        tag = cast(type[msgspec.Struct], cls).__struct_config__.tag
        assert ws._HANDLERS[i].__name__ == f"on_{tag}"


# -- the hub with fake transports ------------------------------------------------------------


class FakeTransport:
    """Collects writes; ``stuck`` transports keep everything in their buffer."""

    def __init__(self, stuck: bool = False) -> None:
        self.frames: list[bytes] = []
        self.stuck = stuck
        self.buffered = 0
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.frames.append(data)
        if self.stuck:
            self.buffered += len(data)

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True


def stored(game_id: int, seq: int) -> StoredEvent:
    return StoredEvent(
        game_id=game_id,
        seq=seq,
        created_at=datetime.now(UTC),
        event=Pass(at_ms=seq, color="black", move_number=seq),
    )


def seqs(t: FakeTransport) -> list[int]:
    out = []
    for f in t.frames:
        body = orjson.loads(f[2:] if f[1] < 126 else f[4:])
        if body["type"] == "event":
            out.append(body["seq"])
    return out


def test_broadcast_shares_one_frame_and_drops_the_slow() -> None:
    hub = Hub(write_buffer_limit=1000)
    fast = [FakeTransport() for _ in range(3)]
    slow = FakeTransport(stuck=True)
    conns = [Conn(t) for t in [*fast, slow]]
    for c in conns:
        hub.register(c)
        hub.subscribe_game(c, 7)
        hub.go_live(c, 7, 0)
    for seq in range(1, 30):
        hub.broadcast_events([stored(7, seq)])
    assert slow.aborted and conns[-1].closed
    assert conns[-1] not in hub.games[7]
    for t in fast:
        assert seqs(t) == list(range(1, 30))
    # the very same bytes object went to every subscriber
    last = [t.frames[-1] for t in fast]
    assert last[0] is last[1] is last[2]
    for c in conns:
        hub.unregister(c)
    assert hub.games == {} and hub.conns == set()


def test_buffering_then_live_has_no_gap_and_no_duplicate() -> None:
    hub = Hub()
    t = FakeTransport()
    c = Conn(t)
    hub.register(c)
    hub.subscribe_game(c, 1)
    hub.broadcast_events([stored(1, 5), stored(1, 6)])  # published during the replay
    assert seqs(t) == []
    for seq in (3, 4, 5):  # the replay read the log up to 5
        c.send(encode_ws_text_frame(orjson.dumps({"type": "event", "seq": seq})))
    hub.go_live(c, 1, 5)
    hub.broadcast_events([stored(1, 5), stored(1, 7)])  # 5 committed before, hooked after
    assert seqs(t) == [3, 4, 5, 6, 7]


def test_presence_counts() -> None:
    hub = Hub()
    watcher = Conn(FakeTransport())
    hub.register(watcher)
    hub.subscribe_lobby(watcher)
    a1, a2, guest = (
        Conn(FakeTransport(), user_id=1, name="a"),
        Conn(FakeTransport(), user_id=1, name="a"),
        Conn(FakeTransport()),
    )
    for c in (a1, a2, guest):
        hub.register(c)
    assert hub.online() == [{"id": 1, "name": "a"}]
    assert hub.guests == 2
    hub.unregister(a1)
    assert hub.online() == [{"id": 1, "name": "a"}]
    hub.unregister(a2)
    assert hub.online() == []
    frames = [orjson.loads(f[2:]) for f in watcher.transport.frames]  # type: ignore[attr-defined]
    assert [("joined" in f, "left" in f) for f in frames] == [(True, False), (False, True)]
    assert hub.disconnect_user(1) == 0


def test_lobby_events_reach_their_addressees() -> None:
    hub = Hub()
    lobby, bob, carol = (
        Conn(FakeTransport()),
        Conn(FakeTransport(), user_id=2, name="bob"),
        Conn(FakeTransport(), user_id=3, name="carol"),
    )
    for c in (lobby, bob, carol):
        hub.register(c)
    hub.subscribe_lobby(lobby)
    hub.publish_lobby("challenge_created", {"id": 1, "target": {"id": 2, "name": "bob"}})
    hub.publish_lobby("challenge_accepted", {"challenge_id": 1, "black_id": 3, "white_id": 9})

    def kinds(c: Conn) -> list[str]:
        frames = [orjson.loads(f[2:] if f[1] < 126 else f[4:]) for f in c.transport.frames]  # type: ignore[attr-defined]
        return [f["kind"] for f in frames if f["type"] == "lobby"]

    assert kinds(lobby) == ["challenge_created", "challenge_accepted"]
    assert kinds(bob) == ["challenge_created"]
    assert kinds(carol) == ["challenge_accepted"]


def test_chat_reaches_its_room_and_only_live_subscribers() -> None:
    hub = Hub()
    lobby, live, replaying, other = (Conn(FakeTransport()) for _ in range(4))
    for c in (lobby, live, replaying, other):
        hub.register(c)
    hub.subscribe_lobby(lobby)
    hub.subscribe_game(live, 7)
    hub.go_live(live, 7, 0)
    hub.subscribe_game(replaying, 7)  # still buffering: it gets events, not chat
    before = {c: len(c.transport.frames) for c in (lobby, live, replaying, other)}  # type: ignore[attr-defined]
    hub.publish_room("lobby", b"L")
    hub.publish_room("game:7", b"G")
    hub.publish_room("game:x", b"X")  # not a room: dropped, nothing raised
    got = {c: c.transport.frames[before[c] :] for c in before}  # type: ignore[attr-defined]
    assert got == {lobby: [b"L"], live: [b"G"], replaying: [], other: []}


async def test_the_ping_wheel_spreads_connections_and_closes_the_idle() -> None:
    hub = Hub(ping_interval=1.0, tick=0.25)
    conns = [Conn(FakeTransport()) for _ in range(8)]
    for c in conns:
        hub.register(c)
    hub.start()  # 4 buckets: two connections in each
    try:
        assert sorted(c.slot for c in conns) == [0, 0, 1, 1, 2, 2, 3, 3]
        idle, fresh = conns[0], conns[1]
        idle.last_seen -= hub.idle_timeout + 1
        hub.pinger.ping_bucket([idle, fresh], time.monotonic())
        assert idle.closed and idle.transport.aborted  # type: ignore[attr-defined]
        assert fresh.transport.frames[-1] == encode_ws_frame(0x9, b"") and not fresh.closed  # type: ignore[attr-defined]
    finally:
        await hub.stop()
