"""Player ratings: Glicko-2, kyu/dan ranks and handicap suggestions (pure logic).

* :mod:`goapp.rating.glicko2`: Glicko-2 as in Glickman's paper, per rating period
  (:func:`update`) and per game (:func:`update_after_game`, :func:`rate_game`).
* :mod:`goapp.rating.ranks`: OGS's rating-to-rank curve, ``"5k"``/``"1d"`` labels and the
  provisional ``"?"``.
* :mod:`goapp.rating.handicap`: handicap and komi from two ratings, by board size and rules.

See ``docs/ratings.md``.

>>> from goapp.rating import Rating, update_after_game, display_rank
>>> new = update_after_game(Rating(), Rating(1400.0, 80.0), 1.0)
>>> round(new.rating), display_rank(new)
(1632, '4k?')
"""

from goapp.rating.glicko2 import (
    DRAW,
    LOSS,
    MAX_RD,
    MAX_VOLATILITY,
    MIN_RD,
    WIN,
    GameOutcome,
    PeriodDetails,
    Rating,
    age,
    expected_score,
    period_details,
    rate_game,
    update,
    update_after_game,
)
from goapp.rating.handicap import (
    HandicapSuggestion,
    default_komi,
    effective_rating,
    handicap_rank_difference,
    suggest_handicap,
)
from goapp.rating.ranks import (
    PROVISIONAL_RD,
    display_rank,
    is_provisional,
    rank_bounds,
    rank_to_rating,
    rating_to_rank,
    rating_to_rank_number,
)

__all__ = [
    "DRAW",
    "LOSS",
    "MAX_RD",
    "MAX_VOLATILITY",
    "MIN_RD",
    "PROVISIONAL_RD",
    "WIN",
    "GameOutcome",
    "HandicapSuggestion",
    "PeriodDetails",
    "Rating",
    "age",
    "default_komi",
    "display_rank",
    "effective_rating",
    "expected_score",
    "handicap_rank_difference",
    "is_provisional",
    "period_details",
    "rank_bounds",
    "rank_to_rating",
    "rate_game",
    "rating_to_rank",
    "rating_to_rank_number",
    "suggest_handicap",
    "update",
    "update_after_game",
]
