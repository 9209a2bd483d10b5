"""The rules of Go: boards, games, rulesets, scoring and results.

The pieces, from fast to friendly:

* :class:`Board` (Cython, :mod:`goapp._core`): stones, chains, liberties, captures and the
  simple-ko point, addressed by int *locs*. ``is_legal``/``play``/``play_fast``/``undo``
  are cheap enough to call millions of times.
* :class:`Game`: one game under one :class:`Rules`: turn order, ko and superko, suicide,
  passes, handicap, undo, scoring.
* :class:`Rules` and the named rulesets (``Rules.from_name("japanese")``), following
  KataGo's rules model so the server and the AI agree.
* :class:`Score` and :class:`Result` (``"B+3.5"``, ``"W+R"``, ``"0"``, ``"Void"``).

>>> from goapp.rules import Game, Rules, Color
>>> g = Game(19, rules=Rules.from_name("chinese"), komi=7.5, handicap=2)
>>> g.to_move is Color.WHITE
True
>>> g.play("Q3")
0
>>> g.board[3, 15] == Color.BLACK   # D4, a handicap stone: x=3, y=15 from the top
True

Points are named three ways (see :mod:`goapp.rules.coords`): ``(x, y)`` with ``y`` from
the top, int locs, and GTP vertices like ``"D4"`` (no letter I, row 1 at the bottom).
"""

from goapp._core import (
    MAX_BOARD_SIZE,
    MIN_BOARD_SIZE,
    NULL_LOC,
    PASS_LOC,
    Board,
    random_playout_game,
    random_playouts,
    record_playout_games,
)
from goapp.rules.coords import (
    BLACK,
    EMPTY,
    GTP_COLUMNS,
    WHITE,
    Color,
    gtp_to_xy,
    loc_of,
    parse_gtp,
    to_gtp,
    xy_of,
    xy_to_gtp,
)
from goapp.rules.errors import (
    IllegalMoveError,
    KoError,
    OccupiedError,
    OffBoardError,
    OutOfTurnError,
    SuicideError,
    SuperkoError,
)
from goapp.rules.game import Game, Turn, Where, fixed_handicap_xy
from goapp.rules.result import Result, ResultReason
from goapp.rules.rulesets import (
    DEFAULT_KOMI,
    NAMED_RULES,
    KoRule,
    Rules,
    ScoringRule,
    TaxRule,
    UnknownRulesError,
    WhiteHandicapBonus,
)
from goapp.rules.scoring import Score, handicap_bonus, score_position

__all__ = [
    "BLACK",
    "DEFAULT_KOMI",
    "EMPTY",
    "GTP_COLUMNS",
    "MAX_BOARD_SIZE",
    "MIN_BOARD_SIZE",
    "NAMED_RULES",
    "NULL_LOC",
    "PASS_LOC",
    "WHITE",
    "Board",
    "Color",
    "Game",
    "IllegalMoveError",
    "KoError",
    "KoRule",
    "OccupiedError",
    "OffBoardError",
    "OutOfTurnError",
    "Result",
    "ResultReason",
    "Rules",
    "Score",
    "ScoringRule",
    "SuicideError",
    "SuperkoError",
    "TaxRule",
    "Turn",
    "UnknownRulesError",
    "Where",
    "WhiteHandicapBonus",
    "fixed_handicap_xy",
    "gtp_to_xy",
    "handicap_bonus",
    "loc_of",
    "parse_gtp",
    "random_playout_game",
    "random_playouts",
    "record_playout_games",
    "score_position",
    "to_gtp",
    "xy_of",
    "xy_to_gtp",
]
