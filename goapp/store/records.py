"""Typed records returned by a :class:`~goapp.store.Store`.

Timestamps are timezone-aware :class:`datetime.datetime` values in UTC, with microsecond
precision on both backends. JSON columns (``time_control``, event ``payload``, challenge
``params``) are returned decoded; on the way in, anything :func:`msgspec.json.encode` accepts
(dicts, lists, msgspec structs, ...) may be given.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, get_args

import msgspec

# The one definition of the game statuses: the tuples below, the SQL of goapp.store (e.g.
# ``games.ACTIVE``) and the game's phase (``goapp.game.state.Phase``) come from it.
ActiveGameStatus = Literal["open", "playing", "scoring"]
FinishedGameStatus = Literal["finished", "aborted"]
GameStatus = Literal[ActiveGameStatus, FinishedGameStatus]
ACTIVE_GAME_STATUSES: Final[tuple[str, ...]] = get_args(ActiveGameStatus)
FINISHED_GAME_STATUSES: Final[tuple[str, ...]] = get_args(FinishedGameStatus)
GAME_STATUSES: Final = ACTIVE_GAME_STATUSES + FINISHED_GAME_STATUSES
CHALLENGE_STATUSES: Final = ("open", "accepted", "declined", "cancelled", "expired")


class User(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    name: str
    password_hash: str | None
    rating: float
    rd: float
    volatility: float
    games_count: int
    created_at: datetime


class Game(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    black_id: int | None
    white_id: int | None
    black_bot: str | None
    white_bot: str | None
    width: int
    height: int
    komi: float
    rules: str
    handicap: int
    time_control: Any
    status: str
    result: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    last_seq: int
    deadline: datetime | None


class NewGame(msgspec.Struct, frozen=True, kw_only=True):
    """What :meth:`Store.create_game` needs. A side is a user (``*_id``), a bot
    (``*_bot``, e.g. ``"katago:b6"``), or neither yet (an open game waiting for a player)."""

    width: int = 19
    height: int = 19
    komi: float = 7.5
    rules: str = "japanese"
    handicap: int = 0
    time_control: Any = None
    black_id: int | None = None
    white_id: int | None = None
    black_bot: str | None = None
    white_bot: str | None = None
    status: str = "open"


class Event(msgspec.Struct, frozen=True, kw_only=True):
    game_id: int
    seq: int
    kind: str
    payload: Any
    created_at: datetime


class NewEvent(msgspec.Struct, frozen=True):
    """One event for :meth:`Store.append_events`: ``NewEvent(seq, kind, payload)``."""

    seq: int
    kind: str
    payload: Any = None


class ChatMessage(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    room: str
    user_id: int | None
    text: str
    created_at: datetime


class AnalysisTurn(msgspec.Struct, frozen=True, kw_only=True):
    """One stored turn of a game's AI review (``payload``: the decoded JSON)."""

    game_id: int
    turn: int
    payload: Any
    created_at: datetime


class Challenge(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    challenger_id: int
    target_id: int | None
    params: Any
    status: str
    created_at: datetime
    expires_at: datetime | None
    accepted_by: int | None
    game_id: int | None


class RefreshToken(msgspec.Struct, frozen=True, kw_only=True):
    token_hash: str
    user_id: int
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    #: the hash of the token a rotation issued in its place (migration 0007): revoked with a
    #: successor = rotated away (presenting it again is reuse); without = ended (logout)
    replaced_by: str | None = None

    @property
    def rotated(self) -> bool:
        return self.revoked_at is not None and self.replaced_by is not None


class _Keep(enum.Enum):
    KEEP = 0


#: Marker for "leave this column as it is" in :class:`GameChange`.
KEEP: Final = _Keep.KEEP


@dataclass(frozen=True, slots=True)
class GameChange:
    """Columns of a game to change; every field left at :data:`KEEP` stays as it is.

    ``None`` sets the column to NULL. Setting ``status`` to ``finished`` or ``aborted``
    also clears ``deadline`` unless ``deadline`` is given explicitly.
    """

    status: str | Literal[_Keep.KEEP] = KEEP
    result: str | Literal[_Keep.KEEP] | None = KEEP
    started_at: datetime | Literal[_Keep.KEEP] | None = KEEP
    finished_at: datetime | Literal[_Keep.KEEP] | None = KEEP
    deadline: datetime | Literal[_Keep.KEEP] | None = KEEP

    def columns(self) -> dict[str, Any]:
        """The columns to set, in a fixed order (the SQL text depends only on the keys)."""
        out: dict[str, Any] = {}
        if self.status is not KEEP and self.status not in GAME_STATUSES:
            raise ValueError(f"unknown game status {self.status!r}")
        for name in ("status", "result", "started_at", "finished_at", "deadline"):
            value = getattr(self, name)
            if value is not KEEP:
                out[name] = value
        if "deadline" not in out and out.get("status") in FINISHED_GAME_STATUSES:
            out["deadline"] = None
        return out


@dataclass(frozen=True, slots=True)
class GameStart:
    """A game to create and start in one transaction (:meth:`Store.start_game`, or with
    :meth:`Store.accept_challenge`): the ``games`` row (``last_seq = 0``), its ``rated``
    flag, then ``events`` (seq 1, 2, ...) appended with the row ``change`` they make,
    stamped ``at`` (default: the time of the write)."""

    game: NewGame
    rated: bool = True
    events: tuple[NewEvent, ...] = ()
    change: GameChange | None = None
    at: datetime | None = None


#: Rating pools: ``overall`` (every rated game) and one per board size.
RATING_POOLS: Final = ("overall", "9", "13", "19")


class PoolRating(msgspec.Struct, frozen=True, kw_only=True):
    """A user's Glicko-2 rating in one pool (see ``docs/ratings.md``)."""

    user_id: int
    pool: str
    rating: float
    rd: float
    volatility: float
    games: int
    updated_at: datetime


class RatingUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """One player's new rating in one pool after one game, for
    :meth:`Store.apply_rating_update`. ``games_before`` is the pool's game count the rating
    was computed from (0 for a player new to the pool): the update fails with
    ConflictError when another game changed the rating meanwhile (recompute and retry)."""

    user_id: int
    pool: str
    rating_before: float
    games_before: int
    rating: float
    rd: float
    volatility: float


class RatingHistoryEntry(msgspec.Struct, frozen=True, kw_only=True):
    game_id: int
    user_id: int
    pool: str
    rating_before: float
    rating_after: float
    rd_after: float
    created_at: datetime


class LeaderboardEntry(msgspec.Struct, frozen=True, kw_only=True):
    user_id: int
    name: str
    rating: float
    rd: float
    volatility: float
    games: int


# -- automatch (migration 0004_automatch; goapp.match) ----------------------------------------

AUTOMATCH_SPEEDS = ("blitz", "live", "correspondence")
#: Board sizes automatch pairs on, and their bits in the ``sizes`` column.
AUTOMATCH_SIZE_BITS: dict[int, int] = {9: 1, 13: 2, 19: 4}


class AutomatchRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A player's request for an automatch game. ``status`` is ``waiting`` (in the pool),
    ``paired`` (with ``partner_id``, the other request, and ``opponent_id``; ``game_id``
    once the game exists) or ``cancelled``."""

    id: int
    user_id: int
    speed: str
    sizes: tuple[int, ...]
    rated: bool
    rating: float
    status: str
    created_at: datetime
    closed_at: datetime | None = None
    partner_id: int | None = None
    opponent_id: int | None = None
    game_id: int | None = None
