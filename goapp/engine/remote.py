"""The remote engine: KataGo on one machine (a GPU box), game servers elsewhere.

``goapp engine serve --listen 0.0.0.0:4100`` runs :func:`serve_engine`: the same supervised
:class:`~goapp.engine.katago.KataGoEngine` behind a small HTTP API. Every request needs
``Authorization: Bearer <engine_secret>`` (compared in constant time; anything else is
401). The secret has at least :data:`MIN_SECRET_CHARS` characters; without one the server
makes one (``DATA_DIR/engine_secret``, mode 0600) and says where it is. A client address
that gets the secret wrong :data:`FREE_FAILURES` times is refused with 429 (and
``Retry-After``) for a back-off that doubles with each further failure
(:class:`AuthThrottle`). A body that is not what the endpoint takes (not JSON, wrong types,
unknown fields, bad values) is 400 ``bad_request``. Put TLS in front of it (Nginx) when it
crosses an untrusted network.

=====================  =================================================================
``GET  /v1/state``     the engine's ``stats()`` (``state``: starting, up, degraded...)
``POST /v1/analyze``   ``{"query": <KataGo query JSON>, "timeout": s|null, "tag": str|null}``
                       -> ``{"results": {"<turn>": <KataGo result>}}``; an engine error is
                       ``{"error": {"code": "EngineBusyError", "message"}}`` with 503 (504
                       for a timeout, 400 for a query KataGo refused)
``POST /v1/cancel``    ``{"tag": str}`` -> ``{"cancelled": n}``
(any)                  401 ``unauthorized``, 429 ``rate_limited`` (too many wrong secrets),
                       400 ``bad_request`` (a malformed body)
=====================  =================================================================

:class:`RemoteEngine` is the client, with the calls the server uses of a local engine
(``analyze``, ``analyze_turns``, ``cancel_tag``, ``state``, ``stats``,
``start``/``close``). Its ``state`` comes from polling ``/v1/state``: ``degraded`` while
the remote engine is unreachable (or refuses the secret), whatever the remote says
otherwise. A query that cannot reach the remote raises
:class:`~goapp.engine.errors.EngineUnavailableError` (the bot driver retries).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hmac
import logging
import math
import secrets
import signal
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import aiohttp
import msgspec
from aiohttp import web

from goapp.backoff import Backoff
from goapp.engine import errors as E
from goapp.engine.katago import AnalysisQuery, AnalysisResult, KataGoEngine
from goapp.private_files import make_private_dir, write_new_private_file

__all__ = [
    "MIN_SECRET_CHARS",
    "AuthThrottle",
    "RemoteEngine",
    "create_engine_app",
    "engine_secret",
    "run_engine_server",
    "serve_engine",
]

log = logging.getLogger("goapp.engine.remote")

_UNSET: Any = object()
_ENGINE = web.AppKey("engine", KataGoEngine)
_SECRET = web.AppKey("secret", bytes)
_ERRORS: dict[str, type[E.EngineError]] = {
    cls.__name__: cls
    for cls in (
        E.EngineError,
        E.EngineUnavailableError,
        E.EngineBusyError,
        E.EngineTimeoutError,
        E.EngineCrashedError,
        E.EngineProtocolError,
        E.QueryCancelledError,
    )
}


#: Shortest secret the engine server accepts (a guessable secret hands out the GPU).
MIN_SECRET_CHARS = 16
#: Wrong secrets per client address: 5 cost nothing, then the address is refused for 1 s,
#: twice that after each further failure, up to 5 minutes; failures are forgotten 15
#: minutes after the last one. The login back-off's rule (:class:`Backoff`), other numbers.
SECRET_BACKOFF = Backoff(free=5, base_s=1.0, max_s=300.0, forget_s=900.0)
#: Wrong secrets a client address may send before it is refused with 429.
FREE_FAILURES = SECRET_BACKOFF.free
#: Longest query timeout a client may ask for, and longest tag.
MAX_TIMEOUT_S = 3600.0
MAX_TAG_CHARS = 200

_Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TAG_CHARS)]
_Timeout = Annotated[float, msgspec.Meta(gt=0, le=MAX_TIMEOUT_S)]


class _StrictQuery(AnalysisQuery, forbid_unknown_fields=True):
    """A query from the wire: KataGo's fields only (a typo is an error, not a default)."""


class AnalyzeBody(msgspec.Struct, forbid_unknown_fields=True):
    query: dict[str, Any]
    timeout: _Timeout | None = None
    tag: _Tag | None = None


class CancelBody(msgspec.Struct, forbid_unknown_fields=True):
    tag: _Tag


class AnalyzeAnswer(msgspec.Struct):
    results: dict[int, AnalysisResult]


class AuthThrottle:
    """Wrong-secret failures per client address, in a bounded LRU: after ``backoff.free``
    of them the address is refused for ``backoff.delay(failures)`` after each
    (:data:`SECRET_BACKOFF`). A success forgets the address's failures."""

    def __init__(
        self,
        *,
        backoff: Backoff = SECRET_BACKOFF,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backoff = backoff
        self.max_keys = max_keys
        self.clock = clock
        # address -> (failures, time of the last one, refused until)
        self._failures: OrderedDict[str, tuple[int, float, float]] = OrderedDict()

    def wait(self, address: str) -> float:
        """Seconds ``address`` is still refused (0: it may try)."""
        entry = self._failures.get(address)
        if entry is None:
            return 0.0
        now = self.clock()
        if now - entry[1] > self.backoff.forget_s:
            del self._failures[address]
            return 0.0
        return max(0.0, entry[2] - now)

    def failed(self, address: str) -> None:
        now = self.clock()
        count, last, _ = self._failures.get(address, (0, now, now))
        if now - last > self.backoff.forget_s:
            count = 0
        count += 1
        self._failures[address] = (count, now, now + self.backoff.delay(count))
        self._failures.move_to_end(address)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)


_THROTTLE = web.AppKey("throttle", AuthThrottle)


# -- the server ----------------------------------------------------------------------------


def _error(status: int, code: str, message: str, **headers: str) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers
    )


def _bad_request(message: str) -> web.Response:
    return _error(400, "bad_request", message)


@web.middleware
async def _auth(request: web.Request, handler: Any) -> web.StreamResponse:
    throttle = request.app[_THROTTLE]
    address = request.remote or "unknown"
    wait = throttle.wait(address)
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        return _error(
            429,
            "rate_limited",
            f"too many wrong secrets from this address; try again in {seconds} s",
            **{"Retry-After": str(seconds)},
        )
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    expected = request.app[_SECRET]
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
        throttle.failed(address)
        return _error(
            401,
            "unauthorized",
            "wrong or missing engine secret",
            **{"WWW-Authenticate": 'Bearer realm="goapp-engine"'},
        )
    throttle.succeeded(address)
    response: web.StreamResponse = await handler(request)
    return response


def _engine_error(exc: E.EngineError) -> web.Response:
    status = 503
    if isinstance(exc, E.EngineTimeoutError):
        status = 504
    elif isinstance(exc, E.EngineProtocolError):
        status = 400
    elif isinstance(exc, E.QueryCancelledError):
        status = 409
    return web.json_response(
        {"error": {"code": type(exc).__name__, "message": str(exc)}}, status=status
    )


async def _state(request: web.Request) -> web.Response:
    return web.json_response(request.app[_ENGINE].stats())


async def _analyze(request: web.Request) -> web.Response:
    try:
        body = msgspec.json.decode(await request.read(), type=AnalyzeBody)
        query = msgspec.convert(body.query, _StrictQuery)
        query.to_wire()  # values msgspec let through but KataGo's JSON cannot hold
    except (msgspec.ValidationError, msgspec.DecodeError, TypeError, ValueError) as exc:
        return _bad_request(str(exc))
    engine = request.app[_ENGINE]
    try:
        if body.timeout is None:
            results = await engine.analyze_turns(query, tag=body.tag)
        else:
            results = await engine.analyze_turns(query, timeout=body.timeout, tag=body.tag)
    except E.EngineError as exc:
        return _engine_error(exc)
    return web.Response(
        body=msgspec.json.encode(AnalyzeAnswer(results=results)), content_type="application/json"
    )


async def _cancel(request: web.Request) -> web.Response:
    try:
        body = msgspec.json.decode(await request.read(), type=CancelBody)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return _bad_request(str(exc))
    return web.json_response({"cancelled": request.app[_ENGINE].cancel_tag(body.tag)})


def check_secret(secret: str) -> None:
    """Raise ValueError, saying what to do, for a secret too weak to serve with."""
    if len(secret) < MIN_SECRET_CHARS:
        raise ValueError(
            f"engine_secret is too short ({len(secret)} characters; at least "
            f"{MIN_SECRET_CHARS}): use `openssl rand -hex 32`, or leave it unset and "
            "`goapp engine serve` makes one in DATA_DIR/engine_secret"
        )


def create_engine_app(engine: KataGoEngine, secret: str) -> web.Application:
    """The engine server's aiohttp application (the engine is started by the caller).
    Raises ValueError for a missing or short secret (:func:`check_secret`)."""
    check_secret(secret)
    app = web.Application(middlewares=[_auth], client_max_size=16 * 1024 * 1024)
    app[_ENGINE] = engine
    app[_SECRET] = secret.encode()
    app[_THROTTLE] = AuthThrottle()
    app.router.add_get("/v1/state", _state)
    app.router.add_post("/v1/analyze", _analyze)
    app.router.add_post("/v1/cancel", _cancel)
    return app


def engine_secret(settings: Any) -> tuple[str, Path | None]:
    """The secret to serve with: ``engine_secret`` when set, else the one stored in
    DATA_DIR/engine_secret (64 hex digits, mode 0600), made on first use. Returns the secret
    and the file it came from (None: from the settings)."""
    if settings.engine_secret:
        return settings.engine_secret, None
    path = Path(settings.data_dir) / "engine_secret"
    if not path.exists():
        make_private_dir(path.parent)
        # appears complete or not at all: a server starting at the same moment never reads
        # it half-written (another process may win the race; its secret is the one served)
        write_new_private_file(path, (secrets.token_hex(32) + "\n").encode("ascii"))
    if path.stat().st_mode & 0o077:
        raise ValueError(f"{path} is readable by others: chmod 600 it")
    return path.read_text().strip(), path


class ListenError(Exception):
    """``goapp engine serve`` cannot listen on its address (in use, not this machine's)."""


async def serve_engine(
    engine: KataGoEngine, host: str, port: int, secret: str, stop: asyncio.Event | None = None
) -> None:
    """Start ``engine`` (in the background) and serve it until ``stop`` is set (or
    SIGINT/SIGTERM when ``stop`` is None); then close both."""
    runner = web.AppRunner(create_engine_app(engine, secret), access_log=None)
    await runner.setup()
    try:  # the address first: KataGo is not started (nor tuned) for a server that cannot be
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise ListenError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}): choose a free --listen "
            "address"
        ) from None
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    try:
        await engine.start(wait=False)
        print(f"goapp engine serving KataGo at http://{host}:{port}/v1/", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()
        await engine.close()


def run_engine_server(settings: Any, listen: str, katago_dir: str | None = None) -> int:
    """``goapp engine serve``: KataGo from the settings (or ``katago_dir``), served on
    ``listen`` (``HOST:PORT``) with ``engine_secret``, until SIGTERM."""
    from pathlib import Path

    from goapp.engine.setup import configured_paths, installed_paths
    from goapp.obs.logging import setup_logging

    setup_logging(settings.log_level, settings.log_format)
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        print(f"goapp: --listen must be HOST:PORT, not {listen!r}", file=sys.stderr)
        return 2
    try:
        secret, secret_file = engine_secret(settings)
        check_secret(secret)
    except (ValueError, OSError) as exc:
        print(f"goapp: {exc}", file=sys.stderr)
        return 2
    if secret_file is not None:
        print(
            f"goapp engine: engine_secret is not set; using the secret in {secret_file} "
            "(set the game servers' engine_secret to its content)",
            flush=True,
        )
    try:
        if katago_dir:
            paths = installed_paths(Path(katago_dir))
            if paths is None or paths.model is None:
                raise E.EngineUnavailableError(f"no KataGo binary and model in {katago_dir}")
        else:
            paths = configured_paths(settings)
        engine = KataGoEngine.from_paths(paths, settings.katago_config or None)
    except E.EngineError as exc:
        print(f"goapp: {exc}", file=sys.stderr)
        return 1
    try:
        asyncio.run(serve_engine(engine, host.strip("[]"), int(port), secret))
    except ListenError as exc:
        print(f"goapp: {exc}", file=sys.stderr)
        return 2
    return 0


# -- the client ----------------------------------------------------------------------------


class RemoteEngine:
    """A KataGo engine on another machine, through ``goapp engine serve``."""

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        query_timeout: float | None = 120.0,
        poll_interval: float = 5.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.secret = secret
        self.query_timeout = query_timeout
        self.poll_interval = poll_interval
        self.connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None
        self._monitor: asyncio.Task[None] | None = None
        self._state = "stopped"
        self._remote: dict[str, Any] = {}
        self.last_failure: str | None = None
        self.queries_total = 0
        self.queries_ok = 0
        self.queries_failed = 0
        self.latencies: collections.deque[float] = collections.deque(maxlen=1000)
        self._background: set[asyncio.Task[None]] = set()

    @property
    def state(self) -> str:
        return self._state

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            raise E.EngineUnavailableError("remote engine client is stopped")
        return self._session

    async def start(self, wait: bool = True) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, connect=self.connect_timeout)
            )
        self._state = "starting"
        if self._monitor is None or self._monitor.done():
            self._monitor = asyncio.create_task(self._poll(), name="remote-engine-monitor")
        if wait:
            await self.refresh()
            if self._state != "up":
                raise E.EngineUnavailableError(f"remote engine not up: {self.last_failure}")

    async def refresh(self) -> str:
        """Ask the remote for its state now."""
        try:
            async with self._http().get(
                self.url + "/v1/state",
                headers=self._headers(),
                timeout=aiohttp.ClientTimeout(total=self.connect_timeout * 2),
            ) as resp:
                if resp.status == 401:
                    self.last_failure = "the remote engine refused the secret (401)"
                    self._state = "degraded"
                elif resp.status != 200:
                    self.last_failure = f"remote engine answered {resp.status}"
                    self._state = "degraded"
                else:
                    self._remote = await resp.json()
                    remote = str(self._remote.get("state", "degraded"))
                    self._state = "degraded" if remote == "stopped" else remote
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.last_failure = f"remote engine unreachable: {exc or type(exc).__name__}"
            self._state = "degraded"
        return self._state

    async def _poll(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.poll_interval)

    async def close(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
            self._monitor = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._state = "stopped"

    async def analyze_turns(
        self, query: AnalysisQuery, *, timeout: float | None = _UNSET, tag: str | None = None
    ) -> dict[int, AnalysisResult]:
        timeout = self.query_timeout if timeout is _UNSET else timeout
        body = {"query": query.to_wire(), "timeout": timeout, "tag": tag}
        http_timeout = aiohttp.ClientTimeout(
            total=None if timeout is None else timeout + 10, connect=self.connect_timeout
        )
        self.queries_total += 1
        started = time.monotonic()
        try:
            async with self._http().post(
                self.url + "/v1/analyze",
                data=msgspec.json.encode(body),
                headers={**self._headers(), "Content-Type": "application/json"},
                timeout=http_timeout,
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, OSError) as exc:
            self.queries_failed += 1
            self._state = "degraded"
            self.last_failure = f"remote engine unreachable: {exc or type(exc).__name__}"
            raise E.EngineUnavailableError(self.last_failure) from exc
        except TimeoutError as exc:
            self.queries_failed += 1
            raise E.EngineTimeoutError(f"remote engine: no answer in {timeout} s") from exc
        if status == 200:
            self.queries_ok += 1
            self.latencies.append(time.monotonic() - started)
            return msgspec.json.decode(raw, type=AnalyzeAnswer).results
        self.queries_failed += 1
        if status == 401:
            self.last_failure = "the remote engine refused the secret (401)"
            self._state = "degraded"
            raise E.EngineUnavailableError(self.last_failure)
        try:
            err = msgspec.json.decode(raw)["error"]
            cls = _ERRORS.get(str(err.get("code")), E.EngineError)
            message = str(err.get("message"))
        except Exception:
            cls, message = E.EngineUnavailableError, f"remote engine answered {status}"
        raise cls(message)

    async def analyze(
        self, query: AnalysisQuery, *, timeout: float | None = _UNSET, tag: str | None = None
    ) -> AnalysisResult:
        results = await self.analyze_turns(query, timeout=timeout, tag=tag)
        return next(iter(results.values()))

    def cancel_tag(self, tag: str) -> int:
        """Ask the remote to cancel ``tag``'s queries (in the background); returns 0."""
        if self._session is None or self._session.closed:
            return 0

        async def send() -> None:
            with contextlib.suppress(Exception):
                async with self._http().post(
                    self.url + "/v1/cancel", json={"tag": tag}, headers=self._headers()
                ) as resp:
                    await resp.read()

        task = asyncio.get_running_loop().create_task(send())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return 0

    def stats(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        return {
            "state": self._state,
            "url": self.url,
            "queue_depth": int(self._remote.get("queue_depth") or 0),
            "queries_total": self.queries_total,
            "queries_ok": self.queries_ok,
            "queries_failed": self.queries_failed,
            "restarts": int(self._remote.get("restarts") or 0),
            "last_visits_per_second": self._remote.get("last_visits_per_second"),
            "latency_p50": lat[len(lat) // 2] if lat else None,
            "last_failure": self.last_failure,
            "remote": self._remote,
        }
