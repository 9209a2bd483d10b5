"""SGF benchmarks (pytest-benchmark): parse and write a 300-move reviewed game.

Run: ``.venv/bin/pytest benches/bench_sgf.py --benchmark-only``
"""

from __future__ import annotations

import random

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from goapp.rules.sgf import (
    GameRecord,
    Node,
    parse_sgf,
    point_to_sgf,
    read_record,
    write_sgf,
)


def _review_game(moves: int = 300, seed: int = 19) -> Node:
    """A 19x19 game of ``moves`` moves with clock times, a comment every 10 moves, markup,
    and a 10-move variation (with its own comment) every 25 moves: about what a KGS game
    reviewed in Sabaki or KaTrain looks like."""
    rnd = random.Random(seed)
    points = [point_to_sgf((x, y)) for x in range(19) for y in range(19)]

    def point() -> str:
        return rnd.choice(points)

    root = Node(
        [
            ("GM", ["1"]),
            ("FF", ["4"]),
            ("CA", ["UTF-8"]),
            ("AP", ["CGoban:3"]),
            ("RU", ["Japanese"]),
            ("SZ", ["19"]),
            ("KM", ["6.50"]),
            ("TM", ["1800"]),
            ("OT", ["5x30 byo-yomi"]),
            ("PB", ["black player"]),
            ("PW", ["white player"]),
            ("BR", ["1k"]),
            ("WR", ["2d"]),
            ("DT", ["2024-05-01"]),
            ("PC", ["The KGS Go Server at http://www.gokgs.com/"]),
            ("RE", ["W+Resign"]),
        ]
    )
    node = root
    clock = {"B": 1800.0, "W": 1800.0}
    for i in range(moves):
        color = "BW"[i % 2]
        clock[color] -= rnd.uniform(1, 10)
        child = node.add_child(Node({color: [point()], color + "L": [f"{clock[color]:.1f}"]}))
        if i % 10 == 9:
            child.set("C", f"Move {i + 1}: win rate {rnd.uniform(0, 100):.1f}% [review]\nPV: ...")
            child.set("TR", [point(), point()])
            child.set("LB", [f"{point()}:A", f"{point()}:B"])
        if i % 25 == 24:
            var = node.add_child(Node({color: [point()], "C": ["better: see this line"]}))
            for j in range(9):
                var = var.add_child(Node({"BW"[(i + j + 1) % 2]: [point()]}))
        node = child
    return root


@pytest.fixture(scope="module")
def game() -> Node:
    return _review_game()


@pytest.fixture(scope="module")
def game_text(game: Node) -> str:
    return write_sgf(game)


def test_parse_300_moves(benchmark: BenchmarkFixture, game: Node, game_text: str) -> None:
    result = benchmark(parse_sgf, game_text)
    assert result == game


def test_parse_300_moves_bytes(benchmark: BenchmarkFixture, game_text: str) -> None:
    data = game_text.encode("utf-8")
    benchmark(parse_sgf, data)


def test_write_300_moves(benchmark: BenchmarkFixture, game: Node, game_text: str) -> None:
    assert benchmark(write_sgf, game) == game_text


def test_read_record_300_moves(benchmark: BenchmarkFixture, game_text: str) -> None:
    record = benchmark(read_record, game_text)
    assert len(record.moves) == 300


def test_record_to_sgf_300_moves(benchmark: BenchmarkFixture, game: Node) -> None:
    record = GameRecord.from_tree(game)
    benchmark(record.to_sgf)


# -- hostile uploads (issue 15): what POST /api/sgf costs on the worst shapes of input.
# Each runs the upload path (goapp.server.api.games.review_sgf) on a body under the 1 MiB
# cap; a refusal is an answer too. Before the point budget the first one cost about a
# minute of CPU (benches/README.md has the figures).


def _hostile_bodies() -> dict[str, bytes]:
    letters = "abcdefghijklmnopqrstuvwxy"
    rects = "".join(
        f"[{letters[a]}{letters[b]}:{letters[c]}{letters[d]}]"
        for a in range(12)
        for b in range(12)
        for c in range(12, 24)
        for d in range(12, 25)
    )
    return {
        "sz52_same_rect": ("(;GM[1]SZ[52]AB" + "[aa:ZZ]" * 142_857 + ")").encode(),
        "sz19_same_rect": ("(;GM[1]SZ[19]AB" + "[aa:sr]" * 142_857 + ")").encode(),
        "sz25_distinct_rects": f"(;GM[1]SZ[25]AB{rects})".encode(),
        "sz19_setup_nodes": ("(;GM[1]SZ[19]" + ";AB[aa]" * 140_000 + ")").encode(),
    }


def upload_outcome(data: bytes) -> str:
    """What the upload path answers: "accepted" or the error (refusals are answers)."""
    from goapp.rules.sgf import SgfError
    from goapp.server.api.games import review_sgf

    try:
        review_sgf(data)
    except SgfError as exc:
        return f"rejected: {exc.reason}"
    return "accepted"


@pytest.mark.parametrize("shape", list(_hostile_bodies()))
def test_hostile_upload(benchmark: BenchmarkFixture, shape: str) -> None:
    data = _hostile_bodies()[shape]
    assert len(data) <= 1024 * 1024
    outcome = benchmark.pedantic(upload_outcome, args=(data,), rounds=3, iterations=1)
    assert outcome == ("accepted" if shape == "sz19_same_rect" else outcome)
