"""One open WebSocket as the fan-out sees it: :class:`Conn`, and the :class:`Transport` it
writes pre-encoded frames to.

A frame is written with ``transport.write`` and nothing awaits, so one slow client never
stalls the others. Slow clients: when a transport's write buffer passes the connection's
``limit`` (the hub's ``write_buffer_limit``, 256 KiB by default) after a write, the
connection is aborted at once (``transport.abort()``; metric
``goapp_ws_dropped_total{reason="slow"}``); the client reconnects and resumes with
``since=seq``.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Protocol

from goapp.obs.metrics import WS_DROPPED

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["WRITE_BUFFER_LIMIT", "Conn", "Transport"]

WRITE_BUFFER_LIMIT = 256 * 1024
_DROPPED_SLOW = WS_DROPPED.labels(reason="slow")


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
        for this connection are held
        (:meth:`~goapp.bus.subscriptions.GameSubscriptions.broadcast_body`) and written with
        the action's ack in one ``write`` (:meth:`release`): the mover gets its own move as an
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
