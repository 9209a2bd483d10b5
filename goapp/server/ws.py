"""The WebSocket gateway: ``GET /ws`` (docs/protocol.md is the client's reference).

Handshake: the Origin (when the client sends one: browsers always do) must be one of
``settings.allowed_origins``, else 403; the access token comes from ``?token=`` or from the
subprotocol list (``Sec-WebSocket-Protocol: goapp.v1, bearer.<token>``: browsers cannot set
``Authorization`` on a WebSocket) and is verified *before* the upgrade: a bad, forged or
expired token gets HTTP 401 with the usual error body and the socket never opens. No token
means a guest, who may watch games and read chat but not act or chat.

After the upgrade the server sends ``welcome`` and then applies messages one at a time (so a
client's actions are applied in the order it sent them). Frames come straight from
aiohttp's parser (:mod:`goapp.server.ws_inbox`, :class:`_Reader`): no task waits on an
idle socket, which keeps the collector's pauses short at 10k sockets. Every message is
charged against the connection's message credits on arrival, decoded strictly
(:mod:`goapp.protocol`), dispatched by the message's class (``_DISPATCH``) and
answered with ``ack`` or ``error`` carrying the client's ``id``. Outgoing frames are encoded
once and written to the transport by the hub (:class:`goapp.bus.conn.Conn`), never
awaited.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import orjson
from aiohttp import WebSocketError, WSMsgType, web

from goapp import protocol as p
from goapp._core import encode_ws_frame
from goapp.bus.conn import Conn
from goapp.bus.hub import Hub
from goapp.game.errors import BadAction, GameNotFound
from goapp.obs.metrics import ACTION_LATENCY, WS_MESSAGES
from goapp.protocol import event_frame
from goapp.server.api.common import client_ip
from goapp.server.auth import AccessClaims, AuthError, verify_access_token
from goapp.server.context import CTX, ServerContext
from goapp.server.errors import INTERNAL_ERROR, ApiError, describe, error_body
from goapp.server.ws_inbox import Inbox, InboxWebSocketResponse

__all__ = [
    "MAX_CHAT_CHARS",
    "MAX_MSG_SIZE",
    "MAX_SUBSCRIPTIONS",
    "MSG_BURST",
    "MSG_RATE",
    "setup_routes",
    "ws_handler",
]

log = logging.getLogger("goapp.ws")

MAX_MSG_SIZE = 4096
"""Largest client message (bytes); a bigger frame closes the socket with 1009."""
MSG_RATE = 20.0
MSG_BURST = 40.0
"""Message credits per connection: a token bucket of 40 refilled at 20 per second. Chat has
a budget per user on top (``chat:user`` in :mod:`goapp.server.ratelimit`)."""
MAX_CHAT_CHARS = 500
MAX_SUBSCRIPTIONS = 64
"""Games one connection may watch at once."""
CLOSE_TIMEOUT_S = 5.0

_ACTION_LATENCY = ACTION_LATENCY.labels(via="ws")
_MESSAGE_COUNTERS = tuple(WS_MESSAGES.labels(type=t) for t in p.CLIENT_TYPES)
_BAD_MESSAGE_COUNTER = WS_MESSAGES.labels(type="invalid")
PONG_EMPTY = encode_ws_frame(0xA, b"")


def setup_routes(app: web.Application) -> None:
    """Register ``/ws`` on ``app`` and run the hub's ping/idle ticker while the app runs
    (several apps may share one hub: both calls are idempotent). The hub is hooked to the
    game service by :func:`goapp.server.wiring.open_services`."""
    app.router.add_get("/ws", ws_handler)

    async def start_hub(app: web.Application) -> None:
        app[CTX].hub.start()

    async def stop_hub(app: web.Application) -> None:
        await app[CTX].hub.stop()

    app.on_startup.append(start_hub)
    app.on_shutdown.append(stop_hub)


# -- the handshake ----------------------------------------------------------------------------


def _refuse(status: int, code: str, message: str, **details: Any) -> web.Response:
    return web.json_response(error_body(code, message, **details), status=status)


def _too_many(scope: str, cap: int) -> web.Response:
    return _refuse(
        429,
        "too_many_connections",
        f"at most {cap} WebSocket connections per {scope}; close one first",
        scope=scope,
        limit=cap,
    )


def _token_of(request: web.Request) -> str | None:
    token = request.query.get("token")
    if token:
        return token
    for proto in request.headers.get("Sec-WebSocket-Protocol", "").split(","):
        proto = proto.strip()
        if proto.startswith("bearer."):
            return proto[len("bearer.") :]
    return None


def _verify(ctx: ServerContext, token: str) -> AccessClaims:
    claims = verify_access_token(ctx.secret, token, int(time.time()))
    try:
        int(claims.sub)
    except ValueError:
        raise ApiError(401, "token_invalid", "token subject is not a user id") from None
    ctx.revocations.check(claims)  # logged out (on any instance) since it was issued
    return claims


async def ws_handler(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    reader = _Reader(ctx)
    ws = InboxWebSocketResponse(
        on_frame=reader.on_frame,
        on_eof=reader.on_eof,
        protocols=(p.PROTOCOL,),
        compress=False,
        autoping=False,
        max_msg_size=MAX_MSG_SIZE,
        timeout=CLOSE_TIMEOUT_S,
    )
    if not ws.can_prepare(request).ok:
        return _refuse(426, "upgrade_required", "this endpoint only speaks WebSocket")
    origin = request.headers.get("Origin")
    if origin is not None and origin.rstrip("/") not in ctx.settings.allowed_origins:
        return _refuse(403, "origin_forbidden", f"origin {origin!r} is not allowed")
    claims: AccessClaims | None = None
    token = _token_of(request)
    if token is not None:
        try:
            claims = _verify(ctx, token)
        except (AuthError, ApiError) as exc:
            described = describe(exc)
            assert described is not None
            return web.json_response(described[1], status=401)

    # Caps (settings; counted from the handshake on, so a burst cannot slip past them)
    settings, counts = ctx.settings, ctx.sockets
    address = client_ip(request)
    user_key = None if claims is None else f"user:{int(claims.sub)}"
    if user_key is not None and not counts.try_open(user_key, settings.ws_max_per_user):
        return _too_many("user", settings.ws_max_per_user)
    if not counts.try_open(address, settings.ws_max_per_ip):
        if user_key is not None:
            counts.closed(user_key)
        return _too_many("address", settings.ws_max_per_ip)
    try:
        return await _serve(ctx, request, ws, reader, claims)
    finally:
        counts.closed(address)
        # the user the socket counted for: from the token, or from an ``auth`` message since
        conn = reader.conn
        user_id = conn.user_id if conn is not None else None if claims is None else int(claims.sub)
        if user_id is not None:
            counts.closed(f"user:{user_id}")


async def _serve(
    ctx: ServerContext,
    request: web.Request,
    ws: InboxWebSocketResponse,
    reader: _Reader,
    claims: AccessClaims | None,
) -> web.StreamResponse:
    """The upgrade and the connection's life, once the handshake checks passed."""
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("the peer went away before the upgrade")
    conn = Conn(
        transport,
        ws,
        user_id=None if claims is None else int(claims.sub),
        name=None if claims is None else claims.name,
    )
    conn.done = asyncio.get_running_loop().create_future()
    conn.credits = MSG_BURST
    reader.conn = conn
    await ws.prepare(request)  # frames from here on wait in the reader until start()
    hub = ctx.hub
    hub.register(conn)
    if claims is not None:
        _arm_expiry(conn, claims.exp)
    chat = ctx.limiter.limits.get("chat:user")
    try:
        conn.send(
            p.encode_frame(
                p.Welcome(
                    user=None if claims is None else p.UserRef(int(claims.sub), claims.name),
                    server_time=p.server_time_ms(),
                    protocol=p.PROTOCOL,
                    instance=ctx.bus.instance_id,
                    limits=p.Limits(
                        max_msg_size=MAX_MSG_SIZE,
                        msg_rate=MSG_RATE,
                        msg_burst=MSG_BURST,
                        chat_rate=None if chat is None else chat.per_s,
                        chat_burst=None if chat is None else chat.burst,
                        max_chat_chars=MAX_CHAT_CHARS,
                        max_subscriptions=MAX_SUBSCRIPTIONS,
                    ),
                )
            )
        )
        reader.start(ws.inbox)
        await conn.done
        if reader.worker is not None:  # the message being applied finishes first
            await reader.worker
        if conn.close_task is not None:  # our close frame goes out before aiohttp's own
            await conn.close_task
    except asyncio.CancelledError:
        if reader.worker is not None:  # server shutdown: as the read loop's await would be
            reader.worker.cancel()
        raise
    finally:
        hub.unregister(conn)
    return ws


def _arm_expiry(conn: Conn, exp: int) -> None:
    """Close with 1008 when the token expires (unless an ``auth`` message extends it)."""
    if conn.expiry is not None:
        conn.expiry.cancel()
    delay = max(0.0, exp - time.time())
    conn.expiry = asyncio.get_running_loop().call_later(
        delay, conn.close, 1008, "token expired", "expired"
    )


# -- reading ----------------------------------------------------------------------------------

#: Frames waiting to be applied before the socket stops being read (resumed at half).
MAX_PENDING = 64
_EOF = object()  # the peer went away
_RATE_LIMITED = object()  # a message over the connection's credits


class _Reader:
    """One connection's incoming frames, applied one at a time in the order they came.

    :class:`~goapp.server.ws_inbox.Inbox` calls :meth:`on_frame` from the protocol callback
    that parsed the frame. Pings and pongs are answered there. Everything else goes through
    one ordered pipeline: a task (``worker``) exists only while messages wait or one is being
    applied, so a socket at rest holds no task, coroutine or future (the reason for the
    inbox: see its module docstring). Credits are charged on arrival.
    """

    __slots__ = ("conn", "ctx", "inbox", "paused", "pending", "worker")

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.conn: Conn | None = None
        self.inbox: Inbox | None = None  # set by start(): until then frames wait
        self.pending: deque[Any] = deque()
        self.worker: asyncio.Task[None] | None = None
        self.paused = False

    def start(self, inbox: Inbox | None) -> None:
        self.inbox = inbox
        if self.pending and self.worker is None:
            self._spawn(self.pending.popleft())

    def on_frame(self, msg: Any) -> bool:
        conn = self.conn
        if conn is None or conn.closed:
            return False  # a close is under way: aiohttp's close() reads the rest
        now = conn.last_seen = time.monotonic()
        kind = msg.type
        if kind is WSMsgType.PONG:
            return True
        if kind is WSMsgType.PING:
            conn.send(PONG_EMPTY if not msg.data else encode_ws_frame(0xA, msg.data))
            return True
        if kind is WSMsgType.TEXT and not _take_credit(conn, now):
            msg = _RATE_LIMITED
        self._push(msg)
        return True

    def on_eof(self) -> None:
        self._push(_EOF)

    def _push(self, item: Any) -> None:
        if self.worker is None and self.inbox is not None:
            self._spawn(item)
            return
        self.pending.append(item)
        if len(self.pending) >= MAX_PENDING and not self.paused and self.inbox is not None:
            self.paused = True
            self.inbox.pause()

    def _spawn(self, item: Any) -> None:
        self.worker = asyncio.get_running_loop().create_task(self._work(item))

    async def _work(self, item: Any) -> None:
        conn = self.conn
        assert conn is not None
        pending = self.pending
        try:
            while await self._apply(conn, item) and not conn.closed and pending:
                item = pending.popleft()
                if self.paused and len(pending) <= MAX_PENDING // 2:
                    self.paused = False
                    assert self.inbox is not None
                    self.inbox.resume()
            if conn.closed or item is _EOF:
                conn.finish()
        finally:
            self.worker = None

    async def _apply(self, conn: Conn, item: Any) -> bool:
        """Apply one frame; False when the connection is over."""
        if item is _EOF:
            return False
        if item is _RATE_LIMITED:
            _error(
                conn,
                None,
                "rate_limited",
                f"more than {MSG_RATE:g} messages a second; slow down",
                retry_after=round(1.0 / MSG_RATE, 3),
            )
            return True
        kind = item.type
        if kind is WSMsgType.TEXT:
            await _on_text(self.ctx, self.ctx.hub, conn, item.data)
            return True
        if kind is WSMsgType.BINARY:
            _BAD_MESSAGE_COUNTER.inc()
            _error(conn, None, "bad_message", "binary frames are not accepted; send JSON text")
            return True
        ws = conn.ws
        assert ws is not None and self.inbox is not None
        conn.closed = True  # no more frames out, none in (the inbox leaves them to aiohttp)
        if kind is WSMsgType.CLOSE:  # the client's close: answer it and close the socket
            self.inbox.requeue(item)
            await ws.close(drain=False)
        elif kind is WSMsgType.ERROR:  # a frame the parser refused: 1009, 1007, 1002
            exc = item.data
            await ws.close(code=exc.code if isinstance(exc, WebSocketError) else 1011)
        return False


def _error(conn: Conn, msg_id: Any, code: str, message: str, **details: Any) -> None:
    _send_error(conn, msg_id, error_body(code, message, **details))


def _send_error(conn: Conn, msg_id: Any, body: dict[str, Any]) -> None:
    """An ``error`` frame from a :func:`~goapp.server.errors.describe` body."""
    conn.send(p.encode_frame(p.Error(id=msg_id, error=body["error"])))


def _ack(conn: Conn, msg_id: Any, **fields: Any) -> None:
    conn.send(p.encode_frame(p.Ack(id=msg_id, **fields)))


def _take_credit(conn: Conn, now: float) -> bool:
    credits = min(MSG_BURST, conn.credits + (now - conn.credits_at) * MSG_RATE)
    conn.credits_at = now
    if credits < 1.0:
        conn.credits = credits
        return False
    conn.credits = credits - 1.0
    return True


async def _on_text(ctx: ServerContext, hub: Hub, conn: Conn, data: str) -> None:
    try:
        msg = p.decode_client(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        _BAD_MESSAGE_COUNTER.inc()
        _error(conn, _peek_id(data), "bad_message", str(exc))
        return
    index = _DISPATCH[msg.__class__]
    _MESSAGE_COUNTERS[index].inc()
    try:
        await _HANDLERS[index](ctx, hub, conn, msg)
    except Exception as exc:
        described = describe(exc)
        if described is None:
            log.exception("websocket message %s failed", p.CLIENT_TYPES[index])
            body = INTERNAL_ERROR
        else:
            body = described[1]
        _send_error(conn, msg.id, body)


def _peek_id(data: str) -> Any:
    """The ``id`` of a message that failed validation, so the error can carry it."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if isinstance(obj, dict):
        value = obj.get("id")
        if (isinstance(value, str) and len(value) <= p.MAX_ID_CHARS) or (
            isinstance(value, int) and not isinstance(value, bool)
        ):
            return value
    return None


# -- handlers (in the order of goapp.protocol.CLIENT_MESSAGES) --------------------------------


async def on_hello(ctx: ServerContext, hub: Hub, conn: Conn, msg: Any) -> None:
    assert isinstance(msg, p.Hello)
    resumed: dict[str, int] = {}
    for game_id, since in (msg.resume or {}).items():
        try:
            ok = await _subscribe(ctx, hub, conn, msg.id, game_id, since)
        except Exception as exc:
            described = describe(exc)
            if described is None:
                raise
            body = {"error": {**described[1]["error"], "game_id": game_id}}
            _send_error(conn, msg.id, body)
            continue
        if ok:
            resumed[str(game_id)] = since
    _ack(conn, msg.id, resumed=resumed)


async def on_subscribe(ctx: ServerContext, hub: Hub, conn: Conn, msg: Any) -> None:
    assert isinstance(msg, p.Subscribe)
    if await _subscribe(ctx, hub, conn, msg.id, msg.game_id, msg.since):
        _ack(conn, msg.id, game_id=msg.game_id, watchers=hub.watchers(msg.game_id))


async def _subscribe(
    ctx: ServerContext, hub: Hub, conn: Conn, msg_id: Any, game_id: int, since: int | None
) -> bool:
    """Register first (buffering), then send the state or replay the log, then go live: no
    event is missed and none is sent twice. False (after an error frame) on failure."""
    if game_id not in conn.games and len(conn.games) >= MAX_SUBSCRIPTIONS:
        _error(conn, msg_id, "too_many_subscriptions", f"at most {MAX_SUBSCRIPTIONS} games")
        return False
    hub.subscribe_game(conn, game_id)
    try:
        await ctx.bus.watch(game_id)  # receive the game's events before reading its state
        if since is None:
            view = await ctx.games.view(game_id)
            sent = view.seq
            conn.send(p.encode_frame(p.State(game_id=game_id, seq=view.seq, view=view)))
        else:
            events = await ctx.games.events_since(game_id, since)
            if not events and since == 0:
                raise GameNotFound(f"game {game_id} not found")
            sent = since
            for n, event in enumerate(events, 1):
                if not conn.send(event_frame(event)):
                    return False
                sent = event.seq
                if n % 64 == 0:
                    await _drain(conn)
                    if conn.closed:
                        return False
            if not events:  # GameNotFound for no game; a ``since`` from the future is clamped
                sent = min(since, (await ctx.games.view(game_id)).seq)
    except BaseException:
        hub.unsubscribe_game(conn, game_id)
        raise
    hub.go_live(conn, game_id, sent)
    return True


async def _drain(conn: Conn) -> None:
    """During a long replay, wait until the client has taken half the buffer (or drop it)."""
    if conn.transport.get_write_buffer_size() <= conn.limit // 2 or conn.ws is None:
        return
    writer = conn.ws._payload_writer
    if writer is None:
        return
    try:
        await asyncio.wait_for(writer.drain(), timeout=10.0)
    except (TimeoutError, ConnectionError):
        conn.abort("slow")


async def on_unsubscribe(ctx: ServerContext, hub: Hub, conn: Conn, msg: Any) -> None:
    assert isinstance(msg, p.Unsubscribe)
    hub.unsubscribe_game(conn, msg.game_id)
    _ack(conn, msg.id)


async def on_subscribe_lobby(ctx: ServerContext, hub: Hub, conn: Conn, msg: Any) -> None:
    hub.subscribe_lobby(conn)
    _ack(conn, msg.id)
    conn.send(p.encode_frame(hub.presence_snapshot()))


async def on_unsubscribe_lobby(ctx: ServerContext, hub: Hub, conn: Conn, msg: Any) -> None:
    hub.unsubscribe_lobby(conn)
    _ack(conn, msg.id)


async def on_action(ctx: ServerContext, hub: Hub, conn: Conn, msg: Any) -> None:
    assert isinstance(msg, p.Action)
    if conn.user_id is None:
        _error(conn, msg.id, "auth_required", "log in to play")
        return
    t0 = time.perf_counter()
    # Only an explicit request_id makes an action idempotent: message ids are per connection
    # and may restart after a reconnect, so they must never select an earlier action.
    # The action is still its raw JSON (goapp.protocol.Action): the game service decodes it
    # once, straight into its action union, with a prebuilt msgspec Decoder (0.3 us; a dict
    # through msgspec.convert re-walks the union on every call: 12 us). So an action is
    # never a dict, and the WebSocket refuses the same actions as HTTP, with the same
    # messages.
    # The events this action publishes for this socket are held and go out with the ack
    # in one write (Conn.hold_for). On an error (e.g. a flag that fell: its timeout events
    # were committed and published) the held frames go out alone, then the error frame.
    conn.hold_for(asyncio.current_task())
    ack = b""
    try:
        try:
            events = await ctx.games.act(
                msg.game_id,
                conn.user_id,
                msg.action,
                request_id=msg.request_id,
                lag_ms=msg.lag_ms,
            )
        except BadAction:
            if p.action_is_object(msg.action):
                raise
            _BAD_MESSAGE_COUNTER.inc()  # not even an action: the protocol's refusal
            _error(conn, msg.id, "bad_message", "Expected `object` - at `$.action`")
            return
        _ACTION_LATENCY.observe(time.perf_counter() - t0)
        # The events themselves are not repeated here: a subscribed mover gets them as
        # event frames, written with this ack in one write (see hold_for above).
        ack = p.encode_frame(
            p.Ack(id=msg.id, game_id=msg.game_id, seq=events[-1].seq if events else None)
        )
    finally:
        conn.release(ack)


async def on_chat(ctx: ServerContext, hub: Hub, conn: Conn, msg: Any) -> None:
    assert isinstance(msg, p.Chat)
    if conn.user_id is None:
        _error(conn, msg.id, "auth_required", "log in to chat")
        return
    room = msg.room
    try:
        game_id = p.room_game_id(room)
    except ValueError:
        _error(conn, msg.id, "bad_message", "room must be 'lobby' or 'game:<id>' (ASCII digits)")
        return
    joined = conn.lobby if game_id is None else game_id in conn.games
    if not joined:
        _error(conn, msg.id, "not_subscribed", f"subscribe to {room} before chatting there")
        return
    text = msg.text.strip()
    if not text or len(text) > MAX_CHAT_CHARS or _has_controls(text):
        _error(
            conn,
            msg.id,
            "bad_chat",
            f"chat text must be 1 to {MAX_CHAT_CHARS} characters without control characters",
        )
        return
    # per user, over all of the user's sockets (and instances, with Redis)
    wait = await ctx.limiter.acheck(("chat:user", str(conn.user_id)))
    if wait > 0:
        _error(
            conn,
            msg.id,
            "rate_limited",
            "too many chat lines; slow down",
            retry_after=round(wait, 3),
        )
        return
    line = await ctx.store.add_chat(room, conn.user_id, text)
    frame = p.encode_frame(
        p.ChatLine(
            room=room,
            id=line.id,
            user=p.UserRef(conn.user_id, conn.name),
            text=line.text,
            created=line.created_at.isoformat(),
        )
    )
    _ack(conn, msg.id, chat_id=line.id)
    hub.publish_room(room, frame)


def _has_controls(text: str) -> bool:
    """Control characters other than newline and tab (which chat may contain)."""
    return any((ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0 for c in text)


async def on_ping(ctx: ServerContext, hub: Hub, conn: Conn, msg: Any) -> None:
    assert isinstance(msg, p.Ping)
    conn.send(p.encode_frame(p.Pong(id=msg.id, t=msg.t, server_time=p.server_time_ms())))


async def on_auth(ctx: ServerContext, hub: Hub, conn: Conn, msg: Any) -> None:
    """A fresh token: the same user (or a guest logging in) keeps the socket open longer."""
    assert isinstance(msg, p.Auth)
    try:
        claims = _verify(ctx, msg.token)
    except (AuthError, ApiError) as exc:
        described = describe(exc)
        assert described is not None
        _send_error(conn, msg.id, described[1])
        return
    user_id = int(claims.sub)
    if conn.user_id is not None and conn.user_id != user_id:
        _error(conn, msg.id, "forbidden", "a connection cannot change user; reconnect")
        return
    if conn.user_id is None:  # a guest logs in: the socket counts against the user's cap
        cap = ctx.settings.ws_max_per_user
        if not ctx.sockets.try_open(f"user:{user_id}", cap):
            _error(
                conn,
                msg.id,
                "too_many_connections",
                f"at most {cap} WebSocket connections per user; close one first",
                scope="user",
                limit=cap,
            )
            return
    hub.set_user(conn, user_id, claims.name)
    _arm_expiry(conn, claims.exp)
    _ack(conn, msg.id, user=p.UserRef(user_id, claims.name), exp=claims.exp)


Handler = Callable[[ServerContext, Hub, Conn, Any], Awaitable[None]]

_HANDLERS: tuple[Handler, ...] = (
    on_hello,
    on_subscribe,
    on_unsubscribe,
    on_subscribe_lobby,
    on_unsubscribe_lobby,
    on_action,
    on_chat,
    on_ping,
    on_auth,
)
assert len(_HANDLERS) == len(p.CLIENT_MESSAGES)
#: A client message's class -> its handler's index (and its counter's).
_DISPATCH: dict[type, int] = {cls: i for i, cls in enumerate(p.CLIENT_MESSAGES)}
