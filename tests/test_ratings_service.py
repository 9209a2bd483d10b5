"""Rated games end to end: a 9x9 game between two users, resigned through the HTTP API and
the real game service, moves the '9' and 'overall' ratings once (winner up, loser down,
history rows); a retry, a bot game and an unrated game move nothing; catch_up() rates a
finished game the hook missed; the rating endpoints answer their shapes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from api_support import Api, fast_scrypt, make_api

from goapp.rating.service import RatingService, game_score
from goapp.store import Store, open_store


@pytest.fixture
async def api(
    store_url: str, tmp_path: Path, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Api]:
    fast_scrypt(monkeypatch)
    async for a in make_api(aiohttp_client, tmp_path, store_url):
        yield a


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
