"""The WebSocket protocol (``goapp.v1``): every frame, both directions, as typed msgspec
structs tagged by ``type``. docs/protocol.md is the reference for clients; a test keeps the
two in step (tests/test_protocol.py).

Client messages (:data:`ClientMessage`) are decoded once and strictly by
:func:`decode_client`: an unknown ``type``, an unknown or missing field, a wrong type or bad
JSON raise :class:`msgspec.ValidationError`/:class:`msgspec.DecodeError` (both
:class:`msgspec.DecodeError`), which the gateway answers with a ``bad_message`` error frame;
the connection stays open. An ``action``'s body stays raw JSON (:class:`msgspec.Raw`): the
game service decodes it straight into its action union (:data:`goapp.game.actions.Action`)
with a prebuilt decoder, so an action is parsed into a struct once, never into a dict.

Server frames (:data:`ServerFrame`) are encoded by :func:`encode` (one reused encoder) or,
with the WebSocket frame header, :func:`encode_frame`. The one exception is the hot path:
an event's body is built by :func:`event_json` (orjson, from the committed event, the bytes
the bus and the fan-out pass on unchanged); :class:`Event` is its shape.

This module sits below every package that sends frames (game, match, the fan-out, the
server) and imports none of them.
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Any, Literal, Protocol

import msgspec
import orjson
from msgspec import UNSET, UnsetType

from goapp._core import encode_ws_text_frame

__all__ = [
    "CLIENT_TYPES",
    "MAX_GAME_ID",
    "MAX_ID_CHARS",
    "MAX_LAG_MS",
    "PROTOCOL",
    "ROOM_RE",
    "SERVER_TYPES",
    "Ack",
    "Action",
    "Auth",
    "Automatch",
    "Chat",
    "ChatLine",
    "ClientMessage",
    "Error",
    "Event",
    "Hello",
    "Limits",
    "Lobby",
    "LoggedEvent",
    "Notify",
    "Ping",
    "Pong",
    "Presence",
    "ServerFrame",
    "State",
    "Subscribe",
    "SubscribeLobby",
    "Unsubscribe",
    "UnsubscribeLobby",
    "UserRef",
    "Welcome",
    "decode_client",
    "decode_server",
    "encode",
    "encode_frame",
    "event_frame",
    "event_json",
    "room_game_id",
    "server_time_ms",
]

PROTOCOL = "goapp.v1"
"""The subprotocol name the server echoes (``Sec-WebSocket-Protocol``)."""

MAX_ID_CHARS = 128
MAX_GAME_ID = 2**63 - 1
#: Larger lag claims are refused outright (the clock would not credit them anyway).
MAX_LAG_MS = 10_000

#: A chat room: ``lobby`` or ``game:ID``, the id in ASCII digits. Never ``str.isdigit`` or
#: ``\\d`` (Unicode): ``game:`` with a fullwidth 3 would become game 3 under a room name history
#: never returns, and ``int("²")`` raises.
ROOM_RE = re.compile(r"lobby|game:[1-9][0-9]{0,18}")

ClientId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)] | int | None
GameId = Annotated[int, msgspec.Meta(ge=1, le=MAX_GAME_ID)]
Seq = Annotated[int, msgspec.Meta(ge=0, le=MAX_GAME_ID)]


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


def server_time_ms() -> int:
    return time.time_ns() // 1_000_000


# == client -> server ==========================================================================


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


class Action(_Message, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="action"):
    """A game action, the body of ``POST /api/action`` plus ``type`` and ``id``.
    ``request_id`` is the idempotency key (only when given).

    ``action`` is the action's JSON object, unparsed (:class:`msgspec.Raw`): the game
    service decodes it into its action union once (:func:`goapp.game.actions.decode_action`,
    a prebuilt decoder), so a bad action gets the same ``bad_action`` error over the
    WebSocket as over HTTP. One that is not even an object is a ``bad_message``
    (:func:`action_is_object`, checked by the gateway when the game refused it)."""

    game_id: GameId
    action: msgspec.Raw
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

#: The client message classes, in the gateway's handler-table order.
CLIENT_MESSAGES: tuple[type[_Message], ...] = (
    Hello,
    Subscribe,
    Unsubscribe,
    SubscribeLobby,
    UnsubscribeLobby,
    Action,
    Chat,
    Ping,
    Auth,
)
#: Their ``type`` tags, in the same order.
CLIENT_TYPES: tuple[str, ...] = tuple(str(cls.__struct_config__.tag) for cls in CLIENT_MESSAGES)

_decoder = msgspec.json.Decoder(ClientMessage)


def decode_client(data: str | bytes) -> ClientMessage:
    """One client message; raises ``msgspec.DecodeError`` (or ``ValidationError``)."""
    return _decoder.decode(data)


def action_is_object(action: msgspec.Raw) -> bool:
    """Whether an :class:`Action`'s raw ``action`` is a JSON object (the gateway checks it
    only when the game refused the action: a non-object is a ``bad_message``)."""
    return bytes(action)[:1] == b"{"


# == server -> client ==========================================================================


class _Frame(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", omit_defaults=True):
    """Base of every server frame. Optional fields default to ``UNSET`` and are left out
    of the JSON; a field set to None is sent as ``null``."""


class UserRef(msgspec.Struct, frozen=True):
    """A user as frames show one: ``{id, name}`` (``name`` null when unknown)."""

    id: int
    name: str | None


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """The connection's limits, in ``welcome`` (see docs/protocol.md, "Limits")."""

    max_msg_size: int
    msg_rate: float
    msg_burst: float
    chat_rate: float | None
    chat_burst: float | None
    max_chat_chars: int
    max_subscriptions: int


class Welcome(_Frame, frozen=True, kw_only=True, tag="welcome"):
    """The first frame of every connection."""

    user: UserRef | None
    server_time: int
    protocol: str
    instance: str | None
    limits: Limits


class Ack(_Frame, frozen=True, kw_only=True, tag="ack"):
    """The answer to a client message with its ``id``; the other fields depend on the
    message (see docs/protocol.md, "Client → server"). An action's ack carries the
    ``seq`` of its last event, not the events: the mover gets them as ``event`` frames
    like every subscriber (just before the ack, in the same write)."""

    id: Any
    game_id: int | UnsetType = UNSET
    seq: int | UnsetType | None = UNSET
    watchers: int | UnsetType = UNSET
    chat_id: int | UnsetType = UNSET
    resumed: dict[str, int] | UnsetType = UNSET
    user: UserRef | UnsetType = UNSET
    exp: int | UnsetType = UNSET


class Error(_Frame, frozen=True, kw_only=True, tag="error"):
    """A refused message: ``error`` is the HTTP error body's object (``code``,
    ``message``, details)."""

    id: Any
    error: dict[str, Any]


class State(_Frame, frozen=True, kw_only=True, tag="state"):
    """The whole game on subscribing (``view``: :class:`goapp.game.state.GameView`)."""

    game_id: int
    seq: int
    view: Any


class Event(_Frame, frozen=True, kw_only=True, tag="event"):
    """One committed event of a game. Its bytes are built by :func:`event_json` (the hot
    path); this struct is their shape, for clients and tests."""

    game_id: int
    seq: int
    kind: str
    payload: Any


class Lobby(_Frame, frozen=True, kw_only=True, tag="lobby"):
    """A lobby event: ``kind`` ``challenge_created``, ``challenge_accepted``,
    ``challenge_cancelled``, ``challenge_declined``; ``payload`` the challenge."""

    kind: str
    payload: dict[str, Any]


class ChatLine(_Frame, frozen=True, kw_only=True, tag="chat"):
    """A chat line, to the room's subscribers."""

    room: str
    id: int
    user: UserRef
    text: str
    created: str


class Presence(_Frame, frozen=True, kw_only=True, tag="presence"):
    """Who is there. In the lobby: the ``online`` snapshot on subscribing, or a
    ``joined``/``left`` delta, with the ``users`` and ``guests`` counts. In a game:
    ``game_id`` and its ``watchers``."""

    online: list[UserRef] | UnsetType = UNSET
    joined: list[UserRef] | UnsetType = UNSET
    left: list[UserRef] | UnsetType = UNSET
    users: int | UnsetType = UNSET
    guests: int | UnsetType = UNSET
    game_id: int | UnsetType = UNSET
    watchers: int | UnsetType = UNSET


class Pong(_Frame, frozen=True, kw_only=True, tag="pong"):
    id: Any
    t: float | None
    server_time: int


class Notify(_Frame, frozen=True, kw_only=True, tag="notify"):
    """``your_move`` in a correspondence game: to every connection of the player to move."""

    kind: Literal["your_move"]
    game_id: int
    opponent: UserRef | None
    deadline_ms: int | None


class Automatch(_Frame, frozen=True, kw_only=True, tag="automatch"):
    """An automatch request was ``paired`` or ``cancelled`` (see goapp.match.service)."""

    kind: Literal["paired", "cancelled"]
    payload: dict[str, Any]


ServerFrame = (
    Welcome | Ack | Error | State | Event | Lobby | ChatLine | Presence | Pong | Notify | Automatch
)

#: The server frame classes and their ``type`` tags.
SERVER_FRAMES: tuple[type[_Frame], ...] = (
    Welcome,
    Ack,
    Error,
    State,
    Event,
    Lobby,
    ChatLine,
    Presence,
    Pong,
    Notify,
    Automatch,
)
SERVER_TYPES: tuple[str, ...] = tuple(str(cls.__struct_config__.tag) for cls in SERVER_FRAMES)

_encode = msgspec.json.Encoder().encode
_server_decoder = msgspec.json.Decoder(ServerFrame)


def encode(frame: _Frame) -> bytes:
    """The JSON of a server frame."""
    return _encode(frame)


def encode_frame(frame: _Frame) -> bytes:
    """A server frame as one WebSocket text frame, ready to write."""
    return encode_ws_text_frame(_encode(frame))


def decode_server(data: str | bytes) -> ServerFrame:
    """A server frame read back (clients in Python, the load generator, tests)."""
    return _server_decoder.decode(data)


# == the hot path: committed events ============================================================


class LoggedEvent(Protocol):
    """A committed event as the fan-out sees it (:class:`goapp.game.events.StoredEvent`,
    or the store's own record)."""

    @property
    def game_id(self) -> int: ...
    @property
    def seq(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def payload(self) -> Any: ...


def event_json(event: LoggedEvent) -> bytes:
    """The body of an event's WebSocket frame (an :class:`Event`): ``{"type": "event",
    "game_id", "seq", "kind", "payload"}``. Built once per event and passed on as bytes by
    the bus and the fan-out."""
    return orjson.dumps(
        {
            "type": "event",
            "game_id": event.game_id,
            "seq": event.seq,
            "kind": event.kind,
            "payload": event.payload,
        }
    )


def event_frame(event: LoggedEvent) -> bytes:
    """The WebSocket frame of one committed event (the payload holds ``at_ms`` and, for
    clocked events, ``clock`` with both players' time and ``server_ms``)."""
    return encode_ws_text_frame(event_json(event))
