"""The events of a game's log, as stored in ``game_events(game_id, seq, kind, payload)``.

Every event is a frozen :mod:`msgspec` struct of the tagged union :data:`GameEvent`; the tag
(``kind``) is the ``kind`` column and the other fields are the JSON ``payload``. The JSON form
is stable: fields are only ever added (with defaults), never renamed or removed, so old logs
keep folding. Colours are ``"black"``/``"white"``, points are GTP vertices (``"D4"``), times
are integer epoch milliseconds.

Fields common to every event:

``at_ms``
    The server time of the event (epoch ms). The clock fold uses it.
``clock``
    Both players' clocks as of ``at_ms`` (:class:`ClockView`, the dict of
    :meth:`goapp.rules.clock.GameClock.to_payload`), on every event after the game started.
``user_id`` / ``request_id``
    Who caused the event and the client's request id (see idempotency in
    docs/game-lifecycle.md); ``None`` for events the server decided on its own (timeouts).

Use :func:`encode_payload` / :func:`decode_event` to go between a struct and a row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, TypeAlias

import msgspec

from goapp.rules.clock import GameClock, TimeControl

__all__ = [
    "Aborted",
    "ClockView",
    "DeadStonesMarked",
    "EventDecodeError",
    "GameCreated",
    "GameEvent",
    "GameFinished",
    "GameStarted",
    "Move",
    "Pass",
    "PlayResumed",
    "PlayerClockView",
    "PlayerColor",
    "PlayerLeft",
    "PlayerReturned",
    "Resign",
    "ScoreAccepted",
    "ScoreView",
    "ScoringStarted",
    "StoredEvent",
    "Timeout",
    "UndoAccepted",
    "UndoDeclined",
    "UndoRequested",
    "clock_view",
    "decode_event",
    "encode_payload",
    "event_kind",
]

PlayerColor: TypeAlias = Literal["black", "white"]
FinishReason: TypeAlias = Literal["score", "resign", "time", "forfeit", "scoring_timeout"]


class EventDecodeError(ValueError):
    """A stored event could not be read (unknown kind, bad payload)."""


# -- clock snapshot ------------------------------------------------------------------------


class PlayerClockView(msgspec.Struct, frozen=True, kw_only=True):
    """One player's clock as shown to clients (see GameClock.to_payload)."""

    main_ms: int
    periods: int
    period_ms: int
    stones: int
    remaining_ms: int | None


class ClockView(msgspec.Struct, frozen=True, kw_only=True):
    """Both clocks as of ``server_ms``: clients show ``remaining - (their_now - server_ms)``
    for ``to_move`` while ``state == "running"``."""

    system: str
    state: str
    to_move: PlayerColor
    server_ms: int
    deadline_ms: int | None
    flagged: PlayerColor | None
    black: PlayerClockView
    white: PlayerClockView


def clock_view(clock: GameClock, now: int) -> ClockView:
    """The :class:`ClockView` of ``clock`` at ``now``."""
    return msgspec.convert(clock.to_payload(now), ClockView)


class ScoreView(msgspec.Struct, frozen=True, kw_only=True):
    """The count of a scored game (totals; White's includes komi and bonuses)."""

    black: float
    white: float
    black_territory: int
    white_territory: int
    black_stones: int
    white_stones: int
    black_prisoners: int
    white_prisoners: int
    dame: int
    seki: int
    komi: float


# -- the events ----------------------------------------------------------------------------


class _Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    at_ms: int
    clock: ClockView | None = None
    user_id: int | None = None
    request_id: str | None = None


class GameCreated(_Event, frozen=True, kw_only=True, tag="game_created"):
    """Seq 1: the setup. ``rules`` is a ruleset name (goapp.rules.Rules.from_name)."""

    black_id: int | None
    white_id: int | None
    black_bot: str | None = None
    white_bot: str | None = None
    width: int
    height: int
    rules: str
    komi: float
    handicap: int = 0
    time_control: TimeControl | None = None
    #: whether the game moves ratings (``games.rated``; bots never do, whatever this says)
    rated: bool = True


class GameStarted(_Event, frozen=True, kw_only=True, tag="game_started"):
    """The clock starts: ``first`` (white after handicap stones) is to move."""

    first: PlayerColor


class Move(_Event, frozen=True, kw_only=True, tag="move"):
    """A stone. ``move_number`` counts turns (passes included) after this one;
    ``lag_ms`` is the lag the player claimed (the clock credits it up to the quota)."""

    color: PlayerColor
    vertex: str
    x: int
    y: int
    captures: int
    move_number: int
    lag_ms: int = 0


class Pass(_Event, frozen=True, kw_only=True, tag="pass"):
    color: PlayerColor
    move_number: int
    lag_ms: int = 0


class Resign(_Event, frozen=True, kw_only=True, tag="resign"):
    color: PlayerColor


class UndoRequested(_Event, frozen=True, kw_only=True, tag="undo_requested"):
    """``color`` asks to take back their last turn, turn number ``move_number``."""

    color: PlayerColor
    move_number: int


class UndoAccepted(_Event, frozen=True, kw_only=True, tag="undo_accepted"):
    """``color`` (the opponent) accepted: ``undone`` (vertices, last first) are taken back
    and ``to_move`` (the requester) moves again."""

    color: PlayerColor
    undone: list[str]
    to_move: PlayerColor


class UndoDeclined(_Event, frozen=True, kw_only=True, tag="undo_declined"):
    color: PlayerColor
    move_number: int


class ScoringStarted(_Event, frozen=True, kw_only=True, tag="scoring_started"):
    """After two consecutive passes; the clock pauses. ``dead`` is a proposed marking.
    ``ends_at_ms``: when the scoring phase ends by itself if the players have not both
    accepted (the current marking is scored); ``None`` in logs written before that bound."""

    dead: list[str] = []
    ends_at_ms: int | None = None


class DeadStonesMarked(_Event, frozen=True, kw_only=True, tag="dead_stones_marked"):
    """``color`` toggled the chain at ``vertex``: ``stones`` are now ``dead`` (or alive
    again); ``marking`` is every dead stone after the toggle (sorted)."""

    color: PlayerColor
    vertex: str
    stones: list[str]
    dead: bool
    marking: list[str]


class ScoreAccepted(_Event, frozen=True, kw_only=True, tag="score_accepted"):
    """``color`` accepts ``marking`` and the ``result`` it gives."""

    color: PlayerColor
    marking: list[str]
    result: str


class PlayResumed(_Event, frozen=True, kw_only=True, tag="play_resumed"):
    """``color`` disputes the marking: play goes on, ``to_move`` first, clock resumed."""

    color: PlayerColor
    to_move: PlayerColor


class Timeout(_Event, frozen=True, kw_only=True, tag="timeout"):
    """``color`` ran out of time."""

    color: PlayerColor


class PlayerLeft(_Event, frozen=True, kw_only=True, tag="player_left"):
    """``color``'s last connection closed during a live game. From ``claim_at_ms`` on (while
    they stay away) the opponent may claim the win (``claim_victory``)."""

    color: PlayerColor
    claim_at_ms: int


class PlayerReturned(_Event, frozen=True, kw_only=True, tag="player_returned"):
    """``color`` is connected again: no claim for their absence any more."""

    color: PlayerColor


class Aborted(_Event, frozen=True, kw_only=True, tag="aborted"):
    """The game was called off before it really began (no result)."""

    color: PlayerColor | None
    reason: str = "aborted by a player"


class GameFinished(_Event, frozen=True, kw_only=True, tag="game_finished"):
    """The end: ``result`` as SGF writes it (``B+3.5``, ``W+R``, ``B+T``, ``W+F``, ``0``).
    ``reason``: ``score`` (both accepted), ``scoring_timeout`` (the scoring phase ran out:
    the marking of the moment was scored), ``resign``, ``time``, ``forfeit`` (the opponent
    claimed the win after the player left)."""

    result: str
    reason: FinishReason
    winner: PlayerColor | None
    score: ScoreView | None = None
    dead: list[str] = []


GameEvent: TypeAlias = (
    GameCreated
    | GameStarted
    | Move
    | Pass
    | Resign
    | UndoRequested
    | UndoAccepted
    | UndoDeclined
    | ScoringStarted
    | DeadStonesMarked
    | ScoreAccepted
    | PlayResumed
    | Timeout
    | PlayerLeft
    | PlayerReturned
    | Aborted
    | GameFinished
)
"""Any event of a game's log."""

KINDS: frozenset[str] = frozenset(
    t.__struct_config__.tag  # type: ignore[misc]
    for t in (
        GameCreated,
        GameStarted,
        Move,
        Pass,
        Resign,
        UndoRequested,
        UndoAccepted,
        UndoDeclined,
        ScoringStarted,
        DeadStonesMarked,
        ScoreAccepted,
        PlayResumed,
        Timeout,
        PlayerLeft,
        PlayerReturned,
        Aborted,
        GameFinished,
    )
)


def event_kind(event: GameEvent) -> str:
    """The ``kind`` column of an event."""
    tag = event.__struct_config__.tag
    assert isinstance(tag, str)
    return tag


def encode_payload(event: GameEvent) -> dict[str, Any]:
    """The ``payload`` column of an event (its fields without ``kind``)."""
    out = msgspec.to_builtins(event)
    assert isinstance(out, dict)
    out.pop("kind", None)
    return out


def decode_event(kind: str, payload: Any) -> GameEvent:
    """The event struct of a stored row. Unknown payload fields are ignored (a newer
    server may have added some); an unknown kind or a bad payload raises
    :class:`EventDecodeError`."""
    if kind not in KINDS:
        raise EventDecodeError(f"unknown event kind {kind!r}")
    if not isinstance(payload, dict):
        raise EventDecodeError(f"{kind} event payload must be an object, not {payload!r}")
    try:
        return msgspec.convert({**payload, "kind": kind}, GameEvent)
    except msgspec.ValidationError as exc:
        raise EventDecodeError(f"bad {kind} event: {exc}") from exc


class StoredEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A committed event: its place in the log and the typed event."""

    game_id: int
    seq: int
    created_at: datetime
    event: GameEvent

    @property
    def kind(self) -> str:
        return event_kind(self.event)

    @property
    def payload(self) -> dict[str, Any]:
        return encode_payload(self.event)

    def to_wire(self) -> dict[str, Any]:
        """``{"game_id", "seq", "kind", ...payload}``: the body of an event frame."""
        return {"game_id": self.game_id, "seq": self.seq, "kind": self.kind, **self.payload}

    @classmethod
    def from_record(cls, record: Any) -> StoredEvent:
        """From a :class:`goapp.store.Event` row."""
        return cls(
            game_id=record.game_id,
            seq=record.seq,
            created_at=record.created_at,
            event=decode_event(record.kind, record.payload),
        )
