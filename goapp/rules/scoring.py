"""Counting a finished game: area and territory scoring, seki, komi and bonuses.

What counts (with the stones the players marked dead taken off first):

* An empty region (connected empty points, dead stones' points included) is *territory* of
  a colour when every living stone that borders it is of that colour. A region bordered by
  both colours, or by none, is *dame* (neutral).
* **Area scoring** (Chinese, AGA, ...): living stones + territory.
* **Territory scoring** (Japanese, Korean): territory + prisoners (stones captured during
  the game + the opponent's stones marked dead).
* **Seki** (tax rule SEKI or ALL). A *group* is a set of living chains of one colour joined
  through their own regions (regions bordered only by that colour). A group is
  *independently alive* when it borders two or more own regions, or one own region of at
  least 4 points. A group that borders a neutral region (shared liberties) without being
  independently alive can only be alive by seki: its own regions (its eyes) are not
  territory (the "points in seki" of the Japanese rules) and are reported as ``seki``.
  Unfilled dame next to a group with two eyes or a real territory therefore cost nothing;
  the exotic case of a seki group with an eye space of 4 or more points is counted as
  territory (KataGo settles such cases with its own encore rules).
* **Tax ALL** (stone scoring): every independently alive group also gives up two points
  of its territory (all of it if it has fewer).
* White gets komi, plus the white handicap bonus of the rules (N or N-1 points for N
  handicap stones); the player who passed first gets half a point when the rules have a
  button.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from goapp._core import Board
from goapp.rules.coords import Color
from goapp.rules.result import Result
from goapp.rules.rulesets import Rules, ScoringRule, WhiteHandicapBonus


@dataclass(frozen=True, slots=True)
class Score:
    """A counted position. ``black`` and ``white`` are the totals (White's includes komi
    and bonuses); :attr:`margin` is Black minus White and :attr:`result` the SGF result."""

    black: float
    white: float
    scoring: ScoringRule
    black_stones: int
    white_stones: int
    black_territory: int
    white_territory: int
    black_prisoners: int  #: captures by Black + White stones marked dead
    white_prisoners: int
    dame: int
    seki: int  #: points left uncounted because they are in seki
    komi: float
    handicap_bonus: float  #: points given to White for Black's handicap stones
    button: float  #: button points (already in the totals)
    ownership: bytes  #: per point, row-major from the top-left: 0 none, 1 Black, 2 White

    @property
    def margin(self) -> float:
        """Black's score minus White's (negative: White leads)."""
        return self.black - self.white

    @property
    def result(self) -> Result:
        return Result.by_score(self.margin)

    def owner(self, x: int, y: int, width: int) -> Color:
        """Who the point ``(x, y)`` counts for."""
        return Color(self.ownership[y * width + x])


def handicap_bonus(rules: Rules, handicap_stones: int) -> float:
    """White's compensation for ``handicap_stones`` under ``rules``."""
    if handicap_stones < 2:
        return 0.0
    if rules.white_handicap_bonus is WhiteHandicapBonus.N:
        return float(handicap_stones)
    if rules.white_handicap_bonus is WhiteHandicapBonus.N_MINUS_ONE:
        return float(handicap_stones - 1)
    return 0.0


def score_position(
    board: Board,
    rules: Rules,
    komi: float,
    dead: Iterable[int] = (),
    *,
    handicap_stones: int = 0,
    button_holder: Color | None = None,
) -> Score:
    """Count ``board`` under ``rules``. ``dead`` holds locs of dead stones (a chain is
    dead when any of its stones is listed). Captures come from the board's counters."""
    counts = board.score_regions(list(dead), int(rules.tax))
    bonus = handicap_bonus(rules, handicap_stones)
    button_b = 0.5 if rules.button and button_holder is Color.BLACK else 0.0
    button_w = 0.5 if rules.button and button_holder is Color.WHITE else 0.0
    black_prisoners = board.captures(Color.BLACK) + counts["dead_w"]
    white_prisoners = board.captures(Color.WHITE) + counts["dead_b"]
    black_terr = counts["territory_b"] - counts["tax_b"]
    white_terr = counts["territory_w"] - counts["tax_w"]
    if rules.scoring is ScoringRule.AREA:
        black = float(counts["stones_b"] + black_terr)
        white = float(counts["stones_w"] + white_terr)
    else:
        black = float(black_terr + black_prisoners)
        white = float(white_terr + white_prisoners)
    black += button_b
    white += komi + bonus + button_w
    return Score(
        black=black,
        white=white,
        scoring=rules.scoring,
        black_stones=counts["stones_b"],
        white_stones=counts["stones_w"],
        black_territory=black_terr,
        white_territory=white_terr,
        black_prisoners=black_prisoners,
        white_prisoners=white_prisoners,
        dame=counts["dame"],
        seki=counts["seki"],
        komi=komi,
        handicap_bonus=bonus,
        button=button_b + button_w,
        ownership=counts["ownership"],
    )


__all__ = ["Score", "handicap_bonus", "score_position"]
