"""Rated games end to end: a 9x9 game between two users, resigned through the HTTP API and
the real game service, moves the '9' and 'overall' ratings once (winner up, loser down,
history rows); a retry, a bot game and an unrated game move nothing; catch_up() rates a
finished game the hook missed; the rating endpoints answer their shapes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from api_support import Api

from goapp.rating.service import RatingService, game_score
from goapp.store import Store, open_store


def _service(api: Api) -> RatingService:
    assert api.ctx.ratings is not None
    return api.ctx.ratings


async def _snapshot(store: Store, *user_ids: int) -> Any:
    return [
        (await store.get_ratings(u), await store.get_user(u), await store.rating_history(u, "9"))
        for u in user_ids
    ]


async def test_rated_game_moves_ratings_once(api: Api) -> None:
    alice = (await api.register("alice"))["user"]["id"]
    bob = (await api.register("bob"))["user"]["id"]
    store, ratings = api.ctx.store, _service(api)
    game_id = await api.new_game("alice", "bob", size=9)
    assert (await api.act("alice", game_id, {"type": "move", "vertex": "E5"}))[0] == 200
    assert (await api.act("bob", game_id, {"type": "resign"}))[0] == 200
    await ratings.wait_idle()

    a, b = await store.get_ratings(alice), await store.get_ratings(bob)
    assert sorted(a) == sorted(b) == ["9", "overall"]
    for pool in ("9", "overall"):
        assert a[pool].rating > 1500.0 > b[pool].rating
        assert a[pool].rd < 350.0 and a[pool].games == b[pool].games == 1
    assert (await store.get_user(alice)).rating == a["overall"].rating
    history = await store.rating_history(alice, "9")
    assert [(h.game_id, h.rating_before) for h in history] == [(game_id, 1500.0)]
    assert history[0].rating_after == a["9"].rating

    # a retry (the hook again, another instance, catch-up) changes nothing
    before = await _snapshot(store, alice, bob)
    assert await ratings.rate(game_id) is False
    assert await ratings.schedule(game_id) is False
    assert await ratings.catch_up() == 0
    assert await _snapshot(store, alice, bob) == before

    # the API
    status, body = await api.call("GET", "/api/users/alice")
    assert status == 200, body
    assert set(body["ratings"]) == {"9", "overall"}
    r9 = body["ratings"]["9"]
    assert set(r9) == {"rating", "rd", "rank", "provisional", "games"}
    assert r9["games"] == 1 and r9["provisional"] is True and r9["rank"].endswith("?")
    assert r9["rating"] == round(a["9"].rating, 1)

    status, body = await api.call("GET", "/api/users/bob/ratings?pool=9")
    assert status == 200, body
    assert body["user"] == "bob" and body["pool"] == "9"
    [point] = body["points"]
    assert point["game_id"] == game_id and point["rating_before"] == 1500.0
    assert point["rating"] < 1500.0 and {"at", "rd", "rank"} <= set(point)
    status, body = await api.call("GET", "/api/users/bob/ratings")
    assert status == 200 and body["pool"] == "overall" and len(body["points"]) == 1
    assert (await api.call("GET", "/api/users/bob/ratings?pool=19"))[1]["points"] == []
    assert (await api.call("GET", "/api/users/bob/ratings?pool=7"))[0] == 400
    assert (await api.call("GET", "/api/users/nobody/ratings"))[0] == 404

    status, body = await api.call("GET", "/api/leaderboard?pool=9&limit=50")
    assert status == 200, body
    assert body["pool"] == "9"
    assert [(p["place"], p["name"], p["games"]) for p in body["players"]] == [
        (1, "alice", 1),
        (2, "bob", 1),
    ]
    assert set(body["players"][0]) == {
        "place",
        "name",
        "rating",
        "rd",
        "rank",
        "provisional",
        "games",
    }
    assert (await api.call("GET", "/api/leaderboard?pool=13"))[1]["players"] == []
    assert (await api.call("GET", "/api/leaderboard?limit=0"))[0] == 400

    path = "/api/challenges/suggest?opponent=bob&size=19&rules=japanese"
    assert (await api.call("GET", path))[0] == 401
    status, body = await api.call("GET", path, user="alice")
    assert status == 200, body
    assert body["pool"] == "19" and body["size"] == 19 and body["rules"] == "japanese"
    # no 19x19 games yet: both 1500, an even game
    assert (body["handicap"], body["komi"], body["black"], body["stones"]) == (0, 6.5, None, 0)
    status, body = await api.call(
        "GET", "/api/challenges/suggest?opponent=bob&size=9&rules=chinese", user="alice"
    )
    assert status == 200, body
    assert body["pool"] == "9" and body["rank_difference"] > 0
    assert set(body) >= {"handicap", "komi", "black", "your_rank", "opponent_rank"}
    bad = "/api/challenges/suggest?opponent=bob&rules=nonsense"
    assert (await api.call("GET", bad, user="alice"))[0] == 400
    assert (await api.call("GET", "/api/challenges/suggest?opponent=zed", user="alice"))[0] == 404
    assert (await api.call("GET", "/api/challenges/suggest", user="alice"))[0] == 400


async def test_bot_unrated_and_missed_games(api: Api) -> None:
    alice = (await api.register("alice"))["user"]["id"]
    bob = (await api.register("bob"))["user"]["id"]
    store, games, ratings = api.ctx.store, api.ctx.games, _service(api)

    # a game against a bot moves nothing (no engine here: the bot never moves)
    bot_game = await games.create_game(
        alice, None, user_color="black", size=9, opponent_bot="katago:b6"
    )
    await games.act(bot_game.game_id, alice, {"type": "resign"})
    await ratings.wait_idle()
    assert await ratings.rate(bot_game.game_id) is False
    # an unrated game between two users moves nothing either
    unrated = await games.create_game(alice, bob, user_color="black", size=13)
    await store.set_game_rated(unrated.game_id, False)
    await games.act(unrated.game_id, bob, {"type": "resign"})
    await ratings.wait_idle()
    assert await store.get_ratings(alice) == await store.get_ratings(bob) == {}

    # a game that finished while the hook was not there (a crash): catch_up() rates it
    ratings.detach()
    missed = await games.create_game(alice, bob, user_color="white", size=19)
    await games.act(missed.game_id, alice, {"type": "resign"})  # bob (black) wins
    await ratings.wait_idle()
    assert await store.get_ratings(bob) == {}
    assert [g.id for g in await store.unrated_finished_games()] == [missed.game_id]
    assert await ratings.catch_up() == 1
    assert await ratings.catch_up() == 0
    b = await store.get_ratings(bob)
    assert sorted(b) == ["19", "overall"] and b["19"].rating > 1500.0
    assert (await store.get_ratings(alice))["19"].rating < 1500.0


def test_scores_and_pools() -> None:
    assert [game_score(r) for r in ("B+R", "W+3.5", "0", "Void", None)] == [
        1.0,
        0.0,
        0.5,
        None,
        None,
    ]


async def test_two_instances_and_simultaneous_games(api: Api) -> None:
    """Another instance (its own store connections) rates the same games at once: each game
    is applied once. Two games of one player ending together both count (the stale one is
    recomputed)."""
    alice = (await api.register("alice"))["user"]["id"]
    bob = (await api.register("bob"))["user"]["id"]
    carol = (await api.register("carol"))["user"]["id"]
    store, games, ratings = api.ctx.store, api.ctx.games, _service(api)
    ratings.detach()
    ended = []
    for opponent in (bob, carol, bob):
        state = await games.create_game(alice, opponent, user_color="black", size=9)
        await games.act(state.game_id, opponent, {"type": "resign"})
        ended.append(state.game_id)
    other_store = await open_store(store.url)
    other = RatingService(other_store)
    try:
        results = await asyncio.gather(
            *(svc.rate(g) for g in ended for svc in (ratings, other)),
        )
    finally:
        await other.close()
        await other_store.close()
    assert sorted(results) == [False] * 3 + [True] * 3
    a = await store.get_ratings(alice)
    assert a["9"].games == a["overall"].games == 3
    assert (await store.get_user(alice)).games_count == 3
    assert len(await store.rating_history(alice, "9")) == 3
    assert (await store.get_ratings(bob))["9"].games == 2
    assert (await store.get_ratings(carol))["overall"].games == 1


# -- unrated challenges and inactivity (issue 9) -----------------------------------------------


async def test_unrated_challenge_moves_no_rating(api: Api) -> None:
    alice = (await api.register("alice"))["user"]["id"]
    bob = (await api.register("bob"))["user"]["id"]
    store, ratings = api.ctx.store, _service(api)
    status, ch = await api.call(
        "POST",
        "/api/challenges",
        {"size": 9, "color": "black", "opponent": "bob", "rated": False},
        user="alice",
    )
    assert status == 201 and ch["rated"] is False, ch
    status, listed = await api.call("GET", "/api/challenges", user="bob")
    assert [c["rated"] for c in listed["challenges"]] == [False]
    status, body = await api.call("POST", f"/api/challenges/{ch['id']}/accept", user="bob")
    assert status == 200, body
    game_id = body["game_id"]
    assert await store.is_game_rated(game_id) is False
    status, view = await api.call("GET", f"/api/games/{game_id}")
    assert view["rated"] is False
    assert (await api.act("alice", game_id, {"type": "move", "vertex": "E5"}))[0] == 200
    assert (await api.act("bob", game_id, {"type": "resign"}))[0] == 200
    await ratings.wait_idle()
    assert await ratings.rate(game_id) is False
    assert await store.get_ratings(alice) == await store.get_ratings(bob) == {}
    # a rated one (the default) does move them
    rated = await api.new_game("alice", "bob", size=9)
    assert await store.is_game_rated(rated) is True
    assert (await api.act("bob", rated, {"type": "resign"}))[0] == 200
    await ratings.wait_idle()
    assert (await store.get_ratings(alice))["9"].rating > 1500.0
    # games against a bot are stored unrated
    bot = await api.ctx.games.create_game(alice, None, size=9, opponent_bot="katago:b6")
    assert await store.is_game_rated(bot.game_id) is False


async def test_rd_grows_with_inactivity_before_a_game_is_rated(api: Api) -> None:
    from datetime import UTC, datetime, timedelta

    from goapp.rating.glicko2 import Rating, age, rate_game
    from goapp.rating.service import RATING_PERIODS_PER_DAY, aged_rating
    from goapp.store import PoolRating, RatingUpdate

    alice = (await api.register("alice"))["user"]["id"]
    bob = (await api.register("bob"))["user"]["id"]
    store, games, ratings = api.ctx.store, api.ctx.games, _service(api)
    # both settled at RD 60, a year ago (an old game, written with its date)
    old = await games.create_game(alice, bob, user_color="black", size=13, rated=False)
    await games.act(old.game_id, bob, {"type": "resign"})
    year_ago = datetime.now(UTC) - timedelta(days=365)
    settled = [
        RatingUpdate(
            user_id=u,
            pool=p,
            rating_before=1500.0,
            games_before=0,
            rating=r,
            rd=60.0,
            volatility=0.06,
        )
        for u, r in ((alice, 1600.0), (bob, 1500.0))
        for p in ("9", "overall")
    ]
    assert await store.apply_rating_update(old.game_id, settled, now=year_ago)
    a0 = (await store.get_ratings(alice))["9"]
    # a year without games: RD 60 grows to about 110 (lichess' calibration)
    grown = aged_rating(a0, year_ago + timedelta(days=365))
    assert 105.0 < grown.rd < 115.0
    assert grown.rd == pytest.approx(age(Rating(1600.0, 60.0), 365 * RATING_PERIODS_PER_DAY).rd)
    assert aged_rating(a0, year_ago).rd == 60.0
    assert aged_rating(None).rd == 350.0
    # the profile shows the RD as of now, not the one stored a year ago
    status, body = await api.call("GET", "/api/users/alice")
    assert status == 200, body
    shown = body["ratings"]["9"]["rd"]
    assert shown == pytest.approx(aged_rating(a0).rd, abs=0.1) and shown > 105.0

    # komi 6 is fair under territory scoring: no handicap shift in the computation
    game = await games.create_game(alice, bob, user_color="black", size=9, komi=6.0)
    await games.act(game.game_id, bob, {"type": "resign"})
    await ratings.wait_idle()
    row = await store.get_game(game.game_id)
    assert row.finished_at is not None
    b0 = PoolRating(
        user_id=bob,
        pool="9",
        rating=1500.0,
        rd=60.0,
        volatility=0.06,
        games=1,
        updated_at=a0.updated_at,
    )
    want_a, _ = rate_game(aged_rating(a0, row.finished_at), aged_rating(b0, row.finished_at), 1.0)
    fresh_a, _ = rate_game(Rating(1600.0, 60.0), Rating(1500.0, 60.0), 1.0)
    a1 = (await store.get_ratings(alice))["9"]
    assert a1.rd == pytest.approx(want_a.rd)
    assert a1.rd > fresh_a.rd + 20  # the year away counted
    assert a1.rating - 1600.0 == pytest.approx(want_a.rating - 1600.0)
    assert a1.rating - 1600.0 > fresh_a.rating - 1600.0  # a less certain rating moves more
