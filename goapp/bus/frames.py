"""The pieces of the wire format that the fan-out needs: they live in :mod:`goapp.protocol`
(an event's JSON, :func:`event_json`, and its frame, :func:`event_frame`; the chat rooms,
:func:`room_game_id`) and are re-exported here for the code that imports this path."""

from __future__ import annotations

from goapp.protocol import (
    MAX_GAME_ID,
    ROOM_RE,
    LoggedEvent,
    event_frame,
    event_json,
    room_game_id,
)

__all__ = ["MAX_GAME_ID", "ROOM_RE", "LoggedEvent", "event_frame", "event_json", "room_game_id"]
