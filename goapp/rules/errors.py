"""Errors raised by the rules layer.

Every illegal move raises a subclass of :class:`IllegalMoveError`, itself a
:class:`ValueError`, with a message meant for the player (GTP coordinates: ``"D4"``, columns
skip the letter I, row 1 at the bottom)::

    try:
        game.play("D4")
    except KoError as exc:        # also catches SuperkoError
        print(exc)                # "D4 would recapture the ko immediately; play elsewhere first"
    except IllegalMoveError as exc:
        print(exc.vertex, exc)
"""

from __future__ import annotations


class IllegalMoveError(ValueError):
    """A move that the rules forbid. ``vertex`` is the GTP name of the point (``None`` for
    off-board input) and ``color`` the player (1 Black, 2 White) when known."""

    def __init__(self, message: str, *, vertex: str | None = None, color: int | None = None):
        super().__init__(message)
        self.vertex = vertex
        self.color = color


class OffBoardError(IllegalMoveError):
    """The point is not on the board (or the coordinate could not be read)."""


class OccupiedError(IllegalMoveError):
    """The point already holds a stone."""


class SuicideError(IllegalMoveError):
    """The stone (or its chain) would have no liberties and capture nothing."""


class KoError(IllegalMoveError):
    """The move retakes a ko immediately (simple ko)."""


class SuperkoError(KoError):
    """The move would repeat an earlier position (positional or situational superko)."""


class OutOfTurnError(IllegalMoveError):
    """A player tried to move when it is the other player's turn."""


__all__ = [
    "IllegalMoveError",
    "KoError",
    "OccupiedError",
    "OffBoardError",
    "OutOfTurnError",
    "SuicideError",
    "SuperkoError",
]
