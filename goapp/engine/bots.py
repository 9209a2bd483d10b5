"""Bots: the computer as a player, and the dead-stone proposal of a scoring phase.

A bot game is an ordinary game whose ``black_bot`` or ``white_bot`` names a bot
(``"katago:easy"``, ``"gnugo:easy"``: the engine kind and a level of :data:`LEVELS`). The
:class:`BotDriver` plays its side through the same path as a human
(:meth:`goapp.game.service.GameService.act_as_bot`):

* it listens to every commit (a ``GameService.on_events`` hook) and *schedules* a worker
  task for the game (never acting inside the hook, which runs under the game's lock);
* one worker per game at a time reads the game's state and does the one thing the bot has
  to do, then looks again: move or pass when it is the bot's turn (after the start, a human
  move, an undo, a resumed play), accept the human's undo request, or -- in the scoring
  phase -- mark the dead stones the engine sees (ownership) and accept;
* a move is computed on a snapshot: if the game changed meanwhile (the human asked for an
  undo, resigned...) the move is thrown away and the worker looks again;
* engine errors (down, restarting, busy, timed out) are retried with backoff (0.5 s doubling
  to 30 s) for as long as the game is active; the engine itself resends the query of a
  crashed KataGo once;
* :meth:`BotDriver.resume` (at start-up) kicks every active bot game, so a game whose bot
  was to move when the server stopped goes on.

Several instances (``holder`` set: the instance id): a step that has something to do first
takes the lease ``bot:GAME`` (:meth:`Store.acquire_lease`, a conditional upsert in the
database) and renews it while the engine thinks, so only one instance works on a game's turn
at a time; an instance that finds the lease held leaves the game alone. Each instance also
runs :meth:`BotDriver.sweep`: every few seconds it kicks every active bot game nobody here is
working on, so when an instance dies mid-think its lease expires (``lease_ttl``) and another
instance plays the move. Two moves for one turn are impossible either way: the request id
``bot-COLOR-SEQ`` and the conditional append of the next seq make the second one a no-op.

The bot accepts only the marking it proposed; a player who disagrees resumes play (the bot
plays on and the next two passes score again) or resigns. See docs/engine.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from goapp.engine.errors import (
    EngineBusyError,
    EngineError,
    EngineProtocolError,
    EngineUnavailableError,
    QueryCancelledError,
)
from goapp.engine.facade import Estimate, GameEngine, Position, dead_from_ownership
from goapp.engine.katago import PRIORITY_BOT, PRIORITY_SCORE
from goapp.game.errors import GameError, IllegalMove
from goapp.game.events import GameCreated, PlayerColor, StoredEvent
from goapp.game.service import GameService
from goapp.game.state import GameState, opponent

__all__ = [
    "LEVELS",
    "BotDriver",
    "BotLevel",
    "Estimator",
    "EstimatorBusy",
    "bot_name",
    "level_of",
    "propose_dead",
]

log = logging.getLogger("goapp.bots")


@dataclass(frozen=True, slots=True)
class BotLevel:
    """A named strength: KataGo visits per move, or GNU Go's ``level`` (0-10)."""

    name: str
    visits: int
    gnugo_level: int
    description: str


LEVELS: dict[str, BotLevel] = {
    lvl.name: lvl
    for lvl in (
        BotLevel("beginner", 2, 1, "KataGo's first instinct (2 visits): the network's policy"),
        BotLevel("easy", 8, 4, "8 visits a move"),
        BotLevel("medium", 32, 7, "32 visits a move"),
        BotLevel("strong", 128, 10, "128 visits a move (seconds a move on a CPU)"),
    )
}
DEFAULT_LEVEL = "easy"


def bot_name(kind: str, level: str) -> str:
    """The stored name of a bot: ``katago:easy``, ``gnugo:strong``."""
    return f"{'katago' if kind == 'remote' else kind}:{level}"


def level_of(name: str) -> BotLevel:
    """The level of a stored bot name (unknown levels play as :data:`DEFAULT_LEVEL`)."""
    _, _, level = name.partition(":")
    return LEVELS.get(level, LEVELS[DEFAULT_LEVEL])


async def propose_dead(
    engine: GameEngine, state: GameState, *, tag: str | None = None, priority: int = PRIORITY_SCORE
) -> Estimate:
    """The engine's estimate of ``state``'s position with ``dead`` filled in (from KataGo's
    ownership, or GNU Go's ``final_status_list dead``). ``priority``: ``PRIORITY_BOT`` for
    a bot's own proposal (a bot game waits for it), else behind every bot move."""
    est = await engine.estimate(Position.from_state(state), tag=tag, priority=priority)
    if est.dead is None:
        dead = dead_from_ownership(state, est.ownership or [])
        est = Estimate(
            ownership=est.ownership, dead=dead, score_lead=est.score_lead, winrate=est.winrate
        )
    # keep only points that hold a stone now (GNU Go may name vertices of empty points)
    board = state.game.board
    alive = {v for v in est.dead or [] if board.get(state.game.to_loc(v)) in (1, 2)}
    return Estimate(
        ownership=est.ownership,
        dead=sorted(alive, key=lambda v: state.game.to_loc(v)),
        score_lead=est.score_lead,
        winrate=est.winrate,
    )


class EstimatorBusy(EngineBusyError):
    """Too many score estimates are waiting for the engine: try again later."""


class Estimator:
    """``GET /api/games/{id}/estimate``: the engine's ownership and proposed dead stones for
    a game's current position, cached per ``(game_id, seq)`` (a finished game's position is
    estimated once, however many ask). At most ``parallel`` run at once and ``max_waiting``
    wait; more raise :class:`EstimatorBusy` at once instead of queueing without bound.
    Requests for a position already being estimated share that one query. Estimates run at
    ``PRIORITY_SCORE``: behind every bot move (see docs/engine.md)."""

    def __init__(
        self,
        engine: GameEngine,
        *,
        cache_size: int = 256,
        parallel: int = 1,
        max_waiting: int = 4,
    ) -> None:
        self.engine = engine
        self.max_waiting = max_waiting
        self.computed = 0
        self.refused = 0
        self._cache: OrderedDict[tuple[int, int], Estimate] = OrderedDict()
        self._cache_size = cache_size
        self._slots = asyncio.Semaphore(parallel)
        #: Estimates waiting for a slot (at most ``max_waiting``).
        self.waiting = 0
        self._inflight: dict[tuple[int, int], asyncio.Future[Estimate]] = {}

    async def estimate(self, state: GameState) -> Estimate:
        key = (state.game_id, state.last_seq)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        shared = self._inflight.get(key)
        if shared is not None:
            return await asyncio.shield(shared)
        if self._slots.locked() and self.waiting >= self.max_waiting:
            self.refused += 1
            raise EstimatorBusy(
                f"too many score estimates are waiting ({self.waiting}); try again later"
            )
        future: asyncio.Future[Estimate] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            est = await self._compute(state)
        except BaseException as exc:
            error = (
                exc
                if isinstance(exc, EngineError)
                else EngineUnavailableError("the estimate was abandoned; try again")
            )
            future.set_exception(error)
            future.exception()  # retrieved: sharing requests may have gone
            raise
        finally:
            del self._inflight[key]
        future.set_result(est)
        self._cache[key] = est
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return est

    async def _compute(self, state: GameState) -> Estimate:
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        try:
            self.computed += 1
            return await propose_dead(self.engine, state, tag=f"estimate:{state.game_id}")
        finally:
            self._slots.release()


class BotDriver:
    """Plays the bots' sides of games; see the module docstring."""

    def __init__(
        self,
        games: GameService,
        engine: GameEngine | None,
        *,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        holder: str | None = None,
        lease_ttl: float = 10.0,
    ) -> None:
        self.games = games
        self.engine = engine
        #: this instance's name in leases; None: the only instance, no leases
        self.holder = holder
        self.lease_ttl = lease_ttl
        self.leases_refused = 0
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._dirty: set[int] = set()
        self._bot_games: OrderedDict[int, bool] = OrderedDict()
        self._proposals: dict[int, tuple[int, list[str]]] = {}
        self._closed = False
        self._release_leases = True  # when a worker leaves a turn (close may say otherwise)
        self.moves_played = 0
        self.retries = 0
        self.errors = 0

    # -- wiring ----------------------------------------------------------------------------

    def attach(self) -> None:
        """Subscribe to the game service's commits."""
        if self._on_events not in self.games.on_events:
            self.games.on_events.append(self._on_events)

    def detach(self) -> None:
        with contextlib.suppress(ValueError):
            self.games.on_events.remove(self._on_events)

    async def _on_events(self, events: list[StoredEvent]) -> None:
        if self._closed or not events:
            return
        game_id = events[0].game_id
        first = events[0].event
        if isinstance(first, GameCreated):
            self._remember(game_id, first.black_bot is not None or first.white_bot is not None)
        if self._bot_games.get(game_id, True):  # unknown games are looked at once
            self.kick(game_id)

    def _remember(self, game_id: int, is_bot: bool) -> None:
        self._bot_games[game_id] = is_bot
        self._bot_games.move_to_end(game_id)
        while len(self._bot_games) > 10000:
            self._bot_games.popitem(last=False)

    def kick(self, game_id: int) -> None:
        """Make sure a worker looks at the game (now, or again after its current step)."""
        if self._closed:
            return
        task = self._workers.get(game_id)
        if task is not None and not task.done():
            self._dirty.add(game_id)
            return
        self._workers[game_id] = asyncio.create_task(self._work(game_id), name=f"bot-{game_id}")

    async def resume(self) -> int:
        """Kick every active game with a bot (at start-up); returns how many."""
        rows = await self.games.store.list_active_bot_games()
        for row in rows:
            self._remember(row.id, True)
            self.kick(row.id)
        if rows:
            log.info("resuming bot games", extra={"games": len(rows)})
        return len(rows)

    async def sweep(self, interval: float = 2.0) -> None:
        """Run forever: every ``interval`` seconds kick the active bot games that no worker
        here is on (a game another instance left mid-turn, its lease expired)."""
        while not self._closed:
            await asyncio.sleep(interval)
            try:
                rows = await self.games.store.list_active_bot_games()
            except Exception as exc:
                log.warning("bot sweep failed", extra={"error": str(exc)})
                continue
            for row in rows:
                task = self._workers.get(row.id)
                if task is None or task.done():
                    self._remember(row.id, True)
                    self.kick(row.id)

    @contextlib.asynccontextmanager
    async def _leased(self, game_id: int) -> AsyncIterator[bool]:
        """Hold the game's lease for the body (renewed meanwhile); yields False, holding
        nothing, when another instance holds it."""
        if self.holder is None:
            yield True
            return
        store = self.games.store
        name, holder = f"bot:{game_id}", self.holder
        ttl_ms = int(self.lease_ttl * 1000)
        if not await store.acquire_lease(name, holder, ttl_ms, _now_ms()):
            self.leases_refused += 1
            yield False
            return

        async def renew() -> None:
            while True:
                await asyncio.sleep(self.lease_ttl / 3)
                with contextlib.suppress(Exception):
                    await store.acquire_lease(name, holder, ttl_ms, _now_ms())

        renewer = asyncio.get_running_loop().create_task(renew(), name=f"bot-lease-{game_id}")
        try:
            yield True
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            if self._release_leases:  # also on a clean shutdown (see close)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(store.release_lease(name, holder), 2.0)

    async def idle(self) -> None:
        """Wait until no worker runs (tests)."""
        while True:
            tasks = [t for t in self._workers.values() if not t.done()]
            if not tasks:
                return
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self, *, release_leases: bool = True) -> None:
        """Stop every worker. The leases of the turns they were on are released, so that
        another instance's sweep takes those turns over within seconds rather than when
        the leases expire; a move a cancelled worker had in flight is harmless, since the
        append is conditional on the seq. ``release_leases=False`` leaves them to expire,
        as a crash does (tests)."""
        self._closed = True
        self._release_leases = release_leases
        self.detach()
        tasks = list(self._workers.values())
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._workers.clear()

    # -- the worker ------------------------------------------------------------------------

    async def _work(self, game_id: int) -> None:
        delay = self.backoff_initial
        try:
            while not self._closed:
                self._dirty.discard(game_id)
                try:
                    acted = await self._step(game_id)
                except (QueryCancelledError, asyncio.CancelledError):
                    raise
                except EngineError as exc:
                    self.retries += 1
                    log.warning(
                        "bot move failed; retrying",
                        extra={"game_id": game_id, "error": str(exc), "retry_in_s": delay},
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.backoff_max)
                    continue
                except GameError as exc:
                    # the game moved on under us (finished, not our turn any more...): look again
                    log.info("bot action refused", extra={"game_id": game_id, "error": str(exc)})
                    acted = True
                delay = self.backoff_initial
                if not acted and game_id not in self._dirty:
                    return
        except QueryCancelledError:
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            self.errors += 1
            log.exception("bot worker crashed", extra={"game_id": game_id})
        finally:
            if self._workers.get(game_id) is asyncio.current_task():
                del self._workers[game_id]
            if game_id in self._dirty and not self._closed:
                self._dirty.discard(game_id)
                self.kick(game_id)

    async def _step(self, game_id: int) -> bool:
        """Do the bot's next action in the game; False when there is nothing to do."""
        state = await self.games.state(game_id)
        sides: tuple[PlayerColor, PlayerColor] = ("black", "white")
        bots = [c for c in sides if state.bot_color(c) is not None]
        self._remember(game_id, bool(bots))
        if not bots or state.is_over:
            if state.is_over and self.engine is not None:
                self.engine.cancel_tag(str(game_id))
            self._proposals.pop(game_id, None)
            return False
        if self.engine is None:
            raise EngineUnavailableError("no engine configured")
        if not _has_duty(state, bots):
            return False
        async with self._leased(game_id) as mine:
            if not mine:
                return False  # another instance is on it; the sweep looks again later
            fresh = await self.games.state(game_id)
            return await self._duty(fresh, bots)

    async def _duty(self, state: GameState, bots: list[PlayerColor]) -> bool:
        game_id = state.game_id
        if state.is_over:
            return False
        if state.phase == "playing":
            req = state.undo_request
            if req is not None and state.bot_color(opponent(req[0])) is not None:
                await self.games.act_as_bot(
                    game_id,
                    opponent(req[0]),
                    {"type": "undo_accept"},
                    request_id=f"bot-{opponent(req[0])}-undo-{state.last_seq}",
                )
                return True
            color = state.to_move
            if state.bot_color(color) is None:
                return False
            return await self._move(state, color)
        if state.phase == "scoring":
            for side in bots:
                if side not in state.accepted and await self._score(state, side):
                    return True
        return False

    async def _move(self, state: GameState, color: PlayerColor) -> bool:
        assert self.engine is not None
        game_id = state.game_id
        seq = state.last_seq
        bot = state.setup.black_bot if color == "black" else state.setup.white_bot
        level = level_of(bot or "")
        pos = Position.from_state(state)
        try:
            vertex = await self.engine.genmove(
                pos, visits=level.visits, gnugo_level=level.gnugo_level, tag=str(game_id)
            )
        except EngineProtocolError as exc:
            log.warning(
                "engine refused the position; passing",
                extra={"game_id": game_id, "error": str(exc)},
            )
            vertex = "pass"
        fresh = await self.games.state(game_id)
        if fresh.last_seq != seq:
            return True  # the game changed while the engine thought: look again
        rid = f"bot-{color}-{seq}"
        action: dict[str, Any] = (
            {"type": "pass"} if vertex.lower() == "pass" else {"type": "move", "vertex": vertex}
        )
        try:
            await self.games.act_as_bot(game_id, color, action, request_id=rid)
        except IllegalMove as exc:
            log.warning(
                "engine move refused by the rules; passing",
                extra={"game_id": game_id, "vertex": vertex, "error": str(exc)},
            )
            await self.games.act_as_bot(game_id, color, {"type": "pass"}, request_id=rid)
        self.moves_played += 1
        return True

    async def _score(self, state: GameState, color: PlayerColor) -> bool:
        """Mark the engine's dead stones once per scoring phase, then accept that marking."""
        assert self.engine is not None
        game_id = state.game_id
        proposal = self._proposals.get(game_id)
        start = _scoring_start(state)
        if proposal is None or proposal[0] != start:
            est = await propose_dead(self.engine, state, tag=str(game_id), priority=PRIORITY_BOT)
            fresh = await self.games.state(game_id)
            if fresh.last_seq != state.last_seq:
                return True
            proposal = (start, list(est.dead or []))
            self._proposals[game_id] = proposal
            current = set(state.marking())
            wanted = set(proposal[1])
            if current != wanted:
                await self._toggle(state, color, current, wanted)
                return True
        if state.marking() != sorted(proposal[1], key=state.game.to_loc):
            return False  # the opponent changed the marking: the bot does not agree
        await self.games.act_as_bot(
            game_id, color, {"type": "accept_score"}, request_id=f"bot-{color}-{state.last_seq}"
        )
        return True

    async def _toggle(
        self, state: GameState, color: PlayerColor, current: set[str], wanted: set[str]
    ) -> None:
        """Toggle chains until the marking is ``wanted`` (one ``mark_dead`` per chain)."""
        g = state.game
        done: set[str] = set()
        for vertex in sorted(current ^ wanted, key=g.to_loc):
            if vertex in done:
                continue
            chain = {g.vertex(loc) for loc in g.board.chain(g.to_loc(vertex))}
            done |= chain
            fresh = await self.games.state(state.game_id)
            await self.games.act_as_bot(
                state.game_id,
                color,
                {"type": "mark_dead", "vertex": vertex},
                request_id=f"bot-{color}-{fresh.last_seq}",
            )


def _has_duty(state: GameState, bots: list[PlayerColor]) -> bool:
    """Whether a bot of ``state`` has something to do (cheap: no engine, no lease)."""
    if state.phase == "playing":
        req = state.undo_request
        if req is not None and state.bot_color(opponent(req[0])) is not None:
            return True
        return state.bot_color(state.to_move) is not None
    if state.phase == "scoring":
        return any(side not in state.accepted for side in bots)
    return False


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _scoring_start(state: GameState) -> int:
    """An id of the current scoring phase: the turn number at which it started."""
    return state.game.move_number
