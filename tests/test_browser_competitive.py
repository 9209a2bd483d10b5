"""The browser app's competitive side, end to end in real Chromium against a real
``goapp serve``: ranks next to names, a player's page (ratings per pool with rank and the
provisional mark, the rating graph drawn from the history, current and finished games with
the result and size filters), the leaderboard, ranks computed in the app exactly as
``goapp.rating.ranks`` does, automatch between two browsers, a correspondence game's clock
and its "your move" notification, and the abandonment claim (a short abandon timeout).

Games are set up over the HTTP API (the browser tests of play itself are in
test_browser.py); what is checked is what the pages show. Screenshots go to
test-artifacts/screenshots/.
"""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from test_browser import (
    PASSWORD,
    Browser,
    Player,
    _get,
    _logged_in,
    _post,
    _serve,
    browser,
    expect,
)

from goapp.rating.ranks import rating_to_rank

if TYPE_CHECKING:
    from playwright.sync_api import ViewportSize

# Chromium against goapp serve processes
pytestmark = [pytest.mark.chromium, pytest.mark.server]

__all__ = ["browser"]  # the fixture, imported for pytest

#: How long the server may take to notice a browser that went away and to tell the other
#: player (seconds on two busy cores; the tests close sockets cleanly, by closing the
#: browser or leaving the page, so that no idle timeout is involved).
GONE_MS = 25_000
#: A correspondence clock that runs: under a day left, in hours and minutes.
re_hours = re.compile(r"^2[23]h \d{1,2}m$")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(tmp_path_factory)


_TOKENS: dict[tuple[str, str], str] = {}


def _token(base: str, name: str) -> str:
    """An access token of ``name`` (one login per user: logins are rate limited)."""
    key = (base, name)
    if key not in _TOKENS:
        session = _post(base, "/api/login", {"name": name, "password": PASSWORD})
        _TOKENS[key] = str(session["access_token"])
    return _TOKENS[key]


def _game(base: str, black: str, white: str, size: int) -> int:
    """A direct challenge from ``black`` (playing Black) accepted by ``white``."""
    ch = _post(
        base,
        "/api/challenges",
        {"size": size, "color": "black", "opponent": white},
        _token(base, black),
    )
    return int(
        _post(base, f"/api/challenges/{ch['id']}/accept", {}, _token(base, white))["game_id"]
    )


def _act(base: str, who: str, game_id: int, action: dict[str, Any]) -> Any:
    return _post(base, "/api/action", {"game_id": game_id, "action": action}, _token(base, who))


WIDE: ViewportSize = {"width": 1280, "height": 900}


def _desktop(browser: Browser, base: str, name: str) -> Player:
    """``name`` logged in, in a desktop-sized window."""
    return _logged_in(browser, base, name, viewport=WIDE)


def _two_players(browser: Browser, base: str, a: str, b: str) -> tuple[Player, Player]:
    """Register ``a`` and ``b`` and log each in, in a desktop-sized window of their own."""
    for name in (a, b):
        _post(base, "/api/register", {"name": name, "password": PASSWORD})
    return _desktop(browser, base, a), _desktop(browser, base, b)


def _wait_rated(base: str, name: str, games: int) -> dict[str, Any]:
    """The profile once ``games`` rated games count (rating runs just after a game ends)."""
    deadline = time.monotonic() + 10
    while True:
        user: dict[str, Any] = _get(base, f"/api/users/{name}")
        if user["ratings"].get("overall", {}).get("games") == games:
            return user
        assert time.monotonic() < deadline, user
        time.sleep(0.1)


def test_player_page_graph_filters_and_leaderboard(server: str, browser: Browser) -> None:
    for name in ("ann", "ben"):
        _post(server, "/api/register", {"name": name, "password": PASSWORD})
    # ann beats ben on 9x9 and on 13x13 (ben resigns), then a 19x19 game stays in progress.
    won9 = _game(server, "ann", "ben", 9)
    _act(server, "ann", won9, {"type": "move", "vertex": "E5"})
    _act(server, "ben", won9, {"type": "resign"})
    won13 = _game(server, "ann", "ben", 13)
    _act(server, "ben", won13, {"type": "resign"})
    ann = _wait_rated(server, "ann", 2)
    ben = _wait_rated(server, "ben", 2)
    active = _game(server, "ben", "ann", 19)
    assert ann["ratings"]["overall"]["rating"] > 1500 > ben["ratings"]["overall"]["rating"]

    page = _desktop(browser, server, "ben")
    try:
        p = page.page
        # -- the lobby: names link to the players' pages, with their rank ------------------
        page.goto("/")
        row = p.locator(f"#live-games li[data-game-id='{active}']")
        # A 19x19 game: ranks of the 19x19 pool, where both are still new players.
        expect(row.locator(".ntag[data-user='ann'] .rank")).to_have_text("6k?")
        expect(row.locator(".ntag[data-user='ben'] a.pname")).to_have_attribute("href", "/user/ben")
        expect(p.locator("#me")).to_have_attribute("href", "/user/ben")

        # -- the game page: ranks in the board's pool ---------------------------------------
        page.goto(f"/game/{won9}")
        expect(p.locator("#card-black .ntag a.pname")).to_have_text("ann")
        expect(p.locator("#card-black .rank")).to_have_text(ann["ratings"]["9"]["rank"])
        expect(p.locator("#card-white .rank")).to_have_text(ben["ratings"]["9"]["rank"])
        expect(p.locator("#card-white .ntag")).to_contain_text("(you)")

        # -- the player page, reached from the name ----------------------------------------
        p.locator("#card-black .ntag a.pname").click()
        p.wait_for_url("**/user/ann")
        expect(p.locator(".player-page")).to_have_attribute("data-user", "ann")
        expect(p.locator("#player-head h1")).to_contain_text(ann["ratings"]["overall"]["rank"])
        overall = p.locator("#ratings tr[data-pool='overall']")
        expect(overall).to_contain_text(str(round(ann["ratings"]["overall"]["rating"])))
        expect(overall.locator(".rank")).to_have_text(ann["ratings"]["overall"]["rank"])
        expect(overall.locator(".rank")).to_have_class("rank provisional")
        expect(p.locator("#ratings tr[data-pool]")).to_have_count(3)  # overall, 13, 9
        # The graph: one dot per rated game, in the overall pool first.
        graph = p.locator("#rating-graph svg.rating-graph")
        expect(graph).to_have_attribute("data-points", "2")
        expect(graph.locator("circle.rg-point")).to_have_count(2)
        expect(graph.locator("circle.rg-point.up")).to_have_count(2)
        history = _get(server, "/api/users/ann/ratings")["points"]
        assert [pt["game_id"] for pt in history] == [won9, won13]
        expect(graph.locator("circle.rg-point").last).to_have_attribute("data-game-id", str(won13))
        p.click("#graph-pools button[data-pool='9']")
        expect(p.locator("#rating-graph")).to_have_attribute("data-pool", "9")
        expect(p.locator("#rating-graph svg.rating-graph")).to_have_attribute("data-points", "1")
        # Current games.
        expect(p.locator(f"#player-active li[data-game-id='{active}']")).to_be_visible()
        # Finished games and their filters.
        finished = p.locator("#player-finished li.game-row")
        expect(finished).to_have_count(2)
        expect(p.locator("#player-finished li[data-outcome='win']")).to_have_count(2)
        page.shot("20-player-page")
        p.select_option("#filter-result", "loss")
        expect(p.locator("#player-finished")).to_have_attribute("data-filter", "loss/")
        expect(finished).to_have_count(0)
        expect(p.locator("#player-finished")).to_contain_text("No games match")
        p.select_option("#filter-result", "win")
        p.select_option("#filter-size", "13")
        expect(p.locator("#player-finished")).to_have_attribute("data-filter", "win/13")
        expect(finished).to_have_count(1)
        expect(finished.first).to_have_attribute("data-game-id", str(won13))
        # ben's page: two losses.
        page.goto("/user/ben")
        p.select_option("#filter-result", "loss")
        expect(p.locator("#player-finished")).to_have_attribute("data-filter", "loss/")
        expect(p.locator("#player-finished li[data-outcome='loss']")).to_have_count(2)
        expect(p.locator("#challenge-player")).to_have_count(0)  # not yourself

        # -- the leaderboard ------------------------------------------------------------
        p.click("header nav a[href='/leaderboard']")
        p.wait_for_url("**/leaderboard")
        rows = p.locator("#leaderboard tbody tr")
        expect(rows).to_have_count(2)
        expect(rows.nth(0)).to_have_attribute("data-name", "ann")
        expect(rows.nth(1)).to_have_attribute("data-name", "ben")
        expect(rows.nth(1)).to_have_class("me-row")
        expect(rows.nth(0).locator(".rank")).to_have_text(ann["ratings"]["overall"]["rank"])
        page.shot("21-leaderboard")
        p.click("#lb-pools a[data-pool='19']")
        expect(p.locator("#leaderboard")).to_have_attribute("data-pool", "19")
        expect(p.locator("#lb-empty")).to_be_visible()
        p.click("#lb-pools a[data-pool='13']")
        expect(rows).to_have_count(2)
        rows.nth(0).locator("a.plink").click()
        p.wait_for_url("**/user/ann")
        # "Challenge" on someone else's page fills in the lobby's opponent.
        p.click("#challenge-player")
        p.wait_for_url("**/?opponent=ann")
        expect(p.locator("#ch-opponent")).to_have_value("ann")
        # A reload of a player page or the leaderboard serves the app.
        page.goto("/leaderboard?pool=9")
        expect(p.locator("#leaderboard tbody tr")).to_have_count(2)
        # On a phone the page is one column.
        p.set_viewport_size({"width": 390, "height": 844})
        page.goto("/user/ann")
        expect(p.locator("#rating-graph svg.rating-graph")).to_have_attribute("data-points", "2")
        page.shot("25-phone-player-page")
        p.set_viewport_size(WIDE)
        page.goto("/user/nobody")
        expect(p.locator("main h1")).to_have_text("No such player")
        assert page.errors == [], page.errors
    finally:
        page.close()


def test_the_apps_ranks_agree_with_the_server(server: str, browser: Browser) -> None:
    """js/players.js's rank labels against goapp.rating.ranks, edges included."""
    from goapp.rating.ranks import rank_bounds

    page = Player(browser, server)
    try:
        page.goto("/leaderboard")
        prefix = page.asset_prefix()
        ratings = [50.0, 100.0, 548.2, 1000.0, 1500.0, 1837.4, 1918.5, 2710.4, 7000.0]
        ratings += [r for rank in ("25k", "5k", "1k", "1d", "3d", "9d") for r in rank_bounds(rank)]
        ratings = [r for r in ratings if abs(r) != float("inf")]
        ratings += [100 + i * 13.7 for i in range(200)]
        got = page.page.evaluate(
            f"([rs]) => import('{prefix}/js/players.js').then(m => rs.map(r => m.rankLabel(r)))",
            [ratings],
        )
        assert got == [rating_to_rank(r) for r in ratings]
        labels = page.page.evaluate(
            f"import('{prefix}/js/players.js').then(m => [m.displayRank(1500, 350), "
            "m.displayRank(1500, 159.9), m.poolOf(9), m.poolOf(13, 9), m.poolOf(21)])"
        )
        assert labels == ["6k?", "6k", "9", "overall", "overall"]
        assert page.errors == []
    finally:
        page.close()


# -- automatch, correspondence, abandonment ---------------------------------------------------


@pytest.fixture(scope="module")
def fair_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server where a disconnected player's opponent may claim the win after 2 s."""
    yield from _serve(tmp_path_factory, GOAPP_ABANDON_TIMEOUT_S="2")


@pytest.fixture(scope="module")
def patient_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A disconnected player's opponent may claim the win after 30 s. (A second server:
    registrations are rate limited, five at once.)"""
    yield from _serve(tmp_path_factory, GOAPP_ABANDON_TIMEOUT_S="30")


def test_automatch_pairs_two_browsers(fair_server: str, browser: Browser) -> None:
    server = fair_server
    kim, lee = _two_players(browser, server, "kim", "lee")
    try:
        for who in (kim, lee):
            who.goto("/")
            expect(who.page.locator("#automatch")).to_have_attribute("data-state", "idle")
        # kim asks for 9x9 or 13x13 blitz: nobody waits, so kim waits (and can cancel).
        k = kim.page
        k.click("label.seg:has(#am-size-19)")  # off (the default)
        k.click("label.seg:has(#am-size-9)")
        k.click("label.seg:has(#am-size-13)")
        k.select_option("#am-speed", "blitz")
        k.click("#automatch-start")
        expect(k.locator("#automatch")).to_have_attribute("data-state", "waiting")
        expect(k.locator("#automatch-elapsed")).to_have_text("0:01")
        k.click("#automatch-cancel")
        expect(k.locator("#automatch")).to_have_attribute("data-state", "idle")
        status = urllib.request.Request(
            server + "/api/automatch", headers={"Authorization": f"Bearer {_token(server, 'kim')}"}
        )
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(status)
        assert err.value.code == 404
        # Again, and a reload finds the request waiting; lee asks for 9x9 blitz: paired.
        k.click("#automatch-start")
        expect(k.locator("#automatch")).to_have_attribute("data-state", "waiting")
        kim.page.reload()
        kim.page.wait_for_selector("html[data-ready='1']")
        expect(k.locator("#automatch")).to_have_attribute("data-state", "waiting")
        kim.shot("22-automatch-waiting")
        lp = lee.page
        lp.click("label.seg:has(#am-size-19)")
        lp.click("label.seg:has(#am-size-9)")
        lp.select_option("#am-speed", "blitz")
        lp.click("#automatch-start")
        lp.wait_for_url("**/game/*")
        k.wait_for_url("**/game/*")
        assert k.url == lp.url
        game_id = int(lp.url.rsplit("/", 1)[1])
        game = _get(server, f"/api/games/{game_id}")
        assert game["width"] == 9
        assert {game["players"]["black"]["name"], game["players"]["white"]["name"]} == {
            "kim",
            "lee",
        }
        for who in (kim, lee):
            expect(who.page.locator(".game")).to_have_attribute("data-phase", "playing")
            assert who.errors == [], who.errors
    finally:
        kim.close()
        lee.close()


def test_correspondence_turns_and_your_move_notification(
    patient_server: str, browser: Browser
) -> None:
    server = patient_server
    mia, ned = _two_players(browser, server, "mia", "ned")
    try:
        # mia offers ned a correspondence game (1 day a move) from the lobby, playing Black.
        mia.goto("/")
        ned.goto("/")
        m = mia.page
        m.click("label.seg:has(#ch-size-9)")
        m.select_option("#ch-color", "black")
        m.select_option("#ch-time", "corr-1")
        m.fill("#ch-opponent", "ned")
        m.uncheck("#ch-rated")  # a friendly game
        m.click("#ch-submit")
        challenge = ned.page.locator("#challenges li.challenge", has_text="mia")
        expect(challenge.locator(".meta")).to_contain_text("1 day / move")
        expect(challenge.locator(".meta")).to_contain_text("unrated")
        challenge.locator("button[data-action='accept']").click()
        ned.page.wait_for_url("**/game/*")
        m.wait_for_url("**/game/*")
        game_id = int(m.url.rsplit("/", 1)[1])
        # Days and hours: Black's day runs, White has a whole day per move.
        expect(m.locator("#card-black .clock")).to_have_text(re_hours)
        expect(m.locator("#card-white .clock")).to_have_text("1d 0h")
        expect(m.locator("#card-white .clock-sub")).to_have_text("per move")
        # ned goes back to the lobby; mia moves; ned is told it is his move.
        ned.goto("/")
        expect(m.locator("#status")).to_contain_text("Your move")
        mia.click_point("E5")
        expect(m.locator(".game")).to_have_attribute("data-moves", "1")
        n = ned.page
        expect(n.locator("#toasts .toast.notify")).to_contain_text(f"Your move in game {game_id}")
        badge = n.locator("#your-move")
        expect(badge).to_be_visible()
        expect(badge).to_have_attribute("href", f"/game/{game_id}")
        row = n.locator(f"#live-games li[data-game-id='{game_id}']")
        expect(row).to_have_class(re.compile(r"\byour-move\b"))
        expect(row.locator(".your-move-tag")).to_have_text("Your move")
        # From the list's deadline (a day, plus the server's lag grace).
        expect(row.locator(".meta")).to_contain_text(re.compile(r"· (23h|1d 0h) left"))
        ned.shot("23-your-move")
        n.set_viewport_size({"width": 390, "height": 844})
        expect(badge).to_be_in_viewport()
        expect(n.locator("#logout")).to_be_in_viewport(ratio=1)  # the header still fits
        ned.shot("27-phone-your-move")
        n.set_viewport_size(WIDE)
        badge.click()
        n.wait_for_url(f"**/game/{game_id}")
        expect(n.locator("#status")).to_contain_text("Your move")
        expect(badge).to_be_hidden()
        expect(n.locator("#card-white .clock")).to_have_text(re_hours)
        for who in (mia, ned):
            assert who.errors == [], who.errors
    finally:
        mia.close()
        ned.close()


def test_claim_victory_after_the_opponent_leaves(fair_server: str, browser: Browser) -> None:
    server = fair_server
    oda, pim = _two_players(browser, server, "oda", "pim")
    game_id = _game(server, "oda", "pim", 9)
    try:
        oda.goto(f"/game/{game_id}")
        pim.goto(f"/game/{game_id}")
        o = oda.page
        oda.click_point("E5")
        expect(pim.page.locator("#status")).to_contain_text("Your move")
        pim.click_point("D4")
        expect(o.locator(".game")).to_have_attribute("data-moves", "2")
        # pim's browser goes away: oda sees a countdown, then may claim the win.
        pim.close()
        expect(o.locator("#abandon")).to_contain_text("Your opponent disconnected", timeout=GONE_MS)
        expect(o.locator("#abandon")).to_have_attribute("data-claimable", "true")
        oda.shot("24-claim-victory")
        o.click("#claim-victory")
        o.click("dialog .btn.primary")
        expect(o.locator(".game")).to_have_attribute("data-phase", "finished")
        expect(o.locator("#result")).to_have_text("Black wins by forfeit")
        assert _get(server, f"/api/games/{game_id}")["result"] == "B+F"
        # A forfeit is a rated win: the result shows both ratings and their change.
        change = o.locator("#rating-change")
        expect(change).to_contain_text("oda")
        point = _get(server, "/api/users/oda/ratings?pool=9")["points"][-1]
        assert point["game_id"] == game_id
        gain = round(point["rating"] - point["rating_before"])
        expect(change.locator(".delta.up")).to_have_text(f"(+{gain})")
        expect(change.locator(".delta.down")).to_have_count(1)
        expect(change).to_contain_text(f"oda {round(point['rating'])} (+{gain}) {point['rank']}")
        expect(o.locator("#card-black .rank")).to_have_text(point["rank"])  # the new rank
        oda.shot("26-forfeit-result")
        assert oda.errors == [], oda.errors
    finally:
        oda.close()


def test_the_opponent_who_comes_back_cancels_the_claim(
    patient_server: str, browser: Browser
) -> None:
    server = patient_server
    quin, rae = _two_players(browser, server, "quin", "rae")
    game_id = _game(server, "quin", "rae", 9)
    try:
        quin.goto(f"/game/{game_id}")
        rae.goto(f"/game/{game_id}")
        q = quin.page
        # rae leaves the app for a page without it (its socket closes), then comes back.
        rae.page.goto(server + "/healthz")
        expect(q.locator("#abandon")).to_contain_text("Your opponent disconnected", timeout=GONE_MS)
        expect(q.locator("#abandon-countdown")).to_have_text(re.compile(r"^0:[0-3]\d$"))
        expect(q.locator("#claim-victory")).to_have_count(0)
        rae.goto(f"/game/{game_id}")
        expect(q.locator("#abandon")).to_have_count(0, timeout=GONE_MS)
        expect(q.locator("#claim-victory")).to_have_count(0)
        assert quin.errors == [] and rae.errors == []
    finally:
        quin.close()
        rae.close()
