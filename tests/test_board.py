"""Board mechanics: captures, ko, suicide, edges, sizes, handicap, errors and messages."""

from __future__ import annotations

import pickle

import pytest
from go_helpers import board_from, diagram

from goapp.rules import (
    BLACK,
    EMPTY,
    NULL_LOC,
    PASS_LOC,
    WHITE,
    Board,
    Color,
    Game,
    IllegalMoveError,
    KoError,
    OccupiedError,
    OffBoardError,
    OutOfTurnError,
    Rules,
    SuicideError,
    fixed_handicap_xy,
    gtp_to_xy,
    loc_of,
    parse_gtp,
    to_gtp,
    xy_of,
    xy_to_gtp,
)


def v(b: Board, vertex: str) -> int:
    return parse_gtp(vertex, b.width, b.height)


# -- captures ---------------------------------------------------------------------------


def test_single_stone_capture_in_the_middle() -> None:
    b = board_from(
        """
        .....
        ..X..
        .XOX.
        .....
        .....
        """
    )
    w = v(b, "C3")
    assert b.get(w) == WHITE
    assert b.chain_liberties(w) == 1
    assert b.play(v(b, "C2"), BLACK) == 1
    assert b.get(w) == EMPTY
    assert b.captures(BLACK) == 1 and b.captures(WHITE) == 0
    assert b.chain_liberties(v(b, "C2")) == 4  # C1 B2 D2 and the freed C3
    b.check_consistency()


def test_corner_and_edge_liberties_and_captures() -> None:
    b = Board(9)
    a1, b1, a2 = v(b, "A1"), v(b, "B1"), v(b, "A2")
    b.play(a1, WHITE)
    assert b.chain_liberties(a1) == 2
    b.play(b1, BLACK)
    assert b.chain_liberties(b1) == 2  # edge stone next to an enemy
    assert b.chain_liberties(a1) == 1
    assert b.play(a2, BLACK) == 1
    assert b.get(a1) == EMPTY
    e1 = v(b, "E1")
    b.play(e1, WHITE)
    assert b.chain_liberties(e1) == 3
    b.check_consistency()


def test_multi_stone_and_double_capture() -> None:
    b = board_from(
        """
        .XX.X.
        XOO.OX
        .XX.X.
        ......
        """
    )
    # D3 (the shared point) captures both white chains at once: 3 stones.
    d3 = v(b, "D3")
    assert b.chain_size(v(b, "B3")) == 2
    assert b.play(d3, BLACK) == 3
    assert b.captures(BLACK) == 3
    assert diagram(b) == ".XX.X.\nX..X.X\n.XX.X.\n......"
    assert b.chain_liberties(d3) == 4
    b.check_consistency()


def test_capture_gives_liberties_back_to_every_neighbour_chain() -> None:
    b = board_from(
        """
        .X.
        XOX
        ...
        """
    )
    b.play(v(b, "B1"), BLACK)
    assert b.get(v(b, "B2")) == EMPTY
    for vertex, libs in (("B3", 3), ("A2", 3), ("C2", 3), ("B1", 3)):
        assert b.chain_liberties(v(b, vertex)) == libs, vertex
    b.check_consistency()


def test_merging_chains_counts_shared_liberties_once() -> None:
    b = Board(5)
    b.play(v(b, "B2"), BLACK)
    b.play(v(b, "D2"), BLACK)
    b.play(v(b, "C3"), BLACK)
    b.play(v(b, "C2"), BLACK)  # joins three stones
    assert b.chain_size(v(b, "C2")) == 4
    # liberties: B1 C1 D1 A2 E2 B3 D3 C4 -> 8
    assert b.chain_liberties(v(b, "B2")) == 8
    assert sorted(b.chain(v(b, "C3"))) == sorted(v(b, x) for x in ("B2", "C2", "D2", "C3"))
    b.check_consistency()


# -- ko ---------------------------------------------------------------------------------

KO = """
.XO..
XO.O.
.XO..
.....
"""


def test_ko_capture_sets_the_ko_point_and_bans_only_the_recapture() -> None:
    b = board_from(KO)
    c3, b3 = v(b, "C3"), v(b, "B3")
    assert b.play(c3, BLACK) == 1  # takes the ko
    assert b.ko_loc == b3 and b.ko_color == WHITE
    assert not b.is_legal(b3, WHITE)
    assert b.is_legal(b3, BLACK)  # Black may fill the ko
    with pytest.raises(KoError) as exc:
        b.play(b3, WHITE)
    assert str(exc.value) == "B3 would recapture the ko immediately; play elsewhere first"
    assert exc.value.vertex == "B3" and exc.value.color == WHITE
    assert isinstance(exc.value, IllegalMoveError) and isinstance(exc.value, ValueError)
    # a ko threat elsewhere, an answer, then the recapture is legal
    b.play(v(b, "E1"), WHITE)
    assert b.ko_loc == NULL_LOC
    b.play(v(b, "E2"), BLACK)
    assert b.play(b3, WHITE) == 1
    assert b.ko_loc == c3 and b.ko_color == BLACK
    b.check_consistency()


def test_pass_clears_the_ko() -> None:
    b = board_from(KO)
    b.play(v(b, "C3"), BLACK)
    b.play(PASS_LOC, WHITE)
    assert b.ko_loc == NULL_LOC
    b.play(PASS_LOC, BLACK)
    assert b.is_legal(v(b, "B3"), WHITE)


def test_capturing_one_stone_with_a_connected_stone_is_not_ko() -> None:
    b = board_from(
        """
        .XX.
        XO..
        .X..
        """
    )
    # Black C2 takes B2, but C2 joins C3: no ko, White may play B2 at once if legal.
    assert b.play(v(b, "C2"), BLACK) == 1
    assert b.ko_loc == NULL_LOC
    assert b.chain_size(v(b, "C2")) == 3
    b.check_consistency()


# -- suicide ----------------------------------------------------------------------------


def test_single_stone_suicide_is_always_illegal() -> None:
    b = board_from(
        """
        .X...
        X....
        .....
        """
    )
    a3 = v(b, "A3")
    for allow in (False, True):
        assert not b.is_legal(a3, WHITE, allow)
        with pytest.raises(SuicideError) as exc:
            b.play(a3, WHITE, allow)
        assert str(exc.value) == "A3 would be suicide: the stone would have no liberties"
    assert b.is_legal(a3, BLACK)  # filling one's own eye is legal
    b.check_consistency()


def test_multi_stone_suicide_depends_on_the_rules() -> None:
    b = board_from(
        """
        O.X..
        XX...
        .....
        """
    )
    # White B3 would join A3 (1 liberty: B3) and leave the pair with none.
    b3 = v(b, "B3")
    assert not b.is_legal(b3, WHITE)
    with pytest.raises(SuicideError, match="your stones there would have no liberties"):
        b.play(b3, WHITE)
    assert b.is_legal(b3, WHITE, True)
    assert b.play(b3, WHITE, True) == 0
    assert b.get(b3) == EMPTY and b.get(v(b, "A3")) == EMPTY
    assert b.captures(BLACK) == 2  # the suicided stones are Black's prisoners
    b.check_consistency()


def test_a_move_that_captures_is_not_suicide_and_can_make_a_corner_ko() -> None:
    b = board_from(
        """
        XO..
        .X..
        X...
        """
    )
    a2 = v(b, "A2")
    assert b.is_suicide(a2, WHITE) is False
    assert b.is_legal(a2, WHITE)
    assert b.play(a2, WHITE) == 1  # takes A3
    assert b.get(v(b, "A3")) == EMPTY
    assert b.ko_loc == v(b, "A3") and b.ko_color == BLACK
    assert not b.is_legal(v(b, "A3"), BLACK)
    b.check_consistency()


# -- sizes and shapes -------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 26, 0, -3])
def test_bad_sizes_are_refused(size: int) -> None:
    with pytest.raises(ValueError, match="between 2 and 25"):
        Board(size)


def test_smallest_board() -> None:
    b = Board(2)
    a1, b1, a2, b2 = (v(b, x) for x in ("A1", "B1", "A2", "B2"))
    assert len(b.all_locs()) == 4
    b.play(a1, BLACK)
    b.play(b2, WHITE)
    assert b.chain_liberties(a1) == 2
    b.play(b1, BLACK)  # atari on B2, whose last liberty A2 is also Black's last
    assert b.chain_liberties(b2) == 1 and b.chain_liberties(a1) == 1
    assert b.play(a2, WHITE) == 2  # White A2 captures A1-B1 first, so it is not suicide
    assert b.num_stones(WHITE) == 2 and b.num_stones(BLACK) == 0
    assert b.ko_loc == NULL_LOC  # two stones were captured
    b.play(b1, BLACK)
    assert b.play(a1, BLACK) == 2
    assert b.chain_liberties(a1) == 2
    assert b.captures(BLACK) == 2 and b.captures(WHITE) == 2
    b.check_consistency()


def test_largest_board_and_its_corners() -> None:
    b = Board(25)
    assert b.vertex(b.loc(24, 0)) == "Z25"
    assert b.vertex(b.loc(0, 24)) == "A1"
    for vertex in ("A1", "A25", "Z1", "Z25", "M13"):
        loc = v(b, vertex)
        b.play(loc, BLACK)
        assert b.vertex(loc) == vertex
    assert b.chain_liberties(v(b, "Z25")) == 2
    assert b.chain_liberties(v(b, "M13")) == 4
    b.play(v(b, "Y25"), WHITE)
    b.play(v(b, "Z24"), WHITE)
    assert b.get(v(b, "Z25")) == EMPTY
    assert b.captures(WHITE) == 1
    b.check_consistency()


def test_rectangular_board() -> None:
    b = Board(7, 3)
    assert (b.width, b.height) == (7, 3)
    assert len(b.all_locs()) == 21
    assert b.vertex(b.loc(6, 0)) == "G3"
    assert b.vertex(b.loc(0, 2)) == "A1"
    with pytest.raises(OffBoardError):
        b.loc(0, 3)
    with pytest.raises(OffBoardError):
        parse_gtp("H1", 7, 3)
    with pytest.raises(OffBoardError):
        parse_gtp("A4", 7, 3)
    # capture a white stone against the right edge
    b.play(v(b, "G2"), WHITE)
    b.play(v(b, "G1"), BLACK)
    b.play(v(b, "G3"), BLACK)
    assert b.play(v(b, "F2"), BLACK) == 1
    assert b.get(v(b, "G2")) == EMPTY
    tall = Board(2, 9)
    tall.play(v(tall, "A9"), BLACK)
    assert tall.chain_liberties(v(tall, "A9")) == 2
    assert str(tall).splitlines()[1] == " 9 X ."
    b.check_consistency()
    tall.check_consistency()


def test_coordinates_round_trip_everywhere() -> None:
    for w, h in ((19, 19), (25, 25), (9, 13), (2, 2), (25, 3)):
        for y in range(h):
            for x in range(w):
                loc = loc_of(x, y, w, h)
                assert xy_of(loc, w) == (x, y)
                vert = to_gtp(loc, w, h)
                assert vert == xy_to_gtp(x, y, h, w)
                assert parse_gtp(vert, w, h) == loc
                assert parse_gtp(vert.lower(), w, h) == loc
                assert gtp_to_xy(vert, w, h) == (x, y)
    assert parse_gtp("pass", 19, 19) == PASS_LOC
    assert parse_gtp("PASS", 19, 19) == PASS_LOC
    assert to_gtp(PASS_LOC, 19, 19) == "pass"
    assert gtp_to_xy("D4", 19, 19) == (3, 15)


@pytest.mark.parametrize("bad", ["I5", "T20", "Z1", "A0", "", "4D", "D", "DD4", "A-1"])
def test_bad_vertices_are_refused(bad: str) -> None:
    with pytest.raises(OffBoardError):
        parse_gtp(bad, 19, 19)


def test_copy_is_independent_and_equal() -> None:
    b = board_from(KO)
    b.play(v(b, "C3"), BLACK)
    c = b.copy()
    assert c == b and c.hash == b.hash and c.ko_loc == b.ko_loc
    c.play(v(c, "E1"), WHITE)
    assert c != b
    assert b.get(v(b, "E1")) == EMPTY
    assert b.ko_loc == v(b, "B3")
    p = pickle.loads(pickle.dumps(b))
    assert p == b
    b.check_consistency()
    c.check_consistency()
    p.check_consistency()


def test_hash_depends_on_stones_only_and_is_deterministic() -> None:
    a, b = Board(9), Board(9)
    a.play(v(a, "C3"), BLACK)
    a.play(v(a, "D4"), WHITE)
    b.play(v(b, "D4"), WHITE)
    b.play(v(b, "C3"), BLACK)
    assert a.hash == b.hash
    assert Board(9).hash != Board(13).hash
    assert Board(9, 13).hash != Board(13, 9).hash
    assert Board(9).hash == Board(9).hash
    assert a.hash_after(v(a, "E5"), BLACK) != a.hash


def test_place_stones_refuses_captures_and_occupied_points() -> None:
    b = Board(5)
    b.place_stones([v(b, "A2"), v(b, "B1")], BLACK)
    with pytest.raises(ValueError, match="set-up stones"):
        b.place_stones([v(b, "A1")], WHITE)
    assert b.get(v(b, "A1")) == EMPTY
    with pytest.raises(OccupiedError):
        b.place_stones([v(b, "C3"), v(b, "A2")], WHITE)
    assert b.get(v(b, "C3")) == EMPTY  # all or nothing


# -- errors and messages ----------------------------------------------------------------


def test_occupied_message_uses_gtp_coordinates() -> None:
    b = Board(19)
    b.play(v(b, "D4"), BLACK)
    with pytest.raises(OccupiedError) as exc:
        b.play(v(b, "D4"), WHITE)
    assert str(exc.value) == "D4 is already occupied"
    assert exc.value.vertex == "D4"


def test_off_board_and_bad_colour() -> None:
    b = Board(9)
    with pytest.raises(OffBoardError, match="not on the 9x9 board"):
        b.play(0, BLACK)
    with pytest.raises(OffBoardError):
        b.play(b.arr_size + 5, BLACK)
    with pytest.raises(ValueError, match="color must be"):
        b.play(v(b, "E5"), EMPTY)
    assert not b.is_legal(v(b, "E5"), 7)
    assert not b.is_legal(-1, BLACK)
    assert not b.is_legal(10**6, BLACK)


def test_game_messages_for_players() -> None:
    g = Game(19)
    g.play("D4")
    with pytest.raises(OccupiedError, match=r"^D4 is already occupied$"):
        g.play("D4")
    with pytest.raises(OutOfTurnError, match="it is White's turn, not Black's"):
        g.play("Q16", Color.BLACK)
    with pytest.raises(OffBoardError, match="T20 is not on the 19x19 board"):
        g.play("T20")
    with pytest.raises(OffBoardError, match="not a board point"):
        g.play("I9")
    g.play("Q16", Color.WHITE)
    assert g.to_move is Color.BLACK


# -- handicap ---------------------------------------------------------------------------

GTP_FIXED_19 = {
    2: "D4 Q16",
    3: "D4 Q16 D16",
    4: "D4 Q16 D16 Q4",
    5: "D4 Q16 D16 Q4 K10",
    6: "D4 Q16 D16 Q4 D10 Q10",
    7: "D4 Q16 D16 Q4 D10 Q10 K10",
    8: "D4 Q16 D16 Q4 D10 Q10 K4 K16",
    9: "D4 Q16 D16 Q4 D10 Q10 K4 K16 K10",
}


@pytest.mark.parametrize("n", range(2, 10))
def test_fixed_handicap_19(n: int) -> None:
    got = [xy_to_gtp(x, y, 19) for x, y in fixed_handicap_xy(n, 19)]
    assert got == GTP_FIXED_19[n].split()


def test_fixed_handicap_13_and_9_and_7() -> None:
    assert [xy_to_gtp(x, y, 13) for x, y in fixed_handicap_xy(9, 13)] == (
        ["D4", "K10", "D10", "K4", "D7", "K7", "G4", "G10", "G7"]
    )
    assert [xy_to_gtp(x, y, 9) for x, y in fixed_handicap_xy(5, 9)] == [
        "C3",
        "G7",
        "C7",
        "G3",
        "E5",
    ]
    assert [xy_to_gtp(x, y, 7) for x, y in fixed_handicap_xy(4, 7)] == ["C3", "E5", "C5", "E3"]


@pytest.mark.parametrize(("n", "size"), [(1, 19), (10, 19), (5, 8), (5, 7), (2, 5), (3, 6)])
def test_impossible_fixed_handicaps(n: int, size: int) -> None:
    with pytest.raises(ValueError):
        fixed_handicap_xy(n, size)


def test_game_with_fixed_handicap() -> None:
    g = Game(19, handicap=4, komi=0.5)
    assert g.to_move is Color.WHITE
    assert g.handicap == 4
    assert sorted(g.vertex(loc) for loc in g.board.stones(BLACK)) == sorted(GTP_FIXED_19[4].split())
    with pytest.raises(OutOfTurnError):
        g.play("K10", Color.BLACK)
    g.play("K10")
    assert g.board.get(g.to_loc("K10")) == WHITE


def test_game_with_free_handicap() -> None:
    g = Game(9, handicap_stones=["C3", (6, 2), "E5"])
    assert g.handicap == 3 and g.to_move is Color.WHITE
    assert sorted(g.vertex(loc) for loc in g.board.stones(BLACK)) == ["C3", "E5", "G7"]
    g2 = Game(9)
    g2.place_free_handicap(["A1", "J9"])
    assert g2.handicap == 2 and g2.to_move is Color.WHITE
    with pytest.raises(ValueError):
        g2.place_free_handicap(["E5", "E6"])
    with pytest.raises(ValueError):
        Game(9, handicap_stones=["C3", "C3"])
    with pytest.raises(ValueError):
        Game(9, handicap_stones=["C3"])
    with pytest.raises(ValueError):
        Game(9, handicap=2, handicap_stones=["C3", "G7"])


def test_rules_japanese_game_plays_ko_as_simple_ko() -> None:
    g = Game(5, rules=Rules.from_name("japanese"))
    for mv in ("B4", "C4", "A3", "D3", "B2", "C2", "pass", "B3"):
        g.play(mv)
    # Black C3 takes the white stone B3; White may not retake at once.
    assert g.play("C3") == 1
    with pytest.raises(KoError):
        g.play("B3")
    assert not g.is_legal("B3")


def test_game_setup_stones_start_the_history() -> None:
    g = Game(5, rules=Rules.from_name("tromp-taylor"))
    g.setup(black=["A1", "B2"], white=["C3"], to_move=Color.WHITE)
    assert g.to_move is Color.WHITE
    assert g.board.get(g.to_loc("C3")) == WHITE
    assert g.board.get(g.to_loc("B2")) == BLACK
    with pytest.raises(OccupiedError):
        g.setup(white=["A1"])
    assert g.board.get(g.to_loc("A1")) == BLACK  # unchanged after the failure
    g.play("D4")
    with pytest.raises(ValueError, match="before the first move"):
        g.setup(black=["E5"])


def test_game_edit_changes_the_position_mid_game() -> None:
    """Game.edit is SGF's AB/AW/AE/PL at any time: overwrite, clear, keep captures."""
    g = Game(5, rules=Rules.from_name("tromp-taylor"))
    for mv in ("B1", "A1", "C1", "pass", "A2"):  # Black takes A1
        g.play(mv)
    assert g.board.captures(BLACK) == 1 and g.to_move is Color.WHITE
    g.edit(black=["A1"], white=["B1"], empty=["C1"], to_move=Color.BLACK)
    board = g.board
    assert (board.get(g.to_loc("A1")), board.get(g.to_loc("B1"))) == (BLACK, WHITE)
    assert board.get(g.to_loc("C1")) == 0 and board.captures(BLACK) == 1
    assert g.to_move is Color.BLACK and g.move_number == 5
    g.play("C1")  # Black takes B1 back: a position before the edit is not banned
    g.undo()
    with pytest.raises(IndexError, match="edited"):
        g.undo()
    with pytest.raises(ValueError, match="liberties"):
        g.edit(white=["C1"], black=["D1", "C2", "B2"])  # B1-C1 would have no liberty
    assert g.board.get(g.to_loc("C1")) == 0  # unchanged after the failure
