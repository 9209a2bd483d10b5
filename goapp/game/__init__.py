"""The game lifecycle: events, state (the fold of the log), actions and the service.

* :mod:`goapp.game.events`: what is stored in ``game_events`` (a tagged union of structs).
* :mod:`goapp.game.state`: :class:`GameState`, the fold of a log through the rules core.
* :mod:`goapp.game.actions`: player actions and :func:`decide` (validation -> events).
* :mod:`goapp.game.errors`: :class:`GameError` and its stable codes.
* :mod:`goapp.game.service`: :class:`GameService`, the only writer of game state.
* :mod:`goapp.game.fairplay`: presence -> abandonment events, "your move" notifications.

See docs/game-lifecycle.md.
"""

from goapp.game.actions import Action, decide, decode_action, timeout_events
from goapp.game.errors import (
    BadAction,
    CannotAbort,
    CannotClaimVictory,
    CannotUndo,
    ConcurrentUpdate,
    FlagFallenError,
    GameError,
    GameFinishedError,
    GameNotFound,
    IllegalMove,
    NotAPlayer,
    NotYourTurn,
    NoUndoPending,
    WrongPhase,
)
from goapp.game.events import GameEvent, StoredEvent, decode_event, encode_payload
from goapp.game.service import BadGameSettings, EventHook, GameService
from goapp.game.state import GameState, GameView

__all__ = [
    "Action",
    "BadAction",
    "BadGameSettings",
    "CannotAbort",
    "CannotClaimVictory",
    "CannotUndo",
    "ConcurrentUpdate",
    "EventHook",
    "FlagFallenError",
    "GameError",
    "GameEvent",
    "GameFinishedError",
    "GameNotFound",
    "GameService",
    "GameState",
    "GameView",
    "IllegalMove",
    "NoUndoPending",
    "NotAPlayer",
    "NotYourTurn",
    "StoredEvent",
    "WrongPhase",
    "decide",
    "decode_action",
    "decode_event",
    "encode_payload",
    "timeout_events",
]
