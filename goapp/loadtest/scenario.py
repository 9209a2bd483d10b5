"""The load scenario: players play, spectators watch, some chat, some drop and resume.

Shape of a run (:func:`run_loadtest`):

1. **Setup** (:mod:`goapp.loadtest.setup`): ``2 x games`` player accounts with tokens, one
   game per pair through the HTTP API. The other ``clients - 2 x games`` connections are
   **spectators**: guests (no token) that each watch ``spectators`` games, spread evenly.
2. **Connect**: every client opens ``ws://HOST:PORT/ws`` (round-robin over ``urls``),
   subscribes to its games and receives the ``state`` (its starting ``seq``).
3. **Drive** for ``duration`` seconds: a scheduler sends ``rate`` moves a second in total,
   each from the player whose turn it is, to a game that has no move in flight (open loop
   as long as such a game exists; otherwise the shortfall is reported as ``starved``).
   Moves are legal by construction: Black fills columns A-H and White columns M-T, row by
   row, so stones never touch, nothing is captured and no move is suicide (304 moves a
   game; a game that runs out is left alone). ``chat_rate`` chat lines a second go to game
   rooms; ``reconnects`` connections over the run are dropped (no close frame) and come back
   with ``hello {resume: {game: last_seq}}``.
4. **Drain** (up to ``drain`` seconds): wait for outstanding acks and for every client to
   have seen every game's last event, then close.

Measured (same process, same clock): **action->ack** (a move or chat sent to its ``ack``),
**move->broadcast** (a move sent to each *other* subscriber, opponent and spectators,
receiving its ``event``), messages and bytes received per second, errors by code. Every
client tracks, per game, the last ``seq`` it holds: an event at or below it is a
**duplicate**, one beyond ``last + 1`` is a **gap** (the client resubscribes with
``since``, as the protocol says); what is still missing at the end is **lost**.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import os
import random
import resource
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from goapp.loadtest.setup import Player, create_games, make_players
from goapp.loadtest.stats import Samples
from goapp.loadtest.wsclient import WsClient, connect
from goapp.settings import Settings

__all__ = [
    "MAX_CLIENTS",
    "MAX_DURATION_S",
    "LoadConfig",
    "LoadError",
    "legal_sequence",
    "run_loadtest",
]

log = logging.getLogger("goapp.loadtest")

#: Hard caps: the generator refuses more, whatever the flags say.
MAX_CLIENTS = 20_000
MAX_DURATION_S = 900.0
MAX_RATE = 50_000.0
_COLUMNS = "ABCDEFGHJKLMNOPQRST"


class LoadError(ValueError):
    """A configuration the generator refuses (too big, not loopback, inconsistent)."""


def legal_sequence(size: int = 19) -> list[str]:
    """A move order legal under every ruleset: Black fills the left columns, White the
    right ones, row by row, with at least one empty column between them (no contact, so
    no capture, no ko, no suicide). Alternating Black, White."""
    width = (size - 1) // 2 - 1  # columns per side; at least one empty column between
    black = [f"{_COLUMNS[c]}{r}" for r in range(1, size + 1) for c in range(width)]
    white = [f"{_COLUMNS[size - 1 - c]}{r}" for r in range(1, size + 1) for c in range(width)]
    out: list[str] = []
    for b, w in zip(black, white, strict=True):
        out += [b, w]
    return out


@dataclass
class LoadConfig:
    urls: list[str]
    clients: int = 200
    games: int = 40
    spectators: int = 1
    """Games each spectator connection watches."""
    rate: float = 100.0
    """Moves per second, all games together."""
    duration: float = 10.0
    chat_rate: float = 0.0
    """Chat lines per second, all game rooms together."""
    reconnects: int = 0
    """Connections dropped and resumed over the run (spread evenly)."""
    drain: float = 10.0
    connect_concurrency: int = 100
    bare: bool = False
    """Skip accounts and the HTTP API: game ids 1..games and no tokens (the Node ws
    comparison server in benches/node_ws, which keeps games in memory)."""
    allow_remote: bool = False
    gc_freeze: bool = True
    """gc.collect() + gc.freeze() in the generator once every client is connected."""
    seed: int = 1

    def check(self) -> None:
        if not self.urls:
            raise LoadError("give at least one --url")
        for url in self.urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "ws") or not parts.hostname or not parts.port:
                raise LoadError(f"{url!r}: expected http://HOST:PORT (plain HTTP, a port)")
            if not self.allow_remote and not _is_loopback(parts.hostname):
                raise LoadError(
                    f"{url!r} is not a loopback address; load tests target this machine "
                    "unless --allow-remote is given"
                )
        if not 1 <= self.clients <= MAX_CLIENTS:
            raise LoadError(f"--clients must be 1..{MAX_CLIENTS}")
        if not 0 < self.duration <= MAX_DURATION_S:
            raise LoadError(f"--duration must be in (0, {MAX_DURATION_S:g}] seconds")
        if not 0 <= self.rate <= MAX_RATE or not 0 <= self.chat_rate <= MAX_RATE:
            raise LoadError(f"--rate and --chat-rate must be 0..{MAX_RATE:g} a second")
        if self.games < 1 or 2 * self.games > self.clients:
            raise LoadError("--games must be at least 1 and at most half of --clients")
        if self.spectators < 1 or self.spectators > min(64, self.games):
            raise LoadError("--spectators (games per spectator) must be 1..min(64, games)")
        if not 0 <= self.reconnects <= self.clients * 10:
            raise LoadError("--reconnects must be 0..10 x clients")
        if not 0 <= self.drain <= 120:
            raise LoadError("--drain must be 0..120 seconds")


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Game:
    __slots__ = ("black", "busy", "done", "gid", "moves", "sent", "seq", "watchers", "white")

    def __init__(self, gid: int) -> None:
        self.gid = gid
        self.seq = 0  # last seq known to exist (from states, acks and events)
        self.moves = 0  # moves acknowledged (index into the legal sequence)
        self.busy = True  # a move in flight, or its mover reconnecting
        self.done = False
        # expected event seq -> (perf_counter at send, the mover)
        self.sent: dict[int, tuple[float, Client]] = {}
        self.black: Client | None = None
        self.white: Client | None = None
        self.watchers: list[Client] = []


class Client:
    """One simulated user: a player (token, one game) or a spectator (guest)."""

    __slots__ = ("games", "idx", "last", "player", "plays", "resyncing", "url", "ws")

    def __init__(self, idx: int, url: tuple[str, int], player: Player | None) -> None:
        self.idx = idx
        self.url = url
        self.player = player
        self.plays = False  # Black or White of its game (player is None in --bare runs)
        self.ws: WsClient | None = None
        self.games: list[Game] = []
        self.last: dict[int, int] = {}  # game id -> last seq held (-1: no state yet)
        self.resyncing: set[int] = set()


@dataclass
class Counters:
    moves_sent: int = 0
    moves_acked: int = 0
    chats_sent: int = 0
    chats_acked: int = 0
    chats_received: int = 0
    events_received: int = 0
    messages_received: int = 0
    bytes_received: int = 0
    duplicates: int = 0
    gaps: int = 0
    reconnects: int = 0
    unexpected_closes: int = 0
    starved: int = 0
    errors: dict[str, int] = field(default_factory=dict)


class Run:
    def __init__(self, cfg: LoadConfig, settings: Settings | None = None) -> None:
        self.cfg = cfg
        self.settings = settings
        self._game_list: list[Game] = []
        self.rng = random.Random(cfg.seed)
        self.moves = legal_sequence(19)
        self.games: dict[int, Game] = {}
        self.clients: list[Client] = []
        self.n = Counters()
        self.ack_move = Samples()
        self.ack_chat = Samples()
        self.broadcast = Samples()
        self.connect_s = Samples()
        self.ids = itertools.count(1)
        # message id -> (kind, sent at, game, client)
        self.pending: dict[int, tuple[str, float, Game | None, Client]] = {}
        self.ready: deque[Game] = deque()
        self.stopping = False
        self.waiters: dict[int, asyncio.Future[None]] = {}  # subscribe acks at start-up
        self.reconnecting: set[asyncio.Task[None]] = set()

    # -- errors ------------------------------------------------------------------------------

    def error(self, code: str) -> None:
        self.n.errors[code] = self.n.errors.get(code, 0) + 1

    # -- receiving ---------------------------------------------------------------------------

    def on_message(self, ws: WsClient, payload: bytes, now: float) -> None:
        client: Client = ws.owner
        n = self.n
        n.messages_received += 1
        n.bytes_received += len(payload)
        try:
            msg = orjson.loads(payload)
        except orjson.JSONDecodeError:
            self.error("bad_json_from_server")
            return
        kind = msg.get("type")
        if kind == "event":
            self.on_event(client, msg, now)
        elif kind == "ack":
            self.on_ack(client, msg, now)
        elif kind == "error":
            self.on_error(client, msg)
        elif kind == "state":
            gid = msg["game_id"]
            seq = msg["seq"]
            client.last[gid] = seq
            game = self.games.get(gid)
            if game is not None and seq > game.seq:
                game.seq = seq
        elif kind == "chat":
            n.chats_received += 1
        # welcome, presence, lobby, pong: counted only

    def on_event(self, client: Client, msg: dict[str, Any], now: float) -> None:
        self.n.events_received += 1
        gid = msg["game_id"]
        seq = msg["seq"]
        last = client.last.get(gid)
        if last is None:
            return  # not (or no longer) watching this game
        game = self.games[gid]
        if seq > game.seq:
            game.seq = seq
        if seq <= last:
            if last >= 0:
                self.n.duplicates += 1
            return
        if seq > last + 1:
            if gid not in client.resyncing:
                self.n.gaps += 1
                self.resync(client, gid, last)
            return  # the replay brings it again, in order
        client.last[gid] = seq
        sent = game.sent.get(seq)
        if sent is not None and sent[1] is not client and msg.get("kind") == "move":
            self.broadcast.add(now - sent[0])

    def on_ack(self, client: Client, msg: dict[str, Any], now: float) -> None:
        entry = self.pending.pop(msg.get("id"), None)  # type: ignore[arg-type]
        if entry is None:
            return
        kind, t0, game, _ = entry
        if kind == "move":
            assert game is not None
            self.n.moves_acked += 1
            self.ack_move.add(now - t0)
            seq = msg.get("seq") or 0
            if seq > game.seq:
                game.seq = seq
            game.moves += 1
            self.release(game)
        elif kind == "chat":
            self.n.chats_acked += 1
            self.ack_chat.add(now - t0)
        elif kind in ("subscribe", "hello"):
            for gid in list(client.resyncing) if kind == "hello" else [msg.get("game_id")]:
                client.resyncing.discard(gid)
            waiter = self.waiters.pop(client.idx, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            if kind == "hello" and client.plays:
                for game in client.games:
                    if game.busy and not game.done:
                        self.release(game)

    def on_error(self, client: Client, msg: dict[str, Any]) -> None:
        code = (msg.get("error") or {}).get("code", "unknown")
        self.error(code)
        entry = self.pending.pop(msg.get("id"), None)  # type: ignore[arg-type]
        if entry is None:
            return
        kind, _, game, _ = entry
        if kind == "move" and game is not None:
            if code == "not_your_turn":
                game.moves += 1  # a retried move that had committed: move on
            self.release(game)
        elif kind in ("subscribe", "hello"):
            waiter = self.waiters.pop(client.idx, None)
            if waiter is not None and not waiter.done():
                waiter.set_exception(RuntimeError(f"subscribe failed: {code}"))

    def release(self, game: Game) -> None:
        if game.moves >= len(self.moves):
            game.done = True
            game.busy = True
            return
        mover = game.black if game.moves % 2 == 0 else game.white
        if mover is None or mover.ws is None or not mover.ws.open:
            game.busy = True  # comes back when the mover has resumed
            return
        game.busy = False
        self.ready.append(game)

    # -- sending -----------------------------------------------------------------------------

    def send(self, client: Client, obj: dict[str, Any]) -> bool:
        ws = client.ws
        return ws is not None and ws.send_text(orjson.dumps(obj))

    def send_move(self, game: Game) -> bool:
        mover = game.black if game.moves % 2 == 0 else game.white
        assert mover is not None
        mid = next(self.ids)
        vertex = self.moves[game.moves]
        t0 = time.perf_counter()
        expected = game.seq + 1
        game.sent[expected] = (t0, mover)
        game.sent.pop(expected - 16, None)
        self.pending[mid] = ("move", t0, game, mover)
        if not self.send(
            mover,
            {
                "type": "action",
                "id": mid,
                "game_id": game.gid,
                "action": {"type": "move", "vertex": vertex},
                "request_id": f"lt{game.gid}-{game.moves}",
            },
        ):
            del self.pending[mid]
            return False
        game.busy = True
        self.n.moves_sent += 1
        return True

    def send_chat(self) -> None:
        game = self.rng.choice(self._game_list)
        client = game.black if self.rng.random() < 0.5 else game.white
        if client is None or client.ws is None or not client.ws.open:
            return
        mid = next(self.ids)
        self.pending[mid] = ("chat", time.perf_counter(), game, client)
        if self.send(client, {"type": "chat", "id": mid, "room": f"game:{game.gid}",
                              "text": f"load test line {mid}"}):  # fmt: skip
            self.n.chats_sent += 1
        else:
            del self.pending[mid]

    def resync(self, client: Client, gid: int, last: int) -> None:
        client.resyncing.add(gid)
        mid = next(self.ids)
        self.pending[mid] = ("subscribe", time.perf_counter(), self.games[gid], client)
        self.send(client, {"type": "subscribe", "id": mid, "game_id": gid, "since": last})

    # -- connections -------------------------------------------------------------------------

    def on_close(self, ws: WsClient) -> None:
        client: Client = ws.owner
        if client.ws is not ws or self.stopping:
            return
        # not one we dropped on purpose: count it and come back
        self.n.unexpected_closes += 1
        client.ws = None
        self._spawn_reconnect(client, delay=0.2)

    def _spawn_reconnect(self, client: Client, delay: float) -> None:
        task = asyncio.get_running_loop().create_task(self.reconnect(client, delay))
        self.reconnecting.add(task)
        task.add_done_callback(self.reconnecting.discard)

    async def open_client(self, client: Client) -> None:
        host, port = client.url
        token = client.player.token if client.player is not None else None
        t0 = time.perf_counter()
        client.ws = await connect(
            host, port, "/ws", token, self.on_message, self.on_close, owner=client
        )
        self.connect_s.add(time.perf_counter() - t0)

    async def start_client(self, client: Client) -> None:
        for attempt in range(5):
            try:
                await self.open_client(client)
                break
            except (OSError, TimeoutError):
                if attempt == 4:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))
        for game in client.games:
            client.last[game.gid] = -1
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.waiters[client.idx] = fut
            mid = next(self.ids)
            self.pending[mid] = ("subscribe", time.perf_counter(), game, client)
            self.send(client, {"type": "subscribe", "id": mid, "game_id": game.gid})
            await asyncio.wait_for(fut, 30)

    async def reconnect(self, client: Client, delay: float) -> None:
        await asyncio.sleep(delay)
        for _ in range(50):
            if self.stopping:
                return
            try:
                await self.open_client(client)
                break
            except (OSError, TimeoutError):
                await asyncio.sleep(0.2)
        else:
            self.error("reconnect_failed")
            return
        resume = {str(gid): last for gid, last in client.last.items()}
        client.resyncing.update(client.last)
        mid = next(self.ids)
        self.pending[mid] = ("hello", time.perf_counter(), None, client)
        self.send(client, {"type": "hello", "id": mid, "resume": resume})

    def drop(self, client: Client) -> bool:
        """Drop a connection without a close frame; it resumes right away. A player is
        dropped only between moves (no move of its game in flight); False if not dropped."""
        ws = client.ws
        if ws is None or not ws.open or client.resyncing:
            return False
        if client.plays:
            game = client.games[0]
            if game.busy and not game.done:
                return False
            if not game.done:
                game.busy = True
                with contextlib.suppress(ValueError):
                    self.ready.remove(game)
        client.ws = None  # on_close sees a stale socket: not an unexpected close
        ws.abort()
        self.n.reconnects += 1
        self._spawn_reconnect(client, delay=0.05)
        return True

    # -- the run -----------------------------------------------------------------------------

    async def setup(self) -> None:
        cfg = self.cfg
        urls = [(u.hostname or "", u.port or 0) for u in map(urlsplit, cfg.urls)]
        if cfg.bare:
            game_ids = list(range(1, cfg.games + 1))
            players: list[Player | None] = [None] * (2 * cfg.games)
        else:
            if self.settings is None:
                raise LoadError("the server's settings are needed to make accounts")
            ttl = int(cfg.duration + cfg.drain) + 600
            ps = await make_players(self.settings, 2 * cfg.games, ttl)
            game_ids = await create_games(
                cfg.urls[0], [(ps[2 * i], ps[2 * i + 1]) for i in range(cfg.games)]
            )
            players = list(ps)
        for gid in game_ids:
            self.games[gid] = Game(gid)
        self._game_list = list(self.games.values())
        for i in range(cfg.clients):
            url = urls[i % len(urls)]
            if i < 2 * cfg.games:
                client = Client(i, url, players[i])
                client.plays = True
                game = self._game_list[i // 2]
                if i % 2 == 0:
                    game.black = client
                else:
                    game.white = client
                client.games.append(game)
            else:
                client = Client(i, url, None)
                k = i - 2 * cfg.games
                for j in range(cfg.spectators):
                    game = self._game_list[(k * cfg.spectators + j) % cfg.games]
                    if game not in client.games:
                        client.games.append(game)
            for game in client.games:
                game.watchers.append(client)
            self.clients.append(client)

    async def connect_all(self) -> None:
        sem = asyncio.Semaphore(self.cfg.connect_concurrency)

        async def one(client: Client) -> None:
            async with sem:
                await self.start_client(client)

        await asyncio.gather(*(one(c) for c in self.clients))

    async def drive(self) -> None:
        cfg = self.cfg
        for game in self._game_list:
            self.release(game)
        loop = asyncio.get_running_loop()
        start = loop.time()
        end = start + cfg.duration
        tick = 0.005
        move_credit = chat_credit = drop_credit = 0.0
        drop_rate = cfg.reconnects / cfg.duration
        spectators = [c for c in self.clients if not c.plays] or self.clients
        last = start
        next_at = start
        while True:
            now = loop.time()
            if now >= end:
                break
            dt = now - last
            last = now
            # at most one second of backlog: a stalled loop catches up, then gives up
            move_credit = min(move_credit + cfg.rate * dt, max(1.0, cfg.rate))
            while move_credit >= 1.0:
                if not self.ready:
                    self.n.starved += int(move_credit)
                    move_credit -= int(move_credit)
                    break
                game = self.ready.popleft()
                if game.busy or game.done:
                    continue
                move_credit -= 1.0
                if not self.send_move(game):
                    game.busy = True
            chat_credit += cfg.chat_rate * dt
            while chat_credit >= 1.0:
                chat_credit -= 1.0
                self.send_chat()
            drop_credit += drop_rate * dt
            while drop_credit >= 1.0:
                # mostly spectators; a player now and then (its game waits for it)
                pool = self.clients if self.rng.random() < 0.2 else spectators
                for _ in range(10):
                    if self.drop(self.rng.choice(pool)):
                        break
                drop_credit -= 1.0
            next_at += tick
            await asyncio.sleep(max(0.0, next_at - loop.time()))

    async def drain(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.drain
        while loop.time() < deadline:
            if not self.pending and not self.reconnecting and self._all_caught_up():
                return
            await asyncio.sleep(0.05)

    def _all_caught_up(self) -> bool:
        for client in self.clients:
            for game in client.games:
                if client.last.get(game.gid, -1) < game.seq:
                    return False
        return True

    def lost(self) -> int:
        total = 0
        for client in self.clients:
            for game in client.games:
                total += max(0, game.seq - max(0, client.last.get(game.gid, 0)))
        return total

    async def close_all(self) -> None:
        self.stopping = True
        for task in list(self.reconnecting):
            task.cancel()
        for client in self.clients:
            if client.ws is not None:
                client.ws.close()
        await asyncio.sleep(0.2)
        for client in self.clients:
            if client.ws is not None:
                client.ws.abort()


def _raise_nofile(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _rss_kib(pid: int | str = "self") -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


async def run_loadtest(
    cfg: LoadConfig,
    settings: Settings | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run one load test and return its report (see :mod:`goapp.loadtest.report`)."""
    cfg.check()
    _raise_nofile(cfg.clients + 256)
    run = Run(cfg, settings)
    say = progress or (lambda _msg: None)
    t_setup = time.perf_counter()
    await run.setup()
    setup_s = time.perf_counter() - t_setup
    say(f"setup: {cfg.games} games, {cfg.clients} clients ({setup_s:.1f} s)")
    t_conn = time.perf_counter()
    try:
        await run.connect_all()
        connect_s = time.perf_counter() - t_conn
        say(f"connected {len(run.clients)} clients in {connect_s:.1f} s")
        if cfg.gc_freeze:
            gc.collect()
            gc.freeze()
        before = _snapshot(run)
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        await run.drive()
        drive_s = time.perf_counter() - t0
        gen_cpu_s = time.process_time() - cpu0
        after = _snapshot(run)
        say(f"drove {drive_s:.1f} s; draining")
        await run.drain()
        drain_s = time.perf_counter() - t0 - drive_s
    finally:
        await run.close_all()
        if cfg.gc_freeze:
            gc.unfreeze()
    n = run.n
    lost = run.lost()
    in_flight = len([e for e in run.pending.values() if e[0] in ("move", "chat")])
    report: dict[str, Any] = {
        "config": {k: v for k, v in asdict(cfg).items()},
        "setup_s": round(setup_s, 3),
        "connect_s": round(connect_s, 3),
        "duration_s": round(drive_s, 3),
        "drain_s": round(drain_s, 3),
        "clients": len(run.clients),
        "players": 2 * cfg.games,
        "spectator_clients": len(run.clients) - 2 * cfg.games,
        "games": cfg.games,
        "moves_sent": n.moves_sent,
        "moves_acked": n.moves_acked,
        "moves_per_s": round((after["moves_acked"] - before["moves_acked"]) / drive_s, 1),
        "moves_sent_per_s": round((after["moves_sent"] - before["moves_sent"]) / drive_s, 1),
        "messages_received": n.messages_received,
        "messages_per_s": round(
            (after["messages_received"] - before["messages_received"]) / drive_s, 1
        ),
        "bytes_received": n.bytes_received,
        "events_received": n.events_received,
        "chats_sent": n.chats_sent,
        "chats_acked": n.chats_acked,
        "chats_received": n.chats_received,
        "reconnects": n.reconnects,
        "unexpected_closes": n.unexpected_closes,
        "starved": n.starved,
        "unanswered": in_flight,
        "lost": lost,
        "duplicated": n.duplicates,
        "gaps": n.gaps,
        "errors": dict(sorted(n.errors.items())),
        "latency_ms": {
            "action_ack": run.ack_move.summary(),
            "chat_ack": run.ack_chat.summary(),
            "move_broadcast": run.broadcast.summary(),
            "connect": run.connect_s.summary(),
        },
        "generator": {
            "pid": os.getpid(),
            "rss_kib": _rss_kib(),
            "cpu_s_driving": round(gen_cpu_s, 2),
            "cpu_share_driving": round(gen_cpu_s / drive_s, 3),
        },
    }
    report["ok"] = lost == 0 and n.duplicates == 0 and in_flight == 0 and not n.errors
    return report


def _snapshot(run: Run) -> dict[str, int]:
    return {
        "moves_sent": run.n.moves_sent,
        "moves_acked": run.n.moves_acked,
        "messages_received": run.n.messages_received,
    }
