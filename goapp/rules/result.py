"""Game results as SGF writes them (the ``RE`` property).

>>> str(Result.by_score(3.5))
'B+3.5'
>>> str(Result.resignation(Color.WHITE))
'W+R'
>>> Result.parse("W+12.5").margin
12.5
>>> str(Result.by_score(0))
'0'
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from goapp.rules.coords import Color


class ResultReason(enum.Enum):
    SCORE = "score"  #: counted: ``B+3.5``
    RESIGN = "resign"  #: ``B+R``
    TIME = "time"  #: ``B+T``
    FORFEIT = "forfeit"  #: ``B+F``
    WIN = "win"  #: a win with no reason given: ``B+``
    DRAW = "draw"  #: jigo: ``0``
    VOID = "void"  #: no result (suspended, annulled): ``Void``
    UNKNOWN = "unknown"  #: ``?``


_REASON_LETTER = {
    ResultReason.RESIGN: "R",
    ResultReason.TIME: "T",
    ResultReason.FORFEIT: "F",
    ResultReason.WIN: "",
}
_LETTER_REASON = {
    "R": ResultReason.RESIGN,
    "RESIGN": ResultReason.RESIGN,
    "T": ResultReason.TIME,
    "TIME": ResultReason.TIME,
    "F": ResultReason.FORFEIT,
    "FORFEIT": ResultReason.FORFEIT,
    "": ResultReason.WIN,
}


def _format_margin(margin: float) -> str:
    if margin == int(margin):
        return str(int(margin))
    return f"{margin:g}"


@dataclass(frozen=True, slots=True)
class Result:
    """Who won, by how much and how. ``winner`` is ``None`` for a draw, void or unknown
    result; ``margin`` (points, > 0) only for :attr:`ResultReason.SCORE`."""

    winner: Color | None
    reason: ResultReason
    margin: float | None = None

    def __post_init__(self) -> None:
        decisive = self.reason not in (ResultReason.DRAW, ResultReason.VOID, ResultReason.UNKNOWN)
        if decisive and self.winner not in (Color.BLACK, Color.WHITE):
            raise ValueError(f"a {self.reason.value} result needs a winner")
        if not decisive and self.winner is not None:
            raise ValueError(f"a {self.reason.value} result has no winner")
        if self.reason is ResultReason.SCORE:
            if self.margin is None or not math.isfinite(self.margin) or self.margin <= 0:
                raise ValueError("a win on points needs a positive margin")
        elif self.margin is not None:
            raise ValueError("only a result by score has a margin")

    @classmethod
    def by_score(cls, black_minus_white: float) -> Result:
        """From a final score difference (Black minus White, komi included)."""
        if black_minus_white > 0:
            return cls(Color.BLACK, ResultReason.SCORE, float(black_minus_white))
        if black_minus_white < 0:
            return cls(Color.WHITE, ResultReason.SCORE, float(-black_minus_white))
        return cls(None, ResultReason.DRAW)

    @classmethod
    def resignation(cls, winner: Color) -> Result:
        """``winner`` won because the other player resigned."""
        return cls(Color(winner), ResultReason.RESIGN)

    @classmethod
    def timeout(cls, winner: Color) -> Result:
        """``winner`` won on time."""
        return cls(Color(winner), ResultReason.TIME)

    @classmethod
    def forfeit(cls, winner: Color) -> Result:
        return cls(Color(winner), ResultReason.FORFEIT)

    @classmethod
    def draw(cls) -> Result:
        return cls(None, ResultReason.DRAW)

    @classmethod
    def void(cls) -> Result:
        return cls(None, ResultReason.VOID)

    @classmethod
    def unknown(cls) -> Result:
        return cls(None, ResultReason.UNKNOWN)

    @property
    def is_draw(self) -> bool:
        return self.reason is ResultReason.DRAW

    def black_minus_white(self) -> float | None:
        """The signed score difference, when the game was counted (0 for jigo)."""
        if self.reason is ResultReason.DRAW:
            return 0.0
        if self.reason is not ResultReason.SCORE or self.margin is None:
            return None
        return self.margin if self.winner is Color.BLACK else -self.margin

    def __str__(self) -> str:
        """The SGF ``RE`` value: ``B+3.5``, ``W+R``, ``B+T``, ``B+F``, ``0``, ``Void``, ``?``."""
        if self.reason is ResultReason.DRAW:
            return "0"
        if self.reason is ResultReason.VOID:
            return "Void"
        if self.reason is ResultReason.UNKNOWN:
            return "?"
        assert self.winner is not None
        letter = self.winner.letter
        if self.reason is ResultReason.SCORE:
            assert self.margin is not None
            return f"{letter}+{_format_margin(self.margin)}"
        return f"{letter}+{_REASON_LETTER[self.reason]}"

    @classmethod
    def parse(cls, text: str) -> Result:
        """Read an SGF ``RE`` value. Accepts ``B+3.5``, ``W+R``/``W+Resign``, ``B+T``/``Time``,
        ``B+F``/``Forfeit``, ``B+`` , ``0``/``Draw``/``Jigo``, ``Void``, ``?``."""
        t = text.strip()
        u = t.upper()
        if u in ("0", "DRAW", "JIGO"):
            return cls.draw()
        if u == "VOID":
            return cls.void()
        if u in ("?", ""):
            return cls.unknown()
        if len(u) >= 2 and u[0] in "BW" and u[1] == "+":
            winner = Color.BLACK if u[0] == "B" else Color.WHITE
            rest = u[2:].strip()
            if rest in _LETTER_REASON:
                return cls(winner, _LETTER_REASON[rest])
            try:
                margin = float(rest)
            except ValueError:
                pass
            else:
                if math.isfinite(margin) and margin > 0:
                    return cls(winner, ResultReason.SCORE, margin)
                if margin == 0:
                    return cls.draw()
        raise ValueError(f"not a game result: {text!r} (expected e.g. B+3.5, W+R, 0, Void)")


__all__ = ["Result", "ResultReason"]
