"""A game of Go: turn order, ko and superko, suicide, passes, handicap, undo and scoring.

:class:`Game` wraps the fast :class:`~goapp._core.Board` with the rules of one game::

    >>> from goapp.rules import Game, Rules
    >>> g = Game(9, rules=Rules.from_name("japanese"), komi=6.5)
    >>> g.play("E5")          # Black
    0
    >>> g.play("C3")          # White
    0
    >>> g.to_move
    <Color.BLACK: 1>
    >>> g.undo()              # takes C3 back
    >>> g.play("pass"); g.play("pass")
    0
    0
    >>> g.is_over
    True

A move is given as a GTP vertex (``"D4"``, ``"pass"``), an ``(x, y)`` tuple (``y`` = 0 is
the top row) or a loc int; ``None`` is a pass. Illegal moves raise subclasses of
:class:`~goapp.rules.errors.IllegalMoveError` with a message for the player.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from goapp._core import LEGALITY_OK, PASS_LOC, Board, zobrist_player
from goapp.rules.coords import Color, loc_of, parse_gtp, to_gtp, xy_of
from goapp.rules.errors import (
    IllegalMoveError,
    OffBoardError,
    OutOfTurnError,
    SuperkoError,
)
from goapp.rules.result import Result
from goapp.rules.rulesets import KoRule, Rules
from goapp.rules.scoring import Score, score_position

#: A point given as a GTP vertex, an ``(x, y)`` tuple, a loc, or ``None`` (pass).
Where = str | tuple[int, int] | int | None


def fixed_handicap_xy(stones: int, width: int, height: int | None = None) -> list[tuple[int, int]]:
    """The ``(x, y)`` of GTP's ``fixed_handicap`` stones, in placement order.

    Layouts (19x19 names): 2 D4 Q16; 3 +D16; 4 +Q4; 5 +K10; 6 D4 Q16 D16 Q4 D10 Q10; 7 +K10;
    8 D4 Q16 D16 Q4 D10 Q10 K4 K16; 9 +K10. Stones sit on the 4th line from 13x13 up and on
    the 3rd line below. Boards must be square and at least 7x7; 5 to 9 stones need an odd
    size and at most 4 fit on 7x7 (as in the GTP specification and GNU Go)."""
    h = width if height is None else height
    if width != h:
        raise ValueError("fixed handicap needs a square board; use free placement")
    size = width
    if stones == 0:
        return []
    if size < 7:
        raise ValueError(f"no fixed handicap on a {size}x{size} board; use free placement")
    max_stones = 9 if size % 2 == 1 and size > 7 else 4
    if not 2 <= stones <= max_stones:
        raise ValueError(f"fixed handicap on {size}x{size} must be 2 to {max_stones} stones")
    e = 3 if size >= 13 else 2
    lo, hi, mid = e, size - 1 - e, size // 2
    # (x, y) with y from the top: D4 = (lo, hi), Q16 = (hi, lo), D16 = (lo, lo), Q4 = (hi, hi)
    corners = [(lo, hi), (hi, lo), (lo, lo), (hi, hi)]
    sides_lr = [(lo, mid), (hi, mid)]
    sides_tb = [(mid, hi), (mid, lo)]
    center = (mid, mid)
    out = corners[: min(stones, 4)]
    if stones >= 6:
        out += sides_lr
    if stones >= 8:
        out += sides_tb
    if stones % 2 == 1 and stones >= 5:
        out.append(center)
    return out


@dataclass(frozen=True, slots=True)
class Turn:
    """One entry of :attr:`Game.history`: who played where (``loc`` = PASS_LOC for a pass)
    and how many stones it captured."""

    color: Color
    loc: int
    captures: int


class Game:
    """The state of one game under one set of :class:`~goapp.rules.Rules`.

    ``handicap``: number of fixed handicap stones (see :func:`fixed_handicap_xy`);
    ``handicap_stones``: free placement instead (points in any :data:`Where` form). With
    handicap stones White moves first. ``komi`` is added to White's score.
    """

    __slots__ = (
        "_board",
        "_button",
        "_hist",
        "_passes",
        "_pos_count",
        "_sit_count",
        "_to_move",
        "_undo_floor",
        "handicap_locs",
        "komi",
        "rules",
    )

    def __init__(
        self,
        width: int = 19,
        height: int | None = None,
        *,
        rules: Rules | None = None,
        komi: float = 7.5,
        handicap: int = 0,
        handicap_stones: Iterable[Where] | None = None,
    ) -> None:
        self._board = Board(width, height)
        self.rules: Rules = rules if rules is not None else Rules()
        self.komi = float(komi)
        self._to_move = Color.BLACK
        self._passes = 0
        self._button: Color | None = None
        # each entry: (record, color, loc, captures, passes before, button before,
        #              position hash pushed, situational hash pushed)
        self._hist: list[tuple[int, Color, int, int, int, Color | None, int, int]] = []
        self._pos_count: dict[int, int] = {}
        self._sit_count: dict[int, int] = {}
        self.handicap_locs: list[int] = []
        self._undo_floor = 0  # turns before an edit() cannot be taken back
        if handicap and handicap_stones is not None:
            raise ValueError("give either a fixed handicap count or free handicap stones")
        if handicap:
            xys = fixed_handicap_xy(handicap, self.width, self.height)
            self._place_handicap([loc_of(x, y, self.width, self.height) for x, y in xys])
        elif handicap_stones is not None:
            self._place_handicap([self.to_loc(w) for w in handicap_stones])
        self._remember()

    # -- setup ---------------------------------------------------------------------------

    def _place_handicap(self, locs: list[int]) -> None:
        if any(loc == PASS_LOC for loc in locs):
            raise ValueError("a handicap stone cannot be a pass")
        if len(set(locs)) != len(locs):
            raise ValueError("handicap stones must be on different points")
        if len(locs) == 1:
            raise ValueError("a handicap of one stone is no stone: Black just moves first")
        self._board.place_stones(locs, Color.BLACK)
        self.handicap_locs = list(locs)
        if locs:
            self._to_move = Color.WHITE

    def place_free_handicap(self, stones: Iterable[Where]) -> None:
        """Place Black's handicap stones freely (only before the first move)."""
        if self._hist or self.handicap_locs:
            raise ValueError("handicap stones can only be placed before the first move")
        self._forget()
        self._place_handicap([self.to_loc(w) for w in stones])
        self._remember()

    def setup(
        self,
        black: Iterable[Where] = (),
        white: Iterable[Where] = (),
        to_move: Color | None = None,
    ) -> None:
        """Add set-up stones (SGF ``AB``/``AW``) before the first move, and optionally say
        who moves first. The resulting position starts the superko history. Stones must be
        on empty points and every chain must keep a liberty."""
        if self._hist:
            raise ValueError("set-up stones can only be added before the first move")
        black_locs = [self.to_loc(w) for w in black]
        white_locs = [self.to_loc(w) for w in white]
        if PASS_LOC in black_locs or PASS_LOC in white_locs:
            raise ValueError("a set-up stone cannot be a pass")
        trial = self._board.copy()
        trial.place_stones(black_locs, Color.BLACK)
        trial.place_stones(white_locs, Color.WHITE)
        self._forget()
        self._board = trial
        if to_move is not None:
            self._to_move = Color(to_move)
        self._remember()

    def edit(
        self,
        black: Iterable[Where] = (),
        white: Iterable[Where] = (),
        empty: Iterable[Where] = (),
        to_move: Color | None = None,
    ) -> None:
        """Change the position at any point of the game, as SGF set-up properties do
        (``AB``, ``AW``, ``AE``, ``PL``): each point of ``black``/``white`` gets a stone of
        that colour and each point of ``empty`` is cleared, whatever was there; nothing is
        captured and the capture counts stay. The ko ban is lifted, the superko history
        starts again from the new position, and the turns before cannot be undone.
        Raises ``ValueError`` (the game unchanged) for a pass or a chain left without
        liberties, which no position of the game can have."""
        b = self._board
        colors = dict.fromkeys(b.stones(Color.BLACK), Color.BLACK)
        colors.update(dict.fromkeys(b.stones(Color.WHITE), Color.WHITE))
        for points, color in ((black, Color.BLACK), (white, Color.WHITE), (empty, None)):
            for where in points:
                loc = self.to_loc(where)
                if loc == PASS_LOC:
                    raise ValueError("a set-up point cannot be a pass")
                if color is None:
                    colors.pop(loc, None)
                else:
                    colors[loc] = color
        board = Board(self.width, self.height)
        # Black then White: every chain of a position where each chain has a liberty
        # keeps one while it is being placed, so this fails only for a bad position.
        board.place_stones([loc for loc, c in colors.items() if c is Color.BLACK], Color.BLACK)
        board.place_stones([loc for loc, c in colors.items() if c is Color.WHITE], Color.WHITE)
        board.set_captures(b.captures(Color.BLACK), b.captures(Color.WHITE))
        self._board = board
        if to_move is not None:
            self._to_move = Color(to_move)
        self._passes = 0
        self._pos_count.clear()
        self._sit_count.clear()
        self._undo_floor = len(self._hist)
        self._remember()

    # -- basic properties ----------------------------------------------------------------

    @property
    def board(self) -> Board:
        """The live board. Read it freely; change it only through the game (or copy it)."""
        return self._board

    @property
    def width(self) -> int:
        return int(self._board.width)

    @property
    def height(self) -> int:
        return int(self._board.height)

    @property
    def to_move(self) -> Color:
        """The player whose turn it is."""
        return self._to_move

    @property
    def handicap(self) -> int:
        """Number of handicap stones."""
        return len(self.handicap_locs)

    @property
    def move_number(self) -> int:
        """Number of turns played (passes included, handicap placement excluded)."""
        return len(self._hist)

    @property
    def history(self) -> list[Turn]:
        """Every turn so far, first to last."""
        return [Turn(h[1], h[2], h[3]) for h in self._hist]

    @property
    def moves(self) -> list[int]:
        """The locs of every turn so far (PASS_LOC for passes)."""
        return [h[2] for h in self._hist]

    @property
    def consecutive_passes(self) -> int:
        """Passes in a row at the end of the game so far."""
        return self._passes

    @property
    def is_over(self) -> bool:
        """True after two consecutive passes. Playing on is still allowed (the players may
        resume to settle a dispute); the server decides when a game really ends."""
        return self._passes >= 2

    @property
    def button_holder(self) -> Color | None:
        """Who passed first, when the rules have a button."""
        return self._button

    @property
    def hash(self) -> int:
        """Zobrist hash of the stones."""
        return int(self._board.hash)

    @property
    def situational_hash(self) -> int:
        """Hash of the stones and the player to move."""
        return int(self._board.hash) ^ int(zobrist_player(self._to_move))

    # -- coordinates ---------------------------------------------------------------------

    def to_loc(self, where: Where) -> int:
        """Read a point given as ``"D4"``/``"pass"``, ``(x, y)``, a loc or ``None``."""
        if where is None:
            return int(PASS_LOC)
        if isinstance(where, str):
            return parse_gtp(where, self.width, self.height)
        if isinstance(where, tuple):
            x, y = where
            return loc_of(x, y, self.width, self.height)
        if isinstance(where, int):
            if where != PASS_LOC and not self._board.is_on_board(where):
                raise OffBoardError(f"loc {where} is not on the {self.width}x{self.height} board")
            return where
        raise TypeError(f"cannot read a point from {where!r}")

    def vertex(self, loc: int) -> str:
        """GTP name of a loc (``"D4"``, ``"pass"``)."""
        return to_gtp(loc, self.width, self.height)

    def xy(self, loc: int) -> tuple[int, int]:
        return xy_of(loc, self.width)

    # -- legality ------------------------------------------------------------------------

    def _remember(self) -> tuple[int, int]:
        h = int(self._board.hash)
        s = h ^ int(zobrist_player(self._to_move))
        self._pos_count[h] = self._pos_count.get(h, 0) + 1
        self._sit_count[s] = self._sit_count.get(s, 0) + 1
        return h, s

    def _forget(self, h: int | None = None, s: int | None = None) -> None:
        if h is None:
            h = int(self._board.hash)
            s = h ^ int(zobrist_player(self._to_move))
        assert s is not None
        for counts, key in ((self._pos_count, h), (self._sit_count, s)):
            n = counts[key] - 1
            if n:
                counts[key] = n
            else:
                del counts[key]

    def _superko_violation(self, loc: int, color: Color) -> bool:
        ko = self.rules.ko
        if ko is KoRule.SIMPLE or loc == PASS_LOC:
            return False
        after = int(self._board.hash_after(loc, color))
        if ko is KoRule.POSITIONAL:
            return after in self._pos_count
        return (after ^ int(zobrist_player(color.opponent))) in self._sit_count

    def check(self, where: Where, color: Color | None = None) -> int:
        """Return the loc if the move is legal now; raise the matching
        :class:`IllegalMoveError` otherwise (also :class:`OutOfTurnError`)."""
        loc = self.to_loc(where)
        if color is not None and Color(color) is not self._to_move:
            raise OutOfTurnError(
                f"it is {self._to_move.display}'s turn, not {Color(color).display}'s",
                vertex=self.vertex(loc),
                color=int(color),
            )
        pla = self._to_move
        if loc == PASS_LOC:
            return loc
        code = self._board.legality(loc, pla, self.rules.suicide)
        if code != LEGALITY_OK:
            self._board.play(loc, pla, self.rules.suicide)  # raises the typed error
            raise AssertionError("unreachable")  # pragma: no cover
        if self._superko_violation(loc, pla):
            kind = "positional" if self.rules.ko is KoRule.POSITIONAL else "situational"
            raise SuperkoError(
                f"{self.vertex(loc)} would repeat an earlier board position, which "
                f"{kind} superko forbids",
                vertex=self.vertex(loc),
                color=int(pla),
            )
        return loc

    def is_legal(self, where: Where, color: Color | None = None) -> bool:
        """True if the player to move (or ``color``, who must be that player) may play."""
        try:
            self.check(where, color)
        except IllegalMoveError:
            return False
        return True

    def legal_moves(self) -> list[int]:
        """Locs of every legal move of the player to move (passing not included)."""
        b = self._board
        pla = self._to_move
        suicide = self.rules.suicide
        out = [loc for loc in b.empty_points() if b.is_legal(loc, pla, suicide)]
        if self.rules.ko is not KoRule.SIMPLE:
            out = [loc for loc in out if not self._superko_violation(loc, pla)]
        return out

    # -- playing -------------------------------------------------------------------------

    def play(self, where: Where, color: Color | None = None) -> int:
        """Play a move (or pass) for the player to move; returns the stones captured.

        ``color``, if given, must be the player to move (else :class:`OutOfTurnError`)."""
        loc = self.check(where, color)
        pla = self._to_move
        b = self._board
        before = b.captures(pla)
        record = int(b.play_undoable(loc, pla, self.rules.suicide))
        captured = b.captures(pla) - before
        passes, button = self._passes, self._button
        if loc == PASS_LOC:
            self._passes += 1
            if self.rules.button and self._button is None:
                self._button = pla
        else:
            self._passes = 0
        self._to_move = pla.opponent
        h, s = self._remember()
        self._hist.append((record, pla, loc, captured, passes, button, h, s))
        return captured

    def pass_turn(self) -> None:
        """The player to move passes."""
        self.play(None)

    def undo(self) -> None:
        """Take back the last turn, restoring position, hash, captures, ko point, passes,
        button and the superko history exactly. Raises ``IndexError`` if nothing to undo."""
        if not self._hist:
            raise IndexError("there is no move to undo")
        if len(self._hist) <= self._undo_floor:
            raise IndexError("the position was edited after this move: it cannot be undone")
        record, pla, _loc, _cap, passes, button, h, s = self._hist.pop()
        self._forget(h, s)
        self._board.undo(record)
        self._to_move = pla
        self._passes = passes
        self._button = button

    def replay(self, moves: Sequence[Where]) -> None:
        """Play several moves in turn order."""
        for m in moves:
            self.play(m)

    def copy(self) -> Game:
        """An independent copy of the game (board, history and all)."""
        g = Game.__new__(Game)
        g._board = self._board.copy()
        g.rules = self.rules
        g.komi = self.komi
        g._to_move = self._to_move
        g._passes = self._passes
        g._button = self._button
        g._hist = list(self._hist)
        g._pos_count = dict(self._pos_count)
        g._sit_count = dict(self._sit_count)
        g.handicap_locs = list(self.handicap_locs)
        g._undo_floor = self._undo_floor
        return g

    # -- scoring -------------------------------------------------------------------------

    def score(self, dead: Iterable[Where] = ()) -> Score:
        """Count the position with ``dead`` stones removed (see :mod:`goapp.rules.scoring`)."""
        locs = [self.to_loc(w) for w in dead]
        return score_position(
            self._board,
            self.rules,
            self.komi,
            locs,
            handicap_stones=self.handicap,
            button_holder=self._button,
        )

    def result(self, dead: Iterable[Where] = ()) -> Result:
        """The result by counting (``B+3.5``, ``W+0.5``, ``0``)."""
        return self.score(dead).result

    def __repr__(self) -> str:
        return (
            f"<Game {self.width}x{self.height} {self.rules.name} komi={self.komi:g} "
            f"move={self.move_number} to_move={self._to_move.display}>"
        )


__all__ = ["Game", "Turn", "Where", "fixed_handicap_xy"]
