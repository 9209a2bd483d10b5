"""Games over HTTP: a whole 9x9 game played with POST /api/action to a scored result under
byo-yomi, watched by a spectator; every rejected action answers its code and writes nothing;
SGF download and upload; challenges (race, cancel, decline, validation); chat history."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from api_support import Api

# Walls on the D and F columns, E between them is neutral; then a white stone invades
# Black's side (B5) and is marked dead in the scoring phase.
OPENING = [
    *[v for row in range(1, 10) for v in (f"D{row}", f"F{row}")],
    "C5",
    "B5",
]


async def play_to_scoring(api: Api, game_id: int) -> None:
    players = ("alice", "bob")
    for i, vertex in enumerate(OPENING):
        status, body = await api.act(
            players[i % 2], game_id, {"type": "move", "vertex": vertex}, request_id=f"m{i}"
        )
        assert status == 200, (vertex, body)
        assert body["ok"] is True
        assert body["events"][0]["kind"] == "move"
    status, body = await api.act("alice", game_id, {"type": "pass"})
    assert status == 200, body
    status, body = await api.act("bob", game_id, {"type": "pass"})
    assert status == 200, body
    assert [e["kind"] for e in body["events"]] == ["pass", "scoring_started"]


async def test_full_game_to_a_scored_result(api: Api) -> None:
    for name in ("alice", "bob", "carol"):
        await api.register(name)
    game_id = await api.new_game("alice", "bob")

    status, view = await api.call("GET", f"/api/games/{game_id}")  # a spectator, no token
    assert status == 200, view
    assert view["phase"] == "playing" and view["seq"] == 2
    assert view["players"]["black"]["name"] == "alice"
    assert view["players"]["white"]["name"] == "bob"
    assert view["clock"]["system"] == "byoyomi" and view["clock"]["state"] == "running"
    assert view["board"] == ["." * 9] * 9

    await play_to_scoring(api, game_id)
    # the clocks ran: every move event carries both clocks
    status, log = await api.call("GET", f"/api/games/{game_id}/events?since=2")
    assert status == 200
    moves = [e for e in log["events"] if e["kind"] == "move"]
    assert all(e["clock"]["system"] == "byoyomi" for e in moves)
    assert moves[-1]["clock"]["black"]["periods"] == 3
    assert moves[-1]["clock"]["black"]["main_ms"] <= 600_000

    status, view = await api.call("GET", f"/api/games/{game_id}", user="carol")
    assert view["phase"] == "scoring" and view["clock"]["state"] == "paused"
    assert view["board"][4] == ".OXX.O..."  # row 5 from the top: B5 white, C5 D5 black

    status, body = await api.act("alice", game_id, {"type": "mark_dead", "vertex": "B5"})
    assert status == 200, body
    assert body["events"][0]["marking"] == ["B5"]
    status, body = await api.act("alice", game_id, {"type": "accept_score"})
    assert status == 200
    status, body = await api.act("bob", game_id, {"type": "accept_score"}, request_id="acc")
    assert status == 200
    kinds = [e["kind"] for e in body["events"]]
    assert kinds == ["score_accepted", "game_finished"]
    finished = body["events"][1]
    assert finished["reason"] == "score" and finished["dead"] == ["B5"]
    assert body["seq"] == finished["seq"]
    # idempotent retry: the same request id answers the same events, nothing appended
    count = await api.event_count(game_id)
    status, again = await api.act("bob", game_id, {"type": "accept_score"}, request_id="acc")
    assert status == 200 and again["events"] == body["events"]
    assert await api.event_count(game_id) == count

    status, view = await api.call("GET", f"/api/games/{game_id}")
    assert view["phase"] == "finished" and view["result"] == finished["result"]
    assert view["clock"]["state"] == "stopped"
    assert view["result"].startswith(("B+", "W+"))

    status, lists = await api.call("GET", "/api/games?status=finished")
    assert status == 200 and [g["id"] for g in lists["games"]] == [game_id]
    status, lists = await api.call("GET", "/api/games?user=alice&status=finished")
    assert [g["id"] for g in lists["games"]] == [game_id]
    assert lists["games"][0]["result"] == finished["result"]
    status, lists = await api.call("GET", "/api/games?user=alice")
    assert status == 200 and lists["games"] == []

    # SGF download, then upload for review: the same moves and result come back
    async with api.client.get(f"/api/games/{game_id}/sgf") as resp:
        assert resp.status == 200
        assert resp.content_type == "application/x-go-sgf"
        assert f'filename="goapp-{game_id}.sgf"' in resp.headers["Content-Disposition"]
        sgf = await resp.read()
    text = sgf.decode()
    assert "PB[alice]" in text and "PW[bob]" in text and "OT[3x30 byo-yomi]" in text
    assert f"RE[{finished['result']}]" in text
    async with api.client.post(
        "/api/sgf", data=sgf, headers={"Content-Type": "application/x-go-sgf"}
    ) as resp:
        assert resp.status == 200, await resp.text()
        review = await resp.json()
    assert [m["vertex"] for m in review["moves"]] == [*OPENING, "pass", "pass"]
    assert review["moves"][0]["color"] == "black"
    assert review["result"] == finished["result"]
    assert review["info"]["black"] == "alice" and review["info"]["width"] == 9
    assert review["info"]["rules"] == "japanese"


async def test_rejected_actions_answer_their_code_and_write_nothing(api: Api) -> None:
    for name in ("alice", "bob", "carol"):
        await api.register(name)
    game_id = await api.new_game("alice", "bob", time_control=None)

    async def rejected(user: str | None, action: Any, status: int, code: str, **extra: Any) -> None:
        before = await api.event_count(game_id)
        body: dict[str, Any] = {"game_id": extra.pop("game_id", game_id), "action": action, **extra}
        got, err = await api.call("POST", "/api/action", body, user=user)
        assert (got, err["error"]["code"]) == (status, code), err
        assert err["error"]["message"]
        assert await api.event_count(game_id) == before

    await rejected("bob", {"type": "move", "vertex": "E5"}, 409, "not_your_turn")
    await rejected("carol", {"type": "move", "vertex": "E5"}, 403, "not_a_player")
    await rejected(None, {"type": "move", "vertex": "E5"}, 401, "auth_required")
    await rejected(
        "alice", {"type": "move", "vertex": "E5"}, 404, "game_not_found", game_id=game_id + 1000
    )
    await rejected("alice", {"type": "fly"}, 400, "bad_action")
    await rejected("alice", {"type": "move"}, 400, "bad_action")
    await rejected("alice", {"type": "move", "vertex": "E5", "x": 1}, 400, "bad_action")
    await rejected("alice", {"type": "move", "vertex": "Z99"}, 409, "illegal_move")
    await rejected("alice", {"type": "mark_dead", "vertex": "E5"}, 409, "wrong_phase")
    await rejected("alice", {"type": "undo_accept"}, 409, "no_undo_pending")
    await rejected("alice", {"type": "undo_request"}, 409, "cannot_undo")
    await rejected("alice", {"type": "pass"}, 400, "bad_request", lag_ms=5)
    await rejected("alice", {"type": "pass"}, 400, "bad_action", request_id="x" * 129)

    assert (await api.act("alice", game_id, {"type": "move", "vertex": "E5"}))[0] == 200
    status, err = await api.act("bob", game_id, {"type": "move", "vertex": "E5"})
    assert status == 409 and err["error"]["code"] == "illegal_move"
    assert err["error"]["reason"] == "occupied" and err["error"]["vertex"] == "E5"
    assert (await api.act("bob", game_id, {"type": "move", "vertex": "C3"}))[0] == 200
    await rejected("alice", {"type": "abort"}, 409, "cannot_abort")
    assert (await api.act("bob", game_id, {"type": "resign"}))[0] == 200
    await rejected("alice", {"type": "move", "vertex": "D4"}, 409, "game_finished")
    status, view = await api.call("GET", f"/api/games/{game_id}")
    assert view["result"] == "B+R"


async def test_challenge_accept_race_has_one_winner(api: Api) -> None:
    for name in ("alice", "bob", "carol"):
        await api.register(name)
    status, ch = await api.call(
        "POST", "/api/challenges", {"size": 9, "rules": "chinese"}, user="alice"
    )
    assert status == 201, ch
    assert ch["target"] is None and ch["komi"] == 7.5 and ch["status"] == "open"
    status, lobby = await api.call("GET", "/api/challenges")
    assert [c["id"] for c in lobby["challenges"]] == [ch["id"]]

    results = await asyncio.gather(
        api.call("POST", f"/api/challenges/{ch['id']}/accept", user="bob"),
        api.call("POST", f"/api/challenges/{ch['id']}/accept", user="carol"),
    )
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 409], results
    winner = next(body for status, body in results if status == 200)
    loser = next(body for status, body in results if status == 409)
    assert loser["error"]["code"] == "challenge_unavailable"
    status, view = await api.call("GET", f"/api/games/{winner['game_id']}")
    assert status == 200 and view["rules"] == "chinese" and view["width"] == 9
    status, lobby = await api.call("GET", "/api/challenges")
    assert lobby["challenges"] == []


async def test_concurrent_accepts_start_one_game_and_record_it(api: Api) -> None:
    """Two users, and the same user twice, accept one open challenge at once: one game,
    the others 409, and the challenge records the game it started (one transaction)."""
    for name in ("alice", "bob", "carol"):
        await api.register(name)
    status, ch = await api.call(
        "POST", "/api/challenges", {"size": 9, "rules": "japanese"}, user="alice"
    )
    assert status == 201, ch
    path = f"/api/challenges/{ch['id']}/accept"
    results = await asyncio.gather(
        api.call("POST", path, user="bob"),
        api.call("POST", path, user="bob"),
        api.call("POST", path, user="carol"),
    )
    assert sorted(status for status, _ in results) == [200, 409, 409], results
    assert all(b["error"]["code"] == "challenge_unavailable" for s, b in results if s == 409)
    (won,) = [body for status, body in results if status == 200]
    store = api.ctx.store
    stored = await store.get_challenge(ch["id"])
    assert stored.status == "accepted" and stored.game_id == won["game_id"]
    alice = await store.get_user_by_name("alice")
    assert [g.id for g in await store.list_active_games(alice.id)] == [won["game_id"]]
    game = await store.get_game(won["game_id"])
    assert game.status == "playing" and game.last_seq == 2


async def test_accepting_a_challenge_that_makes_no_game_leaves_it_open(api: Api) -> None:
    """A stored challenge whose settings no longer make a game (e.g. written by an older
    version with other limits): the accept answers 409 and changes nothing."""
    for name in ("alice", "bob"):
        await api.register(name)
    store = api.ctx.store
    alice = await store.get_user_by_name("alice")
    params = {
        "size": 99,
        "rules": "japanese",
        "komi": 6.5,
        "handicap": 0,
        "color": "black",
        "time_control": None,
        "rated": True,
    }
    ch = await store.create_challenge(alice.id, params)
    status, err = await api.call("POST", f"/api/challenges/{ch.id}/accept", user="bob")
    assert status == 409 and err["error"]["code"] == "bad_settings", err
    assert await store.get_challenge(ch.id) == ch  # still open, nobody accepted it
    assert await store.list_active_games(alice.id) == []
    status, lobby = await api.call("GET", "/api/challenges")
    assert [c["id"] for c in lobby["challenges"]] == [ch.id]


async def test_challenge_lifecycle_and_validation(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("alice", "bob", "carol"):
        await api.register(name)
    published: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(
        api.ctx.hub, "publish_lobby", lambda k, p, only=None: published.append((k, p))
    )

    status, direct = await api.call(
        "POST", "/api/challenges", {"size": 13, "rules": "aga", "opponent": "Bob"}, user="alice"
    )
    assert status == 201 and direct["target"]["name"] == "bob"
    assert published[-1] == ("challenge_created", direct)
    # only the parties see a direct challenge
    assert [
        c["id"] for c in (await api.call("GET", "/api/challenges", user="bob"))[1]["challenges"]
    ] == [direct["id"]]
    assert (await api.call("GET", "/api/challenges", user="carol"))[1]["challenges"] == []
    # carol may neither accept nor cancel it
    status, err = await api.call("POST", f"/api/challenges/{direct['id']}/accept", user="carol")
    assert status == 409
    status, err = await api.call("DELETE", f"/api/challenges/{direct['id']}", user="carol")
    assert status == 403 and err["error"]["code"] == "not_a_party"
    status, err = await api.call("POST", f"/api/challenges/{direct['id']}/accept", user="alice")
    assert status == 409
    # bob declines
    status, body = await api.call("DELETE", f"/api/challenges/{direct['id']}", user="bob")
    assert status == 200 and body["challenge"]["status"] == "declined"
    assert published[-1] == ("challenge_declined", {"challenge_id": direct["id"]})
    status, err = await api.call("POST", f"/api/challenges/{direct['id']}/accept", user="bob")
    assert status == 409
    # a direct challenge bob accepts: the game starts with alice as black
    status, again = await api.call(
        "POST",
        "/api/challenges",
        {"size": 9, "rules": "japanese", "opponent": "bob", "color": "black"},
        user="alice",
    )
    status, acc = await api.call("POST", f"/api/challenges/{again['id']}/accept", user="bob")
    assert status == 200, acc
    kind, payload = published[-1]
    assert kind == "challenge_accepted"
    assert payload["challenge_id"] == again["id"] and payload["game_id"] == acc["game_id"]
    assert payload["black_id"] == direct["challenger"]["id"]
    assert payload["white_id"] == direct["target"]["id"]
    # alice cancels an open one
    status, ch = await api.call(
        "POST", "/api/challenges", {"size": 19, "rules": "japanese"}, user="alice"
    )
    status, body = await api.call("DELETE", f"/api/challenges/{ch['id']}", user="alice")
    assert status == 200 and body["challenge"]["status"] == "cancelled"
    status, err = await api.call("DELETE", f"/api/challenges/{ch['id']}", user="alice")
    assert status == 409
    status, err = await api.call("DELETE", "/api/challenges/999999", user="alice")
    assert status == 404 and err["error"]["code"] == "challenge_not_found"

    bad: list[tuple[dict[str, Any], int, str, str]] = [
        ({"size": 1, "rules": "japanese"}, 400, "bad_request", "$.size"),
        ({"size": 26, "rules": "japanese"}, 400, "bad_request", "$.size"),
        ({"size": 9, "rules": "chess"}, 400, "bad_settings", "$.rules"),
        ({"size": 9, "rules": "japanese", "komi": 6.3}, 400, "bad_settings", "$.komi"),
        ({"size": 9, "rules": "japanese", "komi": 1e9}, 400, "bad_request", "$.komi"),
        ({"size": 9, "rules": "japanese", "handicap": 10}, 400, "bad_request", "$.handicap"),
        ({"size": 9, "rules": "japanese", "handicap": 1}, 400, "bad_settings", "$.handicap"),
        ({"size": 5, "rules": "japanese", "handicap": 2}, 400, "bad_settings", "$.handicap"),
        ({"size": 9, "rules": "japanese", "color": "red"}, 400, "bad_request", "$.color"),
        (
            {"size": 9, "rules": "japanese", "time_control": {"system": "hourglass"}},
            400,
            "bad_request",
            "$.time_control.system",
        ),
        (
            {
                "size": 9,
                "rules": "japanese",
                "time_control": {"system": "byoyomi", "main_s": -1, "periods": 1, "period_s": 10},
            },
            400,
            "bad_request",
            "$.time_control",
        ),
        (
            {"size": 9, "rules": "japanese", "opponent": "nobody"},
            404,
            "user_not_found",
            "$.opponent",
        ),
        ({"size": 9, "rules": "japanese", "opponent": "alice"}, 400, "bad_settings", "$.opponent"),
        ({"size": 9, "rules": "japanese", "extra": 1}, 400, "bad_request", "$"),
    ]
    for body, status, code, path in bad:
        got, err = await api.call("POST", "/api/challenges", body, user="alice")
        assert (got, err["error"]["code"], err["error"].get("path")) == (status, code, path), body
    got, err = await api.call(
        "POST",
        "/api/challenges",
        {"size": 9, "rules": "japanese", "opponent": "computer"},
        user="alice",
    )
    assert got == 400 and err["error"]["code"] == "engine_unavailable"
    assert "computer" in err["error"]["message"]
    got, err = await api.call("POST", "/api/challenges", {"size": 9, "rules": "japanese"})
    assert got == 401
    # handicap with default komi 0.5, on a board where it fits
    got, ch = await api.call(
        "POST", "/api/challenges", {"size": 9, "rules": "japanese", "handicap": 4}, user="alice"
    )
    assert got == 201 and ch["komi"] == 0.5 and ch["handicap"] == 4


async def test_chat_history(api: Api) -> None:
    alice = await api.register("alice")
    store = api.ctx.store
    ids = [(await store.add_chat("lobby", alice["user"]["id"], f"hello {i}")).id for i in range(5)]
    await store.add_chat("game:7", None, "system line")
    status, body = await api.call("GET", "/api/chat/lobby?limit=3")
    assert status == 200
    assert [m["text"] for m in body["messages"]] == ["hello 2", "hello 3", "hello 4"]
    assert body["messages"][0]["user"]["name"] == "alice"
    status, body = await api.call("GET", f"/api/chat/lobby?before={ids[2]}")
    assert [m["text"] for m in body["messages"]] == ["hello 0", "hello 1"]
    status, body = await api.call("GET", "/api/chat/game:7")
    assert body["messages"][0]["user"] is None
    status, err = await api.call("GET", "/api/chat/secret")
    assert status == 404 and err["error"]["code"] == "room_not_found"
    status, err = await api.call("GET", "/api/chat/lobby?before=abc")
    assert status == 400 and err["error"]["path"] == "before"


async def test_ids_in_paths_and_queries_are_ascii_digits_only(api: Api) -> None:
    """``\\d`` and ``int()`` take a fullwidth 3 as 3: game 3 must not answer to it."""
    await api.register("alice")
    await api.register("bob")
    game_id = await api.new_game("alice", "bob")
    assert game_id < 10
    await api.ctx.store.add_chat(f"game:{game_id}", None, "a line")
    for digit in (chr(0xFF10 + game_id), chr(0x0660 + game_id)):
        for path in (f"/api/games/{digit}", f"/api/games/{digit}/events"):
            status, err = await api.call("GET", path)
            assert status == 404, (path, err)
        status, err = await api.call("GET", f"/api/chat/game:1{digit}")
        assert status == 404 and err["error"]["code"] == "room_not_found"
        status, err = await api.call("GET", f"/api/games/{game_id}/events?since={digit}")
        assert status == 400 and err["error"]["path"] == "since"
    status, err = await api.call("GET", "/api/games/²")
    assert status == 404
    assert (await api.call("GET", f"/api/games/{game_id}/events?since=1"))[0] == 200


async def test_game_reads_of_unknown_games(api: Api) -> None:
    for path in ("/api/games/999", "/api/games/999/events", "/api/games/999/sgf"):
        status, err = await api.call("GET", path)
        assert status == 404 and err["error"]["code"] == "game_not_found", path
    status, err = await api.call("GET", "/api/games?status=active")
    assert status == 400
    status, err = await api.call("GET", "/api/games?user=nobody")
    assert status == 404


async def test_handicap_game_sgf_round_trip(api: Api) -> None:
    await api.register("alice")
    await api.register("bob")
    game_id = await api.new_game("alice", "bob", handicap=2, komi=0.5, time_control=None)
    status, view = await api.call("GET", f"/api/games/{game_id}")
    assert view["to_move"] == "white" and view["handicap"] == 2
    for user, vertex in (("bob", "E5"), ("alice", "C5"), ("bob", "D5")):
        status, body = await api.act(user, game_id, {"type": "move", "vertex": vertex})
        assert status == 200, body
    status, sgf = await api.call("GET", f"/api/games/{game_id}/sgf")
    assert status == 200 and isinstance(sgf, bytes)
    assert b"HA[2]" in sgf and b"AB[" in sgf and b"RE[" not in sgf
    async with api.client.post(
        "/api/sgf", data=sgf, headers={"Content-Type": "application/x-go-sgf"}
    ) as resp:
        review = await resp.json()
        assert resp.status == 200, review
    assert sorted(review["handicap_stones"]) == ["C3", "G7"]
    assert [(m["color"], m["vertex"]) for m in review["moves"]] == [
        ("white", "E5"),
        ("black", "C5"),
        ("white", "D5"),
    ]
    assert review["result"] is None and review["info"]["komi"] == 0.5


async def test_sgf_upload_of_files_as_they_exist(api: Api) -> None:
    """POST /api/sgf applies set-up wherever it is (and says so in ``setup``), honours PL,
    and refuses the point-list bomb of issue 15 with bad_sgf, without expanding it."""

    async def upload(data: bytes) -> tuple[int, Any]:
        async with api.client.post(
            "/api/sgf", data=data, headers={"Content-Type": "application/x-go-sgf"}
        ) as resp:
            return resp.status, await resp.json()

    status, review = await upload(b"(;GM[1]SZ[9]PL[W];W[ee];B[cc];AE[cc]AB[gg];W[cg])")
    assert status == 200, review
    assert [(m["color"], m["vertex"]) for m in review["moves"]] == [
        ("white", "E5"),
        ("black", "C7"),
        ("white", "C3"),
    ]
    assert review["setup"] == [{"move": 2, "black": ["G3"], "white": [], "empty": ["C7"]}]
    status, review = await upload(b"(;SZ[19]HA[2]RE[B+0.0];AB[pd][dp];W[dc])")
    assert status == 200, review
    assert sorted(review["handicap_stones"]) == ["D4", "Q16"] and review["setup"] == []
    assert review["result"] == "B+"
    bomb = ("(;GM[1]SZ[52]AB" + "[aa:ZZ]" * 142_857 + ")").encode()
    status, err = await upload(bomb)
    assert status == 400 and err["error"]["code"] == "bad_sgf"
    assert "not supported" in err["error"]["message"]
