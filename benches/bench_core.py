"""Benchmarks of the rules core (pytest-benchmark): ``pytest benches/bench_core.py``.

* random playouts inside the core, 19x19 (ns per move in ``extra_info``);
* one ``is_legal`` + ``play`` pair from Python, replaying recorded playout games;
* the Game layer (turn order, superko bookkeeping) from Python;
* counting a finished 19x19 position.
"""

from __future__ import annotations

from typing import Any

import pytest

from goapp.rules import (
    PASS_LOC,
    Board,
    Game,
    Rules,
    random_playouts,
    record_playout_games,
    score_position,
)
from goapp.rules.bench import replay_pairs

GAMES = 20


def _per(benchmark: Any, name: str, count: int, scale: float) -> None:
    """``{name}_mean``/``{name}_min``: seconds per item times ``scale``. Under
    ``--benchmark-disable`` (``make test``) there are no stats: nothing is recorded."""
    if benchmark.stats is None:
        return
    stats = benchmark.stats.stats
    benchmark.extra_info[f"{name}_mean"] = stats.mean / count * scale
    benchmark.extra_info[f"{name}_min"] = stats.min / count * scale


@pytest.fixture(scope="module")
def recorded() -> list[list[int]]:
    return record_playout_games(GAMES, 19, 12345)


def test_random_playout_19x19(benchmark: Any) -> None:
    moves = benchmark(random_playouts, GAMES, 19, 12345)
    benchmark.extra_info["moves"] = moves
    benchmark.extra_info["avg_game_length"] = moves / GAMES
    _per(benchmark, "ns_per_move", moves, 1e9)
    assert 430 < moves / GAMES < 480


def test_is_legal_play_pair_from_python(benchmark: Any, recorded: list[list[int]]) -> None:
    pairs = benchmark(replay_pairs, recorded)
    benchmark.extra_info["pairs"] = pairs
    _per(benchmark, "us_per_pair", pairs, 1e6)


def _replay_game_layer(games: list[list[int]], ko: str) -> int:
    n = 0
    for moves in games:
        g = Game(19, rules=Rules.from_name(ko), komi=7.5)
        for loc in moves[:-2]:  # stop before the final passes
            g.play(loc)
            n += 1
    return n


@pytest.mark.parametrize("ruleset", ["japanese", "tromp-taylor"])
def test_game_layer_play_from_python(
    benchmark: Any, recorded: list[list[int]], ruleset: str
) -> None:
    games = recorded[:5]
    n = benchmark(_replay_game_layer, games, ruleset)
    benchmark.extra_info["moves"] = n
    _per(benchmark, "us_per_move", n, 1e6)


def test_scoring_19x19(benchmark: Any, recorded: list[list[int]]) -> None:
    b = Board(19)
    color = 1
    for loc in recorded[0]:
        b.play_fast(loc, color)
        color = 3 - color
    assert recorded[0][-1] == PASS_LOC
    rules = Rules.from_name("japanese")
    s = benchmark(score_position, b, rules, 6.5)
    assert s.black + s.white + s.dame + s.seki > 0


def test_board_copy(benchmark: Any) -> None:
    b = Board(19)
    benchmark(b.copy)
