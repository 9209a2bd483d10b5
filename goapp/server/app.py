"""The HTTP server process: health endpoints and the landing page.

This is the skeleton the game server grows on (API, WebSocket gateway, lobby): it opens the
store, applies migrations, and answers ``/healthz`` (the process is alive) and ``/readyz``
(the database answers), so that systemd, Nginx and load balancers can supervise it already.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from html import escape

from aiohttp import web

from goapp import __version__
from goapp.obs.logging import setup_logging
from goapp.settings import Settings
from goapp.store import Store, open_store
from goapp.store.errors import StoreError

log = logging.getLogger("goapp.server")

STORE_KEY = web.AppKey("store", Store)
STARTED_KEY = web.AppKey("started", float)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "version": __version__})


async def readyz(request: web.Request) -> web.Response:
    """200 when the database answers, 503 with the reason when it does not."""
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(request.app[STORE_KEY].ping(), timeout=2.0)
        checks["database"] = "ok"
    except (StoreError, TimeoutError) as exc:
        checks["database"] = f"unavailable: {exc}"
    ready = all(value == "ok" for value in checks.values())
    return web.json_response(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status=200 if ready else 503,
    )


async def index(request: web.Request) -> web.Response:
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>goapp</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto">
<h1>goapp {escape(__version__)}</h1>
<p>The server is running. The rules core and the store are in place; the game server and
the browser app are being built (see the README).</p>
<p><a href="/healthz">/healthz</a> · <a href="/readyz">/readyz</a></p>
</body></html>"""
    return web.Response(text=page, content_type="text/html")


def create_app(store: Store) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app[STORE_KEY] = store
    app[STARTED_KEY] = time.monotonic()
    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def serve(settings: Settings, ready: asyncio.Event | None = None) -> None:
    """Run until SIGINT/SIGTERM: open and migrate the store, listen, then shut down cleanly."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.effective_database_url
    store = await open_store(url, synchronous=settings.sqlite_synchronous)  # migrates too
    runner = web.AppRunner(create_app(store), access_log=None, handle_signals=False)
    try:
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        host = "localhost" if settings.host in ("127.0.0.1", "0.0.0.0", "::") else settings.host
        log.info(
            "listening",
            extra={"url": f"http://{host}:{settings.port}/", "backend": store.backend},
        )
        print(f"goapp {__version__} is running at http://{host}:{settings.port}/", flush=True)
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()
        await store.close()


def run_server(settings: Settings) -> int:
    setup_logging(settings.log_level, settings.log_format)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(serve(settings))
    else:
        uvloop.run(serve(settings))
    return 0
