"""What the Redis bus puts on the wire: key and channel names, the message format.

A message is a JSON header line, ``\\n``, then an opaque body (a WebSocket frame's payload,
sent on as it is). The header's ``"k"`` says what it is; ``"o"`` names the instance that
published it (absent on game events, which every instance delivers, its own included,
through the ordered path).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

PREFIX = "goapp:"
LOBBY = PREFIX + "lobby"
USER = PREFIX + "user"
INSTANCES = PREFIX + "instances"
GAME_PREFIX = PREFIX + "game:"
REVOKED_PREFIX = PREFIX + "revoked:"


def game_channel(game_id: int) -> str:
    return f"{GAME_PREFIX}{game_id}"


def channel_game(channel: str) -> int | None:
    """The game of a ``goapp:game:ID`` channel; None for the other channels."""
    if not channel.startswith(GAME_PREFIX):
        return None
    return int(channel.rsplit(":", 1)[1])


def presence_key(instance_id: str) -> str:
    return f"{PREFIX}presence:{instance_id}"


def message(header: dict[str, Any], body: bytes = b"") -> bytes:
    return orjson.dumps(header) + b"\n" + body


def parse(data: bytes) -> tuple[dict[str, Any], bytes]:
    """The header and the body of a message; ``orjson.JSONDecodeError`` for a bad header."""
    head, _, body = data.partition(b"\n")
    header = orjson.loads(head)
    if not isinstance(header, dict):
        raise orjson.JSONDecodeError("not an object", head.decode(errors="replace"), 0)
    return header, body


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def now_ms() -> int:
    return time.time_ns() // 1_000_000
