"""Counting: area vs territory, dead stones, seki under Japanese rules, komi, handicap
bonus, button, and result strings."""

from __future__ import annotations

import pytest
from go_helpers import board_from

from goapp.rules import (
    BLACK,
    WHITE,
    Color,
    Game,
    Result,
    ResultReason,
    Rules,
    ScoringRule,
    TaxRule,
    handicap_bonus,
    score_position,
)

JAPANESE = Rules.from_name("japanese")
CHINESE = Rules.from_name("chinese")
AGA = Rules.from_name("aga")

SPLIT = """
.XO..
.XO..
.XO..
.XO..
.XO..
"""

# One-eye seki: the white group B4..F3 (eye D4) and the black group G4..J3 (eye H4) share
# the liberty F4 and cannot capture each other. The outer groups have two eyes or more.
SEKI = """
.XO.O.X.XO.
XXOOOOXXXOO
XXXXXXOOOOO
.X.X.XO.O.O
"""


def test_area_and_territory_on_a_split_board() -> None:
    b = board_from(SPLIT)
    area = score_position(b, CHINESE, komi=7.5)
    assert (area.black, area.white) == (10.0, 15.0 + 7.5)
    assert area.black_stones == 5 and area.black_territory == 5
    assert area.white_stones == 5 and area.white_territory == 10
    assert area.dame == 0 and area.seki == 0
    assert area.margin == -12.5 and str(area.result) == "W+12.5"
    terr = score_position(b, JAPANESE, komi=6.5)
    assert (terr.black, terr.white) == (5.0, 16.5)
    assert str(terr.result) == "W+11.5"
    assert terr.owner(0, 0, 5) is Color.BLACK and terr.owner(4, 4, 5) is Color.WHITE
    assert terr.owner(1, 2, 5) is Color.BLACK  # a living stone belongs to its colour


def test_dead_stones_are_territory_and_prisoners() -> None:
    b = board_from(
        """
        .XO..
        .XO..
        OXO..
        .XO.X
        .XO..
        """
    )
    b.set_captures(2, 3)  # Black took 2 stones during the game, White 3
    a3, e2 = b.loc(0, 2), b.loc(4, 3)
    alive = score_position(b, JAPANESE, komi=0)
    # Without marking, A3 splits Black's side: no territory for Black there
    assert alive.black_territory == 0
    counted = score_position(b, JAPANESE, komi=0, dead=[a3, e2])
    assert counted.black_territory == 5  # 4 empty points + the dead stone's point
    assert counted.white_territory == 10
    assert counted.black_prisoners == 2 + 1
    assert counted.white_prisoners == 3 + 1
    assert (counted.black, counted.white) == (8.0, 14.0)
    area = score_position(b, CHINESE, komi=0, dead=[a3, e2])
    assert (area.black, area.white) == (10.0, 15.0)  # captures do not matter in area
    with pytest.raises(ValueError, match="no stone"):
        score_position(b, CHINESE, komi=0, dead=[b.loc(3, 3)])


def test_marking_one_stone_marks_its_whole_chain() -> None:
    b = board_from(
        """
        .XO..
        OXO..
        OXO..
        .XO..
        """
    )
    s = score_position(b, JAPANESE, komi=0, dead=[b.loc(0, 1)])
    assert s.black_prisoners == 2 and s.black_territory == 4


def test_seki_points_are_not_territory_under_japanese_rules() -> None:
    b = board_from(SEKI)
    jp = score_position(b, JAPANESE, komi=0)
    assert jp.seki == 2  # the eyes D4 and H4
    assert jp.dame == 1  # the shared liberty F4
    assert (jp.black_territory, jp.white_territory) == (4, 3)
    assert (jp.black, jp.white) == (4.0, 3.0)
    # Tax NONE counts the eyes in seki as territory
    no_tax = score_position(b, JAPANESE.with_options(tax=TaxRule.NONE), komi=0)
    assert (no_tax.black_territory, no_tax.white_territory) == (5, 4)
    assert no_tax.seki == 0
    # Chinese area scoring: stones + territory, eyes in seki count (tax NONE)
    cn = score_position(b, CHINESE, komi=0)
    assert (cn.black, cn.white) == (17.0 + 5, 17.0 + 4)
    assert cn.black + cn.white + cn.dame == 44
    # Tax ALL: seki eyes do not count and each independently alive group pays 2
    stone = score_position(b, Rules(scoring=ScoringRule.AREA, tax=TaxRule.ALL), komi=0)
    assert (stone.black, stone.white) == (17.0 + 4 - 2, 17.0 + 3 - 2)


def test_unfilled_dame_next_to_a_living_group_costs_no_territory() -> None:
    b = board_from(
        """
        .X.O.
        .XO..
        .XO..
        .XO..
        .XO..
        """
    )
    s = score_position(b, JAPANESE, komi=0)
    assert s.dame == 1 and s.seki == 0
    assert (s.black_territory, s.white_territory) == (5, 9)


def test_empty_board_is_all_dame() -> None:
    b = Game(9).board
    s = score_position(b, CHINESE, komi=7.5)
    assert s.dame == 81 and s.black == 0 and s.white == 7.5
    assert str(s.result) == "W+7.5"


def test_komi_and_jigo() -> None:
    b = board_from(SPLIT)
    s = score_position(b, CHINESE, komi=-5)
    assert s.margin == 0 and s.result.is_draw and str(s.result) == "0"
    assert str(score_position(b, CHINESE, komi=-5.5).result) == "B+0.5"


def test_white_handicap_bonus() -> None:
    assert handicap_bonus(CHINESE, 4) == 4
    assert handicap_bonus(AGA, 4) == 3
    assert handicap_bonus(JAPANESE, 4) == 0
    assert handicap_bonus(CHINESE, 0) == 0
    g = Game(9, rules=CHINESE, komi=0.5, handicap=3)
    s = g.score()
    assert s.handicap_bonus == 3
    assert s.black == 3 + 78  # three stones own the whole empty board
    assert s.white == 0.5 + 3
    g2 = Game(9, rules=AGA, komi=0.5, handicap=3)
    assert g2.score().handicap_bonus == 2
    g3 = Game(9, rules=JAPANESE, komi=0.5, handicap=3)
    assert g3.score().white == 0.5


def test_button_goes_to_the_first_player_to_pass() -> None:
    rules = AGA.with_options(button=True)
    g = Game(5, rules=rules, komi=7.0)
    g.play("C3")
    g.play("pass")  # White passes first
    g.play("pass")
    assert g.button_holder is Color.WHITE and g.is_over
    s = g.score()
    assert s.button == 0.5
    assert s.black == 25 and s.white == 7.5
    g.undo()
    g.undo()
    assert g.button_holder is None


def test_game_score_counts_captures_under_territory_rules() -> None:
    g = Game(5, rules=JAPANESE, komi=0.5)
    # Black captures a white stone at B4
    for mv in ("A4", "B4", "B5", "pass", "C4", "pass", "B3"):
        g.play(mv)
    assert g.board.captures(BLACK) == 1
    s = g.score()
    assert s.black_prisoners == 1
    assert s.black == s.black_territory + 1
    assert g.result() == s.result
    assert g.board.captures(WHITE) == 0


# -- results ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "winner", "reason", "margin", "canonical"),
    [
        ("B+3.5", Color.BLACK, ResultReason.SCORE, 3.5, "B+3.5"),
        ("W+12", Color.WHITE, ResultReason.SCORE, 12.0, "W+12"),
        ("W+0.5", Color.WHITE, ResultReason.SCORE, 0.5, "W+0.5"),
        ("W+R", Color.WHITE, ResultReason.RESIGN, None, "W+R"),
        ("B+Resign", Color.BLACK, ResultReason.RESIGN, None, "B+R"),
        ("B+T", Color.BLACK, ResultReason.TIME, None, "B+T"),
        ("w+time", Color.WHITE, ResultReason.TIME, None, "W+T"),
        ("B+F", Color.BLACK, ResultReason.FORFEIT, None, "B+F"),
        ("B+", Color.BLACK, ResultReason.WIN, None, "B+"),
        ("0", None, ResultReason.DRAW, None, "0"),
        ("Draw", None, ResultReason.DRAW, None, "0"),
        ("Void", None, ResultReason.VOID, None, "Void"),
        ("?", None, ResultReason.UNKNOWN, None, "?"),
        ("B+0", Color.BLACK, ResultReason.WIN, None, "B+"),  # Fox: a win without a count
        ("W+0.0", Color.WHITE, ResultReason.WIN, None, "W+"),
        ("b + 3,5", Color.BLACK, ResultReason.SCORE, 3.5, "B+3.5"),
        ("W+Timeout", Color.WHITE, ResultReason.TIME, None, "W+T"),
        ("No result", None, ResultReason.VOID, None, "Void"),
        ("白中盘胜", Color.WHITE, ResultReason.RESIGN, None, "W+R"),
        ("黒 時間勝ち", Color.BLACK, ResultReason.TIME, None, "B+T"),
        ("白胜", Color.WHITE, ResultReason.WIN, None, "W+"),
        ("和棋", None, ResultReason.DRAW, None, "0"),
        ("백 승 4집반", Color.WHITE, ResultReason.SCORE, 4.5, "W+4.5"),
        ("黑胜2子", Color.BLACK, ResultReason.SCORE, 4.0, "B+4"),
    ],
)
def test_result_parse_and_format(
    text: str, winner: Color | None, reason: ResultReason, margin: float | None, canonical: str
) -> None:
    r = Result.parse(text)
    assert (r.winner, r.reason, r.margin) == (winner, reason, margin)
    assert str(r) == canonical
    assert Result.parse(str(r)) == r


@pytest.mark.parametrize(
    "bad", ["X+3", "B+-2", "B+abc", "B3.5", "W+inf", "B+nan", "Black wins", "白胜3目又"]
)
def test_bad_results_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        Result.parse(bad)


def test_result_constructors() -> None:
    assert str(Result.by_score(3.5)) == "B+3.5"
    assert str(Result.by_score(-0.5)) == "W+0.5"
    assert str(Result.by_score(0)) == "0"
    assert str(Result.resignation(Color.WHITE)) == "W+R"
    assert str(Result.timeout(Color.BLACK)) == "B+T"
    assert str(Result.forfeit(Color.WHITE)) == "W+F"
    assert str(Result.void()) == "Void"
    assert str(Result.win(Color.BLACK)) == "B+"
    assert str(Result.by_score(1234567.5)) == "B+1234567.5"  # no exponent
    assert str(Result.unknown("Black wins")) == "Black wins"
    assert Result.by_score(-2).black_minus_white() == -2
    assert Result.resignation(Color.BLACK).black_minus_white() is None
    with pytest.raises(ValueError):
        Result(Color.BLACK, ResultReason.SCORE, -1.0)
    with pytest.raises(ValueError):
        Result(None, ResultReason.RESIGN)
    with pytest.raises(ValueError):
        Result(Color.BLACK, ResultReason.DRAW)
    with pytest.raises(ValueError):
        Result(None, ResultReason.DRAW, raw="Jigo")  # only an unknown result keeps its text


def test_named_rulesets_match_katago() -> None:
    """The combinations of KataGo's cpp/game/rules.cpp (parseRulesHelper)."""
    from goapp.rules import KoRule, WhiteHandicapBonus

    expect = {
        # name: (ko, scoring, tax, suicide, button, whb, friendlyPassOk)
        "japanese": ("SIMPLE", "TERRITORY", "SEKI", False, False, "ZERO", False),
        "korean": ("SIMPLE", "TERRITORY", "SEKI", False, False, "ZERO", False),
        "chinese": ("SIMPLE", "AREA", "NONE", False, False, "N", True),
        "aga": ("SITUATIONAL", "AREA", "NONE", False, False, "N_MINUS_ONE", True),
        "new-zealand": ("SITUATIONAL", "AREA", "NONE", True, False, "ZERO", True),
        "tromp-taylor": ("POSITIONAL", "AREA", "NONE", True, False, "ZERO", False),
    }
    for name, (ko, scoring, tax, suicide, button, whb, fpok) in expect.items():
        r = Rules.from_name(name)
        assert r.ko is KoRule[ko], name
        assert r.scoring is ScoringRule[scoring], name
        assert r.tax is TaxRule[tax], name
        assert r.suicide is suicide, name
        assert r.button is button, name
        assert r.white_handicap_bonus is WhiteHandicapBonus[whb], name
        assert r.friendly_pass_ok is fpok, name
    assert Rules.from_name("New Zealand") == Rules.from_name("nz")
    assert Rules.from_name("TT").name == "tromp-taylor"
