"""What every API module shares: the route table, the middleware, body decoding, bearer
authentication, rate limiting, JSON answers.

Errors: handlers raise (:class:`~goapp.server.errors.ApiError`, ``GameError``, ``AuthError``,
store errors...) and :func:`api_middleware` turns the exception into the one error shape
``{"error": {"code", "message", ...}}`` with :func:`goapp.server.errors.describe`. Anything
it does not know is a bug: logged with its traceback and the request id, answered 500
``internal`` without details.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import msgspec
from aiohttp import web

from goapp.obs.logging import REQUEST_ID
from goapp.obs.metrics import DB_QUERY_SECONDS, ERRORS, HTTP_REQUESTS
from goapp.server.auth import (
    AccessClaims,
    InvalidTokenError,
    verify_access_token,
)
from goapp.server.context import CTX, ServerContext
from goapp.server.errors import INTERNAL_ERROR, ApiError, describe, error_body
from goapp.server.ratelimit import RateLimiter, retry_after_s
from goapp.store.errors import NotFoundError

log = logging.getLogger("goapp.api")

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Largest JSON request body (bytes). Bigger bodies get 413 ``payload_too_large``.
MAX_JSON_BODY = 16 * 1024
#: Accepted ``X-Request-Id`` values (else the server makes one).
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_PATH_RE = re.compile(r" - at `(\$[^`]*)`$")

RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)


# -- the route table -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Param:
    """A query or path parameter, for the OpenAPI document."""

    name: str
    where: Literal["query", "path"]
    schema: dict[str, Any]
    description: str = ""
    required: bool = False


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint: registered on the app by ``setup_routes`` and described by the OpenAPI
    document from the same entry, so the two cannot drift apart."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    body: type | None = None
    body_media: str = "application/json"
    response: type | None = None
    response_media: str = "application/json"
    status: int = 200
    auth: Literal["required", "optional", "none"] = "none"
    params: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


REQUEST_ID_KEY = web.RequestKey("request_id", str)
"""``request[REQUEST_ID_KEY]``: the id of the request (``X-Request-Id``)."""
ROUTES: web.AppKey[list[Route]] = web.AppKey("api_routes")
"""The app's route table, for the OpenAPI document."""


def id_param(name: str = "id", what: str = "the id") -> Param:
    return Param(name, "path", {"type": "integer", "minimum": 1}, what, required=True)


# -- JSON answers --------------------------------------------------------------------------

_encoder = msgspec.json.Encoder()


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """``data`` (dicts, lists, msgspec structs, datetimes) as a JSON answer."""
    return web.Response(
        body=_encoder.encode(data),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def ctx_of(request: web.Request) -> ServerContext:
    return request.app[CTX]


async def db(op: str, awaitable: Awaitable[T]) -> T:
    """Await a store call, timing it in ``goapp_db_query_seconds{op}``."""
    start = time.perf_counter()
    try:
        return await awaitable
    finally:
        DB_QUERY_SECONDS.labels(op=op).observe(time.perf_counter() - start)


# -- request bodies ------------------------------------------------------------------------


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"the request body is larger than {limit} bytes")


async def read_body(request: web.Request, limit: int) -> bytes:
    """The raw body, refusing (413) anything over ``limit`` bytes without reading it all."""
    length = request.content_length
    if length is not None and length > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(65536)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def validation_error(exc: msgspec.ValidationError | msgspec.DecodeError) -> ApiError:
    """A 400 naming the field (``path``: ``$.size``) from msgspec's message."""
    message = str(exc)
    if isinstance(exc, msgspec.ValidationError):
        m = _PATH_RE.search(message)
        path = m.group(1) if m else "$"
        code = "bad_action" if path.startswith("$.action") else "bad_request"
        return ApiError(400, code, f"invalid request body: {message}", path=path)
    return ApiError(400, "bad_json", f"the request body is not valid JSON: {message}")


_decoders: dict[type, msgspec.json.Decoder[Any]] = {}


async def decode_body(request: web.Request, kind: type[T], limit: int = MAX_JSON_BODY) -> T:
    """Read a JSON body into the struct ``kind`` (which forbids unknown fields): 415 for
    another content type, 413 when too large, 400 naming the field when invalid."""
    if request.content_type != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the body as application/json, not {request.content_type or 'nothing'}",
        )
    raw = await read_body(request, limit)
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    try:
        return decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise validation_error(exc) from None


#: An integer from a client: ASCII digits only (``\\d`` and ``int()`` also take fullwidth
#: and Arabic-Indic digits).
_INTEGER_RE = re.compile(r"-?[0-9]{1,19}")


def query_int(request: web.Request, name: str, default: int | None, lo: int, hi: int) -> int | None:
    """An integer query parameter in ``lo..hi`` (400 ``bad_request`` otherwise)."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not _INTEGER_RE.fullmatch(raw) or not lo <= int(raw) <= hi:
        raise ApiError(
            400, "bad_request", f"query parameter {name} must be an integer {lo}..{hi}", path=name
        )
    return int(raw)


def path_id(request: web.Request, name: str = "id") -> int:
    raw = request.match_info[name]
    value = int(raw) if _INTEGER_RE.fullmatch(raw) and raw[0] != "-" else 0
    if not 1 <= value <= 2**62:
        raise ApiError(404, "not_found", f"no such {name}")
    return value


# -- authentication ------------------------------------------------------------------------


def bearer_claims(request: web.Request) -> AccessClaims | None:
    """The verified access token of ``Authorization: Bearer ...``; None without the header.
    Raises ExpiredTokenError / InvalidTokenError (401)."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidTokenError("expected 'Authorization: Bearer <access token>'")
    ctx = ctx_of(request)
    claims = verify_access_token(ctx.secret, token.strip(), int(time.time()))
    try:
        int(claims.sub)
    except ValueError:
        raise InvalidTokenError("token subject is not a user id") from None
    ctx.revocations.check(claims)  # logged out (on any instance) since it was issued
    return claims


def require_claims(request: web.Request) -> AccessClaims:
    claims = bearer_claims(request)
    if claims is None:
        raise ApiError(
            401, "auth_required", "this endpoint needs 'Authorization: Bearer <access token>'"
        )
    return claims


def require_user_id(request: web.Request) -> int:
    return int(require_claims(request).sub)


def optional_user_id(request: web.Request) -> int | None:
    claims = bearer_claims(request)
    return None if claims is None else int(claims.sub)


# -- rate limits ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _trusted(setting: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False)
        for part in setting.split(",")
        if part.strip()
    )


def _is_trusted(
    address: str, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_ip(request: web.Request) -> str:
    """The client address for per-IP limits: ``request.remote``, or, when that is one of
    the ``trusted_proxies``, the right-most address of ``X-Forwarded-For`` that is not a
    trusted proxy (the left part of the header is whatever the client sent, so it is never
    believed on its own)."""
    remote = request.remote or "unknown"
    networks = _trusted(ctx_of(request).settings.trusted_proxies)
    if not networks or not _is_trusted(remote, networks):
        return remote
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, networks):
            return hop
    return remote


async def rate_limit(request: web.Request, *hits: tuple[str, str]) -> None:
    """Take a token from each ``(limit name, key)``; 429 ``rate_limited`` when one is empty.
    The buckets are shared by every instance when Redis is configured."""
    limiter = request.app.get(RATE_LIMITER)
    if limiter is None:
        return
    wait = await limiter.acheck(*hits)
    if wait > 0:
        seconds = retry_after_s(wait)
        raise ApiError(
            429,
            "rate_limited",
            f"too many requests; try again in {seconds} s",
            retry_after=seconds,
        )


# -- users in answers ----------------------------------------------------------------------


class Names:
    """Looks up users for answers, each id once per request."""

    def __init__(self, request: web.Request) -> None:
        self._store = ctx_of(request).store
        self._seen: dict[int, dict[str, Any]] = {}

    async def user(self, user_id: int | None) -> dict[str, Any] | None:
        if user_id is None:
            return None
        ref = self._seen.get(user_id)
        if ref is None:
            try:
                u = await db("get_user", self._store.get_user(user_id))
                ref = {"id": u.id, "name": u.name, "rating": round(u.rating)}
            except NotFoundError:
                ref = {"id": user_id, "name": None, "rating": None}
            self._seen[user_id] = ref
        return ref

    async def player(self, user_id: int | None, bot: str | None) -> dict[str, Any] | None:
        """A side of a game: a user, a bot (``{"bot": "katago:b6"}``) or nobody."""
        if bot is not None:
            return {"bot": bot}
        return await self.user(user_id)


# -- the middleware ------------------------------------------------------------------------


def _route_label(request: web.Request) -> str:
    info = request.match_info
    route = getattr(info, "route", None)
    resource = getattr(route, "resource", None)
    if resource is None or getattr(info, "http_exception", None) is not None:
        return "(unmatched)"
    return str(resource.canonical)


_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def _error_response(status: int, body: dict[str, Any]) -> web.Response:
    headers: dict[str, str] = {}
    retry = body["error"].get("retry_after")
    if isinstance(retry, int):
        headers["Retry-After"] = str(retry)
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="goapp"'
    ERRORS.labels(code=str(body["error"].get("code", "unknown"))).inc()
    return json_response(body, status=status, headers=headers)


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, error mapping, request metrics and the access log, for every route."""
    incoming = request.headers.get("X-Request-Id", "")
    request_id = incoming if _REQUEST_ID_RE.fullmatch(incoming) else secrets.token_hex(8)
    request[REQUEST_ID_KEY] = request_id
    token = REQUEST_ID.set(request_id)
    start = time.perf_counter()
    try:
        response: web.StreamResponse
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = _HTTP_CODES.get(exc.status, f"http_{exc.status}")
            message = exc.reason or code
            if exc.status == 413:
                message = "the request body is too large"
            response = _error_response(exc.status, error_body(code, message))
            if "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            described = describe(exc)
            if described is None:
                log.exception(
                    "unhandled error in %s %s",
                    request.method,
                    request.path,
                    extra={"route": _route_label(request)},
                )
                response = _error_response(500, INTERNAL_ERROR)
            else:
                response = _error_response(*described)
        if not response.prepared:  # a WebSocket or a stream has sent its headers already
            response.headers["X-Request-Id"] = request_id
        status = response.status
        HTTP_REQUESTS.labels(route=_route_label(request), status=str(status)).inc()
        log.info(
            "%s %s %s",
            request.method,
            request.path,
            status,
            extra={
                "method": request.method,
                "route": _route_label(request),
                "status": status,
                "ms": round((time.perf_counter() - start) * 1000, 2),
            },
        )
        return response
    finally:
        REQUEST_ID.reset(token)
