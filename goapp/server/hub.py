"""Fan-out of committed events to WebSocket connections (the in-process bus).

How an event reaches the sockets
================================

:meth:`Hub.on_events` is registered as a :attr:`GameService.on_events` hook: it runs after
the commit, under the game's lock, so it never awaits. For each event it builds the JSON once
(orjson) and the WebSocket frame once (:func:`goapp._core.encode_ws_text_frame`: unmasked,
uncompressed, so the gateway's responses use ``compress=False``), then hands the same bytes
to every subscriber's transport with ``transport.write``. Nothing in the loop awaits, so one
slow client never stalls the others.

Slow clients: when a transport's write buffer passes :attr:`Hub.write_buffer_limit`
(256 KiB) after a write, the connection is aborted at once (``transport.abort()``; metric
``goapp_ws_dropped_total{reason="slow"}``); the client reconnects and resumes with
``since=seq``.

Resume without gaps: a subscription starts *buffering* (:meth:`Hub.subscribe_game`): live
events are kept in a per-subscription list while the gateway sends the full state or replays
the log; :meth:`Hub.go_live` then sends the buffered events newer than what was sent and
switches the subscription to live delivery with that seq as a floor: an event committed
before the replay read the log but published (its hook called) after it is skipped. Every
event carries ``seq``: nothing is missed, nothing is sent twice.

Liveness: one background task (:meth:`Hub.run_ticker`) walks a timing wheel: each connection
sits in one of ``ping_interval / tick`` buckets and each tick handles one bucket, so the
WebSocket pings of 10k connections are spread evenly instead of firing in one loop iteration
(see FACTS: aiohttp's heartbeat bunches timers and triggers full GCs). A connection that has
sent nothing (not even a pong) for ``idle_timeout`` seconds is closed with 1001.

Presence: users online (a count of connections per user; guests are only counted) go to
lobby subscribers as deltas when a user's first connection opens or last one closes; each
game's watcher count (of this instance) goes to its subscribers when it changes.

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
import contextlib
import logging
import time
from asyncio import current_task
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from goapp._core import encode_ws_frame, encode_ws_text_frame
from goapp.bus.frames import event_json, room_game_id
from goapp.obs.metrics import BROADCAST_DURATION, WS_CONNECTIONS, WS_DROPPED

if TYPE_CHECKING:
    from aiohttp import web

    from goapp.game.events import StoredEvent
    from goapp.game.service import GameService

__all__ = ["Conn", "Hub", "event_frame", "event_json"]

log = logging.getLogger("goapp.ws")

WRITE_BUFFER_LIMIT = 256 * 1024
PING_FRAME = encode_ws_frame(0x9, b"")
_DROPPED_SLOW = WS_DROPPED.labels(reason="slow")


class Relay(Protocol):
    """The other instances, as the hub sees them (:class:`goapp.bus.redis.RedisBus` is one).

    The hub delivers every frame to its own connections first, then hands it to the relay,
    which publishes it; the relay delivers what other instances publish through the hub's
    ``deliver_*`` methods. Without a relay (one instance) the hub is the whole bus."""

    @property
    def up(self) -> bool: ...
    def unwatch(self, game_id: int) -> None: ...
    def lobby(self, frame: bytes, direct: set[int], private: bool) -> None: ...
    def room(self, room: str, frame: bytes) -> None: ...
    def user(self, user_id: int, frame: bytes) -> None: ...
    def disconnect(self, user_id: int, code: int, reason: str) -> None: ...
    def presence(self, user_id: int, name: str, online: bool) -> bool: ...
    def online_users(self) -> dict[int, str]: ...
    def remote_guests(self) -> int: ...
    def watchers(self, game_id: int, local: int) -> None: ...
    def remote_watchers(self, game_id: int) -> int: ...


class Transport(Protocol):
    """What the hub needs of a transport (asyncio's and uvloop's have it)."""

    def write(self, data: bytes) -> None: ...
    def get_write_buffer_size(self) -> int: ...
    def is_closing(self) -> bool: ...
    def abort(self) -> None: ...


class Conn:
    """One open WebSocket, as the hub sees it. ``__slots__`` keeps 10k of them small."""

    __slots__ = (
        "close_task",
        "closed",
        "credits",
        "credits_at",
        "done",
        "expiry",
        "games",
        "held",
        "holder",
        "last_seen",
        "limit",
        "lobby",
        "name",
        "slot",
        "transport",
        "user_id",
        "ws",
    )

    def __init__(
        self,
        transport: Transport,
        ws: web.WebSocketResponse | None = None,
        user_id: int | None = None,
        name: str | None = None,
        limit: int = WRITE_BUFFER_LIMIT,
    ) -> None:
        self.transport = transport
        self.ws = ws
        self.user_id = user_id
        self.name = name
        self.limit = limit
        self.games: set[int] = set()
        self.lobby = False
        self.closed = False
        now = time.monotonic()
        self.last_seen = now
        self.credits = 0.0
        self.credits_at = now
        self.expiry: asyncio.TimerHandle | None = None
        self.close_task: asyncio.Task[Any] | None = None
        self.slot = 0
        #: the task applying this connection's action (see :meth:`hold_for`), and the
        #: frames held for it until its ack
        self.holder: asyncio.Task[Any] | None = None
        self.held: list[bytes] | None = None
        #: resolved when the connection is over (closed, dropped, or the peer went away):
        #: the gateway's handler waits on it (set by the gateway; None for bare conns)
        self.done: asyncio.Future[None] | None = None

    def finish(self) -> None:
        """Mark the connection over: the gateway's handler returns and unregisters it."""
        self.closed = True
        done = self.done
        if done is not None and not done.done():
            done.set_result(None)

    def hold_for(self, task: asyncio.Task[Any] | None) -> None:
        """While ``task`` applies this connection's action, the event frames it publishes
        for this connection are held (:meth:`Hub.broadcast_body`) and written with the
        action's ack in one ``write`` (:meth:`release`): the mover gets its own move as an
        event *and* an ack, and one syscall instead of two is a sixth of the socket writes
        of a move with three spectators. Frames for the other sockets are not delayed, nor
        are this socket's frames from other tasks until one is held (then they queue
        behind it, in order). :meth:`release` must follow, whatever happens."""
        self.holder = task

    def release(self, last: bytes = b"") -> bool:
        """Write the held frames followed by ``last`` (the ack or error), in one write."""
        held = self.held
        self.holder = self.held = None
        if held:
            if last:
                held.append(last)
            last = b"".join(held)
        return self.send(last) if last else not self.closed

    def send(self, frame: bytes) -> bool:
        """Write one pre-encoded frame; drop the connection if it cannot keep up. Returns
        False when the frame was not written (closed or dropped)."""
        if self.closed:
            return False
        if self.held is not None:  # an action's frames wait for its ack: keep the order
            self.held.append(frame)
            return True
        t = self.transport
        if t.is_closing():
            return False
        t.write(frame)
        if t.get_write_buffer_size() > self.limit:
            self.abort("slow")
            return False
        return True

    def send_json(self, obj: Any) -> bool:
        return self.send(encode_ws_text_frame(orjson.dumps(obj)))

    def abort(self, reason: str) -> None:
        """Close at once without a close frame (a client that does not read gets none)."""
        if self.closed:
            return
        self.finish()
        if reason == "slow":
            _DROPPED_SLOW.inc()
        else:
            WS_DROPPED.labels(reason=reason).inc()
        self.transport.abort()

    def close(self, code: int, message: str, reason: str | None = None) -> None:
        """Start a clean close (close frame with ``code``); safe from callbacks."""
        if self.closed:
            return
        self.finish()
        if reason is not None:
            WS_DROPPED.labels(reason=reason).inc()
        if self.ws is None:
            self.transport.abort()
            return
        self.close_task = asyncio.get_running_loop().create_task(
            self.ws.close(code=code, message=message.encode()[:123])
        )


def event_frame(event: StoredEvent) -> bytes:
    """The WebSocket frame of one committed event: ``{"type": "event", "game_id", "seq",
    "kind", "payload"}`` (the payload holds ``at_ms`` and, for clocked events, ``clock``
    with both players' time and ``server_ms``)."""
    return encode_ws_text_frame(event_json(event))


class Hub:
    """Routes frames to subscribed connections: per game, the lobby, chat rooms."""

    def __init__(
        self,
        *,
        write_buffer_limit: int = WRITE_BUFFER_LIMIT,
        ping_interval: float = 20.0,
        idle_timeout: float = 60.0,
        tick: float = 0.1,
    ) -> None:
        self.write_buffer_limit = write_buffer_limit
        self.ping_interval = ping_interval
        self.idle_timeout = idle_timeout
        self.tick = tick
        self.conns: set[Conn] = set()
        # game id -> {conn: floor (live: only seqs above it are sent) or
        #             [(seq, frame), ...] (buffering while the gateway replays)}
        self.games: dict[int, dict[Conn, list[tuple[int, bytes]] | int]] = {}
        self.lobby: dict[Conn, None] = {}
        self.user_conns: dict[int, int] = {}
        self.user_names: dict[int, str] = {}
        self.guests = 0
        self._wheel: list[set[Conn]] = [set()]
        self._next_slot = 0
        self._ticker: asyncio.Task[None] | None = None
        #: Called with ``(user_id, online)`` when a user's first connection opens (True) or
        #: the last one closes (False): anywhere, on one instance, while the relay is up;
        #: on this instance otherwise (see the module docstring). Callbacks must not block;
        #: schedule a task for anything that awaits. Not called for the connections a
        #: shutdown closes (:meth:`stop`): the server went away, not the player, who
        #: reconnects to another instance or after the restart.
        self.on_presence: list[Callable[[int, bool], None]] = []
        self.stopping = False
        #: The other instances (set by :class:`goapp.bus.redis.RedisBus`); None: one instance.
        self.relay: Relay | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def attach(self, games: GameService) -> None:
        """Register :meth:`on_events` as a hook of ``games`` (once)."""
        if self.on_events not in games.on_events:
            games.on_events.append(self.on_events)

    def start(self) -> None:
        """Start the ping/idle ticker (idempotent)."""
        if self._ticker is None or self._ticker.done():
            self._resize_wheel()
            self._ticker = asyncio.get_running_loop().create_task(
                self.run_ticker(), name="ws-ticker"
            )

    async def stop(self) -> None:
        """Stop the ticker and close every connection with 1001 (going away)."""
        self.stopping = True
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
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
        slot = self._next_slot % len(self._wheel)
        self._next_slot += 1
        conn.slot = slot
        self._wheel[slot].add(conn)
        if conn.user_id is None:
            self.guests += 1
        else:
            self._user_joined(conn.user_id, conn.name or "")

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
        for bucket in self._wheel:
            bucket.discard(conn)
        for game_id in list(conn.games):
            self.unsubscribe_game(conn, game_id)
        self.lobby.pop(conn, None)
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

    def disconnect_user(self, user_id: int, code: int = 1008, reason: str = "logged out") -> int:
        """Close every connection of ``user_id`` (logout, ban), on every instance; returns
        how many were closed here."""
        if self.relay is not None:
            self.relay.disconnect(user_id, code, reason)
        return self.deliver_disconnect(user_id, code, reason)

    def deliver_disconnect(self, user_id: int, code: int, reason: str) -> int:
        n = 0
        for conn in list(self.conns):
            if conn.user_id == user_id and not conn.closed:
                conn.close(code, reason, reason="logout")
                n += 1
        return n

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

    def deliver_presence(self, user_id: int, name: str, online: bool, *, fire: bool) -> None:
        """A user came online or went offline: a delta to the lobby's sockets and, with
        ``fire``, the :attr:`on_presence` callbacks (on one instance only)."""
        if fire:
            self._presence_changed(user_id, online)
        self.send_lobby_frame(
            {
                "type": "presence",
                "joined" if online else "left": [{"id": user_id, "name": name}],
                **self._counts(),
            }
        )

    def _presence_changed(self, user_id: int, online: bool) -> None:
        if self.stopping:
            return
        for callback in list(self.on_presence):
            try:
                callback(user_id, online)
            except Exception:
                log.exception("a presence callback failed")

    def is_online(self, user_id: int) -> bool:
        """Whether ``user_id`` has an open connection: on any instance while the relay is
        up, on this one otherwise."""
        return self.presence_of(user_id) is True

    def presence_of(self, user_id: int) -> bool | None:
        """:meth:`is_online`, or None when it cannot be known: another instance may hold the
        user's connection while the relay is down."""
        if user_id in self.user_conns:
            return True
        relay = self.relay
        if relay is None:
            return False
        return user_id in relay.online_users() if relay.up else None

    def send_user(self, user_id: int, obj: dict[str, Any]) -> int:
        """Send ``obj`` to every connection of ``user_id`` on every instance (notifications,
        automatch pairings); returns how many connections here got it."""
        frame = encode_ws_text_frame(orjson.dumps(obj))
        if self.relay is not None:
            self.relay.user(user_id, frame)
        return self.deliver_user(user_id, frame)

    def deliver_user(self, user_id: int, frame: bytes) -> int:
        n = 0
        for conn in list(self.conns):
            if conn.user_id == user_id and conn.send(frame):
                n += 1
        return n

    def _online_names(self) -> dict[int, str]:
        relay = self.relay
        if relay is None or not relay.up:
            return self.user_names
        return {**relay.online_users(), **self.user_names}

    def _counts(self) -> dict[str, int]:
        relay = self.relay
        if relay is None or not relay.up:
            return {"users": len(self.user_conns), "guests": self.guests}
        return {
            "users": len(self._online_names()),
            "guests": self.guests + relay.remote_guests(),
        }

    def online(self) -> list[dict[str, Any]]:
        """Users with at least one open connection (on any instance while the relay is up):
        ``[{"id", "name"}]`` by id."""
        names = self._online_names()
        return [{"id": uid, "name": names[uid]} for uid in sorted(names)]

    def presence_snapshot(self) -> dict[str, Any]:
        return {"type": "presence", "online": self.online(), **self._counts()}

    def watchers(self, game_id: int) -> int:
        """How many connections watch ``game_id`` (players included), on every instance
        while the relay is up (the others' counts as they last announced them)."""
        local = len(self.games.get(game_id, ()))
        if self.relay is None:
            return local
        return local + self.relay.remote_watchers(game_id)

    def deliver_watchers(self, game_id: int) -> None:
        """Another instance's count for ``game_id`` changed: tell the local watchers."""
        if game_id in self.games:
            self._send_count(game_id)

    # -- games -----------------------------------------------------------------------------

    def subscribe_game(self, conn: Conn, game_id: int) -> None:
        """Subscribe in buffering mode: live events are kept until :meth:`go_live`."""
        subs = self.games.get(game_id)
        if subs is None:
            subs = self.games[game_id] = {}
        new = conn not in subs
        subs[conn] = []
        conn.games.add(game_id)
        if new:
            self._send_watchers(game_id)

    def go_live(self, conn: Conn, game_id: int, sent_seq: int) -> None:
        """Send the buffered events after ``sent_seq`` and switch to live delivery of the
        events after the last one sent."""
        subs = self.games.get(game_id)
        if subs is None or conn not in subs:
            return
        buffered = subs[conn]
        floor = sent_seq
        if isinstance(buffered, list):
            for seq, frame in buffered:
                if seq > floor:
                    conn.send(frame)
                    floor = seq
        subs[conn] = floor

    def unsubscribe_game(self, conn: Conn, game_id: int) -> None:
        conn.games.discard(game_id)
        subs = self.games.get(game_id)
        if subs is None:
            return
        subs.pop(conn, None)  # may be gone already: dropped during a broadcast
        if subs:
            self._send_watchers(game_id)
        else:
            del self.games[game_id]
            if self.relay is not None:
                self.relay.watchers(game_id, 0)
                self.relay.unwatch(game_id)

    def _send_watchers(self, game_id: int) -> None:
        """This instance's count for ``game_id`` changed: announce it, tell the watchers."""
        if self.relay is not None:
            self.relay.watchers(game_id, len(self.games.get(game_id, ())))
        self._send_count(game_id)

    def _send_count(self, game_id: int) -> None:
        if self.games.get(game_id):
            frame = {"type": "presence", "game_id": game_id, "watchers": self.watchers(game_id)}
            self.send_game_frame(game_id, encode_ws_text_frame(orjson.dumps(frame)))

    async def on_events(self, events: list[StoredEvent]) -> None:
        """The ``GameService.on_events`` hook: fan each event out to its game's sockets."""
        self.broadcast_events(events)

    def broadcast_events(self, events: Iterable[StoredEvent]) -> None:
        for event in events:
            if event.game_id in self.games:
                self.broadcast_body(event.game_id, event.seq, event_json(event))

    def broadcast_body(self, game_id: int, seq: int, body: bytes) -> None:
        """Hand one event (its JSON ``body``, :func:`event_json`) to the game's sockets:
        buffered for subscriptions that are replaying, written to the live ones whose floor
        is below ``seq``. The bus calls this for events committed on other instances."""
        subs = self.games.get(game_id)
        if not subs:
            return
        t0 = time.perf_counter()
        frame = encode_ws_text_frame(body)
        dead = False
        for conn, floor in subs.items():
            if floor.__class__ is not int:
                floor.append((seq, frame))  # type: ignore[union-attr]
            elif seq > floor and not conn.closed:  # Conn.send, inlined
                if conn.holder is not None:  # acting: the mover's events go with its ack
                    if conn.held is not None:
                        conn.held.append(frame)  # (whoever publishes: keep the order)
                        continue
                    if conn.holder is current_task():
                        conn.held = [frame]
                        continue
                t = conn.transport
                if not t.is_closing():
                    t.write(frame)
                    if t.get_write_buffer_size() > conn.limit:
                        conn.abort("slow")
                        dead = True
        if dead:
            self._forget_closed(subs)
        BROADCAST_DURATION.observe(time.perf_counter() - t0)

    def send_game_frame(self, game_id: int, frame: bytes) -> None:
        """A frame for every live subscriber of a game (chat, watcher counts)."""
        subs = self.games.get(game_id)
        if subs:
            for conn, floor in list(subs.items()):
                if floor.__class__ is int:
                    conn.send(frame)

    @staticmethod
    def _forget_closed(subs: dict[Conn, Any]) -> None:
        # dropped connections stop receiving now; the gateway unregisters them fully
        for conn in [c for c in subs if c.closed]:
            del subs[conn]

    # -- lobby -----------------------------------------------------------------------------

    def subscribe_lobby(self, conn: Conn) -> None:
        self.lobby[conn] = None
        conn.lobby = True

    def unsubscribe_lobby(self, conn: Conn) -> None:
        self.lobby.pop(conn, None)
        conn.lobby = False

    def publish_lobby(
        self, kind: str, payload: dict[str, Any], *, only: Iterable[int] | None = None
    ) -> None:
        """Send a lobby event (challenge created/accepted/cancelled, ...) to every connection
        subscribed to the lobby: ``{"type": "lobby", "kind": kind, "payload": payload}``.

        The users it is addressed to (``payload["target"]["id"]``, ``black_id``,
        ``white_id``: the target of a direct challenge, the players of an accepted one) get
        it on every connection, subscribed to the lobby or not. With ``only`` (the two
        parties of a direct challenge) those users' connections get it and nobody else:
        a private offer is not the lobby's business."""
        frame = encode_ws_text_frame(
            orjson.dumps({"type": "lobby", "kind": kind, "payload": payload})
        )
        private = only is not None
        direct = set(only) if only is not None else _addressees(payload)
        if self.relay is not None:
            self.relay.lobby(frame, direct, private)
        self.deliver_lobby(frame, direct, private)

    def deliver_lobby(self, frame: bytes, direct: set[int], private: bool = False) -> None:
        lobby = self.lobby
        if not private:
            for conn in list(lobby):
                conn.send(frame)
        if direct:
            for conn in list(self.conns):
                if conn.user_id in direct and (private or conn not in lobby):
                    conn.send(frame)

    def send_lobby_frame(self, obj: dict[str, Any]) -> None:
        if not self.lobby:
            return
        frame = encode_ws_text_frame(orjson.dumps(obj))
        for conn in list(self.lobby):
            conn.send(frame)

    def publish_room(self, room: str, frame: bytes) -> None:
        """A chat frame for ``"lobby"`` or ``"game:ID"`` (on every instance)."""
        if self.relay is not None:
            self.relay.room(room, frame)
        self.deliver_room(room, frame)

    def deliver_room(self, room: str, frame: bytes) -> None:
        try:
            game_id = room_game_id(room)
        except ValueError:
            log.warning("chat for an unknown room dropped", extra={"room": room[:40]})
            return
        if game_id is None:
            for conn in list(self.lobby):
                conn.send(frame)
        else:
            self.send_game_frame(game_id, frame)

    # -- liveness --------------------------------------------------------------------------

    def _resize_wheel(self) -> None:
        n = max(1, round(self.ping_interval / self.tick))
        if n == len(self._wheel):
            return
        self._wheel = [set() for _ in range(n)]
        for i, conn in enumerate(self.conns):
            conn.slot = i % n
            self._wheel[conn.slot].add(conn)
        self._next_slot = len(self.conns)

    async def run_ticker(self) -> None:
        """Each tick: ping one bucket of connections, close the idle ones in it."""
        loop = asyncio.get_running_loop()
        i = 0
        next_at = loop.time()
        while True:
            next_at += self.tick
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            bucket = self._wheel[i % len(self._wheel)]
            i += 1
            if not bucket:
                continue
            try:
                self.ping_bucket(bucket, time.monotonic())
            except Exception:  # never let the ticker die
                log.exception("ws ticker failed")

    def ping_bucket(self, bucket: Iterable[Conn], now: float) -> None:
        idle = self.idle_timeout
        for conn in list(bucket):
            if now - conn.last_seen > idle:
                conn.close(1001, "idle timeout", reason="idle")
            else:
                conn.send(PING_FRAME)


def _addressees(payload: Any) -> set[int]:
    """User ids a lobby event is addressed to (see :meth:`Hub.publish_lobby`)."""
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
