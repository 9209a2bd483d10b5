"""The OpenAPI 3.1 document of the HTTP API, built from the route table
(:data:`goapp.server.api.common.Route`) so that it cannot drift from what is served.

Request and response schemas come from the msgspec structs the handlers decode and encode
(:func:`msgspec.json.schema_components`); every error answer has the one error shape.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import msgspec

from goapp import __version__
from goapp.server.api.common import Route

_PATTERN = re.compile(r"\{(\w+)(?::[^}]*)?\}")

_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "stable, for programs"},
                "message": {"type": "string", "description": "for people"},
            },
            "additionalProperties": True,
        }
    },
}

_ERROR_TEXT = {
    400: "Bad request (the `error.code` says why; `error.path` names the field)",
    401: "Missing, expired (`token_expired`) or invalid (`token_invalid`) credentials",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict with the current state",
    413: "Body too large",
    415: "Wrong content type",
    429: "Rate limited (see the Retry-After header)",
}


def openapi_path(path: str) -> str:
    """``/api/games/{id:\\d+}`` -> ``/api/games/{id}``."""
    return _PATTERN.sub(lambda m: "{" + m.group(1) + "}", path)


def build_openapi(routes: Iterable[Route]) -> dict[str, Any]:
    routes = list(routes)
    structs: list[Any] = []
    for r in routes:
        for t in (r.body, r.response):
            if t is not None and t not in structs:
                structs.append(t)
    schemas, components = msgspec.json.schema_components(
        structs, ref_template="#/components/schemas/{name}"
    )
    by_type = dict(zip(structs, schemas, strict=True))
    components = dict(components)
    components["Error"] = _ERROR_SCHEMA

    paths: dict[str, dict[str, Any]] = {}
    for r in routes:
        op: dict[str, Any] = {
            "operationId": r.handler.__name__,
            "summary": r.summary,
            "tags": [r.tag],
        }
        if r.description:
            op["description"] = r.description
        params = [
            {
                "name": p.name,
                "in": p.where,
                "required": p.required or p.where == "path",
                "schema": p.schema,
                **({"description": p.description} if p.description else {}),
            }
            for p in r.params
        ]
        if params:
            op["parameters"] = params
        if r.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {r.body_media: {"schema": by_type[r.body]}},
            }
        elif r.body_media != "application/json":
            op["requestBody"] = {
                "required": True,
                "content": {r.body_media: {"schema": {"type": "string"}}},
            }
        if r.auth == "required":
            op["security"] = [{"bearer": []}]
        elif r.auth == "optional":
            op["security"] = [{"bearer": []}, {}]
        ok: dict[str, Any] = {"description": "OK"}
        if r.response is not None:
            ok["content"] = {r.response_media: {"schema": by_type[r.response]}}
        elif r.response_media == "application/json":
            ok["content"] = {"application/json": {"schema": {"type": "object"}}}
        else:
            ok["content"] = {r.response_media: {"schema": {"type": "string"}}}
        if r.status == 204:
            ok = {"description": "No Content"}
        responses: dict[str, Any] = {str(r.status): ok}
        for status in r.extra.get("also_ok", ()):  # another success status, same body
            responses[str(status)] = ok
        errors = {*r.errors, 500}
        if r.body is not None:  # decode_body: 415 another type, 413 too large, 400 invalid
            errors |= {400, 413, 415}
        for status in sorted(errors):
            responses[str(status)] = {
                "description": _ERROR_TEXT.get(status, "Server error"),
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        op["responses"] = responses
        paths.setdefault(openapi_path(r.path), {})[r.method.lower()] = op

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "goapp HTTP API",
            "version": __version__,
            "description": "Accounts, challenges, games, SGF and chat history. Real-time "
            "play also works over the WebSocket at /ws. See docs/api.md.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }
