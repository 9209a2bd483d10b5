"""The browser app, end to end: real Chromium (Debian's, driven by Playwright) against a
real ``goapp serve`` process on a free port with a fresh data directory.

Two players register, one offers a 9x9 game in the lobby and the other accepts it; they
play a short scripted game by clicking on the board (with an undo on the way), a third
browser (a phone) watches every move, Black's network drops and comes back in the middle
of the game (the page shows "Reconnecting", resumes from the last seq and misses nothing),
both pass, a dead stone is marked by clicking, both accept and the result shows. Then the
review page is stepped through with the keyboard, and an uploaded SGF is reviewed. With
the real KataGo (the small test model), a game against the computer is played from the
lobby to the count and its AI review (graph, mistakes, variations, ownership) is checked.

Screenshots of the main screens go to test-artifacts/screenshots/. Without Chromium or
Playwright the tests skip, except in CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import http.server
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from goapp.engine.setup import KataGoPaths

# Chromium against goapp serve processes
pytestmark = [pytest.mark.chromium, pytest.mark.server]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "test-artifacts" / "screenshots"
PASSWORD = "correct horse 9"
TIMEOUT_MS = 10_000


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the browser tests need Chromium and Playwright in CI: {why}")
    pytest.skip(why)


try:
    from playwright.sync_api import (
        Browser,
        BrowserContext,
        FilePayload,
        Page,
        expect,
        sync_playwright,
    )
except ImportError:  # pragma: no cover - the dev extra installs it
    sync_playwright = None  # type: ignore[assignment]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``goapp serve`` on a free port, SQLite in a temporary directory, no engine."""
    yield from _serve(tmp_path_factory)


@pytest.fixture(scope="module")
def engine_server(tmp_path_factory: pytest.TempPathFactory, katago: KataGoPaths) -> Iterator[str]:
    """The same with the real KataGo (the small test model, already tuned): bots and reviews
    work. DATA_DIR/katago is the tests' installation, where `goapp engine setup` puts it."""
    assert katago.model is not None and katago.home is not None
    extra = {"GOAPP_ENGINE": "katago", "GOAPP_KATAGO_MODEL": str(katago.model)}
    yield from _serve(tmp_path_factory, katago_home=katago.home, **extra)


@pytest.fixture(scope="module")
def untuned_engine_server(
    tmp_path_factory: pytest.TempPathFactory, katago: KataGoPaths
) -> Iterator[str]:
    """KataGo never tuned on this server (its own binary: DATA_DIR/katago/home is empty),
    so its first start tunes OpenCL for minutes; the module ends before it is done."""
    assert katago.model is not None and katago.home is not None
    extra = {
        "GOAPP_ENGINE": "katago",
        "GOAPP_KATAGO_BINARY": str(katago.home / "katago"),  # the wrapper sets its libraries
        "GOAPP_KATAGO_MODEL": str(katago.model),
    }
    yield from _serve(tmp_path_factory, None, **extra)


@pytest.fixture(scope="module")
def short_token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The same, with access tokens that expire after 8 seconds."""
    yield from _serve(tmp_path_factory, GOAPP_ACCESS_TOKEN_TTL="8")


def _serve(
    tmp_path_factory: pytest.TempPathFactory, katago_home: Path | None = None, **extra_env: str
) -> Iterator[str]:
    data = tmp_path_factory.mktemp("goapp-browser")
    if katago_home is not None:
        (data / "katago").symlink_to(katago_home)
    port = _free_port()
    env = {
        **os.environ,
        "GOAPP_ENGINE": "none",
        "GOAPP_LOG_LEVEL": "warning",
        "GOAPP_SQLITE_SYNCHRONOUS": "NORMAL",
        "GOAPP_METRICS_LISTEN": "127.0.0.1:0",  # any free port: several servers run at once
        **extra_env,
    }
    log = (data / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "goapp", "serve", "--host", "127.0.0.1"),
            *("--port", str(port), "--ws-port", "0", "--data-dir", str(data)),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=data,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                raise RuntimeError(
                    "goapp serve did not start:\n" + (data / "server.log").read_text()[-3000:]
                )
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if sync_playwright is None:
        _unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if executable is None:
        _unavailable(f"{CHROMIUM} not found (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


#: Reports every Content-Security-Policy violation of a page to its console (the server's
#: CSP forbids inline scripts and styles: anything the app still does that way shows here).
CSP_WATCH = """
document.addEventListener("securitypolicyviolation", (e) => console.error(
  `CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"}` +
  ` at ${e.sourceFile}:${e.lineNumber}`));
"""


def is_csp_report(text: str) -> bool:
    """A console line about a CSP violation (ours, or Chromium's own "Refused to ...")."""
    return text.startswith("CSP violation") or "Content Security Policy" in text


class Player:
    """One browser context (one person) and its page, collecting page errors and CSP
    violations (tests assert ``errors == []``)."""

    def __init__(self, browser: Browser, base: str, **context_args: Any) -> None:
        self.base = base
        self.context: BrowserContext = browser.new_context(**context_args)
        self.context.set_default_timeout(TIMEOUT_MS)
        self.context.add_init_script(CSP_WATCH)
        self.page: Page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on(
            "console", lambda msg: self.errors.append(msg.text) if is_csp_report(msg.text) else None
        )

    def goto(self, path: str) -> None:
        self.page.goto(self.base + path)
        self.page.wait_for_selector("html[data-ready='1']")

    def register(self, name: str) -> None:
        self.goto("/register")
        self.page.fill("#auth-name", name)
        self.page.fill("#auth-password", PASSWORD)
        self.page.click("#auth-submit")
        expect(self.page.locator("#me")).to_have_text(name)

    def point(self, vertex: str, size: int = 9, board: str = "#board") -> tuple[float, float]:
        """Where a GTP vertex is on the screen (on the game's board, or ``board``)."""
        col = "ABCDEFGHJKLMNOPQRSTUVWXYZ".index(vertex[0])
        row = size - int(vertex[1:])
        box = self.page.locator(f"{board} svg.board").bounding_box()
        assert box is not None
        # The viewBox has a margin of 1.15 cells around the (size - 1) cells of the grid.
        cell = box["width"] / (size - 1 + 2 * 1.15)
        return box["x"] + (1.15 + col) * cell, box["y"] + (1.15 + row) * cell

    def click_point(self, vertex: str, size: int = 9) -> None:
        """Click the board at a GTP vertex, through the mouse, as a person would."""
        self.page.mouse.click(*self.point(vertex, size))

    def seq(self) -> int:
        return int(self.page.locator(".game").get_attribute("data-seq") or 0)

    def asset_prefix(self) -> str:
        """Where the loaded page's modules are served from (versioned), to import the app's
        own modules in ``page.evaluate``."""
        src: str = self.page.evaluate(
            "document.querySelector('script[type=module]').getAttribute('src')"
        )
        return src.rsplit("/", 1)[0]

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"))

    def close(self) -> None:
        self.context.close()


def stones(page: Page) -> int:
    return int(page.locator("#main svg.board").get_attribute("data-stones") or 0)


def expect_moves(page: Page, n: int) -> None:
    expect(page.locator(".game")).to_have_attribute("data-moves", str(n))


def test_play_watch_reconnect_score_review(server: str, browser: Browser) -> None:
    desktop = {"viewport": {"width": 1280, "height": 860}}
    alice = Player(browser, server, **desktop)
    bob = Player(browser, server, **desktop)
    people = [alice, bob]
    try:
        # -- register, stay logged in across a reload -------------------------------------------
        alice.register("alice")
        bob.register("bob")
        alice.page.reload()
        alice.page.wait_for_selector("html[data-ready='1']")
        expect(alice.page.locator("#me")).to_have_text("alice")
        # presence: each sees the other online
        expect(alice.page.locator("#online li[data-user='bob']")).to_be_visible()

        # -- a direct challenge: bob challenges alice from the online list; she declines ------
        bob.page.locator("#online li[data-user='alice'] button").click()
        expect(bob.page.locator("#ch-opponent")).to_have_value("alice")
        bob.page.click("#ch-submit")
        direct = alice.page.locator("#challenges li.challenge.to-me")
        expect(direct.locator(".pname")).to_contain_text("bob")
        expect(direct.locator(".direct")).to_have_text(" challenges you")
        direct.locator("button[data-action='decline']").click()
        expect(alice.page.locator("#challenges li.challenge")).to_have_count(0)
        expect(bob.page.locator("#challenges li.challenge")).to_have_count(0)

        # -- alice offers a 9x9 game, playing Black; bob accepts in the lobby --------------------
        page = alice.page
        page.click("label.seg:has(#ch-size-9)")
        page.select_option("#ch-color", "black")
        page.select_option("#ch-time", "live")
        page.click("#ch-submit")
        challenge = bob.page.locator("#challenges li.challenge", has_text="alice")
        expect(challenge).to_be_visible()
        alice.shot("01-lobby")
        challenge.locator("button[data-action='accept']").click()
        bob.page.wait_for_url("**/game/*")
        alice.page.wait_for_url("**/game/*")  # the challenger is taken to the game
        game_path = "/game/" + bob.page.url.rsplit("/", 1)[1]
        game_id = int(game_path.rsplit("/", 1)[1])
        expect(alice.page.locator("#card-black")).to_contain_text("alice")
        expect(bob.page.locator("#card-white")).to_contain_text("bob")

        # -- a phone watches as a guest -------------------------------------------------------
        phone = Player(
            browser,
            server,
            viewport={"width": 390, "height": 844},
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
        )
        people.append(phone)
        phone.goto("/")  # the lobby lists the game; "Watch" opens it
        phone.page.locator(f"#live-games li[data-game-id='{game_id}'] a.btn").click()
        phone.page.wait_for_url(f"**{game_path}")
        expect(phone.page.locator("#controls")).to_contain_text("watching")

        # -- the game ---------------------------------------------------------------------------
        # Black walls off columns A-B with C1-C9, White answers along D; White invades at B5
        # late (a dead stone). White takes one move back on the way.
        played = 0
        # The pointer over an empty point shows a ghost stone of the player to move.
        alice.page.mouse.move(*alice.point("E5"))
        expect(alice.page.locator("#board .ghost .stone.black.ghoststone")).to_have_count(1)
        bob.page.mouse.move(*bob.point("E5"))  # not bob's turn: no ghost
        expect(bob.page.locator("#board .ghost .stone")).to_have_count(0)

        def move(who: Player, vertex: str) -> None:
            nonlocal played
            expect(who.page.locator("#status")).to_contain_text("Your move")
            who.click_point(vertex)
            played += 1
            for p in people:
                expect_moves(p.page, played)

        for row in range(1, 10):
            move(alice, f"C{row}")
            if row == 2:
                # White misplays at E2, asks for an undo, Black allows it.
                move(bob, "E2")
                bob.page.click("#undo")
                alice.page.click("#undo-accept")
                played -= 1
                for p in people:
                    expect_moves(p.page, played)
                assert stones(phone.page) == played
            if row == 6:
                # Black's network drops; White plays meanwhile; Black comes back and has
                # missed nothing.
                alice.context.set_offline(True)
                expect(alice.page.locator("#conn")).to_have_text("Reconnecting…")
                assert alice.page.locator("html").get_attribute("data-connection") == "reconnecting"
                alice.shot("04-reconnecting")
                expect(bob.page.locator("#status")).to_contain_text("Your move")
                bob.click_point("D6")
                played += 1
                expect_moves(bob.page, played)
                expect_moves(phone.page, played)
                expect_moves(alice.page, played - 1)
                alice.context.set_offline(False)
                expect(alice.page.locator("#conn")).to_be_hidden()
                expect_moves(alice.page, played)
                continue
            move(bob, f"D{row}")
            if row == 4:
                alice.shot("02-game-in-progress")
                phone.shot("03-phone-watching")
        assert stones(phone.page) == 18
        assert stones(alice.page) == 18

        # Black passes (with the confirmation dialog), White invades, both pass.
        alice.page.click("#pass")
        alice.page.click("dialog .btn.primary")
        played += 1
        move(bob, "B5")
        alice.page.click("#pass")
        alice.page.click("dialog .btn.primary")
        bob.page.click("#pass")
        bob.page.click("dialog .btn.primary")
        for p in people:
            expect(p.page.locator(".game")).to_have_attribute("data-phase", "scoring")
        # White disputes: play resumes with Black to move; both pass again.
        bob.page.click("#resume")
        for p in people:
            expect(p.page.locator(".game")).to_have_attribute("data-phase", "playing")
        expect(alice.page.locator("#status")).to_contain_text("Your move")
        alice.page.click("#pass")
        alice.page.click("dialog .btn.primary")
        bob.page.click("#pass")
        bob.page.click("dialog .btn.primary")
        for p in people:
            expect(p.page.locator(".game")).to_have_attribute("data-phase", "scoring")

        # -- scoring: Black marks the invader dead; both accept ----------------------------------
        alice.click_point("B5")
        for p in people:
            expect(p.page.locator("#board .stones .stone.dead")).to_have_count(1)
        expect(alice.page.locator("#score")).to_contain_text("W+32.5")
        alice.shot("05-scoring")
        alice.page.click("#accept-score")
        expect(bob.page.locator("#card-black .accepted-mark")).to_be_visible()
        bob.page.click("#accept-score")
        for p in people:
            expect(p.page.locator(".game")).to_have_attribute("data-phase", "finished")
            expect(p.page.locator("#result")).to_have_text("White wins by 32.5 points")
        alice.shot("06-result")
        # No connection dropped besides the one cut on purpose (each page opened one socket
        # as a guest, then one when its user logged in; alice reloaded, then reconnected).
        assert bob.page.evaluate("window.goapp.socket.opens") == 2
        assert alice.page.evaluate("window.goapp.socket.opens") == 2
        expect(alice.page.locator("#online-count")).to_have_text("2 online")
        assert stones(phone.page) == 19
        phone.shot("07-phone-result")

        # -- chat in the game ---------------------------------------------------------------
        bob.page.fill("#main .chat-input", "thanks for the game")
        bob.page.press("#main .chat-input", "Enter")
        expect(alice.page.locator(".chat-lines")).to_contain_text("thanks for the game")
        expect(phone.page.locator(".chat-lines")).to_contain_text("thanks for the game")

        # -- review with the keyboard --------------------------------------------------------
        alice.page.click("#to-review")
        alice.page.wait_for_url(f"**/review/{game_id}")
        counter = alice.page.locator("#move-counter")
        total = played + 4  # two passes, resumed, two passes
        expect(counter).to_have_attribute("data-n", str(total))
        alice.page.keyboard.press("Home")
        expect(counter).to_have_attribute("data-n", "0")
        assert stones(alice.page) == 0
        for _ in range(3):
            alice.page.keyboard.press("ArrowRight")
        expect(counter).to_have_attribute("data-n", "3")
        expect(counter).to_contain_text("Move 3 · B C2")
        assert stones(alice.page) == 3
        alice.page.keyboard.press("ArrowLeft")
        expect(counter).to_have_attribute("data-n", "2")
        alice.page.keyboard.press("End")
        expect(counter).to_have_attribute("data-n", str(total))
        alice.page.keyboard.press("PageUp")
        expect(counter).to_have_attribute("data-n", str(total - 10))
        href = alice.page.locator("#sgf-download").get_attribute("href")
        assert href == f"/api/games/{game_id}/sgf"
        with urllib.request.urlopen(server + href) as r:
            sgf = r.read().decode()
        assert "SZ[9]" in sgf and "RE[W+32.5]" in sgf
        alice.shot("08-review")

        # -- the lobby lists the finished game ------------------------------------------------
        bob.goto("/")
        expect(bob.page.locator(f"#recent-games li[data-game-id='{game_id}']")).to_contain_text(
            "W+32.5"
        )

        # -- dark theme --------------------------------------------------------------------
        alice.page.click("#theme-toggle")
        expect(alice.page.locator("html")).to_have_attribute("data-theme", "dark")
        alice.page.wait_for_timeout(300)  # let the colour transitions end
        alice.shot("09-review-dark")
        alice.goto(game_path)
        expect(alice.page.locator("html")).to_have_attribute("data-theme", "dark")  # kept
        # Opened afresh, the result shows with the count and the territory.
        expect(alice.page.locator("#banner")).to_contain_text("Black 19 \u2013 White 51.5")
        expect(alice.page.locator("#board .territory rect")).to_have_count(18 + 45)
        assert "null" not in (alice.page.locator("#main").text_content() or "")
        alice.shot("10-result-dark")
        alice.goto("/")
        alice.shot("11-lobby-dark")

        for p in people:
            assert p.errors == [], p.errors
    finally:
        for p in people:
            p.close()


SGF = b"(;GM[1]FF[4]SZ[9]KM[6.5]PB[Honinbo]PW[Shusaku]RE[B+R];B[ee];W[gc];B[cg];W[gg];B[cc])"


SGF19 = (
    b"(;GM[1]FF[4]SZ[19]KM[6.5]PB[Black]PW[White];B[pd];W[dp];B[pp];W[dd];B[fq];W[cn]"
    b";B[qf];W[nc];B[pb];W[fc];B[jd];W[qj];B[qh];W[qn];B[pn];W[pm];B[on];W[qo];B[qp]"
    b";W[rp];B[rq];W[ro];B[om];W[pl];B[jp];W[ql];B[oj];W[cf];B[ch];W[ci];B[bi];W[cj]"
    b";B[bj];W[dh];B[cg];W[bk];B[bh];W[dg];B[ck];W[bl];B[dk];W[ej];B[ek];W[fj];B[fk]"
    b";W[gj];B[cl];W[bm];B[gk];W[hj];B[hk];W[ik];B[il];W[jk];B[jl];W[kk];B[kl];W[lk]"
    b";B[ll];W[mk];B[ml];W[nk];B[nl];W[ok];B[ol];W[pk];B[dm];W[dn];B[em];W[en];B[fm]"
    b";W[fn];B[gm];W[gn];B[hm];W[hn];B[im];W[in];B[jm];W[jn];B[km];W[kn];B[lm];W[ln]"
    b";B[mm];W[mn];B[nm];W[nn];B[oo];W[no];B[np];W[mo];B[mp];W[lo];B[lp];W[ko];B[kp]"
    b";W[io];B[ip];W[ho];B[hp];W[go];B[gp];W[fo];B[fp];W[eo];B[ep];W[do];B[cp];W[co]"
    b";B[bp];W[bo];B[cq];W[fe];B[cc];W[cd];B[bd];W[be];B[bc];W[dc];B[db];W[eb];B[cb]"
    b";W[ad];B[ea])"
)


def test_sgf_upload_review(server: str, browser: Browser) -> None:
    guest = Player(browser, server, viewport={"width": 1100, "height": 800})
    try:
        guest.goto("/review")
        guest.page.set_input_files(
            "#sgf-file",
            files=[FilePayload(name="game.sgf", mimeType="application/x-go-sgf", buffer=SGF)],
        )
        guest.page.wait_for_url("**/review/sgf")
        expect(guest.page.locator("#review-title")).to_have_text("Honinbo vs Shusaku")
        counter = guest.page.locator("#move-counter")
        expect(counter).to_have_attribute("data-n", "0")
        guest.page.keyboard.press("End")
        expect(counter).to_have_attribute("data-n", "5")
        assert stones(guest.page) == 5
        guest.page.keyboard.press("ArrowLeft")
        expect(counter).to_contain_text("Move 4 · W G3")
        guest.page.click("#nav-first")
        expect(counter).to_have_attribute("data-n", "0")
        # A 19x19 record (with a capture) looks right too.
        guest.goto("/review")
        guest.page.fill("#sgf-text", SGF19.decode())
        guest.page.click("#sgf-submit")
        guest.page.wait_for_url("**/review/sgf")
        guest.page.keyboard.press("End")
        expect(counter).to_have_attribute("data-n", str(SGF19.count(b";") - 1))
        expect(guest.page.locator("#review-title")).to_have_text("Black vs White")
        guest.shot("15-review-19x19")
        # A broken file: a clear error, with its position.
        guest.goto("/review")
        guest.page.fill("#sgf-text", "(;GM[1]SZ[9];B[ee];W[ee])")
        guest.page.click("#sgf-submit")
        expect(guest.page.locator("#sgf-error")).not_to_be_empty()
        assert guest.errors == []
    finally:
        guest.close()


def _post(base: str, path: str, body: dict[str, Any], token: str | None = None) -> Any:
    req = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}
        | ({"Authorization": f"Bearer {token}"} if token else {}),
        method="POST",
    )
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


def _logged_in(browser: Browser, base: str, name: str, **context_args: Any) -> Player:
    """A browser already logged in as ``name`` (its own refresh token, as after a login)."""
    session = _post(base, "/api/login", {"name": name, "password": PASSWORD})
    player = Player(browser, base, **context_args)
    player.context.add_init_script(
        # Once: the app rotates the token at start; setting the old one again on the next
        # page load would present a used token, which revokes every session (theft).
        "if (!localStorage.getItem('goapp.seeded')) {"
        f" localStorage.setItem('goapp.refresh', {json.dumps(session['refresh_token'])});"
        " localStorage.setItem('goapp.seeded', '1'); }"
    )
    return player


def test_touch_confirm_keyboard_play_and_resign(server: str, browser: Browser) -> None:
    carol = _post(server, "/api/register", {"name": "carol", "password": PASSWORD})
    _post(server, "/api/register", {"name": "dave", "password": PASSWORD})
    challenge = _post(
        server, "/api/challenges", {"size": 9, "color": "black"}, carol["access_token"]
    )
    dave_token = _post(server, "/api/login", {"name": "dave", "password": PASSWORD})
    game_id = _post(
        server, f"/api/challenges/{challenge['id']}/accept", {}, dave_token["access_token"]
    )["game_id"]
    phone = _logged_in(
        browser,
        server,
        "carol",
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    desk = _logged_in(browser, server, "dave", viewport={"width": 1280, "height": 860})
    people = [phone, desk]
    try:
        # -- on a touch screen the first tap shows the stone, Confirm plays it -------------
        phone.goto("/")
        expect(phone.page.locator(f"#live-games li[data-game-id='{game_id}'] a.btn")).to_have_text(
            "Play"
        )
        phone.shot("14-phone-lobby")
        phone.goto(f"/game/{game_id}")
        desk.goto(f"/game/{game_id}")
        expect(phone.page.locator("#status")).to_contain_text("Your move")
        box = phone.page.locator("#board svg.board").bounding_box()
        assert box is not None
        cell = box["width"] / (8 + 2 * 1.15)
        phone.page.touchscreen.tap(box["x"] + (1.15 + 4) * cell, box["y"] + (1.15 + 4) * cell)
        expect(phone.page.locator("#confirm-move")).to_be_visible()
        expect(phone.page.locator("#board .ghost .pending.stone")).to_have_count(1)
        assert phone.page.locator(".game").get_attribute("data-moves") == "0"
        phone.shot("12-phone-confirm-move")
        phone.page.click("#confirm-move")
        expect_moves(phone.page, 1)
        expect_moves(desk.page, 1)

        # -- keyboard: Tab to the board, arrows move the cursor, Enter plays --------------
        board = desk.page.locator("#board svg.board")
        board.focus()
        desk.page.keyboard.press("ArrowRight")  # the cursor starts on the last move, E5
        expect(desk.page.locator("#board .kbcursor")).to_have_count(1)
        expect(desk.page.locator("#board [aria-live]")).to_have_text("F5: empty")
        desk.page.keyboard.press("Enter")
        expect_moves(desk.page, 1 + 1)
        expect(desk.page.locator("#board .stone.white")).to_have_count(1)
        assert desk.page.locator("#board .stone.white").get_attribute("data-vertex") == "F5"

        # -- resign ------------------------------------------------------------------------
        desk.page.click("#resign")
        desk.page.click("dialog .btn.danger")
        expect(phone.page.locator("#result")).to_have_text("Black wins by resignation")

        for p in people:
            assert p.errors == [], p.errors
    finally:
        for p in people:
            p.close()


def _get(base: str, path: str) -> Any:
    with urllib.request.urlopen(base + path) as r:
        return json.loads(r.read())


def test_bot_game_and_ai_review(engine_server: str, browser: Browser) -> None:
    """Against the real KataGo (the small model): a 9x9 game with the computer at the lowest
    level chosen in the lobby, played to the count, then the AI review of it: the graph drawn
    from the stored analysis, mistakes marked, a suggestion's variation on the board, the
    ownership of the final position."""
    server = engine_server
    _post(server, "/api/register", {"name": "hana", "password": PASSWORD})
    hana = _logged_in(browser, server, "hana", viewport={"width": 1280, "height": 900})
    page = hana.page
    try:
        # -- the lobby offers the computer once the server reports its engine --------------
        hana.goto("/")
        expect(page.locator("#bot-row")).to_be_visible()
        page.click("label.seg:has(#ch-size-9)")
        page.select_option("#ch-color", "black")
        page.select_option("#ch-time", "none")
        page.select_option("#ch-bot", "beginner")
        expect(page.locator("#ch-submit")).to_have_text("Start game")
        page.click("#ch-submit")
        page.wait_for_url("**/game/*")
        game_id = int(page.url.rsplit("/", 1)[1])
        expect(page.locator("#card-white")).to_contain_text("katago:beginner")

        # -- three moves; the bot answers each (KataGo's first start may take a while) ----
        bot_ms = 120_000
        candidates = ["E5", "C3", "G7", "G3", "C7", "E3", "E7", "C5", "G5"]
        for k in range(3):
            expect(page.locator("#status")).to_contain_text("Your move", timeout=bot_ms)
            # the first of these points still empty (the bot may have taken one)
            v = next(
                c for c in candidates if not page.locator(f"#board [data-vertex='{c}']").count()
            )
            candidates.remove(v)
            hana.click_point(v)
            # (the bot may answer before the app shows the move alone: wait for both)
            expect(page.locator(".game")).to_have_attribute(
                "data-moves", str(2 * k + 2), timeout=bot_ms
            )
        expect(page.locator("#status")).to_contain_text("Your move")
        assert page.locator("#board .stone.black").count() == 3
        white = page.locator("#board .stone.white").count()
        assert 1 <= white <= 3  # the bot played (or passed: a pass is a move too)
        hana.shot("20-bot-game")

        # -- undo against the bot takes back its reply and my move before it --------------
        page.click("#undo")
        expect(page.locator(".game")).to_have_attribute("data-moves", "4", timeout=bot_ms)
        assert page.locator("#board .stone.black").count() == 2
        expect(page.locator("#status")).to_contain_text("Your move")
        v = next(c for c in candidates if not page.locator(f"#board [data-vertex='{c}']").count())
        candidates.remove(v)
        hana.click_point(v)
        expect(page.locator(".game")).to_have_attribute("data-moves", "6", timeout=bot_ms)

        # -- pass until the bot passes too: the bot marks the dead stones and accepts ------
        for _ in range(60):
            phase = page.locator(".game").get_attribute("data-phase")
            if phase != "playing":
                break
            n = int(page.locator(".game").get_attribute("data-moves") or 0)
            expect(page.locator("#pass")).to_be_enabled(timeout=bot_ms)
            page.click("#pass")
            page.click("dialog .btn.primary")
            page.wait_for_function(
                """n => { const g = document.querySelector(".game");
                    return g.dataset.phase !== "playing" || Number(g.dataset.moves) >= n + 2; }""",
                arg=n,
                timeout=bot_ms,
            )
        else:
            pytest.fail("the bot never passed")
        expect(page.locator(".game")).to_have_attribute("data-phase", "scoring")
        expect(page.locator("#card-white .accepted-mark")).to_be_visible(timeout=bot_ms)
        page.click("#accept-score")
        expect(page.locator(".game")).to_have_attribute("data-phase", "finished")
        expect(page.locator("#result")).to_contain_text("wins")
        moves = int(page.locator(".game").get_attribute("data-moves") or 0)
        hana.shot("21-bot-game-result")

        # -- the AI review, asked for from the review page --------------------------------
        page.click("#to-review")
        page.wait_for_url(f"**/review/{game_id}")
        page.click("#ai-request")
        graph_line = page.locator("#ai-review path.graph-line")
        expect(graph_line).to_have_count(1, timeout=180_000)
        review = _get(server, f"/api/games/{game_id}/review")
        turns = review["turns"]
        assert review["status"] == "done" and len(turns) == moves + 1
        d = graph_line.get_attribute("d") or ""
        points = d.count("M") + d.count("L")
        assert points == sum(isinstance(t["score_lead"], float | int) for t in turns) == moves + 1
        # Mistakes: the mover's loss of score lead, >= 2 a mistake, >= 5 a blunder; the graph
        # and the list mark the same moves. Passing on an open board loses a lot.
        losses = {}
        for a, b in itertools.pairwise(turns):
            loss = a["score_lead"] - b["score_lead"]
            losses[a["turn"] + 1] = loss if a["color"] == "B" else -loss
        blunders = sorted(n for n, x in losses.items() if x >= 5)
        mistakes = sorted(n for n, x in losses.items() if 2 <= x < 5)
        assert blunders, losses
        marks = page.locator("#ai-review svg.graph .graph-mark")
        expect(marks).to_have_count(len(blunders) + len(mistakes))
        got = [int(m.get_attribute("data-n") or 0) for m in marks.all()]
        assert sorted(got) == sorted(blunders + mistakes)
        expect(page.locator("#ai-review .graph-mark.blunder")).to_have_count(len(blunders))
        expect(page.locator("#ai-moves li.blunder")).to_have_count(len(blunders))
        expect(page.locator("#ai-moves li.mistake")).to_have_count(len(mistakes))
        # Clicking a mistake jumps there and says what it cost.
        first = blunders[0]
        page.locator(f"#ai-moves li[data-n='{first}'] button").click()
        expect(page.locator("#move-counter")).to_have_attribute("data-n", str(first))
        expect(page.locator("#ai-verdict")).to_contain_text(f"Move {first}")
        expect(page.locator("#ai-verdict")).to_contain_text("a blunder")

        # -- suggestions: hover a lettered move on the board, its variation shows numbered --
        page.keyboard.press("Home")
        expect(page.locator("#move-counter")).to_have_attribute("data-n", "0")
        best = turns[0]["best"][0]
        expect(page.locator("#main svg.board .label.best")).to_have_text("A")
        page.mouse.move(*hana.point(best["move"], board="#review-board"))
        pv = [m for m in best["pv"] if m != "pass"]
        numbered = page.locator("#review-board .pv .pvmove")
        expect(numbered).to_have_count(len(set(pv)))
        expect(numbered.first.locator("text")).to_have_text("1")
        assert numbered.first.locator("circle").get_attribute("class") == "stone pvstone black"
        page.mouse.move(5, 5)
        expect(numbered).to_have_count(0)
        # The list's button pins it (click again to hide).
        page.locator("#ai-best li button").first.click()
        expect(page.locator("#ai-best li button").first).to_have_attribute("aria-pressed", "true")
        page.mouse.move(5, 5)
        expect(numbered).to_have_count(len(set(pv)))
        page.evaluate("window.scrollTo(0, 0)")
        hana.shot("22-review-variation")
        page.locator("#ai-best li button").first.click()
        page.mouse.move(5, 5)
        expect(numbered).to_have_count(0)

        # -- ownership of the final position (stored for that position only) --------------
        page.check("#ai-ownership")
        expect(page.locator("#move-counter")).to_have_attribute("data-n", str(moves))
        ownership = turns[-1]["ownership"]
        assert len(ownership) == 81
        own = page.locator("#review-board .ownership rect.own")
        expect(own).not_to_have_count(0)
        assert own.count() <= 81
        page.click("#nav-prev")
        expect(own).to_have_count(0)
        expect(page.locator("#ai-ownership-note")).to_contain_text("final position only")
        page.click("#nav-last")
        expect(own).not_to_have_count(0)
        page.locator(f"#ai-moves li[data-n='{first}'] button").click()
        page.keyboard.press("End")
        page.evaluate("window.scrollTo(0, 0)")
        hana.shot("23-review-ai")
        # Reopened, the stored review shows at once (no engine time).
        hana.goto(f"/review/{game_id}")
        expect(graph_line).to_have_count(1)
        page.click("#theme-toggle")
        expect(page.locator("html")).to_have_attribute("data-theme", "dark")
        page.check("#ai-ownership")
        page.wait_for_timeout(300)
        page.evaluate("window.scrollTo(0, 0)")
        hana.shot("24-review-ai-dark")
        assert hana.errors == [], hana.errors
    finally:
        hana.close()


def test_the_apps_rules_agree_with_the_core(server: str, browser: Browser) -> None:
    """js/go.js (captures, handicap points, the counting estimate) against goapp.rules, in
    Chromium: random games on 9x9 and 13x13 replayed move by move."""
    import random

    from goapp.rules import Game, Rules
    from goapp.rules.game import fixed_handicap_xy

    page = Player(browser, server)
    try:
        page.goto("/review")
        prefix = page.asset_prefix()
        go = f"{prefix}/js/go.js"
        for size in (9, 13, 19):
            for n in range(2, 10):
                try:
                    want = sorted(fixed_handicap_xy(n, size))
                except ValueError:
                    continue
                got = page.page.evaluate(f"import('{go}').then(m => m.handicapPoints({n}, {size}))")
                assert sorted(map(tuple, got)) == want, (size, n)
        rng = random.Random(7)
        for size, rules_name in ((9, "japanese"), (13, "chinese"), (9, "tromp-taylor")):
            rules = Rules.from_name(rules_name)
            game = Game(size, rules=rules, komi=7.5)
            moves: list[dict[str, str]] = []
            boards: list[str] = []
            for turn in range(size * size * 2):
                legal = game.legal_moves()
                color = "black" if turn % 2 == 0 else "white"
                if not legal or rng.random() < 0.03:
                    game.play(None)
                    moves.append({"color": color, "vertex": "pass"})
                else:
                    loc = rng.choice(legal)
                    game.play(loc)
                    moves.append({"color": color, "vertex": game.vertex(loc)})
                b = game.board
                boards.append(
                    "".join(".XO"[int(b[x, y])] for y in range(size) for x in range(size))
                )
                if game.is_over:
                    break
            score = game.score()
            out = page.page.evaluate(
                """([go, size, moves, area]) => import(go).then(m => {
                    const rec = new m.Record(size, size, { moves });
                    const boards = [];
                    for (let n = 1; n <= moves.length; n++) {
                        const p = rec.positionAt(n).position;
                        boards.push(Array.from(p.cells, c => ".XO"[c]).join(""));
                    }
                    const p = rec.positionAt(moves.length).position;
                    const est = m.estimateScore(p, new Set(),
                        { scoring: area ? "area" : "territory", komi: 7.5 });
                    return { boards, black: est.black, white: est.white };
                })""",
                [go, size, moves, rules.scoring.name == "AREA"],
            )
            for n, (want_board, got_board) in enumerate(zip(boards, out["boards"], strict=True)):
                assert got_board == want_board, (rules_name, n + 1, moves[n])
            if rules.scoring.name == "AREA":
                assert (out["black"], out["white"]) == (score.black, score.white), rules_name
        # an uploaded SGF with set-up in several nodes: the app's Record applies the
        # answer's ``setup`` edits and ends on the core's position
        from goapp.rules.sgf import read_record, replay
        from goapp.server.api.games import review_sgf

        sgf = b"(;SZ[9]AB[aa][ab]AW[ba]PL[W];W[ee];AE[aa]AW[ii];B[cc];W[];AB[ba:bc])"
        review = review_sgf(sgf)
        game = replay(read_record(sgf))
        stones = "".join(".XO"[int(game.board[x, y])] for y in range(9) for x in range(9))
        got = page.page.evaluate(
            """([go, data]) => import(go).then(m => {
                const rec = new m.Record(9, 9, { handicapStones: data.handicap_stones,
                                                 moves: data.moves, setup: data.setup });
                return Array.from(rec.positionAt(data.moves.length).position.cells,
                                  c => ".XO"[c]).join("");
            })""",
            [go, review],
        )
        assert got == stones
        assert page.errors == []
    finally:
        page.close()


def test_the_session_outlives_its_access_token(short_token_server: str, browser: Browser) -> None:
    """Access tokens last 8 s here: the app renews them before expiry and hands the new one
    to the open socket (``auth``), so the user stays logged in and the socket is never
    closed by the server."""
    server = short_token_server
    _post(server, "/api/register", {"name": "erin", "password": PASSWORD})
    erin = _logged_in(browser, server, "erin")
    try:
        erin.goto("/")
        expect(erin.page.locator("#me")).to_have_text("erin")
        expect(erin.page.locator("html")).to_have_attribute("data-connection", "open")
        erin.page.wait_for_timeout(12_000)  # one and a half lifetimes
        assert erin.page.evaluate("window.goapp.socket.opens") == 1
        expect(erin.page.locator("#me")).to_have_text("erin")
        # Acting over HTTP with the current token works.
        erin.page.fill("#main .chat-input", "still here")
        erin.page.press("#main .chat-input", "Enter")
        expect(erin.page.locator(".chat-lines")).to_contain_text("still here")
        erin.page.reload()
        erin.page.wait_for_selector("html[data-ready='1']")
        expect(erin.page.locator("#me")).to_have_text("erin")
        assert erin.errors == []
    finally:
        erin.close()


class _Framer(http.server.BaseHTTPRequestHandler):
    """Another site: ``/`` frames goapp and a page of its own (``/inner``)."""

    target = ""

    def do_GET(self) -> None:
        if self.path == "/inner":
            body = b"<!doctype html><p id='inner'>framed fine</p>"
        else:
            body = (
                "<!doctype html><iframe id='own' src='/inner'></iframe>"
                f"<iframe id='goapp' src='{self.target}/'></iframe>"
            ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_another_site_cannot_frame_the_app(server: str, browser: Browser) -> None:
    """The CSP's frame-ancestors 'none' (and X-Frame-Options): a page of another origin
    that frames the game (to overlay it and steal a click: a move, a resignation) gets an
    empty frame, while a frame of its own loads (the check can tell the two apart)."""
    handler = type("Framer", (_Framer,), {"target": server})
    framer = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=framer.serve_forever, daemon=True)
    thread.start()
    context = browser.new_context()
    try:
        page = context.new_page()
        console: list[str] = []
        page.on("console", lambda msg: console.append(msg.text))
        with page.expect_response(lambda r: r.url.startswith(server)) as goapp_response:
            page.goto(f"http://127.0.0.1:{framer.server_address[1]}/")
        assert goapp_response.value.status == 200  # the server answered; the browser refused
        own = page.frame_locator("#own")
        expect(own.locator("#inner")).to_have_text("framed fine")
        frame = next(f for f in page.frames if f.url.startswith(server) or "error" in f.url)
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while not any("frame-ancestors" in line for line in console):
            assert time.monotonic() < deadline, console
            page.wait_for_timeout(50)
        assert frame.locator("#header").count() == 0
        assert frame.locator("html[data-ready='1']").count() == 0
    finally:
        context.close()
        framer.shutdown()
        framer.server_close()


def test_the_ai_warming_up_is_shown(untuned_engine_server: str, browser: Browser) -> None:
    """While KataGo tunes itself (first start), the lobby and the bot game say that the AI is
    warming up instead of waiting silently."""
    server = untuned_engine_server
    _post(server, "/api/register", {"name": "ines", "password": PASSWORD})
    ines = _logged_in(browser, server, "ines")
    page = ines.page
    try:
        deadline = time.monotonic() + 300
        while _get(server, "/readyz")["engine"] != "tuning":
            assert time.monotonic() < deadline, "the engine never reported tuning"
            time.sleep(0.5)
        ines.goto("/")
        expect(page.locator("#bot-warming")).to_be_visible()
        page.click("label.seg:has(#ch-size-9)")
        page.select_option("#ch-color", "white")  # the computer moves first
        page.select_option("#ch-time", "none")
        page.select_option("#ch-bot", "beginner")
        page.click("#ch-submit")
        page.wait_for_url("**/game/*")
        expect(page.locator("#status")).to_contain_text("The AI is warming up", timeout=15_000)
    finally:
        ines.close()
