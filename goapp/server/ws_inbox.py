"""aiohttp's WebSocket, with parsed frames handed straight to a callback.

Why not ``await ws.receive()`` in a loop: a socket waiting in ``receive()`` holds a chain of
about ten objects the collector tracks (the receive and read coroutines, a Future, its
iterator, the callback, ...), and builds it anew after every frame it reads, pongs
included. With 10k sockets pinged every 20 s, every young collection found ~120k such
objects alive and walked them all: 40-55 ms pauses, every 16 s, at 10k sockets and 1,000
moves/s (benches/README.md, "Load"). Here a socket at rest holds no coroutine and no
future: :class:`Inbox` takes each frame from aiohttp's parser in the protocol callback that
parsed it and gives it to ``on_frame``; the gateway (:mod:`goapp.server.ws`) runs a task
only while a socket has messages to apply.

This leans on aiohttp's internals (the ``_post_start`` hook and the parser's queue class),
hence the pinned aiohttp minor version in ``pyproject.toml``; every WebSocket test goes
through it.

While a close is under way ``on_frame`` returns False and frames queue as aiohttp's own
queue would hold them, so that :meth:`aiohttp.web.WebSocketResponse.close` can read the
peer's close frame as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import WSMessage, WSMsgType, web
from aiohttp._websocket.reader import WebSocketDataQueue, WebSocketReader
from aiohttp.helpers import DEFAULT_CHUNK_SIZE

__all__ = ["FrameCallback", "Inbox", "InboxWebSocketResponse"]

#: ``on_frame(message) -> taken``: False leaves the frame to aiohttp (a close is under way).
FrameCallback = Callable[[Any], bool]


class Inbox(WebSocketDataQueue):
    """The parser's destination: frames go to ``on_frame``, the end to ``on_eof``."""

    __slots__ = ("on_eof", "on_frame")

    def __init__(
        self, protocol: Any, limit: int, *, loop: Any, on_frame: FrameCallback,
        on_eof: Callable[[], None],
    ) -> None:  # fmt: skip
        super().__init__(protocol, limit, loop=loop)
        self.on_frame = on_frame
        self.on_eof = on_eof

    def feed_data(self, data: Any, size: int) -> None:
        if not self.on_frame(data):
            super().feed_data(data, size)

    def feed_eof(self) -> None:
        super().feed_eof()
        self.on_eof()

    def set_exception(self, exc: BaseException, *args: Any) -> None:
        """A frame the parser refused (too big: 1009; not UTF-8; a protocol error)."""
        super().set_exception(exc, *args)
        self.on_frame(WSMessage(WSMsgType.ERROR, exc, None))

    def requeue(self, data: Any) -> None:
        """Hand a frame already taken back to aiohttp (the peer's close frame, for
        :meth:`~aiohttp.web.WebSocketResponse.close` to read)."""
        super().feed_data(data, 0)

    def pause(self) -> None:
        """Stop reading from the socket (too many frames wait to be applied)."""
        self._protocol.pause_reading()

    def resume(self) -> None:
        self._protocol.resume_reading()


class InboxWebSocketResponse(web.WebSocketResponse):
    """A :class:`aiohttp.web.WebSocketResponse` whose frames go to ``on_frame`` (see the
    module docstring); ``receive()`` is not used. ``on_eof`` runs once the socket is gone."""

    def __init__(self, *, on_frame: FrameCallback, on_eof: Callable[[], None], **kw: Any):
        super().__init__(**kw)
        self._on_frame = on_frame
        self._on_eof = on_eof
        self.inbox: Inbox | None = None

    def _post_start(self, request: Any, protocol: str | None, writer: Any) -> None:
        # aiohttp 3.14's _post_start with our queue instead of WebSocketDataQueue (no
        # heartbeat: the hub's ticker pings).
        self._ws_protocol = protocol
        self._writer = writer
        self._reset_heartbeat()
        loop = self._loop
        assert loop is not None
        self.inbox = Inbox(
            request._protocol,
            DEFAULT_CHUNK_SIZE,
            loop=loop,
            on_frame=self._on_frame,
            on_eof=self._on_eof,
        )
        self._reader = self.inbox
        self._parser = WebSocketReader(
            self.inbox,
            self._max_msg_size,
            compress=bool(self._compress),
            decode_text=self._decode_text,
        )
        request.protocol.set_parser(self._parser, data_received_cb=None)
        request.protocol.keep_alive(False)
