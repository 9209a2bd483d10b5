"""Hypothesis fuzzing of the gateway: random text frames (JSON or not, well-typed or not)
never crash the server, every message gets an answer, the connection stays usable, and a
rejected message changes nothing (the game's log keeps its length, no chat is stored)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse, WSMsgType
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ws_helpers import make_user, recv

from goapp.protocol import CLIENT_TYPES
from goapp.server import ws as gateway
from goapp.server.app import create_ws_app
from goapp.server.context import ServerContext
from goapp.server.wiring import close_services, open_services
from goapp.settings import load_settings

pytestmark = pytest.mark.timeout(300)


@dataclass
class Env:
    ctx: ServerContext
    ws: ClientWebSocketResponse
    game_id: int
    pings: int = 0


@pytest.fixture
async def env(
    tmp_path: Path,
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Env]:
    monkeypatch.setattr(gateway, "MSG_RATE", 1e6)
    monkeypatch.setattr(gateway, "MSG_BURST", 1e6)
    ctx = await open_services(load_settings(env={}, overrides={"data_dir": tmp_path}))
    ctx.limiter.limits.pop("chat:user")  # no chat budget either
    try:
        a, token = await make_user(ctx, "alice")
        b, _ = await make_user(ctx, "bob")
        state = await ctx.games.create_game(a, b, user_color="white", size=9)
        client = await aiohttp_client(create_ws_app(ctx))
        ws = await client.ws_connect(f"/ws?token={token}")
        assert (await recv(ws))["type"] == "welcome"
        yield Env(ctx, ws, state.game_id)
        await ws.close()
    finally:
        await close_services(ctx)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(
    ["id", "game_id", "since", "action", "room", "text", "t", "token", "resume", "request_id", "x"]
)


@st.composite
def messages(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.text(max_size=60))
    if kind == 1:
        return json.dumps(draw(json_values))
    fields: dict[str, Any] = draw(st.dictionaries(field_names, json_values, max_size=4))
    if kind == 3:  # closer to valid: real types, plausible values
        fields["game_id"] = draw(st.sampled_from([1, 0, -1, 2**63, "1"]))
        fields["action"] = draw(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["move", "pass", "resign", "undo_request", "bogus"])},
                optional={"vertex": st.sampled_from(["E5", "Z99", "", 5])},
            )
        )
    return json.dumps({"type": draw(st.sampled_from([*CLIENT_TYPES, "event", ""])), **fields})


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=messages())
async def test_random_messages(env: Env, text: str) -> None:
    before = len(await env.ctx.store.events_since(env.game_id, 0))
    chats = len(await env.ctx.store.list_chat("lobby")) + len(
        await env.ctx.store.list_chat(f"game:{env.game_id}")
    )
    await env.ws.send_str(text)
    env.pings += 1
    marker = f"fuzz-{env.pings}"
    await env.ws.send_str(json.dumps({"type": "ping", "id": marker}))
    errors = []
    answered = False
    while True:
        msg = await env.ws.receive(timeout=5)
        assert msg.type is WSMsgType.TEXT, (text, msg)
        frame = json.loads(msg.data)
        if frame["type"] == "pong" and frame["id"] == marker:
            break
        if frame["type"] == "error":
            assert set(frame["error"]) >= {"code", "message"}
            assert frame["error"]["code"] != "internal", (text, frame)
            errors.append(frame)
        if frame["type"] in ("ack", "error", "pong"):
            answered = True
    assert answered, text
    if errors:
        after = len(await env.ctx.store.events_since(env.game_id, 0))
        assert after == before, (text, errors)
        chats_after = len(await env.ctx.store.list_chat("lobby")) + len(
            await env.ctx.store.list_chat(f"game:{env.game_id}")
        )
        assert chats_after == chats, text


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.binary(max_size=200))
async def test_random_bytes(env: Env, data: bytes) -> None:
    text = data.decode("utf-8", errors="replace")
    await env.ws.send_str(text)
    await env.ws.send_bytes(data)
    await env.ws.send_str('{"type": "ping", "id": "after"}')
    while True:
        frame = json.loads((await env.ws.receive(timeout=5)).data)
        assert frame.get("error", {}).get("code") != "internal"
        if frame["type"] == "pong":
            break
