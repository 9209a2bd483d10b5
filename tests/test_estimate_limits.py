"""Score estimates cannot starve the bots nor be had by anyone (issue 15: six anonymous
estimates on 19x19 with GNU Go took 60 s each, ended 503, and stalled every bot game).

Real GNU Go on a hard 19x19 position (an estimate there is minutes of work), real KataGo on
the test model, a real server (aiohttp on loopback) with the real rate limits. What is
asserted is order and refusal, never a wall-clock speed:

* a bot move submitted after a flood of estimates is answered before any of them;
* past the bound, an estimate is refused at once (EngineBusyError; HTTP 503 ``engine_busy``
  with Retry-After) instead of queueing;
* a live game's estimate is for its players only; a finished game's for anyone, computed
  once however many ask; each user (each IP without a login) has a rate limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from api_support import Api, fast_scrypt, make_api
from engine_support import BUSY_19X19, busy_position, until

from goapp.engine.errors import EngineBusyError, EngineError
from goapp.engine.facade import GnuGoBackend, Position, find_gnugo
from goapp.engine.katago import PRIORITY_BOT, PRIORITY_REVIEW, AnalysisQuery, KataGoEngine
from goapp.engine.setup import KataGoPaths
from goapp.server.ratelimit import DEFAULT_LIMITS, RateLimiter
from goapp.server.wiring import stop_engine

# The bot is GNU Go; the session's KataGo fixture may tune OpenCL first.
pytestmark = [pytest.mark.timeout(900), pytest.mark.gnugo]

Client = Callable[..., Awaitable[TestClient]]


@pytest.fixture(autouse=True)
def _cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    fast_scrypt(monkeypatch)


def gnugo_path() -> str:
    gnugo = find_gnugo()
    assert gnugo is not None, "GNU Go is required (apt-get install gnugo)"
    return gnugo


async def test_gnugo_bot_moves_go_ahead_of_a_flood_of_estimates() -> None:
    engine = GnuGoBackend(gnugo_path(), max_queue=2)
    await engine.start()
    busy = busy_position()
    try:
        # one estimate thinking, two waiting: the queue is full
        estimates = [asyncio.create_task(engine.estimate(busy)) for _ in range(3)]
        await until(lambda: engine.stats()["queue_depth"] == 2, 30, "two estimates waiting")
        with pytest.raises(EngineBusyError, match="busy"):
            await engine.estimate(busy)
        assert engine.stats()["rejected"] == 1

        # a bot's move, and a bot's own dead-stone proposal (bot priority), come afterwards
        move = asyncio.create_task(engine.genmove(busy, gnugo_level=1))
        small = Position(width=9, height=9, rules="japanese", komi=6.5, moves=[["B", "E5"]])
        proposal = asyncio.create_task(engine.estimate(small, priority=PRIORITY_BOT))
        done, _ = await _first_two(move, proposal, estimates)
        assert done == {move, proposal}, "an estimate finished before the bot's queries"
        assert move.result() not in ("pass", "") and move.result() not in BUSY_19X19
        assert proposal.result().dead == []
    finally:
        await engine.close()
    results = await asyncio.gather(*estimates, return_exceptions=True)
    assert all(isinstance(r, EngineError) for r in results), results  # closed, not hung


async def _first_two(
    move: asyncio.Task[Any], proposal: asyncio.Task[Any], estimates: list[asyncio.Task[Any]]
) -> tuple[set[asyncio.Task[Any]], set[asyncio.Task[Any]]]:
    """Wait (at most 120 s) until two of the tasks are done; the done ones and the rest."""
    pending: set[asyncio.Task[Any]] = {move, proposal, *estimates}
    done: set[asyncio.Task[Any]] = set()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120
    while len(done) < 2:
        left = deadline - loop.time()
        assert left > 0, "neither the bot's move nor its proposal came back in 120 s"
        finished, pending = await asyncio.wait(
            pending, timeout=left, return_when=asyncio.FIRST_COMPLETED
        )
        done |= finished
    return done, pending


async def test_katago_full_queue_makes_room_for_a_bot_move(katago: KataGoPaths) -> None:
    engine = KataGoEngine.from_paths(katago, max_in_flight=1, max_queue=2, query_timeout=None)
    await engine.start(wait=False)
    await engine.wait_up(600)

    def review(visits: int) -> AnalysisQuery:
        return AnalysisQuery(
            moves=[["B", "D4"]],
            board_x_size=9,
            board_y_size=9,
            max_visits=visits,
            priority=PRIORITY_REVIEW,
        )

    try:
        running = asyncio.create_task(engine.analyze_turns(review(1_000_000)))
        await until(lambda: engine.stats()["queries_total"] == 1 and engine.queue_depth == 0)
        queued = [asyncio.create_task(engine.analyze_turns(review(8))) for _ in range(2)]
        await until(lambda: engine.queue_depth == 2, 10, "two reviews queued")
        bot = asyncio.create_task(
            engine.analyze_turns(
                AnalysisQuery(
                    moves=[["B", "D4"]],
                    board_x_size=9,
                    board_y_size=9,
                    max_visits=8,
                    priority=PRIORITY_BOT,
                )
            )
        )
        # the newest review makes room for it, refused as busy at once
        with pytest.raises(EngineBusyError):
            await asyncio.wait_for(queued[1], 10)
        assert engine.queue_depth == 2 and not queued[0].done()
        running.cancel()  # frees KataGo's one slot: the bot move is next, before the review
        done, _ = await asyncio.wait({bot, queued[0]}, timeout=60, return_when="FIRST_COMPLETED")
        assert done == {bot}
        assert next(iter(bot.result().values())).best_move
        await asyncio.wait_for(queued[0], 60)
    finally:
        await engine.close()


async def _play_busy_game(api: Api, black: str, white: str) -> int:
    """A 19x19 game between people at :data:`BUSY_19X19`, both passed: being scored."""
    gid = await api.new_game(black, white, size=19, time_control=None)
    for i, vertex in enumerate(BUSY_19X19):
        status, body = await api.act(
            black if i % 2 == 0 else white, gid, {"type": "move", "vertex": vertex}
        )
        assert status == 200, body
    for user in (black, white):
        assert (await api.act(user, gid, {"type": "pass"}))[0] == 200
    return gid


async def _finished_game(api: Api, black: str, white: str, vertex: str) -> int:
    gid = await api.new_game(black, white, size=9, time_control=None)
    assert (await api.act(black, gid, {"type": "move", "vertex": vertex}))[0] == 200
    assert (await api.act(white, gid, {"type": "resign"}))[0] == 200
    return gid


async def test_estimate_api_is_for_players_bounded_limited_and_behind_bots(
    aiohttp_client: Client, tmp_path: Path
) -> None:
    limiter = RateLimiter({k: DEFAULT_LIMITS[k] for k in ("estimate:user", "estimate:ip")})
    async for api in make_api(
        aiohttp_client,
        tmp_path,
        f"sqlite://{tmp_path}/estimate.db",
        limiter=limiter,
        engine="gnugo",
        settings_overrides={"estimate_queue": 1},
    ):
        await _estimate_checks(api)


async def _estimate_checks(api: Api) -> None:
    for name in ("alice", "bob", "carol", "dave"):
        await api.register(name)
    assert api.ctx.engine is not None and api.ctx.engine.kind == "gnugo"
    live = await _play_busy_game(api, "alice", "bob")
    url = f"/api/games/{live}/estimate"

    # a live game: players only
    status, err = await api.call("GET", url)
    assert status == 401, err
    status, err = await api.call("GET", url, user="carol")
    assert status == 403 and err["error"]["code"] == "not_a_player", err

    # a finished game: anyone, computed once however many ask at once
    done = await _finished_game(api, "carol", "dave", "E5")
    before = api.ctx.engine.stats()["queries_total"]
    answers = await asyncio.gather(
        *(api.call("GET", f"/api/games/{done}/estimate") for _ in range(3)),
        api.call("GET", f"/api/games/{done}/estimate", user="carol"),
    )
    assert [s for s, _ in answers] == [200] * 4, answers
    assert all(body == answers[0][1] for _, body in answers)
    assert api.ctx.engine.stats()["queries_total"] == before + 1

    # per user: 5 at once (cached answers count too), then 429 with Retry-After
    done_url = f"/api/games/{done}/estimate"
    for _ in range(5):
        assert (await api.call("GET", done_url, user="dave"))[0] == 200
    async with api.client.get(
        done_url, headers={"Authorization": f"Bearer {api.tokens['dave']['access_token']}"}
    ) as resp:
        assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
        assert (await resp.json())["error"]["code"] == "rate_limited"

    # the bound: one estimate thinking (minutes on this position), one waiting, the
    # next refused at once with 503 engine_busy and Retry-After
    thinking = asyncio.create_task(api.call("GET", url, user="alice"))
    await until(lambda: api.ctx.estimator is not None and api.ctx.estimator.computed == 2)
    other = await _finished_game(api, "carol", "dave", "C3")
    waiting = asyncio.create_task(api.call("GET", f"/api/games/{other}/estimate"))
    third = await _finished_game(api, "carol", "dave", "G7")
    estimator = api.ctx.estimator
    assert estimator is not None
    await until(lambda: estimator.waiting == 1, 60, "the second estimate waiting for a slot")
    async with api.client.get(f"/api/games/{third}/estimate") as resp:
        body = await resp.json()
        assert resp.status == 503 and body["error"]["code"] == "engine_busy", body
        assert int(resp.headers["Retry-After"]) >= 1

    # meanwhile a bot game goes on: GNU Go answers the bot's first move
    bot_game = await api.ctx.games.create_game(
        int(api.tokens["bob"]["user"]["id"]),
        None,
        user_color="white",
        size=19,
        opponent_bot="gnugo:beginner",
    )

    async def bot_moved() -> bool:
        return (await api.ctx.games.state(bot_game.game_id)).game.move_number >= 1

    await until(bot_moved, 120, "the bot's move while estimates wait")
    assert not thinking.done() and not waiting.done()

    # the engine stops (as in a shutdown): the requests waiting for it end with 503
    await stop_engine(api.ctx)
    for task in (thinking, waiting):
        status, body = await asyncio.wait_for(task, 10)
        assert status == 503, body
