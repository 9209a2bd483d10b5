"""The Redis bus between instances (issue 8): two or three real ServerContexts with their
aiohttp servers in this process, on one PostgreSQL schema and one throwaway Redis.

* events committed on B reach A's sockets in order, exactly once (players and spectators);
* a lost message (a gap) is filled from the event log;
* lobby events, chat, presence, ``send_user`` cross instances; ``on_presence`` fires once
  per global transition;
* logout on A closes the user's sockets on B and B refuses the old access token (and so
  does an instance started later);
* Redis restart: both instances serve their own clients, ``/readyz`` says degraded (200),
  and after the restart A's client gets what B committed meanwhile, in order, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import ClientWebSocketResponse
from aiohttp.test_utils import TestServer
from api_support import make_api, scrape_metrics
from services import RedisServer, unavailable
from ws_helpers import closed_code, recv, recv_type, request, token_for

from goapp.bus.redis import RedisBus
from goapp.protocol import Notify
from goapp.server.api.common import RATE_LIMITER
from goapp.server.app import create_app
from goapp.server.context import ServerContext
from goapp.server.ratelimit import Limit, RateLimiter
from goapp.server.wiring import close_services, open_services
from goapp.settings import load_settings

BYOYOMI = {"system": "byoyomi", "main_s": 600, "periods": 3, "period_s": 30}
MOVES = [v for row in range(9, 0, -1) for v in (f"C{row}", f"G{row}")]


@dataclass
class Node:
    """One instance: its context, its HTTP server and a client session for it."""

    name: str
    ctx: ServerContext
    server: TestServer
    session: aiohttp.ClientSession
    sockets: list[ClientWebSocketResponse] = field(default_factory=list)

    @property
    def bus(self) -> RedisBus:
        assert isinstance(self.ctx.bus, RedisBus)
        return self.ctx.bus

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def ws(self, token: str | None = None) -> ClientWebSocketResponse:
        path = "/ws" if token is None else f"/ws?token={token}"
        sock = await self.session.ws_connect(self.url(path), protocols=("goapp.v1",))
        welcome = await recv(sock)
        assert welcome["type"] == "welcome", welcome
        self.sockets.append(sock)
        return sock

    async def call(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> tuple[int, Any]:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        async with self.session.request(method, self.url(path), json=body, headers=headers) as r:
            return r.status, await r.json()


@dataclass
class Cluster:
    redis: RedisServer
    pg_url: str
    root: Path
    secret: str
    nodes: list[Node] = field(default_factory=list)

    async def add(
        self, name: str, limiter: RateLimiter | None = None, *, audit_s: float = 3600
    ) -> Node:
        """A new instance. The once-a-second audit of the log is off (``audit_s``) unless a
        test is about it, so that the tests of the other mechanisms see them alone."""
        settings = load_settings(
            env={},
            overrides={
                "data_dir": str(self.root / name),
                "database_url": self.pg_url,
                "engine": "none",
                "redis_url": self.redis.url,
                "instance_id": name,
                "jwt_secret": self.secret,
            },
        )
        ctx = await open_services(settings)
        assert isinstance(ctx.bus, RedisBus)
        ctx.bus.presence_ttl_s = 1.5  # fast heartbeats and reaping in tests
        ctx.bus.audit_interval_s = audit_s
        app = create_app(ctx)
        if limiter is not None:
            limiter.shared = ctx.limiter.shared  # what open_services did with its own
        app[RATE_LIMITER] = limiter if limiter is not None else RateLimiter({})
        server = TestServer(app)
        await server.start_server()
        node = Node(name, ctx, server, aiohttp.ClientSession())
        self.nodes.append(node)
        await until(lambda: ctx.bus.status == "ok", 10, f"{name}'s bus up")
        return node

    async def stop(self, node: Node) -> None:
        for sock in node.sockets:
            await sock.close()
        await node.session.close()
        await node.server.close()
        await close_services(node.ctx)
        self.nodes.remove(node)


async def until(
    check: Callable[[], bool | Awaitable[bool]], timeout: float, what: str, step: float = 0.02
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if not isinstance(got, bool):
            got = await got
        if got:
            return
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(step)


@pytest.fixture
async def cluster(pg_schema_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    try:
        redis = RedisServer()
    except RuntimeError as exc:
        unavailable(str(exc))
        raise
    c = Cluster(redis, pg_schema_url, tmp_path, secrets.token_hex(32))
    try:
        yield c
    finally:
        for node in list(c.nodes):
            with contextlib.suppress(Exception):
                await c.stop(node)
        redis.stop()


async def users(node: Node, *names: str) -> list[tuple[int, str]]:
    out = []
    for name in names:
        user = await node.ctx.store.create_user(name, None)
        out.append((user.id, token_for(node.ctx, user.id, name)))
    return out


async def two_instances_one_game(
    cluster: Cluster, *, audit_s: float = 3600
) -> tuple[Node, Node, list[tuple[int, str]], int]:
    """Instances ``a`` (with that audit interval) and ``b``, users alice and bob (ids and
    tokens), and a game between them (alice Black)."""
    a = await cluster.add("a", audit_s=audit_s)
    b = await cluster.add("b")
    players = await users(a, "alice", "bob")
    return a, b, players, await new_game(a, players[0][0], players[1][0])


async def new_game(node: Node, black: int, white: int) -> int:
    state = await node.ctx.games.create_game(
        black, white, user_color="black", size=9, time_control=BYOYOMI
    )
    return state.game_id


async def subscribe(sock: ClientWebSocketResponse, game_id: int) -> int:
    """Subscribe for the full state; the seq it is at."""
    skipped: list[dict[str, Any]] = []
    ack = await request(sock, skipped, type="subscribe", id="s", game_id=game_id)
    assert ack["type"] == "ack", ack
    states = [f for f in skipped if f["type"] == "state"]
    assert states, skipped
    return int(states[0]["seq"])


async def events_until(
    sock: ClientWebSocketResponse, game_id: int, last_seq: int, timeout: float = 10.0
) -> list[int]:
    """The seqs of the event frames of ``game_id`` up to ``last_seq`` (fails on a timeout)."""
    seqs: list[int] = []
    deadline = time.monotonic() + timeout
    while not seqs or seqs[-1] < last_seq:
        left = deadline - time.monotonic()
        assert left > 0, f"events so far {seqs}, wanted up to {last_seq}"
        frame = await recv(sock, left)
        if frame["type"] == "event" and frame["game_id"] == game_id:
            seqs.append(int(frame["seq"]))
    return seqs


async def quiet(sock: ClientWebSocketResponse, seconds: float = 0.3) -> list[dict[str, Any]]:
    """Frames that arrive within ``seconds`` (to check that nothing more comes)."""
    frames = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while True:
                frames.append(await recv(sock, seconds))
    return frames


async def play(node: Node, game_id: int, user_id: int, vertex: str) -> int:
    events = await node.ctx.games.act(game_id, user_id, {"type": "move", "vertex": vertex})
    return events[-1].seq


# -- game events ---------------------------------------------------------------------------


async def test_moves_cross_instances_in_order_once(cluster: Cluster) -> None:
    a = await cluster.add("a")
    b = await cluster.add("b")
    (alice, ta), (bob, tb), (_, tc) = await users(a, "alice", "bob", "carol")
    game = await new_game(a, alice, bob)

    # a spectator on each instance, players on both: moves alternate between A and B
    watch_a = await a.ws(tc)
    watch_b = await b.ws()
    start = await subscribe(watch_a, game)
    assert await subscribe(watch_b, game) == start
    last = start
    for i, vertex in enumerate(MOVES[:10]):
        node, player = (a, alice) if i % 2 == 0 else (b, bob)
        last = await play(node, game, player, vertex)
    for sock in (watch_a, watch_b):
        seqs = await events_until(sock, game, last)
        assert seqs == list(range(start + 1, last + 1))
        assert not [f for f in await quiet(sock) if f["type"] == "event"]

    # moves over the WebSocket of the other instance
    sock_alice = await b.ws(ta)
    sock_bob = await a.ws(tb)
    s1 = await subscribe(sock_alice, game)
    await subscribe(sock_bob, game)
    ack = await request(
        sock_alice, type="action", id="m", game_id=game, action={"type": "move", "vertex": "C4"}
    )
    assert ack["type"] == "ack", ack
    seqs = await events_until(watch_a, game, ack["seq"])
    assert seqs == [ack["seq"]] == [s1 + 1]
    assert (await recv_type(sock_bob, "event", game_id=game))["seq"] == ack["seq"]
    assert a.bus.received > 0 and b.bus.published > 0
    text = await scrape_metrics(a.ctx)
    assert "goapp_bus_up 1.0" in text
    assert 'goapp_bus_messages_total{direction="received"}' in text


async def test_gap_is_filled_from_the_log(cluster: Cluster) -> None:
    a, b, [(alice, _), (bob, _)], game = await two_instances_one_game(cluster)
    watch = await a.ws()
    start = await subscribe(watch, game)
    fills = a.bus.gap_fills

    # B commits a move without publishing it (a message lost on the way)...
    b.ctx.games.on_events.remove(b.bus.on_events)
    lost = await play(b, game, alice, "C9")
    b.ctx.games.on_events.append(b.bus.on_events)
    assert not [f for f in await quiet(watch, 0.3) if f["type"] == "event"]
    # ... the next one reveals the gap: A reads the lost one from the log, in order
    last = await play(b, game, bob, "G9")
    assert await events_until(watch, game, last) == [lost, last] == [start + 1, start + 2]
    assert a.bus.gap_fills == fills + 1

    # a message published out of order and twice changes nothing
    import redis.asyncio as aioredis

    from goapp.bus.wire import game_channel, message
    from goapp.protocol import event_json

    r = aioredis.Redis.from_url(cluster.redis.url)
    try:
        events = await a.ctx.games.events_since(game, start)
        for e in reversed(events):
            await r.publish(game_channel(game), message({"k": "ev", "s": e.seq}, event_json(e)))
    finally:
        await r.aclose()
    assert not [f for f in await quiet(watch, 0.3) if f["type"] == "event"]


async def test_killed_redis_connections_recover(cluster: Cluster) -> None:
    import redis.asyncio as aioredis

    a, b, [(alice, _), (bob, _)], game = await two_instances_one_game(cluster)
    watch = await a.ws()
    start = await subscribe(watch, game)
    admin = aioredis.Redis.from_url(cluster.redis.url)
    try:
        # the subscribers' connections die: each instance resubscribes and reads the log
        assert await admin.client_kill_filter(_type="pubsub") >= 2
        s1 = await play(b, game, alice, MOVES[0])
        assert await events_until(watch, game, s1) == [start + 1]
        await until(lambda: a.bus.status == "ok" and b.bus.status == "ok", 10, "resubscribed")
        # the publishers' connections die: B's next publish fails, is kept, and goes out
        # once B has reconnected
        await admin.client_kill_filter(_type="normal", skipme=True)
        s2 = await play(b, game, bob, MOVES[1])
        assert await events_until(watch, game, s2) == [s2]
        await until(lambda: b.bus.status == "ok", 10, "B back")
        s3 = await play(b, game, alice, MOVES[2])
        assert await events_until(watch, game, s3) == [s3]
    finally:
        await admin.aclose()


async def test_a_lost_last_message_is_found_by_the_audit(cluster: Cluster) -> None:
    a, b, [(alice, _), (bob, _)], game = await two_instances_one_game(cluster, audit_s=0.2)
    watch = await a.ws()
    start = await subscribe(watch, game)
    # B commits and "dies" before publishing: no later event will reveal the gap
    b.ctx.games.on_events.remove(b.bus.on_events)
    lost = await play(b, game, alice, "C9")
    t0 = time.monotonic()
    assert await events_until(watch, game, lost, timeout=3) == [start + 1]
    assert time.monotonic() - t0 < 1.5
    del bob


async def test_lobby_chat_and_user_frames_cross_instances(cluster: Cluster) -> None:
    a = await cluster.add("a")
    b = await cluster.add("b")
    (alice, ta), (_, tb), (_, tc) = await users(a, "alice", "bob", "carol")
    lobby_b = await b.ws(tb)
    assert (await request(lobby_b, id="l", type="subscribe_lobby"))["type"] == "ack"
    lobby_a = await a.ws(ta)
    assert (await request(lobby_a, id="l", type="subscribe_lobby"))["type"] == "ack"
    carol_b = await b.ws(tc)
    assert (await request(carol_b, id="l", type="subscribe_lobby"))["type"] == "ack"

    # a direct challenge from A reaches its target on B, and nobody else there
    status, private = await a.call(
        "POST", "/api/challenges", {"size": 9, "rules": "japanese", "opponent": "bob"}, token=ta
    )
    assert status == 201, private
    frame = await recv_type(lobby_b, "lobby")
    assert frame["kind"] == "challenge_created" and frame["payload"]["id"] == private["id"]

    # a challenge created through A's HTTP API reaches B's lobby, once
    status, ch = await a.call(
        "POST",
        "/api/challenges",
        {"size": 9, "rules": "japanese", "color": "black", "time_control": BYOYOMI},
        token=ta,
    )
    assert status == 201, ch
    frame = await recv_type(lobby_b, "lobby")
    assert frame["kind"] == "challenge_created" and frame["payload"]["id"] == ch["id"]
    assert not [f for f in await quiet(lobby_b) if f["type"] == "lobby"]
    frame = await recv_type(carol_b, "lobby")  # the open challenge is the first carol saw
    assert frame["kind"] == "challenge_created" and frame["payload"]["id"] == ch["id"]

    # bob accepts on B: alice (on A) hears it
    status, body = await b.call("POST", f"/api/challenges/{ch['id']}/accept", token=tb)
    assert status == 200, body
    frame = await recv_type(lobby_a, "lobby")
    while frame["kind"] != "challenge_accepted":
        frame = await recv_type(lobby_a, "lobby")
    assert frame["payload"]["challenge_id"] == ch["id"]

    # lobby chat from A reaches B once; A's own client gets its line once too
    ack = await request(lobby_a, id="c", type="chat", room="lobby", text="hello from A")
    assert ack["type"] == "ack", ack
    line = await recv_type(lobby_b, "chat")
    assert line["text"] == "hello from A" and line["user"]["id"] == alice
    await recv_type(lobby_a, "chat")
    assert not [f for f in await quiet(lobby_a) if f["type"] == "chat"]
    assert not [f for f in await quiet(lobby_b) if f["type"] == "chat"]

    # game-room chat: a spectator of the game on B hears a player on A
    game = int(body["game_id"])
    await subscribe(lobby_b, game)
    await subscribe(lobby_a, game)
    ack = await request(lobby_a, id="g", type="chat", room=f"game:{game}", text="gg")
    assert ack["type"] == "ack", ack
    assert (await recv_type(lobby_b, "chat", room=f"game:{game}"))["text"] == "gg"

    # send_user on B reaches alice's socket on A
    notice = Notify(kind="your_move", game_id=game, opponent=None, deadline_ms=None)
    assert b.ctx.hub.send_user(alice, notice) == 0
    assert (await recv_type(lobby_a, "notify"))["game_id"] == game


async def test_presence_is_the_union_and_fires_once(cluster: Cluster) -> None:
    a = await cluster.add("a")
    b = await cluster.add("b")
    (alice, ta), (bob, tb), (_, tc) = await users(a, "alice", "bob", "carol")
    seen: list[tuple[str, int, bool]] = []
    for node in (a, b):

        def record(user: int, online: bool, name: str = node.name) -> None:
            seen.append((name, user, online))

        node.ctx.hub.on_presence.append(record)

    s1 = await a.ws(ta)
    s2 = await b.ws(ta)  # alice on both instances
    s3 = await b.ws(tb)
    await until(lambda: a.ctx.hub.is_online(bob) and b.ctx.hub.is_online(alice), 5, "union")
    watcher = await a.ws(tc)
    await request(watcher, id="l", type="subscribe_lobby")
    snapshot = await recv_type(watcher, "presence")
    assert {u["id"] for u in snapshot["online"]} >= {alice, bob}
    assert sorted(e[1:] for e in seen if e[1] in (alice, bob)) == [(alice, True), (bob, True)]

    # alice leaves A: still online (on B); then leaves B: offline everywhere, once
    await s1.close()
    await asyncio.sleep(0.3)
    assert b.ctx.hub.is_online(alice) and a.ctx.hub.is_online(alice)
    await s2.close()
    frame = await recv_type(watcher, "presence", timeout=5)
    while "left" not in frame:
        frame = await recv_type(watcher, "presence", timeout=5)
    assert frame["left"] == [{"id": alice, "name": "alice"}]
    await until(lambda: not a.ctx.hub.is_online(alice), 5, "alice offline on A")
    assert [e[1:] for e in seen if e[1] == alice] == [(alice, True), (alice, False)]
    del s3


async def _watchers_frame(
    sock: ClientWebSocketResponse, game_id: int, want: int, known: int | None = None
) -> None:
    """Read until a game presence frame says ``want`` watchers (fails after 5 s). ``known``:
    the count the socket already has (a subscribe ack's ``watchers``: a count that changes
    while a subscription is being set up comes in the ack, not in a presence frame)."""
    deadline = time.monotonic() + 5
    got = known
    while got != want:
        left = deadline - time.monotonic()
        assert left > 0, f"watchers {got}, wanted {want}"
        got = (await recv_type(sock, "presence", timeout=left, game_id=game_id))["watchers"]


async def test_watcher_counts_are_global(cluster: Cluster) -> None:
    """A game's watcher count covers every instance: counts change everywhere when a
    socket comes or goes on any of them, a newcomer learns the others' counts, and a dead
    instance's watchers drop out once its heartbeat is gone."""
    a, b, _, game = await two_instances_one_game(cluster)
    on_a = [await a.ws(), await a.ws()]
    for sock in on_a:
        await subscribe(sock, game)
    await _watchers_frame(on_a[0], game, 2)
    on_b = await b.ws()
    ack = await request(on_b, type="subscribe", id="s", game_id=game)
    assert ack["watchers"] >= 1
    await _watchers_frame(on_b, game, 3, ack["watchers"])  # B learnt A's two
    await _watchers_frame(on_a[0], game, 3)
    assert a.ctx.hub.watchers(game) == b.ctx.hub.watchers(game) == 3

    await on_a[1].close()
    await _watchers_frame(on_b, game, 2)
    c = await cluster.add("c")
    on_c = await c.ws()
    ack = await request(on_c, type="subscribe", id="s", game_id=game)
    await _watchers_frame(on_c, game, 3, ack["watchers"])
    await _watchers_frame(on_a[0], game, 3)

    # C dies without a word: after its heartbeat is gone, the others forget its watcher
    for task in c.bus._tasks:
        task.cancel()
    c.bus.transport.closed = True
    await until(lambda: a.ctx.hub.watchers(game) == 2, 10, "C's watcher forgotten on A")
    await until(lambda: b.ctx.hub.watchers(game) == 2, 10, "C's watcher forgotten on B")
    await _watchers_frame(on_a[0], game, 2)


async def test_dead_instance_users_go_offline(cluster: Cluster) -> None:
    a = await cluster.add("a")
    b = await cluster.add("b")
    (bob, tb), (_, tc) = await users(a, "bob", "carol")
    await b.ws(tb)
    await until(lambda: a.ctx.hub.is_online(bob), 5, "bob online on A")
    seen: list[tuple[int, bool]] = []
    a.ctx.hub.on_presence.append(lambda u, on: seen.append((u, on)))
    # B dies without a word: its heartbeat stops, its presence expires, A reaps it
    for task in b.bus._tasks:
        task.cancel()
    b.bus.transport.closed = True
    await until(lambda: not a.ctx.hub.is_online(bob), 10, "bob offline after B died")
    assert seen == [(bob, False)]
    del tc


# -- tokens --------------------------------------------------------------------------------


async def test_logout_on_a_closes_sockets_and_refuses_tokens_on_b(cluster: Cluster) -> None:
    a = await cluster.add("a")
    b = await cluster.add("b")
    status, session = await a.call(
        "POST", "/api/register", {"name": "alice", "password": "correct horse"}
    )
    assert status == 201, session
    token = session["access_token"]
    assert (await b.call("GET", "/api/me", token=token))[0] == 200
    sock = await b.ws(token)
    status, _ = await a.call("POST", "/api/logout", {"refresh_token": session["refresh_token"]})
    assert status == 200
    assert await closed_code(sock) == 1008
    status, body = await b.call("GET", "/api/me", token=token)
    assert status == 401 and body["error"]["code"] == "token_expired", body
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await b.session.ws_connect(b.url(f"/ws?token={token}"), protocols=("goapp.v1",))
    assert err.value.status == 401
    # an instance started after the logout refuses the token too (Redis keeps it)
    c = await cluster.add("c")
    assert (await c.call("GET", "/api/me", token=token))[0] == 401
    # a new login works everywhere at once
    status, again = await b.call(
        "POST", "/api/login", {"name": "alice", "password": "correct horse"}
    )
    assert status == 200, again
    assert (await a.call("GET", "/api/me", token=again["access_token"]))[0] == 200


async def test_one_instance_refuses_tokens_issued_before_a_logout(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    async for api in make_api(aiohttp_client, tmp_path, f"sqlite://{tmp_path}/one.db"):
        status, body = await api.call("GET", "/readyz")
        assert status == 200 and body["checks"]["bus"] == "absent"
        session = await api.register("alice")
        await api.call("POST", "/api/logout", {"refresh_token": session["refresh_token"]})
        status, body = await api.call("GET", "/api/me", user="alice")
        assert status == 401 and body["error"]["code"] == "token_expired", body
        status, again = await api.call(
            "POST", "/api/login", {"name": "alice", "password": "correct horse"}
        )
        assert status == 200
        api.tokens["alice"] = again
        assert (await api.call("GET", "/api/me", user="alice"))[0] == 200


# -- rate limits --------------------------------------------------------------------------


async def test_rate_limit_is_shared_and_falls_back(cluster: Cluster) -> None:
    def limiter() -> RateLimiter:
        return RateLimiter({"login:ip": Limit(burst=3, per_s=0.01)})

    a = await cluster.add("a", limiter())
    b = await cluster.add("b", limiter())
    creds = {"name": "nobody", "password": "wrong password"}
    statuses = [(await (a, b)[i % 2].call("POST", "/api/login", creds))[0] for i in range(6)]
    # one bucket for both instances: 3 tries in all, not 3 on each
    assert statuses == [401, 401, 401, 429, 429, 429]

    # Redis down: each instance limits on its own (fresh in-memory buckets)
    cluster.redis.stop(kill=True)
    await until(lambda: a.ctx.bus.status != "ok" and b.ctx.bus.status != "ok", 10, "degraded")
    statuses = [(await a.call("POST", "/api/login", creds))[0] for _ in range(4)]
    assert statuses == [401, 401, 401, 429]


async def test_login_back_off_is_shared_by_the_instances(cluster: Cluster) -> None:
    """An account's failed logins count once over every instance (in Redis): guesses spread
    over two instances are delayed after 5 in all, not 5 on each."""
    a = await cluster.add("a", RateLimiter({}))
    b = await cluster.add("b", RateLimiter({}))
    creds = {"name": "alice", "password": "wrong password"}
    answers = []
    for i in range(8):
        status, body = await (a, b)[i % 2].call("POST", "/api/login", creds)
        answers.append((status, body["error"]["code"]))
    assert answers == [(401, "bad_credentials")] * 5 + [(429, "login_delayed")] * 3


async def test_chat_budget_is_shared_by_the_instances(cluster: Cluster) -> None:
    """A user's chat budget (5 lines at once) is one budget over every instance, not one
    per instance (the buckets live in Redis)."""
    a = await cluster.add("a")
    b = await cluster.add("b")
    ((_, ta),) = await users(a, "alice")
    on_a, on_b = await a.ws(ta), await b.ws(ta)
    for ws in (on_a, on_b):
        assert (await request(ws, id="l", type="subscribe_lobby"))["type"] == "ack"
    kinds = []
    for n in range(8):
        got = await request((on_a, on_b)[n % 2], id=n, type="chat", room="lobby", text=f"{n}")
        kinds.append(got["type"] if got["type"] == "ack" else got["error"]["code"])
    assert kinds == ["ack"] * 5 + ["rate_limited"] * 3


# -- Redis outage --------------------------------------------------------------------------


async def test_redis_restart_degrades_then_converges(cluster: Cluster) -> None:
    a, b, [(alice, ta), (bob, tb)], game = await two_instances_one_game(cluster)
    watch_a = await a.ws()
    watch_b = await b.ws()
    start = await subscribe(watch_a, game)
    await subscribe(watch_b, game)
    await b.ws(tb)
    await until(lambda: a.ctx.hub.presence_of(bob) is True, 5, "bob seen on A")

    cluster.redis.stop(kill=True)
    for node in (a, b):

        def degraded(n: Node = node) -> bool:
            return n.ctx.bus.status.startswith("degraded")

        await until(degraded, 10, "degraded")
        status, body = await node.call("GET", "/readyz")
        assert status == 200, body
        assert body["status"] == "ready" and body["checks"]["bus"].startswith("degraded")
    # bob's socket is on B: A cannot tell whether he is online (automatch keeps his request)
    assert a.ctx.hub.presence_of(bob) is None and b.ctx.hub.presence_of(bob) is True

    # during the outage each instance serves its own clients
    s1 = await play(a, game, alice, MOVES[0])
    assert await events_until(watch_a, game, s1) == [start + 1]
    s2 = await play(b, game, bob, MOVES[1])
    s3 = await play(b, game, alice, MOVES[2])
    # B fills A's move from the log (the message never came) before its own
    assert await events_until(watch_b, game, s3) == [s1, s2, s3]
    sock = await a.ws(ta)  # a new connection on A still works
    assert (await subscribe(sock, game)) == s3

    cluster.redis.start()
    for node in (a, b):

        def back(n: Node = node) -> bool:
            return n.ctx.bus.status == "ok"

        await until(back, 15, "bus back")
        status, body = await node.call("GET", "/readyz")
        assert status == 200 and body["checks"]["bus"] == "ok", body
    # A's spectator gets B's outage moves, in order, once
    assert await events_until(watch_a, game, s3) == [s2, s3]
    # and everything flows again both ways
    s4 = await play(b, game, bob, MOVES[3])
    assert await events_until(watch_a, game, s4) == [s4]
    assert await events_until(sock, game, s4) == [s4]
    assert await events_until(watch_b, game, s4) == [s4]
    for s in (watch_a, watch_b, sock):
        assert not [f for f in await quiet(s, 0.2) if f["type"] == "event"]
    await until(lambda: a.ctx.hub.presence_of(bob) is True, 10, "bob seen on A again")
