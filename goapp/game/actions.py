"""Player actions and the decision function.

An action is a msgspec struct of the tagged union :data:`Action` (tag field ``type``), the
body of ``POST /api/action`` and of a WebSocket ``action`` frame::

    {"type": "move", "vertex": "D4"}      {"type": "pass"}          {"type": "resign"}
    {"type": "undo_request"}              {"type": "undo_accept"}   {"type": "undo_decline"}
    {"type": "mark_dead", "vertex": "C3"} {"type": "accept_score"}  {"type": "resume"}
    {"type": "abort"}                     {"type": "claim_victory"}

Unknown types and unknown fields are refused (:func:`decode_action` raises
:class:`~goapp.game.errors.BadAction`).

:func:`decide` is pure: given a state, who acts, the action and the server time, it returns
the events to append or raises a :class:`~goapp.game.errors.GameError`. It never changes
the state; the service folds the events in once they are committed.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeAlias

import msgspec

from goapp.game.errors import (
    BadAction,
    CannotAbort,
    CannotClaimVictory,
    CannotUndo,
    FlagFallenError,
    GameFinishedError,
    IllegalMove,
    NotAPlayer,
    NotYourTurn,
    NoUndoPending,
    WrongPhase,
)
from goapp.game.events import (
    Aborted,
    DeadStonesMarked,
    FinishReason,
    GameEvent,
    GameFinished,
    PlayerColor,
    PlayerLeft,
    PlayerReturned,
    PlayResumed,
    ScoreAccepted,
    ScoreView,
    ScoringStarted,
    Timeout,
    UndoAccepted,
    UndoDeclined,
    UndoRequested,
    clock_view,
)
from goapp.game.events import Move as MoveEvent
from goapp.game.events import Pass as PassEvent
from goapp.game.events import Resign as ResignEvent
from goapp.game.state import GameState, core_color, opponent, sorted_vertices
from goapp.rules import (
    Color,
    IllegalMoveError,
    KoError,
    OccupiedError,
    OffBoardError,
    Result,
    SuicideError,
    SuperkoError,
)
from goapp.rules.clock import FlagFallen, GameClock

__all__ = [
    "Abort",
    "AcceptScore",
    "Action",
    "ClaimVictory",
    "MarkDead",
    "Move",
    "Pass",
    "Resign",
    "Resume",
    "UndoAccept",
    "UndoDecline",
    "UndoRequest",
    "decide",
    "decode_action",
    "presence_events",
    "scoring_timeout_events",
    "timeout_events",
]

Vertex = Annotated[str, msgspec.Meta(min_length=1, max_length=8)]
Events: TypeAlias = list[GameEvent]


class _Action(msgspec.Struct, frozen=True, tag_field="type", forbid_unknown_fields=True):
    pass


class Move(_Action, frozen=True, tag="move"):
    vertex: Vertex


class Pass(_Action, frozen=True, tag="pass"):
    pass


class Resign(_Action, frozen=True, tag="resign"):
    pass


class UndoRequest(_Action, frozen=True, tag="undo_request"):
    pass


class UndoAccept(_Action, frozen=True, tag="undo_accept"):
    pass


class UndoDecline(_Action, frozen=True, tag="undo_decline"):
    pass


class MarkDead(_Action, frozen=True, tag="mark_dead"):
    """Toggle the chain at ``vertex`` between dead and alive (scoring phase)."""

    vertex: Vertex


class AcceptScore(_Action, frozen=True, tag="accept_score"):
    pass


class Resume(_Action, frozen=True, tag="resume"):
    """Dispute the marking and play on (scoring phase)."""


class Abort(_Action, frozen=True, tag="abort"):
    pass


class ClaimVictory(_Action, frozen=True, tag="claim_victory"):
    """Win because the opponent left the game (see ``player_left``)."""


Action: TypeAlias = (
    Move
    | Pass
    | Resign
    | UndoRequest
    | UndoAccept
    | UndoDecline
    | MarkDead
    | AcceptScore
    | Resume
    | Abort
    | ClaimVictory
)

_decoder = msgspec.json.Decoder(Action)


def decode_action(data: bytes | str | msgspec.Raw | dict[str, Any] | Action) -> Action:
    """Read an action from JSON (bytes, str, or a WebSocket message's raw ``action``), a
    decoded dict, or pass a struct through. Raises :class:`BadAction` (code ``bad_action``)
    with msgspec's reason."""
    if data.__class__ is msgspec.Raw or data.__class__ is bytes:  # the hot path: no copy
        try:
            return _decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise BadAction(f"bad action: {exc}") from exc
    if isinstance(data, _Action):
        return data
    try:
        if isinstance(data, dict):
            return msgspec.convert(data, Action)
        if isinstance(data, bytes | str):
            return _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadAction(f"bad action: {exc}") from exc
    raise BadAction(f"bad action: expected a JSON object, not {type(data).__name__}")


# -- deciding ------------------------------------------------------------------------------


def _illegal(exc: IllegalMoveError) -> IllegalMove:
    if isinstance(exc, SuperkoError):
        reason = "superko"
    elif isinstance(exc, KoError):
        reason = "ko"
    elif isinstance(exc, SuicideError):
        reason = "suicide"
    elif isinstance(exc, OccupiedError):
        reason = "occupied"
    elif isinstance(exc, OffBoardError):
        reason = "off_board"
    else:
        reason = "illegal"
    return IllegalMove(str(exc), reason, exc.vertex)


def _finish_by_time(state: GameState, clock: GameClock, now: int) -> list[GameEvent]:
    """Timeout + game_finished for the player to move on ``clock``."""
    loser = clock.to_move
    stopped = clock.timeout(now)
    view = clock_view(stopped, now)
    winner = opponent(loser)
    result = str(Result.timeout(core_color(winner)))
    return [
        Timeout(at_ms=now, clock=view, color=loser),
        GameFinished(at_ms=now, clock=view, result=result, reason="time", winner=winner),
    ]


def timeout_events(state: GameState, now: int) -> list[GameEvent]:
    """The events that end the game on time if the player to move has flagged at ``now``
    (``now >= deadline``), else ``[]``. Used by the timeout sweeper and by :func:`decide`."""
    if state.phase != "playing" or not state.clock.is_flagged(now):
        return []
    return _finish_by_time(state, state.clock, now)


def scoring_timeout_events(state: GameState, now: int) -> list[GameEvent]:
    """The end of a scoring phase that ran past its bound (``scoring_ends_at``): the
    marking of the moment is scored, ``reason: "scoring_timeout"``. ``[]`` when the game is
    not scoring or the bound is not reached. Used by the sweeper (exactly once: the append
    is conditional like any other)."""
    ends = state.scoring_ends_at
    if state.phase != "scoring" or ends is None or now < ends:
        return []
    result, score = _score_view(state)
    return [_finish_by_score(state, now, result, score, "scoring_timeout", state.marking())]


def _finish_by_score(
    state: GameState, now: int, result: str, score: ScoreView, reason: FinishReason,
    dead: list[str],
) -> GameFinished:  # fmt: skip
    """The ``game_finished`` of a scored game (both accepted, or the scoring bound)."""
    parsed = Result.parse(result)
    winner: PlayerColor | None = None
    if parsed.winner is not None:
        winner = "black" if parsed.winner is Color.BLACK else "white"
    return GameFinished(
        at_ms=now,
        clock=clock_view(state.clock.stop(now), now),
        result=result,
        reason=reason,
        winner=winner,
        score=score,
        dead=dead,
    )


def presence_events(
    state: GameState, color: PlayerColor, online: bool, now: int, abandon_timeout_ms: int
) -> list[GameEvent]:
    """``player_left`` (claimable ``abandon_timeout_ms`` later) when ``color`` went offline
    in a live game in progress and is not already away; ``player_returned`` when they come
    back while away; else ``[]`` (idempotent: the same news twice adds nothing)."""
    if state.is_over or state.phase == "open" or not state.is_live:
        return []
    view = clock_view(state.clock, now)
    if online:
        if color not in state.away:
            return []
        return [PlayerReturned(at_ms=now, clock=view, color=color)]
    if color in state.away:
        return []
    return [PlayerLeft(at_ms=now, clock=view, color=color, claim_at_ms=now + abandon_timeout_ms)]


def _flag(state: GameState, now: int) -> FlagFallenError:
    loser = state.clock.to_move
    return FlagFallenError(
        f"{loser.capitalize()} ran out of time; the game is over",
        _finish_by_time(state, state.clock, now),
    )


def _score_view(state: GameState) -> tuple[str, ScoreView]:
    s = state.game.score(state.dead)
    view = ScoreView(
        black=s.black,
        white=s.white,
        black_territory=s.black_territory,
        white_territory=s.white_territory,
        black_stones=s.black_stones,
        white_stones=s.white_stones,
        black_prisoners=s.black_prisoners,
        white_prisoners=s.white_prisoners,
        dame=s.dame,
        seki=s.seki,
        komi=s.komi,
    )
    return str(s.result), view


def _turn_clock(state: GameState, color: PlayerColor, now: int, lag_ms: int) -> GameClock:
    try:
        return state.clock.move_made(color, now, max(0, lag_ms))
    except FlagFallen:
        raise _flag(state, now) from None


def decide(
    state: GameState,
    color: PlayerColor | None,
    action: Action,
    now: int,
    *,
    lag_ms: int = 0,
    scoring_timeout_ms: int | None = None,
) -> list[GameEvent]:
    """The events that ``action`` by ``color`` (``None``: not a player of this game) at
    server time ``now`` (epoch ms) produces, or a :class:`GameError`.

    ``scoring_timeout_ms`` bounds a scoring phase that this action starts (the second pass):
    ``scoring_started.ends_at_ms = now + scoring_timeout_ms`` (``None``: no bound).

    :class:`FlagFallenError` carries the events to commit instead (the game ends on time):
    the player to move had flagged, or the actor's move came too late.
    """
    if color is None:
        raise NotAPlayer("you are not a player in this game")
    if state.phase == "finished":
        raise GameFinishedError(f"the game is over ({state.result})")
    if state.phase == "aborted":
        raise GameFinishedError("the game was aborted")
    if state.phase == "open":
        raise WrongPhase("the game has not started yet")
    if state.phase == "playing" and state.clock.is_flagged(now):
        raise _flag(state, now)
    if isinstance(action, Pass):
        return _pass_bounded(state, color, now, lag_ms, scoring_timeout_ms)
    handler = _HANDLERS[type(action)]
    return handler(state, color, action, now, lag_ms)


def _need(state: GameState, phase: str, what: str) -> None:
    if state.phase != phase:
        if state.phase == "scoring":
            raise WrongPhase(f"cannot {what} while the game is being scored; resume play first")
        raise WrongPhase(f"cannot {what} while the game is being played")


def _move(state: GameState, color: PlayerColor, action: Any, now: int, lag_ms: int) -> Events:
    assert isinstance(action, Move)
    _need(state, "playing", "play a stone")
    game = state.game
    if color != state.to_move:
        raise NotYourTurn(f"it is {state.to_move}'s turn")
    try:
        loc = game.check(action.vertex)
    except IllegalMoveError as exc:
        raise _illegal(exc) from None
    if loc == game.to_loc(None):
        raise BadAction('to pass, send {"type": "pass"}')
    clock = _turn_clock(state, color, now, lag_ms)
    captures = game.play(loc)  # to count captures; taken back at once
    game.undo()
    x, y = game.xy(loc)
    return [
        MoveEvent(
            at_ms=now,
            clock=clock_view(clock, now),
            color=color,
            vertex=game.vertex(loc),
            x=x,
            y=y,
            captures=captures,
            move_number=game.move_number + 1,
            lag_ms=max(0, lag_ms),
        )
    ]


def _pass(state: GameState, color: PlayerColor, action: Any, now: int, lag_ms: int) -> Events:
    return _pass_bounded(state, color, now, lag_ms, None)


def _pass_bounded(
    state: GameState, color: PlayerColor, now: int, lag_ms: int, scoring_timeout_ms: int | None
) -> Events:
    _need(state, "playing", "pass")
    if color != state.to_move:
        raise NotYourTurn(f"it is {state.to_move}'s turn")
    clock = _turn_clock(state, color, now, lag_ms)
    events: list[GameEvent] = [
        PassEvent(
            at_ms=now,
            clock=clock_view(clock, now),
            color=color,
            move_number=state.game.move_number + 1,
            lag_ms=max(0, lag_ms),
        )
    ]
    if state.passes_in_a_row() + 1 >= 2:
        paused = clock.pause(now)
        ends = None if scoring_timeout_ms is None else now + scoring_timeout_ms
        events.append(
            ScoringStarted(at_ms=now, clock=clock_view(paused, now), dead=[], ends_at_ms=ends)
        )
    return events


def _resign(state: GameState, color: PlayerColor, action: Any, now: int, lag_ms: int) -> Events:
    view = clock_view(state.clock.stop(now), now)
    winner = opponent(color)
    return [
        ResignEvent(at_ms=now, clock=view, color=color),
        GameFinished(
            at_ms=now,
            clock=view,
            result=str(Result.resignation(core_color(winner))),
            reason="resign",
            winner=winner,
        ),
    ]


def _undo_request(
    state: GameState, color: PlayerColor, action: Any, now: int, lag_ms: int
) -> Events:
    _need(state, "playing", "ask for an undo")
    game = state.game
    n = game.move_number
    if n <= state.resume_floor or n == 0:
        raise CannotUndo("there is no move of yours to take back")
    last = game.history[-1]
    # Against a bot (which answers at once) the request takes back the bot's reply and the
    # requester's move before it: see _undo_turns.
    bot_reply = (
        state.bot_color(opponent(color)) is not None
        and n - 1 > state.resume_floor
        and game.history[-2].color is core_color(color)
    )
    if last.color is not core_color(color) and not bot_reply:
        raise CannotUndo(
            "you can only ask to take back your own last move, before your opponent answers it"
        )
    if state.undo_request is not None:
        raise CannotUndo("an undo request is already pending")
    if state.undo_declined == n:
        raise CannotUndo("your opponent already declined to undo this move")
    return [
        UndoRequested(at_ms=now, clock=clock_view(state.clock, now), color=color, move_number=n)
    ]


def _pending_for(state: GameState, color: PlayerColor) -> tuple[PlayerColor, int]:
    _need(state, "playing", "answer an undo request")
    req = state.undo_request
    if req is None:
        raise NoUndoPending("there is no undo request to answer")
    if req[0] == color:
        raise NoUndoPending("your opponent has to answer your undo request")
    return req


def _undo_accept(
    state: GameState, color: PlayerColor, action: Any, now: int, lag_ms: int
) -> Events:
    requester, _n = _pending_for(state, color)
    game = state.game
    try:
        clock = state.clock.pause(now).resume(now, requester)
    except FlagFallen:
        raise _flag(state, now) from None
    undone = [game.vertex(loc) for loc in _undo_turns(state, requester)]
    return [
        UndoAccepted(
            at_ms=now, clock=clock_view(clock, now), color=color, undone=undone, to_move=requester
        )
    ]


def _undo_turns(state: GameState, requester: PlayerColor) -> list[int]:
    """The turns an accepted undo takes back, last first: the requester's last turn, and
    the bot's reply after it when the opponent is a bot that already answered."""
    game = state.game
    moves = game.moves
    if game.history[-1].color is core_color(requester) or len(moves) < 2:
        return [moves[-1]]
    return [moves[-1], moves[-2]]


def _undo_decline(
    state: GameState, color: PlayerColor, action: Any, now: int, lag_ms: int
) -> Events:
    _requester, n = _pending_for(state, color)
    return [UndoDeclined(at_ms=now, clock=clock_view(state.clock, now), color=color, move_number=n)]


def _mark_dead(state: GameState, color: PlayerColor, action: Any, now: int, lag_ms: int) -> Events:
    assert isinstance(action, MarkDead)
    _need(state, "scoring", "mark dead stones")
    game = state.game
    try:
        loc = game.to_loc(action.vertex)
    except IllegalMoveError as exc:
        raise BadAction(str(exc)) from None
    chain = game.board.chain(loc) if loc != game.to_loc(None) else []
    if not chain:
        raise BadAction(f"there is no stone at {action.vertex.upper()} to mark")
    dead = loc not in state.dead
    marking = set(state.dead)
    if dead:
        marking.update(chain)
    else:
        marking.difference_update(chain)
    return [
        DeadStonesMarked(
            at_ms=now,
            clock=clock_view(state.clock, now),
            color=color,
            vertex=game.vertex(loc),
            stones=sorted_vertices(game, chain),
            dead=dead,
            marking=sorted_vertices(game, marking),
        )
    ]


def _accept_score(
    state: GameState, color: PlayerColor, action: Any, now: int, lag_ms: int
) -> Events:
    _need(state, "scoring", "accept the score")
    if color in state.accepted:
        raise BadAction("you have already accepted this marking")
    result, score = _score_view(state)
    marking = state.marking()
    events: list[GameEvent] = [
        ScoreAccepted(
            at_ms=now,
            clock=clock_view(state.clock, now),
            color=color,
            marking=marking,
            result=result,
        )
    ]
    if opponent(color) in state.accepted:
        events.append(_finish_by_score(state, now, result, score, "score", marking))
    return events


def _resume(state: GameState, color: PlayerColor, action: Any, now: int, lag_ms: int) -> Events:
    _need(state, "scoring", "resume play")
    to_move = state.to_move
    clock = state.clock.resume(now, to_move)
    return [PlayResumed(at_ms=now, clock=clock_view(clock, now), color=color, to_move=to_move)]


def _abort(state: GameState, color: PlayerColor, action: Any, now: int, lag_ms: int) -> Events:
    if state.phase != "playing" or state.game.move_number >= 2:
        raise CannotAbort("a game can only be aborted before two moves are played")
    clock = state.clock.stop(now)
    return [Aborted(at_ms=now, clock=clock_view(clock, now), color=color)]


def _claim_victory(
    state: GameState, color: PlayerColor, action: Any, now: int, lag_ms: int
) -> Events:
    other = opponent(color)
    claim_at = state.away.get(other)
    if claim_at is None:
        raise CannotClaimVictory("your opponent is connected; there is no win to claim")
    if now < claim_at:
        wait_s = -(-(claim_at - now) // 1000)
        raise CannotClaimVictory(
            f"your opponent left; you can claim the win in {wait_s} s "
            f"(from {claim_at} ms) if they do not come back",
            claim_at,
        )
    view = clock_view(state.clock.stop(now), now)
    if state.game.move_number < 2:  # nothing was really played: annulled, not won
        return [Aborted(at_ms=now, clock=view, color=color, reason="the opponent left")]
    return [
        GameFinished(
            at_ms=now,
            clock=view,
            result=str(Result.forfeit(core_color(color))),
            reason="forfeit",
            winner=color,
        )
    ]


_HANDLERS: dict[type, Any] = {
    Move: _move,
    Pass: _pass,
    Resign: _resign,
    UndoRequest: _undo_request,
    UndoAccept: _undo_accept,
    UndoDecline: _undo_decline,
    MarkDead: _mark_dead,
    AcceptScore: _accept_score,
    Resume: _resume,
    Abort: _abort,
    ClaimVictory: _claim_victory,
}
