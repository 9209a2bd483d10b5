"""Differential test against GNU Go over GTP: in 200 seeded random games on 9x9, 13x13 and
19x19, after every move the stones and capture counts agree, and every empty point's
legality for both colours agrees (on 9x9 after every move, on larger boards every few).

GNU Go plays simple ko with suicide illegal, which is goapp's Board with
``allow_suicide=False``. Without GNU Go the test skips locally and FAILS when ``CI`` is set.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
from collections.abc import Iterator

import pytest

from goapp.engine.gtp import AsyncGtpClient, GtpClient, GtpError
from goapp.rules import (
    BLACK,
    PASS_LOC,
    WHITE,
    Board,
    Game,
    Rules,
    fixed_handicap_xy,
    xy_to_gtp,
)

# GNU Go is the oracle
pytestmark = [pytest.mark.gnugo]

GNUGO = os.environ.get("GNUGO") or shutil.which("gnugo") or "/usr/games/gnugo"
COLOR_NAME: dict[int, str] = {BLACK: "black", WHITE: "white"}

# (size, games, max turns per game, check legality every k-th turn, games per test case)
PLAN = [(9, 100, 400, 1, 10), (13, 60, 150, 3, 10), (19, 40, 300, 10, 10)]


@pytest.fixture(scope="module")
def gnugo() -> Iterator[GtpClient]:
    if not (os.path.isfile(GNUGO) and os.access(GNUGO, os.X_OK)):
        message = f"GNU Go not found at {GNUGO!r} (apt-get install gnugo, or set GNUGO)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with GtpClient([GNUGO, "--mode", "gtp", "--level", "0"], timeout=60) as client:
        assert client.send("protocol_version") == "2"
        yield client


def _vertices(b: Board, color: int) -> set[str]:
    return {b.vertex(loc) for loc in b.stones(color)}


def _compare_legality(gtp: GtpClient, b: Board, game: Game, context: str) -> None:
    """Every empty point, both colours: the Board agrees with GNU Go, and the Game layer
    (Japanese rules: simple ko, no suicide) agrees for the player to move."""
    cmds, expected = [], []
    for loc in b.empty_points():
        for color in (BLACK, WHITE):
            cmds.append(f"is_legal {COLOR_NAME[color]} {b.vertex(loc)}")
            expected.append("1" if b.is_legal(loc, color) else "0")
    answers = gtp.send_many(cmds)
    wrong = [c for c, e, a in zip(cmds, expected, answers, strict=True) if e != a]
    assert not wrong, f"{context}: legality differs for {wrong[:10]}\n{b}"
    to_move = COLOR_NAME[int(game.to_move)]
    for cmd, answer in zip(cmds, answers, strict=True):
        _, cname, vertex = cmd.split()
        if cname == to_move:
            assert game.is_legal(vertex) == (answer == "1"), f"{context}: Game, {cmd}"


def play_differential_game(
    gtp: GtpClient, size: int, seed: int, turns: int, every: int
) -> tuple[int, int]:
    """Play one game; return (stones captured, turns that left a ko point)."""
    rng = random.Random(seed)
    gtp.send_many([f"boardsize {size}", "clear_board"])
    b = Board(size)
    game = Game(size, rules=Rules.from_name("japanese"), komi=6.5)
    color: int = BLACK
    passes = 0
    captured = 0
    kos = 0
    for turn in range(turns):
        cands = [
            p for p in b.empty_points() if b.is_legal(p, color) and not b.is_simple_eye(p, color)
        ]
        loc = rng.choice(cands) if cands and rng.random() > 0.02 else PASS_LOC
        n = b.play(loc, color)
        captured += n
        assert game.play(loc) == n
        answers = gtp.send_many(
            [
                f"play {COLOR_NAME[color]} {b.vertex(loc)}",
                "list_stones black",
                "list_stones white",
                "captures black",
                "captures white",
            ]
        )
        context = f"{size}x{size} seed {seed} turn {turn} {COLOR_NAME[color]} {b.vertex(loc)}"
        assert set(answers[1].split()) == _vertices(b, BLACK), context
        assert set(answers[2].split()) == _vertices(b, WHITE), context
        assert (int(answers[3]), int(answers[4])) == (b.captures(BLACK), b.captures(WHITE)), context
        kos += b.ko_loc != 0
        if turn % every == 0 or b.ko_loc:
            assert game.board == b, context
            _compare_legality(gtp, b, game, context)
        passes = passes + 1 if loc == PASS_LOC else 0
        if passes >= 2:
            break
        color = 3 - color
    return captured, kos


CASES = [
    pytest.param(
        size, start, min(per_case, games - start), turns, every, id=f"{size}x{size}-{start}"
    )
    for size, games, turns, every, per_case in PLAN
    for start in range(0, games, per_case)
]


@pytest.mark.parametrize(("size", "start", "count", "turns", "every"), CASES)
def test_random_games_agree_with_gnugo(
    gnugo: GtpClient, size: int, start: int, count: int, turns: int, every: int
) -> None:
    total_captures = total_kos = 0
    for g in range(start, start + count):
        captured, kos = play_differential_game(gnugo, size, 1000 * size + g, turns, every)
        total_captures += captured
        total_kos += kos
    assert total_captures > 0  # the games capture...
    if size == 9:
        assert total_kos > 0  # ...and fight kos


def test_total_number_of_games_is_at_least_200() -> None:
    assert sum(games for _, games, _, _, _ in PLAN) >= 200


@pytest.mark.parametrize("size", [7, 9, 13, 19])
def test_fixed_handicap_matches_gnugo(gnugo: GtpClient, size: int) -> None:
    max_stones = 4 if size == 7 else 9
    for n in range(2, max_stones + 1):
        gnugo.send_many([f"boardsize {size}", "clear_board"])
        placed = set(gnugo.send(f"fixed_handicap {n}").split())
        ours = {xy_to_gtp(x, y, size) for x, y in fixed_handicap_xy(n, size)}
        assert ours == placed, (size, n)
    gnugo.send_many([f"boardsize {size}", "clear_board"])
    with pytest.raises(GtpError):
        gnugo.send(f"fixed_handicap {max_stones + 1}")
    with pytest.raises(ValueError):
        fixed_handicap_xy(max_stones + 1, size)


def test_gtp_client_reports_errors_and_pipelines(gnugo: GtpClient) -> None:
    gnugo.send_many(["boardsize 9", "clear_board"])
    assert gnugo.name() == "GNU Go"
    with pytest.raises(GtpError, match="illegal move"):
        gnugo.send_many(["play black E5", "play white E5", "play black D4"])
    # the command after the failing one was still executed, in order
    assert set(gnugo.send("list_stones black").split()) == {"E5", "D4"}
    many = gnugo.send_many(["is_legal white A1"] * 3000)  # more than one pipe buffer
    assert many == ["1"] * 3000
    move = gnugo.genmove("white")
    assert move == "pass" or move[0] in "ABCDEFGHJ"


def test_async_gtp_client(gnugo: GtpClient) -> None:
    async def main() -> None:
        client = await AsyncGtpClient.start([GNUGO, "--mode", "gtp", "--level", "0"])
        try:
            assert await client.send("boardsize 9") == ""
            answers = await client.send_many(["play black E5", "list_stones black"])
            assert answers == ["", "E5"]
            with pytest.raises(GtpError):
                await client.send("play white E5")
            assert await client.send("captures white") == "0"
        finally:
            await client.close()

    asyncio.run(main())
