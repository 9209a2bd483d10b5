"""The HTTP API: accounts, challenges, games and actions, SGF, chat history, metrics.

``setup_routes(app)`` registers every route of the route tables below, the middleware
(request id, error mapping, metrics, access log) and the rate limiter. The same tables
build the OpenAPI document (``GET /api/openapi.json``). See docs/api.md.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from goapp.server.api import accounts, automatch, challenges, engine, games, meta, ratings
from goapp.server.api.common import RATE_LIMITER, ROUTES, Route, api_middleware
from goapp.server.ratelimit import RateLimiter

__all__ = ["all_routes", "setup_routes"]


def all_routes() -> list[Route]:
    """Every documented /api route."""
    return [
        *accounts.ROUTES,
        *ratings.ROUTES,
        *challenges.ROUTES,
        *automatch.ROUTES,
        *games.ROUTES,
        *engine.ROUTES,
        *meta.ROUTES_META,
    ]


def setup_routes(app: web.Application, *, rate_limiter: RateLimiter | None = None) -> None:
    """Register the API's routes, its middleware and the rate limiter on ``app``."""
    app.middlewares.append(api_middleware)
    app[RATE_LIMITER] = rate_limiter if rate_limiter is not None else RateLimiter()
    routes = all_routes()
    app[ROUTES] = routes
    for r in routes:
        app.router.add_route(r.method, r.path, r.handler)
    app[games.SGF_SLOTS] = asyncio.Semaphore(games.SGF_PARALLEL)
