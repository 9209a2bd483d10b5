"""Colours and coordinates: ``(x, y)``, flat locs and GTP vertices.

Three ways to name a point:

* ``(x, y)``: column ``x`` from the left, row ``y`` from the *top*, both from 0 (as KataGo's
  analysis engine and SGF do).
* a *loc*: the int the core uses, ``(x + 1) + (y + 1) * (width + 1)``; ``PASS_LOC`` is a pass.
* a GTP vertex: ``"D4"``: a column letter (``A``..``Z`` skipping ``I``) and the row number
  counted from the *bottom*; ``"pass"`` is a pass.

>>> to_gtp(loc_of(3, 15, 19), 19, 19)
'D4'
>>> xy_of(parse_gtp("Q16", 19, 19), 19)
(15, 3)
"""

from __future__ import annotations

import enum

from goapp._core import NULL_LOC, PASS_LOC
from goapp.rules.errors import OffBoardError

GTP_COLUMNS = "ABCDEFGHJKLMNOPQRSTUVWXYZ"


class Color(enum.IntEnum):
    """The colour of a point or a player. ``Color.BLACK.opponent is Color.WHITE``."""

    EMPTY = 0
    BLACK = 1
    WHITE = 2

    @property
    def opponent(self) -> Color:
        """The other player (EMPTY stays EMPTY)."""
        if self is Color.EMPTY:
            return Color.EMPTY
        return Color(3 - self)

    @property
    def letter(self) -> str:
        """``"B"``, ``"W"`` or ``"."``, as SGF and GTP write it."""
        return "B" if self is Color.BLACK else "W" if self is Color.WHITE else "."

    @property
    def display(self) -> str:
        """``"Black"``, ``"White"`` or ``"empty"``."""
        return "Black" if self is Color.BLACK else "White" if self is Color.WHITE else "empty"

    @classmethod
    def parse(cls, text: str) -> Color:
        """Read ``"b"``, ``"black"``, ``"W"``, ``"white"`` (any case)."""
        t = text.strip().lower()
        if t in ("b", "black"):
            return cls.BLACK
        if t in ("w", "white"):
            return cls.WHITE
        raise ValueError(f"not a colour: {text!r} (expected black or white)")


BLACK = Color.BLACK
WHITE = Color.WHITE
EMPTY = Color.EMPTY


def _check_xy(x: int, y: int, width: int, height: int) -> None:
    if not (0 <= x < width and 0 <= y < height):
        raise OffBoardError(f"({x}, {y}) is not on the {width}x{height} board")


def loc_of(x: int, y: int, width: int, height: int | None = None) -> int:
    """The loc of ``(x, y)`` on a board ``width`` columns wide (``height`` only checks)."""
    _check_xy(x, y, width, width if height is None else height)
    return (x + 1) + (y + 1) * (width + 1)


def xy_of(loc: int, width: int) -> tuple[int, int]:
    """The ``(x, y)`` of a loc (no range check beyond the padding)."""
    stride = width + 1
    x, y = loc % stride - 1, loc // stride - 1
    if x < 0 or y < 0 or x >= width:
        raise OffBoardError(f"loc {loc} is not a board point")
    return x, y


def to_gtp(loc: int, width: int, height: int) -> str:
    """GTP vertex of a loc: ``"D4"`` or ``"pass"``."""
    if loc == PASS_LOC:
        return "pass"
    x, y = xy_of(loc, width)
    _check_xy(x, y, width, height)
    return f"{GTP_COLUMNS[x]}{height - y}"


def xy_to_gtp(x: int, y: int, height: int, width: int | None = None) -> str:
    """GTP vertex of ``(x, y)``."""
    _check_xy(x, y, 25 if width is None else width, height)
    return f"{GTP_COLUMNS[x]}{height - y}"


def gtp_to_xy(vertex: str, width: int, height: int) -> tuple[int, int] | None:
    """``(x, y)`` of a GTP vertex, ``None`` for ``"pass"``. Raises :class:`OffBoardError`."""
    v = vertex.strip().upper()
    if v == "PASS":
        return None
    if len(v) < 2 or v[0] not in GTP_COLUMNS or not v[1:].isdigit():
        raise OffBoardError(f"{vertex!r} is not a board point (expected e.g. D4 or pass)")
    x = GTP_COLUMNS.index(v[0])
    row = int(v[1:])
    if not (x < width and 1 <= row <= height):
        raise OffBoardError(f"{v} is not on the {width}x{height} board")
    return x, height - row


def parse_gtp(vertex: str, width: int, height: int) -> int:
    """Loc of a GTP vertex (``PASS_LOC`` for ``"pass"``)."""
    xy = gtp_to_xy(vertex, width, height)
    if xy is None:
        return PASS_LOC
    return loc_of(xy[0], xy[1], width, height)


__all__ = [
    "BLACK",
    "EMPTY",
    "GTP_COLUMNS",
    "NULL_LOC",
    "PASS_LOC",
    "WHITE",
    "Color",
    "gtp_to_xy",
    "loc_of",
    "parse_gtp",
    "to_gtp",
    "xy_of",
    "xy_to_gtp",
]
