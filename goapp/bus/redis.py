"""The Redis bus: several goapp instances behind one load balancer.

:class:`RedisBus` composes small parts, each in its own module:

* :mod:`goapp.bus.transport`: the connections, pub/sub, the outbox, reconnection;
* :mod:`goapp.bus.ordering`: per-game ordered delivery (no Redis in it);
* :mod:`goapp.bus.presence`: who is online anywhere, which instances are alive;
* :mod:`goapp.bus.watchers`: each game's watcher count across instances;
* :mod:`goapp.bus.revocations`: token revocations for every instance;
* :mod:`goapp.bus.wire`: channel and key names, the message format.

What goes through Redis
=======================

Pub/sub channels (messages are a JSON header line, ``\\n``, then an opaque body):

* ``goapp:game:{id}``: every committed event of the game (``{"k": "ev", "s": seq}`` + the
  event's JSON, exactly the body of its WebSocket frame), the game room's chat frames and
  each instance's watcher count. An instance subscribes while one of its connections
  watches the game.
* ``goapp:lobby``: lobby events (challenges...), lobby chat, presence transitions.
* ``goapp:user``: frames for one user's connections, disconnects, token revocations.

Keys (all volatile; nothing that must survive lives only in Redis): ``goapp:instances``
and ``goapp:presence:{instance}`` (:mod:`goapp.bus.presence`), ``goapp:revoked:{user}``
(:mod:`goapp.bus.revocations`), and ``goapp:rl:*``, the rate-limit buckets the server
keeps on this bus's connection (:class:`goapp.server.ratelimit.SharedBuckets`).

Game events: ordered, complete, no duplicates
=============================================

Pub/sub is at-most-once (a dropped connection loses messages), so the event log decides
(:mod:`goapp.bus.ordering`). Events reach the ordered path from this instance's commits (at
once, not through Redis) and from Redis. ``watch`` (awaited by the gateway before it reads
the state) subscribes, waits for Redis to confirm, and only then reads ``delivered`` from
the log: every event after it arrives through the channel or a fill.

The publish path never blocks a commit: messages go to the transport's outbox (see
:mod:`goapp.bus.transport`). A message can also be lost with no later event to reveal it
(the publishing instance was killed between its commit and its publish; the game then went
quiet). Once a second (:meth:`RedisBus._audit`) each instance reads the ``last_seq`` of the
games it watches in one query and fills whatever is behind.

Failures
========

When a Redis call fails the bus is *degraded* (``/readyz``: ``"degraded: ..."``, metric
``goapp_bus_up`` 0): this instance keeps serving its own connections with its own commits,
lobby and chat; other instances' events reach them only through the once-a-second audit.
It reconnects with backoff (0.1 s doubling to 5 s); once subscribed again it registers its
presence again, reloads revocations and fills every watched game from the log (so its
clients receive what other instances committed meanwhile, in order, once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import orjson
import redis.asyncio as aioredis

from goapp.bus.ordering import OrderedDelivery
from goapp.bus.presence import SharedPresence
from goapp.bus.revocations import SharedRevocations
from goapp.bus.transport import OUTBOX_LIMIT, REDIS_ERRORS, RedisTransport
from goapp.bus.watchers import WatcherCounts
from goapp.bus.wire import LOBBY, USER, channel_game, game_channel, message, parse
from goapp.obs import metrics
from goapp.protocol import event_json, room_game_id

if TYPE_CHECKING:
    from goapp.bus.ports import LocalHub, RevocationSet
    from goapp.game.events import StoredEvent
    from goapp.game.service import GameService

__all__ = ["OUTBOX_LIMIT", "RedisBus", "game_channel"]

log = logging.getLogger("goapp.bus")


class RedisBus:
    """See the module docstring. The hub's relay (:class:`goapp.bus.ports.Relay`) and the
    server's :class:`goapp.bus.Bus`."""

    def __init__(
        self,
        url: str,
        hub: LocalHub,
        games: GameService,
        revocations: RevocationSet,
        *,
        instance_id: str,
        revocation_ttl_s: int = 900,
        presence_ttl_s: float = 10.0,
        audit_interval_s: float = 1.0,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
    ) -> None:
        self.url = url
        self.hub = hub
        self.games = games
        self.instance_id = instance_id
        self.audit_interval_s = audit_interval_s
        self.transport = RedisTransport(
            url,
            channels=self._channels,
            on_message=self._handle,
            on_connect=self._on_connect,
            on_up=self._on_up,
            name=instance_id,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
        )
        #: the command connection (shared with the server's rate-limit buckets)
        self.redis: aioredis.Redis = self.transport.redis
        self.order = OrderedDelivery(hub.broadcast_body, games.events_since, self._last_seq)
        self.shared_presence = SharedPresence(self.transport, hub, instance_id, presence_ttl_s)
        self.shared_revocations = SharedRevocations(
            self.transport, revocations, instance_id, revocation_ttl_s
        )
        self.watcher_counts = WatcherCounts(hub, instance_id, self.transport.send, self.order)
        self._tasks: list[asyncio.Task[Any]] = []

    # -- interface -------------------------------------------------------------------------

    @property
    def up(self) -> bool:
        return self.transport.up

    @property
    def status(self) -> str:
        return "ok" if self.transport.up else f"degraded: {self.transport.error}"

    @property
    def published(self) -> int:
        return self.transport.published

    @property
    def received(self) -> int:
        return self.transport.received

    @property
    def gap_fills(self) -> int:
        return self.order.gap_fills

    @property
    def presence_ttl_s(self) -> float:
        """After this long without a heartbeat an instance is dead (its users, its
        watchers are forgotten); heartbeats go every third of it."""
        return self.shared_presence.ttl_s

    @presence_ttl_s.setter
    def presence_ttl_s(self, value: float) -> None:
        self.shared_presence.ttl_s = value

    def attach(self, games: GameService) -> None:
        if self.on_events not in games.on_events:
            games.on_events.append(self.on_events)
        self.hub.relay = self

    async def start(self) -> None:
        if self._tasks:
            return
        metrics.BUS_UP.set(0)
        loop = asyncio.get_running_loop()
        self._tasks = [
            *self.transport.start(),
            loop.create_task(self._heartbeat(), name="bus-heartbeat"),
            loop.create_task(self._audit(), name="bus-audit"),
        ]

    async def close(self) -> None:
        """Stop: send what is queued (the presence changes of the sockets just closed, at
        most ``1 s``), then remove this instance's presence (a crash leaves it to be reaped).
        """
        await self.transport.flush(1.0)
        self.transport.closed = True
        if self.hub.relay is self:
            self.hub.relay = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self.order.close()
        if self.transport.up:
            with contextlib.suppress(*REDIS_ERRORS):
                async with asyncio.timeout(2.0):
                    await self.shared_presence.leave(self.redis)
        await self.transport.close()

    # -- game events -----------------------------------------------------------------------

    async def on_events(self, events: list[StoredEvent]) -> None:
        """The ``GameService.on_events`` hook (after each local commit): deliver here at
        once, publish for the other instances (never waiting for Redis)."""
        send, offer = self.transport.send, self.order.offer
        for event in events:
            body = event_json(event)
            send(game_channel(event.game_id), message({"k": "ev", "s": event.seq}, body))
            offer(event.game_id, event.seq, body)

    async def watch(self, game_id: int) -> None:
        """Make sure this instance receives the game's events: subscribe (confirmed by
        Redis) and set ``delivered`` from the log. The gateway awaits this *before* it
        reads the state it sends, so no event falls between the two."""

        async def subscribe() -> None:
            if self.transport.up:
                try:
                    await self.transport.subscribe(game_channel(game_id))
                except REDIS_ERRORS as exc:
                    self.transport.degraded(exc)

        if await self.order.watch(game_id, subscribe):
            self.watcher_counts.hello(game_id)  # subscribed: the others' answers reach us

    def unwatch(self, game_id: int) -> None:
        """The last local watcher left: stop delivering (the channel is unsubscribed by
        the next heartbeat, so a quick re-watch does not race an UNSUBSCRIBE)."""
        self.order.unwatch(game_id)
        self.watcher_counts.forget(game_id)

    async def _last_seq(self, game_id: int) -> int:
        return (await self.games.state(game_id)).last_seq

    async def _audit(self) -> None:
        """Every ``audit_interval_s``: compare each watched game's ``last_seq`` in the
        database (one query) with what was delivered here, and fill what is behind. This
        catches the messages no later event reveals: an instance killed between its commit
        and its publish, the last move before a quiet spell. It also runs while Redis is
        down, so instances still converge then, a second behind instead of live."""
        loop = asyncio.get_running_loop()
        last_run = loop.time()
        while not self.transport.closed:
            await asyncio.sleep(min(self.audit_interval_s, 0.25))
            if loop.time() - last_run < self.audit_interval_s:
                continue
            last_run = loop.time()
            try:
                await self.order.audit(self.games.store.last_seqs)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("bus audit failed", extra={"error": str(exc)})

    # -- relay (goapp.bus.ports.Relay) -----------------------------------------------------

    def lobby(self, frame: bytes, direct: set[int], private: bool) -> None:
        header = {"o": self.instance_id, "k": "lobby", "d": sorted(direct), "p": private}
        self.transport.send(LOBBY, message(header, frame))

    def room(self, room: str, frame: bytes) -> None:
        game_id = room_game_id(room)  # the gateway validated it
        channel = LOBBY if game_id is None else game_channel(game_id)
        self.transport.send(
            channel, message({"o": self.instance_id, "k": "room", "r": room}, frame)
        )

    def user(self, user_id: int, frame: bytes) -> None:
        header = {"o": self.instance_id, "k": "user", "u": user_id}
        self.transport.send(USER, message(header, frame))

    def disconnect(self, user_id: int, code: int, reason: str) -> None:
        header = {"o": self.instance_id, "k": "bye", "u": user_id, "c": code, "r": reason}
        self.transport.send(USER, message(header))

    def revoke(self, user_id: int, not_before_ms: int) -> None:
        """Refuse ``user_id``'s access tokens issued before ``not_before_ms``, everywhere."""
        self.shared_revocations.revoke(user_id, not_before_ms)

    def presence(self, user_id: int, name: str, online: bool) -> bool:
        """A user's first (``online``) or last connection here (see
        :meth:`SharedPresence.changed`)."""
        return self.shared_presence.changed(user_id, name, online)

    def online_users(self) -> dict[int, str]:
        return self.shared_presence.online

    def remote_guests(self) -> int:
        return self.shared_presence.remote_guests

    def watchers(self, game_id: int, local: int) -> None:
        """This instance's watcher count of a game changed (0: it stopped watching)."""
        self.watcher_counts.announce(game_id, local)

    def remote_watchers(self, game_id: int) -> int:
        """The other instances' watchers of a game, as they last announced them."""
        return self.watcher_counts.remote(game_id)

    # -- receiving -------------------------------------------------------------------------

    def _handle(self, channel: str, data: bytes) -> None:
        try:
            header, body = parse(data)
        except orjson.JSONDecodeError:
            log.warning("bad bus message", extra={"channel": channel})
            return
        kind = header.get("k")
        if kind == "ev":
            game_id = channel_game(channel)
            if game_id is not None:
                self.order.offer(game_id, int(header["s"]), body)
            return
        if header.get("o") == self.instance_id:
            return  # delivered here when it was published
        hub = self.hub
        if kind == "room":
            hub.deliver_room(header["r"], body)
        elif kind == "lobby":
            hub.deliver_lobby(body, set(header.get("d") or ()), bool(header.get("p")))
        elif kind == "user":
            hub.deliver_user(int(header["u"]), body)
        elif kind == "bye":
            hub.deliver_disconnect(int(header["u"]), int(header["c"]), str(header["r"]))
        elif kind == "revoke":  # the "bye" that follows closes the sockets
            self.shared_revocations.received(header)
        elif kind == "presence":
            self.shared_presence.received(header)
        elif kind == "w":
            game_id = channel_game(channel)
            if game_id is not None:
                origin, n, hello = str(header["o"]), int(header["n"]), bool(header.get("h"))
                self.watcher_counts.received(game_id, origin, n, hello)

    # -- connection life -------------------------------------------------------------------

    def _channels(self) -> list[str]:
        """What the pub/sub connection subscribes to."""
        return [LOBBY, USER, *(game_channel(g) for g in self.order.games())]

    async def _on_connect(self, r: aioredis.Redis) -> None:
        """Subscribed (again): register this instance's presence, read everyone's and the
        revocations."""
        await self.shared_presence.register(r)
        self.watcher_counts.forget_dead(self.shared_presence.live, self.presence_ttl_s)
        await self.shared_revocations.load(r)

    def _on_up(self) -> None:
        """Up (again): fill every watched game from the log (what other instances committed
        while this one was cut off), exchange watcher counts, send the lobby the presence."""
        self.order.fill_all()
        for game_id in self.order.games():  # counts may have changed while cut off
            self.watcher_counts.hello(game_id)
        self.hub.send_lobby_frame(self.hub.presence_snapshot())

    async def _heartbeat(self) -> None:
        """Keep this instance's presence alive, reap dead instances, drop subscriptions of
        games nobody here watches."""
        interval = self.presence_ttl_s / 3
        while not self.transport.closed:
            await asyncio.sleep(interval)
            if not self.transport.up:
                continue
            try:
                await self._beat()
            except asyncio.CancelledError:
                raise
            except REDIS_ERRORS as exc:
                self.transport.degraded(exc)
            except Exception:
                log.exception("bus heartbeat failed")

    async def _beat(self) -> None:
        await self.shared_presence.beat(self.redis)
        self.watcher_counts.forget_dead(self.shared_presence.live, self.presence_ttl_s)
        stale = [
            c
            for c in self.transport.subscribed
            if (g := channel_game(c)) is not None and g not in self.order
        ]
        if stale:
            await self.transport.unsubscribe(stale)
            # a game watched again meanwhile: subscribe again and fill what was missed
            again = [g for c in stale if (g := channel_game(c)) is not None and g in self.order]
            if again:
                await self.transport.resubscribe([game_channel(g) for g in again])
                for game_id in again:
                    self.order.fill(game_id)
