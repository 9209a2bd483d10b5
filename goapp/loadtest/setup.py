"""Accounts, tokens and games for a load test, made fast but through honest paths.

Registering thousands of players through ``POST /api/register`` would spend about 0.1 s of
scrypt each (and hit the per-IP register limit): 4,000 players would take minutes of the
same two cores the test then measures. So the generator does what an operator's script
could do, with the server's own configuration (the same ``Settings``: ``--config``,
``--data-dir``, ``--database-url``, ``GOAPP_*``):

* **accounts** are created directly in the server's database with
  :meth:`goapp.store.base.Store.create_user` and **no password** (``password_hash=None``:
  nobody can log in as them). Names are ``lt_<n>``; an existing one is reused, so repeated
  runs do not grow the table;
* **access tokens** are minted with :func:`goapp.server.auth.issue_access_token` and the
  server's secret (``jwt_secret`` or ``DATA_DIR/jwt_secret``), as ``POST /api/login`` would,
  valid for the run plus a margin;
* **games** go through the real HTTP API: one player ``POST /api/challenges`` (direct,
  Black, 19x19, no clock) and the other ``POST /api/challenges/{id}/accept``.

Everything else (login-free WebSocket upgrade with the token, subscribe, moves, chat) is
the real protocol.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from goapp.server.auth import issue_access_token
from goapp.settings import Settings

__all__ = ["Player", "create_games", "make_players"]


@dataclass(frozen=True, slots=True)
class Player:
    user_id: int
    name: str
    token: str


def server_secret(settings: Settings) -> bytes:
    """The token-signing secret the server uses with these settings."""
    from goapp.server.auth import load_or_create_secret, secret_from_setting

    if settings.jwt_secret:
        return secret_from_setting(settings.jwt_secret)
    path = settings.data_dir / "jwt_secret"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: start the server first, or pass the server's "
            "--data-dir / --config / GOAPP_JWT_SECRET"
        )
    return load_or_create_secret(path)


async def make_players(settings: Settings, count: int, ttl_s: int) -> list[Player]:
    """``count`` accounts ``lt_0 ...`` (created when missing) with fresh access tokens."""
    from goapp.store import open_store
    from goapp.store.errors import ConflictError, NotFoundError

    secret = server_secret(settings)
    store = await open_store(settings.effective_database_url)
    try:
        sem = asyncio.Semaphore(32)

        async def one(i: int) -> tuple[int, str]:
            name = f"lt_{i}"
            async with sem:
                try:
                    user = await store.get_user_by_name(name)
                except NotFoundError:
                    try:
                        user = await store.create_user(name, None)
                    except ConflictError:
                        user = await store.get_user_by_name(name)
            return user.id, user.name

        users = await asyncio.gather(*(one(i) for i in range(count)))
    finally:
        await store.close()
    now = int(time.time())
    return [
        Player(uid, name, issue_access_token(secret, uid, name, ttl_s, now)) for uid, name in users
    ]


async def create_games(
    base_url: str, pairs: list[tuple[Player, Player]], *, size: int = 19, concurrency: int = 16
) -> list[int]:
    """One game per ``(black, white)`` pair through the HTTP API; their ids, in order."""
    sem = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(base_url, connector=connector) as http:

        async def call(method: str, path: str, token: str, body: Any = None) -> Any:
            headers = {"Authorization": f"Bearer {token}"}
            for attempt in range(5):
                async with http.request(method, path, json=body, headers=headers) as resp:
                    data = await resp.json()
                    if resp.status in (200, 201):
                        return data
                    if resp.status in (429, 503) and attempt < 4:
                        await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))
                        continue
                    raise RuntimeError(f"{method} {path}: HTTP {resp.status} {data}")
            raise AssertionError("unreachable")

        async def one(black: Player, white: Player) -> int:
            async with sem:
                challenge = await call(
                    "POST",
                    "/api/challenges",
                    black.token,
                    {"size": size, "rules": "japanese", "color": "black", "opponent": white.name},
                )
                accepted = await call(
                    "POST", f"/api/challenges/{challenge['id']}/accept", white.token
                )
            return int(accepted["game_id"])

        return list(await asyncio.gather(*(one(b, w) for b, w in pairs)))
