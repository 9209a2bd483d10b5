"""Who is online: a count of connections per user (guests are only counted), the presence
deltas to the lobby, and the ``on_presence`` callbacks.

A user's first connection opening or last one closing is a transition: the lobby's sockets
get a delta (``{"type": "presence", "joined"|"left": [...], "users", "guests"}``), and the
callbacks run (see :attr:`OnlineUsers.on_presence` and the contract in
:mod:`goapp.bus.hub`). With a relay (several instances), the relay decides whether a local
transition is a global one (:meth:`goapp.bus.ports.Relay.presence`) and reports it back
through :meth:`OnlineUsers.deliver_presence`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from goapp.protocol import Presence, UserRef

if TYPE_CHECKING:
    from goapp.bus.conn import Conn
    from goapp.bus.lobby import Lobby
    from goapp.bus.ports import Relay

__all__ = ["OnlineUsers"]

log = logging.getLogger("goapp.ws")


class OnlineUsers:
    """The users and guests connected here, and what the lobby is told about them."""

    def __init__(self, lobby: Lobby) -> None:
        self.lobby = lobby
        self.user_conns: dict[int, int] = {}
        self.user_names: dict[int, str] = {}
        self.guests = 0
        #: Called with ``(user_id, online)`` when a user's first connection opens (True) or
        #: the last one closes (False): anywhere, on one instance, while the relay is up;
        #: on this instance otherwise (see :mod:`goapp.bus.hub`). Callbacks must not block;
        #: schedule a task for anything that awaits. Not called once :attr:`stopping`.
        self.on_presence: list[Callable[[int, bool], None]] = []
        #: set by the hub's shutdown: the server went away, not the players
        self.stopping = False
        #: the other instances (the hub sets it); None: one instance
        self.relay: Relay | None = None

    # -- connections -----------------------------------------------------------------------

    def joined(self, conn: Conn) -> None:
        """``conn`` was registered."""
        if conn.user_id is None:
            self.guests += 1
        else:
            self._user_joined(conn.user_id, conn.name or "")

    def left(self, conn: Conn) -> None:
        """``conn`` was unregistered."""
        if conn.user_id is None:
            self.guests -= 1
        else:
            self._user_left(conn.user_id)

    def set_user(self, conn: Conn, user_id: int, name: str) -> None:
        """A guest connection authenticated (``auth`` message)."""
        if conn.user_id == user_id:
            conn.name = name
            return
        if conn.user_id is None:
            self.guests -= 1
        else:
            self._user_left(conn.user_id)
        conn.user_id, conn.name = user_id, name
        self._user_joined(user_id, name)

    def _user_joined(self, user_id: int, name: str) -> None:
        count = self.user_conns.get(user_id, 0)
        self.user_conns[user_id] = count + 1
        self.user_names[user_id] = name
        if count == 0:
            relay = self.relay
            if relay is not None and relay.presence(user_id, name, True):
                return  # the relay reports the global transition (deliver_presence)
            self.deliver_presence(user_id, name, True, fire=True)

    def _user_left(self, user_id: int) -> None:
        count = self.user_conns.get(user_id, 0) - 1
        if count > 0:
            self.user_conns[user_id] = count
            return
        self.user_conns.pop(user_id, None)
        name = self.user_names.pop(user_id, "")
        relay = self.relay
        if relay is not None and relay.presence(user_id, name, False):
            return
        self.deliver_presence(user_id, name, False, fire=True)

    # -- transitions -----------------------------------------------------------------------

    def deliver_presence(self, user_id: int, name: str, online: bool, *, fire: bool) -> None:
        """A user came online or went offline: a delta to the lobby's sockets and, with
        ``fire``, the :attr:`on_presence` callbacks (on one instance only)."""
        if fire:
            self._presence_changed(user_id, online)
        who = [UserRef(user_id, name)]
        users, guests = self._counts()
        if online:
            self.lobby.send_presence(Presence(joined=who, users=users, guests=guests))
        else:
            self.lobby.send_presence(Presence(left=who, users=users, guests=guests))

    def _presence_changed(self, user_id: int, online: bool) -> None:
        if self.stopping:
            return
        for callback in list(self.on_presence):
            try:
                callback(user_id, online)
            except Exception:
                log.exception("a presence callback failed")

    # -- queries ---------------------------------------------------------------------------

    def presence_of(self, user_id: int) -> bool | None:
        """Whether ``user_id`` has an open connection: on any instance while the relay is
        up, on this one without a relay; None when it cannot be known (another instance may
        hold the user's connection while the relay is down)."""
        if user_id in self.user_conns:
            return True
        relay = self.relay
        if relay is None:
            return False
        return user_id in relay.online_users() if relay.up else None

    def _online_names(self) -> dict[int, str]:
        relay = self.relay
        if relay is None or not relay.up:
            return self.user_names
        return {**relay.online_users(), **self.user_names}

    def _counts(self) -> tuple[int, int]:
        """How many users and guests are online."""
        relay = self.relay
        if relay is None or not relay.up:
            return len(self.user_conns), self.guests
        return len(self._online_names()), self.guests + relay.remote_guests()

    def online(self) -> list[dict[str, Any]]:
        """Users with at least one open connection (on any instance while the relay is up):
        ``[{"id", "name"}]`` by id."""
        names = self._online_names()
        return [{"id": uid, "name": names[uid]} for uid in sorted(names)]

    def snapshot(self) -> Presence:
        """The lobby's ``presence`` frame on subscribing: everyone online, and the counts."""
        names = self._online_names()
        users, guests = self._counts()
        online = [UserRef(uid, names[uid]) for uid in sorted(names)]
        return Presence(online=online, users=users, guests=guests)
