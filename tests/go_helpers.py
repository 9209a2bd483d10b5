"""Helpers for the rules tests: build boards from diagrams, pick random moves."""

from __future__ import annotations

import random

from goapp.rules import BLACK, PASS_LOC, WHITE, Board, Game


def board_from(diagram: str) -> Board:
    """A board from rows of ``X`` (Black), ``O`` (White) and ``.``, top row first."""
    rows = [r.replace(" ", "") for r in diagram.strip().splitlines()]
    height, width = len(rows), len(rows[0])
    b = Board(width, height)
    blacks = [b.loc(x, y) for y, r in enumerate(rows) for x, ch in enumerate(r) if ch == "X"]
    whites = [b.loc(x, y) for y, r in enumerate(rows) for x, ch in enumerate(r) if ch == "O"]
    b.place_stones(blacks, BLACK)
    b.place_stones(whites, WHITE)
    return b


def diagram(b: Board) -> str:
    """The inverse of :func:`board_from`."""
    return "\n".join("".join(".XO"[b[x, y]] for x in range(b.width)) for y in range(b.height))


def random_move(b: Board, color: int, rng: random.Random, allow_suicide: bool = False) -> int:
    """A uniformly random legal move that does not fill a simple own eye, or PASS_LOC."""
    cands = [
        loc
        for loc in b.empty_points()
        if b.is_legal(loc, color, allow_suicide) and not b.is_simple_eye(loc, color)
    ]
    return rng.choice(cands) if cands else PASS_LOC


def random_game_move(g: Game, rng: random.Random) -> int:
    """A random legal non-eye-filling move for the player to move in ``g``, or PASS_LOC."""
    cands = [loc for loc in g.legal_moves() if not g.board.is_simple_eye(loc, g.to_move)]
    return rng.choice(cands) if cands else PASS_LOC
