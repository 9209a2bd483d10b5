"""Speed measurements of the rules core (``goapp bench core``).

Two numbers matter:

* **ns per random-playout move**, measured entirely inside the core with the fixed workload
  of :func:`goapp._core.random_playouts` (19x19, splitmix64 seeded 12345+g, uniform among
  the legal moves that do not fill a simple own eye; about 455 turns a game). KataGo's C++
  board does this in about 178 ns a move.
* **µs per is_legal + play pair** called from Python, replaying recorded playout games on a
  fresh :class:`~goapp._core.Board` (what the server does when it folds a game's event log).
"""

from __future__ import annotations

import platform
import time
from typing import Any

from goapp._core import PASS_LOC, Board, random_playouts, record_playout_games
from goapp.rules.rulesets import Rules
from goapp.rules.scoring import score_position

SIZE = 19
SEED_BASE = 12345


def replay_pairs(games: list[list[int]], size: int = SIZE) -> int:
    """Replay ``games`` with one ``is_legal`` and one ``play`` per move; return the pairs."""
    pairs = 0
    for moves in games:
        board = Board(size)
        is_legal = board.is_legal
        play = board.play
        color = 1
        for loc in moves:
            if loc != PASS_LOC:
                if not is_legal(loc, color):
                    raise AssertionError("a recorded playout move is illegal")
                play(loc, color)
                pairs += 1
            color = 3 - color
    return pairs


def _final_boards(games: list[list[int]], size: int = SIZE) -> list[Board]:
    boards = []
    for moves in games:
        b = Board(size)
        color = 1
        for loc in moves:
            b.play_fast(loc, color)
            color = 3 - color
        boards.append(b)
    return boards


def run_core_bench(seconds: float = 3.0) -> dict[str, Any]:
    """Measure the core for about ``seconds`` (split between the parts); return a dict of
    results (see the module docstring) suitable for JSON."""
    budget = max(0.3, float(seconds))
    # 1. playouts inside the core
    random_playouts(5, SIZE, SEED_BASE)  # warm up
    games = moves = 0
    batch = 20
    t0 = time.perf_counter()
    deadline = t0 + budget * 0.45
    while True:
        moves += random_playouts(batch, SIZE, SEED_BASE + games)
        games += batch
        if time.perf_counter() >= deadline:
            break
    playout_s = time.perf_counter() - t0
    # 2. replay from Python: is_legal + play pairs
    recorded = record_playout_games(50, SIZE, SEED_BASE)
    pairs = 0
    t0 = time.perf_counter()
    deadline = t0 + budget * 0.45
    while True:
        pairs += replay_pairs(recorded)
        if time.perf_counter() >= deadline:
            break
    replay_s = time.perf_counter() - t0
    # 3. counting a finished 19x19 position (area, Japanese)
    boards = _final_boards(recorded[:20])
    japanese = Rules.from_name("japanese")
    scores = 0
    t0 = time.perf_counter()
    deadline = t0 + budget * 0.1
    while True:
        for b in boards:
            score_position(b, japanese, 6.5)
        scores += len(boards)
        if time.perf_counter() >= deadline:
            break
    score_s = time.perf_counter() - t0
    return {
        "board": f"{SIZE}x{SIZE}",
        "playout_games": games,
        "playout_moves": moves,
        "playout_avg_game_length": moves / games,
        "playout_ns_per_move": playout_s / moves * 1e9,
        "replay_pairs": pairs,
        "replay_us_per_pair": replay_s / pairs * 1e6,
        "score_us_per_position": score_s / scores * 1e6,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
    }


def format_core_bench(result: dict[str, Any]) -> str:
    """A human-readable summary of :func:`run_core_bench`'s result."""
    return (
        f"rules core ({result['board']}, Python {result['python']}, {result['machine']})\n"
        f"  random playout: {result['playout_ns_per_move']:.0f} ns/move "
        f"({result['playout_games']} games, avg {result['playout_avg_game_length']:.1f} turns)\n"
        f"  is_legal+play from Python: {result['replay_us_per_pair']:.3f} us/pair "
        f"({result['replay_pairs']} pairs)\n"
        f"  scoring (Japanese): {result['score_us_per_position']:.1f} us/position"
    )


if __name__ == "__main__":  # pragma: no cover
    print(format_core_bench(run_core_bench()))
