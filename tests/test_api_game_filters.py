"""The player page's filters of ``GET /api/games``: ``result=win|loss|draw`` (of the user
named by ``user``) and ``size`` (square boards), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from api_support import Api

from goapp.server.api.games import game_outcome
from goapp.store.records import Game


async def ids(api: Api, query: str) -> list[int]:
    status, body = await api.call("GET", f"/api/games?{query}")
    assert status == 200, body
    return [g["id"] for g in body["games"]]


async def test_filter_finished_games_by_result_and_size(api: Api) -> None:
    for name in ("alice", "bob", "carol"):
        await api.register(name)
    # alice (Black) beats bob on 9x9, loses to bob on 13x13, beats carol on 13x13; bob and
    # carol play a 9x9 game alice has no part in; one game stays in progress.
    g1 = await api.new_game("alice", "bob", size=9)
    g2 = await api.new_game("alice", "bob", size=13)
    g3 = await api.new_game("alice", "carol", size=13)
    g4 = await api.new_game("bob", "carol", size=9)
    active = await api.new_game("carol", "alice", size=19)
    for game_id, loser in ((g1, "bob"), (g2, "alice"), (g3, "carol"), (g4, "carol")):
        status, body = await api.act(loser, game_id, {"type": "resign"})
        assert status == 200, body

    assert await ids(api, "user=alice&status=finished") == [g3, g2, g1]
    assert await ids(api, "user=alice&status=finished&result=win") == [g3, g1]
    assert await ids(api, "user=alice&status=finished&result=loss") == [g2]
    assert await ids(api, "user=alice&status=finished&result=draw") == []
    assert await ids(api, "user=alice&status=finished&size=13") == [g3, g2]
    assert await ids(api, "user=alice&status=finished&size=13&result=win") == [g3]
    assert await ids(api, "user=alice&status=finished&size=9&result=loss") == []
    assert await ids(api, "user=carol&status=finished&result=loss&size=9") == [g4]
    assert await ids(api, "user=bob&status=finished&result=win") == [g4, g2]
    # Without a user, the size filter works on every finished game.
    assert await ids(api, "status=finished&size=9") == [g4, g1]
    assert await ids(api, "status=finished&size=9&limit=1") == [g4]
    # Games in progress filter by size too.
    assert await ids(api, "user=alice&status=active") == [active]
    assert await ids(api, "user=alice&status=active&size=19") == [active]
    assert await ids(api, "user=alice&status=active&size=9") == []


@pytest.mark.parametrize(
    ("query", "path"),
    [
        ("status=finished&result=win", "user"),  # whose win?
        ("user=alice&status=finished&result=won", "result"),
        ("user=alice&status=finished&size=1", "size"),
        ("user=alice&status=finished&size=26", "size"),
        ("user=alice&status=finished&size=nine", "size"),
    ],
)
async def test_bad_filters_answer_400(api: Api, query: str, path: str) -> None:
    await api.register("alice")
    status, body = await api.call("GET", f"/api/games?{query}")
    assert status == 400, body
    assert body["error"]["code"] == "bad_request"
    assert body["error"]["path"] == path


def _game(result: str | None, black: int | None = 1, white: int | None = 2) -> Game:
    now = datetime.now(UTC)
    return Game(
        id=1,
        black_id=black,
        white_id=white,
        black_bot=None if black else "katago:easy",
        white_bot=None if white else "katago:easy",
        width=9,
        height=9,
        komi=6.5,
        rules="japanese",
        handicap=0,
        time_control=None,
        status="finished",
        result=result,
        created_at=now,
        started_at=now,
        finished_at=now,
        last_seq=5,
        deadline=None,
    )


@pytest.mark.parametrize(
    ("result", "black", "white"),
    [
        ("B+R", "win", "loss"),
        ("W+3.5", "loss", "win"),
        ("W+T", "loss", "win"),
        ("b+f", "win", "loss"),
        ("0", "draw", "draw"),
        ("Void", None, None),
        (None, None, None),
    ],
)
def test_game_outcome(result: str | None, black: str | None, white: str | None) -> None:
    g = _game(result)
    assert game_outcome(g, 1) == black
    assert game_outcome(g, 2) == white
    assert game_outcome(g, 3) is None  # not their game


def test_game_outcome_against_a_bot() -> None:
    assert game_outcome(_game("W+R", white=None), 1) == "loss"
    assert game_outcome(_game("W+R", black=None), 2) == "win"
