"""Ratings: Glicko-2 (Glickman's worked example), kyu/dan ranks, handicap suggestions."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from goapp.rating import glicko2, handicap, ranks
from goapp.rating.glicko2 import (
    MAX_RD,
    MAX_VOLATILITY,
    MIN_RD,
    SCALE,
    GameOutcome,
    Rating,
    age,
    expected_score,
    period_details,
    rate_game,
    update,
    update_after_game,
)
from goapp.rating.handicap import (
    default_komi,
    effective_rating,
    handicap_rank_difference,
    max_handicap,
    ranks_per_stone,
    suggest_handicap,
)
from goapp.rating.ranks import (
    display_rank,
    is_provisional,
    rank_bounds,
    rank_to_rank_number,
    rank_to_rating,
    rating_to_rank,
    rating_to_rank_number,
)
from goapp.rules import Color, Game, Rules

PROPS = settings(max_examples=200, deadline=None)

# ---------------------------------------------------------------- Glickman's example

PLAYER = Rating(1500.0, 200.0, 0.06)
EXAMPLE = [
    GameOutcome(Rating(1400.0, 30.0), 1.0),
    GameOutcome(Rating(1550.0, 100.0), 0.0),
    GameOutcome(Rating(1700.0, 300.0), 0.0),
]


def test_example_glicko2_scale() -> None:
    # step 2
    assert PLAYER.mu == 0.0
    assert round(PLAYER.phi, 4) == 1.1513
    assert [round(o.opponent.mu, 4) for o in EXAMPLE] == [-0.5756, 0.2878, 1.1513]
    assert [round(o.opponent.phi, 4) for o in EXAMPLE] == [0.1727, 0.5756, 1.7269]


def test_example_g_and_e() -> None:
    # step 3's table
    gs = [glicko2._g(o.opponent.phi) for o in EXAMPLE]
    es = [glicko2._e(PLAYER.mu, o.opponent.mu, o.opponent.phi) for o in EXAMPLE]
    assert [round(g, 4) for g in gs] == [0.9955, 0.9531, 0.7242]
    assert [round(e, 3) for e in es] == [0.639, 0.432, 0.303]


def test_example_intermediate_quantities() -> None:
    d = period_details(PLAYER, EXAMPLE, tau=0.5)
    assert d.v is not None and d.delta is not None
    # The paper computes with g and E rounded as in its table, hence v = 1.7785 and
    # delta = -0.4834; at full precision they are 1.77898 and -0.48393.
    assert d.v == pytest.approx(1.7785, abs=1e-3)
    assert d.delta == pytest.approx(-0.4834, abs=1e-3)
    assert d.v == pytest.approx(1.778977, abs=1e-6)
    assert d.delta == pytest.approx(-0.483933, abs=1e-6)
    # steps 5 to 7, to the paper's decimals
    assert round(d.volatility, 5) == pytest.approx(0.06000)
    assert d.volatility == pytest.approx(0.05999, abs=1e-5)
    assert d.phi_star == pytest.approx(1.152862, abs=1e-4)
    assert round(d.phi, 4) == 0.8722
    assert round(d.mu, 4) == -0.2069
    # step 8 from the paper's rounded mu' and phi'
    assert round(SCALE * round(d.mu, 4) + 1500, 2) == 1464.06
    assert round(SCALE * round(d.phi, 4), 2) == 151.52


def test_example_result() -> None:
    new = update(PLAYER, EXAMPLE, tau=0.5)
    # r' = 1464.06, RD' = 151.52, sigma' = 0.05999 in the paper (r' from mu' rounded to
    # four decimals; at full precision r' is 1464.0507)
    assert new.rating == pytest.approx(1464.06, abs=0.01)
    assert new.rating == pytest.approx(1464.0507, abs=1e-4)
    assert round(new.rd, 2) == 151.52
    assert new.volatility == pytest.approx(0.05999, abs=1e-5)
    # the defaults are the paper's
    assert update(PLAYER, EXAMPLE) == new
    assert Rating() == Rating(1500.0, 350.0, 0.06)


def test_illinois_branch_where_delta_squared_is_large() -> None:
    # an upset big enough that delta^2 > phi^2 + v: the other starting bracket of step 5
    player = Rating(1500.0, 50.0, 0.06)
    opp = Rating(2300.0, 50.0, 0.06)
    d = period_details(player, [GameOutcome(opp, 1.0)] * 5)
    assert d.delta is not None and d.v is not None
    assert d.delta**2 > player.phi**2 + d.v
    assert d.volatility > player.volatility
    assert update(player, [GameOutcome(opp, 1.0)] * 5).rating > player.rating


def test_absurd_rating_gaps_stay_finite() -> None:
    # E is 0 or 1 to double precision: the game carries no information (only RD grows)
    player = Rating(1500.0, 200.0, 0.06)
    for far in (1e6, 1e300, -1e300):
        for score in (0.0, 0.5, 1.0):
            new = update_after_game(player, Rating(far, 45.0), score)
            assert math.isfinite(new.rating) and MIN_RD <= new.rd <= MAX_RD
    assert update_after_game(player, Rating(1e6, 45.0), 1.0) == update(player, [])
    # the largest gaps that still compute: a huge upset moves mu by phi'^2 * g
    upset = update_after_game(player, Rating(50_000.0, 45.0), 1.0)
    phi_new = upset.rd / SCALE
    g = glicko2._g(45.0 / SCALE)
    assert upset.rating - player.rating == pytest.approx(SCALE * phi_new**2 * g, rel=1e-6)


# ---------------------------------------------------------------- no games


def test_non_competing_player_only_rd_grows() -> None:
    new = update(PLAYER, [])
    assert new.rating == PLAYER.rating
    assert new.volatility == PLAYER.volatility
    assert new.rd == pytest.approx(SCALE * math.sqrt(PLAYER.phi**2 + 0.06**2))
    assert new.rd == pytest.approx(200.2714, abs=1e-4)
    d = period_details(PLAYER, [])
    assert d.v is None and d.delta is None


def test_rd_grows_back_to_the_maximum() -> None:
    r = Rating(1700.0, 50.0, 0.06)
    rds = []
    for _ in range(3000):
        r = update(r, [])
        rds.append(r.rd)
    assert rds == sorted(rds)
    assert rds[0] > 50.0
    assert rds[-1] == MAX_RD
    assert r.rating == 1700.0


def test_age_is_the_no_game_step_in_closed_form() -> None:
    r = Rating(1700.0, 80.0, 0.06)
    assert age(r) == update(r, [])
    assert age(r, 3).rd == pytest.approx(update(update(update(r, []), []), []).rd)
    assert r.rd < age(r, 0.5).rd < age(r, 1).rd
    assert age(r, 0).rd == r.rd
    assert age(r, 1e6).rd == MAX_RD and age(r, 1e6).rating == r.rating
    assert age(Rating(rd=10.0)).rd == MIN_RD
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError):
            age(r, bad)


# ---------------------------------------------------------------- per game


def test_update_after_game_is_one_period_with_one_game() -> None:
    opp = Rating(1600.0, 80.0, 0.05)
    for score in (0.0, 0.5, 1.0):
        assert update_after_game(PLAYER, opp, score) == update(PLAYER, [GameOutcome(opp, score)])
        assert update_after_game(PLAYER, opp, score, tau=1.0) == update(
            PLAYER, [GameOutcome(opp, score)], tau=1.0
        )


def test_rate_game_updates_both_from_the_ratings_before() -> None:
    a, b = Rating(1500.0, 120.0), Rating(1650.0, 90.0, 0.05)
    new_a, new_b = rate_game(a, b, 1.0)
    assert new_a == update_after_game(a, b, 1.0)
    assert new_b == update_after_game(b, a, 0.0)
    new_a, new_b = rate_game(a, b, 0.5)
    assert new_a.rating > a.rating and new_b.rating < b.rating


def test_rd_floor_and_volatility_ceiling() -> None:
    r = Rating(1500.0, 60.0, 0.06)
    opp = Rating(1500.0, 45.0, 0.06)
    for i in range(500):
        r = update_after_game(r, opp, float(i % 2))
        assert r.rd >= MIN_RD
    # one game a period against a settled opponent: RD settles near 60, above the floor
    assert r.rd == pytest.approx(60.0, abs=0.5)
    wild = Rating(1500.0, 45.0, MAX_VOLATILITY)
    for i in range(50):
        strong = Rating(2500.0 if i % 2 else 500.0, 45.0)
        wild = update_after_game(wild, strong, float(i % 2))
        assert wild.volatility <= MAX_VOLATILITY
    assert update(Rating(1500.0, 500.0), []).rd == MAX_RD


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("score", [0.3, -1.0, 2.0, 0.25, math.nan, math.inf])
def test_bad_scores(score: float) -> None:
    with pytest.raises(ValueError):
        GameOutcome(Rating(), score)
    with pytest.raises(ValueError):
        update_after_game(Rating(), Rating(), score)
    with pytest.raises(ValueError):
        rate_game(Rating(), Rating(), score)


def test_bad_values() -> None:
    for kwargs in (
        {"rd": -1.0},
        {"rating": math.inf},
        {"rating": math.nan},
        {"rd": math.nan},
        {"volatility": 0.0},
        {"volatility": -0.1},
        {"volatility": math.inf},
    ):
        with pytest.raises(ValueError):
            Rating(**kwargs)
    with pytest.raises(TypeError):
        Rating(rating="1500")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        GameOutcome(Rating(), True)
    with pytest.raises(TypeError):
        GameOutcome(1500.0, 1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        update(Rating(), [(Rating(), 1.0)])  # type: ignore[list-item]
    for tau in (0.0, -0.5, math.nan, math.inf):
        with pytest.raises(ValueError):
            update(Rating(), [GameOutcome(Rating(), 1.0)], tau=tau)
    assert Rating(rd=0.0).rd == 0.0  # a perfectly known opponent is allowed


def test_rating_is_immutable_and_typed() -> None:
    r = Rating(1500, 200, 0.06)
    assert isinstance(r.rating, float) and isinstance(r.rd, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.rating = 1600.0  # type: ignore[misc]
    assert Rating.from_glicko2(r.mu, r.phi, r.volatility) == r
    assert GameOutcome(r, 1).score == 1.0


# ---------------------------------------------------------------- expected score


def test_expected_score() -> None:
    a = Rating(1500.0, 80.0)
    assert expected_score(a, a) == 0.5
    b = Rating(1700.0, 80.0)
    assert expected_score(a, b) < 0.5 < expected_score(b, a)
    assert expected_score(a, b) + expected_score(b, a) == pytest.approx(1.0)
    # more uncertainty pulls the prediction toward 1/2
    assert expected_score(Rating(1500.0, 300.0), b) > expected_score(a, b)
    # 400 points at RD 0 is 10:1, as in Elo
    assert expected_score(Rating(1900.0, 0.0), Rating(1500.0, 0.0)) == pytest.approx(10 / 11)


# ---------------------------------------------------------------- properties

ratings = st.builds(
    Rating,
    rating=st.floats(0.0, 4000.0),
    rd=st.floats(0.0, 500.0),
    volatility=st.floats(0.001, 0.2),
)
scores = st.sampled_from([0.0, 0.5, 1.0])
taus = st.sampled_from([0.3, 0.5, 0.75, 1.2])


@PROPS
@given(ratings, ratings, taus)
def test_win_never_lowers_loss_never_raises(player: Rating, opp: Rating, tau: float) -> None:
    assert update_after_game(player, opp, 1.0, tau).rating >= player.rating
    assert update_after_game(player, opp, 0.0, tau).rating <= player.rating
    draw = update_after_game(player, opp, 0.5, tau).rating
    if opp.rating >= player.rating:
        assert draw >= player.rating
    else:
        assert draw <= player.rating


@PROPS
@given(ratings, st.lists(st.tuples(ratings, scores), max_size=12), taus)
def test_outputs_finite_and_clamped(
    player: Rating, games: list[tuple[Rating, float]], tau: float
) -> None:
    outcomes = [GameOutcome(o, s) for o, s in games]
    new = update(player, outcomes, tau)
    assert math.isfinite(new.rating)
    assert MIN_RD <= new.rd <= MAX_RD
    assert 0.0 < new.volatility <= MAX_VOLATILITY
    # each game moves mu by at most phi'^2 (|g * (s - E)| < 1)
    d = period_details(player, outcomes, tau)
    assert abs(new.rating - player.rating) <= SCALE * d.phi**2 * len(games) + 1e-9


@PROPS
@given(
    st.builds(Rating, st.floats(100.0, 4000.0), st.floats(MIN_RD, MAX_RD), st.floats(0.01, 0.1)),
    st.builds(Rating, st.floats(100.0, 4000.0), st.floats(MIN_RD, MAX_RD), st.floats(0.01, 0.1)),
    scores,
)
def test_one_game_moves_a_rating_by_at_most_about_700(
    player: Rating, opp: Rating, score: float
) -> None:
    # phi' <= phi* and one game moves mu by less than phi'^2: with RD at most 350, and at
    # the default tau, under 173.7178 * (350 / 173.7178)^2 ~ 705 rating points
    assert abs(update_after_game(player, opp, score).rating - player.rating) < 710


@PROPS
@given(ratings, ratings, scores, taus)
def test_playing_never_leaves_rd_above_its_pre_period_value(
    player: Rating, opp: Rating, score: float, tau: float
) -> None:
    # phi' < phi*: a game always carries information. (RD can still grow a little over a
    # game when it is already small: one period's volatility outweighs one game's
    # information below about RD 60 at volatility 0.06, hence MIN_RD.)
    d = period_details(player, [GameOutcome(opp, score)], tau)
    assert d.phi <= d.phi_star
    new = update_after_game(player, opp, score, tau)
    assert new.rd <= min(MAX_RD, max(MIN_RD, SCALE * d.phi_star))


@PROPS
@given(
    st.floats(800.0, 2800.0),
    st.floats(100.0, 350.0),
    st.floats(-400.0, 400.0),
    st.floats(0.0, 200.0),
    st.floats(0.01, 0.06),
    scores,
)
def test_rd_does_not_grow_after_an_informative_game(
    r: float, rd: float, gap: float, opp_rd: float, vol: float, score: float
) -> None:
    player = Rating(r, rd, vol)
    new = update_after_game(player, Rating(r + gap, opp_rd), score)
    assert new.rd <= player.rd


@PROPS
@given(st.floats(500.0, 3000.0), st.floats(500.0, 3000.0), st.floats(45.0, 350.0), scores)
def test_equal_uncertainty_games_are_zero_sum(ra: float, rb: float, rd: float, s: float) -> None:
    a, b = Rating(ra, rd, 0.06), Rating(rb, rd, 0.06)
    new_a, new_b = rate_game(a, b, s)
    assert new_a.rating - a.rating == pytest.approx(b.rating - new_b.rating, abs=1e-6)
    assert new_a.rd == pytest.approx(new_b.rd, abs=1e-6)


@PROPS
@given(ratings, ratings)
def test_expected_score_symmetry(a: Rating, b: Rating) -> None:
    e = expected_score(a, b)
    assert 0.0 <= e <= 1.0
    assert e + expected_score(b, a) == pytest.approx(1.0)
    if a.rating > b.rating:
        assert e >= 0.5


# ---------------------------------------------------------------- ranks


def test_rank_formula_is_ogs() -> None:
    assert rating_to_rank_number(525.0) == 0.0
    assert rating_to_rank_number(1500.0) == pytest.approx(math.log(1500 / 525) * 23.15)
    assert rating_to_rank_number(20.0) == rating_to_rank_number(100.0)  # OGS's clamp
    assert rating_to_rank_number(9000.0) == rating_to_rank_number(6000.0)
    assert rank_bounds("1d")[0] == pytest.approx(1918.49, abs=0.01)
    assert rank_bounds("1k")[0] == pytest.approx(1837.38, abs=0.01)
    assert rank_bounds("9d")[0] == pytest.approx(2710.44, abs=0.01)
    assert rating_to_rank(1500.0) == "6k"  # a new player
    assert rating_to_rank(1000.0) == "16k"
    assert rating_to_rank(2000.0) == "1d"


def test_rank_edges() -> None:
    one_dan = rank_bounds("1d")[0]
    assert rating_to_rank(one_dan) == "1d"
    assert rating_to_rank(one_dan - 1e-6) == "1k"
    assert rank_bounds("1k")[1] == one_dan
    one_kyu = rank_bounds("1k")[0]
    assert rating_to_rank(one_kyu) == "1k"
    assert rating_to_rank(one_kyu - 1e-6) == "2k"
    # 30k floor
    for r in (-50.0, 0.0, 100.0, 525.0, 548.17):
        assert rating_to_rank(r) == "30k"
    assert rating_to_rank(548.18) == "29k"
    assert rank_bounds("30k") == (-math.inf, pytest.approx(548.175, abs=1e-3))
    # 9d cap
    assert rating_to_rank(2710.44) == "8d"
    for r in (2710.45, 3000.0, 6000.0, 1e9):
        assert rating_to_rank(r) == "9d"
    assert rank_bounds("9d")[1] == math.inf
    with pytest.raises(ValueError):
        rating_to_rank(math.nan)


ALL_RANKS = [f"{k}k" for k in range(30, 0, -1)] + [f"{d}d" for d in range(1, 10)]


def test_rank_round_trip() -> None:
    previous = -math.inf
    for n, label in enumerate(ALL_RANKS):
        assert rank_to_rank_number(label) == n
        mid = rank_to_rating(label)
        assert rating_to_rank(mid) == label
        lo, hi = rank_bounds(label)
        assert lo < mid < hi
        assert lo == previous
        previous = hi
        if math.isfinite(lo):
            assert rating_to_rank(lo) == label
        if math.isfinite(hi):
            assert rating_to_rank(hi - 1e-6) == label
            assert rating_to_rank(hi) == ALL_RANKS[n + 1]
    assert previous == math.inf


def test_rank_parsing() -> None:
    assert rank_to_rating("5 kyu") == rank_to_rating("5k") == rank_to_rating("5K")
    assert rank_to_rating("2 Dan") == rank_to_rating("2d")
    assert rank_to_rating("3k?") == rank_to_rating("3k")
    for bad in ("0k", "31k", "0d", "10d", "1p", "", "k5", "5", "5 kyus", "-1k"):
        with pytest.raises(ValueError):
            rank_to_rating(bad)
    with pytest.raises(ValueError):
        rank_to_rating(5)  # type: ignore[arg-type]


@PROPS
@given(st.floats(-1000.0, 10000.0), st.floats(-1000.0, 10000.0))
def test_rank_labels_are_monotonic(x: float, y: float) -> None:
    lx, ly = rating_to_rank(x), rating_to_rank(y)
    if x <= y:
        assert ALL_RANKS.index(lx) <= ALL_RANKS.index(ly)
    lo, hi = rank_bounds(lx)
    assert lo - 1e-6 <= x < hi  # ratings a hair under an edge count as above it


def test_provisional() -> None:
    assert ranks.PROVISIONAL_RD == 160.0
    assert is_provisional(Rating())  # RD 350: a new player
    assert is_provisional(Rating(rd=160.0))
    assert not is_provisional(Rating(rd=159.99))
    three_kyu = rank_to_rating("3k")
    assert display_rank(Rating(three_kyu, 200.0)) == "3k?"
    assert display_rank(Rating(three_kyu, 60.0)) == "3k"
    assert display_rank(Rating()) == "6k?"
    assert display_rank(Rating(3000.0, 50.0)) == "9d"


# ---------------------------------------------------------------- handicap


def at(rank: str) -> float:
    return rank_to_rating(rank)


def test_equal_players_play_even() -> None:
    for rules, komi in (("japanese", 6.5), ("chinese", 7.5), ("aga", 7.5), ("korean", 6.5)):
        s = suggest_handicap(1500.0, 1500.0, rules=rules)
        assert (s.handicap, s.komi, s.black, s.stones) == (0, komi, None, 0)
        assert s.even and s.rank_difference == 0.0
    assert suggest_handicap(Rating(), Rating(), rules=Rules.from_name("nz")).komi == 7.5
    assert suggest_handicap(1500.0, 1500.0, rules="japanese", komi=5.5).komi == 5.5
    # less than a rank apart is still even
    s = suggest_handicap(at("5k"), rank_bounds("5k")[0] - 1e-6, rules="japanese")
    assert s.even and 0.5 < s.rank_difference < 1.0


def test_one_rank_is_a_no_komi_game() -> None:
    s = suggest_handicap(at("1d"), at("1k"), rules="japanese")
    assert (s.handicap, s.komi, s.black, s.stones) == (0, 0.5, "b", 1)
    assert not s.even
    assert s.rank_difference == pytest.approx(1.0)
    s = suggest_handicap(at("1k"), at("1d"), rules="chinese")
    assert (s.handicap, s.komi, s.black, s.stones) == (0, 0.5, "a", 1)
    assert s.rank_difference == pytest.approx(-1.0)


def test_five_ranks_on_19x19() -> None:
    s = suggest_handicap(Rating(at("10k"), 80.0), Rating(at("5k"), 70.0), rules="japanese")
    assert (s.handicap, s.komi, s.black, s.stones) == (5, 0.5, "a", 5)
    g = Game(19, rules=Rules.from_name("japanese"), komi=s.komi, handicap=s.handicap)
    assert len(g.handicap_locs) == 5 and g.to_move is Color.WHITE


def test_handicap_is_capped_at_nine() -> None:
    s = suggest_handicap(at("25k"), at("5d"), rules="aga")
    assert (s.handicap, s.black, s.stones) == (9, "a", 9)
    assert s.rank_difference == pytest.approx(-29.0)


def test_small_boards() -> None:
    assert ranks_per_stone(19) == 1.0 and ranks_per_stone(13) == 3.0
    assert ranks_per_stone(9) == 6.0
    assert ranks_per_stone(15) == pytest.approx(3 - 2 * 2 / 6)
    assert ranks_per_stone(5) == 6.0 and ranks_per_stone(25) == 1.0
    # 9x9: six ranks a stone
    cases_9 = [("10k", "15k", 0), ("10k", "16k", 1), ("10k", "22k", 2), ("1d", "25k", 4)]
    for strong, weak, stones in cases_9:
        s = suggest_handicap(at(strong), at(weak), rules="japanese", size=9)
        assert s.stones == stones, (strong, weak)
        assert s.handicap == (stones if stones >= 2 else 0)
        assert s.komi == (6.5 if stones == 0 else 0.5)
    # 13x13: three ranks a stone
    cases_13 = [("10k", "12k", 0), ("10k", "13k", 1), ("10k", "16k", 2), ("1d", "15k", 5)]
    for strong, weak, stones in cases_13:
        s = suggest_handicap(at(strong), at(weak), rules="chinese", size=13)
        assert s.stones == stones, (strong, weak)
        assert s.black == ("b" if stones else None)
    assert suggest_handicap(at("9d"), at("30k"), rules="aga", size=13).stones == 9
    # boards without a 5-to-9 stone layout, and boards without any fixed layout
    assert max_handicap(19) == max_handicap(9) == 9
    assert max_handicap(7) == max_handicap(10) == 4
    assert max_handicap(5) == 1
    assert suggest_handicap(at("9d"), at("30k"), rules="aga", size=10).handicap == 4
    s = suggest_handicap(at("9d"), at("30k"), rules="aga", size=5)
    assert (s.handicap, s.komi, s.stones) == (0, 0.5, 1)


@settings(max_examples=150, deadline=None)
@given(
    st.floats(100.0, 3500.0),
    st.floats(100.0, 3500.0),
    st.sampled_from([7, 8, 9, 10, 11, 13, 15, 17, 19]),
    st.sampled_from(["japanese", "chinese", "aga", "new-zealand", "tromp-taylor"]),
)
def test_every_suggestion_can_be_played(a: float, b: float, size: int, rules: str) -> None:
    s = suggest_handicap(a, b, rules=rules, size=size)
    g = Game(size, rules=Rules.from_name(rules), komi=s.komi, handicap=s.handicap)
    assert len(g.handicap_locs) == s.handicap
    assert s.stones == 0 or s.black == ("a" if a < b else "b")
    swapped = suggest_handicap(b, a, rules=rules, size=size)
    assert (swapped.handicap, swapped.komi, swapped.stones) == (s.handicap, s.komi, s.stones)
    assert 0 <= s.stones <= max_handicap(size)


def test_bad_handicap_inputs() -> None:
    with pytest.raises(ValueError):
        suggest_handicap(1500.0, 1500.0, rules="go-for-it")
    with pytest.raises(ValueError):
        suggest_handicap(1500.0, 1600.0, rules="japanese", size=1)
    with pytest.raises(TypeError):
        suggest_handicap(1500.0, "1600", rules="japanese")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        suggest_handicap(math.nan, 1600.0, rules="japanese")
    with pytest.raises(ValueError):
        handicap_rank_difference(-1, 0.5, rules="japanese")


def test_default_komi() -> None:
    assert default_komi("japanese") == 6.5 and default_komi("tt") == 7.5
    custom_area = Rules.from_name("chinese").with_options(suicide=True)
    custom_territory = Rules.from_name("japanese").with_options(suicide=True)
    assert custom_area.name == custom_territory.name == "custom"
    assert default_komi(custom_area) == 7.5 and default_komi(custom_territory) == 6.5


def test_handicap_rank_difference_is_ogs() -> None:
    # fair komi is worth nothing (OGS's own checks: 6 territory, 7 area)
    for size in (9, 13, 19):
        assert handicap_rank_difference(0, 6.0, rules="japanese", size=size) == 0.0
        assert handicap_rank_difference(0, 7.0, rules="aga", size=size) == 0.0
    # a no-komi game is about half a rank on 19x19
    assert handicap_rank_difference(0, 0.5, rules="japanese") == pytest.approx(5.5 / 12)
    # five stones at komi 0.5, with the rules' compensation
    assert handicap_rank_difference(5, 0.5, rules="japanese") == pytest.approx(53.5 / 12)
    assert handicap_rank_difference(5, 0.5, rules="chinese") == pytest.approx(53.5 / 12)
    assert handicap_rank_difference(5, 0.5, rules="aga") == pytest.approx(54.5 / 12)
    assert handicap_rank_difference(2, 0.5, rules="japanese", size=9) == pytest.approx(
        6 * 17.5 / 12
    )
    # the effective rating for rating the game
    r = at("10k")
    assert rating_to_rank(effective_rating(r, 5.0)) == "5k"
    assert effective_rating(effective_rating(r, 3.7), -3.7) == pytest.approx(r)


def test_module_exports() -> None:
    import goapp.rating as rating

    for module in (rating, glicko2, ranks, handicap):
        for name in module.__all__:
            assert hasattr(module, name), (module.__name__, name)
