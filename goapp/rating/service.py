"""Rating games as they end: the server wiring of :mod:`goapp.rating` (``docs/ratings.md``).

:class:`RatingService` is a :attr:`GameService.on_events <goapp.game.service.GameService>`
hook. On a ``game_finished`` event it *schedules* a task (the hook runs under the game's
lock and never awaits work itself) that rates the game when it is rated and between two
users (no bot on either side): the board-size pool (``"9"``, ``"13"``, ``"19"``; other
sizes have none) and ``"overall"``, each from both players' ratings in that pool before the
game. :meth:`Store.apply_rating_update <goapp.store.Store.apply_rating_update>` writes the
history rows and the new ratings in one transaction and applies a game at most once, so a
retry, a second instance or :meth:`RatingService.catch_up` (at start-up: finished games that
a crash left unrated) cannot rate a game twice.

Inactivity: a game is one rating period, and so is every ``1 / RATING_PERIODS_PER_DAY``
days without a game (lichess' 0.21436 periods a day). Before a game is rated, each
player's RD is aged by the periods since their rating last changed (Glicko-2's no-game
step, :func:`goapp.rating.glicko2.age`, fractional periods allowed): an RD of 60 grows to
about 110 in a year away. :func:`aged_rating` gives the same value for display.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from goapp.game.events import GameFinished, StoredEvent
from goapp.game.service import GameService
from goapp.rating.glicko2 import Rating, age, rate_game
from goapp.rating.handicap import effective_rating, handicap_rank_difference
from goapp.store import (
    ConflictError,
    Game,
    NotFoundError,
    PoolRating,
    RatingUpdate,
    Store,
    StoreUnavailableError,
)
from goapp.tasks import BackgroundTasks

log = logging.getLogger(__name__)

__all__ = [
    "RATING_PERIODS_PER_DAY",
    "RatingService",
    "aged_rating",
    "game_score",
    "inactive_periods",
    "pools_for",
]

#: Pools with their own rating, by board size (square boards only).
SIZE_POOLS = {9: "9", 13: "13", 19: "19"}


def pools_for(game: Game) -> list[str]:
    """The pools a game counts in: its board size's (9, 13, 19) and ``"overall"``."""
    pool = SIZE_POOLS.get(game.width) if game.width == game.height else None
    return [pool, "overall"] if pool else ["overall"]


def game_score(result: str | None) -> float | None:
    """Black's score from an SGF result: 1 (``B+...``), 0 (``W+...``), 0.5 (jigo ``0``);
    None for no result (void, unknown)."""
    if not result:
        return None
    r = result.strip().upper()
    if r.startswith("B+"):
        return 1.0
    if r.startswith("W+"):
        return 0.0
    if r in ("0", "DRAW", "JIGO"):
        return 0.5
    return None


#: Rating periods per day without games (lichess' value): one period every 4.67 days.
RATING_PERIODS_PER_DAY = 0.21436


def inactive_periods(since: datetime, now: datetime) -> float:
    """Rating periods from ``since`` (the rating's last change) to ``now`` (0 if earlier)."""
    days = (now - since).total_seconds() / 86_400
    return max(0.0, days * RATING_PERIODS_PER_DAY)


def aged_rating(r: PoolRating | None, now: datetime | None = None) -> Rating:
    """A stored rating as of ``now`` (default: the current time): its RD grown by the rating
    periods without games since it last changed (a missing row is a new player)."""
    if r is None:
        return Rating()
    base = Rating(r.rating, r.rd, r.volatility)
    periods = inactive_periods(r.updated_at, now or datetime.now(UTC))
    return age(base, periods) if periods > 0 else base


class RatingService:
    """Rates finished games (see the module doc). ``attach()`` subscribes to the game
    service; ``catch_up()`` rates what was missed; ``close()`` waits for nothing and cancels
    the tasks in flight (their games are caught up at the next start)."""

    def __init__(
        self,
        store: Store,
        games: GameService | None = None,
        *,
        retry_delays: Sequence[float] = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
    ) -> None:
        self.store = store
        self.games = games
        self.retry_delays = tuple(retry_delays)
        self._tasks = BackgroundTasks()
        self._closed = False

    # -- wiring -------------------------------------------------------------------------------

    def attach(self) -> None:
        if self.games is not None and self.on_events not in self.games.on_events:
            self.games.on_events.append(self.on_events)

    def detach(self) -> None:
        if self.games is not None:
            with contextlib.suppress(ValueError):
                self.games.on_events.remove(self.on_events)

    async def on_events(self, events: list[StoredEvent]) -> None:
        """The hook: schedule the rating of a game that just finished (never awaited here:
        the hook runs under the game's lock)."""
        if self._closed:
            return
        for e in events:
            if isinstance(e.event, GameFinished):
                self.schedule(e.game_id)

    def schedule(self, game_id: int) -> asyncio.Task[bool]:
        return self._tasks.spawn(self._rate_logged(game_id), name=f"rate-game:{game_id}")

    async def wait_idle(self) -> None:
        """Wait for the scheduled ratings (tests)."""
        await self._tasks.wait_idle()

    async def close(self) -> None:
        self._closed = True
        self.detach()
        await self._tasks.cancel_all()

    async def catch_up(self, batch: int = 100) -> int:
        """Rate finished rated games that have no rating history yet, earliest first;
        returns how many were rated."""
        done = 0
        while True:
            games = await self.store.unrated_finished_games(batch)
            progressed = False
            for game in games:
                if await self.rate(game.id):
                    done += 1
                    progressed = True
            if len(games) < batch or not progressed:
                return done

    # -- rating one game ----------------------------------------------------------------------

    async def _rate_logged(self, game_id: int) -> bool:
        try:
            return await self.rate(game_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("rating game %s failed; catch_up() will retry at the next start", game_id)
            return False

    async def rate(self, game_id: int) -> bool:
        """Rate one game if it should be and has not been; True when this call applied it.
        Retries while the store is unavailable (``retry_delays``) and recomputes when
        another game changed a player's rating meanwhile."""
        delays = list(self.retry_delays)
        conflicts = 0
        while True:
            try:
                return await self._rate_once(game_id)
            except StoreUnavailableError:
                if not delays:
                    raise
                await asyncio.sleep(delays.pop(0))
            except ConflictError:
                conflicts += 1
                if conflicts > 20:
                    raise
                await asyncio.sleep(0.01 * conflicts)

    async def _rate_once(self, game_id: int) -> bool:
        try:
            game = await self.store.get_game(game_id)
        except NotFoundError:
            return False
        score = game_score(game.result)
        if (
            game.status != "finished"
            or score is None
            or game.black_id is None
            or game.white_id is None
            or game.black_bot is not None
            or game.white_bot is not None
            or game.black_id == game.white_id
            or not await self.store.is_game_rated(game_id)
        ):
            return False
        black = await self.store.get_ratings(game.black_id)
        white = await self.store.get_ratings(game.white_id)
        try:
            shift_ranks = handicap_rank_difference(
                game.handicap, game.komi, rules=game.rules, size=game.width
            )
        except (ValueError, KeyError):
            shift_ranks = 0.0
        updates: list[RatingUpdate] = []
        for pool in pools_for(game):
            b, w = black.get(pool), white.get(pool)
            # each player's RD as of the game's end, aged by their time without games
            when = game.finished_at or datetime.now(UTC)
            b_rating, w_rating = aged_rating(b, when), aged_rating(w, when)
            # Black's head start (handicap, low komi): Black is rated as that much stronger
            shift = effective_rating(b_rating.rating, shift_ranks) - b_rating.rating
            shifted = Rating(b_rating.rating + shift, b_rating.rd, b_rating.volatility)
            new_b, new_w = rate_game(shifted, w_rating, score)
            new_b = Rating(new_b.rating - shift, new_b.rd, new_b.volatility)
            for uid, before, old, new in (
                (game.black_id, b, b_rating, new_b),
                (game.white_id, w, w_rating, new_w),
            ):
                updates.append(
                    RatingUpdate(
                        user_id=uid,
                        pool=pool,
                        rating_before=old.rating,
                        games_before=0 if before is None else before.games,
                        rating=new.rating,
                        rd=new.rd,
                        volatility=new.volatility,
                    )
                )
        applied = await self.store.apply_rating_update(game_id, updates)
        if applied:
            log.info("rated game %s (%s)", game_id, ", ".join(pools_for(game)))
        return applied
