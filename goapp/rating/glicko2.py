"""Glicko-2, exactly as in Mark Glickman's "Example of the Glicko-2 system" (2013).

The paper (http://www.glicko.net/glicko/glicko2.pdf) rates players once per *rating
period*; its steps map onto this module as follows:

1. a player starts at rating 1500, RD 350, volatility 0.06 (:class:`Rating` defaults);
2. ratings move to the Glicko-2 scale: ``mu = (r - 1500) / 173.7178``,
   ``phi = RD / 173.7178`` (:attr:`Rating.mu`, :attr:`Rating.phi`);
3. ``v``, the estimated variance of the rating from the game outcomes alone;
4. ``delta``, the estimated improvement;
5. the new volatility ``sigma'``, by the Illinois algorithm of section 5.1, with the
   system constant ``tau`` and the convergence tolerance :data:`EPSILON`;
6. the pre-rating-period value ``phi* = sqrt(phi^2 + sigma'^2)``;
7. the new ``phi'`` and ``mu'``;
8. back to the Glicko scale.

A player who does not compete in a period keeps rating and volatility; only the
deviation grows, ``phi' = sqrt(phi^2 + sigma^2)``.

On top of the paper, like lichess (and OGS, with other numbers), each result is clamped so
that no pathological history can leave a rating that never settles again:

* RD stays within [:data:`MIN_RD`, :data:`MAX_RD`] = [45, 350] (lichess' values);
* volatility stays at or below :data:`MAX_VOLATILITY` = 0.1 (lichess' value).

The paper's worked example ends at RD 151.52 and volatility 0.05999, inside both clamps, so
they do not touch it. (The paper rounds its intermediate values to four decimals: at full
precision v = 1.77898 and delta = -0.48393 rather than 1.7785 and -0.4834, and the new
rating is 1464.0507; from the paper's rounded mu' = -0.2069 it is 1464.06.)

Servers that rate every game the moment it ends (OGS, lichess) make each game its own
rating period: that is :func:`update_after_game` (one player) and :func:`rate_game` (both
players, each from the other's rating before the game).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "DEFAULT_RATING",
    "DEFAULT_RD",
    "DEFAULT_TAU",
    "DEFAULT_VOLATILITY",
    "DRAW",
    "EPSILON",
    "LOSS",
    "MAX_RD",
    "MAX_VOLATILITY",
    "MIN_RD",
    "SCALE",
    "WIN",
    "GameOutcome",
    "PeriodDetails",
    "Rating",
    "age",
    "expected_score",
    "period_details",
    "rate_game",
    "update",
    "update_after_game",
]

#: Glicko-2 scale factor: 173.7178 = 400 / ln(10) (paper, step 2).
SCALE = 173.7178
DEFAULT_RATING = 1500.0
DEFAULT_RD = 350.0
DEFAULT_VOLATILITY = 0.06
#: The system constant; the paper suggests 0.3 to 1.2 and uses 0.5 in its example (OGS
#: uses 0.5 too).
DEFAULT_TAU = 0.5
#: Convergence tolerance of the volatility iteration (paper, step 5).
EPSILON = 0.000001

#: The smallest RD a rating may reach. lichess' value: a settled player still moves
#: noticeably after a surprising result.
MIN_RD = 45.0
#: The largest RD: a brand-new player's. An absent player's RD grows back up to it.
MAX_RD = 350.0
#: The largest volatility (lichess': "past this, it might not stabilize ever again").
MAX_VOLATILITY = 0.1

WIN = 1.0
DRAW = 0.5  #: jigo, or a draw by agreement
LOSS = 0.0
_SCORES = (LOSS, DRAW, WIN)

# Safety bounds of the iterations of step 5; with valid inputs the loops end long before
# (the Illinois iteration converges superlinearly).
_MAX_ITERATIONS = 200


def _check_finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return v


@dataclass(frozen=True, slots=True)
class Rating:
    """A player's Glicko-2 rating on the Glicko scale (the one players see)."""

    rating: float = DEFAULT_RATING
    rd: float = DEFAULT_RD  #: rating deviation
    volatility: float = DEFAULT_VOLATILITY

    def __post_init__(self) -> None:
        rating = _check_finite("rating", self.rating)
        rd = _check_finite("rd", self.rd)
        volatility = _check_finite("volatility", self.volatility)
        if rd < 0:
            raise ValueError(f"rd must not be negative, got {rd!r}")
        if volatility <= 0:
            raise ValueError(f"volatility must be positive, got {volatility!r}")
        object.__setattr__(self, "rating", rating)
        object.__setattr__(self, "rd", rd)
        object.__setattr__(self, "volatility", volatility)

    @property
    def mu(self) -> float:
        """The rating on the Glicko-2 scale (step 2)."""
        return (self.rating - DEFAULT_RATING) / SCALE

    @property
    def phi(self) -> float:
        """The RD on the Glicko-2 scale (step 2)."""
        return self.rd / SCALE

    @classmethod
    def from_glicko2(cls, mu: float, phi: float, volatility: float) -> Rating:
        """From Glicko-2 scale values (step 8), without clamping."""
        return cls(SCALE * mu + DEFAULT_RATING, SCALE * phi, volatility)


@dataclass(frozen=True, slots=True)
class GameOutcome:
    """One game of a rating period, from the rated player's side: ``score`` is 1 for a
    win, 0.5 for jigo (a draw) and 0 for a loss."""

    opponent: Rating
    score: float

    def __post_init__(self) -> None:
        if not isinstance(self.opponent, Rating):
            raise TypeError(f"opponent must be a Rating, not {type(self.opponent).__name__}")
        object.__setattr__(self, "score", _check_score(self.score))


def _check_score(score: float) -> float:
    s = _check_finite("score", score)
    if s not in _SCORES:
        raise ValueError(f"score must be 0 (loss), 0.5 (jigo) or 1 (win), got {score!r}")
    return s


def _check_tau(tau: float) -> float:
    t = _check_finite("tau", tau)
    if t <= 0:
        raise ValueError(f"tau must be positive, got {tau!r}")
    return t


def _g(phi: float) -> float:
    """g(phi) of step 3: how much an opponent's uncertainty damps the game's weight."""
    return 1.0 / math.sqrt(1.0 + 3.0 * phi * phi / (math.pi * math.pi))


def _logistic(x: float) -> float:
    # 1 / (1 + exp(-x)), without overflow for large |x|
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _e(mu: float, mu_j: float, phi_j: float) -> float:
    """E(mu, mu_j, phi_j) of step 3: the expected score against opponent j."""
    return _logistic(_g(phi_j) * (mu - mu_j))


def expected_score(a: Rating, b: Rating) -> float:
    """The expected score of ``a`` in one game against ``b`` (its win probability, with
    jigo counted as half a win).

    Both players' uncertainties are combined (Glickman's predictive formula,
    ``E = 1 / (1 + exp(-g(sqrt(phi_a^2 + phi_b^2)) * (mu_a - mu_b)))``), so that
    ``expected_score(a, b) + expected_score(b, a) == 1``. The update itself uses the
    paper's ``E(mu, mu_j, phi_j)``, which only knows the opponent's deviation."""
    if not isinstance(a, Rating) or not isinstance(b, Rating):
        raise TypeError("expected_score takes two Ratings")
    phi = math.hypot(a.phi, b.phi)
    return _logistic(_g(phi) * (a.mu - b.mu))


@dataclass(frozen=True, slots=True)
class PeriodDetails:
    """The intermediate quantities of one rating period (Glicko-2 scale), before the
    clamps. ``v`` and ``delta`` are ``None`` when the player did not compete."""

    v: float | None  #: step 3
    delta: float | None  #: step 4
    volatility: float  #: sigma', step 5
    phi_star: float  #: step 6
    phi: float  #: phi', step 7
    mu: float  #: mu', step 7
    #: ``phi'^2 * sum(g * (s - E))`` (step 7, ``mu' - mu``), kept apart so that the new
    #: rating is ``r + 173.7178 * mu_change``: converting ``mu'`` back would add float
    #: rounding that can move a rating by a hair against the result.
    mu_change: float


def _new_volatility(phi: float, sigma: float, v: float, delta: float, tau: float) -> float:
    """Step 5: the new volatility, by the Illinois algorithm (section 5.1)."""
    a = math.log(sigma * sigma)
    phi2 = phi * phi
    delta2 = delta * delta

    def f(x: float) -> float:
        ex = math.exp(x)
        d = phi2 + v + ex
        return ex * (delta2 - phi2 - v - ex) / (2.0 * d * d) - (x - a) / (tau * tau)

    big_a = a
    if delta2 > phi2 + v:
        big_b = math.log(delta2 - phi2 - v)
    else:
        k = 1
        while f(a - k * tau) < 0 and k < _MAX_ITERATIONS:
            k += 1
        big_b = a - k * tau
    f_a = f(big_a)
    f_b = f(big_b)
    for _ in range(_MAX_ITERATIONS):
        if abs(big_b - big_a) <= EPSILON:
            break
        big_c = big_a + (big_a - big_b) * f_a / (f_b - f_a)
        f_c = f(big_c)
        if f_c * f_b <= 0:
            big_a, f_a = big_b, f_b
        else:
            f_a /= 2.0
        big_b, f_b = big_c, f_c
    return math.exp(big_a / 2.0)


def period_details(
    player: Rating, outcomes: Iterable[GameOutcome], tau: float = DEFAULT_TAU
) -> PeriodDetails:
    """Steps 2 to 7 of the paper for one rating period, unclamped (see :func:`update`)."""
    if not isinstance(player, Rating):
        raise TypeError(f"player must be a Rating, not {type(player).__name__}")
    tau = _check_tau(tau)
    games = list(outcomes)
    for game in games:
        if not isinstance(game, GameOutcome):
            raise TypeError(f"outcomes must be GameOutcomes, not {type(game).__name__}")
    mu, phi, sigma = player.mu, player.phi, player.volatility
    if not games:
        phi_star = math.sqrt(phi * phi + sigma * sigma)
        return PeriodDetails(None, None, sigma, phi_star, phi_star, mu, 0.0)

    information = 0.0  # 1 / v
    improvement = 0.0  # delta / v
    for game in games:
        opp = game.opponent
        g = _g(opp.phi)
        e = _e(mu, opp.mu, opp.phi)
        information += g * g * e * (1.0 - e)
        improvement += g * (game.score - e)
    v = 1.0 / information if information > 0.0 else math.inf
    delta = v * improvement
    if not math.isfinite(delta * delta):
        # The expected scores are 0 or 1 to double precision (rating gaps of some 60,000
        # points and more, which no real history reaches): steps 3 to 5 overflow, and
        # the games carry no information, as if the player had not competed.
        return period_details(player, (), tau)

    sigma_new = _new_volatility(phi, sigma, v, delta, tau)
    phi_star = math.sqrt(phi * phi + sigma_new * sigma_new)
    phi_new = 1.0 / math.sqrt(1.0 / (phi_star * phi_star) + information)
    mu_change = phi_new * phi_new * improvement
    return PeriodDetails(v, delta, sigma_new, phi_star, phi_new, mu + mu_change, mu_change)


def update(player: Rating, outcomes: Iterable[GameOutcome], tau: float = DEFAULT_TAU) -> Rating:
    """The player's rating after one rating period with these games (none: only the RD
    grows), RD clamped to [MIN_RD, MAX_RD] and volatility to at most MAX_VOLATILITY.
    Every opponent is taken at its rating from before the period."""
    d = period_details(player, outcomes, tau)
    # step 8, then the clamps
    return Rating(
        player.rating + SCALE * d.mu_change,
        min(MAX_RD, max(MIN_RD, SCALE * d.phi)),
        min(MAX_VOLATILITY, d.volatility),
    )


def update_after_game(
    player: Rating, opponent: Rating, score: float, tau: float = DEFAULT_TAU
) -> Rating:
    """The per-game update of OGS/lichess-style servers: one rating period holding one
    game, ``score`` from ``player``'s side (1 win, 0.5 jigo, 0 loss)."""
    return update(player, [GameOutcome(opponent, score)], tau)


def rate_game(
    a: Rating, b: Rating, score_a: float, tau: float = DEFAULT_TAU
) -> tuple[Rating, Rating]:
    """Both players' ratings after one game between them, each updated from the other's
    rating before the game; ``score_a`` is ``a``'s score (``b`` scores ``1 - score_a``)."""
    s = _check_score(score_a)
    return update_after_game(a, b, s, tau), update_after_game(b, a, 1.0 - s, tau)


def age(player: Rating, periods: float = 1.0) -> Rating:
    """The rating after ``periods`` rating periods without games: only the RD grows, as
    ``phi' = sqrt(phi^2 + periods * sigma^2)`` (the paper's no-game step in closed form,
    which allows fractional periods, as OGS does), clamped to [MIN_RD, MAX_RD].
    ``age(r, 1)`` is ``update(r, [])``."""
    if not isinstance(player, Rating):
        raise TypeError(f"player must be a Rating, not {type(player).__name__}")
    n = _check_finite("periods", periods)
    if n < 0:
        raise ValueError(f"periods must not be negative, got {periods!r}")
    phi = math.sqrt(player.phi**2 + n * player.volatility**2)
    return Rating(player.rating, min(MAX_RD, max(MIN_RD, SCALE * phi)), player.volatility)
