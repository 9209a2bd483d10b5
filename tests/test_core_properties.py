"""Property tests for the core: undo, hashing, superko, scoring sums, copies, symmetry."""

from __future__ import annotations

import random

import pytest
from go_helpers import random_move
from hypothesis import given, settings
from hypothesis import strategies as st

from goapp.rules import (
    BLACK,
    PASS_LOC,
    WHITE,
    Board,
    Game,
    KoRule,
    Rules,
    ScoringRule,
    SuperkoError,
    TaxRule,
    random_playout_game,
    random_playouts,
    record_playout_games,
    score_position,
)

sizes = st.tuples(st.integers(2, 9), st.integers(2, 9))
SETTINGS = settings(max_examples=60, deadline=None)


def play_random(b: Board, rng: random.Random, n: int, allow_suicide: bool) -> list[int]:
    color: int = BLACK
    records = []
    for _ in range(n):
        legal = [p for p in b.empty_points() if b.is_legal(p, color, allow_suicide)]
        loc = rng.choice(legal) if legal and rng.random() > 0.05 else PASS_LOC
        records.append(b.play_undoable(loc, color, allow_suicide))
        color = 3 - color
    return records


@SETTINGS
@given(size=sizes, seed=st.integers(0, 2**32), n=st.integers(0, 150), suicide=st.booleans())
def test_undo_restores_position_and_hash(
    size: tuple[int, int], seed: int, n: int, suicide: bool
) -> None:
    rng = random.Random(seed)
    b = Board(*size)
    play_random(b, rng, n // 2, suicide)
    before = b.copy()
    records = play_random(b, rng, n - n // 2, suicide)
    for r in reversed(records):
        b.undo(r)
    assert b == before
    assert b.hash == before.hash and b.to_bytes() == before.to_bytes()
    b.check_consistency()


@SETTINGS
@given(size=sizes, seed=st.integers(0, 2**32), suicide=st.booleans())
def test_hash_after_predicts_the_hash_and_the_hash_is_a_function_of_the_stones(
    size: tuple[int, int], seed: int, suicide: bool
) -> None:
    rng = random.Random(seed)
    b = Board(*size)
    color: int = BLACK
    for _ in range(60):
        legal = [p for p in b.empty_points() if b.is_legal(p, color, suicide)]
        if not legal:
            break
        loc = rng.choice(legal)
        predicted = b.hash_after(loc, color)
        b.play(loc, color, suicide)
        assert b.hash == predicted
        color = 3 - color
    # a board set up from the same stones has the same hash
    rebuilt = Board(*size)
    rebuilt.place_stones(b.stones(BLACK), BLACK)
    rebuilt.place_stones(b.stones(WHITE), WHITE)
    assert rebuilt.hash == b.hash and rebuilt.same_position(b)


@SETTINGS
@given(size=sizes, seed=st.integers(0, 2**32))
def test_copies_are_independent(size: tuple[int, int], seed: int) -> None:
    rng = random.Random(seed)
    b = Board(*size)
    play_random(b, rng, 20, False)
    snapshot = (b.to_bytes(), b.hash, b.ko_loc, b.captures(BLACK), b.captures(WHITE))
    c = b.copy()
    play_random(c, rng, 30, True)
    assert (b.to_bytes(), b.hash, b.ko_loc, b.captures(BLACK), b.captures(WHITE)) == snapshot
    b.check_consistency()
    c.check_consistency()


def _transform(x: int, y: int, n: int, k: int) -> tuple[int, int]:
    if k & 1:
        x = n - 1 - x
    if k & 2:
        y = n - 1 - y
    if k & 4:
        x, y = y, x
    return x, y


@SETTINGS
@given(n=st.integers(2, 11), seed=st.integers(0, 2**32), k=st.integers(1, 7))
def test_the_rules_are_symmetric(n: int, seed: int, k: int) -> None:
    """Playing the mirrored/rotated moves gives the mirrored/rotated position."""
    rng = random.Random(seed)
    a, b = Board(n), Board(n)
    color: int = BLACK
    for _ in range(80):
        loc = random_move(a, color, rng)
        if loc == PASS_LOC:
            mloc = PASS_LOC
        else:
            x, y = a.xy(loc)
            mloc = b.loc(*_transform(x, y, n, k))
        assert b.is_legal(mloc, color)
        assert a.play(loc, color) == b.play(mloc, color)
        color = 3 - color
    for y in range(n):
        for x in range(n):
            assert a[x, y] == b[_transform(x, y, n, k)]
    for c in (BLACK, WHITE):
        legal_a = {_transform(*a.xy(p), n, k) for p in a.empty_points() if a.is_legal(p, c)}
        legal_b = {b.xy(p) for p in b.empty_points() if b.is_legal(p, c)}
        assert legal_a == legal_b


def _reference_legal(g: Game, history: list[tuple[bytes, int]]) -> set[int]:
    """Legal moves by brute force: try each move on a copy and compare whole positions."""
    pla = int(g.to_move)
    positions = {pos for pos, _ in history}
    situations = set(history)
    out = set()
    for loc in g.board.empty_points():
        b = g.board.copy()
        b.clear_ko()  # the simple-ko recapture is a repetition anyway
        if not b.is_legal(loc, pla, g.rules.suicide):
            continue
        b.play(loc, pla, g.rules.suicide)
        pos = b.to_bytes()
        if g.rules.ko is KoRule.POSITIONAL and pos in positions:
            continue
        if g.rules.ko is KoRule.SITUATIONAL and (pos, 3 - pla) in situations:
            continue
        if g.rules.ko is KoRule.SIMPLE and not g.board.is_legal(loc, pla, g.rules.suicide):
            continue
        out.add(loc)
    return out


def _superko_games(ko: KoRule, seed: int, size: int, turns: int) -> int:
    """Play a random game under ``ko``, checking every turn's legal moves against the
    brute-force reference. Returns how many moves were banned by superko only."""
    rng = random.Random(seed)
    g = Game(size, rules=Rules(ko=ko, suicide=True), komi=0.5)
    history = [(g.board.to_bytes(), int(g.to_move))]
    banned_by_superko = 0
    for _ in range(turns):
        legal = set(g.legal_moves())
        assert legal == _reference_legal(g, history)
        for loc in g.board.empty_points():
            if g.board.is_legal(loc, g.to_move, True) and loc not in legal:
                banned_by_superko += 1
                with pytest.raises(SuperkoError, match="would repeat an earlier board position"):
                    g.play(loc)
        loc = rng.choice(sorted(legal)) if legal and rng.random() > 0.1 else PASS_LOC
        g.play(loc)
        history.append((g.board.to_bytes(), int(g.to_move)))
    return banned_by_superko


@pytest.mark.parametrize("ko", [KoRule.POSITIONAL, KoRule.SITUATIONAL, KoRule.SIMPLE])
def test_superko_matches_a_brute_force_reference(ko: KoRule) -> None:
    banned = sum(_superko_games(ko, seed, size, 120) for seed, size in enumerate((2, 3, 3, 4, 4)))
    if ko is not KoRule.SIMPLE:
        assert banned > 0  # the games really ran into superko


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), size=st.integers(2, 5), ko=st.sampled_from(list(KoRule)))
def test_superko_property(seed: int, size: int, ko: KoRule) -> None:
    _superko_games(ko, seed, size, 40)


@SETTINGS
@given(size=st.integers(2, 13), seed=st.integers(0, 2**63))
def test_area_scores_add_up(size: int, seed: int) -> None:
    """After a random playout every point is a stone, an eye, or dame/seki: the two area
    scores plus dame and seki points are the whole board, and exactly the board when there
    is neither."""
    rng = random.Random(seed)
    b = Board(size)
    color: int = BLACK
    passes = 0
    while passes < 2:
        loc = random_move(b, color, rng)
        passes = passes + 1 if loc == PASS_LOC else 0
        b.play(loc, color)
        color = 3 - color
    for tax in (TaxRule.NONE, TaxRule.SEKI):
        s = score_position(b, Rules(scoring=ScoringRule.AREA, tax=tax), komi=0)
        assert s.black + s.white + s.dame + s.seki == size * size
        if s.dame == 0 and s.seki == 0:
            assert s.black + s.white == size * size
        own = s.ownership
        assert own.count(1) == s.black and own.count(2) == s.white


def test_random_playouts_are_deterministic_and_replay_legally() -> None:
    games = record_playout_games(5, 19, 12345)
    assert [len(g) for g in games] == [random_playout_game(19, 12345 + i) for i in range(5)]
    assert sum(len(g) for g in games) == random_playouts(5, 19, 12345)
    for moves in games:
        b = Board(19)
        color: int = BLACK
        for loc in moves:
            assert b.is_legal(loc, color)
            if loc != PASS_LOC:
                assert not b.is_simple_eye(loc, color)
            b.play(loc, color)
            color = 3 - color
        b.check_consistency()
        assert moves[-2:] == [PASS_LOC, PASS_LOC] or len(moves) == 1000


def test_playout_game_length_is_about_455_on_19x19() -> None:
    total = random_playouts(400, 19, 12345)
    assert 440 < total / 400 < 470
