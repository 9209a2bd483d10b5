"""Serving the browser app (goapp/server/web.py) without a browser: pages, fingerprinted
static files and their cache headers, path safety, package data, and module imports that
resolve (a typo in an ES module path would only show up in a browser otherwise)."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from goapp.server import web as spa
from goapp.server.app import create_app
from goapp.server.wiring import close_services, open_services
from goapp.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
WEB = REPO / "goapp" / "web"


@pytest.fixture
async def client(tmp_path: Path, aiohttp_client: object) -> TestClient:
    settings = load_settings(env={}, overrides={"data_dir": str(tmp_path), "engine": "none"})
    ctx = await open_services(settings)
    app = create_app(ctx)

    async def close_ctx(app: web.Application) -> None:
        await close_services(ctx)

    app.on_cleanup.append(close_ctx)
    c: TestClient = await aiohttp_client(app)  # type: ignore[operator]
    return c


async def test_index_and_app_routes_serve_the_page(client: TestClient) -> None:
    paths = ("/", "/login", "/register", "/settings", "/review", "/game/12", "/review/7")
    for path in (*paths, "/user/alice", "/user/%C3%A9mile", "/leaderboard"):
        r = await client.get(path)
        assert r.status == 200, path
        assert r.content_type == "text/html"
        assert r.headers["Cache-Control"] == "no-cache"
        text = await r.text()
        assert '<script type="module"' in text
        assert "__STATIC__" not in text
    # Paths that are not the app's stay the API's JSON 404.
    r = await client.get("/game/abc")
    assert r.status == 404
    assert (await r.json())["error"]["code"] == "not_found"


async def test_fingerprinted_static_files_are_immutable(client: TestClient) -> None:
    text = await (await client.get("/")).text()
    m = re.search(r'src="(/static/v-[0-9a-f]{12})/app\.js"', text)
    assert m, text
    prefix = m.group(1)
    r = await client.get(f"{prefix}/app.js")
    assert r.status == 200
    assert r.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    r = await client.get(f"{prefix}/styles.css")
    assert r.headers["Content-Type"] == "text/css; charset=utf-8"
    r = await client.get(f"{prefix}/favicon.svg")
    assert r.headers["Content-Type"] == "image/svg+xml"
    # Without the fingerprint: revalidated, and a 304 with the ETag.
    r = await client.get("/static/js/go.js")
    assert r.status == 200
    assert r.headers["Cache-Control"] == "no-cache"
    etag = r.headers["ETag"]
    r = await client.get("/static/js/go.js", headers={"If-None-Match": etag})
    assert r.status == 304


def test_fingerprint_changes_with_the_files(tmp_path: Path) -> None:
    (tmp_path / "a.js").write_text("1")
    first = spa.fingerprint(tmp_path)
    assert spa.fingerprint(tmp_path) == first
    (tmp_path / "a.js").write_text("22")
    assert spa.fingerprint(tmp_path) != first


@pytest.mark.parametrize(
    "path",
    [
        "/static/../pyproject.toml",
        "/static/js/../../server/web.py",
        "/static/%2e%2e/cli.py",
        "/static/.hidden",
        "/static/v-123/../../cli.py",
        "/static/nope.js",
        "/static/js",
        "/static/js//go.js",
    ],
)
async def test_static_files_stay_inside_the_web_folder(client: TestClient, path: str) -> None:
    r = await client.get(path)
    assert r.status == 404, path


def test_the_web_folder_ships_as_package_data() -> None:
    """pyproject's package-data takes every file under goapp/web and excludes none of them
    (an exclude pattern like ``*.html`` once dropped index.html from the wheel)."""
    conf = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "web/**/*" in conf["package-data"]["goapp"]
    excluded = conf.get("exclude-package-data", {}).get("goapp", [])
    files = [p for p in WEB.rglob("*") if p.is_file()]
    assert {"index.html", "app.js", "styles.css"} <= {p.name for p in files}
    for p in files:
        rel = p.relative_to(REPO / "goapp").as_posix()
        for pattern in excluded:
            assert not fnmatch.fnmatch(p.name, pattern), (rel, pattern)
    assert spa.web_dir(__import__("contextlib").ExitStack()) == WEB


_IMPORT = re.compile(r"""(?:\bfrom\s+|\bimport\s*\(\s*|\bimport\s+)["'](\.{1,2}/[^"']+)["']""")


def test_every_module_import_resolves() -> None:
    for js in WEB.rglob("*.js"):
        for target in _IMPORT.findall(js.read_text()):
            assert (js.parent / target).resolve().is_file(), f"{js.name} imports missing {target}"


def test_the_app_needs_nothing_from_the_network() -> None:
    """No CDN, no external font, no absolute URL to another site."""
    for p in WEB.rglob("*"):
        if p.suffix in {".html", ".js", ".css", ".svg"}:
            text = p.read_text()
            for url in re.findall(r"https?://[^\s\"')]+", text):
                assert url.startswith("http://www.w3.org/"), (p.name, url)
            assert "@import" not in text and "@font-face" not in text, p.name


async def test_every_response_carries_the_csp_and_forbids_framing(client: TestClient) -> None:
    """Pages, static files, API answers and errors: a framed page could be clicked into a
    move or a resignation by a hidden overlay (clickjacking)."""
    prefix = re.search(
        r'src="(/static/v-[0-9a-f]{12})/app\.js"', await (await client.get("/")).text()
    )
    assert prefix
    for path, status in (
        ("/", 200),
        ("/game/12", 200),
        (f"{prefix.group(1)}/app.js", 200),
        ("/static/styles.css", 200),
        ("/healthz", 200),
        ("/api/games", 200),
        ("/api/me", 401),
        ("/no/such/page", 404),
    ):
        r = await client.get(path)
        assert r.status == status, path
        assert r.headers.getall("Content-Security-Policy") == [spa.CONTENT_SECURITY_POLICY], path
        assert r.headers.getall("X-Frame-Options") == ["DENY"], path
        assert r.headers["X-Content-Type-Options"] == "nosniff", path
    policy = dict(d.strip().split(" ", 1) for d in spa.CONTENT_SECURITY_POLICY.split(";"))
    assert policy["default-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
    assert "unsafe" not in spa.CONTENT_SECURITY_POLICY


def test_the_app_has_no_inline_script_or_style() -> None:
    """The CSP allows neither: scripts and styles come from files (a browser test checks
    that no violation is reported while the app runs)."""
    html = (WEB / "index.html").read_text()
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag, tag
    assert "<style" not in html and " style=" not in html and not re.search(r" on\w+=", html)
    for js in WEB.rglob("*.js"):
        text = js.read_text()
        assert not re.search(r"""\bstyle\s*:\s*["'`]""", text), js.name  # style attributes
        assert "innerHTML" not in text and "eval(" not in text, js.name
