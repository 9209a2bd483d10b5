"""The automatch pairing policy: pure functions of the waiting requests and the time.

Two requests are compatible when

* they are of different players, of the same speed and the same ``rated`` choice;
* they share at least one board size (the game is played on the largest shared size);
* the players' rating difference is within the *range* of both requests, where a
  request's range widens the longer it waits: :data:`RANGE_BASE` points, plus
  :data:`RANGE_STEP` points for every :data:`RANGE_STEP_S` seconds waited, up to
  :data:`RANGE_MAX` (so a 1500 player is first offered 1400..1600, 1300..1700 after 20 s,
  and anyone within 1000..2000 after 80 s);
* the players have no active game together (the store checks this again in the claim,
  which is what makes it true under concurrency).

Games are even: no handicap, the ruleset's usual komi (Japanese rules, 6.5), colours by
nigiri (random). A rating range of a few hundred points is a few ranks at most, and players
who asked for "a game now" expect an even one; handicap games are for challenges.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Literal

from goapp.store.records import AUTOMATCH_SIZE_BITS, AUTOMATCH_SPEEDS, AutomatchRequest

__all__ = [
    "RANGE_BASE",
    "RANGE_MAX",
    "RANGE_STEP",
    "RANGE_STEP_S",
    "RULES",
    "SIZES",
    "SPEEDS",
    "TIME_CONTROLS",
    "common_size",
    "compatible",
    "greedy_pairs",
    "nigiri",
    "rank_candidates",
    "rating_range",
    "rating_window",
    "time_control",
]

SPEEDS = AUTOMATCH_SPEEDS
SIZES = tuple(AUTOMATCH_SIZE_BITS)
#: Rating points a new request accepts either side of its own rating.
RANGE_BASE = 100.0
#: Points the range widens by every :data:`RANGE_STEP_S` seconds of waiting.
RANGE_STEP = 50.0
RANGE_STEP_S = 10.0
#: The widest range.
RANGE_MAX = 500.0
#: Ruleset of automatch games (komi: the ruleset's default).
RULES = "japanese"

#: Time controls by speed (``goapp.rules.clock`` JSON).
TIME_CONTROLS: dict[str, dict[str, Any]] = {
    "blitz": {"system": "fischer", "main_s": 180, "increment_s": 5},
    "live": {"system": "fischer", "main_s": 600, "increment_s": 20},
    "correspondence": {"system": "correspondence", "days_per_move": 3, "weekends_off": False},
}

#: "Already playing each other": a predicate on two user ids.
Playing = Callable[[int, int], bool]


def _never(a: int, b: int) -> bool:
    return False


def time_control(speed: str) -> dict[str, Any]:
    """The clock of an automatch game of ``speed`` (a fresh dict)."""
    return dict(TIME_CONTROLS[speed])


def waited_s(req: AutomatchRequest, now: datetime) -> float:
    return max(0.0, (now - req.created_at).total_seconds())


def rating_range(waited: float) -> float:
    """How far (rating points, either side) a request accepts after waiting ``waited`` s."""
    steps = math.floor(max(0.0, waited) / RANGE_STEP_S)
    return min(RANGE_MAX, RANGE_BASE + RANGE_STEP * steps)


def rating_window(req: AutomatchRequest, now: datetime) -> tuple[float, float]:
    """``[lo, hi]``: the ratings ``req`` accepts at ``now``."""
    r = rating_range(waited_s(req, now))
    return (round(req.rating - r, 1), round(req.rating + r, 1))


def common_size(a: Iterable[int], b: Iterable[int]) -> int | None:
    """The board both asked for (the largest one when several), or None."""
    shared = set(a) & set(b)
    return max(shared) if shared else None


def compatible(
    a: AutomatchRequest, b: AutomatchRequest, now: datetime, playing: Playing = _never
) -> bool:
    """Whether ``a`` and ``b`` may be paired at ``now`` (see the module docstring)."""
    if a.id == b.id or a.user_id == b.user_id:
        return False
    if a.speed != b.speed or a.rated != b.rated:
        return False
    if common_size(a.sizes, b.sizes) is None:
        return False
    diff = abs(a.rating - b.rating)
    if diff > rating_range(waited_s(a, now)) or diff > rating_range(waited_s(b, now)):
        return False
    return not playing(a.user_id, b.user_id)


def rank_candidates(
    req: AutomatchRequest,
    waiting: Iterable[AutomatchRequest],
    now: datetime,
    *,
    playing: Playing = _never,
    limit: int = 20,
    rng: random.Random | None = None,
) -> list[AutomatchRequest]:
    """The requests ``req`` may be paired with, best first: the closest rating, then the
    longest waiting. With ``rng``, ties (and near ties, within 10 points) are shuffled, so
    that many simultaneous claimers do not all reach for the same request."""
    found = [w for w in waiting if compatible(req, w, now, playing)]
    jitter = (lambda: rng.random()) if rng is not None else (lambda: 0.0)
    found.sort(key=lambda w: (round(abs(w.rating - req.rating) / 10.0), jitter(), w.created_at))
    return found[:limit]


def greedy_pairs(
    waiting: Sequence[AutomatchRequest], now: datetime, *, playing: Playing = _never
) -> list[tuple[AutomatchRequest, AutomatchRequest]]:
    """Pairs among ``waiting``, each request in at most one: the longest-waiting request
    first takes its best candidate (:func:`rank_candidates`), and so on."""
    order = sorted(waiting, key=lambda w: (w.created_at, w.id))
    # by rating, so that each request looks only at the ratings its range reaches
    by_rating = sorted(order, key=lambda w: w.rating)
    ratings = [w.rating for w in by_rating]
    taken: set[int] = set()
    pairs: list[tuple[AutomatchRequest, AutomatchRequest]] = []
    for req in order:
        if req.id in taken:
            continue
        reach = rating_range(waited_s(req, now))
        lo = bisect.bisect_left(ratings, req.rating - reach)
        hi = bisect.bisect_right(ratings, req.rating + reach)
        free = [w for w in by_rating[lo:hi] if w.id not in taken]
        best = rank_candidates(req, free, now, playing=playing, limit=1)
        if best:
            taken.update((req.id, best[0].id))
            pairs.append((req, best[0]))
    return pairs


def nigiri(rng: random.Random) -> Literal["black", "white"]:
    """The colour of the first player of a pair (the other takes the other one)."""
    return "black" if rng.random() < 0.5 else "white"
