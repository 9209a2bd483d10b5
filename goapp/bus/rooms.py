"""Chat rooms: ``lobby`` (the lobby's subscribers) and ``game:ID`` (the game's live
subscribers), on every instance."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from goapp.protocol import room_game_id

if TYPE_CHECKING:
    from goapp.bus.lobby import Lobby
    from goapp.bus.ports import Relay
    from goapp.bus.subscriptions import GameSubscriptions

__all__ = ["Rooms"]

log = logging.getLogger("goapp.ws")


class Rooms:
    """Routes a chat frame to the sockets of its room."""

    def __init__(self, lobby: Lobby, games: GameSubscriptions) -> None:
        self.lobby = lobby
        self.games = games
        #: the other instances (the hub sets it); None: one instance
        self.relay: Relay | None = None

    def publish(self, room: str, frame: bytes) -> None:
        """A chat frame for ``"lobby"`` or ``"game:ID"`` (on every instance)."""
        if self.relay is not None:
            self.relay.room(room, frame)
        self.deliver(room, frame)

    def deliver(self, room: str, frame: bytes) -> None:
        """A chat frame, published here or on another instance, to this instance's sockets."""
        try:
            game_id = room_game_id(room)
        except ValueError:
            log.warning("chat for an unknown room dropped", extra={"room": room[:40]})
            return
        if game_id is None:
            self.lobby.send(frame)
        else:
            self.games.send_frame(game_id, frame)
