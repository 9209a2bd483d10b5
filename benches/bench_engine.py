"""Bot move latency: one ``katago analysis`` process for every game (goapp's design) vs one
``katago gtp`` process per game, with 1, 4 and 16 games asking at once.

    .venv/bin/pytest benches/bench_engine.py --benchmark-only -p no:randomly -s

Each game asks for ``MOVES`` bot moves one after the other, on 9x9 positions of its own
(random legal openings, a different seed per game, so no game hits another's cache), at
``VISITS`` visits, Tromp-Taylor rules, komi 7. The analysis side goes through
``tests/engine_support.best_move`` (bot priority as the bots ask, the packaged
``analysis.cfg``); the GTP side replays the position (``clear_board``, ``play``...) and sends
``genmove`` to its own ``katago gtp`` (the packaged ``gtp.cfg``, ``maxVisits`` overridden),
started before timing. The latency of every move is recorded; ``extra_info`` holds p50, p95
and the moves per second of the whole run.

Under ``--benchmark-disable`` (``make test``) only the one-game cases run, with 2 moves:
KataGo start-ups for 16 GTP processes take minutes on a small CPU.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
from pathlib import Path
from typing import Any

import pytest
from engine_support import best_move

from goapp.engine.gtp import AsyncGtpClient
from goapp.engine.katago import KataGoEngine, default_config
from goapp.engine.setup import KataGoPaths, installed_paths
from goapp.rules import Game

REPO = Path(__file__).resolve().parents[1]
VISITS = 8
MOVES = 6
OPENING = 10


@pytest.fixture(scope="module")
def katago_paths() -> KataGoPaths:
    paths = installed_paths(REPO / ".katago")
    if paths is None or paths.model is None:
        message = "KataGo is not installed in .katago (make katago)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return paths


def positions(game: int, moves: int) -> list[list[list[str]]]:
    """``moves`` positions of one game: a random opening of OPENING + 2k turns."""
    rng = random.Random(1000 + game)
    g = Game(9, 9)
    history: list[list[str]] = []
    out = []
    for k in range(moves):
        while len(history) < OPENING + 2 * k:
            color = g.to_move
            legal = [loc for loc in g.legal_moves() if not g.board.is_simple_eye(loc, int(color))]
            loc = rng.choice(legal)
            history.append(["B" if color.letter == "B" else "W", g.vertex(loc)])
            g.play(loc)
        out.append([list(m) for m in history])
    return out


def summary(latencies: list[float], elapsed: float) -> dict[str, float]:
    q = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else latencies * 19
    return {
        "moves": len(latencies),
        "p50_s": round(statistics.median(latencies), 3),
        "p95_s": round(q[18], 3),
        "moves_per_s": round(len(latencies) / elapsed, 2),
    }


async def run_analysis(paths: KataGoPaths, games: int, moves: int) -> dict[str, float]:
    engine = KataGoEngine.from_paths(paths)
    await engine.start()
    try:
        latencies: list[float] = []

        async def play(game: int) -> None:
            for pos in positions(game, moves):
                t0 = time.monotonic()
                move = await best_move(engine, pos, 9, "tromp-taylor", 7.0, VISITS, timeout=600)
                latencies.append(time.monotonic() - t0)
                assert move

        t0 = time.monotonic()
        await asyncio.gather(*(play(g) for g in range(games)))
        return summary(latencies, time.monotonic() - t0)
    finally:
        await engine.close()


async def run_gtp(paths: KataGoPaths, games: int, moves: int) -> dict[str, float]:
    assert paths.home is not None and paths.model is not None
    argv = [
        str(paths.home / "katago"),  # the wrapper sets LD_LIBRARY_PATH
        *("gtp", "-config", str(default_config("gtp")), "-model", str(paths.model)),
        *("-override-config", f"maxVisits={VISITS}"),
    ]
    clients = await asyncio.gather(*(AsyncGtpClient.start(argv, timeout=900) for _ in range(games)))
    try:
        await asyncio.gather(*(c.send_many(["boardsize 9", "komi 7"]) for c in clients))
        latencies: list[float] = []

        async def play(game: int, client: AsyncGtpClient) -> None:
            for pos in positions(game, moves):
                t0 = time.monotonic()
                cmds = ["clear_board", *(f"play {c} {v}" for c, v in pos)]
                to_move = "W" if pos[-1][0] == "B" else "B"
                answers = await client.send_many([*cmds, f"genmove {to_move}"])
                latencies.append(time.monotonic() - t0)
                assert answers[-1]

        t0 = time.monotonic()
        await asyncio.gather(*(play(g, c) for g, c in enumerate(clients)))
        return summary(latencies, time.monotonic() - t0)
    finally:
        await asyncio.gather(*(c.close(timeout=30) for c in clients), return_exceptions=True)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """With timing disabled (``make test``) only the one-game cases run: 4 and 16 games start
    up to 16 KataGo processes, which is a measurement, not a check."""
    if metafunc.function.__name__ == "test_bot_move_latency":
        disabled = metafunc.config.getoption("benchmark_disable", False)
        metafunc.parametrize("games", [1] if disabled else [1, 4, 16])


@pytest.mark.timeout(3600)
@pytest.mark.parametrize("design", ["analysis", "gtp_per_game"])
def test_bot_move_latency(
    benchmark: Any, katago_paths: KataGoPaths, design: str, games: int
) -> None:
    moves = 2 if benchmark.disabled else MOVES
    runner = run_analysis if design == "analysis" else run_gtp
    result: dict[str, float] = {}

    def run() -> None:
        result.update(asyncio.run(runner(katago_paths, games, moves)))

    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    benchmark.extra_info.update({"visits": VISITS, "games": games, "design": design})
    print(f"\n{design} games={games} visits={VISITS}: {result}")
    assert result["moves"] == games * moves
