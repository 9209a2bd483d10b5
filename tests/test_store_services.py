"""The service fixtures themselves (tests/services.py): they give working servers."""

from __future__ import annotations

import shutil
import uuid

import asyncpg
import pytest
import redis.asyncio as aioredis
from services import PgCluster, RedisServer, unavailable


async def test_redis_fixture(redis_url: str) -> None:
    r = aioredis.from_url(redis_url)
    try:
        key = f"goapp-test:{uuid.uuid4().hex}"
        await r.set(key, "1", ex=10)
        assert await r.get(key) == b"1"
    finally:
        await r.aclose()


@pytest.mark.redis
async def test_throwaway_redis_server() -> None:
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed")
    server = RedisServer()
    try:
        r = aioredis.from_url(server.url)
        assert await r.ping()
        proc = server.proc
        assert proc is not None
        server.stop(kill=True)  # a crash, then a restart on the same port
        assert proc.poll() is not None
        await r.aclose()
        server.start()
        r = aioredis.from_url(server.url)
        assert await r.ping()  # the same URL answers again
        await r.aclose()
    finally:
        server.stop()
    assert proc.poll() is not None and server.proc is None


async def test_schema_isolation(pg_schema_url: str, pg_url: str) -> None:
    conn = await asyncpg.connect(pg_schema_url)
    try:
        schema = await conn.fetchval("SELECT current_schema()")
        assert schema.startswith("t_")
        await conn.execute("CREATE TABLE only_here (x int)")
    finally:
        await conn.close()
    conn = await asyncpg.connect(pg_url)
    try:
        assert await conn.fetchval("SELECT to_regclass('only_here')") is None
    finally:
        await conn.close()


async def test_throwaway_pg_cluster(pg_cluster: PgCluster) -> None:
    conn = await asyncpg.connect(pg_cluster.url)
    try:
        assert await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()
