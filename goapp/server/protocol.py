"""The WebSocket protocol, as the server used to import it: it moved to :mod:`goapp.protocol`
(below the server, so that the game, automatch and the fan-out build their frames from the
same structs). Re-exported here for the code that still imports this path."""

from __future__ import annotations

from goapp.protocol import (
    MAX_GAME_ID,
    MAX_ID_CHARS,
    MAX_LAG_MS,
    PROTOCOL,
    ROOM_RE,
    Action,
    Auth,
    Chat,
    ClientMessage,
    Error,
    Hello,
    Ping,
    Subscribe,
    SubscribeLobby,
    Unsubscribe,
    UnsubscribeLobby,
    decode_client,
    encode,
    encode_frame,
    room_game_id,
    server_time_ms,
)

__all__ = [
    "MAX_GAME_ID",
    "MAX_ID_CHARS",
    "MAX_LAG_MS",
    "PROTOCOL",
    "ROOM_RE",
    "Action",
    "Auth",
    "Chat",
    "ClientMessage",
    "Error",
    "Hello",
    "Ping",
    "Subscribe",
    "SubscribeLobby",
    "Unsubscribe",
    "UnsubscribeLobby",
    "decode_client",
    "encode",
    "encode_frame",
    "error_frame",
    "room_game_id",
    "server_time_ms",
]


def error_frame(msg_id: str | int | None, body: dict[str, object]) -> bytes:
    """``{"type": "error", "id": ..., "error": {...}}`` from a :func:`describe` body."""
    return encode(Error(id=msg_id, error=body["error"]))  # type: ignore[arg-type]
