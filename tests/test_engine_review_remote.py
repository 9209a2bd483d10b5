"""AI review of finished games (stored once, served from the store) and the remote engine
(``goapp engine serve`` in another process), with the real KataGo and the small model."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from api_support import fast_scrypt, make_api
from engine_support import best_move, bot_setup, katago_backend, random_move, until

from goapp.engine.errors import EngineUnavailableError
from goapp.engine.facade import KataGoBackend
from goapp.engine.katago import AnalysisQuery
from goapp.engine.remote import RemoteEngine
from goapp.engine.review import ReviewService
from goapp.engine.setup import KataGoPaths
from goapp.game.errors import GameError
from goapp.server.wiring import use_engine

pytestmark = pytest.mark.timeout(1800)  # the session fixture may tune OpenCL first

Client = Callable[..., Awaitable[TestClient]]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    fast_scrypt(monkeypatch)


async def test_review_is_stored_and_served_twice(
    aiohttp_client: Client, tmp_path: Path, katago: KataGoPaths
) -> None:
    async for api in make_api(aiohttp_client, tmp_path, f"sqlite://{tmp_path}/review.db"):
        await api.register("alice")
        await api.register("bob")
        s, err = await api.call("POST", "/api/games/1/review", user="alice")
        assert s == 404
        gid = await api.new_game("alice", "bob", time_control=None, rules="chinese")

        # a 50-move game between people
        games = api.ctx.games
        rng = random.Random(5)
        for _ in range(50):
            state = await games.state(gid)
            who = "alice" if state.to_move == "black" else "bob"
            for _attempt in range(10):
                vertex = random_move(state, rng)
                s, out = await api.act(who, gid, {"type": "move", "vertex": vertex})
                if s == 200:
                    break
                assert out["error"]["code"] == "illegal_move"
            assert s == 200, out
        s, err = await api.call("POST", f"/api/games/{gid}/review", user="alice")
        assert s == 409 and err["error"]["code"] == "wrong_phase"  # not finished
        assert (await api.act("bob", gid, {"type": "resign"}))[0] == 200
        s, err = await api.call("POST", f"/api/games/{gid}/review", user="alice")
        assert s == 503 and err["error"]["code"] == "engine_unavailable"  # no engine yet
        await use_engine(api.ctx, katago_backend(katago))

        assert api.ctx.reviews is not None and api.ctx.engine is not None
        api.ctx.reviews.visits = 4  # tiny: 51 positions on 2 CPU cores
        s, body = await api.call("POST", f"/api/games/{gid}/review", user="alice")
        assert s == 202 and body["status"] in ("queued", "running") and body["turns"] == []
        s, again = await api.call("POST", f"/api/games/{gid}/review", user="bob")
        assert s == 202 and again["status"] in ("queued", "running")  # one job per game
        assert api.ctx.reviews.jobs_started == 1
        await api.ctx.reviews.wait(gid)
        s, review = await api.call("GET", f"/api/games/{gid}/review")
        assert s == 200 and review["status"] == "done", review
        turns = review["turns"]
        assert [t["turn"] for t in turns] == list(range(51))
        for t in turns:
            assert 0.0 <= t["winrate"] <= 1.0 and isinstance(t["score_lead"], float)
            assert t["best"] and t["best"][0]["pv"] and t["best"][0]["move"]
        assert turns[0]["move"] is not None and turns[0]["color"] == "B"
        assert turns[50]["move"] is None and len(turns[50]["ownership"]) == 81
        assert "ownership" not in turns[10]

        # reopening costs no engine time: the store answers
        queries = api.ctx.engine.stats()["queries_total"]
        s, body = await api.call("POST", f"/api/games/{gid}/review", user="bob")
        assert s == 200 and body["status"] == "done" and body["turns"] == turns
        s, body = await api.call("GET", f"/api/games/{gid}/review")
        assert body["turns"] == turns
        fresh = ReviewService(api.ctx.store, games, api.ctx.engine)  # another process
        assert await fresh.request(gid) == "done"
        assert (await fresh.status(gid))["turns"] == turns
        assert api.ctx.engine.stats()["queries_total"] == queries
        assert api.ctx.reviews.jobs_started == 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_remote_engine_in_another_process(tmp_path: Path, katago: KataGoPaths) -> None:
    port = free_port()
    secret = "remote-engine-test-secret"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOAPP_")}
    env["GOAPP_ENGINE_SECRET"] = secret
    assert katago.home is not None
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "goapp", "engine", "serve"),
            *("--listen", f"127.0.0.1:{port}", "--katago-dir", str(katago.home)),
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    remote = RemoteEngine(url, secret, poll_interval=0.2)
    try:
        await remote.start(wait=False)
        await until(lambda: remote.state == "up", 300, "the remote engine")
        move = await best_move(remote, [["B", "E5"]], 9, "chinese", 7.0, 4)
        assert move != "pass" and move.upper() != "E5"
        results = await remote.analyze_turns(
            AnalysisQuery(
                moves=[["B", "E5"], ["W", "C3"]],
                rules="chinese",
                komi=7.0,
                board_x_size=9,
                board_y_size=9,
                max_visits=4,
                analyze_turns=[0, 1, 2],
                include_ownership=True,
            )
        )
        assert sorted(results) == [0, 1, 2] and len(results[2].ownership or []) == 81

        # a bot game through the remote engine
        backend = KataGoBackend(remote, "remote")
        async with bot_setup(tmp_path, backend) as (store, games, _driver):
            uid = (await store.create_user("dave", None)).id
            st = await games.create_game(
                uid, None, user_color="white", size=9, opponent_bot="katago:easy"
            )

            async def bot_moved() -> bool:
                return (await games.state(st.game_id)).game.move_number == 1

            await until(bot_moved, 60, "the remote bot's move")

        # a wrong secret: 401, and the client reports the engine unusable
        async with (
            aiohttp.ClientSession() as http,
            http.get(url + "/v1/state", headers={"Authorization": "Bearer wrong"}) as resp,
        ):
            assert resp.status == 401
        async with http_post(url + "/v1/analyze", None) as resp:
            assert resp.status == 401
        bad = RemoteEngine(url, "wrong", poll_interval=60)
        try:
            with pytest.raises(EngineUnavailableError, match="401"):
                await bad.start(wait=True)
            assert bad.state == "degraded"
            with pytest.raises(EngineUnavailableError, match="401"):
                await best_move(bad, [], 9, "chinese", 7.0, 2)
        finally:
            await bad.close()
    finally:
        await remote.close()
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = await asyncio.to_thread(proc.communicate, timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        assert proc.returncode == 0, out.decode(errors="replace")[-2000:]
        assert b"goapp engine serving KataGo" in out


def http_post(url: str, auth: str | None) -> _Post:
    return _Post(url, auth)


class _Post:
    """``async with http_post(url, auth) as resp`` with its own session."""

    def __init__(self, url: str, auth: str | None) -> None:
        self.url = url
        self.auth = auth
        self.session: aiohttp.ClientSession | None = None
        self.resp: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> aiohttp.ClientResponse:
        self.session = aiohttp.ClientSession()
        headers = {} if self.auth is None else {"Authorization": f"Bearer {self.auth}"}
        self.resp = await self.session.post(self.url, json={"query": {}}, headers=headers)
        return self.resp

    async def __aexit__(self, *exc: object) -> None:
        if self.resp is not None:
            self.resp.release()
        if self.session is not None:
            await self.session.close()


async def test_review_refuses_without_katago(tmp_path: Path) -> None:
    from goapp.engine.facade import GnuGoBackend, find_gnugo
    from goapp.game.service import GameService
    from goapp.store import open_store

    store = await open_store(f"sqlite://{tmp_path}/r.db")
    try:
        games = GameService(store)
        a = (await store.create_user("a", None)).id
        b = (await store.create_user("b", None)).id
        st = await games.create_game(a, b, size=9)
        await games.act(st.game_id, a, {"type": "resign"})
        assert (await games.state(st.game_id)).is_over
        with pytest.raises(EngineUnavailableError):
            await ReviewService(store, games, None).request(st.game_id)
        with pytest.raises(EngineUnavailableError):
            await ReviewService(store, games, GnuGoBackend(find_gnugo() or "gnugo")).request(
                st.game_id
            )
        with pytest.raises(GameError):
            await ReviewService(store, games, None).request(st.game_id + 1)
    finally:
        await store.close()
