"""Accounts: register, login, refresh (rotation with reuse detection), logout, me, users."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import msgspec
from aiohttp import web

from goapp.server import auth
from goapp.server.api.common import (
    RATE_LIMITER,
    Param,
    Route,
    client_ip,
    ctx_of,
    db,
    decode_body,
    json_response,
    rate_limit,
    require_user_id,
)
from goapp.server.api.ratings import PoolRatingOut, user_ratings
from goapp.server.auth import InvalidTokenError, InvalidUsernameError
from goapp.server.context import ServerContext
from goapp.server.errors import ApiError
from goapp.server.ratelimit import retry_after_s
from goapp.store.errors import ConflictError, NotFoundError
from goapp.store.records import RefreshToken, User

log = logging.getLogger("goapp.api")


class Credentials(msgspec.Struct, forbid_unknown_fields=True):
    """Body of register and login."""

    name: str
    password: str


class RefreshBody(msgspec.Struct, forbid_unknown_fields=True):
    refresh_token: str


class UserOut(msgspec.Struct):
    id: int
    name: str
    rating: float
    games_count: int
    created_at: datetime


class ProfileOut(UserOut):
    """A user's public profile: ``ratings`` by pool (``overall``, ``9``, ``13``, ``19``),
    only the pools the user has rated games in."""

    ratings: dict[str, PoolRatingOut]


class Session(msgspec.Struct):
    """What register, login and refresh answer."""

    user: UserOut
    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int


class Ok(msgspec.Struct):
    ok: bool


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        name=user.name,
        rating=round(user.rating, 1),
        games_count=user.games_count,
        created_at=user.created_at,
    )


async def _in_thread(fn: Any, *args: Any) -> Any:
    """scrypt is CPU-bound (~0.1 s): never on the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def _session(ctx: ServerContext, user: User) -> Session:
    settings = ctx.settings
    now = int(time.time())
    access = auth.issue_access_token(ctx.secret, user.id, user.name, settings.access_token_ttl, now)
    refresh, refresh_hash = auth.new_refresh_token()
    expires = datetime.now(UTC) + timedelta(seconds=settings.refresh_token_ttl)
    await db("create_refresh_token", ctx.store.create_refresh_token(refresh_hash, user.id, expires))
    return Session(
        user=user_out(user),
        access_token=access,
        token_type="Bearer",
        expires_in=settings.access_token_ttl,
        refresh_token=refresh,
        refresh_expires_in=settings.refresh_token_ttl,
    )


async def register(request: web.Request) -> web.Response:
    await rate_limit(request, ("register:ip", client_ip(request)))
    body = await decode_body(request, Credentials)
    ctx = ctx_of(request)
    name = auth.validate_username(body.name)
    auth.validate_password(body.password)
    password_hash = await _in_thread(auth.hash_password, body.password)
    try:
        user = await db(
            "create_user",
            ctx.store.create_user(name, password_hash, key=auth.username_key(name)),
        )
    except ConflictError:
        raise ApiError(409, "name_taken", f"the name {name!r} is taken") from None
    log.info("user registered", extra={"user_id": user.id})
    return json_response(await _session(ctx, user), status=201)


#: The login back-off's device cookie (docs/api.md, "Login back-off"): only login reads it.
DEVICE_COOKIE = "goapp_device"


async def login(request: web.Request) -> web.Response:
    address = client_ip(request)
    await rate_limit(request, ("login:ip", address))
    body = await decode_body(request, Credentials)
    ctx = ctx_of(request)
    user: User | None = None
    account: str | None = None  # the back-off's key: the name, found or not
    try:
        name = auth.validate_username(body.name)
        account = auth.username_key(name)
        user = await db("get_user_by_name", ctx.store.get_user_by_name(name, key=account))
    except (InvalidUsernameError, NotFoundError):
        user = None
    guard = request.app[RATE_LIMITER].login
    if guard is not None and account is not None:
        known = _known_device(request, ctx, user) or await guard.is_known(account, address)
        wait = await guard.attempt(account, known=known)
        if wait > 0:
            seconds = retry_after_s(wait)
            raise ApiError(
                429,
                "login_delayed",
                f"too many failed logins to this account; try again in {seconds} s",
                retry_after=seconds,
            )
    stored = user.password_hash if user is not None else None
    # The same scrypt work whether or not the name exists (verify_password(pw, None)).
    ok = await _in_thread(auth.verify_password, body.password, stored)
    if not ok or user is None:
        raise ApiError(401, "bad_credentials", "wrong name or password")
    if guard is not None and account is not None:
        await guard.succeeded(account, address)
    if stored is not None and auth.needs_rehash(stored):
        new_hash = await _in_thread(auth.hash_password, body.password)
        await db("set_password_hash", ctx.store.set_password_hash(user.id, new_hash))
    response = json_response(await _session(ctx, user))
    if guard is not None:
        ttl = int(guard.backoff.known_s)
        response.set_cookie(
            DEVICE_COOKIE,
            auth.issue_device_cookie(ctx.secret, user.id, ttl, int(time.time())),
            max_age=ttl,
            path="/api/login",
            httponly=True,
            samesite="Strict",
            secure=ctx.settings.site_url.startswith("https:"),
        )
    return response


def _known_device(request: web.Request, ctx: ServerContext, user: User | None) -> bool:
    """Whether the client shows a device cookie of ``user`` (it logged in before)."""
    value = request.cookies.get(DEVICE_COOKIE)
    if user is None or not value:
        return False
    return auth.verify_device_cookie(ctx.secret, value, user.id, int(time.time()))


async def refresh(request: web.Request) -> web.Response:
    body = await decode_body(request, RefreshBody)
    ctx = ctx_of(request)
    old_hash = auth.hash_refresh_token(body.refresh_token)
    try:
        record = await db("get_refresh_token", ctx.store.get_refresh_token(old_hash))
    except NotFoundError:
        raise InvalidTokenError("unknown refresh token; log in again") from None
    now = datetime.now(UTC)
    if record.revoked_at is not None:
        await _refuse_retired(ctx, record)
    if record.expires_at <= now:
        raise InvalidTokenError("the refresh token has expired; log in again")
    try:
        user = await db("get_user", ctx.store.get_user(record.user_id))
    except NotFoundError:
        raise InvalidTokenError("the account no longer exists") from None
    new_token, new_hash = auth.new_refresh_token()
    expires = now + timedelta(seconds=ctx.settings.refresh_token_ttl)
    try:
        await db(
            "rotate_refresh_token",
            ctx.store.rotate_refresh_token(old_hash, new_hash, expires, now=now),
        )
    except ConflictError:  # retired meanwhile: rotated concurrently (reuse), or logged out
        try:
            record = await db("get_refresh_token", ctx.store.get_refresh_token(old_hash))
        except NotFoundError:
            raise InvalidTokenError("unknown refresh token; log in again") from None
        if record.revoked_at is not None:
            await _refuse_retired(ctx, record)
        raise InvalidTokenError("the refresh token has expired; log in again") from None
    except NotFoundError:
        raise InvalidTokenError("unknown refresh token; log in again") from None
    access = auth.issue_access_token(
        ctx.secret, user.id, user.name, ctx.settings.access_token_ttl, int(time.time())
    )
    session = Session(
        user=user_out(user),
        access_token=access,
        token_type="Bearer",
        expires_in=ctx.settings.access_token_ttl,
        refresh_token=new_token,
        refresh_expires_in=ctx.settings.refresh_token_ttl,
    )
    return json_response(session)


async def _refuse_retired(ctx: ServerContext, record: RefreshToken) -> NoReturn:
    """A revoked refresh token was presented: refuse it. One that a rotation replaced came
    back: it was stolen (or a client lost a race), so every session of the user ends
    (auth.py, "Refresh tokens", step 3). One ended by a logout is merely refused: an
    expected thing, not a theft (step 4)."""
    if record.rotated:
        await _reuse_detected(ctx, record.user_id)
    raise InvalidTokenError("this session has ended (logged out); log in again")


async def _reuse_detected(ctx: ServerContext, user_id: int) -> NoReturn:
    """Revoke every session of ``user_id`` and refuse."""
    count = await db("revoke_user_tokens", ctx.store.revoke_user_tokens(user_id))
    # the thief's access token too, durably and on every instance
    await db("revoke_access_tokens", ctx.revoke_user(user_id))
    log.warning(
        "refresh token reuse: every session of the user revoked",
        extra={"user_id": user_id, "revoked": count},
    )
    raise InvalidTokenError("this refresh token was already used; every session was ended")


async def logout(request: web.Request) -> web.Response:
    body = await decode_body(request, RefreshBody)
    ctx = ctx_of(request)
    token_hash = auth.hash_refresh_token(body.refresh_token)
    try:
        record = await db("get_refresh_token", ctx.store.get_refresh_token(token_hash))
    except NotFoundError:
        return json_response(Ok(ok=True))  # already gone: logging out is idempotent
    await db("revoke_refresh_token", ctx.store.revoke_refresh_token(token_hash))
    # refuse the user's access tokens issued until now (durably: a restart must not revive
    # them) and close their sockets, on every instance; the user's other sessions refresh
    # and go on. A store failure answers 503 and the client retries: logout is idempotent.
    await db("revoke_access_tokens", ctx.revoke_user(record.user_id))
    return json_response(Ok(ok=True))


async def me(request: web.Request) -> web.Response:
    user_id = require_user_id(request)
    try:
        user = await db("get_user", ctx_of(request).store.get_user(user_id))
    except NotFoundError:
        raise InvalidTokenError("the account no longer exists") from None
    return json_response(user_out(user))


async def get_user(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    store = ctx_of(request).store
    try:
        canon = auth.validate_username(name)
        user = await db(
            "get_user_by_name", store.get_user_by_name(canon, key=auth.username_key(canon))
        )
    except (InvalidUsernameError, NotFoundError):
        raise ApiError(404, "user_not_found", f"no user named {name!r}") from None
    out = user_out(user)
    ratings = await user_ratings(store, user.id)
    return json_response(ProfileOut(**msgspec.structs.asdict(out), ratings=ratings))


ROUTES = [
    Route(
        "POST",
        "/api/register",
        register,
        "Create an account and log in",
        "accounts",
        body=Credentials,
        response=Session,
        status=201,
        errors=(400, 409, 413, 415, 429),
        description="Names: 3-24 letters, digits, `_-.`; passwords: 8+ characters.",
    ),
    Route(
        "POST",
        "/api/login",
        login,
        "Log in with name and password",
        "accounts",
        body=Credentials,
        response=Session,
        errors=(400, 401, 413, 415, 429),
        description="Sets the device cookie `goapp_device` (HttpOnly, path /api/login): a "
        "client that shows it is exempt from the account's login back-off. 429 "
        "`rate_limited` past the per-address limit; 429 `login_delayed` (with "
        "`retry_after`) while the account's back-off holds after failed logins from "
        "clients it does not know (docs/api.md, Login back-off).",
    ),
    Route(
        "POST",
        "/api/refresh",
        refresh,
        "Trade a refresh token for a new access token and refresh token (rotation)",
        "accounts",
        body=RefreshBody,
        response=Session,
        errors=(400, 401),
        description="A refresh token works once. Presenting one that a rotation already "
        "replaced ends every session of the user (theft detection); a logged-out one is "
        "merely refused (401).",
    ),
    Route(
        "POST",
        "/api/logout",
        logout,
        "Revoke a refresh token and close the user's WebSockets",
        "accounts",
        body=RefreshBody,
        response=Ok,
        errors=(400, 401, 503),
        description="Also refuses the user's access tokens issued before it, on every "
        "instance and across restarts (the user's other sessions refresh and go on). "
        "Idempotent: a well-formed token that is unknown or already revoked answers 200; "
        "retry after a 503. A malformed token answers 401 `token_invalid`.",
    ),
    Route(
        "GET",
        "/api/me",
        me,
        "The logged-in user",
        "accounts",
        response=UserOut,
        auth="required",
        errors=(401,),
    ),
    Route(
        "GET",
        "/api/users/{name}",
        get_user,
        "A user's public profile, with ratings by pool",
        "accounts",
        response=ProfileOut,
        params=(Param("name", "path", {"type": "string"}, "the user name", required=True),),
        errors=(404,),
    ),
]
