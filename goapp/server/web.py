"""The browser app (SPA): ``goapp/web/`` served as package data, no build step.

* ``GET /`` and the app's own routes (``/game/12``, ``/user/NAME``, ``/leaderboard`` ...) answer
  ``index.html``; the app's router reads ``location.pathname``. Unknown paths outside these
  routes still get the API's JSON 404.
* ``GET /static/v-<fingerprint>/<path>`` serves the files with a one-year ``immutable``
  cache: the fingerprint is a hash of every file's name, size and modification time, put
  into ``index.html`` when it is served, so a new release (or an edited file during
  development) changes every URL and browsers never run stale modules. ``/static/<path>``
  without a fingerprint works too, with ``no-cache`` (revalidated by ETag / Last-Modified).
* ``index.html`` itself is ``no-cache``.
* Every response of the server carries :data:`SECURITY_HEADERS` (:func:`add_security_headers`):
  a strict Content-Security-Policy (the app loads nothing from elsewhere, runs no inline
  script or style) that also forbids framing (``frame-ancestors 'none'``, and
  ``X-Frame-Options: DENY`` for old browsers), so no other site can frame the board and
  trick a player into a move or a resignation. nginx/goapp.conf sends the same.

The files are found with :mod:`importlib.resources`, so this works from a wheel, an editable
install and the PyInstaller binary (built with ``--collect-data goapp``). See docs/web.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import mimetypes
from pathlib import Path

from aiohttp import web

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "SECURITY_HEADERS",
    "SPA_ROUTES",
    "WEB_DIR",
    "add_security_headers",
    "setup_routes",
    "web_dir",
]

#: Paths of the app that the browser may load directly (bookmarks, reloads, shared links).
SPA_ROUTES = (
    "/",
    "/login",
    "/register",
    "/settings",
    "/review",
    "/review/sgf",
    r"/game/{id:\d+}",
    r"/review/{id:\d+}",
    "/user/{name}",
    "/leaderboard",
)

#: The placeholder in index.html replaced by the static URL prefix.
STATIC_PLACEHOLDER = "__STATIC__"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"

#: Scripts, styles, images, fonts, fetches and WebSockets from this origin only ('self'
#: covers ws:/wss: to the same host and port in CSP Level 3 browsers); no plugins, no
#: <base>, forms post here only, and no page may frame this one. Keep in step with
#: nginx/goapp.conf (a test compares them).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

WEB_DIR = web.AppKey("web_dir", Path)
_EXIT = web.AppKey("web_exit_stack", contextlib.ExitStack)

mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("image/svg+xml", ".svg")
mimetypes.add_type("application/manifest+json", ".webmanifest")


def web_dir(stack: contextlib.ExitStack) -> Path:
    """The folder of the app's files, as a real path (extracted while ``stack`` lives when
    the package is not on the file system)."""
    resource = importlib.resources.files("goapp").joinpath("web")
    if isinstance(resource, Path):
        return resource
    return stack.enter_context(importlib.resources.as_file(resource))  # pragma: no cover


def fingerprint(root: Path) -> str:
    """A short hash of the names, sizes and modification times of every file under
    ``root``: it changes whenever a file does."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            st = path.stat()
            h.update(
                f"{path.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode()
            )
    return h.hexdigest()[:12]


def _resolve(root: Path, rel: str) -> Path:
    """``rel`` inside ``root``, or 404 (no ``..``, no hidden files, files only)."""
    parts = rel.split("/")
    if any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        raise web.HTTPNotFound(reason="no such file")
    path = root.joinpath(*parts)
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        raise web.HTTPNotFound(reason="no such file") from None
    if not path.is_file():
        raise web.HTTPNotFound(reason="no such file")
    return path


async def index(request: web.Request) -> web.Response:
    """``index.html`` with the fingerprinted static prefix filled in."""
    root = request.app[WEB_DIR]
    text = (root / "index.html").read_text(encoding="utf-8")
    prefix = f"/static/v-{fingerprint(root)}"
    return web.Response(
        text=text.replace(STATIC_PLACEHOLDER, prefix),
        content_type="text/html",
        charset="utf-8",
        headers={"Cache-Control": REVALIDATE},
    )


async def static(request: web.Request) -> web.StreamResponse:
    """A file of the app. Fingerprinted URLs are cached for a year."""
    rel = request.match_info["path"]
    versioned = False
    head, _, rest = rel.partition("/")
    if head.startswith("v-") and rest:
        rel, versioned = rest, True
    path = _resolve(request.app[WEB_DIR], rel)
    ctype, _ = mimetypes.guess_type(path.name)
    headers = {"Cache-Control": IMMUTABLE if versioned else REVALIDATE}
    if ctype:
        headers["Content-Type"] = (
            ctype if not ctype.startswith("text/") else f"{ctype}; charset=utf-8"
        )
    return web.FileResponse(path, headers=headers)


def setup_routes(app: web.Application) -> None:
    """Register the app's pages and its static files on ``app``."""
    stack = contextlib.ExitStack()
    app[_EXIT] = stack
    app[WEB_DIR] = web_dir(stack)

    async def _close(app: web.Application) -> None:
        app[_EXIT].close()

    app.on_cleanup.append(_close)
    for route in SPA_ROUTES:
        app.router.add_get(route, index)
    app.router.add_get("/static/{path:.+}", static)


async def _set_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def add_security_headers(app: web.Application) -> None:
    """Send :data:`SECURITY_HEADERS` with every response of ``app``: pages, API answers,
    static files, errors (``on_response_prepare`` sees them all)."""
    app.on_response_prepare.append(_set_security_headers)
