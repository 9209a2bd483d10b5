"""Metrics and the OpenAPI document."""

from __future__ import annotations

from aiohttp import web

from goapp.obs.metrics import render
from goapp.server.api.common import ROUTES, Route, json_response


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition (scrape it from localhost; Nginx should not expose it)."""
    body, content_type = render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


async def openapi(request: web.Request) -> web.Response:
    from goapp.server.openapi import build_openapi

    routes: list[Route] = request.app[ROUTES]
    return json_response(build_openapi(routes))


ROUTES_META = [
    Route("GET", "/api/openapi.json", openapi, "This document", "meta"),
]
