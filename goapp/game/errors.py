"""Typed errors of the game layer. Each has a stable ``code`` (the API sends it to the
client as is) and a message for the player.

=================  ============================================================================
``bad_action``     the action could not be read (bad JSON, unknown type or field) or makes no
                   sense (marking an empty point, accepting twice)
``not_a_player``   a spectator (or someone from another game) tried to act
``game_finished``  the game is over (finished or aborted)
``wrong_phase``    not now: moving during scoring, marking during play, ...
``not_your_turn``  the opponent is to move
``illegal_move``   the rules forbid the move; ``reason``: occupied, suicide, ko, superko,
                   off_board
``cannot_undo``    no undo may be asked for now (not your last move, already asked, ...)
``no_undo_pending`` there is no undo request to accept or decline
``cannot_abort``   too late to abort (two or more turns were played)
``cannot_claim_victory`` the opponent is connected, or has not been away for long enough
                   yet (``claim_at_ms`` says from when the claim is possible)
``flag_fallen``    the player to move ran out of time: the action was refused and the game
                   ended on time (the timeout events are committed)
``game_not_found`` no such game
``conflict``       another instance kept changing the game; the action was not applied
=================  ============================================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from goapp.game.events import GameEvent

__all__ = [
    "BadAction",
    "CannotAbort",
    "CannotClaimVictory",
    "CannotUndo",
    "ConcurrentUpdate",
    "FlagFallenError",
    "GameError",
    "GameFinishedError",
    "GameNotFound",
    "IllegalMove",
    "NoUndoPending",
    "NotAPlayer",
    "NotYourTurn",
    "WrongPhase",
]


class GameError(Exception):
    """Base class: ``code`` is stable, ``message`` is for people."""

    code: ClassVar[str] = "game_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message}


class BadAction(GameError):
    code = "bad_action"


class NotAPlayer(GameError):
    code = "not_a_player"


class GameFinishedError(GameError):
    code = "game_finished"


class WrongPhase(GameError):
    code = "wrong_phase"


class NotYourTurn(GameError):
    code = "not_your_turn"


class IllegalMove(GameError):
    """``reason``: ``occupied``, ``suicide``, ``ko``, ``superko`` or ``off_board``."""

    code = "illegal_move"

    def __init__(self, message: str, reason: str, vertex: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.vertex = vertex

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "reason": self.reason, "vertex": self.vertex}


class CannotUndo(GameError):
    code = "cannot_undo"


class NoUndoPending(GameError):
    code = "no_undo_pending"


class CannotAbort(GameError):
    code = "cannot_abort"


class CannotClaimVictory(GameError):
    """``claim_at_ms``: when the claim becomes possible if the opponent stays away
    (``None``: the opponent is connected)."""

    code = "cannot_claim_victory"

    def __init__(self, message: str, claim_at_ms: int | None = None) -> None:
        super().__init__(message)
        self.claim_at_ms = claim_at_ms

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "claim_at_ms": self.claim_at_ms}


class FlagFallenError(GameError):
    """The actor's (or the player to move's) time was over: the action is refused and
    ``events`` (timeout, game_finished) are to be committed instead."""

    code = "flag_fallen"

    def __init__(self, message: str, events: list[GameEvent]) -> None:
        super().__init__(message)
        self.events = events


class GameNotFound(GameError):
    code = "game_not_found"


class ConcurrentUpdate(GameError):
    code = "conflict"
