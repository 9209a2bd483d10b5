"""A minimal WebSocket client on a raw asyncio protocol, for the load generator.

Why not aiohttp's client: the generator holds thousands of sockets in one process next to
the server it measures, and what it spends per message is taken from the server (they share
the machine) and added to every latency it reports. A bare :class:`asyncio.Protocol`
(uvloop's when available) costs a few microseconds per received message, about 1.6x less
than aiohttp's client (FACTS), keeps a handful of objects per connection (so the
generator's own garbage collections stay short) and timestamps each ``data_received``
once, which is when the bytes reached the process.

It speaks exactly what the goapp protocol needs (RFC 6455): the HTTP/1.1 upgrade with
``Sec-WebSocket-Key``/``Accept`` checked and the ``goapp.v1`` subprotocol (the access token
travels as ``bearer.<token>``, as browsers send it), masked text frames out, unmasked text,
ping, pong and close frames in (fragmented messages are reassembled), pong answers to the
server's pings. No extensions: the server sends uncompressed frames.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
import time
from collections.abc import Callable
from typing import Any

__all__ = ["HandshakeError", "WsClient", "connect"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_HEADER = 16 * 1024


class HandshakeError(ConnectionError):
    """The server refused the upgrade (401, 403, 426...) or answered something else."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _mask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if n == 0:
        return payload
    mask = int.from_bytes((key * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ mask).to_bytes(n, "big")


def encode_client_frame(opcode: int, payload: bytes) -> bytes:
    """One final client frame, masked with a random key (RFC 6455 5.3)."""
    n = len(payload)
    key = os.urandom(4)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + key + _mask(payload, key)


class WsClient(asyncio.Protocol):
    """One WebSocket connection. ``on_message(client, payload, now)`` gets every text
    message (``now`` = :func:`time.perf_counter` when its bytes arrived); ``on_close(client)``
    runs once when the connection ends, whoever ended it."""

    __slots__ = (
        "_buf",
        "_expect_accept",
        "_frag",
        "_handshake",
        "closed",
        "on_close",
        "on_message",
        "open",
        "owner",
        "transport",
    )

    def __init__(
        self,
        on_message: Callable[[WsClient, bytes, float], None],
        on_close: Callable[[WsClient], None],
        owner: Any = None,
    ) -> None:
        self.on_message = on_message
        self.on_close = on_close
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.open = False
        self.closed = False
        self._buf = b""
        self._frag: bytes | None = None
        self._expect_accept = b""
        self._handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._handshake.done():
            self._handshake.set_exception(exc or ConnectionError("closed during the handshake"))
        if not self.closed:
            self.closed = True
            self.open = False
            self.on_close(self)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        buf = self._buf + data if self._buf else data
        if not self.open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > _MAX_HEADER:
                    self._fail_handshake(0, "response headers too large")
                self._buf = buf
                return
            if not self._check_response(buf[:end]):
                return
            buf = buf[end + 4 :]
        self._buf = self._parse(buf, now)

    # -- handshake ---------------------------------------------------------------------------

    def start(self, host: str, port: int, path: str, protocols: list[str]) -> None:
        key = base64.b64encode(os.urandom(16))
        self._expect_accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {', '.join(protocols)}\r\n\r\n"
        )
        assert self.transport is not None
        self.transport.write(request.encode())

    def _check_response(self, head: bytes) -> bool:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        if status != 101:
            self._fail_handshake(status, lines[0].decode("latin-1"))
            return False
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if headers.get(b"sec-websocket-accept") != self._expect_accept:
            self._fail_handshake(status, "bad Sec-WebSocket-Accept")
            return False
        self.open = True
        if not self._handshake.done():
            self._handshake.set_result(None)
        return True

    def _fail_handshake(self, status: int, message: str) -> None:
        if not self._handshake.done():
            self._handshake.set_exception(HandshakeError(status, message))
        if self.transport is not None:
            self.transport.abort()

    # -- frames ------------------------------------------------------------------------------

    def _parse(self, buf: bytes, now: float) -> bytes:
        pos = 0
        size = len(buf)
        while size - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            n = b1 & 0x7F
            head = 2
            if n == 126:
                if size - pos < 4:
                    break
                n = (buf[pos + 2] << 8) | buf[pos + 3]
                head = 4
            elif n == 127:
                if size - pos < 10:
                    break
                n = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            if b1 & 0x80:  # a server must not mask; read the key anyway
                head += 4
            if size - pos < head + n:
                break
            payload = buf[pos + head : pos + head + n]
            if b1 & 0x80:
                payload = _mask(payload, buf[pos + head - 4 : pos + head])
            pos += head + n
            opcode = b0 & 0x0F
            if opcode == 0x1 or opcode == 0x2 or opcode == 0x0:
                if not b0 & 0x80:  # a fragment: keep it until the final one
                    self._frag = (self._frag or b"") + payload
                    continue
                if opcode == 0x0 and self._frag is not None:
                    payload, self._frag = self._frag + payload, None
                self.on_message(self, payload, now)
            elif opcode == 0x9:
                self.send_frame(0xA, payload)
            elif opcode == 0x8:
                self.send_frame(0x8, payload[:2])
                if self.transport is not None:
                    self.transport.close()
                return b""
            # 0xA (pong): nothing to do
            if self.closed:
                return b""
        return buf[pos:] if pos < size else b""

    def send_frame(self, opcode: int, payload: bytes) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            t.write(encode_client_frame(opcode, payload))

    def send_text(self, payload: bytes) -> bool:
        """Send one text message; False when the connection is gone."""
        t = self.transport
        if t is None or t.is_closing() or not self.open:
            return False
        t.write(encode_client_frame(0x1, payload))
        return True

    def abort(self) -> None:
        """Drop the connection without a close frame (a client that vanished)."""
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        """A clean close: close frame 1000, then the TCP close."""
        self.send_frame(0x8, struct.pack("!H", 1000))
        if self.transport is not None:
            self.transport.close()


async def connect(
    host: str,
    port: int,
    path: str,
    token: str | None,
    on_message: Callable[[WsClient, bytes, float], None],
    on_close: Callable[[WsClient], None],
    *,
    owner: Any = None,
    timeout: float = 10.0,
) -> WsClient:
    """Open a connection and finish the upgrade (HandshakeError if refused)."""
    loop = asyncio.get_running_loop()
    protocols = ["goapp.v1"] + ([f"bearer.{token}"] if token else [])
    client = WsClient(on_message, on_close, owner)
    await asyncio.wait_for(loop.create_connection(lambda: client, host, port), timeout)
    client.start(host, port, path, protocols)
    try:
        await asyncio.wait_for(client._handshake, timeout)
    except BaseException:
        client.abort()
        raise
    return client
