"""AI review of finished games: KataGo's judgement of every position, computed once and
stored (``game_analysis``), so that reopening a review costs no engine time.

``POST /api/games/{id}/review`` calls :meth:`ReviewService.request`: a finished game
without a stored review gets a job (one per game: asking again while it runs, or after it
is stored, starts nothing). Jobs run one at a time (``parallel``) at KataGo's lowest
priority (bot moves and score estimates go first), at most ``max_queued`` wait; more
answers "busy". A job is one ``analyzeTurns`` query over every turn (winrate, score lead,
the best moves with their principal variation) plus one query with ownership for the final
position; all turns are written in one transaction. ``GET`` reads the store
(:meth:`ReviewService.status`).

Per-turn payload (winrates and scores from Black's point of view)::

    {"turn": 12, "move": "C3" | null, "color": "B" | null, "to_move": "W",
     "winrate": 0.61, "score_lead": 2.3, "visits": 16,
     "best": [{"move": "D4", "visits": 9, "winrate": 0.63, "score_lead": 2.9,
               "prior": 0.2, "pv": ["D4", "C5", ...]}, ...],
     "ownership": [...]}             # the last turn only

``move`` is the move played *from* this position (``null`` on the last turn).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from goapp.engine.errors import EngineError, EngineUnavailableError
from goapp.engine.facade import GameEngine, Position
from goapp.engine.katago import PRIORITY_REVIEW, AnalysisResult
from goapp.game.errors import WrongPhase
from goapp.game.service import GameService
from goapp.store import Store

__all__ = ["REVIEW_VISITS", "ReviewBusy", "ReviewService", "turn_payload"]

log = logging.getLogger("goapp.review")

#: Visits per position of a review.
REVIEW_VISITS = 16
#: Candidate moves kept per position, and moves of each principal variation.
TOP_MOVES = 5
PV_LENGTH = 10


class ReviewBusy(EngineError):
    """Too many reviews are waiting: try again later."""


def turn_payload(
    turn: int, result: AnalysisResult, pos: Position, *, ownership: bool = False
) -> dict[str, Any]:
    root = result.root_info
    best = sorted(result.move_infos, key=lambda m: m.order)[:TOP_MOVES]
    played = pos.moves[turn] if turn < len(pos.moves) else None
    out: dict[str, Any] = {
        "turn": turn,
        "move": None if played is None else played[1],
        "color": None if played is None else played[0],
        "to_move": None if root is None else root.current_player,
        "winrate": None if root is None else root.winrate,
        "score_lead": None if root is None else root.score_lead,
        "visits": result.visits,
        "best": [
            {
                "move": m.move,
                "visits": m.visits,
                "winrate": m.winrate,
                "score_lead": m.score_lead,
                "prior": m.prior,
                "pv": m.pv[:PV_LENGTH],
            }
            for m in best
        ],
    }
    if ownership and result.ownership is not None:
        out["ownership"] = result.ownership
    return out


class ReviewService:
    """Queues, runs and serves game reviews; see the module docstring."""

    def __init__(
        self,
        store: Store,
        games: GameService,
        engine: GameEngine | None,
        *,
        visits: int = REVIEW_VISITS,
        parallel: int = 1,
        max_queued: int = 16,
        timeout: float | None = 1800.0,
    ) -> None:
        self.store = store
        self.games = games
        self.engine = engine
        self.visits = visits
        self.max_queued = max_queued
        self.timeout = timeout
        self._slots = asyncio.Semaphore(parallel)
        self._jobs: dict[int, asyncio.Task[None]] = {}
        self._running: set[int] = set()
        self._failed: dict[int, str] = {}
        self.jobs_started = 0
        self.jobs_done = 0

    async def status(self, game_id: int) -> dict[str, Any]:
        """``{"game_id", "status", "turns"}``: ``status`` is ``none``, ``queued``,
        ``running``, ``done`` or ``failed`` (with ``error``); ``turns`` the stored rows."""
        rows = await self.store.load_analysis(game_id)
        out: dict[str, Any] = {"game_id": game_id, "visits": self.visits}
        if rows:
            out["status"] = "done"
        elif game_id in self._running:
            out["status"] = "running"
        elif game_id in self._jobs:
            out["status"] = "queued"
        elif game_id in self._failed:
            out["status"] = "failed"
            out["error"] = self._failed[game_id]
        else:
            out["status"] = "none"
        out["turns"] = [r.payload for r in rows]
        return out

    async def request(self, game_id: int) -> str:
        """Queue a review of a finished game (a no-op when it exists or is under way);
        returns the status. :class:`EngineUnavailableError` when no engine can analyse,
        :class:`ReviewBusy` when too many wait; ``GameError`` from reading the game."""
        if game_id in self._jobs:
            return "running" if game_id in self._running else "queued"
        if await self.store.load_analysis(game_id):
            return "done"
        state = await self.games.state(game_id)
        if not state.is_over:
            raise WrongPhase("only a finished game can be reviewed")
        if self.engine is None or not self.engine.can_analyze:
            raise EngineUnavailableError("reviews need KataGo, and none is configured")
        if len(self._jobs) >= self.max_queued:
            raise ReviewBusy(f"{len(self._jobs)} reviews are waiting; try again later")
        self._failed.pop(game_id, None)
        self._jobs[game_id] = asyncio.create_task(self._run(game_id), name=f"review-{game_id}")
        self.jobs_started += 1
        return "queued"

    async def wait(self, game_id: int) -> None:
        """Wait for a game's job, if any (tests)."""
        task = self._jobs.get(game_id)
        if task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(task)

    async def close(self) -> None:
        tasks = list(self._jobs.values())
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    async def _run(self, game_id: int) -> None:
        try:
            async with self._slots:
                self._running.add(game_id)
                await self._analyze(game_id)
                self.jobs_done += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed[game_id] = str(exc) or type(exc).__name__
            log.warning("review failed", extra={"game_id": game_id, "error": str(exc)})
        finally:
            self._running.discard(game_id)
            self._jobs.pop(game_id, None)

    async def _analyze(self, game_id: int) -> None:
        assert self.engine is not None
        state = await self.games.state(game_id)
        pos = Position.from_state(state)
        n = len(pos.moves)
        tag = f"review:{game_id}"
        turns_query = pos.query(
            max_visits=self.visits, analyze_turns=list(range(n)), priority=PRIORITY_REVIEW
        )
        final_query = pos.query(
            max_visits=self.visits,
            analyze_turns=[n],
            include_ownership=True,
            priority=PRIORITY_REVIEW,
        )
        results: dict[int, AnalysisResult] = {}
        if n:
            results.update(
                await self.engine.analyze_turns(turns_query, timeout=self.timeout, tag=tag)
            )
        results.update(await self.engine.analyze_turns(final_query, timeout=self.timeout, tag=tag))
        rows = [(t, turn_payload(t, results[t], pos, ownership=t == n)) for t in sorted(results)]
        await self.store.save_analysis(game_id, rows)
