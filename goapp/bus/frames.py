"""The pieces of the wire format that the fan-out needs, below the server.

The hub and the bus send an event's JSON (:func:`event_json`) and its WebSocket frame
(:func:`event_frame`), and route chat by room (:func:`room_game_id`, which
:mod:`goapp.server.protocol` re-exports): here, so that the fan-out never imports the server.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

import orjson

from goapp._core import encode_ws_text_frame

__all__ = ["MAX_GAME_ID", "ROOM_RE", "LoggedEvent", "event_frame", "event_json", "room_game_id"]

MAX_GAME_ID = 2**63 - 1

#: A chat room: ``lobby`` or ``game:ID``, the id in ASCII digits. Never ``str.isdigit`` or
#: ``\\d`` (Unicode): ``game:`` with a fullwidth 3 would become game 3 under a room name history
#: never returns, and ``int("²")`` raises.
ROOM_RE = re.compile(r"lobby|game:[1-9][0-9]{0,18}")


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
    """The body of an event's WebSocket frame: ``{"type": "event", "game_id", "seq",
    "kind", "payload"}``."""
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
    """The WebSocket frame of one committed event: ``{"type": "event", "game_id", "seq",
    "kind", "payload"}`` (the payload holds ``at_ms`` and, for clocked events, ``clock``
    with both players' time and ``server_ms``)."""
    return encode_ws_text_frame(event_json(event))


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
