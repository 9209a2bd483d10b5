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
from goapp.engine.facade import GameEngine, KataGoBackend, Position
from goapp.engine.katago import PRIORITY_BOT, AnalysisQuery, KataGoEngine
from goapp.engine.remote import RemoteEngine
from goapp.engine.setup import KataGoPaths
from goapp.game.errors import GameError
from goapp.game.service import GameService
from goapp.game.state import GameState
from goapp.rules import Color
from goapp.store import Store, open_store

# The small test model beside the checkout. It lives here, not in conftest.py: test modules
# import helpers (tests/ is on pythonpath), never conftest, which pytest loads itself.
KATAGO_MODEL = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "katago"
    / "g170-b6c96-s175395328-d26788732.bin.gz"
)


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


async def best_move(
    engine: KataGoEngine | RemoteEngine,
    moves: list[list[str]],
    size: int,
    rules: object,
    komi: float,
    visits: int,
    **analyze: Any,
) -> str:
    """KataGo's move for the player to move (``"pass"`` when it has none), asked as the bots
    ask (:meth:`goapp.engine.facade.KataGoBackend.genmove`): bot priority, no root noise."""
    query = AnalysisQuery(
        moves=moves,
        rules=rules,
        komi=komi,
        board_x_size=size,
        board_y_size=size,
        max_visits=visits,
        priority=PRIORITY_BOT,
        override_settings={"wideRootNoise": 0.0},
    )
    result = await engine.analyze(query, **analyze)
    return result.best_move or "pass"


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


# A 19x19 middle game (80 scattered moves, Black first, White to move) that keeps GNU Go
# busy: on this project's 2-core test machine `final_status_list dead` at GNU Go's default
# level took 282 s, `genmove white` at level 10 about 12 s, at level 1 about 0.9 s.
BUSY_19X19 = [
    "E19",
    "C9",
    "D16",
    "P16",
    "N7",
    "A13",
    "O1",
    "P9",
    "H19",
    "D11",
    "A1",
    "A18",
    "G14",
    "A17",
    "H15",
    "Q18",
    "H12",
    "H8",
    "P10",
    "A14",
    "S4",
    "F10",
    "R14",
    "R7",
    "K10",
    "T16",
    "R13",
    "T2",
    "Q8",
    "N14",
    "F12",
    "S12",
    "C15",
    "R4",
    "F17",
    "N12",
    "Q1",
    "Q2",
    "K19",
    "T13",
    "F6",
    "R8",
    "A7",
    "S18",
    "H13",
    "R12",
    "T12",
    "S1",
    "N17",
    "E17",
    "S7",
    "O2",
    "Q12",
    "T18",
    "G17",
    "O16",
    "M14",
    "M1",
    "L15",
    "A8",
    "F18",
    "T6",
    "C18",
    "J2",
    "C3",
    "A15",
    "A9",
    "H9",
    "D6",
    "M10",
    "C6",
    "F9",
    "R6",
    "J10",
    "P11",
    "Q16",
    "D1",
    "K13",
    "L14",
    "G9",
]


def busy_position() -> Position:
    """:data:`BUSY_19X19` as an engine position (Japanese rules, komi 6.5)."""
    moves = [["B" if i % 2 == 0 else "W", v] for i, v in enumerate(BUSY_19X19)]
    return Position(width=19, height=19, rules="japanese", komi=6.5, moves=moves)


def group_alive(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group ``pgid``, and the process ``pgid``
    itself if it is alive, from /proc."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        state, pgrp = fields[0], int(fields[2])
        if state not in ("Z", "X") and (pgrp == pgid or int(entry.name) == pgid):
            found.append(int(entry.name))
    return found


def cpu_ticks(pid: int) -> int:
    """User + system CPU time of ``pid`` so far, in clock ticks (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])
