"""Shared fixtures. Service fixtures (PostgreSQL, Redis) live in tests/services.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

try:  # tests/ as a package or as a plain directory on sys.path
    from .services import pg_cluster, pg_schema_url, pg_url, redis_url
except ImportError:
    from services import pg_cluster, pg_schema_url, pg_url, redis_url  # type: ignore[no-redef]

from goapp.store import Store, open_store

__all__ = ["pg_cluster", "pg_schema_url", "pg_url", "redis_url"]

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each backend (the same tests run against both)."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/goapp.db"
    url: str = request.getfixturevalue("pg_schema_url")
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """An open, migrated store of each backend."""
    s = await open_store(store_url)
    try:
        yield s
    finally:
        await s.close()
