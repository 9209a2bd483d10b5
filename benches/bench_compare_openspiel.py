"""goapp's rules core vs OpenSpiel's ``go`` game (a C++ board behind pybind11), measured in
the same pytest run: ``pytest benches/bench_compare_openspiel.py --benchmark-only``.

(a) Replay: the 20 recorded random-playout games of ``bench_core.py``
    (:func:`goapp.rules.record_playout_games`, seeds 12345..12364), one legality check and
    one play per move, from Python:

    * goapp: ``Board.is_legal`` + ``Board.play`` (:func:`goapp.rules.bench.replay_pairs`);
    * OpenSpiel: ``apply_action_with_legality_check(a)`` (C++ builds the whole legal-action
      list, then plays), ``legal_actions_mask()[a]`` + ``apply_action(a)``, and plain
      ``apply_action(a)`` with no check (a lower bound).

    goapp's loc ``(x, y)`` (``y`` counted from the top) is OpenSpiel's action
    ``(18 - y) * 19 + x`` (OpenSpiel's rows count from the bottom); a pass is action 361.
    OpenSpiel must apply the passes (they change the player to move), goapp's replay skips
    them: both figures are divided by the same number of non-pass moves. The setup replays
    every game in OpenSpiel with legality checks and asserts that the stones agree with
    goapp's board (every 25 moves in three games, and at the end of all of them). OpenSpiel
    ends a game when a position repeats (its "superko" is a draw, not an illegal move) or
    after 722 actions; a game that OpenSpiel ends early would be cut there for both sides
    (``truncated`` in ``extra_info``; none of the 20 games is).

(b) Random playouts: goapp's :func:`goapp.rules.random_playouts` (the fixed workload of
    benches/README.md: no filling of simple own eyes, pass only when nothing else is legal,
    inside the core) vs a Python loop over OpenSpiel that draws uniformly among
    ``legal_actions()`` (pass included, no eye rule) until the game is terminal (two passes,
    a repeated position, or 722 actions). The games differ, so only the per-move figures
    compare; ``avg_game_length`` says how long each side's games are.
"""

from __future__ import annotations

import random
import re
from typing import Any

import pyspiel
import pytest

from goapp.rules import PASS_LOC, Board, random_playouts, record_playout_games
from goapp.rules.bench import replay_pairs

SIZE = 19
GAMES = 20
SEED = 12345
PASS_ACTION = SIZE * SIZE
COLUMNS = "ABCDEFGHJKLMNOPQRST"
_ROW_RE = re.compile(r"^\s*(\d+) ([+XO]{19})$", re.M)


def _load_game() -> Any:
    return pyspiel.load_game("go", {"board_size": SIZE, "komi": 7.5})


def loc_to_action(board: Board, loc: int) -> int:
    """OpenSpiel's action for a goapp loc: rows count from the bottom there."""
    if loc == PASS_LOC:
        return PASS_ACTION
    x, y = board.xy(loc)
    return (SIZE - 1 - y) * SIZE + x


def openspiel_stones(state: Any) -> dict[str, str]:
    """``{"Q16": "B", ...}`` from OpenSpiel's board diagram (X black, O white)."""
    stones = {}
    for row, cells in _ROW_RE.findall(str(state)):
        for col, cell in zip(COLUMNS, cells, strict=True):
            if cell != "+":
                stones[f"{col}{row}"] = "B" if cell == "X" else "W"
    return stones


def goapp_stones(board: Board) -> dict[str, str]:
    stones = {board.vertex(loc): "B" for loc in board.stones(1)}
    stones.update({board.vertex(loc): "W" for loc in board.stones(2)})
    return stones


class Workload:
    """The recorded games, their OpenSpiel actions, and what the check found."""

    def __init__(self) -> None:
        game = _load_game()
        self.game = game
        self.max_length = game.max_game_length()
        board = Board(SIZE)
        recorded = record_playout_games(GAMES, SIZE, SEED)
        self.games: list[list[int]] = []
        self.actions: list[list[int]] = []
        self.truncated: list[tuple[int, int, str]] = []  # (game, moves kept, why)
        self.checked_positions = 0
        for g, moves in enumerate(recorded):
            actions = [loc_to_action(board, loc) for loc in moves]
            kept, why = self._check(g, moves, actions)
            if kept < len(moves):
                self.truncated.append((g, kept, why))
            self.games.append(moves[:kept])
            self.actions.append(actions[:kept])
        self.pairs = sum(loc != PASS_LOC for moves in self.games for loc in moves)
        self.passes = sum(loc == PASS_LOC for moves in self.games for loc in moves)

    def _check(self, g: int, moves: list[int], actions: list[int]) -> tuple[int, str]:
        """Replay one game in both cores; return how many moves OpenSpiel accepts (and why
        it stopped short). Asserts that the boards agree along the way."""
        state = self.game.new_initial_state()
        board = Board(SIZE)
        color = 1
        kept, why = len(moves), ""
        for i, (loc, action) in enumerate(zip(moves, actions, strict=True)):
            if state.is_terminal():
                kept, why = i, "OpenSpiel ended the game (repeated position or 722 actions)"
                break
            if action not in state.legal_actions():
                kept, why = i, f"move {i + 1} is illegal in OpenSpiel"
                break
            state.apply_action(action)
            if loc != PASS_LOC:
                assert board.is_legal(loc, color)
                board.play(loc, color)
            color = 3 - color
            if g < 3 and i % 25 == 24:
                self._assert_same(board, state, g, i + 1)
        self._assert_same(board, state, g, kept)
        if kept == len(moves) and moves[-2:] == [PASS_LOC, PASS_LOC]:
            assert state.is_terminal()  # both agree that the game is over
        return kept, why

    def _assert_same(self, board: Board, state: Any, g: int, n: int) -> None:
        ours, theirs = goapp_stones(board), openspiel_stones(state)
        assert ours == theirs, f"game {g}: the boards differ after {n} moves"
        self.checked_positions += 1


@pytest.fixture(scope="module")
def workload() -> Workload:
    w = Workload()
    assert w.checked_positions >= GAMES
    assert w.pairs > 8000, "the comparison lost most of its games"
    return w


def _per_pair(benchmark: Any, w: Workload) -> None:
    benchmark.extra_info["pairs"] = w.pairs
    benchmark.extra_info["passes_applied_by_openspiel"] = w.passes
    benchmark.extra_info["truncated"] = w.truncated
    stats = benchmark.stats.stats if benchmark.stats is not None else None
    if stats is not None:
        benchmark.extra_info["us_per_pair_min"] = stats.min / w.pairs * 1e6
        benchmark.extra_info["us_per_pair_median"] = stats.median / w.pairs * 1e6


# -- (a) replay ---------------------------------------------------------------------------


def test_replay_goapp_is_legal_play(benchmark: Any, workload: Workload) -> None:
    pairs = benchmark(replay_pairs, workload.games)
    assert pairs == workload.pairs
    _per_pair(benchmark, workload)


def _os_replay_checked(game: Any, games: list[list[int]]) -> int:
    n = 0
    for actions in games:
        state = game.new_initial_state()
        apply = state.apply_action_with_legality_check
        for a in actions:
            apply(a)
        n += len(actions)
    return n


def _os_replay_mask(game: Any, games: list[list[int]]) -> int:
    n = 0
    for actions in games:
        state = game.new_initial_state()
        mask = state.legal_actions_mask
        apply = state.apply_action
        for a in actions:
            if not mask()[a]:
                raise AssertionError("a recorded move is illegal in OpenSpiel")
            apply(a)
        n += len(actions)
    return n


def _os_replay_unchecked(game: Any, games: list[list[int]]) -> int:
    n = 0
    for actions in games:
        state = game.new_initial_state()
        apply = state.apply_action
        for a in actions:
            apply(a)
        n += len(actions)
    return n


@pytest.mark.parametrize(
    "how",
    [
        pytest.param(_os_replay_checked, id="apply_action_with_legality_check"),
        pytest.param(_os_replay_mask, id="legal_actions_mask+apply_action"),
        pytest.param(_os_replay_unchecked, id="apply_action_unchecked"),
    ],
)
def test_replay_openspiel(benchmark: Any, workload: Workload, how: Any) -> None:
    n = benchmark(how, workload.game, workload.actions)
    assert n == workload.pairs + workload.passes
    _per_pair(benchmark, workload)


# -- (b) random playouts ------------------------------------------------------------------


def _os_random_playouts(game: Any, games: int, seed_base: int) -> int:
    """Uniform among ``legal_actions()`` (pass included) until the game is terminal."""
    moves = 0
    for g in range(games):
        rng = random.Random(seed_base + g)
        choice = rng.choice
        state = game.new_initial_state()
        legal = state.legal_actions
        apply = state.apply_action
        is_terminal = state.is_terminal
        while not is_terminal():
            apply(choice(legal()))
            moves += 1
    return moves


def _per_move(benchmark: Any, moves: int, games: int) -> None:
    benchmark.extra_info["moves"] = moves
    benchmark.extra_info["avg_game_length"] = moves / games
    stats = benchmark.stats.stats if benchmark.stats is not None else None
    if stats is not None:
        benchmark.extra_info["ns_per_move_min"] = stats.min / moves * 1e9
        benchmark.extra_info["ns_per_move_median"] = stats.median / moves * 1e9


def test_playouts_goapp_core(benchmark: Any) -> None:
    moves = benchmark(random_playouts, GAMES, SIZE, SEED)
    assert 430 < moves / GAMES < 480
    _per_move(benchmark, moves, GAMES)


OS_PLAYOUT_GAMES = 10


def test_playouts_openspiel_python_loop(benchmark: Any, workload: Workload) -> None:
    moves = benchmark(_os_random_playouts, workload.game, OS_PLAYOUT_GAMES, SEED)
    assert moves <= OS_PLAYOUT_GAMES * workload.max_length
    _per_move(benchmark, moves, OS_PLAYOUT_GAMES)
