"""Automatch (goapp.match, /api/automatch): the pairing policy, the store's exactly-once
claim on SQLite and real PostgreSQL, the HTTP API, the WebSocket frame, and the proof that
200 simultaneous requests pair everyone exactly once, on one instance and across two."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestClient
from ws_helpers import recv, token_for

from goapp.game.service import GameService
from goapp.match import policy
from goapp.match.service import AutomatchService
from goapp.server.api.common import RATE_LIMITER
from goapp.server.app import create_app
from goapp.server.context import ServerContext
from goapp.server.ratelimit import RateLimiter
from goapp.server.wiring import close_services, open_services
from goapp.settings import load_settings
from goapp.store import Store, open_store
from goapp.store.records import AutomatchRequest

pytestmark = pytest.mark.timeout(120)

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
Client = TestClient[Any, Any]


def req(
    rid: int,
    user: int,
    rating: float = 1500.0,
    *,
    sizes: tuple[int, ...] = (19,),
    speed: str = "live",
    rated: bool = True,
    at: datetime = T0,
) -> AutomatchRequest:
    return AutomatchRequest(
        id=rid,
        user_id=user,
        speed=speed,
        sizes=sizes,
        rated=rated,
        rating=rating,
        status="waiting",
        created_at=at,
    )


# -- the policy (pure) ----------------------------------------------------------------------


def test_range_widens_with_waiting_time_and_is_capped() -> None:
    assert policy.rating_range(0) == 100
    assert policy.rating_range(9.9) == 100
    assert policy.rating_range(10) == 150
    assert policy.rating_range(30) == 250
    assert policy.rating_range(10_000) == policy.RANGE_MAX == 500
    r = req(1, 1, 1500)
    assert policy.rating_window(r, T0) == (1400, 1600)
    assert policy.rating_window(r, T0 + timedelta(seconds=20)) == (1300, 1700)


def test_compatible_needs_both_ranges() -> None:
    a = req(1, 1, 1500, at=T0)
    b = req(2, 2, 1700, at=T0 + timedelta(seconds=30))  # 200 points apart
    assert not policy.compatible(a, b, T0 + timedelta(seconds=30))  # b's range is 100
    # a waited 60 s (range 400), b 20 s (range 200): both accept 200
    assert policy.compatible(a, b, T0 + timedelta(seconds=50))
    assert policy.compatible(b, a, T0 + timedelta(seconds=50))


def test_size_intersection_picks_the_largest_shared_board() -> None:
    assert policy.common_size([9, 13], [13, 19]) == 13
    assert policy.common_size([9, 13, 19], [9, 19]) == 19
    assert policy.common_size([9], [19]) is None
    a = req(1, 1, sizes=(9,))
    assert not policy.compatible(a, req(2, 2, sizes=(13, 19)), T0)
    assert policy.compatible(a, req(3, 3, sizes=(9, 19)), T0)


def test_speed_rated_self_and_already_playing() -> None:
    a = req(1, 1)
    assert not policy.compatible(a, req(2, 2, speed="blitz"), T0)
    assert not policy.compatible(a, req(3, 3, rated=False), T0)
    assert not policy.compatible(a, req(4, 1), T0)  # the same player
    b = req(5, 2)
    assert policy.compatible(a, b, T0)
    busy = {frozenset((1, 2))}
    playing = lambda x, y: frozenset((x, y)) in busy  # noqa: E731
    assert not policy.compatible(a, b, T0, playing)
    assert policy.rank_candidates(a, [b, req(6, 3, 1550)], T0, playing=playing)[0].id == 6


def test_ranking_and_greedy_pairs() -> None:
    a = req(1, 1, 1500, at=T0)
    near = req(2, 2, 1520, at=T0 + timedelta(seconds=5))
    far = req(3, 3, 1590, at=T0 + timedelta(seconds=1))
    assert [c.id for c in policy.rank_candidates(a, [far, near, a], T0)] == [2, 3]
    pairs = policy.greedy_pairs([far, near, a, req(4, 4, 1900)], T0 + timedelta(seconds=5))
    assert [(x.id, y.id) for x, y in pairs] == [(1, 2)]  # the oldest takes the closest
    # an odd one out stays; everyone else is paired once
    many = [req(i, i, 1500 + i) for i in range(1, 12)]
    pairs = policy.greedy_pairs(many, T0)
    ids = [r.id for p in pairs for r in p]
    assert len(pairs) == 5 and len(set(ids)) == 10


def test_greedy_pairs_random_pools() -> None:
    """Random pools: every pair is compatible, nobody is in two pairs, and no two requests
    left over could have been paired with each other (the pass is maximal)."""
    rng = random.Random(7)
    for _ in range(30):
        pool = [
            req(
                i,
                rng.randint(1, 40),
                rng.gauss(1500, 300),
                sizes=tuple(sorted(rng.sample(policy.SIZES, rng.randint(1, 3)))),
                speed=rng.choice(policy.SPEEDS),
                at=T0 + timedelta(seconds=rng.uniform(0, 120)),
            )
            for i in range(1, rng.randint(2, 60))
        ]
        now = T0 + timedelta(seconds=130)
        pairs = policy.greedy_pairs(pool, now)
        ids = [r.id for p in pairs for r in p]
        assert len(ids) == len(set(ids))
        assert all(policy.compatible(a, b, now) for a, b in pairs)
        left = [r for r in pool if r.id not in set(ids)]
        assert not any(policy.compatible(a, b, now) for a in left for b in left)


def test_time_controls_decode() -> None:
    from goapp.rules.clock import decode_time_control

    for speed in policy.SPEEDS:
        decode_time_control(policy.time_control(speed))
    assert policy.time_control("blitz") == {"system": "fischer", "main_s": 180, "increment_s": 5}
    assert policy.time_control("correspondence")["system"] == "correspondence"


# -- the store and the service (SQLite and PostgreSQL) ----------------------------------------


async def users(store: Store, n: int, prefix: str = "p", rating: float = 1500.0) -> list[int]:
    return [(await store.create_user(f"{prefix}{i}", None, rating=rating)).id for i in range(n)]


async def test_one_waiting_request_per_user_and_cancel(store: Store) -> None:
    (u,) = await users(store, 1)
    first, old = await store.create_automatch_request(
        u, speed="live", sizes=[9, 19], rated=True, rating=1500.0
    )
    assert old is None and first.status == "waiting" and first.sizes == (9, 19)
    second, old = await store.create_automatch_request(
        u, speed="blitz", sizes=[13], rated=False, rating=1500.0
    )
    assert old is not None and old.id == first.id and old.status == "cancelled"
    assert (await store.waiting_automatch_request(u)) == second
    assert [r.id for r in await store.waiting_automatch_requests()] == [second.id]
    assert await store.waiting_automatch_requests("live") == []
    assert await store.cancel_automatch_request(u, request_id=first.id) is None
    gone = await store.cancel_automatch_request(u)
    assert gone is not None and gone.id == second.id and gone.status == "cancelled"
    assert await store.cancel_automatch_request(u) is None
    assert await store.waiting_automatch_request(u) is None
    with pytest.raises(ValueError):
        await store.create_automatch_request(u, speed="bullet", sizes=[9], rated=True, rating=1)
    with pytest.raises(ValueError):
        await store.create_automatch_request(u, speed="live", sizes=[7], rated=True, rating=1)


async def test_claim_skips_players_already_playing_each_other(store: Store) -> None:
    a, b, c = await users(store, 3)
    games = GameService(store)
    await games.create_game(a, b, user_color="black", size=9)
    svc = AutomatchService(store, games)
    assert (await svc.request(a, sizes=[9], speed="live")).status == "waiting"
    assert (await svc.request(b, sizes=[9], speed="live")).status == "waiting"
    # even when asked directly, the store refuses the pair
    ra = await store.waiting_automatch_request(a)
    rb = await store.waiting_automatch_request(b)
    assert ra is not None and rb is not None
    assert await store.claim_automatch_pair(ra.id, [rb.id]) is None
    assert await svc.sweep() == 0
    out = await svc.request(c, sizes=[9], speed="live")
    assert out.status == "paired" and out.game_id is not None
    game = await store.get_game(out.game_id)
    assert c in (game.black_id, game.white_id)
    assert {game.black_id, game.white_id} & {a, b}


async def test_paired_game_settings_and_both_requests(store: Store) -> None:
    a, b = await users(store, 2)
    sent: list[tuple[int, dict[str, Any]]] = []
    svc = AutomatchService(
        store, GameService(store), send=lambda u, o: sent.append((u, msgspec.to_builtins(o)))
    )
    first = await svc.request(a, sizes=[9, 13], speed="blitz", rated=False)
    assert first.status == "waiting"
    out = await svc.request(b, sizes=[13, 19], speed="blitz", rated=False)
    assert out.status == "paired" and out.game_id is not None
    game = await store.get_game(out.game_id)
    assert (game.width, game.height, game.handicap, game.komi) == (13, 13, 0, 6.5)
    assert game.rules == "japanese" and game.status == "playing"
    assert game.time_control == {**policy.time_control("blitz"), "max_s": None}
    assert not await store.is_game_rated(game.id)
    ra = await store.get_automatch_request(first.request.id)
    rb = await store.get_automatch_request(out.request.id)
    assert (ra.status, ra.partner_id, ra.opponent_id, ra.game_id) == ("paired", rb.id, b, game.id)
    assert (rb.status, rb.partner_id, rb.opponent_id, rb.game_id) == ("paired", ra.id, a, game.id)
    frames = {u: o for u, o in sent}
    assert set(frames) == {a, b}
    pa, pb = frames[a]["payload"], frames[b]["payload"]
    assert frames[a]["type"] == "automatch" and frames[a]["kind"] == "paired"
    assert pa["opponent"] == {"id": b, "name": "p1"} and pb["opponent"] == {"id": a, "name": "p0"}
    assert {pa["color"], pb["color"]} == {"black", "white"}
    assert (game.black_id if pa["color"] == "black" else game.white_id) == a
    assert pa["game_id"] == pb["game_id"] == game.id and pa["size"] == 13


async def test_range_widens_in_the_sweep(store: Store) -> None:
    (a,) = await users(store, 1, "low", 1500.0)
    (b,) = await users(store, 1, "high", 1750.0)
    svc = AutomatchService(store, GameService(store))
    assert (await svc.request(a, sizes=[19], speed="live", now=T0)).status == "waiting"
    later = T0 + timedelta(seconds=40)
    assert (await svc.request(b, sizes=[19], speed="live", now=later)).status == "waiting"
    assert await svc.sweep(later + timedelta(seconds=20)) == 0  # b's range: 200 < 250
    assert await svc.sweep(later + timedelta(seconds=30)) == 1  # 250: both accept
    assert await store.waiting_automatch_requests() == []


async def test_offline_players_lose_live_requests(store: Store) -> None:
    a, b = await users(store, 2)
    online = {a}
    sent: list[dict[str, Any]] = []
    svc = AutomatchService(
        store,
        GameService(store),
        send=lambda u, o: sent.append({"user": u, **msgspec.to_builtins(o)}),
        online=online.__contains__,
        offline_cancel_s=0.2,
    )
    await svc.request(a, sizes=[9], speed="blitz")
    await svc.request(b, sizes=[19], speed="blitz")
    (c,) = await users(store, 1, "corr")
    await svc.request(c, sizes=[9], speed="correspondence")
    await svc.sweep()  # b is seen offline: not yet cancelled
    assert await store.waiting_automatch_request(b) is not None
    await asyncio.sleep(0.3)
    await svc.sweep()
    assert await store.waiting_automatch_request(b) is None
    assert await store.waiting_automatch_request(a) is not None  # online
    assert await store.waiting_automatch_request(c) is not None  # correspondence
    assert sent[-1]["user"] == b and sent[-1]["kind"] == "cancelled"
    assert sent[-1]["payload"]["reason"] == "offline"


async def test_no_offline_cancel_while_presence_is_unknown(store: Store) -> None:
    """With Redis down another instance may hold the player's socket: nobody is cancelled
    then, and the offline clock starts again once presence is known."""
    (a,) = await users(store, 1)
    presence: dict[int, bool | None] = {a: None}
    svc = AutomatchService(
        store,
        GameService(store),
        send=lambda u, o: None,
        online=presence.__getitem__,
        offline_cancel_s=0.2,
    )
    await svc.request(a, sizes=[9], speed="blitz")
    await svc.sweep()
    await asyncio.sleep(0.3)
    await svc.sweep()
    assert await store.waiting_automatch_request(a) is not None  # unknown: kept
    presence[a] = False
    await svc.sweep()  # offline from now on: not yet cancelled
    assert await store.waiting_automatch_request(a) is not None
    await asyncio.sleep(0.3)
    await svc.sweep()
    assert await store.waiting_automatch_request(a) is None


async def drain(services: list[AutomatchService], store: Store, rounds: int = 20) -> None:
    """Sweep (concurrently, on every instance) until nothing more pairs (bounded)."""
    for _ in range(rounds):
        made = await asyncio.gather(*(s.sweep() for s in services))
        if not sum(made) and len(await store.waiting_automatch_requests()) < 2:
            return


async def check_everyone_paired_once(store: Store, user_ids: list[int]) -> set[int]:
    """Every user is in exactly one active game, every game has two of them, and the
    requests agree: each paired request's partner points back at it, with the same game."""
    game_of: dict[int, int] = {}
    for u in user_ids:
        active = await store.list_active_games(u)
        assert len(active) == 1, (u, [g.id for g in active])
        game_of[u] = active[0].id
    per_game = Counter(game_of.values())
    assert len(per_game) == len(user_ids) // 2
    assert set(per_game.values()) == {2}
    for u in user_ids:
        game = await store.get_game(game_of[u])
        assert game.black_id != game.white_id and u in (game.black_id, game.white_id)
    assert await store.waiting_automatch_requests() == []
    return set(per_game)


async def post_all(
    services: list[AutomatchService], user_ids: list[int], sizes_of: Callable[[int], list[int]]
) -> list[Any]:
    return await asyncio.gather(
        *(
            services[i % len(services)].request(u, sizes=sizes_of(i), speed="live")
            for i, u in enumerate(user_ids)
        )
    )


async def test_200_simultaneous_requests_pair_everyone_exactly_once(store: Store) -> None:
    uids = await users(store, 200)
    svc = AutomatchService(store, GameService(store), rng=random.Random(1))
    options = [[9, 19], [13, 19], [19], [9, 13, 19]]  # any two share 19
    outcomes = await post_all([svc], uids, lambda i: options[i % 4])
    await drain([svc], store)
    games = await check_everyone_paired_once(store, uids)
    assert len(games) == 100
    # each answered game id is one the store agrees on, at most twice (both players)
    paired = Counter(o.game_id for o in outcomes if o.status == "paired")
    assert paired and all(g in games and n <= 2 for g, n in paired.items())


async def test_200_requests_across_two_instances_on_postgresql(pg_schema_url: str) -> None:
    """Two stores (two connection pools: two instances) on one PostgreSQL schema."""
    one = await open_store(pg_schema_url)
    two = await open_store(pg_schema_url)
    try:
        uids = await users(one, 200)
        services = [
            AutomatchService(one, GameService(one), rng=random.Random(2)),
            AutomatchService(two, GameService(two), rng=random.Random(3)),
        ]
        outcomes = await post_all(services, uids, lambda i: [9, 13, 19])
        await drain(services, one)
        games = await check_everyone_paired_once(one, uids)
        assert len(games) == 100
        # each answered game id is one the store agrees on, at most twice (both players)
        paired = Counter(o.game_id for o in outcomes if o.status == "paired")
        assert all(g in games and n <= 2 for g, n in paired.items())
    finally:
        await one.close()
        await two.close()


# -- the HTTP API and the WebSocket frame ----------------------------------------------------


@pytest.fixture
async def ctx(tmp_path: Path, store_url: str) -> AsyncIterator[ServerContext]:
    settings = load_settings(
        env={},
        overrides={
            "data_dir": str(tmp_path / "data"),
            "database_url": store_url,
            "engine": "none",
            "automatch_interval_s": 0.2,
        },
    )
    c = await open_services(settings)
    try:
        yield c
    finally:
        await close_services(c)


@pytest.fixture
async def client(ctx: ServerContext, aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    app = create_app(ctx)
    app[RATE_LIMITER] = RateLimiter({})
    return await aiohttp_client(app)


async def automatch_frame(ws: Any, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    """The next ``automatch`` frame of ``kind``, skipping other frames."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, f"no automatch {kind} frame within {timeout}s"
        frame = await recv(ws, left)
        if frame["type"] == "automatch" and frame.get("kind") == kind:
            return frame


async def login(ctx: ServerContext, name: str, rating: float = 1500.0) -> tuple[int, str]:
    user = await ctx.store.create_user(name, None, rating=rating)
    return user.id, token_for(ctx, user.id, name)


async def call(client: Client, method: str, token: str | None, body: Any = None) -> tuple[int, Any]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    kwargs: dict[str, Any] = {"headers": headers}
    if body is not None:
        kwargs["json"] = body
    async with client.request(method, "/api/automatch", **kwargs) as resp:
        if resp.content_type == "application/json":
            return resp.status, await resp.json()
        return resp.status, await resp.read()


async def test_api_validation(client: Client, ctx: ServerContext) -> None:
    _, tok = await login(ctx, "val")
    bad = [
        ({"sizes": [], "speed": "live"}, "$.sizes"),
        ({"sizes": [9, 13, 19, 9], "speed": "live"}, "$.sizes"),
        ({"sizes": [11], "speed": "live"}, "$.sizes[0]"),
        ({"sizes": [9, 9], "speed": "live"}, "$.sizes"),
        ({"sizes": [9], "speed": "bullet"}, "$.speed"),
        ({"sizes": [9]}, "$"),
        ({"sizes": [9], "speed": "live", "rated": "yes"}, "$.rated"),
        ({"sizes": [9], "speed": "live", "color": "black"}, "$"),
    ]
    for body, path in bad:
        status, out = await call(client, "POST", tok, body)
        assert status == 400, (body, out)
        assert out["error"]["path"] == path, (body, out)
    status, out = await call(client, "POST", None, {"sizes": [9], "speed": "live"})
    assert status == 401
    assert (await call(client, "GET", None))[0] == 401
    assert (await call(client, "DELETE", None))[0] == 401
    assert await ctx.store.waiting_automatch_requests() == []


async def test_api_post_get_replace_cancel(client: Client, ctx: ServerContext) -> None:
    uid, tok = await login(ctx, "solo", 1600.0)
    status, out = await call(client, "GET", tok)
    assert status == 404 and out["error"]["code"] == "automatch_not_found"
    status, out = await call(client, "POST", tok, {"sizes": [19, 9], "speed": "live"})
    assert status == 202, out
    assert out["status"] == "waiting" and "game_id" not in out
    r = out["request"]
    assert r["sizes"] == [9, 19] and r["speed"] == "live" and r["rated"] is True
    assert r["range"] == [1500.0, 1700.0] and r["status"] == "waiting"
    status, got = await call(client, "GET", tok)
    assert status == 200 and got["id"] == r["id"]
    status, out = await call(
        client, "POST", tok, {"sizes": [13], "speed": "correspondence", "rated": False}
    )
    assert status == 202 and out["request"]["id"] != r["id"]
    status, got = await call(client, "GET", tok)
    assert got["id"] == out["request"]["id"] and got["speed"] == "correspondence"
    assert (await ctx.store.get_automatch_request(r["id"])).status == "cancelled"
    status, _ = await call(client, "DELETE", tok)
    assert status == 204
    assert (await call(client, "GET", tok))[0] == 404
    status, out = await call(client, "DELETE", tok)
    assert status == 404 and out["error"]["code"] == "automatch_not_found"
    assert uid


async def test_api_pairing_and_websocket_frames(client: Client, ctx: ServerContext) -> None:
    a, tok_a = await login(ctx, "alice", 1500.0)
    b, tok_b = await login(ctx, "bob", 1560.0)
    socks = {
        "a1": await client.ws_connect(f"/ws?token={tok_a}"),
        "a2": await client.ws_connect(f"/ws?token={tok_a}"),  # a second tab
        "b": await client.ws_connect(f"/ws?token={tok_b}"),
    }
    try:
        for ws in socks.values():
            assert (await recv(ws))["type"] == "welcome"
        status, first = await call(client, "POST", tok_a, {"sizes": [9, 19], "speed": "blitz"})
        assert status == 202
        status, out = await call(client, "POST", tok_b, {"sizes": [19], "speed": "blitz"})
        assert status == 200, out
        assert out["status"] == "paired" and isinstance(out["game_id"], int)
        game_id = out["game_id"]
        frames = {k: await automatch_frame(ws, "paired") for k, ws in socks.items()}
        pa, pb = frames["a1"]["payload"], frames["b"]["payload"]
        assert frames["a2"]["payload"] == pa
        assert pa["game_id"] == pb["game_id"] == game_id
        assert pa["request_id"] == first["request"]["id"]
        assert pb["request_id"] == out["request"]["id"]
        assert pa["opponent"] == {"id": b, "name": "bob"}
        assert pb["opponent"] == {"id": a, "name": "alice"}
        assert {pa["color"], pb["color"]} == {"black", "white"} and pa["size"] == 19
        game = await ctx.store.get_game(game_id)
        assert (game.black_id, game.white_id) == ((a, b) if pa["color"] == "black" else (b, a))
        assert (await call(client, "GET", tok_a))[0] == 404  # no longer waiting
        # cancel: every connection of the player hears it
        status, out = await call(client, "POST", tok_a, {"sizes": [9], "speed": "live"})
        assert status == 202
        assert (await call(client, "DELETE", tok_a))[0] == 204
        for k in ("a1", "a2"):
            f = await automatch_frame(socks[k], "cancelled")
            assert f["payload"] == {"request_id": out["request"]["id"], "reason": "cancelled"}
    finally:
        for ws in socks.values():
            await ws.close()


async def test_background_task_pairs_waiting_requests(client: Client, ctx: ServerContext) -> None:
    """Two requests too far apart at first are paired by the server's own periodic task
    once their ranges have widened (the requests are back-dated to stand for the wait)."""
    a, tok_a = await login(ctx, "early", 1500.0)
    b, tok_b = await login(ctx, "late", 1800.0)
    ws = await client.ws_connect(f"/ws?token={tok_b}")
    try:
        assert (await recv(ws))["type"] == "welcome"
        long_ago = datetime.now(UTC) - timedelta(minutes=5)
        assert ctx.automatch is not None
        await ctx.automatch.request(a, sizes=[9], speed="live", now=long_ago)
        await ctx.automatch.request(b, sizes=[9], speed="live", now=long_ago)
        frame = await automatch_frame(ws, "paired", 10.0)
        assert frame["payload"]["opponent"] == {"id": a, "name": "early"}
        assert (await call(client, "GET", tok_a))[0] == 404
    finally:
        await ws.close()


async def test_http_concurrent_requests_pair_everyone_once(
    client: Client, ctx: ServerContext
) -> None:
    logins = [await login(ctx, f"h{i}") for i in range(40)]
    results = await asyncio.gather(
        *(call(client, "POST", tok, {"sizes": [9, 13], "speed": "live"}) for _, tok in logins)
    )
    assert {s for s, _ in results} <= {200, 202}
    assert ctx.automatch is not None
    await drain([ctx.automatch], ctx.store)
    games = await check_everyone_paired_once(ctx.store, [uid for uid, _ in logins])
    assert len(games) == 20
    for status, out in results:
        if status == 200:
            assert out["game_id"] in games


async def test_openapi_documents_automatch(client: Client) -> None:
    async with client.get("/api/openapi.json") as resp:
        doc = await resp.json()
    ops = doc["paths"]["/api/automatch"]
    assert set(ops) == {"get", "post", "delete"}
    assert {"200", "202", "400", "401"} <= set(ops["post"]["responses"])
    assert "content" not in ops["delete"]["responses"]["204"]
    body = doc["components"]["schemas"]["AutomatchBody"]
    assert body["additionalProperties"] is False
    assert set(body["required"]) == {"sizes", "speed"}
