"""Undo restores everything exactly (KataGo's board test style: a fixed seed, many random
moves, then undo them all, checking the board from scratch at every step)."""

from __future__ import annotations

import random

import pytest
from go_helpers import board_from, random_game_move, random_move

from goapp.rules import BLACK, PASS_LOC, WHITE, Board, Color, Game, KoRule, Rules


def _snapshot(b: Board) -> tuple[bytes, int, int, int, int, int]:
    return (b.to_bytes(), b.hash, b.ko_loc, b.ko_color, b.captures(BLACK), b.captures(WHITE))


@pytest.mark.parametrize(
    ("width", "height", "allow_suicide", "seed"),
    [
        (19, 19, False, 1),
        (19, 19, True, 2),
        (9, 9, True, 3),
        (13, 7, False, 4),
        (5, 5, True, 5),
        (2, 2, True, 6),
        (25, 25, False, 7),
        (3, 11, True, 8),
    ],
)
def test_1000_random_moves_then_undo_all(
    width: int, height: int, allow_suicide: bool, seed: int
) -> None:
    rng = random.Random(seed)
    b = Board(width, height)
    color: int = BLACK
    records: list[int] = []
    snapshots = []
    captures = suicides = kos = 0
    for _ in range(1000):
        snapshots.append((_snapshot(b), b.copy()))
        if rng.random() < 0.03:
            loc = PASS_LOC
        else:
            # any legal move, eye-filling included, so that the board fills and empties
            legal = [p for p in b.empty_points() if b.is_legal(p, color, allow_suicide)]
            loc = rng.choice(legal) if legal else PASS_LOC
        before = b.num_stones(BLACK) + b.num_stones(WHITE)
        expected_hash = b.hash_after(loc, color) if loc != PASS_LOC else b.hash
        records.append(b.play_undoable(loc, color, allow_suicide))
        after = b.num_stones(BLACK) + b.num_stones(WHITE)
        assert b.hash == expected_hash
        captures += after <= before and loc != PASS_LOC
        suicides += loc != PASS_LOC and b.get(loc) == 0
        kos += b.ko_loc != 0
        b.check_consistency()
        color = 3 - color
    assert captures > 20  # the games really capture
    if allow_suicide and width * height > 4:
        assert suicides > 0
    if width * height > 4:
        assert kos > 0
    while records:
        b.undo(records.pop())
        b.check_consistency()
        snap, board = snapshots.pop()
        assert _snapshot(b) == snap
        assert b == board
    assert b == Board(width, height)


def test_undo_of_a_ko_capture_restores_the_ko_point() -> None:
    b = board_from(
        """
        .XO..
        XO.O.
        .XO..
        .....
        """
    )
    r1 = b.play_undoable(b.loc(2, 1), BLACK)  # C3 takes the ko
    ko = (b.ko_loc, b.ko_color)
    r2 = b.play_undoable(PASS_LOC, WHITE)
    assert b.ko_loc == 0
    b.undo(r2)
    assert (b.ko_loc, b.ko_color) == ko
    b.undo(r1)
    assert b.ko_loc == 0 and b.captures(BLACK) == 0
    assert b.get(b.loc(1, 1)) == WHITE
    b.check_consistency()


def test_undo_of_a_multi_stone_suicide() -> None:
    b = board_from(
        """
        O.X..
        XX...
        .....
        """
    )
    ref = b.copy()
    r = b.play_undoable(b.loc(1, 0), WHITE, True)
    assert b.get(b.loc(0, 0)) == 0 and b.captures(BLACK) == 2
    b.undo(r)
    assert b == ref
    b.check_consistency()


@pytest.mark.parametrize("ko", list(KoRule))
def test_game_undo_restores_turn_passes_and_superko_history(ko: KoRule) -> None:
    rng = random.Random(99 + int(ko))
    g = Game(7, rules=Rules(ko=ko, suicide=True, button=True), komi=0.5)
    states = []
    for _ in range(300):
        states.append(
            (
                _snapshot(g.board),
                g.to_move,
                g.consecutive_passes,
                g.button_holder,
                g.move_number,
                sorted(g.legal_moves()),
                g.situational_hash,
            )
        )
        loc = PASS_LOC if rng.random() < 0.08 else random_game_move(g, rng)
        g.play(loc)
    for _ in range(300):
        g.undo()
        g.board.check_consistency()
        snap, to_move, passes, button, n, legal, sit = states.pop()
        assert _snapshot(g.board) == snap
        assert g.to_move is to_move
        assert g.consecutive_passes == passes
        assert g.button_holder == button
        assert g.move_number == n
        assert sorted(g.legal_moves()) == legal
        assert g.situational_hash == sit
    with pytest.raises(IndexError):
        g.undo()
    assert g.to_move is Color.BLACK


def test_undo_does_not_remove_handicap_stones() -> None:
    g = Game(9, handicap=2)
    g.play("E5")
    g.undo()
    assert g.handicap == 2 and g.to_move is Color.WHITE
    assert len(g.board.stones(BLACK)) == 2
    with pytest.raises(IndexError):
        g.undo()


def test_random_move_helper_never_fills_own_eye() -> None:
    rng = random.Random(5)
    b = Board(9)
    color: int = BLACK
    for _ in range(200):
        loc = random_move(b, color, rng)
        if loc != PASS_LOC:
            assert not b.is_simple_eye(loc, color)
        b.play(loc, color)
        color = 3 - color
