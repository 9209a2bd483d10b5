"""The in-process fan-out: frames to this instance's WebSocket connections.

:class:`Hub` is the registry of open connections (:class:`~goapp.bus.conn.Conn`) and the one
interface the server, the gateway and the Redis bus use; each job is a small part that it
composes:

* :mod:`goapp.bus.conn`: one connection, its writes and slow-client drops;
* :mod:`goapp.bus.subscriptions`: per-game subscriptions, the fan-out of committed events
  (the hot path), resume without gaps (buffering, then :meth:`Hub.go_live`), watcher counts;
* :mod:`goapp.bus.online`: who is online, presence deltas, the :attr:`Hub.on_presence`
  callbacks;
* :mod:`goapp.bus.lobby`: the lobby's subscribers and lobby events;
* :mod:`goapp.bus.rooms`: chat rooms;
* :mod:`goapp.bus.pinger`: the ping/idle timing wheel.

Several instances (:attr:`Hub.relay`, set by :class:`goapp.bus.redis.RedisBus`): lobby
events, chat, :meth:`Hub.send_user` frames and :meth:`Hub.disconnect_user` reach the
connections of every instance (each frame is delivered here first, then relayed; the
relay's ``deliver_*`` calls bring the other instances' frames in). Game events do not pass
through the relay: the bus hands them to :meth:`Hub.broadcast_body` in seq order.

The :attr:`Hub.on_presence` contract: ``callback(user_id, online)`` runs once per *global*
transition, on one instance only: ``True`` when the user's first connection anywhere opens,
``False`` when the last one anywhere closes (or when the instance holding it died and
another one reaped it). While Redis is down, and with one instance, the transitions are
this instance's own (so a user connected to two instances during an outage may be reported
offline by one of them). Callbacks must not block; schedule a task for anything that
awaits, and make what they do safe to repeat (conditional updates), since an outage can
repeat a transition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from goapp.bus.conn import WRITE_BUFFER_LIMIT, Conn
from goapp.bus.lobby import Lobby
from goapp.bus.online import OnlineUsers
from goapp.bus.pinger import Pinger
from goapp.bus.rooms import Rooms
from goapp.bus.subscriptions import GameSubscriptions
from goapp.obs.metrics import WS_CONNECTIONS
from goapp.protocol import LoggedEvent, Presence, ServerFrame, encode_frame

if TYPE_CHECKING:
    from goapp.bus.ports import Relay
    from goapp.game.events import StoredEvent
    from goapp.game.service import GameService

__all__ = ["Hub"]


class _Broadcast(Protocol):
    def __call__(self, game_id: int, seq: int, body: bytes) -> None: ...


class _BroadcastEvents(Protocol):
    def __call__(self, events: Iterable[LoggedEvent]) -> None: ...


class Hub:
    """Routes frames to subscribed connections: per game, the lobby, chat rooms, users."""

    #: :meth:`GameSubscriptions.broadcast_body`, bound here (the hot path: no extra call):
    #: one event (its JSON body) to the game's sockets; the bus calls it for events
    #: committed on other instances.
    broadcast_body: _Broadcast
    #: :meth:`GameSubscriptions.broadcast_events`, bound here: committed events to their
    #: games' sockets.
    broadcast_events: _BroadcastEvents

    def __init__(
        self,
        *,
        write_buffer_limit: int = WRITE_BUFFER_LIMIT,
        ping_interval: float = 20.0,
        idle_timeout: float = 60.0,
        tick: float = 0.1,
    ) -> None:
        self.write_buffer_limit = write_buffer_limit
        self.conns: set[Conn] = set()
        self.game_subs = GameSubscriptions()
        self.lobby_subs = Lobby(self.conns)
        self.users = OnlineUsers(self.lobby_subs)
        self.rooms = Rooms(self.lobby_subs, self.game_subs)
        self.pinger = Pinger(
            self.conns, ping_interval=ping_interval, idle_timeout=idle_timeout, tick=tick
        )
        self.broadcast_body = self.game_subs.broadcast_body
        self.broadcast_events = self.game_subs.broadcast_events
        self._relay: Relay | None = None

    # -- state, as the server, the bus and the tests read it ------------------------------

    @property
    def relay(self) -> Relay | None:
        """The other instances (set by :class:`goapp.bus.redis.RedisBus`); None: one
        instance."""
        return self._relay

    @relay.setter
    def relay(self, relay: Relay | None) -> None:
        self._relay = relay
        self.game_subs.relay = relay
        self.lobby_subs.relay = relay
        self.users.relay = relay
        self.rooms.relay = relay

    @property
    def games(self) -> dict[int, dict[Conn, list[tuple[int, bytes]] | int]]:
        """Game id -> its subscriptions here (see :mod:`goapp.bus.subscriptions`)."""
        return self.game_subs.games

    @property
    def lobby(self) -> dict[Conn, None]:
        """The lobby's subscribers here."""
        return self.lobby_subs.subscribers

    @property
    def user_conns(self) -> dict[int, int]:
        """User id -> open connections here."""
        return self.users.user_conns

    @property
    def user_names(self) -> dict[int, str]:
        return self.users.user_names

    @property
    def guests(self) -> int:
        return self.users.guests

    @property
    def on_presence(self) -> list[Callable[[int, bool], None]]:
        """Called with ``(user_id, online)`` when a user's first connection opens (True) or
        the last one closes (False): anywhere, on one instance, while the relay is up; on
        this instance otherwise (see the module docstring). Callbacks must not block;
        schedule a task for anything that awaits. Not called for the connections a shutdown
        closes (:meth:`stop`): the server went away, not the player, who reconnects to
        another instance or after the restart."""
        return self.users.on_presence

    @property
    def stopping(self) -> bool:
        return self.users.stopping

    @property
    def ping_interval(self) -> float:
        return self.pinger.ping_interval

    @ping_interval.setter
    def ping_interval(self, value: float) -> None:
        self.pinger.ping_interval = value

    @property
    def idle_timeout(self) -> float:
        return self.pinger.idle_timeout

    @idle_timeout.setter
    def idle_timeout(self, value: float) -> None:
        self.pinger.idle_timeout = value

    @property
    def tick(self) -> float:
        return self.pinger.tick

    @tick.setter
    def tick(self, value: float) -> None:
        self.pinger.tick = value

    # -- lifecycle -------------------------------------------------------------------------

    def attach(self, games: GameService) -> None:
        """Register :meth:`on_events` as a hook of ``games`` (once)."""
        if self.on_events not in games.on_events:
            games.on_events.append(self.on_events)

    async def on_events(self, events: list[StoredEvent]) -> None:
        """The ``GameService.on_events`` hook: fan each event out to its game's sockets."""
        self.broadcast_events(events)

    def start(self) -> None:
        """Start the ping/idle ticker (idempotent)."""
        self.pinger.start()

    async def stop(self) -> None:
        """Stop the ticker and close every connection with 1001 (going away)."""
        self.users.stopping = True
        await self.pinger.stop()
        tasks = []
        for conn in list(self.conns):
            conn.close(1001, "server shutting down")
            if conn.close_task is not None:
                tasks.append(conn.close_task)
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    # -- connections -----------------------------------------------------------------------

    def register(self, conn: Conn) -> None:
        conn.limit = self.write_buffer_limit
        self.conns.add(conn)
        WS_CONNECTIONS.inc()
        self.pinger.add(conn)
        self.users.joined(conn)

    def unregister(self, conn: Conn) -> None:
        """Forget ``conn`` everywhere (the gateway calls this when the socket ends)."""
        if conn not in self.conns:
            return
        conn.closed = True
        self.conns.discard(conn)
        WS_CONNECTIONS.dec()
        if conn.expiry is not None:
            conn.expiry.cancel()
            conn.expiry = None
        self.pinger.remove(conn)
        for game_id in list(conn.games):
            self.game_subs.unsubscribe(conn, game_id)
        self.lobby_subs.subscribers.pop(conn, None)
        self.users.left(conn)

    def set_user(self, conn: Conn, user_id: int, name: str) -> None:
        """A guest connection authenticated (``auth`` message)."""
        self.users.set_user(conn, user_id, name)

    # -- users -----------------------------------------------------------------------------

    def send_user(self, user_id: int, frame: ServerFrame) -> int:
        """Send ``frame`` to every connection of ``user_id`` on every instance (notifications,
        automatch pairings); returns how many connections here got it."""
        data = encode_frame(frame)
        if self._relay is not None:
            self._relay.user(user_id, data)
        return self.deliver_user(user_id, data)

    def deliver_user(self, user_id: int, frame: bytes) -> int:
        n = 0
        for conn in list(self.conns):
            if conn.user_id == user_id and conn.send(frame):
                n += 1
        return n

    def disconnect_user(self, user_id: int, code: int = 1008, reason: str = "logged out") -> int:
        """Close every connection of ``user_id`` (logout, ban), on every instance; returns
        how many were closed here."""
        if self._relay is not None:
            self._relay.disconnect(user_id, code, reason)
        return self.deliver_disconnect(user_id, code, reason)

    def deliver_disconnect(self, user_id: int, code: int, reason: str) -> int:
        n = 0
        for conn in list(self.conns):
            if conn.user_id == user_id and not conn.closed:
                conn.close(code, reason, reason="logout")
                n += 1
        return n

    # -- presence (goapp.bus.online) -------------------------------------------------------

    def deliver_presence(self, user_id: int, name: str, online: bool, *, fire: bool) -> None:
        self.users.deliver_presence(user_id, name, online, fire=fire)

    def is_online(self, user_id: int) -> bool:
        """Whether ``user_id`` has an open connection: on any instance while the relay is
        up, on this one otherwise."""
        return self.users.presence_of(user_id) is True

    def presence_of(self, user_id: int) -> bool | None:
        """:meth:`is_online`, or None when it cannot be known: another instance may hold the
        user's connection while the relay is down."""
        return self.users.presence_of(user_id)

    def online(self) -> list[dict[str, Any]]:
        return self.users.online()

    def presence_snapshot(self) -> Presence:
        return self.users.snapshot()

    # -- games (goapp.bus.subscriptions) ---------------------------------------------------

    def subscribe_game(self, conn: Conn, game_id: int) -> None:
        """Subscribe in buffering mode: live events are kept until :meth:`go_live`."""
        self.game_subs.subscribe(conn, game_id)

    def go_live(self, conn: Conn, game_id: int, sent_seq: int) -> None:
        """Send the buffered events after ``sent_seq`` and switch to live delivery of the
        events after the last one sent."""
        self.game_subs.go_live(conn, game_id, sent_seq)

    def unsubscribe_game(self, conn: Conn, game_id: int) -> None:
        self.game_subs.unsubscribe(conn, game_id)

    def send_game_frame(self, game_id: int, frame: bytes) -> None:
        self.game_subs.send_frame(game_id, frame)

    def watchers(self, game_id: int) -> int:
        return self.game_subs.watchers(game_id)

    def deliver_watchers(self, game_id: int) -> None:
        self.game_subs.deliver_watchers(game_id)

    # -- lobby and chat (goapp.bus.lobby, goapp.bus.rooms) ---------------------------------

    def subscribe_lobby(self, conn: Conn) -> None:
        self.lobby_subs.subscribe(conn)

    def unsubscribe_lobby(self, conn: Conn) -> None:
        self.lobby_subs.unsubscribe(conn)

    def publish_lobby(
        self, kind: str, payload: dict[str, Any], *, only: Iterable[int] | None = None
    ) -> None:
        """A lobby event, on every instance (see :meth:`goapp.bus.lobby.Lobby.publish`)."""
        self.lobby_subs.publish(kind, payload, only=only)

    def deliver_lobby(self, frame: bytes, direct: set[int], private: bool = False) -> None:
        self.lobby_subs.deliver(frame, direct, private)

    def send_lobby_frame(self, frame: Presence) -> None:
        """A ``presence`` frame to this instance's lobby subscribers (not relayed)."""
        self.lobby_subs.send_presence(frame)

    def publish_room(self, room: str, frame: bytes) -> None:
        """A chat frame for ``"lobby"`` or ``"game:ID"`` (on every instance)."""
        self.rooms.publish(room, frame)

    def deliver_room(self, room: str, frame: bytes) -> None:
        self.rooms.deliver(room, frame)
