"""The server process: builds the aiohttp application and runs it until SIGTERM.

One process serves the HTTP API and the browser app on ``port``, the WebSocket gateway at
``/ws`` on the same port and, when ``ws_port`` is set, on a port of its own (so that Nginx
can route sockets separately). Prometheus metrics have a listener of their own
(``metrics_listen``, loopback by default): the HTTP port, which the Docker image publishes,
answers 404 for ``/metrics`` unless ``metrics_token`` is set. A background task ends games
whose clock ran out, whether or not anyone is connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal

from aiohttp import web

from goapp import __version__
from goapp.obs.logging import setup_logging
from goapp.obs.systemd import Notifier, watchdog_loop
from goapp.server import api, ws
from goapp.server import web as spa
from goapp.server.api import meta
from goapp.server.api.common import api_middleware
from goapp.server.context import CTX, ServerContext
from goapp.server.wiring import close_services, open_services, stop_engine
from goapp.settings import Settings, SettingsError, listen_address
from goapp.store.errors import StoreError

log = logging.getLogger("goapp.server")

#: How often the timeout sweeper looks for games whose clock ran out.
TIMEOUT_SWEEP_INTERVAL_S = 0.5
#: How long a shutdown waits for HTTP requests in flight (systemd's TimeoutStopSec is 30 s).
SHUTDOWN_TIMEOUT_S = 10.0


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "version": __version__})


async def readyz(request: web.Request) -> web.Response:
    """200 when the database answers, 503 with the reason when it does not. ``engine``
    (``up``, ``starting``, ``tuning``, ``degraded``, ``absent``) is reported but never makes
    the server unready: games between people go on without it.

    ``checks["bus"]`` is ``ok`` (Redis connected), ``absent`` (one instance, no Redis) or
    ``degraded: REASON``. A degraded bus keeps the status 200: the instance still serves its
    own connections, and a Redis outage degrades every instance at once, so taking them out
    of the load balancer would only turn a partial outage into a full one (docs/scaling.md).
    """
    ctx = request.app[CTX]
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(ctx.store.ping(), timeout=2.0)
        checks["database"] = "ok"
    except (StoreError, TimeoutError) as exc:
        checks["database"] = f"unavailable: {exc}"
    checks["bus"] = ctx.bus.status
    ready = checks["database"] == "ok"
    return web.json_response(
        {"status": "ready" if ready else "not ready", "checks": checks, "engine": ctx.engine_state},
        status=200 if ready else 503,
    )


def create_app(ctx: ServerContext) -> web.Application:
    """The HTTP application (API, health, WebSocket at /ws, the browser app)."""
    app = web.Application(client_max_size=256 * 1024)
    app[CTX] = ctx
    spa.add_security_headers(app)  # CSP, no framing: on every response
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    api.setup_routes(app, rate_limiter=ctx.limiter)
    if ctx.settings.metrics_token:  # otherwise /metrics is only on the metrics listener
        app.router.add_get("/metrics", meta.metrics)
    ws.setup_routes(app)
    spa.setup_routes(app)  # the browser app: /, its routes, /static/
    return app


def create_ws_app(ctx: ServerContext) -> web.Application:
    """The application of the dedicated WebSocket port: the gateway and health only."""
    app = web.Application(client_max_size=64 * 1024)
    app[CTX] = ctx
    spa.add_security_headers(app)
    app.router.add_get("/healthz", healthz)
    ws.setup_routes(app)
    return app


def create_metrics_app(ctx: ServerContext) -> web.Application:
    """The application of the metrics listener: ``/metrics`` and nothing else."""
    app = web.Application(client_max_size=4 * 1024)
    app[CTX] = ctx
    app.middlewares.append(api_middleware)  # the one error shape, request metrics
    spa.add_security_headers(app)
    app.router.add_get("/metrics", meta.metrics)
    return app


async def listen_on(runner: web.AppRunner, host: str, port: int, setting: str, fix: str) -> None:
    """Serve ``runner`` on ``host:port``. An address that cannot be used (in use, not this
    machine's) is a configuration error naming ``setting`` and saying how to ``fix`` it."""
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        raise SettingsError(
            f"{setting}: cannot listen there ({exc.strerror or exc}); {fix}"
        ) from None


async def start_metrics_listener(ctx: ServerContext) -> web.AppRunner | None:
    """Serve :func:`create_metrics_app` on ``metrics_listen`` (None when it is empty).
    An address that cannot be used is a configuration error: goapp does not start."""
    listen = ctx.settings.metrics_listen
    if not listen:
        return None
    host, port = listen_address(listen)
    runner = web.AppRunner(
        create_metrics_app(ctx), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S
    )
    await runner.setup()
    try:
        await listen_on(
            runner,
            host,
            port,
            f"metrics_listen = {listen!r}",
            "choose a free address (another goapp on this machine needs its own), or set "
            "it empty to turn the metrics listener off",
        )
    except SettingsError:
        await runner.cleanup()
        raise
    bound = ", ".join(f"{a[0]}:{a[1]}" for a in runner.addresses)
    log.info("metrics listening", extra={"metrics": bound})
    return runner


async def sweep_timeouts(ctx: ServerContext) -> None:
    """End games whose clock ran out, exactly once even with several instances (the
    service's conditional append decides who does it)."""
    while True:
        try:
            await ctx.games.check_timeouts()
        except StoreError as exc:
            log.warning("timeout sweep failed", extra={"error": str(exc)})
        except Exception:
            log.exception("timeout sweep crashed; retrying")
        await asyncio.sleep(TIMEOUT_SWEEP_INTERVAL_S)


#: Collector thresholds with ``gc_freeze`` (Python's defaults: 700, 10, 10). A collection
#: walks every tracked object of the generations it collects, at about 0.4 µs each at 10k
#: sockets (scattered memory), so what counts is how many objects survive into a
#: generation before it is collected (benches/README.md, "Load"):
#: - young (50,000 allocations): a socket at rest holds no reader coroutine or future
#:   (goapp/server/ws_inbox.py), so few objects survive a move and a young collection
#:   at 10k sockets and 1,000 moves/s takes at most 12-18 ms, every 15-20 s;
#: - middle (every 3 young ones): kept small so that the ~60 objects each new socket
#:   brings are moved on in pieces during a connection storm, instead of one 300 ms walk
#:   over all 10k sockets the first time the middle generation is collected (as with 20);
#: - full (every 100 middle ones, and only once the objects moved to the oldest generation
#:   since the last one are a quarter of it): about every 2 hours at 10k sockets and
#:   1,000 moves/s; it walks every socket (326 ms at 10k), but it frees the reference
#:   cycles aiohttp leaves when a socket closes.
GC_THRESHOLDS = (50_000, 3, 100)


def tune_gc() -> None:
    """Collect the start-up garbage, freeze what is left (modules, routes, settings, the
    store's pools: gc.freeze moves them to a generation no collection walks) and raise the
    thresholds. The load benchmark measures the effect (benches/README.md, "Load")."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    log.info("gc tuned", extra={"frozen": gc.get_freeze_count(), "thresholds": GC_THRESHOLDS})


async def serve(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM, then close sockets, finish queued writes and exit."""
    ctx = await open_services(settings, search_cwd=True)
    runners: list[web.AppRunner] = []
    sweeper: asyncio.Task[None] | None = None
    notifier = Notifier()  # systemd Type=notify: READY, WATCHDOG while the store answers
    watchdog: asyncio.Task[None] | None = None
    try:
        runner = web.AppRunner(
            create_app(ctx), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S
        )
        runners.append(runner)
        await runner.setup()
        busy = "choose a free port (another program may hold it) and an address of this host"
        await listen_on(runner, settings.host, settings.port, _where(settings, "port"), busy)
        if settings.ws_port:
            ws_runner = web.AppRunner(
                create_ws_app(ctx), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S
            )
            runners.append(ws_runner)
            await ws_runner.setup()
            where = _where(settings, "ws_port")
            await listen_on(ws_runner, settings.host, settings.ws_port, where, busy)
        metrics_runner = await start_metrics_listener(ctx)
        if metrics_runner is not None:
            runners.append(metrics_runner)
        sweeper = asyncio.create_task(sweep_timeouts(ctx), name="timeout-sweeper")
        if settings.gc_freeze:
            tune_gc()

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        host = "localhost" if settings.host in ("127.0.0.1", "0.0.0.0", "::") else settings.host
        url = f"http://{host}:{settings.port}/"
        log.info("listening", extra={"url": url, "ws_port": settings.ws_port})
        print(f"goapp {__version__} is running at {url}", flush=True)
        notifier.ready(f"listening at {url}")
        watchdog = asyncio.create_task(watchdog_loop(notifier, ctx.store.ping), name="watchdog")
        await stop.wait()
        log.info("shutting down")
        notifier.stopping("shutting down")
    finally:
        if watchdog is not None:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        await stop_engine(ctx)  # first: requests waiting for the engine end now (503)
        for runner in reversed(runners):
            await runner.cleanup()
        await close_services(ctx)


def _where(settings: Settings, name: str) -> str:
    """``port = 8080 (host = '127.0.0.1')``: the setting a listener's address comes from."""
    return f"{name} = {getattr(settings, name)} (host = {settings.host!r})"


def run_server(settings: Settings) -> int:
    setup_logging(settings.log_level, settings.log_format)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(serve(settings))
    else:
        uvloop.run(serve(settings))
    return 0
