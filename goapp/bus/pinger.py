"""Liveness: WebSocket pings, spread over time, and the idle timeout.

One background task (:meth:`Pinger.run`) walks a timing wheel: each connection sits in one
of ``ping_interval / tick`` buckets and each tick handles one bucket, so the WebSocket pings
of 10k connections are spread evenly instead of firing in one loop iteration (see FACTS:
aiohttp's heartbeat bunches timers and triggers full GCs). A connection that has sent
nothing (not even a pong) for ``idle_timeout`` seconds is closed with 1001.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from goapp._core import encode_ws_frame

if TYPE_CHECKING:
    from goapp.bus.conn import Conn

__all__ = ["PING_FRAME", "Pinger"]

log = logging.getLogger("goapp.ws")

PING_FRAME = encode_ws_frame(0x9, b"")


class Pinger:
    """The timing wheel of this instance's connections (``conns``: the hub's set, shared).
    ``ping_interval``, ``idle_timeout`` and ``tick`` may change until :meth:`start`."""

    def __init__(
        self, conns: set[Conn], *, ping_interval: float, idle_timeout: float, tick: float
    ) -> None:
        self.conns = conns
        self.ping_interval = ping_interval
        self.idle_timeout = idle_timeout
        self.tick = tick
        self._wheel: list[set[Conn]] = [set()]
        self._next_slot = 0
        self._ticker: asyncio.Task[None] | None = None

    def add(self, conn: Conn) -> None:
        slot = self._next_slot % len(self._wheel)
        self._next_slot += 1
        conn.slot = slot
        self._wheel[slot].add(conn)

    def remove(self, conn: Conn) -> None:
        for bucket in self._wheel:
            bucket.discard(conn)

    def start(self) -> None:
        """Start the ticker (idempotent)."""
        if self._ticker is None or self._ticker.done():
            self._resize_wheel()
            self._ticker = asyncio.get_running_loop().create_task(self.run(), name="ws-ticker")

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None

    def _resize_wheel(self) -> None:
        n = max(1, round(self.ping_interval / self.tick))
        if n == len(self._wheel):
            return
        self._wheel = [set() for _ in range(n)]
        for i, conn in enumerate(self.conns):
            conn.slot = i % n
            self._wheel[conn.slot].add(conn)
        self._next_slot = len(self.conns)

    async def run(self) -> None:
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
