"""Game results as SGF writes them (the ``RE`` property): one type for the rules core, the
server and SGF import/export.

>>> str(Result.by_score(3.5))
'B+3.5'
>>> str(Result.resignation(Color.WHITE))
'W+R'
>>> Result.parse("W+12.5").margin
12.5
>>> str(Result.by_score(0))
'0'
>>> str(Result.parse("白胜3目半"))
'W+3.5'
>>> str(Result.parse("Black wins", strict=False))
'Black wins'
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass

from goapp.rules.coords import Color


class ResultReason(enum.Enum):
    SCORE = "score"  #: counted: ``B+3.5``
    RESIGN = "resign"  #: ``B+R``
    TIME = "time"  #: ``B+T``
    FORFEIT = "forfeit"  #: ``B+F``
    WIN = "win"  #: a win with no margin or reason given: ``B+``
    DRAW = "draw"  #: jigo: ``0``
    VOID = "void"  #: no result (suspended, annulled): ``Void``
    UNKNOWN = "unknown"  #: ``?``, or text that could not be read (kept in ``Result.raw``)


_REASON_LETTER = {
    ResultReason.RESIGN: "R",
    ResultReason.TIME: "T",
    ResultReason.FORFEIT: "F",
    ResultReason.WIN: "",
}
# What may follow "B+" (lower case, a trailing "." dropped).
_REASONS = {
    "r": ResultReason.RESIGN,
    "res": ResultReason.RESIGN,
    "resign": ResultReason.RESIGN,
    "resigned": ResultReason.RESIGN,
    "resignation": ResultReason.RESIGN,
    "t": ResultReason.TIME,
    "time": ResultReason.TIME,
    "timeout": ResultReason.TIME,
    "f": ResultReason.FORFEIT,
    "forfeit": ResultReason.FORFEIT,
    "": ResultReason.WIN,
}
_DRAWS = frozenset(["0", "0.0", "draw", "drawn", "jigo", "和棋", "持碁", "무승부"])
_VOIDS = frozenset(["void", "no result", "noresult"])
_RESULT_RE = re.compile(r"\s*([BbWw])\s*\+\s*(.*?)\s*\Z", re.S)

# Chinese, Japanese and Korean results as Fox, Tygem and old archives write them:
# 黑中盘胜 (B+R), 白胜3目半 (W+3.5), 黑胜1又3/4子 (B+3.5: stones count double), 흑 불계승.
_CJK_RESULT_RE = re.compile(
    r"\s*(?P<color>[黑黒흑]|[白백])\s*(?:"
    r"(?P<resign>中盘胜|中盤勝|中押し?勝ち?|불계\s*승)"
    r"|(?P<time>超时胜|超時勝|時間勝ち?|시간승)"
    r"|(?:胜|勝ち?|승)\s*(?P<num>\d+(?:\.\d+)?)?\s*(?:又?\s*(?P<frac>[1-3])/4)?\s*"
    r"(?P<unit>目半|目|子|집반|집)?\s*(?P<half>半)?)\s*\Z"
)


def _format_margin(margin: float) -> str:
    if margin == int(margin) and abs(margin) < 1e15:
        return str(int(margin))
    return repr(float(margin))


@dataclass(frozen=True, slots=True)
class Result:
    """Who won, by how much and how. ``winner`` is ``None`` for a draw, void or unknown
    result; ``margin`` (points, > 0) only for :attr:`ResultReason.SCORE`; ``raw`` only for
    :attr:`ResultReason.UNKNOWN`: text that could not be read (an SGF ``RE`` value from
    :meth:`parse` with ``strict=False``), which ``str()`` gives back as it was. ``""`` and
    ``"?"`` are stored as ``None``, so ``Result.unknown("?") == Result.unknown()``.

    Two results are equal when they mean the same: the spelling read (``W+Resign``,
    ``黑中盘胜``) is not kept, ``str()`` is always the canonical SGF form."""

    winner: Color | None
    reason: ResultReason
    margin: float | None = None
    raw: str | None = None

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
        if self.raw is not None:
            if self.reason is not ResultReason.UNKNOWN:
                raise ValueError("only an unknown result keeps its text")
            if self.raw.strip() in ("", "?"):
                object.__setattr__(self, "raw", None)

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
    def win(cls, winner: Color) -> Result:
        """``winner`` won, no margin or reason given (``B+``)."""
        return cls(Color(winner), ResultReason.WIN)

    @classmethod
    def draw(cls) -> Result:
        return cls(None, ResultReason.DRAW)

    @classmethod
    def void(cls) -> Result:
        return cls(None, ResultReason.VOID)

    @classmethod
    def unknown(cls, raw: str | None = None) -> Result:
        """``?``, or ``raw``: text that could not be read, written back as it was."""
        return cls(None, ResultReason.UNKNOWN, raw=raw)

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
        """The SGF ``RE`` value: ``B+3.5``, ``W+R``, ``B+T``, ``B+F``, ``B+``, ``0``,
        ``Void``, ``?`` (or the text of an unreadable result, as it was read)."""
        if self.reason is ResultReason.DRAW:
            return "0"
        if self.reason is ResultReason.VOID:
            return "Void"
        if self.reason is ResultReason.UNKNOWN:
            return self.raw if self.raw is not None else "?"
        assert self.winner is not None
        letter = self.winner.letter
        if self.reason is ResultReason.SCORE:
            assert self.margin is not None
            return f"{letter}+{_format_margin(self.margin)}"
        return f"{letter}+{_REASON_LETTER[self.reason]}"

    @classmethod
    def parse(cls, text: str, *, strict: bool = True) -> Result:
        """Read an SGF ``RE`` value: ``B+3.5`` (``b+3,5`` too), ``W+R`` (also ``Resign``,
        ``Res.``), ``B+T`` (``Time``, ``Timeout``), ``B+F`` (``Forfeit``), ``B+``,
        ``0``/``Draw``/``Jigo``, ``Void``/``No result``, ``?`` or ``""``, and
        the common Chinese/Japanese/Korean forms: ``黑中盘胜`` is ``B+R``, ``白胜3目半`` is
        ``W+3.5``, ``黑胜1又3/4子`` is ``B+3.5`` (a stone, 子, counts two points), ``흑 불계승``
        is ``B+R``, ``和棋``/``持碁``/``무승부`` are draws.

        Anything else raises :class:`ValueError`, or with ``strict=False`` (SGF import)
        gives ``Result.unknown(text)``, which writes the text back unchanged."""
        t = text.strip()
        low = t.lower()
        if low in _DRAWS:
            return cls.draw()
        if low in _VOIDS:
            return cls.void()
        if low in ("?", ""):
            return cls.unknown()
        m = _RESULT_RE.match(t)
        if m:
            winner = Color.BLACK if m.group(1) in "Bb" else Color.WHITE
            rest = m.group(2)
            reason = _REASONS.get(rest.lower().rstrip("."))
            if reason is not None:
                return cls(winner, reason)
            try:
                margin = float(rest.replace(",", "."))
            except ValueError:
                pass
            else:
                if math.isfinite(margin) and margin > 0:
                    return cls(winner, ResultReason.SCORE, margin)
                if margin == 0:
                    # "B+0.0": Fox writes it for a win without a count; a draw is "0"
                    return cls.win(winner)
        cjk = _parse_cjk(t)
        if cjk is not None:
            return cjk
        if strict:
            raise ValueError(f"not a game result: {text!r} (expected e.g. B+3.5, W+R, 0, Void)")
        return cls.unknown(text)


def _parse_cjk(text: str) -> Result | None:
    m = _CJK_RESULT_RE.match(text)
    if m is None:
        return None
    winner = Color.BLACK if m.group("color") in "黑黒흑" else Color.WHITE
    if m.group("resign"):
        return Result.resignation(winner)
    if m.group("time"):
        return Result.timeout(winner)
    if m.group("num") is None and m.group("frac") is None:
        return None if m.group("unit") or m.group("half") else Result.win(winner)
    margin = float(m.group("num") or 0) + int(m.group("frac") or 0) / 4
    unit = m.group("unit") or ""
    if unit in ("目半", "집반") or m.group("half"):
        margin += 0.5
    if unit == "子":
        margin *= 2
    if margin <= 0:
        return None
    return Result(winner, ResultReason.SCORE, margin)


__all__ = ["Result", "ResultReason"]
