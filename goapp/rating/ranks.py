"""Kyu/dan ranks from Glicko ratings, on OGS's scale.

OGS's rating-to-rank curve since January 2021 ("2021 rating and rank adjustments",
https://forums.online-go.com/t/2021-rating-and-rank-adjustments/33389, and
``rating_to_rank`` in OGS's ``src/lib/rank_utils.ts``)::

    rank = ln(rating / 525) * 23.15        # rating clamped to [100, 6000] first

The *rank number* is continuous: 30 is the bottom of 1 dan. A kyu rank ``K`` covers rank
numbers ``[30 - K, 31 - K)`` and a dan rank ``D`` covers ``[29 + D, 30 + D)``, so OGS shows
``ceil(30 - rank)`` kyu below 30 and ``floor(rank - 29)`` dan from 30 up (a 1.9d is still a
1d, a 9.1k already a 10k). Labels are clamped to 30k..9d here (OGS clamps its display to
25k..9d; a self-hosted server meets more absolute beginners).

Some edges: 1d starts at rating ~1918.5, 1k at ~1837.4, 9d at ~2710.4, 30k ends at
~548.2. A rank is *provisional* while RD >= :data:`PROVISIONAL_RD` (160, OGS's
``PROVISIONAL_RATING_CUTOFF``); where OGS then shows only "?", goapp shows the rank with a
question mark, like ``"3k?"``.
"""

from __future__ import annotations

import math
import re

from goapp.rating.glicko2 import Rating

__all__ = [
    "MAX_DAN",
    "MAX_KYU",
    "PROVISIONAL_RD",
    "RANK_A",
    "RANK_C",
    "RATING_CEILING",
    "RATING_FLOOR",
    "display_rank",
    "is_provisional",
    "rank_bounds",
    "rank_number_to_rating",
    "rank_to_rank_number",
    "rank_to_rating",
    "rating_to_rank",
    "rating_to_rank_number",
]

RANK_A = 525.0  #: the rating of rank number 0 (30k)
RANK_C = 23.15  #: rank numbers per unit of ln(rating)
#: OGS clamps ratings to [100, 6000] before taking ranks.
RATING_FLOOR = 100.0
RATING_CEILING = 6000.0
MAX_KYU = 30  #: the weakest label (rank numbers below 1)
MAX_DAN = 9  #: the strongest label (rank numbers from 38 up)
#: RD at or above which a rank is provisional (OGS's ``PROVISIONAL_RATING_CUTOFF``).
PROVISIONAL_RD = 160.0

# Rank numbers are rounded to this many decimals before labelling, so that a rating
# computed from a rank edge (rank_bounds) labels as that rank despite float rounding.
_EDGE_DECIMALS = 9
_RANK_RE = re.compile(r"^\s*(\d{1,2})\s*(k|kyu|d|dan)\s*\??\s*$", re.IGNORECASE)


def _finite(rating: float) -> float:
    r = float(rating)
    if not math.isfinite(r):
        raise ValueError(f"rating must be finite, got {rating!r}")
    return r


def rating_to_rank_number(rating: float) -> float:
    """OGS's continuous rank number: ``ln(rating / 525) * 23.15``, the rating first clamped
    to [100, 6000]. 0 is the bottom of 30k, 30 the bottom of 1d."""
    r = min(RATING_CEILING, max(RATING_FLOOR, _finite(rating)))
    return math.log(r / RANK_A) * RANK_C


def rank_number_to_rating(rank: float) -> float:
    """The inverse of :func:`rating_to_rank_number` (without its clamp)."""
    n = float(rank)
    if not math.isfinite(n):
        raise ValueError(f"rank must be finite, got {rank!r}")
    return RANK_A * math.exp(n / RANK_C)


def _label(rank_number: float) -> str:
    n = round(rank_number, _EDGE_DECIMALS)
    if n < 30:
        return f"{min(MAX_KYU, math.ceil(30 - n))}k"
    return f"{min(MAX_DAN, math.floor(n - 29))}d"


def rating_to_rank(rating: float) -> str:
    """The rank label of a rating: ``"5k"``, ``"1d"`` (30k to 9d)."""
    return _label(rating_to_rank_number(rating))


def rank_to_rank_number(rank: str) -> int:
    """The rank number at the bottom of a rank (``"30k"`` is 0, ``"1k"`` 29, ``"1d"`` 30,
    ``"9d"`` 38). Accepts ``"5k"``, ``"5 kyu"``, ``"2D"``, ``"2 dan"`` and a trailing
    ``"?"``; raises :class:`ValueError` for anything else (pro ranks included)."""
    m = _RANK_RE.match(rank) if isinstance(rank, str) else None
    if m is None:
        raise ValueError(f"not a kyu/dan rank: {rank!r}")
    n, kind = int(m.group(1)), m.group(2).lower()
    if kind.startswith("k"):
        if not 1 <= n <= MAX_KYU:
            raise ValueError(f"kyu ranks go from 1k to {MAX_KYU}k, got {rank!r}")
        return 30 - n
    if not 1 <= n <= MAX_DAN:
        raise ValueError(f"dan ranks go from 1d to {MAX_DAN}d, got {rank!r}")
    return 29 + n


def rank_bounds(rank: str) -> tuple[float, float]:
    """The ratings where a rank starts and where the next one starts (half-open). The
    clamped ends are open: 30k starts at -inf and 9d ends at +inf."""
    n = rank_to_rank_number(rank)
    lo = -math.inf if n == 30 - MAX_KYU else rank_number_to_rating(n)
    hi = math.inf if n == 29 + MAX_DAN else rank_number_to_rating(n + 1)
    return lo, hi


def rank_to_rating(rank: str) -> float:
    """The rating in the middle of a rank (in rank numbers): what a player who declares
    that rank starts from. ``rating_to_rank(rank_to_rating(r)) == r`` for every rank."""
    return rank_number_to_rating(rank_to_rank_number(rank) + 0.5)


def is_provisional(rating: Rating) -> bool:
    """Whether the rating is still too uncertain to show a firm rank (RD >= 160)."""
    return rating.rd >= PROVISIONAL_RD


def display_rank(rating: Rating) -> str:
    """The rank as players see it: ``"3k"``, or ``"3k?"`` while provisional."""
    label = rating_to_rank(rating.rating)
    return label + "?" if is_provisional(rating) else label
