"""Three goapp instances on one PostgreSQL and one Redis behind a real Nginx (issue 8).

100 games of 9x9 are played at once. Players connect through Nginx (round robin spreads them
over the instances), each game has a spectator connected straight to one instance, so most
games are watched from an instance other than the ones their moves arrive at. Midway one
instance is killed with SIGKILL. Its clients reconnect (players through Nginx, spectators to
a surviving instance), resume with ``since`` = the last seq they processed, resend their
in-flight action with the same ``request_id`` and finish their games.

Checked at the end:

* every client saw every event of its game exactly once and in order (from the seq of its
  first ``state`` to the game's last seq, no gap, no duplicate);
* every acknowledged action is in the database log (nothing acknowledged was lost);
* every game is finished, and the database's last seq is the one every client ended on;
* events really crossed instances (spectators on another instance than a mover's).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cluster_support import Balancer, Instance
from services import RedisServer, unavailable

from goapp.server.auth import issue_access_token
from goapp.store import open_store

# goapp instances behind Nginx, sharing Redis
pytestmark = [pytest.mark.server, pytest.mark.redis, pytest.mark.nginx]

#: GOAPP_TEST_CLUSTER_GAMES plays fewer (or more) games when debugging.
GAMES = int(os.environ.get("GOAPP_TEST_CLUSTER_GAMES", "100"))
# Black walls off the left of the board, White the right: 18 legal moves without captures,
# then Black resigns.
MOVES = [v for row in range(9, 0, -1) for v in (f"C{row}", f"G{row}")]
HANDSHAKE = ["goapp.v1"]
TEST_DEADLINE_S = 240


@dataclass
class Cluster:
    instances: list[Instance]
    balancer: Balancer
    database_url: str
    secret: bytes


@pytest.fixture
def cluster(pg_schema_url: str, tmp_path: Path) -> Any:
    try:
        redis = RedisServer()
    except RuntimeError as exc:
        unavailable(str(exc))
        raise
    secret = os.urandom(32)
    env = {
        "GOAPP_DATABASE_URL": pg_schema_url,
        "GOAPP_REDIS_URL": redis.url,
        "GOAPP_JWT_SECRET": secret.hex(),
    }
    instances = [
        Instance(f"goapp{i}", tmp_path, {**env, "GOAPP_INSTANCE_ID": f"goapp{i}"}) for i in range(3)
    ]
    balancer = None
    try:
        for inst in instances:
            inst.start()
        balancer = Balancer(tmp_path / "nginx", [i.port for i in instances])
        yield Cluster(instances, balancer, pg_schema_url, secret)
    finally:
        if balancer is not None:
            balancer.stop()
        for inst in instances:
            inst.stop()
        redis.stop()


# -- a client that resumes ----------------------------------------------------------------------


@dataclass
class Client:
    """One WebSocket client of one game: records every seq it processes, reconnects and
    resumes by seq when its socket dies."""

    name: str
    token: str | None  # None: a guest (spectators)
    game_id: int
    urls: list[str]  # tried in turn when (re)connecting
    http: aiohttp.ClientSession
    seqs: list[int] = field(default_factory=list)
    first_state_seq: int | None = None
    kinds: dict[int, str] = field(default_factory=dict)
    moves_seen: int = 0
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    instances: set[str] = field(default_factory=set)
    reconnects: int = 0
    ws: aiohttp.ClientWebSocketResponse | None = None
    acks: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    ids: Any = field(default_factory=lambda: itertools.count(1))
    reader: asyncio.Task[None] | None = None

    @property
    def last_seq(self) -> int:
        return self.seqs[-1] if self.seqs else (self.first_state_seq or 0)

    async def connect(self) -> None:
        """(Re)connect to the first URL that answers, subscribe (``since`` after the first
        time) and start reading."""
        deadline = time.monotonic() + 60
        for url in itertools.cycle(self.urls):
            try:
                ws = await self.http.ws_connect(
                    url.replace("http", "ws") + "/ws",
                    protocols=HANDSHAKE
                    if self.token is None
                    else [*HANDSHAKE, f"bearer.{self.token}"],
                    timeout=aiohttp.ClientWSTimeout(ws_close=5),
                    heartbeat=None,
                )
                welcome = await ws.receive_json(timeout=10)
                assert welcome["type"] == "welcome", welcome
                if welcome.get("instance"):
                    self.instances.add(welcome["instance"])
                break
            except (aiohttp.ClientError, OSError, TimeoutError, TypeError, ValueError):
                assert time.monotonic() < deadline, f"{self.name} could not reconnect"
                await asyncio.sleep(0.2)
        self.ws = ws
        self.reader = asyncio.create_task(self._read(ws))
        sub: dict[str, Any] = {"type": "subscribe", "game_id": self.game_id}
        if self.first_state_seq is not None:
            sub["since"] = self.last_seq
        await self.request(sub)

    async def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Send ``frame`` with a fresh id; its ack (an error frame raises)."""
        assert self.ws is not None
        msg_id = next(self.ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.acks[msg_id] = fut
        await self.ws.send_json({**frame, "id": msg_id})
        answer = await asyncio.wait_for(fut, 30)
        assert answer["type"] == "ack", (self.name, frame, answer)
        return answer

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for msg in ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    continue
                frame = msg.json()
                kind = frame["type"]
                if kind in ("ack", "error"):
                    fut = self.acks.pop(frame.get("id"), None)
                    if fut is not None and not fut.done():
                        fut.set_result(frame)
                elif kind == "state" and frame["game_id"] == self.game_id:
                    if self.first_state_seq is None:
                        self.first_state_seq = frame["seq"]
                        self.moves_seen = len(frame["view"].get("moves") or [])
                elif kind == "event" and frame["game_id"] == self.game_id:
                    self.seqs.append(frame["seq"])
                    self.kinds[frame["seq"]] = frame["kind"]
                    if frame["kind"] == "move":
                        self.moves_seen += 1
                    elif frame["kind"] == "game_finished":
                        self.finished.set()
                    self.changed.set()
        except (aiohttp.ClientError, OSError):
            pass
        finally:
            for fut in self.acks.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("socket closed"))
            self.acks.clear()
            self.changed.set()

    def dead(self) -> bool:
        return self.ws is None or self.ws.closed or (self.reader is not None and self.reader.done())

    async def ensure_connected(self) -> None:
        if self.dead():
            if self.ws is not None:
                with contextlib.suppress(Exception):
                    await self.ws.close()
            self.reconnects += 1
            await self.connect()

    async def act(self, action: dict[str, Any], request_id: str) -> dict[str, Any]:
        """Send an action until it is acknowledged, reconnecting as needed (same
        ``request_id`` every time: the server applies it once)."""
        for _ in range(20):
            await self.ensure_connected()
            try:
                return await self.request(
                    {
                        "type": "action",
                        "game_id": self.game_id,
                        "action": action,
                        "request_id": request_id,
                    }
                )
            except (ConnectionError, aiohttp.ClientError, OSError):
                await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name}: {action} never acknowledged")

    async def watch_until_finished(self, deadline: float) -> None:
        while not self.finished.is_set():
            assert time.monotonic() < deadline, f"{self.name}: game {self.game_id} not finished"
            await self.ensure_connected()
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 1.0)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            with contextlib.suppress(Exception):
                await self.reader


# -- the scenario ---------------------------------------------------------------------------------


async def make_users(cluster: Cluster, n: int) -> list[tuple[int, str, str]]:
    """``n`` accounts straight in the shared database, with access tokens signed by the
    cluster's secret (registration over HTTP is rate limited per address and is tested
    elsewhere)."""
    store = await open_store(cluster.database_url)
    try:
        out = []
        now = int(time.time())
        for i in range(n):
            name = f"p{i:03d}"
            user = await store.create_user(name, None)
            out.append(
                (user.id, name, issue_access_token(cluster.secret, user.id, name, 3600, now))
            )
        return out
    finally:
        await store.close()


async def start_game(http: aiohttp.ClientSession, base: str, black: str, white: str) -> int:
    body = {
        "size": 9,
        "rules": "japanese",
        "komi": 6.5,
        "color": "black",
        "time_control": {"system": "fischer", "main_s": 1800, "increment_s": 10},
    }
    async with http.post(
        f"{base}/api/challenges", json=body, headers={"Authorization": f"Bearer {black}"}
    ) as r:
        assert r.status == 201, await r.text()
        challenge = await r.json()
    cid = challenge.get("id") or challenge["challenge"]["id"]
    async with http.post(
        f"{base}/api/challenges/{cid}/accept", headers={"Authorization": f"Bearer {white}"}
    ) as r:
        assert r.status == 200, await r.text()
        return int((await r.json())["game_id"])


async def play(
    black: Client, white: Client, acked: list[tuple[int, int, str]], deadline: float
) -> None:
    """Alternate the moves of MOVES, then Black resigns."""
    for i, vertex in enumerate(MOVES):
        mover = black if i % 2 == 0 else white
        while mover.moves_seen < i:  # wait for the opponent's move to arrive
            assert time.monotonic() < deadline, f"game {black.game_id} stuck at move {i}"
            await mover.ensure_connected()
            mover.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(mover.changed.wait(), 1.0)
        ack = await mover.act(
            {"type": "move", "vertex": vertex}, f"{mover.name}-{black.game_id}-{i}"
        )
        # the ack carries the seq of the action's last event: here the move
        acked.append((black.game_id, ack["seq"], "move"))
    ack = await black.act({"type": "resign"}, f"{black.name}-{black.game_id}-resign")
    acked.append((black.game_id, ack["seq"], "game_finished"))


@pytest.mark.timeout(TEST_DEADLINE_S + 60)
async def test_three_instances_behind_nginx_survive_a_sigkill(cluster: Cluster) -> None:
    deadline = time.monotonic() + TEST_DEADLINE_S
    users = await make_users(cluster, 2 * GAMES)
    lb = cluster.balancer.url
    direct = [i.url for i in cluster.instances]
    acked: list[tuple[int, int, str]] = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        games = await asyncio.gather(
            *(start_game(http, lb, users[2 * g][2], users[2 * g + 1][2]) for g in range(GAMES))
        )
        players: list[tuple[Client, Client]] = []
        spectators: list[Client] = []
        for g, game_id in enumerate(games):
            (_, bname, btok), (_, wname, wtok) = users[2 * g], users[2 * g + 1]
            players.append(
                (
                    Client(bname, btok, game_id, [lb], http),
                    Client(wname, wtok, game_id, [lb], http),
                )
            )
            # Spectators go straight to one instance; after a kill, to the next one.
            order = direct[g % 3 :] + direct[: g % 3]
            spectators.append(Client(f"s{g:03d}", None, game_id, order, http))
        everyone = [c for pair in players for c in pair] + spectators
        await asyncio.gather(*(c.connect() for c in everyone))

        victim = cluster.instances[1]

        async def kill_midway() -> None:
            while sum(k == "move" for _, _, k in acked) < GAMES * len(MOVES) * 0.4:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            victim.kill()

        killer = asyncio.create_task(kill_midway())
        await asyncio.gather(*(play(b, w, acked, deadline) for b, w in players))
        await killer
        await asyncio.gather(*(c.watch_until_finished(deadline) for c in everyone))
        for c in everyone:
            await c.close()

    assert not victim.alive()
    # Clients of the killed instance really had to come back.
    assert sum(c.reconnects for c in everyone) > 0

    store = await open_store(cluster.database_url)
    try:
        logs = {g: await store.events_since(g, 0) for g in games}
        rows = {g: await store.get_game(g) for g in games}
    finally:
        await store.close()

    # Nothing acknowledged was lost.
    for game_id, seq, kind in acked:
        kinds = {r.seq: r.kind for r in logs[game_id]}
        assert kinds.get(seq) == kind, (game_id, seq, kind)
    assert sum(k == "move" for _, _, k in acked) == GAMES * len(MOVES)
    assert sum(k == "game_finished" for _, _, k in acked) == GAMES

    for game_id in games:
        last = logs[game_id][-1].seq
        assert rows[game_id] is not None and rows[game_id].status == "finished"
        assert [r.seq for r in logs[game_id]] == list(range(1, last + 1))

    # Every client: every event once, in order, to the end.
    for c in everyone:
        last = logs[c.game_id][-1].seq
        assert c.first_state_seq is not None, c.name
        expected = list(range(c.first_state_seq + 1, last + 1))
        assert c.seqs == expected, (c.name, c.game_id, c.first_state_seq, c.seqs[:50])
        db_kinds = {r.seq: r.kind for r in logs[c.game_id]}
        assert all(db_kinds[s] == k for s, k in c.kinds.items()), c.name

    # Spectators and the players they watched were not all on one instance.
    crossed = sum(
        1
        for (b, w), s in zip(players, spectators, strict=True)
        if s.instances and (b.instances | w.instances) - s.instances
    )
    assert crossed > GAMES // 4, crossed
