"""Metrics and the OpenAPI document."""

from __future__ import annotations

import hmac

from aiohttp import web

from goapp.obs.metrics import render
from goapp.server.api.common import ROUTES, Route, ctx_of, json_response
from goapp.server.auth import InvalidTokenError


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition, on the metrics listener (``metrics_listen``) and, when
    ``metrics_token`` is set, on the HTTP port too; with a token, every scrape must carry it
    (401 ``token_invalid`` otherwise). Nginx never forwards /metrics."""
    token = ctx_of(request).settings.metrics_token
    if token:
        scheme, _, given = request.headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            raise InvalidTokenError("/metrics needs 'Authorization: Bearer <metrics_token>'")
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
