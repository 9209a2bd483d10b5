"""The game service: the only writer of game state.

    service = GameService(store)
    state = await service.create_game(alice.id, bob.id, user_color="black", size=9,
                                      rules="japanese", komi=6.5, time_control=ByoYomi(...))
    events = await service.act(state.game_id, alice.id, {"type": "move", "vertex": "E5"},
                               request_id="c1-17")
    await service.check_timeouts()            # from a periodic task, on every instance

How an action is applied (``act``):

1. The game's :class:`GameState` comes from an in-memory LRU cache, or is folded from the
   log on a miss. Actions on one game are serialised by a per-game lock in this process.
2. :func:`goapp.game.actions.decide` validates the action with the rules core and the clock
   and returns the events to append (or raises a :class:`GameError`). An error decided on a
   cached state is checked again after catching up with the log (another instance may have
   moved), so a stale cache never gives a wrong answer.
3. The events are appended with ``seq = last_seq + 1, ...`` in one ``append_events`` call,
   together with the ``games`` row change (status, result, finished_at, deadline) and a
   status condition, in the same transaction. The insert of the next seq is the lock
   between instances: on :class:`~goapp.store.ConflictError` the state is caught up from the
   log, the action decided again (revalidated) and appended once more; a second conflict
   raises :class:`ConcurrentUpdate` (code ``conflict``).
4. After the commit the events are folded into the cached state and handed to every
   ``on_events`` hook (in seq order, under the game's lock: hooks must be quick, e.g. put
   the events on the bus, and must not await an action on the same game -- schedule a task
   instead, or it deadlocks). Hook errors are logged, never raised: the action is
   committed.

Idempotency: the client's ``request_id`` is stored in the payload of every event the action
produced (with the ``user_id``). The fold keeps a map ``(user_id, request_id) -> seqs``, so a
retry with the same id returns the original events instead of acting twice, on any instance
(the map is rebuilt from the log). The retry is matched by id only: a different action with a
reused id also gets the original events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import msgspec

from goapp.game.actions import (
    Action,
    decide,
    decode_action,
    presence_events,
    scoring_timeout_events,
    timeout_events,
)
from goapp.game.errors import (
    BadAction,
    ConcurrentUpdate,
    FlagFallenError,
    GameError,
    GameNotFound,
)
from goapp.game.events import (
    Aborted,
    DeadStonesMarked,
    GameCreated,
    GameEvent,
    GameFinished,
    GameStarted,
    PlayerColor,
    PlayerLeft,
    PlayerReturned,
    PlayResumed,
    ScoreAccepted,
    ScoringStarted,
    StoredEvent,
    clock_view,
    encode_payload,
    event_kind,
)
from goapp.game.state import GameState, GameView
from goapp.rules import DEFAULT_KOMI, MAX_BOARD_SIZE, MIN_BOARD_SIZE, Game, Rules
from goapp.rules.clock import TimeControl, TimeControlError, decode_time_control
from goapp.store import (
    Challenge,
    ConflictError,
    GameChange,
    GameStart,
    NewEvent,
    NewGame,
    NotFoundError,
    Store,
)

__all__ = ["BadGameSettings", "EventHook", "GameService", "ms_to_dt", "now_ms"]

log = logging.getLogger("goapp.game")

EventHook = Callable[[list[StoredEvent]], Awaitable[None]]
"""An ``on_events`` subscriber: called with the events of one commit, in seq order."""

MAX_REQUEST_ID = 128

#: Game states kept in memory (LRU). It must hold every game in progress on this instance:
#: a miss reads the game's whole log and folds it through the rules core, which costs about
#: 40 us a move already played (4 ms for a 100-move game). With the old default of 1,024, a
#: server with 2,000 active games missed on nearly every move (the games take turns, so the
#: least recently used one is always the next to move) and its CPU per move grew with the
#: games' length: 1.0 ms a move in the first minute, 2 ms and more after five (benches/
#: README.md, "Load"). A 19x19 state takes about 10 KB plus 0.4 KB a move played (75 KB at
#: move 150), so a full cache of long games is a few hundred MB at most.
DEFAULT_CACHE_SIZE = 4096
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class BadGameSettings(GameError):
    """``create_game`` got settings that make no game (size, rules, komi, handicap...)."""

    code = "bad_settings"


def now_ms() -> int:
    """The wall clock in epoch milliseconds (the server's clock timeline)."""
    return time.time_ns() // 1_000_000


def ms_to_dt(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


#: Events that leave the ``games.deadline`` as it is (the scoring phase's bound, or the
#: clock's deadline, does not move when someone marks a stone or leaves).
_KEEPS_DEADLINE = (DeadStonesMarked, ScoreAccepted, PlayerLeft, PlayerReturned)


def _row_change(events: Sequence[GameEvent]) -> GameChange:
    """The ``games`` row change that goes with appending ``events``. The ``deadline`` is
    when the sweeper must look at the game: the clock's deadline while playing, the end of
    the scoring phase's bound while scoring."""
    fields: dict[str, Any] = {}
    for e in events:
        if isinstance(e, _KEEPS_DEADLINE):
            continue
        if isinstance(e, ScoringStarted):
            fields["status"] = "scoring"
            fields["deadline"] = None if e.ends_at_ms is None else ms_to_dt(e.ends_at_ms)
            continue
        if isinstance(e, GameStarted):
            fields["status"] = "playing"
            fields["started_at"] = ms_to_dt(e.at_ms)
        elif isinstance(e, ScoringStarted):
            fields["status"] = "scoring"
        elif isinstance(e, PlayResumed):
            fields["status"] = "playing"
        elif isinstance(e, GameFinished):
            fields["status"] = "finished"
            fields["result"] = e.result
            fields["finished_at"] = ms_to_dt(e.at_ms)
        elif isinstance(e, Aborted):
            fields["status"] = "aborted"
            fields["finished_at"] = ms_to_dt(e.at_ms)
        if e.clock is not None:
            d = e.clock.deadline_ms
            fields["deadline"] = None if d is None else ms_to_dt(d)
    return GameChange(**fields)


def _stamp(events: list[GameEvent], user_id: int | None, request_id: str | None) -> list[GameEvent]:
    return [msgspec.structs.replace(e, user_id=user_id, request_id=request_id) for e in events]


def challenge_settings(params: Mapping[str, Any]) -> dict[str, Any]:
    """:meth:`GameService.create_game`'s game settings from a challenge's stored parameters
    (the challenger's colour is ``user_color``); raises KeyError when one is missing."""
    return {
        "user_color": params["color"],
        "size": params["size"],
        "rules": params["rules"],
        "komi": params["komi"],
        "handicap": params["handicap"],
        "time_control": params["time_control"],
    }


class GameService:
    """Creates games, applies actions, ends games on time. See the module docstring.

    ``clock_fn`` returns the server time in epoch milliseconds (tests pass a fake clock);
    ``cache_size`` is how many game states stay in memory. ``abandon_timeout_ms``: how long
    after ``player_left`` the opponent may claim the win; ``scoring_timeout_ms``: the bound
    of a scoring phase (``None``: unbounded). Both are written into the events, so every
    instance (and a restart) agrees on them.
    """

    def __init__(
        self,
        store: Store,
        *,
        clock_fn: Callable[[], int] = now_ms,
        cache_size: int = DEFAULT_CACHE_SIZE,
        rng: random.Random | None = None,
        abandon_timeout_ms: int = 60_000,
        scoring_timeout_ms: int | None = None,
    ) -> None:
        self.store = store
        self.clock_fn = clock_fn
        self.abandon_timeout_ms = abandon_timeout_ms
        self.scoring_timeout_ms = scoring_timeout_ms
        self.cache_size = max(1, cache_size)
        self.on_events: list[EventHook] = []
        self._rng = rng if rng is not None else random.SystemRandom()
        self._cache: OrderedDict[int, GameState] = OrderedDict()
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()

    # -- creating --------------------------------------------------------------------------

    def _new_game(
        self,
        user_id: int | None,
        opponent_id: int | None,
        *,
        user_color: Literal["black", "white", "random"] = "random",
        size: int = 19,
        height: int | None = None,
        rules: str = "japanese",
        komi: float | None = None,
        handicap: int = 0,
        time_control: TimeControl | dict[str, Any] | None = None,
        user_bot: str | None = None,
        opponent_bot: str | None = None,
        rated: bool = True,
    ) -> tuple[GameStart, GameCreated, GameStarted]:
        """What :meth:`create_game` writes: the game to start in one store transaction, and
        its first two events. Raises :class:`BadGameSettings` for impossible settings."""
        width = size
        h = size if height is None else height
        if not (
            MIN_BOARD_SIZE <= width <= MAX_BOARD_SIZE and MIN_BOARD_SIZE <= h <= MAX_BOARD_SIZE
        ):
            raise BadGameSettings(
                f"board size must be {MIN_BOARD_SIZE} to {MAX_BOARD_SIZE}, not {width}x{h}"
            )
        try:
            rules_obj = Rules.from_name(rules)
        except ValueError as exc:
            raise BadGameSettings(str(exc)) from None
        # korean is the same combination as japanese: keep the name the players chose
        canonical = "korean" if rules.strip().lower() in ("korean", "kr") else rules_obj.name
        if komi is None:
            komi = 0.5 if handicap else DEFAULT_KOMI.get(canonical, 7.5)
        if not math.isfinite(komi) or abs(komi) > 1000 or (komi * 2) != int(komi * 2):
            raise BadGameSettings(f"komi must be a multiple of 0.5, not {komi}")
        try:
            Game(width, h, rules=rules_obj, komi=komi, handicap=handicap)
        except ValueError as exc:
            raise BadGameSettings(str(exc)) from None
        control: TimeControl | None
        try:
            control = (
                decode_time_control(time_control)
                if isinstance(time_control, dict)
                else time_control
            )
        except TimeControlError as exc:
            raise BadGameSettings(f"bad time control: {exc}") from None
        if user_id is not None and user_id == opponent_id:
            raise BadGameSettings("a player cannot play against themselves")
        color = user_color
        if color == "random":
            color = "black" if self._rng.random() < 0.5 else "white"
        if color == "black":
            black_id, white_id, black_bot, white_bot = user_id, opponent_id, user_bot, opponent_bot
        elif color == "white":
            black_id, white_id, black_bot, white_bot = opponent_id, user_id, opponent_bot, user_bot
        else:
            raise BadGameSettings(f"colour must be black, white or random, not {user_color!r}")
        rated = rated and black_bot is None and white_bot is None
        now = self.clock_fn()
        created = GameCreated(
            at_ms=now,
            black_id=black_id,
            white_id=white_id,
            black_bot=black_bot,
            white_bot=white_bot,
            width=width,
            height=h,
            rules=canonical,
            komi=float(komi),
            handicap=handicap,
            time_control=control,
            rated=rated,
        )
        first = GameState(0, created)
        started = GameStarted(
            at_ms=now, clock=clock_view(first.clock.start(now), now), first=first.clock.to_move
        )
        start = GameStart(
            NewGame(
                width=width,
                height=h,
                komi=float(komi),
                rules=canonical,
                handicap=handicap,
                time_control=control,
                black_id=black_id,
                white_id=white_id,
                black_bot=black_bot,
                white_bot=white_bot,
                status="open",
            ),
            # set before the game starts, so no result can be rated meanwhile
            rated=rated,
            events=(
                NewEvent(1, event_kind(created), encode_payload(created)),
                NewEvent(2, event_kind(started), encode_payload(started)),
            ),
            change=_row_change([created, started]),
            at=datetime.now(UTC),
        )
        return start, created, started

    async def _started(
        self, game_id: int, start: GameStart, created: GameCreated, started: GameStarted
    ) -> GameState:
        """Cache and publish a game that ``start`` created and started (committed)."""
        state = GameState(game_id, created)
        state.apply(started, 2)
        at = start.at or datetime.now(UTC)
        stored = [
            StoredEvent(game_id=game_id, seq=1, created_at=at, event=created),
            StoredEvent(game_id=game_id, seq=2, created_at=at, event=started),
        ]
        async with self._lock(game_id):
            self._put(state)
            await self._publish(stored)
        return state

    async def create_game(
        self,
        user_id: int | None,
        opponent_id: int | None,
        *,
        user_color: Literal["black", "white", "random"] = "random",
        size: int = 19,
        height: int | None = None,
        rules: str = "japanese",
        komi: float | None = None,
        handicap: int = 0,
        time_control: TimeControl | dict[str, Any] | None = None,
        user_bot: str | None = None,
        opponent_bot: str | None = None,
        rated: bool = True,
    ) -> GameState:
        """Create and start a game between ``user_id`` (playing ``user_color``) and
        ``opponent_id`` (a side may be a bot instead: ``*_bot`` with the id ``None``).

        Writes the ``games`` row, its ``rated`` flag, then ``game_created`` (seq 1) and
        ``game_started`` (seq 2) with the row's move to ``playing``, all in one transaction.
        ``komi`` defaults to the ruleset's (0.5 with handicap stones). ``rated=False`` (or a
        bot on either side) makes a game that moves no ratings (``games.rated``). Raises
        :class:`BadGameSettings` for impossible settings.
        """
        start, created, started = self._new_game(
            user_id,
            opponent_id,
            user_color=user_color,
            size=size,
            height=height,
            rules=rules,
            komi=komi,
            handicap=handicap,
            time_control=time_control,
            user_bot=user_bot,
            opponent_bot=opponent_bot,
            rated=rated,
        )
        try:
            row = await self.store.start_game(start)
        except NotFoundError as exc:
            raise BadGameSettings(f"unknown player: {exc}") from None
        return await self._started(row.id, start, created, started)

    async def accept_challenge(
        self, challenge: Challenge, acceptor_id: int
    ) -> tuple[Challenge, GameState]:
        """Accept ``challenge`` for ``acceptor_id`` and start its game (the challenger
        plays ``params["color"]``), all in one store transaction: exactly one of concurrent
        acceptors wins, the others get ConflictError; when the game cannot start
        (:class:`BadGameSettings`) nothing is written and the challenge stays open."""
        p = challenge.params
        try:
            start, created, started = self._new_game(
                challenge.challenger_id,
                acceptor_id,
                **challenge_settings(p),
                rated=bool(p.get("rated", True)),
            )
        except (KeyError, TypeError) as exc:
            raise BadGameSettings(f"the challenge's settings make no game: {exc!r}") from None
        try:
            accepted = await self.store.accept_challenge(challenge.id, acceptor_id, game=start)
        except NotFoundError as exc:
            if not str(exc).startswith("challenge "):
                raise BadGameSettings(f"unknown player: {exc}") from None
            raise
        assert accepted.game_id is not None
        return accepted, await self._started(accepted.game_id, start, created, started)

    # -- acting ----------------------------------------------------------------------------

    async def act(
        self,
        game_id: int,
        user_id: int | None,
        action: Action | bytes | str | msgspec.Raw | dict[str, Any],
        *,
        request_id: str | None = None,
        lag_ms: int = 0,
    ) -> list[StoredEvent]:
        """Apply ``action`` by ``user_id`` to the game; returns the committed events.

        ``action`` is a struct or its JSON (bytes, str or a decoded dict). Raises a
        :class:`GameError` (nothing is written), or :class:`FlagFallenError` after committing
        the timeout events. ``request_id`` makes retries safe (see the module docstring);
        ``lag_ms`` is the network lag to credit on the clock.
        """
        return await self._act(game_id, user_id, None, action, request_id, lag_ms)

    async def act_as_bot(
        self,
        game_id: int,
        color: PlayerColor,
        action: Action | bytes | str | msgspec.Raw | dict[str, Any],
        *,
        request_id: str | None = None,
    ) -> list[StoredEvent]:
        """Apply ``action`` for the bot that plays ``color`` (the engine driver calls this;
        :class:`NotAPlayer` when that side is not a bot). Like :meth:`act` otherwise; bot
        request ids are keyed without a user, so make them unique per game (e.g. prefix the
        colour)."""
        return await self._act(game_id, None, color, action, request_id, 0)

    async def _act(
        self,
        game_id: int,
        user_id: int | None,
        bot_color: PlayerColor | None,
        action: Action | bytes | str | msgspec.Raw | dict[str, Any],
        request_id: str | None,
        lag_ms: int,
    ) -> list[StoredEvent]:
        act = decode_action(action)
        if request_id is not None and not (0 < len(request_id) <= MAX_REQUEST_ID):
            raise BadAction(f"request_id must be 1 to {MAX_REQUEST_ID} characters")
        if isinstance(lag_ms, bool) or not isinstance(lag_ms, int):
            raise BadAction("lag_ms must be an integer")
        async with self._lock(game_id):
            state = await self._fresh(game_id, catch_up=False)
            caught_up = False
            conflicted = False
            while True:
                if request_id is not None:
                    seen = state.requests.get((user_id, request_id))
                    if seen is not None:
                        return await self._read(game_id, *seen)
                now = self.clock_fn()
                flag: FlagFallenError | None = None
                try:
                    color = (
                        state.color_of(user_id) if bot_color is None else state.bot_color(bot_color)
                    )
                    events = decide(
                        state,
                        color,
                        act,
                        now,
                        lag_ms=lag_ms,
                        scoring_timeout_ms=self.scoring_timeout_ms,
                    )
                    events = _stamp(events, user_id, request_id)
                except FlagFallenError as exc:
                    flag = exc
                    events = exc.events
                except GameError:
                    if not caught_up and await self._catch_up(state):
                        caught_up = True
                        continue
                    raise
                try:
                    stored = await self._commit(state, events)
                except ConflictError:
                    if conflicted:
                        raise ConcurrentUpdate(
                            "the game changed while your action was applied; try again"
                        ) from None
                    conflicted = caught_up = True
                    state = await self._fresh(game_id, catch_up=True)
                    continue
                break
            await self._publish(stored)
        if flag is not None:
            raise flag
        return stored

    async def check_timeouts(
        self, now: int | None = None, *, limit: int = 100
    ) -> list[StoredEvent]:
        """End every game whose deadline has passed (timeout + game_finished; or, for a
        scoring phase past its bound, game_finished with the marking scored), exactly once
        across instances; returns the events this call committed."""
        if now is None:
            now = self.clock_fn()
        out: list[StoredEvent] = []
        for row in await self.store.expired_games(ms_to_dt(now), limit=limit):
            async with self._lock(row.id):
                try:
                    state = await self._fresh(row.id, catch_up=True)
                except GameNotFound:
                    continue
                except (ValueError, TypeError):  # a log that does not fold: skip, loudly
                    log.exception("game %s: cannot fold the log to check its clock", row.id)
                    continue
                events = timeout_events(state, now) or scoring_timeout_events(state, now)
                if not events:
                    # the row's deadline is stale (e.g. a move committed meanwhile): fix it
                    deadline = (
                        state.scoring_ends_at
                        if state.phase == "scoring"
                        else state.clock.deadline()
                    )
                    with contextlib.suppress(ConflictError):
                        await self.store.set_deadline(
                            row.id,
                            None if deadline is None else ms_to_dt(deadline),
                            expect_seq=state.last_seq,
                        )
                    continue
                try:
                    stored = await self._commit(state, events)
                except ConflictError:  # another instance ended it, or a move came first
                    self._cache.pop(row.id, None)
                    continue
                await self._publish(stored)
                out.extend(stored)
        return out

    # -- presence (abandonment) ------------------------------------------------------------

    async def presence_changed(
        self, user_id: int, online: bool, *, limit: int = 100
    ) -> list[StoredEvent]:
        """``user_id``'s last connection closed (``online`` False) or their first one opened:
        append ``player_left`` / ``player_returned`` to each of their live games in progress
        (:func:`~goapp.game.actions.presence_events`; correspondence and bot games are left
        alone). Conditional and idempotent like every append: when several instances hear
        the same news, one event is written. Returns the events this call committed."""
        out: list[StoredEvent] = []
        for row in (await self.store.list_active_games(user_id))[:limit]:
            if row.status not in ("playing", "scoring"):
                continue
            out.extend(await self._system_events(row.id, user_id, online))
        return out

    async def _system_events(self, game_id: int, user_id: int, online: bool) -> list[StoredEvent]:
        async with self._lock(game_id):
            for attempt in range(3):
                try:
                    state = await self._fresh(game_id, catch_up=True)
                except GameNotFound:
                    return []
                color = state.color_of(user_id)
                if color is None:
                    return []
                now = self.clock_fn()
                events = presence_events(state, color, online, now, self.abandon_timeout_ms)
                if not events:
                    return []
                try:
                    stored = await self._commit(state, events)
                except ConflictError:  # another instance wrote first: look again
                    if attempt == 2:
                        log.warning("game %s: presence event lost to conflicts", game_id)
                    continue
                await self._publish(stored)
                return stored
        return []

    # -- reading ---------------------------------------------------------------------------

    async def state(self, game_id: int) -> GameState:
        """The game's current state (caught up with the log). Read it, never change it."""
        async with self._lock(game_id):
            return await self._fresh(game_id, catch_up=True)

    async def view(self, game_id: int) -> GameView:
        """The full state for a client that subscribes (clocks as of now)."""
        state = await self.state(game_id)
        return state.view(self.clock_fn())

    async def events_since(
        self, game_id: int, seq: int = 0, *, limit: int | None = None
    ) -> list[StoredEvent]:
        """Committed events with ``seq > seq`` (for clients that resync)."""
        rows = await self.store.events_since(game_id, seq, limit=limit)
        return [StoredEvent.from_record(r) for r in rows]

    def cached_state(self, game_id: int) -> GameState | None:
        """The cached state, if any, without the lock or a catch-up (``on_events`` hooks,
        which run under the game's lock right after the commit was folded, read it)."""
        return self._cache.get(game_id)

    def forget(self, game_id: int) -> None:
        """Drop a game's cached state (the next use folds the log again)."""
        self._cache.pop(game_id, None)

    # -- internals -------------------------------------------------------------------------

    def _lock(self, game_id: int) -> asyncio.Lock:
        lock = self._locks.get(game_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[game_id] = lock
        return lock

    def _put(self, state: GameState) -> None:
        self._cache[state.game_id] = state
        self._cache.move_to_end(state.game_id)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    async def _fresh(self, game_id: int, *, catch_up: bool) -> GameState:
        """The cached state (caught up with the log when ``catch_up``), or the fold of the
        whole log on a miss."""
        state = self._cache.get(game_id)
        if state is not None:
            self._cache.move_to_end(game_id)
            if catch_up:
                await self._catch_up(state)
            return state
        rows = await self.store.events_since(game_id, 0)
        if not rows:
            raise GameNotFound(f"game {game_id} not found")
        state = GameState.from_events(rows)
        self._put(state)
        return state

    async def _catch_up(self, state: GameState) -> bool:
        """Fold events committed elsewhere into ``state``; True if there were any."""
        rows = await self.store.events_since(state.game_id, state.last_seq)
        if not rows:
            return False
        try:
            state.apply_all(rows)
        except Exception:
            self._cache.pop(state.game_id, None)
            raise
        return True

    async def _commit(self, state: GameState, events: list[GameEvent]) -> list[StoredEvent]:
        first = state.last_seq + 1
        new = [NewEvent(first + i, event_kind(e), encode_payload(e)) for i, e in enumerate(events)]
        try:
            rows = await self.store.append_events(
                state.game_id, new, change=_row_change(events), expect_status=state.status
            )
        except NotFoundError:
            self._cache.pop(state.game_id, None)
            raise GameNotFound(f"game {state.game_id} not found") from None
        stored = [
            StoredEvent(game_id=state.game_id, seq=r.seq, created_at=r.created_at, event=e)
            for r, e in zip(rows, events, strict=True)
        ]
        try:
            for s in stored:
                state.apply(s.event, s.seq)
        except Exception:  # committed, but the fold failed: never serve this state again
            self._cache.pop(state.game_id, None)
            log.exception("game %s: folding committed events failed", state.game_id)
            raise
        return stored

    async def _read(self, game_id: int, first: int, last: int) -> list[StoredEvent]:
        rows = await self.store.events_since(game_id, first - 1, limit=last - first + 1)
        return [StoredEvent.from_record(r) for r in rows]

    async def _publish(self, stored: list[StoredEvent]) -> None:
        for hook in list(self.on_events):
            try:
                await hook(stored)
            except Exception:
                log.exception("game %s: an on_events hook failed", stored[0].game_id)
