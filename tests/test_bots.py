"""Playing the computer: the bot driver with the real KataGo (small model, tiny visits) and
the real GNU Go, through the game service and the HTTP API, over a real SQLite store."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from api_support import fast_scrypt, make_api, scrape_metrics
from engine_support import bot_setup, human_turn, katago_backend, until

from goapp.engine.errors import EngineUnavailableError
from goapp.engine.facade import GnuGoBackend, KataGoBackend, find_gnugo, open_engine
from goapp.engine.katago import KataGoEngine
from goapp.engine.remote import RemoteEngine
from goapp.engine.setup import KataGoPaths
from goapp.game.events import UndoAccepted
from goapp.server.wiring import use_engine
from goapp.settings import load_settings
from goapp.store import open_store

pytestmark = pytest.mark.timeout(1800)  # the session fixture may tune OpenCL first

Client = Callable[..., Awaitable[TestClient]]


@pytest.fixture(autouse=True)
def _cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    fast_scrypt(monkeypatch)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_open_engine_follows_the_settings(tmp_path: Path, katago: KataGoPaths) -> None:
    def settings(**kw: Any) -> Any:
        return load_settings(env={}, overrides={"data_dir": str(tmp_path), **kw})

    assert open_engine(settings(engine="none")) is None
    gnugo = open_engine(settings(engine="gnugo"))
    assert isinstance(gnugo, GnuGoBackend) and gnugo.kind == "gnugo"
    wrapper = str(katago.home / "katago") if katago.home else str(katago.binary)
    kg = open_engine(settings(engine="auto", katago_binary=wrapper))
    assert isinstance(kg, KataGoBackend) and isinstance(kg.inner, KataGoEngine)
    assert kg.inner.model == katago.model  # found in the installation's models/
    # nothing in DATA_DIR/katago: auto falls back to GNU Go unless ./.katago is searched
    assert isinstance(open_engine(settings(), search_cwd=False), GnuGoBackend)
    remote = open_engine(settings(engine_url="http://127.0.0.1:9", engine_secret="x"))
    assert isinstance(remote, KataGoBackend) and isinstance(remote.inner, RemoteEngine)
    with pytest.raises(EngineUnavailableError):
        open_engine(settings(engine="katago", katago_binary=str(tmp_path / "nope")))
    with pytest.raises(EngineUnavailableError):
        open_engine(settings(engine="remote"))


async def _wait_for_human(games: Any, game_id: int, color: str) -> Any:
    async def ready() -> bool:
        st = await games.state(game_id)
        return st.phase != "playing" or st.to_move == color

    await until(ready, 120, "the bot's reply")
    return await games.state(game_id)


async def test_bot_game_to_the_end_through_the_api(
    aiohttp_client: Client, tmp_path: Path, katago: KataGoPaths
) -> None:
    async for api in make_api(aiohttp_client, tmp_path, f"sqlite://{tmp_path}/api.db"):
        await use_engine(api.ctx, katago_backend(katago))
        await api.register("alice")
        s, err = await api.call(
            "POST",
            "/api/challenges",
            {"size": 9, "opponent": "computer", "level": "grandmaster"},
            user="alice",
        )
        assert s == 400 and err["error"]["path"] == "$.level"
        s, body = await api.call(
            "POST",
            "/api/challenges",
            {
                "size": 9,
                "rules": "chinese",
                "color": "white",
                "opponent": "computer",
                "level": "beginner",
            },
            user="alice",
        )
        assert s == 201, body
        assert body["bot"] == "katago:beginner" and body["color"] == "white"
        assert body["black"] == {"bot": "katago:beginner"} and body["white"]["name"] == "alice"
        game_id = body["game_id"]
        games = api.ctx.games
        rng = random.Random(11)
        for turn in range(150):
            state = await _wait_for_human(games, game_id, "white")
            if state.phase != "playing":
                break
            passing = turn >= 6
            from engine_support import random_move

            vertex = None if passing else random_move(state, rng)
            action = {"type": "pass"} if vertex is None else {"type": "move", "vertex": vertex}
            s, out = await api.act("alice", game_id, action)
            assert s == 200, out
        state = await games.state(game_id)
        assert state.phase == "scoring"

        # the bot marks the dead stones it sees and accepts; the human accepts that marking
        async def bot_accepted(games: Any = games, game_id: int = game_id) -> bool:
            return "black" in (await games.state(game_id)).accepted

        await until(bot_accepted, 120, "the bot's acceptance")
        s, out = await api.act("alice", game_id, {"type": "accept_score"})
        assert s == 200, out
        assert out["events"][-1]["kind"] == "game_finished"
        assert out["events"][-1]["reason"] == "score"
        s, view = await api.call("GET", f"/api/games/{game_id}")
        assert view["phase"] == "finished" and view["result"] == out["events"][-1]["result"]
        assert len(view["moves"]) > 8  # the bot played, then passed
        stats = api.ctx.engine.stats() if api.ctx.engine else {}
        assert stats["queries_ok"] >= 4


async def test_engine_killed_mid_game_undo_and_restart_resume(
    tmp_path: Path, katago: KataGoPaths
) -> None:
    store = await open_store(f"sqlite://{tmp_path}/bots.db")
    try:
        uid = (await store.create_user("alice", None)).id
        engine = katago_backend(katago)
        async with bot_setup(tmp_path, engine, store=store) as (_, games, _driver):
            st = await games.create_game(
                uid, None, user_color="black", size=9, rules="chinese", opponent_bot="katago:easy"
            )
            gid = st.game_id
            await games.act(gid, uid, {"type": "move", "vertex": "E5"})
            state = await _wait_for_human(games, gid, "black")
            assert state.game.move_number == 2
            reply = state.game.vertex(state.game.moves[-1])
            seq0 = state.last_seq  # (the state object is live: it follows the log)

            # undo against the computer: the human's move and the bot's reply go back
            await games.act(gid, uid, {"type": "undo_request"})

            async def undone() -> bool:
                s = await games.state(gid)
                return s.game.move_number == 0 and s.undo_request is None

            await until(undone, 60, "the undo")
            events = await games.events_since(gid, seq0)
            undo = [e.event for e in events if isinstance(e.event, UndoAccepted)]
            assert len(undo) == 1 and undo[0].undone == [reply, "E5"]
            assert undo[0].color == "white" and undo[0].to_move == "black"

            # SIGKILL KataGo while the bot thinks: the supervisor restarts it, the query is
            # sent again, the bot's move arrives
            assert isinstance(engine.inner, KataGoEngine)
            pid = engine.inner.pid
            assert pid is not None
            await games.act(gid, uid, {"type": "move", "vertex": "C3"})
            os.kill(pid, signal.SIGKILL)
            state = await _wait_for_human(games, gid, "black")
            assert state.game.move_number == 2
            assert engine.inner.crashes >= 1 and engine.inner.pid not in (None, pid)

            # the server stops while the bot is to move (or thinking) ...
            await games.act(gid, uid, {"type": "move", "vertex": "G7"})
        state = await games.state(gid)
        assert state.game.move_number in (3, 4)

        # ... and a new process on the same store resumes the bot's turn
        engine2 = katago_backend(katago)
        async with bot_setup(tmp_path, engine2, store=store) as (_, games2, driver2):
            assert await driver2.resume() == 1
            state = await _wait_for_human(games2, gid, "black")
            assert state.game.move_number == 4
            await games2.act(gid, uid, {"type": "resign"})
            assert (await games2.state(gid)).result == "W+R"
            await driver2.idle()
            assert await store.list_active_bot_games() == []
    finally:
        await store.close()


async def test_bot_plays_first_as_black_and_resumes_after_restart(
    tmp_path: Path, katago: KataGoPaths
) -> None:
    """A game created while no driver runs (the bot is black: its turn) gets its first move
    when a driver starts on the same store."""
    from goapp.game.service import GameService

    store = await open_store(f"sqlite://{tmp_path}/resume.db")
    try:
        uid = (await store.create_user("bob", None)).id
        st = await GameService(store).create_game(
            uid, None, user_color="white", size=9, rules="japanese", opponent_bot="katago:beginner"
        )
        async with bot_setup(tmp_path, katago_backend(katago), store=store) as (_, games, driver):
            await driver.resume()
            state = await _wait_for_human(games, st.game_id, "white")
            assert state.game.move_number == 1 and state.game.history[0].color.letter == "B"
    finally:
        await store.close()


@pytest.mark.gnugo
async def test_gnugo_fallback_bot_game(tmp_path: Path) -> None:
    gnugo = find_gnugo()
    assert gnugo is not None, "GNU Go is required (apt-get install gnugo)"
    engine = GnuGoBackend(gnugo)
    async with bot_setup(tmp_path, engine) as (store, games, _driver):
        uid = (await store.create_user("carol", None)).id
        st = await games.create_game(
            uid, None, user_color="black", size=9, rules="japanese", opponent_bot="gnugo:beginner"
        )
        gid = st.game_id
        rng = random.Random(3)
        for turn in range(150):
            state = await _wait_for_human(games, gid, "black")
            if state.phase != "playing":
                break
            await human_turn(games, gid, uid, rng, passing=turn >= 6)
        state = await games.state(gid)
        assert state.phase == "scoring"

        async def bot_accepted() -> bool:
            return "white" in (await games.state(gid)).accepted

        await until(bot_accepted, 60, "GNU Go's acceptance")
        await games.act(gid, uid, {"type": "accept_score"})
        state = await games.state(gid)
        assert state.phase == "finished" and state.result
        assert engine.queries_total >= 4
        g = state.game
        assert any(t.color.letter == "W" and g.vertex(t.loc) != "pass" for t in g.history)


async def test_scoring_proposal_from_ownership(
    aiohttp_client: Client, tmp_path: Path, katago: KataGoPaths
) -> None:
    """A game between people: once it is scored, GET /estimate proposes the dead stones."""
    async for api in make_api(aiohttp_client, tmp_path, f"sqlite://{tmp_path}/est.db"):
        await api.register("alice")
        await api.register("bob")
        gid = await api.new_game("alice", "bob", time_control=None, rules="chinese")
        s, err = await api.call("GET", f"/api/games/{gid}/estimate", user="alice")
        assert s == 409 and err["error"]["code"] == "wrong_phase"
        # black wall on column E, white wall on column F, then a white stone inside
        # black's area (B2): dead
        for row in range(1, 10):
            assert (await api.act("alice", gid, {"type": "move", "vertex": f"E{row}"}))[0] == 200
            assert (await api.act("bob", gid, {"type": "move", "vertex": f"F{row}"}))[0] == 200
        assert (await api.act("alice", gid, {"type": "pass"}))[0] == 200
        assert (await api.act("bob", gid, {"type": "move", "vertex": "B2"}))[0] == 200
        assert (await api.act("alice", gid, {"type": "move", "vertex": "C3"}))[0] == 200
        assert (await api.act("bob", gid, {"type": "pass"}))[0] == 200
        assert (await api.act("alice", gid, {"type": "pass"}))[0] == 200
        s, err = await api.call("GET", f"/api/games/{gid}/estimate", user="alice")
        assert s == 503 and err["error"]["code"] == "engine_unavailable"
        await use_engine(api.ctx, katago_backend(katago))
        s, est = await api.call("GET", f"/api/games/{gid}/estimate", user="alice")
        assert s == 200, est
        assert est["dead"] == ["B2"] and est["engine"] == "katago"
        assert len(est["ownership"]) == 81 and est["ownership"][0] > 0.5  # A9: Black's
        assert isinstance(est["score_lead"], float) and 0.0 <= est["winrate"] <= 1.0
        before = api.ctx.engine.stats()["queries_total"] if api.ctx.engine else 0
        s, again = await api.call("GET", f"/api/games/{gid}/estimate", user="bob")
        assert again == est
        assert api.ctx.engine and api.ctx.engine.stats()["queries_total"] == before  # cached
        # the players use the proposal
        assert (await api.act("alice", gid, {"type": "mark_dead", "vertex": "B2"}))[0] == 200
        assert (await api.act("alice", gid, {"type": "accept_score"}))[0] == 200
        s, out = await api.act("bob", gid, {"type": "accept_score"})
        assert s == 200 and out["events"][-1]["result"].startswith("B+")


async def test_readyz_engine_states(
    aiohttp_client: Client, tmp_path: Path, katago: KataGoPaths
) -> None:
    async for api in make_api(aiohttp_client, tmp_path, f"sqlite://{tmp_path}/ready.db"):
        s, body = await api.call("GET", "/readyz")
        assert s == 200 and body["engine"] == "absent"
        s, bots = await api.call("GET", "/api/bots")
        assert s == 200 and bots["engine"] == "none" and bots["state"] == "absent"
        assert [lv["name"] for lv in bots["levels"]] == ["beginner", "easy", "medium", "strong"]

        # a remote engine nobody answers for: degraded, the server stays ready
        remote = RemoteEngine(f"http://127.0.0.1:{free_port()}", "secret", poll_interval=0.2)
        await use_engine(api.ctx, KataGoBackend(remote, "remote"))

        async def state_is(want: str, api: Any = api) -> bool:
            s, body = await api.call("GET", "/readyz")
            assert s == 200
            return bool(body["engine"] == want)

        await until(lambda: state_is("degraded"), 30, "degraded")
        await remote.close()

        # KataGo: starting (in the background), then up
        backend = katago_backend(katago)
        await use_engine(api.ctx, backend)
        s, body = await api.call("GET", "/readyz")
        assert s == 200 and body["engine"] in ("starting", "up")
        await until(lambda: state_is("up"), 300, "up")
        s, bots = await api.call("GET", "/api/bots")
        assert bots["engine"] == "katago" and bots["state"] == "up"
        text = await scrape_metrics(api.ctx)
        assert "goapp_engine_queue_depth" in text and "goapp_engine_restarts_total" in text


async def test_undo_against_a_bot_takes_back_two_turns(tmp_path: Path) -> None:
    """The game layer alone (no engine): after the bot's reply, the human may still ask to
    take back their move; accepting takes back the reply too. Between people it may not."""
    from goapp.game.errors import CannotUndo
    from goapp.game.service import GameService

    store = await open_store(f"sqlite://{tmp_path}/undo.db")
    try:
        games = GameService(store)
        a = (await store.create_user("a", None)).id
        b = (await store.create_user("b", None)).id
        st = await games.create_game(a, None, user_color="black", size=9, opponent_bot="x:easy")
        gid = st.game_id
        await games.act(gid, a, {"type": "move", "vertex": "E5"})
        await games.act_as_bot(gid, "white", {"type": "move", "vertex": "C3"}, request_id="w1")
        events = await games.act(gid, a, {"type": "undo_request"})
        assert events[0].event.move_number == 2  # type: ignore[union-attr]
        events = await games.act_as_bot(gid, "white", {"type": "undo_accept"}, request_id="w2")
        undo = events[0].event
        assert isinstance(undo, UndoAccepted) and undo.undone == ["C3", "E5"]
        state = await games.state(gid)
        assert state.game.move_number == 0 and state.to_move == "black"
        # the bot's own move right after the human's is not the human's to take back twice
        await games.act(gid, a, {"type": "move", "vertex": "D4"})
        await games.act(gid, a, {"type": "undo_request"})  # before the bot answered: one turn
        events = await games.act_as_bot(gid, "white", {"type": "undo_accept"}, request_id="w3")
        assert events[0].event.undone == ["D4"]  # type: ignore[union-attr]

        human = await games.create_game(a, b, user_color="black", size=9)
        await games.act(human.game_id, a, {"type": "move", "vertex": "E5"})
        await games.act(human.game_id, b, {"type": "move", "vertex": "C3"})
        with pytest.raises(CannotUndo):
            await games.act(human.game_id, a, {"type": "undo_request"})
    finally:
        await store.close()


async def test_driver_retries_until_the_engine_is_up(tmp_path: Path, katago: KataGoPaths) -> None:
    """The engine is not started when the bot is to move: the driver backs off and retries,
    and plays once the engine is up."""
    from goapp.engine.bots import BotDriver
    from goapp.game.service import GameService

    store = await open_store(f"sqlite://{tmp_path}/retry.db")
    engine = katago_backend(katago)
    games = GameService(store)
    driver = BotDriver(games, engine, backoff_initial=0.05, backoff_max=0.2)
    driver.attach()
    try:
        uid = (await store.create_user("erin", None)).id
        st = await games.create_game(
            uid, None, user_color="white", size=9, opponent_bot="katago:beginner"
        )
        await until(lambda: driver.retries >= 2, 30, "retries")
        assert (await games.state(st.game_id)).game.move_number == 0
        await engine.start()
        await _wait_for_human(games, st.game_id, "white")
        assert (await games.state(st.game_id)).game.move_number == 1
    finally:
        await driver.close()
        await engine.close()
        await store.close()


async def test_an_untuned_engine_reports_tuning_in_readyz_and_the_api(
    aiohttp_client: Client, tmp_path: Path, katago: KataGoPaths
) -> None:
    """A server whose KataGo has never been tuned (its home, DATA_DIR/katago, is empty) says
    `tuning`, not `starting` or `degraded`, while KataGo tunes; the tuning goes under
    DATA_DIR/katago/home. The test stops the engine before the tune ends (minutes)."""
    assert katago.home is not None
    overrides = {"katago_binary": str(katago.home / "katago"), "katago_model": str(katago.model)}
    url = f"sqlite://{tmp_path}/tuning.db"
    async for api in make_api(
        aiohttp_client, tmp_path, url, engine="katago", settings_overrides=overrides
    ):
        seen: list[str] = []
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            resp = await api.client.get("/readyz")
            assert resp.status == 200  # the engine never makes the server unready
            seen.append((await resp.json())["engine"])
            if seen[-1] == "tuning":
                break
            await asyncio.sleep(0.5)
        assert seen[-1] == "tuning" and set(seen) <= {"starting", "tuning"}, seen
        s, bots = await api.call("GET", "/api/bots")
        assert s == 200 and bots["state"] == "tuning" and bots["engine"] == "katago"
        # KataGo writes its tuning under DATA_DIR/katago/home, not under ~/.katago
        assert (tmp_path / "data" / "katago" / "home" / "opencltuning").is_dir()
