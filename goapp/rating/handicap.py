"""Suggested handicap and komi from two players' ratings.

The rank difference is taken on OGS's continuous rank scale (:mod:`goapp.rating.ranks`),
in 19x19 ranks. A handicap stone is worth one rank on 19x19, and more on small boards,
where each move is a larger share of the game. goapp uses OGS's values (``goratings``,
``analysis/util/RatingMath.py``, ``get_handicap_rank_difference``):

=========  ===============
board      ranks per stone
=========  ===============
19x19      1
13x13      3
9x9        6
=========  ===============

Other sizes interpolate linearly between those (6 below 9x9, 1 above 19x19).

The number of stones is the rank difference divided by the ranks per stone, rounded down
and capped at 9 (at 4 where the board has no fixed 5-to-9-stone layout: even sizes and
7x7; below 7x7 there are no fixed handicap stones at all, so the cap is the no-komi game):

* under one stone: an even game, colours by nigiri, the ruleset's usual komi
  (:data:`goapp.rules.rulesets.DEFAULT_KOMI`);
* one stone (the "no-komi" game): the weaker player takes Black and moves first, no stone
  is placed, komi 0.5 (half a point, so that there is no jigo);
* two to nine stones: the weaker player takes Black with that many fixed stones, White
  moves first, komi 0.5. White's compensation for the stones under area scoring
  (N for Chinese, N-1 for AGA) comes from the rules at counting time, not from komi.

:func:`handicap_rank_difference` goes the other way: how many 19x19 ranks a given
handicap and komi are worth to Black, by OGS's formula, for rating handicap games.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Literal

from goapp.rating.glicko2 import Rating
from goapp.rating.ranks import rank_number_to_rating, rating_to_rank_number
from goapp.rules.rulesets import DEFAULT_KOMI, Rules, ScoringRule
from goapp.rules.scoring import handicap_bonus

__all__ = [
    "HANDICAP_KOMI",
    "MAX_HANDICAP",
    "RANKS_PER_STONE",
    "HandicapSuggestion",
    "default_komi",
    "effective_rating",
    "handicap_rank_difference",
    "max_handicap",
    "ranks_per_stone",
    "suggest_handicap",
]

#: 19x19 ranks one handicap stone is worth, by board size (OGS's values).
RANKS_PER_STONE: dict[int, float] = {9: 6.0, 13: 3.0, 19: 1.0}
#: The most handicap stones ever suggested.
MAX_HANDICAP = 9
#: Komi of no-komi and handicap games: half a point, so that there is no jigo.
HANDICAP_KOMI = 0.5

# Komi for rulesets without a DEFAULT_KOMI entry, by scoring.
_KOMI_BY_SCORING = {ScoringRule.AREA: 7.5, ScoringRule.TERRITORY: 6.5}
# Rank differences are rounded to this many decimals before rounding down to stones, so
# that a difference of exactly one rank computed through logs and exps counts as one.
_EDGE_DECIMALS = 9


@dataclass(frozen=True, slots=True)
class HandicapSuggestion:
    """What to play between players ``a`` and ``b``."""

    #: handicap stones Black places (what ``Game(handicap=...)`` takes): 0, or 2 to 9
    handicap: int
    komi: float
    #: who takes Black: ``"a"``, ``"b"``, or ``None`` for an even game (nigiri)
    black: Literal["a", "b"] | None
    #: the handicap in stones, counting the no-komi game as one stone (0 to 9)
    stones: int
    #: ``a``'s rank number minus ``b``'s (19x19 ranks; positive: ``a`` is stronger)
    rank_difference: float

    @property
    def even(self) -> bool:
        """An even game: no handicap, normal komi, colours by nigiri."""
        return self.stones == 0


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"board size must be an int, not {type(size).__name__}")
    if size < 2:
        raise ValueError(f"board size must be at least 2, got {size}")
    return size


def ranks_per_stone(size: int) -> float:
    """19x19 ranks one handicap stone is worth on a ``size`` x ``size`` board."""
    _check_size(size)
    points = sorted(RANKS_PER_STONE.items())
    if size <= points[0][0]:
        return points[0][1]
    if size >= points[-1][0]:
        return points[-1][1]
    for (s0, r0), (s1, r1) in itertools.pairwise(points):
        if s0 <= size <= s1:
            return r0 + (r1 - r0) * (size - s0) / (s1 - s0)
    raise AssertionError("unreachable")  # pragma: no cover


def max_handicap(size: int) -> int:
    """The most handicap stones suggested on a ``size`` x ``size`` board, counting the
    no-komi game as one: the fixed layouts of :func:`goapp.rules.game.fixed_handicap_xy`
    (9 on odd boards from 9x9, 4 on even boards and 7x7, none below 7x7)."""
    _check_size(size)
    if size < 7:
        return 1
    return MAX_HANDICAP if size % 2 == 1 and size > 7 else 4


def _rules(rules: Rules | str) -> Rules:
    if isinstance(rules, Rules):
        return rules
    if isinstance(rules, str):
        return Rules.from_name(rules)
    raise TypeError(f"rules must be Rules or a ruleset name, not {type(rules).__name__}")


def default_komi(rules: Rules | str) -> float:
    """The usual komi of an even game under ``rules`` (:data:`DEFAULT_KOMI`; 7.5 for
    custom area-scoring rules, 6.5 for custom territory-scoring ones)."""
    r = _rules(rules)
    return DEFAULT_KOMI.get(r.name, _KOMI_BY_SCORING[r.scoring])


def _rating_value(player: Rating | float) -> float:
    if isinstance(player, Rating):
        return player.rating
    if isinstance(player, bool) or not isinstance(player, int | float):
        raise TypeError(f"expected a Rating or a rating, not {type(player).__name__}")
    return float(player)


def suggest_handicap(
    a: Rating | float,
    b: Rating | float,
    *,
    rules: Rules | str,
    size: int = 19,
    komi: float | None = None,
) -> HandicapSuggestion:
    """The handicap and komi for a game between ``a`` and ``b`` (ratings) on a ``size`` x
    ``size`` board under ``rules``. ``komi`` overrides the komi of an even game (default:
    :func:`default_komi`)."""
    _check_size(size)
    diff = rating_to_rank_number(_rating_value(a)) - rating_to_rank_number(_rating_value(b))
    stones = math.floor(round(abs(diff) / ranks_per_stone(size), _EDGE_DECIMALS))
    stones = min(stones, max_handicap(size))
    if stones == 0:
        even_komi = default_komi(rules) if komi is None else float(komi)
        if not math.isfinite(even_komi):
            raise ValueError(f"komi must be finite, got {komi!r}")
        return HandicapSuggestion(0, even_komi, None, 0, diff)
    _rules(rules)  # validate the name even where komi does not depend on it
    black: Literal["a", "b"] = "b" if diff > 0 else "a"
    return HandicapSuggestion(stones if stones >= 2 else 0, HANDICAP_KOMI, black, stones, diff)


def handicap_rank_difference(
    handicap: int, komi: float, *, rules: Rules | str, size: int = 19
) -> float:
    """How many 19x19 ranks Black's head start is worth (OGS's formula, ``goratings``
    ``get_handicap_rank_difference``): the handicap stones (``handicap`` as ``Game``
    takes it; 0 or 1 both mean no stones) and komi against a fair komi of 6 points under
    territory scoring, 7 under area scoring, a free move being worth twice the fair komi.
    White's area-scoring compensation for the stones comes from ``rules``. 0 for an even
    game at fair komi; about ``stones - 0.5`` for a handicap at komi 0.5."""
    r = _rules(rules)
    _check_size(size)
    if isinstance(handicap, bool) or not isinstance(handicap, int) or handicap < 0:
        raise ValueError(f"handicap must be a non-negative int, got {handicap!r}")
    if not math.isfinite(float(komi)):
        raise ValueError(f"komi must be finite, got {komi!r}")
    extra_moves = handicap - 1 if handicap > 1 else 0
    area_bonus = 1.0 if r.scoring is ScoringRule.AREA else 0.0
    fair_komi_territory = 6.0
    fair_komi = fair_komi_territory + area_bonus
    stone_value_territory = 2 * fair_komi_territory
    stone_value = stone_value_territory + area_bonus
    full_komi = float(komi) + handicap_bonus(r, handicap)
    head_start = fair_komi - full_komi + stone_value * extra_moves
    # one rank is the territorial value of a free move on 19x19; OGS scales small boards
    # by its 3 and 6 ranks per stone
    return head_start * ranks_per_stone(size) / stone_value_territory


def effective_rating(rating: float, rank_difference: float) -> float:
    """``rating`` moved by ``rank_difference`` ranks along the rank curve: Black's rating
    for rating a handicap game is ``effective_rating(black, handicap_rank_difference(...))``
    (OGS applies the shift in rank space, where it is symmetric)."""
    return rank_number_to_rating(rating_to_rank_number(rating) + rank_difference)
