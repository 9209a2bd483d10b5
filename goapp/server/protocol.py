"""The WebSocket protocol: client messages (msgspec structs tagged by ``type``) and the
server frames (built with orjson). docs/protocol.md is the reference for clients.

Client messages are decoded strictly: an unknown ``type``, an unknown or missing field, a
wrong type or bad JSON raise :class:`msgspec.ValidationError`/:class:`msgspec.DecodeError`
(both :class:`msgspec.DecodeError`), which the gateway answers with a ``bad_message`` error
frame; the connection stays open.
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Any

import msgspec
import orjson

__all__ = [
    "PROTOCOL",
    "ROOM_RE",
    "Action",
    "Auth",
    "Chat",
    "ClientMessage",
    "Hello",
    "Ping",
    "Subscribe",
    "SubscribeLobby",
    "Unsubscribe",
    "UnsubscribeLobby",
    "decode_client",
    "error_frame",
    "room_game_id",
    "server_time_ms",
]

PROTOCOL = "goapp.v1"
"""The subprotocol name the server echoes (``Sec-WebSocket-Protocol``)."""

MAX_ID_CHARS = 128
MAX_GAME_ID = 2**63 - 1

ClientId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)] | int | None
GameId = Annotated[int, msgspec.Meta(ge=1, le=MAX_GAME_ID)]
Seq = Annotated[int, msgspec.Meta(ge=0, le=MAX_GAME_ID)]


#: A chat room: ``lobby`` or ``game:ID``, the id in ASCII digits. Never ``str.isdigit`` or
#: ``\\d`` (Unicode): ``game:`` with a fullwidth 3 would become game 3 under a room name history
#: never returns, and ``int("²")`` raises.
ROOM_RE = re.compile(r"lobby|game:[1-9][0-9]{0,18}")


def room_game_id(room: str) -> int | None:
    """The game of a ``game:ID`` room; None for the lobby. ``ValueError`` for anything that
    is not a room (see :data:`ROOM_RE`)."""
    if ROOM_RE.fullmatch(room) is None:
        raise ValueError(f"not a room: {room[:40]!r}")
    if room == "lobby":
        return None
    game_id = int(room[5:])
    if game_id > MAX_GAME_ID:
        raise ValueError(f"not a room: {room[:40]!r}")
    return game_id


class _Message(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="type"
):
    """Base of every client message: ``id`` (optional) is echoed in the ack or error."""

    id: ClientId = None


class Hello(_Message, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="hello"):
    """Optional first message; ``resume`` maps game ids to the last seq the client has (it
    subscribes to each and replays what was missed)."""

    resume: dict[GameId, Seq] | None = None


class Subscribe(_Message, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="subscribe"):
    """Watch a game: full ``state`` first, or with ``since`` the events after that seq."""

    game_id: GameId
    since: Seq | None = None


class Unsubscribe(
    _Message, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="unsubscribe"
):
    game_id: GameId


class SubscribeLobby(
    _Message, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="subscribe_lobby"
):
    pass


class UnsubscribeLobby(
    _Message, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="unsubscribe_lobby"
):
    pass


#: Larger lag claims are refused outright (the clock would not credit them anyway).
MAX_LAG_MS = 10_000


class Action(_Message, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="action"):
    """A game action, the body of ``POST /api/action`` plus ``type`` and ``id``.
    ``request_id`` is the idempotency key (only when given)."""

    game_id: GameId
    action: dict[str, Any]
    request_id: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)] | None = None
    #: The network lag the client measured (half its ping round trip). The clock credits it
    #: only up to the player's lag quota (goapp.rules.clock), so claiming more gains nothing.
    lag_ms: Annotated[int, msgspec.Meta(ge=0, le=MAX_LAG_MS)] = 0


class Chat(_Message, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="chat"):
    room: Annotated[str, msgspec.Meta(max_length=32)]
    text: str


class Ping(_Message, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="ping"):
    """``t`` (any number, e.g. the client's clock) is echoed in the pong."""

    t: float | None = None


class Auth(_Message, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="auth"):
    """A fresh access token for this connection (extends it past the old token's expiry)."""

    token: Annotated[str, msgspec.Meta(max_length=4096)]


ClientMessage = (
    Hello
    | Subscribe
    | Unsubscribe
    | SubscribeLobby
    | UnsubscribeLobby
    | Action
    | Chat
    | Ping
    | Auth
)

_decoder = msgspec.json.Decoder(ClientMessage)


def decode_client(data: str | bytes) -> ClientMessage:
    """One client message; raises ``msgspec.DecodeError`` (or ``ValidationError``)."""
    return _decoder.decode(data)


def server_time_ms() -> int:
    return time.time_ns() // 1_000_000


def error_frame(msg_id: str | int | None, body: dict[str, Any]) -> bytes:
    """``{"type": "error", "id": ..., "error": {...}}`` from a :func:`describe` body."""
    return orjson.dumps({"type": "error", "id": msg_id, **body})
