"""Helpers for the engine-in-the-server tests: a KataGo backend on the small model, a game
service with the bot driver over a real SQLite store, a random human player."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from goapp.engine.bots import BotDriver
from goapp.engine.facade import GameEngine, KataGoBackend
from goapp.engine.katago import KataGoEngine
from goapp.engine.setup import KataGoPaths
from goapp.game.errors import GameError
from goapp.game.service import GameService
from goapp.game.state import GameState
from goapp.rules import Color
from goapp.store import Store, open_store


def katago_backend(paths: KataGoPaths, **kwargs: Any) -> KataGoBackend:
    kwargs.setdefault("backoff_initial", 0.1)
    kwargs.setdefault("query_timeout", 60.0)
    return KataGoBackend(KataGoEngine.from_paths(paths, **kwargs))


@asynccontextmanager
async def bot_setup(
    tmp_path: Path, engine: GameEngine, *, store: Store | None = None
) -> AsyncIterator[tuple[Store, GameService, BotDriver]]:
    """An open SQLite store, a game service and an attached driver; the engine started and
    up (KataGo) before the body runs; everything closed after."""
    own = store is None
    if store is None:
        store = await open_store(f"sqlite://{tmp_path}/bots.db")
    games = GameService(store)
    driver = BotDriver(games, engine, backoff_initial=0.05, backoff_max=1.0)
    driver.attach()
    try:
        await engine.start()
        inner = getattr(engine, "inner", None)
        if isinstance(inner, KataGoEngine):
            await inner.wait_up(300)
        yield store, games, driver
    finally:
        await driver.close()
        await engine.close()
        if own:
            await store.close()


async def until(cond: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def random_move(state: GameState, rng: random.Random) -> str | None:
    """A random legal move that does not fill one of the mover's own eyes (None: pass)."""
    g = state.game
    color = g.to_move
    locs = [loc for loc in g.legal_moves() if not g.board.is_simple_eye(loc, int(color))]
    rng.shuffle(locs)
    return g.vertex(locs[0]) if locs else None


async def human_turn(
    games: GameService, game_id: int, user_id: int, rng: random.Random, *, passing: bool
) -> None:
    """The human's move: a random legal move, or a pass."""
    for _ in range(20):
        state = await games.state(game_id)
        vertex = None if passing else random_move(state, rng)
        action = {"type": "pass"} if vertex is None else {"type": "move", "vertex": vertex}
        try:
            await games.act(game_id, user_id, action)
            return
        except GameError as exc:  # superko and the like: try another point
            if getattr(exc, "code", "") != "illegal_move":
                raise
    await games.act(game_id, user_id, {"type": "pass"})


def human_color(state: GameState, user_id: int) -> Color:
    return Color.BLACK if state.black_id == user_id else Color.WHITE
