"""Tests for goapp.rules.clock: time control arithmetic, boundaries, lag compensation."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from goapp.rules.clock import (
    LAG_QUOTA_GAIN_MAX_MS,
    LAG_QUOTA_INITIAL_FACTOR,
    LAG_QUOTA_MAX_FACTOR,
    MAX_FLAG_GRACE_MS,
    MAX_MAIN_S,
    Absolute,
    ByoYomi,
    Canadian,
    ClockError,
    Color,
    Fischer,
    FlagFallen,
    GameClock,
    NoTimeControl,
    PlayerClock,
    Simple,
    TimeControl,
    TimeControlError,
    decode_time_control,
    format_duration,
    lag_quota_gain_ms,
    lag_quota_max_ms,
    time_control_from_sgf,
)

T0 = 1_700_000_000_000  # an epoch-ms "now", to make sure nothing assumes small numbers


def started(control: TimeControl, first: Color = "black") -> GameClock:
    return GameClock.new(control, first).start(T0)


def total(clock: GameClock, color: Color, now: int) -> int | None:
    return clock.time_left_ms(color, now)


# --- time control values -------------------------------------------------------------------

ALL_CONTROLS: list[TimeControl] = [
    NoTimeControl(),
    Absolute(main_s=300),
    Fischer(main_s=300, increment_s=10),
    Fischer(main_s=300, increment_s=10, max_s=600),
    ByoYomi(main_s=600, periods=5, period_s=30),
    ByoYomi(main_s=0, periods=3, period_s=10),
    Canadian(main_s=600, stones=25, period_s=600),
    Simple(per_move_s=30),
]


@pytest.mark.parametrize("control", ALL_CONTROLS, ids=lambda c: c.describe())
def test_json_round_trip(control: TimeControl) -> None:
    data = msgspec.json.encode(control)
    assert decode_time_control(data) == control
    assert decode_time_control(data.decode()) == control
    assert decode_time_control(msgspec.json.decode(data)) == control
    assert type(decode_time_control(data)) is type(control)


@pytest.mark.parametrize(
    ("control", "text", "sgf"),
    [
        (NoTimeControl(), "no time limit", {}),
        (Absolute(main_s=3600), "1h absolute", {"TM": "3600"}),
        (
            Fischer(main_s=300, increment_s=10),
            "5m + 10s Fischer",
            {"TM": "300", "OT": "Fischer 10"},
        ),
        (
            Fischer(main_s=300, increment_s=10, max_s=600),
            "5m + 10s Fischer (max 10m)",
            {"TM": "300", "OT": "Fischer 10 (max 600)"},
        ),
        (
            ByoYomi(main_s=600, periods=5, period_s=30),
            "10m + 5\u00d730s byo-yomi",
            {"TM": "600", "OT": "5x30 byo-yomi"},
        ),
        (
            ByoYomi(main_s=0, periods=3, period_s=10),
            "3\u00d710s byo-yomi",
            {"TM": "0", "OT": "3x10 byo-yomi"},
        ),
        (
            Canadian(main_s=5400, stones=25, period_s=600),
            "1h30m + 25/10m Canadian",
            {"TM": "5400", "OT": "25/600 Canadian"},
        ),
        (Simple(per_move_s=30), "30s per move", {"TM": "0", "OT": "1x30 byo-yomi"}),
    ],
)
def test_describe_and_sgf(control: TimeControl, text: str, sgf: dict[str, str]) -> None:
    assert control.describe() == text
    assert control.sgf_properties() == sgf


@pytest.mark.parametrize("control", ALL_CONTROLS, ids=lambda c: c.describe())
def test_sgf_round_trip(control: TimeControl) -> None:
    props = control.sgf_properties()
    parsed = time_control_from_sgf(props.get("TM"), props.get("OT"))
    if isinstance(control, NoTimeControl):
        assert parsed is None
    elif isinstance(control, Simple):  # written as the equivalent 1-period byo-yomi
        assert parsed == ByoYomi(main_s=0, periods=1, period_s=control.per_move_s)
    else:
        assert parsed == control


@pytest.mark.parametrize(
    ("tm", "ot", "expected"),
    [
        ("1800", "3x30s byoyomi", ByoYomi(main_s=1800, periods=3, period_s=30)),
        ("1800.5", "5 x 30.0 Byo-Yomi", ByoYomi(main_s=1800, periods=5, period_s=30)),
        (None, "5\u00d730 byo-yomi", ByoYomi(main_s=0, periods=5, period_s=30)),
        ("600", "25/600 canadian", Canadian(main_s=600, stones=25, period_s=600)),
        ("300", "fischer 10", Fischer(main_s=300, increment_s=10)),
        ("300", "Fischer 10s (max 600s)", Fischer(main_s=300, increment_s=10, max_s=600)),
        ("3600", None, Absolute(main_s=3600)),
        ("3600", "", Absolute(main_s=3600)),
        ("0", None, None),
        (None, None, None),
        ("600", "hourglass", None),
        ("600", "99x30 byo-yomi", None),  # too many periods
        ("-5", None, None),
        ("nan", None, None),
        ("inf", "5x30 byo-yomi", None),
        ("abc", "5x30 byo-yomi", None),
        ("10", "Fischer 10 (max 5)", None),  # cap below main time
    ],
)
def test_sgf_parse_variants(tm: str | None, ot: str | None, expected: TimeControl | None) -> None:
    assert time_control_from_sgf(tm, ot) == expected


def test_format_duration() -> None:
    assert format_duration(0) == "0s"
    assert format_duration(45) == "45s"
    assert format_duration(90) == "1m30s"
    assert format_duration(3600) == "1h"
    assert format_duration(86_400 + 3_661) == "1d1h1m1s"


@pytest.mark.parametrize(
    "data",
    [
        {"system": "absolute", "main_s": 0},
        {"system": "absolute", "main_s": -5},
        {"system": "absolute", "main_s": MAX_MAIN_S + 1},
        {"system": "absolute", "main_s": 1.5},
        {"system": "absolute", "main_s": "600"},
        {"system": "absolute", "main_s": True},
        {"system": "absolute"},
        {"system": "absolute", "main_s": 60, "bonus": 1},
        {"system": "fischer", "main_s": 600, "increment_s": 0},
        {"system": "fischer", "main_s": 600, "increment_s": 5, "max_s": 599},
        {"system": "byoyomi", "main_s": 600, "periods": 0, "period_s": 30},
        {"system": "byoyomi", "main_s": 600, "periods": 31, "period_s": 30},
        {"system": "byoyomi", "main_s": 600, "periods": 5, "period_s": 0},
        {"system": "byoyomi", "main_s": -1, "periods": 5, "period_s": 30},
        {"system": "canadian", "main_s": 600, "stones": 0, "period_s": 600},
        {"system": "canadian", "main_s": 600, "stones": 25, "period_s": 0},
        {"system": "simple", "per_move_s": 0},
        {"system": "hourglass", "main_s": 60},
        {"main_s": 60},
        [],
    ],
)
def test_invalid_time_controls_rejected(data: object) -> None:
    with pytest.raises(TimeControlError):
        decode_time_control(msgspec.json.encode(data))
    if isinstance(data, dict):
        with pytest.raises(TimeControlError):
            decode_time_control(data)


def test_invalid_json_rejected() -> None:
    with pytest.raises(TimeControlError):
        decode_time_control(b"{not json")


def test_direct_construction_is_validated() -> None:
    with pytest.raises(TimeControlError, match="periods"):
        ByoYomi(main_s=600, periods=50, period_s=30)
    with pytest.raises(TimeControlError, match="max_s"):
        Fischer(main_s=600, increment_s=5, max_s=10)
    with pytest.raises(TimeControlError):
        Simple(per_move_s=True)


def test_time_control_error_is_value_error() -> None:
    assert issubclass(TimeControlError, ValueError)


# --- per-system arithmetic (no lag) --------------------------------------------------------


def test_none_never_flags() -> None:
    clock = started(NoTimeControl())
    assert clock.deadline() is None
    assert clock.flag_time() is None
    later = T0 + 10**12
    assert not clock.is_flagged(later)
    clock = clock.move_made("black", later, lag_ms=5000)
    assert clock.black.spent_ms == 10**12
    assert clock.black.lag_credited_ms == 0
    assert total(clock, "white", later + 10**9) is None
    with pytest.raises(ClockError):
        clock.timeout(later + 10**9)


def test_absolute_counts_down_and_flags() -> None:
    clock = started(Absolute(main_s=60))
    clock = clock.move_made("black", T0 + 10_000)
    assert clock.black.main_ms == 50_000
    assert clock.to_move == "white"
    assert clock.turn_started_ms == T0 + 10_000
    clock = clock.move_made("white", T0 + 12_500)
    assert clock.white.main_ms == 57_500
    # Black has 50 s; the clock shows it running down.
    assert clock.remaining_at("black", T0 + 12_500 + 20_000).main_ms == 30_000
    assert clock.remaining_at("white", T0 + 12_500 + 20_000).main_ms == 57_500
    assert clock.flag_time() == T0 + 12_500 + 50_000


def test_flag_exactly_at_budget_boundary() -> None:
    clock = started(Absolute(main_s=60))
    flag_time = T0 + 60_000
    assert clock.flag_time() == flag_time
    # 59.999 s used: the move is in time and leaves 1 ms.
    ok = clock.move_made("black", flag_time - 1)
    assert ok.black.main_ms == 1
    # Exactly 60 s used: the time is over (no lag claimed).
    with pytest.raises(FlagFallen) as info:
        clock.move_made("black", flag_time)
    assert info.value.player == "black"
    assert info.value.flag_time == flag_time
    assert clock.remaining_at("black", flag_time).main_ms == 0
    assert clock.remaining_at("black", flag_time - 1).main_ms == 1


def test_deadline_boundary_is_exact() -> None:
    clock = started(Absolute(main_s=60))
    grace = min(clock.black.lag_quota_ms, MAX_FLAG_GRACE_MS)
    deadline = clock.deadline()
    assert deadline == T0 + 60_000 + grace
    assert not clock.is_flagged(deadline - 1)
    assert clock.is_flagged(deadline)
    assert clock.is_flagged(deadline + 1)
    # At the deadline no lag claim can save the move.
    with pytest.raises(FlagFallen):
        clock.move_made("black", deadline, lag_ms=10**9)
    # One ms before it, a lag claim covering the overrun is enough.
    clock.move_made("black", deadline - 1, lag_ms=10**9)


def test_fischer_increment_and_cap() -> None:
    clock = started(Fischer(main_s=60, increment_s=10, max_s=75))
    clock = clock.move_made("black", T0 + 5_000)  # 60 - 5 + 10 = 65
    assert clock.black.main_ms == 65_000
    clock = clock.move_made("white", T0 + 6_000)  # 60 - 1 + 10 = 69
    assert clock.white.main_ms == 69_000
    clock = clock.move_made("black", T0 + 6_500)  # 65 - 0.5 + 10 = 74.5
    assert clock.black.main_ms == 74_500
    clock = clock.move_made("white", T0 + 6_600)  # 69 - 0.1 + 10 = 78.9 -> cap 75
    assert clock.white.main_ms == 75_000
    clock = clock.move_made("black", T0 + 6_700)  # 74.5 - 0.1 + 10 -> 75
    assert clock.black.main_ms == 75_000


def test_fischer_without_cap_accumulates() -> None:
    clock = started(Fischer(main_s=60, increment_s=10))
    now = T0
    for _ in range(10):
        now += 1_000
        clock = clock.move_made(clock.to_move, now)
    assert clock.black.main_ms == 60_000 + 5 * 9_000
    assert clock.white.main_ms == 60_000 + 5 * 9_000


def test_fischer_flags_when_main_time_runs_out() -> None:
    clock = started(Fischer(main_s=10, increment_s=5))
    with pytest.raises(FlagFallen):
        clock.move_made("black", T0 + 10_000)


def test_byoyomi_main_time_runs_into_periods() -> None:
    control = ByoYomi(main_s=60, periods=5, period_s=30)
    clock = started(control)
    # Main time runs first: 20 s used.
    clock = clock.move_made("black", T0 + 20_000)
    assert (clock.black.main_ms, clock.black.periods, clock.black.period_ms) == (40_000, 5, 30_000)
    clock = clock.move_made("white", T0 + 20_000)
    # Black uses 40 s (all main time) + 10 s of the first period: the period resets on the move.
    at = T0 + 20_000 + 50_000
    shown = clock.remaining_at("black", at)
    assert (shown.main_ms, shown.periods, shown.period_ms) == (0, 5, 20_000)
    clock = clock.move_made("black", at)
    assert (clock.black.main_ms, clock.black.periods, clock.black.period_ms) == (0, 5, 30_000)


def test_byoyomi_period_reset_vs_period_used() -> None:
    control = ByoYomi(main_s=0, periods=3, period_s=30)
    clock = started(control)
    # 29.999 s: still within the first period; it resets.
    clock = clock.move_made("black", T0 + 29_999)
    assert (clock.black.periods, clock.black.period_ms) == (3, 30_000)
    now = T0 + 29_999
    clock = clock.move_made("white", now)
    # Exactly 30 s: the first period is used up; the move is made at the start of the second.
    now += 30_000
    assert clock.remaining_at("black", now).periods == 2
    clock = clock.move_made("black", now)
    assert (clock.black.periods, clock.black.period_ms) == (2, 30_000)
    clock = clock.move_made("white", now)
    # 65 s: two periods gone, 5 s into the last one.
    shown = clock.remaining_at("black", now + 65_000)
    assert (shown.periods, shown.period_ms) == (0, 0)  # overrun: shown as zero
    # Only 2 periods were left (60 s budget): 65 s is a loss.
    with pytest.raises(FlagFallen):
        clock.move_made("black", now + 65_000)
    # 59.999 s: last period, 1 ms left.
    shown = clock.remaining_at("black", now + 59_999)
    assert (shown.periods, shown.period_ms) == (1, 1)
    after = clock.move_made("black", now + 59_999)
    assert (after.black.periods, after.black.period_ms) == (1, 30_000)


def test_byoyomi_loss_when_last_period_runs_out() -> None:
    clock = started(ByoYomi(main_s=10, periods=2, period_s=5))
    assert clock.flag_time() == T0 + 10_000 + 2 * 5_000
    with pytest.raises(FlagFallen):
        clock.move_made("black", T0 + 20_000)
    clock.move_made("black", T0 + 19_999)


def test_canadian_block_resets_after_stones() -> None:
    control = Canadian(main_s=10, stones=3, period_s=60)
    clock = started(control)
    # A move in main time does not count towards a block.
    now = T0 + 5_000
    clock = clock.move_made("black", now)
    assert (clock.black.main_ms, clock.black.stones, clock.black.period_ms) == (5_000, 3, 60_000)
    clock = clock.move_made("white", now)
    # Main time runs out during this move (5 s main + 10 s block): the first stone of the block.
    now += 15_000
    clock = clock.move_made("black", now)
    assert (clock.black.main_ms, clock.black.stones, clock.black.period_ms) == (0, 2, 50_000)
    clock = clock.move_made("white", now)
    now += 20_000
    clock = clock.move_made("black", now)
    assert (clock.black.stones, clock.black.period_ms) == (1, 30_000)
    clock = clock.move_made("white", now)
    # The third stone completes the block: it resets.
    now += 29_999
    clock = clock.move_made("black", now)
    assert (clock.black.stones, clock.black.period_ms) == (3, 60_000)


def test_canadian_block_time_runs_out() -> None:
    clock = started(Canadian(main_s=0, stones=5, period_s=20))
    now = T0 + 15_000
    clock = clock.move_made("black", now).move_made("white", now)
    assert clock.black.period_ms == 5_000
    assert clock.flag_time() == now + 5_000
    with pytest.raises(FlagFallen):
        clock.move_made("black", now + 5_000)


def test_simple_resets_every_move() -> None:
    clock = started(Simple(per_move_s=10))
    now = T0
    for _ in range(5):
        now += 9_999
        clock = clock.move_made(clock.to_move, now)
        assert clock.player("black").period_ms == 10_000
        assert clock.player("white").period_ms == 10_000
    with pytest.raises(FlagFallen):
        clock.move_made(clock.to_move, now + 10_000)


def test_white_can_move_first() -> None:
    clock = started(Absolute(main_s=60), first="white")
    assert clock.to_move == "white"
    with pytest.raises(ClockError):
        clock.move_made("black", T0 + 1)
    clock = clock.move_made("white", T0 + 1_000)
    assert clock.white.main_ms == 59_000


# --- lag compensation ---------------------------------------------------------------------


def test_quota_constants() -> None:
    # Every real Go time control gets the maximum gain; tiny ones get less.
    assert lag_quota_gain_ms(ByoYomi(main_s=600, periods=5, period_s=30)) == LAG_QUOTA_GAIN_MAX_MS
    assert lag_quota_gain_ms(Absolute(main_s=30)) == 150 + 4 * 30
    assert lag_quota_gain_ms(Simple(per_move_s=1)) == 150 + 4 * 40
    assert lag_quota_gain_ms(NoTimeControl()) == 150
    control = Absolute(main_s=600)
    assert lag_quota_max_ms(control) == LAG_QUOTA_MAX_FACTOR * LAG_QUOTA_GAIN_MAX_MS
    assert control.initial().lag_quota_ms == LAG_QUOTA_INITIAL_FACTOR * LAG_QUOTA_GAIN_MAX_MS


def test_lag_credited_within_quota() -> None:
    clock = started(Absolute(main_s=600))
    quota = clock.black.lag_quota_ms  # 3000
    clock = clock.move_made("black", T0 + 10_000, lag_ms=400)
    assert clock.black.main_ms == 600_000 - 9_600
    assert clock.black.lag_credited_ms == 400
    assert clock.black.spent_ms == 9_600
    assert clock.black.lag_quota_ms == quota - 400 + 1_000


def test_lag_credit_capped_by_quota_and_refilled() -> None:
    clock = started(Absolute(main_s=600))
    gain = lag_quota_gain_ms(clock.control)
    now = T0
    # A lag spike of 10 s: only the initial quota (3 s) is credited.
    now += 20_000
    clock = clock.move_made("black", now, lag_ms=10_000)
    assert clock.black.lag_credited_ms == 3 * gain
    assert clock.black.spent_ms == 20_000 - 3 * gain
    assert clock.black.lag_quota_ms == gain  # emptied, then one gain refilled
    # Quiet moves refill the quota by one gain each, up to the maximum.
    for _ in range(10):
        clock = clock.move_made("white", now)
        now += 1_000
        clock = clock.move_made("black", now, lag_ms=0)
    assert clock.black.lag_quota_ms == LAG_QUOTA_MAX_FACTOR * gain


def test_cheating_lag_claims_are_capped() -> None:
    """Claiming huge lag on every move yields only ``gain`` per move after the initial quota."""
    control = Absolute(main_s=600)
    gain = lag_quota_gain_ms(control)
    clock = started(control)
    now = T0
    moves = 20
    for _ in range(moves):
        now += 5_000
        clock = clock.move_made("black", now, lag_ms=10**9)
        clock = clock.move_made("white", now)
    credited = clock.black.lag_credited_ms
    assert credited == LAG_QUOTA_INITIAL_FACTOR * gain + (moves - 1) * gain
    assert clock.black.spent_ms == moves * 5_000 - credited


def test_honest_small_lag_always_fully_credited() -> None:
    clock = started(ByoYomi(main_s=0, periods=1, period_s=10))
    now = T0
    for _ in range(200):
        now += 9_500
        clock = clock.move_made("black", now, lag_ms=800)  # 8.7 s charged
        clock = clock.move_made("white", now)
    assert clock.black.lag_credited_ms == 200 * 800
    assert clock.black.periods == 1


def test_lag_credit_never_exceeds_elapsed_and_negative_is_zero() -> None:
    clock = started(Absolute(main_s=600))
    clock = clock.move_made("black", T0 + 100, lag_ms=2_000)
    assert clock.black.lag_credited_ms == 100
    assert clock.black.spent_ms == 0
    clock = clock.move_made("white", T0 + 1_100, lag_ms=-5_000)
    assert clock.white.lag_credited_ms == 0
    assert clock.white.spent_ms == 1_000


def test_lag_saves_move_arriving_in_grace_window() -> None:
    clock = started(Absolute(main_s=60))
    flag_time = T0 + 60_000
    # 0.5 s past zero with 0.7 s of lag: accepted, 0.2 s left (plus no increment).
    clock2 = clock.move_made("black", flag_time + 500, lag_ms=700)
    assert clock2.black.main_ms == 200
    # 0.5 s past zero with 0.5 s of lag: exactly zero left, which is a loss.
    with pytest.raises(FlagFallen) as info:
        clock.move_made("black", flag_time + 500, lag_ms=500)
    assert info.value.flag_time == flag_time
    # The server then records the timeout (the game is lost from flag_time on).
    over = clock.timeout(flag_time + 500)
    assert over.flagged == "black"
    assert over.state == "stopped"
    assert over.black.main_ms == 0


def test_grace_limited_to_max_and_to_quota() -> None:
    clock = started(Absolute(main_s=600))
    assert clock.black.lag_quota_ms > MAX_FLAG_GRACE_MS
    assert clock.grace_ms() == MAX_FLAG_GRACE_MS
    # Exhaust the quota: the grace shrinks with it.
    clock = clock.move_made("black", T0 + 20_000, lag_ms=10**6)
    clock = clock.move_made("white", T0 + 20_000)
    assert clock.black.lag_quota_ms == 1_000
    assert clock.grace_ms() == 1_000
    assert clock.deadline() == (clock.flag_time() or 0) + 1_000


# --- pause, resume, stop, timeout ------------------------------------------------------


def test_pause_and_resume() -> None:
    clock = started(Absolute(main_s=60))
    clock = clock.pause(T0 + 10_000)
    assert clock.state == "paused"
    assert clock.black.main_ms == 50_000
    assert clock.deadline() is None
    assert not clock.is_flagged(T0 + 10**9)
    assert clock.remaining_at("black", T0 + 10**9).main_ms == 50_000
    with pytest.raises(ClockError):
        clock.move_made("black", T0 + 20_000)
    with pytest.raises(ClockError):
        clock.pause(T0 + 20_000)
    clock = clock.resume(T0 + 1_000_000)
    assert clock.flag_time() == T0 + 1_000_000 + 50_000
    clock = clock.move_made("black", T0 + 1_000_000 + 5_000)
    assert clock.black.main_ms == 45_000
    assert clock.black.spent_ms == 15_000


def test_pause_keeps_byoyomi_period_partly_used() -> None:
    control = ByoYomi(main_s=0, periods=2, period_s=30)
    clock = started(control).pause(T0 + 20_000)
    assert (clock.black.periods, clock.black.period_ms) == (2, 10_000)
    clock = clock.resume(T0 + 100_000)
    # 10 s left in the period: 15 s into the turn, the first period is gone.
    assert clock.remaining_at("black", T0 + 115_000).periods == 1
    clock = clock.move_made("black", T0 + 105_000)
    assert (clock.black.periods, clock.black.period_ms) == (2, 30_000)


def test_resume_with_other_player() -> None:
    clock = started(Absolute(main_s=60)).pause(T0 + 1_000).resume(T0 + 2_000, to_move="white")
    assert clock.to_move == "white"
    clock = clock.move_made("white", T0 + 3_000)
    assert clock.white.main_ms == 59_000


def test_pause_after_time_is_over_raises() -> None:
    clock = started(Absolute(main_s=60))
    with pytest.raises(FlagFallen):
        clock.pause(T0 + 60_000)


def test_stop_clamps_and_is_idempotent() -> None:
    clock = started(Absolute(main_s=60)).stop(T0 + 100_000)
    assert clock.state == "stopped"
    assert clock.black.main_ms == 0
    assert clock.flagged is None
    assert clock.stop(T0 + 200_000) == clock
    assert clock.deadline() is None
    with pytest.raises(ClockError):
        clock.resume(T0)


def test_timeout_only_when_time_is_over() -> None:
    clock = started(ByoYomi(main_s=10, periods=1, period_s=5))
    with pytest.raises(ClockError):
        clock.timeout(T0 + 14_999)
    over = clock.timeout(T0 + 15_000)
    assert over.flagged == "black"
    payload = over.to_payload(T0 + 15_000)
    assert payload["black"]["remaining_ms"] == 0
    assert payload["flagged"] == "black"


def test_state_errors() -> None:
    clock = GameClock.new(Absolute(main_s=60))
    assert clock.state == "ready"
    assert clock.deadline() is None
    with pytest.raises(ClockError):
        clock.move_made("black", T0)
    with pytest.raises(ClockError):
        clock.resume(T0)
    clock = clock.start(T0)
    with pytest.raises(ClockError):
        clock.start(T0)
    with pytest.raises(ClockError, match="turn"):
        clock.move_made("white", T0 + 1)


def test_now_must_be_int_ms() -> None:
    clock = started(Absolute(main_s=60))
    with pytest.raises(TypeError):
        clock.move_made("black", 1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        clock.is_flagged(True)


def test_backward_clock_step_charges_nothing() -> None:
    clock = started(Absolute(main_s=60))
    clock = clock.move_made("black", T0 - 5_000)
    assert clock.black.main_ms == 60_000
    assert clock.remaining_at("white", T0 - 10_000).main_ms == 60_000


# --- serialization ------------------------------------------------------------------


def test_payload_shape() -> None:
    clock = started(ByoYomi(main_s=60, periods=3, period_s=10)).move_made("black", T0 + 1_000)
    payload = clock.to_payload(T0 + 3_000)
    assert payload == {
        "system": "byoyomi",
        "state": "running",
        "to_move": "white",
        "server_ms": T0 + 3_000,
        "deadline_ms": clock.deadline(),
        "flagged": None,
        "black": {
            "main_ms": 59_000,
            "periods": 3,
            "period_ms": 10_000,
            "stones": 0,
            "remaining_ms": 89_000,
        },
        "white": {
            "main_ms": 58_000,
            "periods": 3,
            "period_ms": 10_000,
            "stones": 0,
            "remaining_ms": 88_000,
        },
    }
    assert msgspec.json.decode(msgspec.json.encode(payload)) == payload


@pytest.mark.parametrize("control", ALL_CONTROLS, ids=lambda c: c.describe())
def test_game_clock_json_round_trip(control: TimeControl) -> None:
    clock = started(control).move_made("black", T0 + 1_234, lag_ms=56).pause(T0 + 2_000)
    data = msgspec.json.encode(clock)
    assert msgspec.json.decode(data, type=GameClock) == clock


def test_player_clock_defaults() -> None:
    assert PlayerClock() == PlayerClock(main_ms=0, periods=0, period_ms=0, stones=0)


# --- properties -----------------------------------------------------------------------

small_controls: st.SearchStrategy[TimeControl] = st.one_of(
    st.builds(NoTimeControl),
    st.builds(Absolute, main_s=st.integers(1, 30)),
    st.builds(
        Fischer,
        main_s=st.integers(1, 30),
        increment_s=st.integers(1, 10),
        max_s=st.none() | st.integers(30, 60),
    ),
    st.builds(
        ByoYomi, main_s=st.integers(0, 30), periods=st.integers(1, 5), period_s=st.integers(1, 10)
    ),
    st.builds(
        Canadian, main_s=st.integers(0, 30), stones=st.integers(1, 5), period_s=st.integers(1, 30)
    ),
    st.builds(Simple, per_move_s=st.integers(1, 10)),
)

steps = st.lists(
    st.tuples(
        st.sampled_from(["move", "move", "move", "pause"]),
        st.integers(0, 12_000),  # delay before the step, ms
        st.integers(-100, 3_000) | st.just(10**9),  # claimed lag
        st.integers(0, 40_000),  # probe offset
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(control=small_controls, script=steps)
def test_clock_properties(control: TimeControl, script: list[tuple[str, int, int, int]]) -> None:
    clock = started(control)
    now = T0
    running_ms = 0  # wall time during which some player's clock ran

    def check_invariants(c: GameClock, at: int) -> None:
        payload = c.to_payload(at)
        for color in ("black", "white"):
            side = payload[color]
            for key in ("main_ms", "periods", "period_ms", "stones"):
                assert side[key] >= 0
            assert side["remaining_ms"] is None or side["remaining_ms"] >= 0
        deadline = c.deadline()
        assert c.is_flagged(at) == (deadline is not None and at >= deadline)
        flag_time = c.flag_time()
        if c.state == "running" and flag_time is not None:
            assert deadline is not None
            # A move claiming maximal lag is accepted exactly until the deadline...
            try:
                c.move_made(c.to_move, at, lag_ms=10**12)
                accepted = True
            except FlagFallen:
                accepted = False
            assert accepted == (not c.is_flagged(at))
            # ...and one claiming none exactly until the time shows zero.
            try:
                c.move_made(c.to_move, at, lag_ms=0)
                accepted = True
            except FlagFallen:
                accepted = False
            assert accepted == (at < flag_time)
            assert (total(c, c.to_move, at) == 0) == (at >= flag_time)

    for op, delay, lag, probe in script:
        check_invariants(clock, now + probe)
        now += delay
        turn_start = clock.turn_started_ms
        assert turn_start is not None
        try:
            if op == "move":
                clock = clock.move_made(clock.to_move, now, lag_ms=lag)
            else:
                clock = clock.pause(now).resume(now + 1_000_000)
                now += 1_000_000
        except FlagFallen:
            assert control.timed
            event("flagged")
            clock = clock.timeout(now)
            assert clock.flagged is not None
            check_invariants(clock, now + probe)
            return
        running_ms += now - turn_start if op == "move" else delay
        # Time charged plus lag credited adds up to the wall time the clocks ran.
        charged = clock.black.spent_ms + clock.white.spent_ms
        credited = clock.black.lag_credited_ms + clock.white.lag_credited_ms
        assert charged == running_ms - credited
        if isinstance(control, Absolute):
            for pc in (clock.black, clock.white):
                assert pc.main_ms == control.main_s * 1000 - pc.spent_ms
        if isinstance(control, Fischer) and control.max_s is None:
            for pc in (clock.black, clock.white):
                expected = (control.main_s + pc.moves * control.increment_s) * 1000 - pc.spent_ms
                assert pc.main_ms == expected
        assert msgspec.json.decode(msgspec.json.encode(clock), type=GameClock) == clock
    event("played to the end")
    check_invariants(clock, now)
