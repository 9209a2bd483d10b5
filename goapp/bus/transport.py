"""The Redis transport of the bus: the connections, pub/sub, the outbox, reconnection.

* One pub/sub connection, held by :meth:`RedisTransport._subscriber`: it subscribes to
  ``channels()``, waits for Redis to confirm every subscription, runs ``on_connect`` (an
  await on the command connection: the presence registry, the revocations), then calls the
  transport *up* and runs ``on_up``; then it reads and hands each message to ``on_message``.
* Publishing never blocks the caller: :meth:`RedisTransport.send` and
  :meth:`RedisTransport.enqueue` append to an outbox that one task sends, in order, up to
  :data:`PIPELINE_MAX` messages in one round trip; while Redis is down they wait there (at
  most :data:`OUTBOX_LIMIT`; older ones are dropped and counted).
* Any failed Redis call makes the transport *degraded* (:meth:`RedisTransport.degraded`:
  metric ``goapp_bus_up`` 0): the subscriber starts over (a new connection, every
  subscription again) with backoff (``backoff_initial`` doubling to ``backoff_max``); what
  failed to go out stays in the outbox and goes once the transport is up again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from goapp.bus.wire import text
from goapp.obs import metrics

__all__ = ["OUTBOX_LIMIT", "PIPELINE_MAX", "SUBSCRIBE_TIMEOUT_S", "RedisTransport"]

log = logging.getLogger("goapp.bus")

#: Messages kept while Redis is down; beyond that the oldest are dropped (the log and the
#: resync on reconnect make game events complete anyway).
OUTBOX_LIMIT = 10_000
#: How long a subscription waits for Redis to confirm it.
SUBSCRIBE_TIMEOUT_S = 2.0
#: Most publishes sent in one round trip.
PIPELINE_MAX = 256
#: The errors that mean "Redis is unreachable or the connection broke".
REDIS_ERRORS = (RedisError, OSError, TimeoutError)

Op = Callable[[aioredis.Redis], Awaitable[Any]]
#: An outbox entry: a message to publish (``(channel, message)``: consecutive ones go out in
#: one pipeline) or any other Redis operation.
_Item = tuple[str, bytes] | Op


class RedisTransport:
    """See the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        channels: Callable[[], list[str]],
        on_message: Callable[[str, bytes], None],
        on_connect: Callable[[aioredis.Redis], Awaitable[None]],
        on_up: Callable[[], None],
        name: str = "",
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
    ) -> None:
        self.url = url
        self.channels = channels
        self.on_message = on_message
        self.on_connect = on_connect
        self.on_up = on_up
        self.name = name
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.redis: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=2.0,
            socket_timeout=5.0,
            retry=Retry(NoBackoff(), 0),
            retry_on_error=[],
        )
        self.up = False
        self.error = "connecting"
        #: set by :meth:`close`: nothing is queued or reconnected any more
        self.closed = False
        self._need_reconnect = False
        self.subscribed: set[str] = set()
        self._confirm: dict[str, list[asyncio.Future[None]]] = {}
        self.pubsub: Any = None
        self.outbox: deque[_Item] = deque()
        self._outbox_ready = asyncio.Event()
        self._scripts: dict[str, str] = {}  # script -> its SHA in Redis
        self.published = 0
        self.received = 0

    def start(self) -> list[asyncio.Task[Any]]:
        """Start the subscriber and the publisher; returns their tasks (:meth:`close`
        expects them cancelled and awaited by the caller)."""
        loop = asyncio.get_running_loop()
        return [
            loop.create_task(self._subscriber(), name="bus-subscriber"),
            loop.create_task(self._publisher(), name="bus-publisher"),
        ]

    async def flush(self, timeout_s: float) -> None:
        """Wait (at most ``timeout_s``) for the outbox to be sent, while up."""
        if self.up and self.outbox:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    while self.outbox and self.up:
                        await asyncio.sleep(0.01)

    async def close(self) -> None:
        self.closed = True
        self.up = False
        with contextlib.suppress(RedisError, OSError):
            await self.redis.aclose()

    # -- publishing ------------------------------------------------------------------------

    def send(self, channel: str, message: bytes) -> None:
        """Publish ``message`` (in order, soon, never waiting)."""
        self.enqueue((channel, message))

    def enqueue(self, op: _Item) -> None:
        """Queue a publish or any Redis operation behind the ones already queued."""
        if self.closed:
            return
        if len(self.outbox) >= OUTBOX_LIMIT:
            self.outbox.popleft()
            metrics.BUS_DROPPED.inc()
        self.outbox.append(op)
        self._outbox_ready.set()

    async def publish(self, r: aioredis.Redis, channel: str, message: bytes) -> None:
        """Publish at once (from an operation of the outbox)."""
        await r.publish(channel, message)
        self.published += 1
        metrics.BUS_MESSAGES.labels(direction="published").inc()

    async def _publisher(self) -> None:
        """Send the outbox in order; on an error keep the message and wait for the
        subscriber to reconnect."""
        while not self.closed:
            await self._outbox_ready.wait()
            if not self.outbox or not self.up:
                self._outbox_ready.clear()
                continue
            head = self.outbox[0]
            batch: list[tuple[str, bytes]] = []
            if isinstance(head, tuple):
                for item in self.outbox:
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
            except REDIS_ERRORS as exc:
                self.degraded(exc)  # kept: sent again once the bus is back
                self._outbox_ready.clear()
                continue
            except Exception:
                log.exception("bus publish failed")
            # drop what was sent (unless the outbox overflowed meanwhile and dropped it)
            sent: list[_Item] = [*batch] if batch else [head]
            for item in sent:
                if not self.outbox or self.outbox[0] is not item:
                    break
                self.outbox.popleft()

    async def eval(self, r: aioredis.Redis, script: str, *args: Any) -> Any:
        """Run a Lua script (no keys) by its SHA, loading it first (again after a Redis
        restart)."""
        sha = self._scripts.get(script)
        if sha is not None:
            try:
                return await r.evalsha(sha, 0, *args)
            except RedisError as exc:
                if "NOSCRIPT" not in str(exc):
                    raise
        sha = self._scripts[script] = await r.script_load(script)
        return await r.evalsha(sha, 0, *args)

    # -- subscriptions ---------------------------------------------------------------------

    async def subscribe(self, channel: str) -> None:
        """Subscribe (while connected) and wait for Redis to confirm it (at most
        :data:`SUBSCRIBE_TIMEOUT_S`)."""
        ps = self.pubsub
        if ps is None or channel in self.subscribed:
            return
        fut = asyncio.get_running_loop().create_future()
        self._confirm.setdefault(channel, []).append(fut)
        await ps.subscribe(channel)
        try:
            await asyncio.wait_for(asyncio.shield(fut), SUBSCRIBE_TIMEOUT_S)
        except TimeoutError:
            log.warning("no confirmation of a subscription", extra={"channel": channel})

    async def unsubscribe(self, channels: list[str]) -> None:
        ps = self.pubsub
        if ps is not None and channels:
            await ps.unsubscribe(*channels)
            self.subscribed.difference_update(channels)

    async def resubscribe(self, channels: list[str]) -> None:
        """Subscribe again without waiting for the confirmations."""
        ps = self.pubsub
        if ps is not None and channels:
            await ps.subscribe(*channels)

    def _confirmed(self, channel: str) -> None:
        self.subscribed.add(channel)
        for fut in self._confirm.pop(channel, ()):
            if not fut.done():
                fut.set_result(None)

    async def _subscriber(self) -> None:
        """Hold the pub/sub connection: (re)subscribe, resync, read; reconnect on errors."""
        delay = self.backoff_initial
        while not self.closed:
            ps = self.redis.pubsub()
            self._need_reconnect = False
            try:
                channels = self.channels()
                self.subscribed.clear()
                await ps.subscribe(*channels)
                self.pubsub = ps
                waiting = set(channels)
                while waiting:  # wait for every confirmation before calling it up
                    msg = await ps.get_message(timeout=SUBSCRIBE_TIMEOUT_S)
                    if msg is None:
                        raise TimeoutError("Redis did not confirm the subscriptions")
                    self._dispatch(msg)
                    waiting -= self.subscribed
                await self._on_up()
                delay = self.backoff_initial
                while not self.closed:
                    if self._need_reconnect:  # a publish or a subscribe failed elsewhere
                        raise ConnectionError(self.error or "reconnecting")
                    msg = await ps.get_message(timeout=1.0)
                    if msg is not None:
                        self._dispatch(msg)
            except asyncio.CancelledError:
                raise
            except REDIS_ERRORS as exc:
                self.degraded(exc)
            except Exception as exc:
                log.exception("bus subscriber crashed")
                self.degraded(exc)
            finally:
                self.pubsub = None
                self.subscribed.clear()
                with contextlib.suppress(Exception):
                    await ps.aclose()
            if self.closed:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max)

    def _dispatch(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        channel = text(msg.get("channel"))
        if kind == "message":
            self.received += 1
            metrics.BUS_MESSAGES.labels(direction="received").inc()
            try:
                self.on_message(channel, msg["data"])
            except Exception:
                log.exception("bus message failed", extra={"channel": channel})
        elif kind == "subscribe":
            self._confirmed(channel)
        elif kind == "unsubscribe":
            self.subscribed.discard(channel)

    async def _on_up(self) -> None:
        # channels first wanted while the subscriptions were being made
        missing = [c for c in self.channels() if c not in self.subscribed]
        if missing and self.pubsub is not None:
            await self.pubsub.subscribe(*missing)
        await self.on_connect(self.redis)
        was_up = self.up
        self.up = True
        self.error = ""
        self._outbox_ready.set()
        metrics.BUS_UP.set(1)
        if not was_up:
            log.info("bus connected", extra={"instance": self.name})
        self.on_up()

    def degraded(self, exc: BaseException) -> None:
        """A Redis call failed: down until the subscriber has reconnected."""
        if self.closed:
            return
        metrics.BUS_ERRORS.inc()
        error = str(exc) or type(exc).__name__
        if self.up:
            log.warning("bus degraded", extra={"error": error})
        self.up = False
        self.error = error
        self._need_reconnect = True  # the subscriber starts over: resubscribe, resync
        metrics.BUS_UP.set(0)
