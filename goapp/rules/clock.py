"""Server-authoritative Go clocks: time controls, per-player clock state, lag compensation.

This module is pure arithmetic. It never reads a clock itself: every operation takes ``now``,
an integer number of **milliseconds**, so that the results are deterministic, testable and
free of float drift. The server passes the wall clock in epoch milliseconds
(``time.time_ns() // 1_000_000``) because :meth:`GameClock.deadline` is persisted and compared
by *other* instances; a per-process monotonic clock would not mean anything to them. A ``now``
that lies before the start of the current turn (a small backward step of the wall clock, or
instances whose clocks disagree slightly) is treated as "no time elapsed", never as time won.

Time controls
=============

A time control is one of six msgspec structs, a tagged union on the ``system`` field, so it
travels as JSON (``{"system": "byoyomi", "main_s": 600, "periods": 5, "period_s": 30}``) and is
validated on construction as well as on decoding (:func:`decode_time_control`). Configuration
is in whole seconds; clock state is in milliseconds.

================  =============================================================================
``none``          No clock. Nobody ever loses on time.
``absolute``      Main time only ("sudden death").
``fischer``       Main time; after every move the increment is added, the total capped at
                  ``max_s`` when given (so that a fast player cannot bank unlimited time).
``byoyomi``       Japanese byo-yomi: main time, then ``periods`` periods of ``period_s``. A move
                  made within a period resets it to full; a period is used up only when it runs
                  out completely (``period_s`` elapsed within one turn), and the player loses
                  when the last one does.
``canadian``      Main time, then blocks: ``stones`` moves within ``period_s``. The block time
                  runs down over several turns; when the last stone of the block is played the
                  block resets (``stones`` and ``period_s`` again). A move made while main time
                  is left does not count towards a block.
``simple``        ``per_move_s`` for every move, unused time is lost (no main time).
``correspondence`` ``days_per_move`` days (1 to 30) for every move, unused time is lost; with
                  ``weekends_off`` the clock does not run on Saturdays and Sundays (UTC).
================  =============================================================================

Correspondence time and weekends
--------------------------------

A correspondence game's deadline is the time of the last move plus ``days_per_move`` days.
With ``weekends_off``, time that falls on a Saturday or a Sunday is not charged: the clock
counts only weekday milliseconds (:func:`weekday_ms`) and the deadline is pushed past every
weekend the turn spans (:meth:`TimeControlBase.wall_span`). Weekends are **UTC** days: the
server must give both players, on every instance, the same deadline, and a player's own
time zone is not known to the clock (one timezone for everybody, like OGS's server-side
weekends). So a player in UTC+9 sees the weekend pause from Saturday 09:00 to Monday 09:00
local time. A move's deadline that falls exactly at the end of a Friday stays there (it is
not moved to Monday).

Boundaries are exact to the millisecond: a player whose time budget is ``B`` ms at the start
of a turn may use up to ``B - 1`` ms; at ``B`` ms the time is over (byo-yomi: a period with
``period_s * 1000`` ms elapsed is used up).

SGF: :meth:`TimeControlBase.sgf_properties` gives the ``TM``/``OT`` values. ``TM`` is main time
in seconds; ``OT`` follows what KGS, OGS, Sabaki and GoGui read and write: ``"5x30 byo-yomi"``,
``"25/600 Canadian"``. FF[4] does not standardise ``OT``; for Fischer no common form exists, we
write ``"Fischer 10 (max 600)"`` (increment, then the cap when there is one). Simple time is
written as ``TM[0]OT[1x30 byo-yomi]``, which is exactly the same rule and which every reader
understands. :func:`time_control_from_sgf` reads these forms (and common variants) back.

Clock state
===========

:class:`PlayerClock` is one player's state (main time left, byo-yomi periods left, time left in
the current period or Canadian block, stones left in the block, lag quota, statistics), and
:class:`GameClock` puts two of them together with whose turn it is and when that turn started.
Both are frozen structs: every operation returns a new value, so a game's clock is a fold over
its event log like the rest of the game state, and a snapshot is just ``msgspec.json.encode``.

The life of a clock::

    clock = GameClock.new(control)              # state "ready": nothing runs yet
    clock = clock.start(now)                    # black's time runs
    clock = clock.move_made("black", now, lag_ms=35)   # a move or a pass; white's time runs
    clock.deadline()                            # persist: when white flags if silent
    clock = clock.pause(now) ... clock.resume(now)     # scoring phase, adjournment
    clock = clock.stop(now)                     # resign, score agreed, ...
    clock = clock.timeout(now)                  # the player to move ran out of time

:meth:`GameClock.move_made` raises :class:`FlagFallen` when the player had run out of time; the
server then rejects the move and records a timeout with :meth:`GameClock.timeout`.
:meth:`GameClock.to_payload` gives the dict that goes into every event (both players' state as
of the event, the server timestamp, the deadline) so that clients can run their display clocks.

Lag compensation
================

A move's thinking time is measured on the server, from the moment the previous move committed
to the moment this one arrived. That includes the network round trip, so a player on a slow
link would be charged for the network. Like lichess (``LagTracker`` in ``scalachess``), we
credit back the lag the client reports (or that the server estimates from pings), but only up
to a per-player **quota**:

* ``credited = min(claimed_lag, quota, elapsed)``; the player is charged ``elapsed - credited``;
* then ``quota = min(quota - credited + gain, quota_max)``.

So an honest player with steady lag below ``gain`` per move is fully compensated forever,
a lag spike is covered by the saved-up quota, and a cheater who claims huge lag gets at most
``gain`` per move (plus the initial quota) -- the same as a player with that much real lag.

The constants are lichess's (``maxQuotaGainFor``: ``min(100, estimate * 2/5 + 15)`` centis,
initial quota ``3 * gain``, maximum ``7 * gain``), converted to milliseconds, with the game's
time scale estimated the same way (main time + 40 typical moves' worth of per-move time). For
every Go time control above a few minutes the gain is the cap, 1 s per move, which is far below
what matters in a byo-yomi period of 10 s or more. See :data:`LAG_QUOTA_GAIN_MAX_MS` and the
constants next to it, and :func:`lag_quota_gain_ms`.

A move that arrives when the clock already shows zero can still be valid if its credited lag
brings the charged time below the budget. The server therefore does not end the game at the
moment the time reaches zero (:meth:`GameClock.flag_time`) but a grace period later
(:meth:`GameClock.deadline`): ``grace = min(quota, MAX_FLAG_GRACE_MS)``, exactly lichess's
``outOfTime(withGrace = true)``. :meth:`GameClock.is_flagged` is ``now >= deadline()``, and a
move that arrives at or after the deadline is never accepted, whatever lag it claims: the move
handler and the timeout sweeper apply the same rule, and the conditional update on ``seq``
settles a move and a timeout that are in flight at the same moment.
"""

from __future__ import annotations

import re
from typing import Any, Literal, TypeAlias

import msgspec

__all__ = [
    "LAG_QUOTA_GAIN_BASE_MS",
    "LAG_QUOTA_GAIN_MAX_MS",
    "LAG_QUOTA_GAIN_PER_ESTIMATED_S",
    "LAG_QUOTA_INITIAL_FACTOR",
    "LAG_QUOTA_MAX_FACTOR",
    "MAX_FLAG_GRACE_MS",
    "MAX_MAIN_S",
    "MAX_PERIODS",
    "MAX_PERIOD_S",
    "MAX_PER_MOVE_S",
    "MAX_STONES",
    "Absolute",
    "ByoYomi",
    "Canadian",
    "ClockError",
    "ClockState",
    "Color",
    "Correspondence",
    "Fischer",
    "FlagFallen",
    "GameClock",
    "NoTimeControl",
    "PlayerClock",
    "Simple",
    "TimeControl",
    "TimeControlBase",
    "TimeControlError",
    "decode_time_control",
    "format_duration",
    "lag_quota_gain_ms",
    "lag_quota_max_ms",
    "time_control_from_sgf",
    "weekday_ms",
]

Color: TypeAlias = Literal["black", "white"]
ClockState: TypeAlias = Literal["ready", "running", "paused", "stopped"]

# --- validation bounds (seconds) ------------------------------------------------------------

MAX_MAIN_S = 30 * 86_400
"""Longest main time (and Fischer cap): 30 days, enough for correspondence games."""
MAX_PER_MOVE_S = 7 * 86_400
"""Longest per-move time (Fischer increment, byo-yomi period, simple time): 7 days."""
MAX_PERIOD_S = 30 * 86_400
"""Longest Canadian block: 30 days."""
MAX_PERIODS = 30
"""Most byo-yomi periods."""
MAX_STONES = 100
"""Most stones in a Canadian block."""
MAX_DAYS_PER_MOVE = 30
"""Most days per move of a correspondence game."""

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
#: 1970-01-01 (epoch 0) was a Thursday: shifting by 3 days puts 0 on a Monday 00:00 UTC.
_MONDAY_SHIFT_MS = 3 * DAY_MS
_WEEKDAYS_MS = 5 * DAY_MS

# --- lag compensation constants (milliseconds) ----------------------------------------------

LAG_QUOTA_GAIN_BASE_MS = 150
"""Quota gained per move for the fastest games (lichess: 15 centis)."""
LAG_QUOTA_GAIN_PER_ESTIMATED_S = 4
"""Extra quota gain per second of estimated game length (lichess: 2/5 centis per second)."""
LAG_QUOTA_GAIN_MAX_MS = 1_000
"""Most quota gained per move (lichess: 100 centis). Reached by any control over ~3 min."""
LAG_QUOTA_INITIAL_FACTOR = 3
"""The quota at the start of a game, in gains: covers a lag spike on the first moves."""
LAG_QUOTA_MAX_FACTOR = 7
"""The most quota that can be saved up, in gains."""
MAX_FLAG_GRACE_MS = 2_000
"""The server waits at most this long after a player's time reached zero before ending the game,
so that a move already in flight can still be credited its lag (at most the quota)."""

_TIMES = "\u00d7"  # the multiplication sign, as in "5×30s"  # noqa: RUF003

_ESTIMATED_MOVES = 40
"""Moves' worth of per-move time added to main time to estimate a game's time scale."""


class TimeControlError(ValueError):
    """A time control is invalid (bad number, out of bounds, unknown system, bad JSON)."""


class ClockError(RuntimeError):
    """A clock operation is not allowed in the clock's state (a programming error upstream)."""


class FlagFallen(Exception):
    """The player to move has run out of time.

    ``flag_time`` is when their time reached zero (before any lag credit); the server records a
    timeout with :meth:`GameClock.timeout` at or after it.
    """

    def __init__(self, player: Color, flag_time: int) -> None:
        super().__init__(f"{player} ran out of time at {flag_time}")
        self.player: Color = player
        self.flag_time: int = flag_time


def format_duration(seconds: int) -> str:
    """Compact human duration: ``90 -> "1m30s"``, ``3600 -> "1h"``, ``86400 -> "1d"``."""
    if seconds <= 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TimeControlError(f"{name} must be an integer number of seconds, not {value!r}")
    if not low <= value <= high:
        raise TimeControlError(f"{name} must be between {low} and {high}, not {value}")


def _check_ms(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int (milliseconds), not {value!r}")
    return value


# --- player state -----------------------------------------------------------------------------


class PlayerClock(msgspec.Struct, frozen=True, kw_only=True):
    """One player's clock, as of the start of their turn (or the last charge).

    Which fields matter depends on the system: ``main_ms`` is main time (and all of Fischer and
    absolute); ``periods`` is byo-yomi periods left, counting the current one; ``period_ms`` is
    the time left in the current byo-yomi period, Canadian block or simple move; ``stones`` is
    the stones still to play in the current Canadian block. Unused fields are 0.

    ``lag_quota_ms`` is the lag that can still be credited (see the module docstring);
    ``spent_ms``, ``lag_credited_ms`` and ``moves`` are statistics: the thinking time charged,
    the lag credited, the moves made.
    """

    main_ms: int = 0
    periods: int = 0
    period_ms: int = 0
    stones: int = 0
    lag_quota_ms: int = 0
    spent_ms: int = 0
    lag_credited_ms: int = 0
    moves: int = 0


# --- time controls -----------------------------------------------------------------------------


class TimeControlBase(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="system", forbid_unknown_fields=True
):
    """Behaviour shared by the time control systems. Use one of the concrete subclasses.

    A subclass defines the initial state, the time budget (ms until the player flags if they
    never move), how elapsed time is consumed, and what a move gives back.
    """

    def __post_init__(self) -> None:
        self._validate()

    def _validate(self) -> None:
        """Raise :class:`TimeControlError` when a field is out of bounds."""

    # description -----------------------------------------------------------------------------

    def describe(self) -> str:
        """A short human description, e.g. ``"10m + 5×30s byo-yomi"``."""  # noqa: RUF002
        raise NotImplementedError

    def sgf_properties(self) -> dict[str, str]:
        """The SGF root properties ``TM`` (main time, seconds) and ``OT`` (overtime) to write."""
        raise NotImplementedError

    # arithmetic ------------------------------------------------------------------------------

    @property
    def timed(self) -> bool:
        """Whether a player can lose on time at all."""
        return True

    def typical_move_s(self) -> int:
        """Typical time available per move after main time (for the lag quota estimate)."""
        return 0

    def main_time_s(self) -> int:
        """Main time in seconds (0 where there is none)."""
        return 0

    def initial(self) -> PlayerClock:
        """A player's clock at the start of the game, lag quota included."""
        return PlayerClock(lag_quota_ms=LAG_QUOTA_INITIAL_FACTOR * lag_quota_gain_ms(self))

    def budget_ms(self, pc: PlayerClock) -> int | None:
        """Milliseconds until ``pc`` flags if the player does not move; ``None``: never."""
        raise NotImplementedError

    def consume(self, pc: PlayerClock, elapsed_ms: int) -> PlayerClock:
        """``pc`` after ``elapsed_ms`` of thinking, which must be below the budget."""
        raise NotImplementedError

    def after_move(self, pc: PlayerClock) -> PlayerClock:
        """``pc`` after the player completed a move (increment, period reset, stone count)."""
        return pc

    def charged_ms(self, start: int, now: int) -> int:
        """The thinking time charged for a turn that started at ``start``, at ``now``
        (``now - start``; without weekends under ``weekends_off``)."""
        return max(0, now - start)

    def wall_span(self, start: int, budget: int) -> int:
        """How long (wall clock) after ``start`` a turn has used up ``budget`` ms of charged
        time: the inverse of :meth:`charged_ms`."""
        return budget

    @property
    def correspondence(self) -> bool:
        """Whether this is a correspondence time control (days per move)."""
        return False


class NoTimeControl(TimeControlBase, frozen=True, tag="none"):
    """No time limit."""

    @property
    def timed(self) -> bool:
        return False

    def describe(self) -> str:
        return "no time limit"

    def sgf_properties(self) -> dict[str, str]:
        return {}

    def initial(self) -> PlayerClock:
        return PlayerClock()

    def budget_ms(self, pc: PlayerClock) -> int | None:
        return None

    def consume(self, pc: PlayerClock, elapsed_ms: int) -> PlayerClock:
        return pc


class Absolute(TimeControlBase, frozen=True, tag="absolute"):
    """Main time only: when it is gone, the game is lost."""

    main_s: int

    def _validate(self) -> None:
        _check_int("main_s", self.main_s, 1, MAX_MAIN_S)

    def describe(self) -> str:
        return f"{format_duration(self.main_s)} absolute"

    def sgf_properties(self) -> dict[str, str]:
        return {"TM": str(self.main_s)}

    def main_time_s(self) -> int:
        return self.main_s

    def initial(self) -> PlayerClock:
        return msgspec.structs.replace(super().initial(), main_ms=self.main_s * 1000)

    def budget_ms(self, pc: PlayerClock) -> int | None:
        return pc.main_ms

    def consume(self, pc: PlayerClock, elapsed_ms: int) -> PlayerClock:
        return msgspec.structs.replace(pc, main_ms=pc.main_ms - elapsed_ms)


class Fischer(TimeControlBase, frozen=True, tag="fischer"):
    """Main time plus ``increment_s`` after each move, capped at ``max_s`` (``None``: no cap)."""

    main_s: int
    increment_s: int
    max_s: int | None = None

    def _validate(self) -> None:
        _check_int("main_s", self.main_s, 1, MAX_MAIN_S)
        _check_int("increment_s", self.increment_s, 1, MAX_PER_MOVE_S)
        if self.max_s is not None:
            _check_int("max_s", self.max_s, self.main_s, MAX_MAIN_S)

    def describe(self) -> str:
        text = f"{format_duration(self.main_s)} + {format_duration(self.increment_s)} Fischer"
        if self.max_s is not None:
            text += f" (max {format_duration(self.max_s)})"
        return text

    def sgf_properties(self) -> dict[str, str]:
        ot = f"Fischer {self.increment_s}"
        if self.max_s is not None:
            ot += f" (max {self.max_s})"
        return {"TM": str(self.main_s), "OT": ot}

    def typical_move_s(self) -> int:
        return self.increment_s

    def main_time_s(self) -> int:
        return self.main_s

    def initial(self) -> PlayerClock:
        return msgspec.structs.replace(super().initial(), main_ms=self.main_s * 1000)

    def budget_ms(self, pc: PlayerClock) -> int | None:
        return pc.main_ms

    def consume(self, pc: PlayerClock, elapsed_ms: int) -> PlayerClock:
        return msgspec.structs.replace(pc, main_ms=pc.main_ms - elapsed_ms)

    def after_move(self, pc: PlayerClock) -> PlayerClock:
        main = pc.main_ms + self.increment_s * 1000
        if self.max_s is not None:
            main = min(main, self.max_s * 1000)
        return msgspec.structs.replace(pc, main_ms=main)


class ByoYomi(TimeControlBase, frozen=True, tag="byoyomi"):
    """Main time, then ``periods`` periods of ``period_s`` each (Japanese byo-yomi)."""

    main_s: int
    periods: int
    period_s: int

    def _validate(self) -> None:
        _check_int("main_s", self.main_s, 0, MAX_MAIN_S)
        _check_int("periods", self.periods, 1, MAX_PERIODS)
        _check_int("period_s", self.period_s, 1, MAX_PER_MOVE_S)

    def describe(self) -> str:
        overtime = f"{self.periods}{_TIMES}{format_duration(self.period_s)} byo-yomi"
        if self.main_s == 0:
            return overtime
        return f"{format_duration(self.main_s)} + {overtime}"

    def sgf_properties(self) -> dict[str, str]:
        return {"TM": str(self.main_s), "OT": f"{self.periods}x{self.period_s} byo-yomi"}

    def typical_move_s(self) -> int:
        return self.period_s

    def main_time_s(self) -> int:
        return self.main_s

    def initial(self) -> PlayerClock:
        return msgspec.structs.replace(
            super().initial(),
            main_ms=self.main_s * 1000,
            periods=self.periods,
            period_ms=self.period_s * 1000,
        )

    def budget_ms(self, pc: PlayerClock) -> int | None:
        if pc.periods <= 0:
            return pc.main_ms
        return pc.main_ms + pc.period_ms + (pc.periods - 1) * self.period_s * 1000

    def consume(self, pc: PlayerClock, elapsed_ms: int) -> PlayerClock:
        if elapsed_ms < pc.main_ms:
            return msgspec.structs.replace(pc, main_ms=pc.main_ms - elapsed_ms)
        over = elapsed_ms - pc.main_ms
        if over < pc.period_ms:
            return msgspec.structs.replace(pc, main_ms=0, period_ms=pc.period_ms - over)
        # The current period is used up; then whole periods, then part of the next one.
        over -= pc.period_ms
        period_ms = self.period_s * 1000
        used, into = divmod(over, period_ms)
        return msgspec.structs.replace(
            pc, main_ms=0, periods=pc.periods - 1 - used, period_ms=period_ms - into
        )

    def after_move(self, pc: PlayerClock) -> PlayerClock:
        if pc.main_ms > 0:
            return pc
        return msgspec.structs.replace(pc, period_ms=self.period_s * 1000)


class Canadian(TimeControlBase, frozen=True, tag="canadian"):
    """Main time, then blocks of ``stones`` moves within ``period_s`` each."""

    main_s: int
    stones: int
    period_s: int

    def _validate(self) -> None:
        _check_int("main_s", self.main_s, 0, MAX_MAIN_S)
        _check_int("stones", self.stones, 1, MAX_STONES)
        _check_int("period_s", self.period_s, 1, MAX_PERIOD_S)

    def describe(self) -> str:
        overtime = f"{self.stones}/{format_duration(self.period_s)} Canadian"
        if self.main_s == 0:
            return overtime
        return f"{format_duration(self.main_s)} + {overtime}"

    def sgf_properties(self) -> dict[str, str]:
        return {"TM": str(self.main_s), "OT": f"{self.stones}/{self.period_s} Canadian"}

    def typical_move_s(self) -> int:
        return max(1, self.period_s // self.stones)

    def main_time_s(self) -> int:
        return self.main_s

    def initial(self) -> PlayerClock:
        return msgspec.structs.replace(
            super().initial(),
            main_ms=self.main_s * 1000,
            period_ms=self.period_s * 1000,
            stones=self.stones,
        )

    def budget_ms(self, pc: PlayerClock) -> int | None:
        return pc.main_ms + pc.period_ms

    def consume(self, pc: PlayerClock, elapsed_ms: int) -> PlayerClock:
        if elapsed_ms < pc.main_ms:
            return msgspec.structs.replace(pc, main_ms=pc.main_ms - elapsed_ms)
        over = elapsed_ms - pc.main_ms
        return msgspec.structs.replace(pc, main_ms=0, period_ms=pc.period_ms - over)

    def after_move(self, pc: PlayerClock) -> PlayerClock:
        if pc.main_ms > 0:
            return pc  # played in main time: does not count towards a block
        if pc.stones > 1:
            return msgspec.structs.replace(pc, stones=pc.stones - 1)
        return msgspec.structs.replace(pc, stones=self.stones, period_ms=self.period_s * 1000)


class Simple(TimeControlBase, frozen=True, tag="simple"):
    """``per_move_s`` for every move; what is not used is lost."""

    per_move_s: int

    def _validate(self) -> None:
        _check_int("per_move_s", self.per_move_s, 1, MAX_PER_MOVE_S)

    def describe(self) -> str:
        return f"{format_duration(self.per_move_s)} per move"

    def sgf_properties(self) -> dict[str, str]:
        return {"TM": "0", "OT": f"1x{self.per_move_s} byo-yomi"}

    def typical_move_s(self) -> int:
        return self.per_move_s

    def initial(self) -> PlayerClock:
        return msgspec.structs.replace(super().initial(), period_ms=self.per_move_s * 1000)

    def budget_ms(self, pc: PlayerClock) -> int | None:
        return pc.period_ms

    def consume(self, pc: PlayerClock, elapsed_ms: int) -> PlayerClock:
        return msgspec.structs.replace(pc, period_ms=pc.period_ms - elapsed_ms)

    def after_move(self, pc: PlayerClock) -> PlayerClock:
        return msgspec.structs.replace(pc, period_ms=self.per_move_s * 1000)


def _weekday_ms_before(t: int) -> int:
    """Weekday (Monday to Friday, UTC) milliseconds between Monday 1969-12-29 and ``t``."""
    weeks, rem = divmod(t + _MONDAY_SHIFT_MS, WEEK_MS)
    return weeks * _WEEKDAYS_MS + min(rem, _WEEKDAYS_MS)


def weekday_ms(start: int, end: int) -> int:
    """Milliseconds of ``[start, end)`` (epoch ms) that fall on a Monday to Friday, UTC."""
    if end <= start:
        return 0
    return _weekday_ms_before(end) - _weekday_ms_before(start)


class Correspondence(TimeControlBase, frozen=True, tag="correspondence"):
    """``days_per_move`` days for every move, unused time is lost; ``weekends_off``: the
    clock stops on Saturdays and Sundays (UTC, see the module docstring)."""

    days_per_move: int
    weekends_off: bool = False

    def _validate(self) -> None:
        if isinstance(self.days_per_move, bool) or not isinstance(self.days_per_move, int):
            raise TimeControlError(
                f"days_per_move must be an integer number of days, not {self.days_per_move!r}"
            )
        if not 1 <= self.days_per_move <= MAX_DAYS_PER_MOVE:
            raise TimeControlError(
                f"days_per_move must be between 1 and {MAX_DAYS_PER_MOVE}, not {self.days_per_move}"
            )

    @property
    def correspondence(self) -> bool:
        return True

    def describe(self) -> str:
        days = "1 day" if self.days_per_move == 1 else f"{self.days_per_move} days"
        return f"{days} per move" + (", weekends off" if self.weekends_off else "")

    def sgf_properties(self) -> dict[str, str]:
        # the same rule as one byo-yomi period of that length (weekends are not expressible)
        return {"TM": "0", "OT": f"1x{self.days_per_move * 86_400} byo-yomi"}

    def typical_move_s(self) -> int:
        return self.days_per_move * 86_400

    def initial(self) -> PlayerClock:
        return msgspec.structs.replace(super().initial(), period_ms=self.days_per_move * DAY_MS)

    def budget_ms(self, pc: PlayerClock) -> int | None:
        return pc.period_ms

    def consume(self, pc: PlayerClock, elapsed_ms: int) -> PlayerClock:
        return msgspec.structs.replace(pc, period_ms=pc.period_ms - elapsed_ms)

    def after_move(self, pc: PlayerClock) -> PlayerClock:
        return msgspec.structs.replace(pc, period_ms=self.days_per_move * DAY_MS)

    def charged_ms(self, start: int, now: int) -> int:
        if not self.weekends_off:
            return super().charged_ms(start, now)
        return weekday_ms(start, now)

    def wall_span(self, start: int, budget: int) -> int:
        if not self.weekends_off or budget <= 0:
            return budget
        target = _weekday_ms_before(start) + budget
        weeks, rem = divmod(target, _WEEKDAYS_MS)
        # the first instant at which that much weekday time has passed: a budget ending
        # with a Friday ends at Saturday 00:00, not on Monday
        end = weeks * WEEK_MS + rem if rem else weeks * WEEK_MS - 2 * DAY_MS
        return end - _MONDAY_SHIFT_MS - start


TimeControl: TypeAlias = (
    NoTimeControl | Absolute | Fischer | ByoYomi | Canadian | Simple | Correspondence
)
"""Any time control; decode JSON with :func:`decode_time_control`."""

_decoder = msgspec.json.Decoder(TimeControl)


def decode_time_control(data: bytes | str | dict[str, Any]) -> TimeControl:
    """Parse and validate a time control from JSON (bytes/str) or an already-decoded dict.

    Raises :class:`TimeControlError` with a readable message for anything invalid: unknown
    ``system``, unknown or missing fields, wrong types, out-of-bounds values.
    """
    control: TimeControl
    try:
        if isinstance(data, dict):
            control = msgspec.convert(data, TimeControl)
        else:
            control = _decoder.decode(data)
    except TimeControlError:
        raise
    except (msgspec.DecodeError, ValueError, TypeError) as exc:
        raise TimeControlError(str(exc)) from exc
    return control


_SGF_BYOYOMI = re.compile(r"(\d+)\s*[x\u00d7*]\s*(\d+(?:\.\d*)?)\s*(?:s\s*)?byo-?\s*yomi", re.I)
_SGF_CANADIAN = re.compile(r"(\d+)\s*/\s*(\d+(?:\.\d*)?)\s*(?:s\s*)?canadian", re.I)
_SGF_FISCHER = re.compile(
    r"fischer\s+(\d+(?:\.\d*)?)\s*(?:s\s*)?(?:\(\s*max\s+(\d+(?:\.\d*)?)\s*s?\s*\))?", re.I
)


def time_control_from_sgf(tm: str | None, ot: str | None) -> TimeControl | None:
    """The time control described by SGF ``TM``/``OT`` values, or ``None`` when unknown.

    Reads what :meth:`TimeControlBase.sgf_properties` writes and the usual variants of other
    programs (``"5x30 byo-yomi"``, ``"3x30s byoyomi"``, ``"25/600 Canadian"``,
    ``"Fischer 10"``, ``"Fischer 10 (max 600)"``); fractional seconds are rounded down.
    ``TM`` alone is absolute time. Values out of bounds give ``None``, never an exception.
    """
    try:
        main_s = int(float(tm)) if tm and tm.strip() else 0
        text = (ot or "").strip()
        if match := _SGF_BYOYOMI.fullmatch(text):
            return ByoYomi(main_s=main_s, periods=int(match[1]), period_s=int(float(match[2])))
        if match := _SGF_CANADIAN.fullmatch(text):
            return Canadian(main_s=main_s, stones=int(match[1]), period_s=int(float(match[2])))
        if match := _SGF_FISCHER.fullmatch(text):
            cap = int(float(match[2])) if match[2] else None
            return Fischer(main_s=main_s, increment_s=int(float(match[1])), max_s=cap)
        if not text and main_s > 0:
            return Absolute(main_s=main_s)
    except (ValueError, OverflowError):  # TimeControlError is a ValueError
        return None
    return None


def lag_quota_gain_ms(control: TimeControlBase) -> int:
    """Lag quota gained per move under ``control`` (see the module docstring)."""
    estimate_s = control.main_time_s() + _ESTIMATED_MOVES * control.typical_move_s()
    return min(
        LAG_QUOTA_GAIN_MAX_MS,
        LAG_QUOTA_GAIN_BASE_MS + LAG_QUOTA_GAIN_PER_ESTIMATED_S * estimate_s,
    )


def lag_quota_max_ms(control: TimeControlBase) -> int:
    """The most lag quota a player can save up under ``control``."""
    return LAG_QUOTA_MAX_FACTOR * lag_quota_gain_ms(control)


def _zeroed(pc: PlayerClock) -> PlayerClock:
    """``pc`` with no time left (how a flagged player's clock is reported)."""
    return msgspec.structs.replace(pc, main_ms=0, periods=0, period_ms=0)


# --- the game clock -----------------------------------------------------------------------------


class GameClock(msgspec.Struct, frozen=True, kw_only=True):
    """Both players' clocks, whose turn it is, and since when their time runs.

    ``state`` is ``"ready"`` (created, not started), ``"running"`` (``to_move``'s time runs
    since ``turn_started_ms``), ``"paused"`` or ``"stopped"`` (game over; ``flagged`` names
    the player who lost on time, if that is how it ended).

    Every method that changes the clock returns a new :class:`GameClock`. Times are integer
    milliseconds on one timeline (the server's epoch milliseconds).
    """

    control: TimeControl
    black: PlayerClock
    white: PlayerClock
    to_move: Color = "black"
    state: ClockState = "ready"
    turn_started_ms: int | None = None
    flagged: Color | None = None

    # construction ----------------------------------------------------------------------------

    @classmethod
    def new(cls, control: TimeControl, first: Color = "black") -> GameClock:
        """A clock for a new game under ``control``; ``first`` moves first (white after a
        fixed handicap)."""
        start = control.initial()
        return cls(control=control, black=start, white=start, to_move=first)

    def player(self, color: Color) -> PlayerClock:
        """The stored clock of ``color`` (as of the start of the turn; see
        :meth:`remaining_at` for the state at a given time)."""
        return self.black if color == "black" else self.white

    def _with_player(self, color: Color, pc: PlayerClock, **changes: Any) -> GameClock:
        key = "black" if color == "black" else "white"
        return msgspec.structs.replace(self, **{key: pc}, **changes)

    # queries ---------------------------------------------------------------------------------

    def _elapsed(self, now: int) -> int:
        """Time the player to move has used in this turn at ``now`` (0 unless running)."""
        if self.state != "running" or self.turn_started_ms is None:
            return 0
        return self.control.charged_ms(self.turn_started_ms, now)

    def flag_time(self) -> int | None:
        """When the player to move's time reaches zero (ms), or ``None`` when the clock is not
        running or the game is untimed. A move arriving after this instant can only be valid
        through lag credit; see :meth:`deadline`."""
        if self.state != "running" or self.turn_started_ms is None:
            return None
        budget = self.control.budget_ms(self.player(self.to_move))
        if budget is None:
            return None
        return self.turn_started_ms + self.control.wall_span(self.turn_started_ms, budget)

    def grace_ms(self) -> int:
        """How long after :meth:`flag_time` the game is still open: the lag the player to move
        could still be credited, at most :data:`MAX_FLAG_GRACE_MS`."""
        return min(self.player(self.to_move).lag_quota_ms, MAX_FLAG_GRACE_MS)

    def deadline(self) -> int | None:
        """When the player to move flags if no move arrives (ms), or ``None`` when nobody can
        flag now (untimed, not started, paused, over).

        The server persists this per game; whichever instance finds ``now >= deadline`` ends
        the game with a conditional update, so it ends exactly once. It changes only with an
        event (move, pause, resume, stop), never as time passes.
        """
        flag_time = self.flag_time()
        if flag_time is None:
            return None
        return flag_time + self.grace_ms()

    def is_flagged(self, now: int) -> bool:
        """Whether the player to move has lost on time at ``now`` (``now >= deadline()``)."""
        _check_ms("now", now)
        deadline = self.deadline()
        return deadline is not None and now >= deadline

    def remaining_at(self, color: Color, now: int) -> PlayerClock:
        """``color``'s clock as it stands at ``now``: for the player to move, with the time of
        the running turn deducted (never below zero). Nothing is committed."""
        _check_ms("now", now)
        pc = self.player(color)
        if color != self.to_move:
            return pc
        elapsed = self._elapsed(now)
        if elapsed == 0:
            return pc
        budget = self.control.budget_ms(pc)
        if budget is None:
            return pc
        if elapsed >= budget:
            return _zeroed(pc)
        return self.control.consume(pc, elapsed)

    def time_left_ms(self, color: Color, now: int) -> int | None:
        """Total milliseconds ``color`` has before flagging at ``now`` (main time, periods and
        all), or ``None`` when untimed."""
        return self.control.budget_ms(self.remaining_at(color, now))

    # transitions -----------------------------------------------------------------------------

    def start(self, now: int) -> GameClock:
        """Start the clock: the time of the player to move runs from ``now``."""
        _check_ms("now", now)
        if self.state != "ready":
            raise ClockError(f"cannot start a clock that is {self.state}")
        return msgspec.structs.replace(self, state="running", turn_started_ms=now)

    def move_made(self, player: Color, now: int, lag_ms: int = 0) -> GameClock:
        """``player`` completed a move (a stone or a pass) that the server received at ``now``.

        ``lag_ms`` is the network lag to credit: the client's report or the server's estimate.
        It is credited up to the player's lag quota (negative claims count as 0). Returns the
        new clock, with the opponent's time running from ``now``.

        Raises :class:`FlagFallen` if the player had run out of time: ``now`` is at or after
        :meth:`deadline`, or the credited lag does not bring the charged time below the budget.
        Raises :class:`ClockError` if the clock is not running or it is not ``player``'s turn.
        """
        _check_ms("now", now)
        _check_ms("lag_ms", lag_ms)
        if self.state != "running" or self.turn_started_ms is None:
            raise ClockError(f"no move can be timed while the clock is {self.state}")
        if player != self.to_move:
            raise ClockError(f"it is {self.to_move}'s turn on the clock, not {player}'s")
        control = self.control
        pc = self.player(player)
        elapsed = self._elapsed(now)
        budget = control.budget_ms(pc)

        credited = 0
        quota = pc.lag_quota_ms
        if control.timed:
            deadline = self.deadline()
            if deadline is not None and now >= deadline:
                raise FlagFallen(player, deadline - self.grace_ms())
            credited = min(max(0, lag_ms), quota, elapsed)
            quota = min(quota - credited + lag_quota_gain_ms(control), lag_quota_max_ms(control))
        charged = elapsed - credited
        if budget is not None and charged >= budget:
            start = self.turn_started_ms
            raise FlagFallen(player, start + control.wall_span(start, budget))

        pc = control.after_move(control.consume(pc, charged))
        pc = msgspec.structs.replace(
            pc,
            lag_quota_ms=quota,
            spent_ms=pc.spent_ms + charged,
            lag_credited_ms=pc.lag_credited_ms + credited,
            moves=pc.moves + 1,
        )
        opponent: Color = "white" if player == "black" else "black"
        return self._with_player(player, pc, to_move=opponent, turn_started_ms=now)

    def _charge(self, now: int, *, clamp: bool) -> PlayerClock:
        """The player to move's clock with this turn's time charged (no move bonus)."""
        pc = self.player(self.to_move)
        elapsed = self._elapsed(now)
        budget = self.control.budget_ms(pc)
        if budget is not None and elapsed >= budget:
            if not clamp:
                start = self.turn_started_ms
                assert start is not None
                raise FlagFallen(self.to_move, start + self.control.wall_span(start, budget))
            return msgspec.structs.replace(_zeroed(pc), spent_ms=pc.spent_ms + budget)
        pc = self.control.consume(pc, elapsed)
        return msgspec.structs.replace(pc, spent_ms=pc.spent_ms + elapsed)

    def pause(self, now: int) -> GameClock:
        """Stop the time of the player to move at ``now``, charging what they used so far
        (a Canadian block or byo-yomi period keeps running down, it is not reset).

        Raises :class:`FlagFallen` if their time is already over at ``now``, and
        :class:`ClockError` unless the clock is running.
        """
        _check_ms("now", now)
        if self.state != "running":
            raise ClockError(f"cannot pause a clock that is {self.state}")
        pc = self._charge(now, clamp=False)
        return self._with_player(self.to_move, pc, state="paused", turn_started_ms=None)

    def resume(self, now: int, to_move: Color | None = None) -> GameClock:
        """Restart a paused clock at ``now``; ``to_move`` changes whose time runs (after a
        scoring dispute, play resumes with the opponent of the player who passed last)."""
        _check_ms("now", now)
        if self.state != "paused":
            raise ClockError(f"cannot resume a clock that is {self.state}")
        return msgspec.structs.replace(
            self,
            state="running",
            turn_started_ms=now,
            to_move=self.to_move if to_move is None else to_move,
        )

    def stop(self, now: int) -> GameClock:
        """End the game's clock at ``now`` (resignation, agreed score, abort...): the running
        player is charged their time, never below zero. Idempotent on a stopped clock."""
        _check_ms("now", now)
        if self.state == "stopped":
            return self
        pc = self._charge(now, clamp=True)
        return self._with_player(self.to_move, pc, state="stopped", turn_started_ms=None)

    def timeout(self, now: int) -> GameClock:
        """End the game because the player to move ran out of time: their clock shows zero and
        ``flagged`` names them. Allowed from :meth:`flag_time` on (the server calls it at the
        deadline, or right after :meth:`move_made` raised :class:`FlagFallen`)."""
        _check_ms("now", now)
        flag_time = self.flag_time()
        if flag_time is None or now < flag_time:
            raise ClockError(f"{self.to_move} still has time at {now}")
        pc = self._charge(now, clamp=True)
        return self._with_player(
            self.to_move, pc, state="stopped", turn_started_ms=None, flagged=self.to_move
        )

    # serialization ---------------------------------------------------------------------------

    def to_payload(self, now: int) -> dict[str, Any]:
        """The clock part of an event: both players' state as of ``now``, the server time
        ``now`` itself, whose time runs and the deadline. Clients display
        ``remaining - (their_now - server_ms)`` for ``to_move`` while ``running``.

        For each player: ``main_ms``, ``periods``, ``period_ms``, ``stones`` (as in
        :class:`PlayerClock`) and ``remaining_ms``, the total time before flagging (``None``
        when untimed). Values are never negative.
        """
        players = {}
        for color in ("black", "white"):
            pc = self.remaining_at(color, now)
            players[color] = {
                "main_ms": pc.main_ms,
                "periods": pc.periods,
                "period_ms": pc.period_ms,
                "stones": pc.stones,
                "remaining_ms": self.control.budget_ms(pc),
            }
        return {
            "system": self.control.__struct_config__.tag,
            "state": self.state,
            "to_move": self.to_move,
            "server_ms": now,
            "deadline_ms": self.deadline(),
            "flagged": self.flagged,
            "black": players["black"],
            "white": players["white"],
        }
