"""The Redis bus: several goapp instances behind one load balancer.

What goes through Redis
=======================

Pub/sub channels (messages are a JSON header line, ``\\n``, then an opaque body):

* ``goapp:game:{id}``: every committed event of the game (``{"k": "ev", "s": seq}`` + the
  event's JSON, exactly the body of its WebSocket frame), the game room's chat frames and
  each instance's watcher count (``{"k": "w", "n": count}``; ``"h": 1`` when it starts
  watching or reconnects, asking the others for theirs). An instance subscribes while one
  of its connections watches the game.
* ``goapp:lobby``: lobby events (challenges...), lobby chat, presence transitions.
* ``goapp:user``: frames for one user's connections, disconnects, token revocations.

Keys (all volatile; nothing that must survive lives only in Redis):

* ``goapp:instances``: sorted set, instance id -> last heartbeat (ms);
* ``goapp:presence:{instance}``: hash, user id -> name of the users connected there
  (``_guests`` -> their guest count). An instance whose heartbeat is older than
  ``presence_ttl_s`` is dead: the first live instance to notice removes it (once, a Lua
  script) and announces its users that are connected nowhere else as gone (the hash also
  expires after three times that, in case every instance died);
* ``goapp:revoked:{user}``: not-before time (ms) of a revocation, expiring with the access
  tokens it refuses;
* ``goapp:rl:*``: shared rate-limit buckets (:mod:`goapp.server.ratelimit`).

Game events: ordered, complete, no duplicates
=============================================

Pub/sub is at-most-once (a dropped connection loses messages), so the event log decides.
Each watched game has a :class:`_Sync` with ``delivered``, the last seq handed to the hub.
Events reach it from this instance's commits (at once, not through Redis) and from Redis;
``seq <= delivered`` is dropped, ``delivered + 1`` goes to the hub and drains what was
buffered, anything later is buffered and the gap is filled from the log
(:meth:`GameService.events_since`). ``watch`` (awaited by the gateway before it reads the
state) subscribes, waits for Redis to confirm, and only then reads ``delivered`` from the
log: every event after it arrives through the channel or a fill.

The publish path never blocks a commit: messages go to an outbox that one task sends, in
order, up to :data:`PIPELINE_MAX` in one round trip; while Redis is down they wait there
(at most :data:`OUTBOX_LIMIT`; older ones are dropped and counted).

A message can also be lost with no later event to reveal it (the publishing instance was
killed between its commit and its publish; the game then went quiet). Once a second
(:meth:`RedisBus._audit`) each instance reads the ``last_seq`` of the games it watches in one
query and fills whatever is behind.

Failures
========

When a Redis call fails the bus is *degraded* (``/readyz``: ``"degraded: ..."``, metric
``goapp_bus_up`` 0): this instance keeps serving its own connections with its own commits,
lobby and chat; other instances' events reach them only through the once-a-second audit.
It reconnects with backoff (0.1 s
doubling to 5 s); once subscribed again it fills every watched game from the log (so its
clients receive what other instances committed meanwhile, in order, once), registers its
presence again and reloads revocations.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from goapp.obs import metrics
from goapp.server.hub import event_json
from goapp.server.protocol import room_game_id
from goapp.server.ratelimit import SharedBuckets

if TYPE_CHECKING:
    from goapp.game.events import StoredEvent
    from goapp.game.service import GameService
    from goapp.server.auth import Revocations
    from goapp.server.hub import Hub

__all__ = ["OUTBOX_LIMIT", "RedisBus"]

log = logging.getLogger("goapp.bus")

PREFIX = "goapp:"
LOBBY = PREFIX + "lobby"
USER = PREFIX + "user"
INSTANCES = PREFIX + "instances"
#: Messages kept while Redis is down; beyond that the oldest are dropped (the log and the
#: resync on reconnect make game events complete anyway).
OUTBOX_LIMIT = 10_000
#: How long ``watch`` waits for Redis to confirm a subscription before reading the state.
SUBSCRIBE_TIMEOUT_S = 2.0

_Op = Callable[[aioredis.Redis], Awaitable[Any]]
#: An outbox entry: a message to publish (``(channel, message)``: consecutive ones go out in
#: one pipeline) or any other Redis operation.
_Item = tuple[str, bytes] | _Op
#: Most publishes sent in one round trip.
PIPELINE_MAX = 256

# KEYS: none. ARGV: my instance id, user id, name ('' to leave), ttl ms, now ms.
# Sets or clears the user in my hash, then says whether any other live instance has them:
# 1 = this was a global transition (first connection anywhere / last one anywhere).
_PRESENCE_LUA = """
local me, uid, name, ttl, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local mine = 'goapp:presence:' .. me
local had_elsewhere = false
for _, other in ipairs(redis.call('ZRANGEBYSCORE', 'goapp:instances', now - ttl, '+inf')) do
  if other ~= me and redis.call('HEXISTS', 'goapp:presence:' .. other, uid) == 1 then
    had_elsewhere = true
  end
end
redis.call('ZADD', 'goapp:instances', now, me)
if name ~= '' then
  redis.call('HSET', mine, uid, name)
else
  redis.call('HDEL', mine, uid)
end
redis.call('PEXPIRE', mine, ttl * 3)
if had_elsewhere then return 0 end
return 1
"""

# ARGV: dead instance id, ttl ms, now ms. Claims a dead instance (once: ZREM) and returns
# its users that no live instance has: the ones that went offline with it.
_REAP_LUA = """
local dead, ttl, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if redis.call('ZREM', 'goapp:instances', dead) == 0 then return {} end
local key = 'goapp:presence:' .. dead
local users = redis.call('HGETALL', key)
redis.call('DEL', key)
local live = redis.call('ZRANGEBYSCORE', 'goapp:instances', now - ttl, '+inf')
local gone = {}
for i = 1, #users, 2 do
  local uid = users[i]
  if uid ~= '_guests' then
    local elsewhere = false
    for _, other in ipairs(live) do
      if redis.call('HEXISTS', 'goapp:presence:' .. other, uid) == 1 then elsewhere = true end
    end
    if not elsewhere then table.insert(gone, uid); table.insert(gone, users[i + 1]) end
  end
end
return gone
"""


def game_channel(game_id: int) -> str:
    return f"{PREFIX}game:{game_id}"


def _message(header: dict[str, Any], body: bytes = b"") -> bytes:
    return orjson.dumps(header) + b"\n" + body


class _Sync:
    """The ordered delivery state of one watched game."""

    __slots__ = ("delivered", "filling", "pending", "ready")

    def __init__(self) -> None:
        self.delivered: int | None = None  # None until watch() has read it from the log
        self.pending: dict[int, bytes] = {}
        self.filling: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()


class RedisBus:
    """See the module docstring."""

    def __init__(
        self,
        url: str,
        hub: Hub,
        games: GameService,
        revocations: Revocations,
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
        self.revocations = revocations
        self.instance_id = instance_id
        self.revocation_ttl_s = revocation_ttl_s
        self.presence_ttl_s = presence_ttl_s
        self.audit_interval_s = audit_interval_s
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.redis: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=2.0,
            socket_timeout=5.0,
            retry=Retry(NoBackoff(), 0),
            retry_on_error=[],
        )
        self._up = False
        self._error = "connecting"
        self._closed = False
        self._need_reconnect = False
        self._syncs: dict[int, _Sync] = {}
        self._subscribed: set[str] = set()
        self._confirm: dict[str, list[asyncio.Future[None]]] = {}
        self._pubsub: Any = None
        self._outbox: deque[_Item] = deque()
        self._outbox_ready = asyncio.Event()
        self._online: dict[int, str] = {}
        self._remote_guests = 0
        #: watched game -> other instance -> (its watcher count, when it said so)
        self._watchers: dict[int, dict[str, tuple[int, float]]] = {}
        self._live: set[str] = set()  # instances with a recent heartbeat
        self._tasks: list[asyncio.Task[Any]] = []
        self._fills: set[asyncio.Task[None]] = set()
        self._presence_sha: str | None = None
        self._reap_sha: str | None = None
        self.published = 0
        self.received = 0
        self.gap_fills = 0
        #: rate-limit buckets shared by every instance (goapp.server.ratelimit)
        self.buckets = SharedBuckets(self.redis, lambda: self._up)

    # -- interface -------------------------------------------------------------------------

    @property
    def up(self) -> bool:
        return self._up

    @property
    def status(self) -> str:
        return "ok" if self._up else f"degraded: {self._error}"

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
            loop.create_task(self._subscriber(), name="bus-subscriber"),
            loop.create_task(self._publisher(), name="bus-publisher"),
            loop.create_task(self._heartbeat(), name="bus-heartbeat"),
            loop.create_task(self._audit(), name="bus-audit"),
        ]

    async def close(self) -> None:
        """Stop: send what is queued (the presence changes of the sockets just closed, at
        most ``1 s``), then remove this instance's presence (a crash leaves it to be reaped).
        """
        if self._up and self._outbox:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    while self._outbox and self._up:
                        await asyncio.sleep(0.01)
        self._closed = True
        if self.hub.relay is self:
            self.hub.relay = None
        for task in [*self._tasks, *self._fills]:
            task.cancel()
        for task in [*self._tasks, *self._fills]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._up:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(2.0):
                    await self.redis.zrem(INSTANCES, self.instance_id)
                    await self.redis.delete(self._presence_key(self.instance_id))
        self._up = False
        with contextlib.suppress(RedisError, OSError):
            await self.redis.aclose()

    # -- game events -----------------------------------------------------------------------

    async def on_events(self, events: list[StoredEvent]) -> None:
        """The ``GameService.on_events`` hook (after each local commit): deliver here at
        once, publish for the other instances (never waiting for Redis)."""
        for event in events:
            body = event_json(event)
            self._send(game_channel(event.game_id), _message({"k": "ev", "s": event.seq}, body))
            sync = self._syncs.get(event.game_id)
            if sync is not None:
                self._offer(event.game_id, sync, event.seq, body)

    async def watch(self, game_id: int) -> None:
        """Make sure this instance receives the game's events: subscribe (confirmed by
        Redis) and set ``delivered`` from the log. The gateway awaits this *before* it
        reads the state it sends, so no event falls between the two."""
        sync = self._syncs.get(game_id)
        if sync is not None:
            if not sync.ready.is_set():
                await sync.ready.wait()
            return
        sync = self._syncs[game_id] = _Sync()
        try:
            if self._up:
                try:
                    await self._subscribe(game_channel(game_id))
                except (RedisError, OSError, TimeoutError) as exc:
                    self._degraded(exc)
            try:
                delivered = (await self.games.state(game_id)).last_seq
            except Exception:  # no such game (the gateway answers that), store trouble
                delivered = 0
            if self._syncs.get(game_id) is sync:
                sync.delivered = delivered
                self._drain(game_id, sync)
                self._hello(game_id)  # subscribed: the others' answers will reach us
        finally:
            sync.ready.set()

    def unwatch(self, game_id: int) -> None:
        """The last local watcher left: stop delivering (the channel is unsubscribed by
        the next heartbeat, so a quick re-watch does not race an UNSUBSCRIBE)."""
        sync = self._syncs.pop(game_id, None)
        self._watchers.pop(game_id, None)
        if sync is not None and sync.filling is not None:
            sync.filling.cancel()

    def _offer(self, game_id: int, sync: _Sync, seq: int, body: bytes) -> None:
        delivered = sync.delivered
        if delivered is None or sync.filling is not None:
            if delivered is None or seq > delivered:
                sync.pending[seq] = body
            return
        if seq <= delivered:
            return
        if seq == delivered + 1:
            self.hub.broadcast_body(game_id, seq, body)
            sync.delivered = seq
            if sync.pending:
                self._drain(game_id, sync)
            return
        sync.pending[seq] = body
        self._fill(game_id, sync)

    def _drain(self, game_id: int, sync: _Sync) -> None:
        assert sync.delivered is not None
        pending = sync.pending
        while pending:
            nxt = sync.delivered + 1
            body = pending.pop(nxt, None)
            if body is None:
                break
            self.hub.broadcast_body(game_id, nxt, body)
            sync.delivered = nxt
        for seq in [s for s in pending if s <= sync.delivered]:
            del pending[seq]
        if pending:
            self._fill(game_id, sync)

    def _fill(self, game_id: int, sync: _Sync) -> None:
        if sync.filling is None and sync.delivered is not None:
            task = asyncio.get_running_loop().create_task(
                self._fill_from_log(game_id, sync), name=f"bus-fill-{game_id}"
            )
            sync.filling = task
            self._fills.add(task)
            task.add_done_callback(self._fills.discard)

    async def _fill_from_log(self, game_id: int, sync: _Sync) -> None:
        """Deliver the events after ``delivered`` from the log, then what was buffered."""
        self.gap_fills += 1
        metrics.BUS_GAP_FILLS.inc()
        delay = 0.05
        try:
            for _ in range(20):
                assert sync.delivered is not None
                try:
                    events = await self.games.events_since(game_id, sync.delivered)
                except Exception as exc:
                    log.warning("gap fill failed", extra={"game_id": game_id, "error": str(exc)})
                    events = []
                for event in events:
                    if event.seq == sync.delivered + 1:
                        body = sync.pending.pop(event.seq, None) or event_json(event)
                        self.hub.broadcast_body(game_id, event.seq, body)
                        sync.delivered = event.seq
                for seq in [s for s in sync.pending if s <= sync.delivered]:
                    del sync.pending[seq]
                if not sync.pending or min(sync.pending) == sync.delivered + 1:
                    return
                await asyncio.sleep(delay)  # the log lags the message: read again
                delay = min(delay * 2, 1.0)
            log.warning("gap not filled; dropping buffered events", extra={"game_id": game_id})
            sync.pending.clear()
        finally:
            if sync.filling is asyncio.current_task():
                sync.filling = None
                if sync.pending and self._syncs.get(game_id) is sync:
                    self._drain(game_id, sync)

    async def _audit(self) -> None:
        """Every ``audit_interval_s``: compare each watched game's ``last_seq`` in the
        database (one query) with what was delivered here, and fill what is behind. This
        catches the messages no later event reveals: an instance killed between its commit
        and its publish, the last move before a quiet spell. It also runs while Redis is
        down, so instances still converge then, a second behind instead of live."""
        loop = asyncio.get_running_loop()
        last_run = loop.time()
        while not self._closed:
            await asyncio.sleep(min(self.audit_interval_s, 0.25))
            if loop.time() - last_run < self.audit_interval_s:
                continue
            last_run = loop.time()
            ids = [g for g, s in self._syncs.items() if s.delivered is not None]
            if not ids:
                continue
            try:
                last = await self.games.store.last_seqs(ids)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("bus audit failed", extra={"error": str(exc)})
                continue
            for game_id, seq in last.items():
                sync = self._syncs.get(game_id)
                if sync is not None and sync.delivered is not None and seq > sync.delivered:
                    self._fill(game_id, sync)

    def _resync_all(self) -> None:
        """After a reconnect: fill every watched game from the log (what other instances
        committed while this one was cut off)."""
        for game_id, sync in list(self._syncs.items()):
            if sync.delivered is not None:
                self._fill(game_id, sync)

    # -- relay (goapp.server.hub.Relay) ----------------------------------------------------

    def lobby(self, frame: bytes, direct: set[int], private: bool) -> None:
        header = {"o": self.instance_id, "k": "lobby", "d": sorted(direct), "p": private}
        self._send(LOBBY, _message(header, frame))

    def room(self, room: str, frame: bytes) -> None:
        game_id = room_game_id(room)  # the gateway validated it
        channel = LOBBY if game_id is None else game_channel(game_id)
        self._send(channel, _message({"o": self.instance_id, "k": "room", "r": room}, frame))

    def user(self, user_id: int, frame: bytes) -> None:
        self._send(USER, _message({"o": self.instance_id, "k": "user", "u": user_id}, frame))

    def disconnect(self, user_id: int, code: int, reason: str) -> None:
        header = {"o": self.instance_id, "k": "bye", "u": user_id, "c": code, "r": reason}
        self._send(USER, _message(header))

    def revoke(self, user_id: int, not_before_ms: int) -> None:
        """Refuse ``user_id``'s access tokens issued before ``not_before_ms``, everywhere."""
        self.revocations.add(user_id, not_before_ms)
        ttl_ms = (self.revocation_ttl_s + 60) * 1000
        key = f"{PREFIX}revoked:{user_id}"

        async def op(r: aioredis.Redis) -> None:
            await r.set(key, not_before_ms, px=ttl_ms)

        self._enqueue(op)
        header = {"o": self.instance_id, "k": "revoke", "u": user_id, "nb": not_before_ms}
        self._send(USER, _message(header))

    def presence(self, user_id: int, name: str, online: bool) -> bool:
        """A user's first (``online``) or last connection here: register it in Redis and,
        when that is a global transition, announce it. False while Redis is down (the hub
        then reports the local transition itself)."""
        if not self._up:
            return False
        if online:
            self._online[user_id] = name

        async def op(r: aioredis.Redis) -> None:
            now = _now_ms()
            ttl = int(self.presence_ttl_s * 1000)
            first = await self._eval(
                r, "_presence_sha", _PRESENCE_LUA, self.instance_id, user_id,
                name if online else "", ttl, now,
            )  # fmt: skip
            if int(first):
                await self._announce(r, user_id, name, online)

        self._enqueue(op)
        return True

    def online_users(self) -> dict[int, str]:
        return self._online

    def watchers(self, game_id: int, local: int) -> None:
        """This instance's watcher count of a game changed (0: it stopped watching)."""
        header = {"o": self.instance_id, "k": "w", "n": local}
        self._send(game_channel(game_id), _message(header))

    def remote_watchers(self, game_id: int) -> int:
        """The other instances' watchers of a game, as they last announced them."""
        return sum(n for n, _ in self._watchers.get(game_id, {}).values())

    def _hello(self, game_id: int) -> None:
        """Announce this instance's count and ask the others watching for theirs."""
        local = len(self.hub.games.get(game_id, ()))
        if local:
            header = {"o": self.instance_id, "k": "w", "n": local, "h": 1}
            self._send(game_channel(game_id), _message(header))

    def _on_watchers(self, game_id: int, origin: str, n: int, hello: bool) -> None:
        if game_id not in self._syncs:
            return  # not watched here
        counts = self._watchers.setdefault(game_id, {})
        old = counts.pop(origin, (0, 0.0))[0]
        if n:
            counts[origin] = (n, time.monotonic())
        if hello:  # a newcomer (or a reconnected instance) asks: answer with ours
            local = len(self.hub.games.get(game_id, ()))
            if local:
                self.watchers(game_id, local)
        if n != old:
            self.hub.deliver_watchers(game_id)

    def _forget_dead_watchers(self) -> None:
        """Drop the counts of instances that stopped beating (crashed: no goodbye). A count
        newer than the presence TTL is kept: its instance may have registered after the
        list of live instances was read."""
        horizon = time.monotonic() - self.presence_ttl_s
        for game_id, counts in list(self._watchers.items()):
            dead = [i for i, (_, at) in counts.items() if i not in self._live and at < horizon]
            for inst in dead:
                del counts[inst]
            if dead:
                self.hub.deliver_watchers(game_id)

    def remote_guests(self) -> int:
        return self._remote_guests

    async def _announce(self, r: aioredis.Redis, user_id: int, name: str, online: bool) -> None:
        header = {"o": self.instance_id, "k": "presence", "u": user_id, "n": name, "on": online}
        await r.publish(LOBBY, _message(header))
        self.published += 1
        metrics.BUS_MESSAGES.labels(direction="published").inc()
        self._apply_presence(user_id, name, online, fire=True)

    def _apply_presence(self, user_id: int, name: str, online: bool, *, fire: bool) -> None:
        if online:
            self._online[user_id] = name
        elif user_id not in self.hub.user_conns:
            self._online.pop(user_id, None)
        self.hub.deliver_presence(user_id, name, online, fire=fire)

    # -- receiving -------------------------------------------------------------------------

    def _handle(self, channel: str, data: bytes) -> None:
        self.received += 1
        metrics.BUS_MESSAGES.labels(direction="received").inc()
        head, _, body = data.partition(b"\n")
        try:
            header = orjson.loads(head)
        except orjson.JSONDecodeError:
            log.warning("bad bus message", extra={"channel": channel})
            return
        kind = header.get("k")
        if kind == "ev":
            game_id = int(channel.rsplit(":", 1)[1])
            sync = self._syncs.get(game_id)
            if sync is not None:
                self._offer(game_id, sync, int(header["s"]), body)
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
            self.revocations.add(int(header["u"]), int(header["nb"]))
        elif kind == "presence":
            self._apply_presence(int(header["u"]), str(header["n"]), bool(header["on"]), fire=False)
        elif kind == "w":
            game_id = int(channel.rsplit(":", 1)[1])
            self._on_watchers(game_id, str(header["o"]), int(header["n"]), bool(header.get("h")))

    async def _subscribe(self, channel: str) -> None:
        ps = self._pubsub
        if ps is None or channel in self._subscribed:
            return
        fut = asyncio.get_running_loop().create_future()
        self._confirm.setdefault(channel, []).append(fut)
        await ps.subscribe(channel)
        try:
            await asyncio.wait_for(asyncio.shield(fut), SUBSCRIBE_TIMEOUT_S)
        except TimeoutError:
            log.warning("no confirmation of a subscription", extra={"channel": channel})

    def _confirmed(self, channel: str) -> None:
        self._subscribed.add(channel)
        for fut in self._confirm.pop(channel, ()):
            if not fut.done():
                fut.set_result(None)

    async def _subscriber(self) -> None:
        """Hold the pub/sub connection: (re)subscribe, resync, read; reconnect on errors."""
        delay = self.backoff_initial
        while not self._closed:
            ps = self.redis.pubsub()
            self._need_reconnect = False
            try:
                channels = [LOBBY, USER, *(game_channel(g) for g in self._syncs)]
                self._subscribed.clear()
                await ps.subscribe(*channels)
                self._pubsub = ps
                waiting = set(channels)
                while waiting:  # wait for every confirmation before calling it up
                    msg = await ps.get_message(timeout=SUBSCRIBE_TIMEOUT_S)
                    if msg is None:
                        raise TimeoutError("Redis did not confirm the subscriptions")
                    self._dispatch(msg)
                    waiting -= self._subscribed
                await self._on_up()
                delay = self.backoff_initial
                while not self._closed:
                    if self._need_reconnect:  # a publish or a subscribe failed elsewhere
                        raise ConnectionError(self._error or "reconnecting")
                    msg = await ps.get_message(timeout=1.0)
                    if msg is not None:
                        self._dispatch(msg)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError) as exc:
                self._degraded(exc)
            except Exception as exc:
                log.exception("bus subscriber crashed")
                self._degraded(exc)
            finally:
                self._pubsub = None
                self._subscribed.clear()
                with contextlib.suppress(Exception):
                    await ps.aclose()
            if self._closed:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max)

    def _dispatch(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        channel = _text(msg.get("channel"))
        if kind == "message":
            try:
                self._handle(channel, msg["data"])
            except Exception:
                log.exception("bus message failed", extra={"channel": channel})
        elif kind == "subscribe":
            self._confirmed(channel)
        elif kind == "unsubscribe":
            self._subscribed.discard(channel)

    async def _on_up(self) -> None:
        # games first watched while the subscriptions were being made
        missing = [game_channel(g) for g in self._syncs if game_channel(g) not in self._subscribed]
        if missing and self._pubsub is not None:
            await self._pubsub.subscribe(*missing)
        await self._register(self.redis)
        await self._load_revocations(self.redis)
        was_up = self._up
        self._up = True
        self._error = ""
        self._outbox_ready.set()
        metrics.BUS_UP.set(1)
        if not was_up:
            log.info("bus connected", extra={"instance": self.instance_id})
        self._resync_all()
        for game_id in list(self._syncs):  # counts may have changed while cut off
            self._hello(game_id)
        self.hub.send_lobby_frame(self.hub.presence_snapshot())

    def _degraded(self, exc: BaseException) -> None:
        if self._closed:
            return
        metrics.BUS_ERRORS.inc()
        error = str(exc) or type(exc).__name__
        if self._up:
            log.warning("bus degraded", extra={"error": error})
        self._up = False
        self._error = error
        self._need_reconnect = True  # the subscriber starts over: resubscribe, resync
        metrics.BUS_UP.set(0)

    # -- publishing ------------------------------------------------------------------------

    def _send(self, channel: str, message: bytes) -> None:
        self._enqueue((channel, message))

    def _enqueue(self, op: _Item) -> None:
        if self._closed:
            return
        if len(self._outbox) >= OUTBOX_LIMIT:
            self._outbox.popleft()
            metrics.BUS_DROPPED.inc()
        self._outbox.append(op)
        self._outbox_ready.set()

    async def _publisher(self) -> None:
        """Send the outbox in order; on an error keep the message and wait for the
        subscriber to reconnect."""
        while not self._closed:
            await self._outbox_ready.wait()
            if not self._outbox or not self._up:
                self._outbox_ready.clear()
                continue
            head = self._outbox[0]
            batch: list[tuple[str, bytes]] = []
            if isinstance(head, tuple):
                for item in self._outbox:
                    if not isinstance(item, tuple) or len(batch) == PIPELINE_MAX:
                        break
                    batch.append(item)
            try:
                if batch:
                    async with self.redis.pipeline(transaction=False) as pipe:
                        for channel, message in batch:
                            pipe.publish(channel, message)
                        await pipe.execute()
                    self.published += len(batch)
                    metrics.BUS_MESSAGES.labels(direction="published").inc(len(batch))
                else:
                    assert not isinstance(head, tuple)
                    await head(self.redis)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError) as exc:
                self._degraded(exc)  # kept: sent again once the bus is back
                self._outbox_ready.clear()
                continue
            except Exception:
                log.exception("bus publish failed")
            # drop what was sent (unless the outbox overflowed meanwhile and dropped it)
            sent: list[_Item] = [*batch] if batch else [head]
            for item in sent:
                if not self._outbox or self._outbox[0] is not item:
                    break
                self._outbox.popleft()

    async def _eval(self, r: aioredis.Redis, slot: str, script: str, *args: Any) -> Any:
        sha = getattr(self, slot)
        if sha is not None:
            try:
                return await r.evalsha(sha, 0, *args)
            except RedisError as exc:
                if "NOSCRIPT" not in str(exc):
                    raise
        sha = await r.script_load(script)
        setattr(self, slot, sha)
        return await r.evalsha(sha, 0, *args)

    # -- presence registry, revocations ----------------------------------------------------

    @staticmethod
    def _presence_key(instance_id: str) -> str:
        return f"{PREFIX}presence:{instance_id}"

    async def _register(self, r: aioredis.Redis) -> None:
        """Write this instance's users (after a start or a Redis restart) and read
        everyone's."""
        key = self._presence_key(self.instance_id)
        ttl = int(self.presence_ttl_s * 1000)
        mapping: dict[Any, Any] = {str(u): n for u, n in self.hub.user_names.items()}
        mapping["_guests"] = self.hub.guests
        async with r.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping=mapping)
            pipe.pexpire(key, ttl * 3)
            pipe.zadd(INSTANCES, {self.instance_id: _now_ms()})
            await pipe.execute()
        await self._read_presence(r)

    async def _read_presence(self, r: aioredis.Redis) -> None:
        now = _now_ms()
        ttl = int(self.presence_ttl_s * 1000)
        live = await r.zrangebyscore(INSTANCES, now - ttl, "+inf")
        online: dict[int, str] = {}
        guests = 0
        for inst in live:
            inst_id = _text(inst)
            users = await r.hgetall(self._presence_key(inst_id))
            for k, v in users.items():
                field = _text(k)
                if field == "_guests":
                    if inst_id != self.instance_id:
                        guests += int(v)
                elif field.isdigit():
                    online[int(field)] = _text(v)
        online.update(self.hub.user_names)
        self._online = online
        self._remote_guests = guests
        self._live = {_text(inst) for inst in live}
        self._forget_dead_watchers()

    async def _load_revocations(self, r: aioredis.Redis) -> None:
        async for key in r.scan_iter(match=f"{PREFIX}revoked:*", count=500):
            value = await r.get(key)
            if value is not None:
                uid = _text(key).rsplit(":", 1)[1]
                if uid.isdigit():
                    self.revocations.add(int(uid), int(value))

    async def _heartbeat(self) -> None:
        """Keep this instance's presence alive, reap dead instances, drop subscriptions of
        games nobody here watches."""
        interval = self.presence_ttl_s / 3
        while not self._closed:
            await asyncio.sleep(interval)
            if not self._up:
                continue
            try:
                await self._beat()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError) as exc:
                self._degraded(exc)
            except Exception:
                log.exception("bus heartbeat failed")

    async def _beat(self) -> None:
        r = self.redis
        now = _now_ms()
        ttl = int(self.presence_ttl_s * 1000)
        key = self._presence_key(self.instance_id)
        async with r.pipeline(transaction=True) as pipe:
            pipe.zadd(INSTANCES, {self.instance_id: now})
            pipe.hset(key, "_guests", self.hub.guests)
            pipe.pexpire(key, ttl * 3)
            await pipe.execute()
        for dead in await r.zrangebyscore(INSTANCES, "-inf", now - ttl):
            dead_id = _text(dead)
            gone = await self._eval(r, "_reap_sha", _REAP_LUA, dead_id, ttl, now)
            if gone:
                log.info("reaped a dead instance", extra={"instance": dead_id})
            for i in range(0, len(gone), 2):
                await self._announce(r, int(gone[i]), _text(gone[i + 1]), False)
        await self._read_presence(r)
        ps = self._pubsub
        if ps is not None:
            stale = [
                c
                for c in self._subscribed
                if c.startswith(PREFIX + "game:") and int(c.rsplit(":", 1)[1]) not in self._syncs
            ]
            if stale:
                await ps.unsubscribe(*stale)
                self._subscribed.difference_update(stale)
                # a game watched again meanwhile: subscribe again and fill what was missed
                again = [c for c in stale if int(c.rsplit(":", 1)[1]) in self._syncs]
                if again:
                    await ps.subscribe(*again)
                    for c in again:
                        game_id = int(c.rsplit(":", 1)[1])
                        self._fill(game_id, self._syncs[game_id])


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
