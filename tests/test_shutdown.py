"""Graceful shutdown and crash safety of a real ``goapp serve`` process (SQLite).

Two players play over WebSocket (``goapp.v1`` with ``bearer.<token>``, actions with a
``request_id``), as docs/protocol.md describes:

* SIGTERM: both sockets get close 1001 (going away: reconnect), the process exits 0 within
  ``EXIT_BOUND_S``; restarted on the same data directory, the clients reconnect with the
  same tokens, resubscribe with ``since`` = the last seq they saw, retry the action that was
  in flight with its ``request_id`` and find every acknowledged move there, once.
* SIGKILL while a client sends moves as fast as the acks come back: after a restart
  ``GET /api/games/{id}/events`` holds every acknowledged move at the seq of its ack, the
  in-flight retry does not act twice, and the game goes on.
* SIGTERM while GNU Go is busy (a bot's move, a score estimate): the exit stays within the
  bound and no ``gnugo`` outlives the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from itertools import count
from pathlib import Path
from typing import Any, Literal

import aiohttp
import pytest
from aiohttp import ClientSession, ClientWebSocketResponse
from engine_support import BUSY_19X19, cpu_ticks, group_alive
from services import free_port
from ws_helpers import closed_code, recv_type, request

from goapp.game.service import GameService
from goapp.settings import load_settings
from goapp.store import open_store

# goapp serve processes with GNU Go bots
pytestmark = [pytest.mark.server, pytest.mark.gnugo]

#: How long a SIGTERMed server may take to close its sockets and exit.
EXIT_BOUND_S = 10.0
COLUMNS = "ABCDEFGHJKLMNOPQRST"
# Black fills rows 1-4 and white rows 16-19 of a 19x19 board: every move is legal, nothing
# is ever captured, and each side's block keeps its liberties.
BLACK = [f"{c}{r}" for r in range(1, 5) for c in COLUMNS]
WHITE = [f"{c}{r}" for r in range(19, 15, -1) for c in COLUMNS]
MOVES = [v for pair in zip(BLACK, WHITE, strict=True) for v in pair]  # black first


class ServeProcess:
    """``python -m goapp serve`` on SQLite in ``data_dir``, WebSocket on the HTTP port,
    with no engine unless ``engine`` names one."""

    def __init__(self, data_dir: Path, port: int, engine: str = "none") -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("GOAPP_")}
        env.update(GOAPP_ENGINE=engine, GOAPP_LOG_LEVEL="warning")
        env["GOAPP_METRICS_LISTEN"] = "127.0.0.1:0"  # any free port, not the default 9464
        self.log = (data_dir.parent / "server.log").open("a")
        argv = [sys.executable, "-m", "goapp", "serve", "--host", "127.0.0.1"]
        argv += ["--port", str(port), "--ws-port", "0", "--data-dir", str(data_dir)]
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    async def ready(self, http: ClientSession, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"goapp exited with {self.proc.returncode}"
            try:
                async with http.get(f"{self.url}/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
        raise AssertionError(f"/readyz not 200 within {timeout}s")

    async def exit_code(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            assert time.monotonic() < deadline, f"goapp still running {timeout}s after SIGTERM"
            await asyncio.sleep(0.02)
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def started() -> Iterator[list[ServeProcess]]:
    procs: list[ServeProcess] = []
    yield procs
    for p in procs:
        p.close()


@pytest.fixture
async def http() -> AsyncIterator[ClientSession]:
    async with ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        yield session


class Player:
    """One player's WebSocket client: tracks the last seq it processed of the game."""

    def __init__(self, name: str, token: str, game_id: int) -> None:
        self.name, self.token, self.game_id = name, token, game_id
        self.last_seq = 0
        self.ws: ClientWebSocketResponse | None = None
        self.ids = count(1)

    async def connect(self, http: ClientSession, url: str, since: int | None = None) -> None:
        self.ws = await http.ws_connect(
            url.replace("http", "ws", 1) + "/ws",
            protocols=("goapp.v1", f"bearer.{self.token}"),
        )
        assert self.ws.protocol == "goapp.v1"
        welcome = await recv_type(self.ws, "welcome")
        assert welcome["user"]["name"] == self.name
        sub: dict[str, Any] = {"type": "subscribe", "id": next(self.ids), "game_id": self.game_id}
        if since is not None:
            sub["since"] = since
        skipped: list[dict[str, Any]] = []
        ack = await request(self.ws, skipped, **sub)
        assert ack["type"] == "ack", ack
        for frame in skipped:
            self.seen(frame)

    def seen(self, frame: dict[str, Any]) -> None:
        if frame.get("game_id") != self.game_id:
            return
        if frame["type"] == "state":
            self.last_seq = frame["seq"]
        elif frame["type"] == "event":
            assert frame["seq"] == self.last_seq + 1, (self.name, frame["seq"], self.last_seq)
            self.last_seq = frame["seq"]

    async def act(self, vertex: str, request_id: str) -> dict[str, Any]:
        """Send a move; its ack (or error). Frames meanwhile update ``last_seq``."""
        assert self.ws is not None
        skipped: list[dict[str, Any]] = []
        answer = await request(
            self.ws,
            skipped,
            type="action",
            id=next(self.ids),
            game_id=self.game_id,
            action={"type": "move", "vertex": vertex},
            request_id=request_id,
        )
        for frame in skipped:
            self.seen(frame)
        return answer


async def api(
    http: ClientSession, method: str, url: str, body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(method, url, json=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def new_game(http: ClientSession, url: str) -> tuple[int, Player, Player]:
    tokens = {}
    for name in ("alice", "bob"):
        status, body = await api(
            http, "POST", f"{url}/api/register", {"name": name, "password": "shutdown pw 1"}
        )
        assert status == 201, body
        tokens[name] = body["access_token"]
    challenge = {"size": 19, "rules": "japanese", "color": "black", "opponent": "bob"}
    challenge["time_control"] = {"system": "byoyomi", "main_s": 3600, "periods": 3, "period_s": 60}
    status, ch = await api(http, "POST", f"{url}/api/challenges", challenge, tokens["alice"])
    assert status == 201, ch
    status, accepted = await api(
        http, "POST", f"{url}/api/challenges/{ch['id']}/accept", None, tokens["bob"]
    )
    assert status == 200, accepted
    game_id = int(accepted["game_id"])
    return game_id, Player("alice", tokens["alice"], game_id), Player("bob", tokens["bob"], game_id)


async def all_events(http: ClientSession, url: str, game_id: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while True:
        status, body = await api(
            http, "GET", f"{url}/api/games/{game_id}/events?since={len(events)}"
        )
        assert status == 200, body
        if not body["events"]:
            return events
        events += body["events"]


def assert_acked_present(events: list[dict[str, Any]], acked: dict[str, int]) -> None:
    """Every acknowledged request is in the log, once, at the seq its ack named."""
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    by_request: dict[str, list[int]] = {}
    for e in events:
        rid = e.get("request_id")
        if rid is not None:
            by_request.setdefault(rid, []).append(e["seq"])
    lost = {rid: seq for rid, seq in acked.items() if by_request.get(rid) != [seq]}
    assert not lost, f"acknowledged moves lost or moved: {lost}"


def ack_seq(answer: dict[str, Any]) -> int:
    """The seq a move's ack names (its last event's: a move writes one)."""
    assert answer["type"] == "ack", answer
    assert isinstance(answer["seq"], int), answer
    return answer["seq"]


@pytest.mark.timeout(120)
async def test_sigterm_closes_sockets_with_1001_exits_0_and_clients_resume(
    data_dir: Path, started: list[ServeProcess], http: ClientSession
) -> None:
    port = free_port()
    first = ServeProcess(data_dir, port)
    started.append(first)
    await first.ready(http)
    game_id, alice, bob = await new_game(http, first.url)
    players = [alice, bob]
    for p in players:
        await p.connect(http, first.url)

    acked: dict[str, int] = {}
    for i, vertex in enumerate(MOVES[:8]):
        rid = f"term-{i}"
        acked[rid] = ack_seq(await players[i % 2].act(vertex, rid))
    # The opponent saw each move live.
    last = acked["term-7"]
    for p in players:
        assert p.ws is not None
        if p.last_seq < last:
            await recv_type(p.ws, "event", seq=last)
            p.last_seq = last

    # One more move goes out just before SIGTERM: acknowledged or not, it must not be lost
    # (retried with its request_id after the restart) nor played twice.
    assert alice.ws is not None and bob.ws is not None
    in_flight = {"rid": "term-8", "vertex": MOVES[8]}
    await alice.ws.send_json(
        {
            "type": "action",
            "id": 999,
            "game_id": game_id,
            "action": {"type": "move", "vertex": in_flight["vertex"]},
            "request_id": in_flight["rid"],
        }
    )
    # A third client never reads again (nor answers the close frame): it cannot hold the
    # shutdown past the bound.
    silent = await http.ws_connect(
        first.url.replace("http", "ws", 1) + "/ws", protocols=("goapp.v1", f"bearer.{bob.token}")
    )
    await silent.send_json({"type": "subscribe", "id": 1, "game_id": game_id})
    t0 = time.monotonic()
    first.proc.send_signal(signal.SIGTERM)
    codes = await asyncio.gather(closed_code(alice.ws, 10), closed_code(bob.ws, 10))
    assert codes == [1001, 1001], codes
    assert await first.exit_code(EXIT_BOUND_S) == 0
    took = time.monotonic() - t0
    print(f"SIGTERM -> exit 0 in {took:.2f} s")
    assert took < EXIT_BOUND_S
    await silent.close()

    second = ServeProcess(data_dir, port)
    started.append(second)
    await second.ready(http)
    for p in players:
        await p.connect(http, second.url, since=p.last_seq)
    # The retry answers the original seq if the move had committed, else plays it now.
    acked[in_flight["rid"]] = ack_seq(await alice.act(in_flight["vertex"], in_flight["rid"]))
    # ... and the game goes on: bob's next move reaches alice live.
    acked["term-9"] = ack_seq(await bob.act(MOVES[9], "term-9"))
    event = await recv_type(alice.ws, "event", seq=acked["term-9"])
    assert event["payload"]["vertex"] == MOVES[9]

    events = await all_events(http, second.url, game_id)
    assert_acked_present(events, acked)
    assert [e["vertex"] for e in events if e["kind"] == "move"] == MOVES[:10]
    for p in players:
        assert p.ws is not None
        await p.ws.close()
    second.proc.send_signal(signal.SIGTERM)
    assert await second.exit_code(EXIT_BOUND_S) == 0


@pytest.mark.timeout(120)
async def test_sigkill_mid_stream_loses_no_acknowledged_move(
    data_dir: Path, started: list[ServeProcess], http: ClientSession
) -> None:
    port = free_port()
    first = ServeProcess(data_dir, port)
    started.append(first)
    await first.ready(http)
    game_id, alice, bob = await new_game(http, first.url)
    players = [alice, bob]
    for p in players:
        await p.connect(http, first.url)

    acked: dict[str, int] = {}
    in_flight: tuple[int, str] | None = None  # (move index, request_id) sent, not answered
    kill_after = 30  # well inside the per-connection burst (40 messages), so no rate limit

    async def stream() -> None:
        nonlocal in_flight
        for i, vertex in enumerate(MOVES):
            rid = f"kill-{i}"
            in_flight = (i, rid)
            answer = await players[i % 2].act(vertex, rid)
            acked[rid] = ack_seq(answer)
            in_flight = None
            if len(acked) == kill_after:
                # SIGKILL from another task while the next move is already on its way.
                asyncio.get_running_loop().call_later(0.002, first.proc.kill)

    with pytest.raises((AssertionError, aiohttp.ClientError, ConnectionError)):
        await asyncio.wait_for(stream(), 30)
    assert first.proc.wait(10) == -signal.SIGKILL
    assert len(acked) >= kill_after
    print(f"SIGKILL after {len(acked)} acknowledged moves; in flight: {in_flight}")

    second = ServeProcess(data_dir, port)
    started.append(second)
    await second.ready(http)
    events = await all_events(http, second.url, game_id)
    assert_acked_present(events, acked)  # nothing acknowledged is lost

    for p in players:
        if p.ws is not None:
            await p.ws.close()
        await p.connect(http, second.url, since=min(p.last_seq, len(events)))
    next_index = len(acked)
    if in_flight is not None:  # the client retries what it sent without an answer
        index, rid = in_flight
        acked[rid] = ack_seq(await players[index % 2].act(MOVES[index], rid))
        next_index = index + 1
    rid = f"kill-{next_index}"
    acked[rid] = ack_seq(await players[next_index % 2].act(MOVES[next_index], rid))
    opponent = players[(next_index + 1) % 2]
    assert opponent.ws is not None
    await recv_type(opponent.ws, "event", seq=acked[rid])

    events = await all_events(http, second.url, game_id)
    assert_acked_present(events, acked)
    moves = [e["vertex"] for e in events if e["kind"] == "move"]
    assert moves == MOVES[: next_index + 1]  # no move played twice, none skipped
    second.proc.send_signal(signal.SIGTERM)
    assert await second.exit_code(EXIT_BOUND_S) == 0


async def seed_busy_games(data_dir: Path) -> tuple[int, int]:
    """Before the server starts: a finished 19x19 game between people and a GNU Go
    (strong) vs GNU Go game, both at :data:`BUSY_19X19`'s hard position. Returns their ids."""
    settings = load_settings(env={}, overrides={"data_dir": str(data_dir)})
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    store = await open_store(settings.effective_database_url)
    try:
        games = GameService(store)
        alice = (await store.create_user("alice", None)).id
        bob = (await store.create_user("bob", None)).id
        people = (await games.create_game(alice, bob, user_color="black", size=19)).game_id
        bots = (
            await games.create_game(
                None, None, size=19, user_bot="gnugo:strong", opponent_bot="gnugo:strong"
            )
        ).game_id
        for i, vertex in enumerate(BUSY_19X19):
            color: Literal["black", "white"] = "black" if i % 2 == 0 else "white"
            move = {"type": "move", "vertex": vertex}
            await games.act(people, alice if color == "black" else bob, move)
            await games.act_as_bot(bots, color, move, request_id=f"seed-{i}")
        await games.act(people, alice, {"type": "resign"})
    finally:
        await store.close()
    return people, bots


def gnugo_children(pid: int) -> list[int]:
    """The live ``gnugo`` child processes of ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if "(gnugo)" in stat and int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


@pytest.mark.timeout(180)
async def test_sigterm_with_busy_gnugo_exits_in_bound_and_leaves_no_gnugo(
    data_dir: Path, started: list[ServeProcess], http: ClientSession
) -> None:
    """GNU Go busy with a bot's move and with a score estimate asked over HTTP (each minutes
    of work on this position): SIGTERM still ends the server within the bound, the
    estimate's request gets its answer (503) instead of holding the exit, and no GNU Go
    process outlives the server."""
    finished, _bot_game = await seed_busy_games(data_dir)
    server = ServeProcess(data_dir, free_port(), engine="gnugo")
    started.append(server)
    await server.ready(http)

    async def estimate() -> int:
        async with http.get(f"{server.url}/api/games/{finished}/estimate") as resp:
            return resp.status

    asking = asyncio.create_task(estimate())
    deadline = time.monotonic() + 60
    settled = False
    while True:  # GNU Go thinking (about the bot's move and the estimate) for a while
        pids = gnugo_children(server.proc.pid)
        if pids and all(cpu_ticks(p) > 20 for p in pids):
            if settled:
                break
            settled = True  # look again in a second: every query has reached GNU Go
            await asyncio.sleep(1.0)
            continue
        assert time.monotonic() < deadline, f"GNU Go not busy: {pids}"
        assert not asking.done(), asking.result()
        await asyncio.sleep(0.1)

    server.proc.send_signal(signal.SIGTERM)
    try:
        assert await server.exit_code(EXIT_BOUND_S) == 0
        for pid in pids:
            assert group_alive(pid) == [], f"GNU Go {pid} outlived the server"
        assert await asyncio.wait_for(asking, 5) == 503
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
