"""Sessions across restarts, against real ``goapp serve`` processes: an access token refused
by a logout stays refused after the server restarts (the revocation is in the database, on
SQLite and on PostgreSQL), and with Redis too, even when Redis restarted empty meanwhile.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cluster_support import Instance
from services import RedisServer

pytestmark = [pytest.mark.server]  # goapp serve processes

SECRET = "ab" * 32
PASSWORD = "correct horse 9"


def call(
    base: str, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _logout_restart_and_check(server: Instance, restart_others: Any = None) -> None:
    server.start()
    status, session = call(
        server.url, "POST", "/api/register", {"name": "ivy", "password": PASSWORD}
    )
    assert status == 201, session
    status, other = call(server.url, "POST", "/api/login", {"name": "ivy", "password": PASSWORD})
    assert status == 200, other
    access = session["access_token"]
    assert call(server.url, "GET", "/api/me", token=access)[0] == 200

    status, body = call(
        server.url, "POST", "/api/logout", {"refresh_token": session["refresh_token"]}
    )
    assert (status, body) == (200, {"ok": True})
    status, err = call(server.url, "GET", "/api/me", token=access)
    assert status == 401 and err["error"]["code"] == "token_expired", err

    assert server.stop() == 0
    if restart_others is not None:
        restart_others()
    server.start()
    # still refused after the restart (before the fix: 200 until the token expired)
    status, err = call(server.url, "GET", "/api/me", token=access)
    assert status == 401 and err["error"]["code"] == "token_expired", err
    # the other session refreshes and goes on
    status, renewed = call(
        server.url, "POST", "/api/refresh", {"refresh_token": other["refresh_token"]}
    )
    assert status == 200, renewed
    assert call(server.url, "GET", "/api/me", token=renewed["access_token"])[0] == 200


@pytest.mark.timeout(120)
def test_a_logged_out_access_token_stays_refused_after_a_restart(
    store_url: str, tmp_path: Path
) -> None:
    server = Instance("a", tmp_path, {"GOAPP_DATABASE_URL": store_url, "GOAPP_JWT_SECRET": SECRET})
    try:
        _logout_restart_and_check(server)
    finally:
        server.stop()


@pytest.mark.timeout(120)
def test_the_revocation_outlives_a_redis_restart(pg_schema_url: str, tmp_path: Path) -> None:
    """With Redis, revocations are kept there too; Redis keeps nothing on disk here, so after
    both restart the database alone still refuses the token."""
    redis = RedisServer()
    server = Instance(
        "a",
        tmp_path,
        {
            "GOAPP_DATABASE_URL": pg_schema_url,
            "GOAPP_JWT_SECRET": SECRET,
            "GOAPP_REDIS_URL": redis.url,
        },
    )

    def restart_redis() -> None:
        redis.stop()
        redis.start()

    try:
        _logout_restart_and_check(server, restart_redis)
    finally:
        server.stop()
        redis.stop()
