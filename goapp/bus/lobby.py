"""The lobby: the connections subscribed to it, and the lobby events (challenges, presence
deltas) sent to them and to the users they are addressed to."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from goapp.protocol import Lobby as LobbyFrame
from goapp.protocol import Presence, encode_frame

if TYPE_CHECKING:
    from goapp.bus.conn import Conn
    from goapp.bus.ports import Relay

__all__ = ["Lobby"]


class Lobby:
    """The lobby's subscribers; ``conns`` is every connection of this instance (the hub's
    set, shared): addressed events reach users who are not subscribed."""

    def __init__(self, conns: set[Conn]) -> None:
        self.conns = conns
        self.subscribers: dict[Conn, None] = {}
        #: the other instances (the hub sets it); None: one instance
        self.relay: Relay | None = None

    def subscribe(self, conn: Conn) -> None:
        self.subscribers[conn] = None
        conn.lobby = True

    def unsubscribe(self, conn: Conn) -> None:
        self.subscribers.pop(conn, None)
        conn.lobby = False

    def publish(self, kind: str, payload: dict[str, Any], *, only: Iterable[int] | None) -> None:
        """Send a lobby event (challenge created/accepted/cancelled, ...) to every connection
        subscribed to the lobby: ``{"type": "lobby", "kind": kind, "payload": payload}``.

        The users it is addressed to (``payload["target"]["id"]``, ``black_id``,
        ``white_id``: the target of a direct challenge, the players of an accepted one) get
        it on every connection, subscribed to the lobby or not. With ``only`` (the two
        parties of a direct challenge) those users' connections get it and nobody else:
        a private offer is not the lobby's business."""
        frame = encode_frame(LobbyFrame(kind=kind, payload=payload))
        private = only is not None
        direct = set(only) if only is not None else addressees(payload)
        if self.relay is not None:
            self.relay.lobby(frame, direct, private)
        self.deliver(frame, direct, private)

    def deliver(self, frame: bytes, direct: set[int], private: bool = False) -> None:
        """A lobby event's frame, published here or on another instance (see :meth:`publish`)."""
        lobby = self.subscribers
        if not private:
            for conn in list(lobby):
                conn.send(frame)
        if direct:
            for conn in list(self.conns):
                if conn.user_id in direct and (private or conn not in lobby):
                    conn.send(frame)

    def send_presence(self, frame: Presence) -> None:
        """A ``presence`` frame to this instance's subscribers; not relayed."""
        if not self.subscribers:
            return
        self.send(encode_frame(frame))

    def send(self, frame: bytes) -> None:
        """A frame to this instance's subscribers (presence, lobby chat); not relayed."""
        for conn in list(self.subscribers):
            conn.send(frame)


def addressees(payload: Any) -> set[int]:
    """User ids a lobby event is addressed to (see :meth:`Lobby.publish`)."""
    out: set[int] = set()
    if not isinstance(payload, dict):
        return out
    target = payload.get("target")
    if isinstance(target, dict) and isinstance(target.get("id"), int):
        out.add(target["id"])
    for key in ("target_id", "black_id", "white_id"):
        value = payload.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            out.add(value)
    return out
