"""Helpers for the HTTP API tests: a real app (create_app) over a real store, and a client
that registers users and plays through the API."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from goapp.server import auth
from goapp.server.api.common import RATE_LIMITER
from goapp.server.app import create_app, create_metrics_app
from goapp.server.context import ServerContext
from goapp.server.ratelimit import RateLimiter
from goapp.server.wiring import close_services, open_services
from goapp.settings import load_settings


async def scrape_metrics(ctx: ServerContext) -> str:
    """``GET /metrics`` from the metrics listener's app (``metrics_listen``) of ``ctx``."""
    async with (
        TestClient(TestServer(create_metrics_app(ctx))) as client,
        client.get("/metrics") as resp,
    ):
        assert resp.status == 200, await resp.text()
        return await resp.text()


FAST_N = 2**10
BYOYOMI = {"system": "byoyomi", "main_s": 600, "periods": 3, "period_s": 30}


@dataclass
class Api:
    client: TestClient
    ctx: ServerContext
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def limiter(self) -> RateLimiter:
        return self.client.app[RATE_LIMITER]

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        user: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        h = dict(headers or {})
        if user is not None:
            h["Authorization"] = f"Bearer {self.tokens[user]['access_token']}"
        kwargs: dict[str, Any] = {"headers": h}
        if body is not None:
            kwargs["json"] = body
        async with self.client.request(method, path, **kwargs) as resp:
            if resp.content_type == "application/json":
                return resp.status, await resp.json()
            return resp.status, await resp.read()

    async def register(self, name: str, password: str = "correct horse") -> dict[str, Any]:
        status, body = await self.call(
            "POST", "/api/register", {"name": name, "password": password}
        )
        assert status == 201, body
        self.tokens[name] = body
        return body

    async def act(
        self, user: str, game_id: int, action: dict[str, Any], **extra: Any
    ) -> tuple[int, Any]:
        return await self.call(
            "POST", "/api/action", {"game_id": game_id, "action": action, **extra}, user=user
        )

    async def event_count(self, game_id: int) -> int:
        status, body = await self.call("GET", f"/api/games/{game_id}/events")
        assert status == 200, body
        return len(body["events"])

    async def new_game(
        self, black: str, white: str, *, size: int = 9, time_control: Any = BYOYOMI, **params: Any
    ) -> int:
        status, ch = await self.call(
            "POST",
            "/api/challenges",
            {
                "size": size,
                "rules": "japanese",
                "color": "black",
                "time_control": time_control,
                "opponent": white,
                **params,
            },
            user=black,
        )
        assert status == 201, ch
        status, body = await self.call("POST", f"/api/challenges/{ch['id']}/accept", user=white)
        assert status == 200, body
        return int(body["game_id"])


def fast_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap scrypt for tests (the production cost is ~0.1 s a hash)."""
    monkeypatch.setattr(auth, "SCRYPT_N", FAST_N)
    monkeypatch.setattr(auth, "hash_password", functools.partial(auth.hash_password, n=FAST_N))


async def make_api(
    aiohttp_client: Callable[..., Awaitable[TestClient]],
    tmp_path: Path,
    database_url: str,
    *,
    limiter: RateLimiter | None = None,
    engine: str = "none",
    settings_overrides: dict[str, Any] | None = None,
) -> AsyncIterator[Api]:
    settings = load_settings(
        env={},
        overrides={
            "data_dir": str(tmp_path / "data"),
            "database_url": database_url,
            "engine": engine,  # no engine unless a test asks for one
            **(settings_overrides or {}),
        },
    )
    ctx = await open_services(settings)
    app = create_app(ctx)
    app[RATE_LIMITER] = limiter if limiter is not None else RateLimiter({})
    try:
        client = await aiohttp_client(app)
        yield Api(client, ctx)
        await client.close()
    finally:
        await close_services(ctx)
