"""Benchmarks of the WebSocket gateway's hot paths (pytest-benchmark):
``pytest benches/bench_ws.py --benchmark-only``.

* encoding a typical event frame: the JSON (orjson) and the WebSocket header (the Cython
  encoder), against a pure-Python header built with ``struct`` as aiohttp's writer does;
* decoding a client action message (msgspec, strict), picking its handler (a dict keyed
  by the message's class) and decoding its action into the game's action union: the whole
  parse of an action, once;
* the fan-out of one committed event to 1,000 subscribers through :class:`Hub` with fake
  transports (a benchmark-only stand-in with ``write`` and ``get_write_buffer_size``): the
  server-side cost per delivery without the kernel's ``write``.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from typing import Any

import pytest

from goapp._core import encode_ws_text_frame
from goapp.bus.conn import Conn
from goapp.bus.hub import Hub
from goapp.game.actions import Move as MoveAction
from goapp.game.actions import decode_action
from goapp.game.events import ClockView, Move, PlayerClockView, StoredEvent
from goapp.protocol import CLIENT_MESSAGES, decode_client, event_json
from goapp.server.ws import _DISPATCH

SUBSCRIBERS = 1000


def _event(seq: int = 42) -> StoredEvent:
    player = PlayerClockView(
        main_ms=512_345, periods=5, period_ms=30_000, stones=1, remaining_ms=512_345
    )
    clock = ClockView(
        system="byoyomi",
        state="running",
        to_move="white",
        server_ms=1_767_268_800_000,
        deadline_ms=1_767_269_462_345,
        flagged=None,
        black=player,
        white=player,
    )
    move = Move(
        at_ms=1_767_268_800_000,
        clock=clock,
        user_id=17,
        request_id="c1-17",
        color="black",
        vertex="Q16",
        x=15,
        y=3,
        move_number=seq - 2,
        captures=0,
    )
    return StoredEvent(game_id=1234, seq=seq, created_at=datetime.now(UTC), event=move)


def _py_frame(payload: bytes) -> bytes:
    """The header as aiohttp's writer builds it (struct), for comparison."""
    n = len(payload)
    if n < 126:
        return struct.pack("!BB", 0x81, n) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


class NullTransport:
    """Benchmark-only transport: counts bytes, never buffers."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0

    def write(self, data: bytes) -> None:
        self.n += 1

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False

    def abort(self) -> None:  # pragma: no cover - never slow
        pass


def _per(benchmark: Any, name: str, count: int) -> None:
    if benchmark.stats is None:
        return
    stats = benchmark.stats.stats
    benchmark.extra_info[f"{name}_ns_mean"] = stats.mean / count * 1e9
    benchmark.extra_info[f"{name}_ns_min"] = stats.min / count * 1e9


def test_encode_event_frame(benchmark: Any) -> None:
    """A move event with both clocks (about 500 bytes): JSON + frame, once per event."""
    event = _event()
    frame = benchmark(lambda: encode_ws_text_frame(event_json(event)))
    assert frame[0] == 0x81 and 126 <= len(frame) - 4 < 65536


def test_frame_header_core(benchmark: Any) -> None:
    payload = event_json(_event())
    benchmark(encode_ws_text_frame, payload)


def test_frame_header_python_struct(benchmark: Any) -> None:
    payload = event_json(_event())
    assert _py_frame(payload) == encode_ws_text_frame(payload)
    benchmark(_py_frame, payload)


def test_dispatch_by_class(benchmark: Any) -> None:
    classes = list(CLIENT_MESSAGES) * 10
    table = _DISPATCH

    def run() -> int:
        total = 0
        for cls in classes:
            total += table[cls]
        return total

    benchmark(run)
    _per(benchmark, "dispatch", len(classes))


def test_decode_and_dispatch_action(benchmark: Any) -> None:
    raw = b'{"type":"action","id":"c1-17","game_id":1234,"action":{"type":"move","vertex":"Q16"}}'

    def run() -> tuple[int, Any]:
        msg = decode_client(raw)
        return _DISPATCH[msg.__class__], decode_action(msg.action)  # type: ignore[union-attr]

    assert benchmark(run) == (5, MoveAction(vertex="Q16"))


@pytest.fixture
def hub_1000() -> tuple[Hub, list[NullTransport]]:
    hub = Hub()
    transports = [NullTransport() for _ in range(SUBSCRIBERS)]
    for t in transports:
        conn = Conn(t)
        hub.register(conn)
        hub.subscribe_game(conn, 1234)
        hub.go_live(conn, 1234, 0)
    return hub, transports


def test_broadcast_one_event_to_1000(benchmark: Any, hub_1000: tuple[Hub, list[Any]]) -> None:
    """One committed event to 1,000 subscribers: one JSON + one frame + 1,000 writes."""
    hub, transports = hub_1000
    events = [_event()]
    benchmark(hub.broadcast_events, events)
    assert transports[-1].n > 0
    _per(benchmark, "delivery", SUBSCRIBERS)
