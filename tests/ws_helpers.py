"""Helpers of the WebSocket gateway tests: a server context on SQLite, users with tokens,
and small client helpers."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import ClientWebSocketResponse, WSMsgType

from goapp.server.auth import issue_access_token
from goapp.server.context import ServerContext

ORIGIN = "http://localhost:4000"


async def make_user(ctx: ServerContext, name: str, ttl: int = 900) -> tuple[int, str]:
    """A new user and an access token for it."""
    user = await ctx.store.create_user(name, None)
    return user.id, token_for(ctx, user.id, name, ttl)


def token_for(ctx: ServerContext, user_id: int, name: str, ttl: int = 900) -> str:
    return issue_access_token(ctx.secret, user_id, name, ttl, int(time.time()))


async def recv(ws: ClientWebSocketResponse, timeout: float = 5.0) -> dict[str, Any]:
    msg = await ws.receive(timeout=timeout)
    assert msg.type is WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
    frame = json.loads(msg.data)
    assert isinstance(frame, dict)
    return frame


async def recv_type(
    ws: ClientWebSocketResponse, kind: str, timeout: float = 5.0, **match: Any
) -> dict[str, Any]:
    """The next frame of type ``kind`` (and fields ``match``), skipping others."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, f"no {kind} frame {match} within {timeout}s"
        frame = await recv(ws, left)
        if frame["type"] == kind and all(frame.get(k) == v for k, v in match.items()):
            return frame


async def send(ws: ClientWebSocketResponse, **frame: Any) -> None:
    await ws.send_str(json.dumps(frame))


async def request(
    ws: ClientWebSocketResponse, skipped: list[dict[str, Any]] | None = None, **frame: Any
) -> dict[str, Any]:
    """Send a message with an ``id`` and return its ack or error; other frames that arrive
    meanwhile are appended to ``skipped`` (if given)."""
    await send(ws, **frame)
    deadline = asyncio.get_running_loop().time() + 5.0
    while True:
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, f"no answer to {frame}"
        got = await recv(ws, left)
        if got["type"] in ("ack", "error") and got.get("id") == frame.get("id"):
            return got
        if skipped is not None:
            skipped.append(got)


async def closed_code(ws: ClientWebSocketResponse, timeout: float = 5.0) -> int | None:
    """Read until the socket closes; the close code the server sent."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, "socket did not close"
        msg = await ws.receive(timeout=left)
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return ws.close_code
