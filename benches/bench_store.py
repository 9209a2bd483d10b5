"""Storage benchmarks: event appends per second and append+commit latency.

Backends: SQLite with ``synchronous=FULL`` (the default) and ``NORMAL``, and PostgreSQL.
Workloads: one game appending sequentially (each append waits for the previous ack: the
latency a player sees), and 200 games appending concurrently (group commit on SQLite, the
pool on PostgreSQL).

Run as pytest-benchmark suites::

    .venv/bin/python -m pytest benches/bench_store.py --benchmark-only

or as a script that prints a table (used for docs/storage.md)::

    .venv/bin/python benches/bench_store.py [--events 2000] [--games 200]

PostgreSQL: ``GOAPP_BENCH_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``);
each run uses a schema of its own, dropped afterwards. SQLite files go to a temporary
directory (set ``TMPDIR`` to measure another disk).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from goapp.store import NewGame, Store, open_store

try:
    import uvloop

    new_loop: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
except ImportError:  # pragma: no cover
    new_loop = asyncio.new_event_loop

PG_URL = os.environ.get("GOAPP_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite-full", "sqlite-normal", "postgres"]
PAYLOAD = {"x": 3, "y": 15, "color": "b", "clock": {"b": 583.25, "w": 600.0}, "ts": 1764200000.5}


@contextlib.asynccontextmanager
async def bench_store(backend: str) -> AsyncIterator[Store]:
    if backend.startswith("sqlite"):
        sync = backend.split("-")[1]
        with tempfile.TemporaryDirectory(prefix="goapp-bench-") as d:
            store = await open_store(f"sqlite://{d}/bench.db?synchronous={sync}")
            try:
                yield store
            finally:
                await store.close()
        return
    import asyncpg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(PG_URL)
    await conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in PG_URL else "?"
    try:
        store = await open_store(f"{PG_URL}{sep}search_path={schema}&pool_max=20")
        try:
            yield store
        finally:
            await store.close()
    finally:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]


async def sequential(store: Store, events: int) -> dict[str, float]:
    """One game; each append waits for the previous ack."""
    gid = (await store.create_game(NewGame(status="playing"))).id
    lat: list[float] = []
    start = time.perf_counter()
    for seq in range(1, events + 1):
        t = time.perf_counter()
        await store.append_event(gid, seq, "move", PAYLOAD)
        lat.append(time.perf_counter() - t)
    wall = time.perf_counter() - start
    return _summary(events, wall, lat)


async def concurrent(store: Store, games: int, per_game: int) -> dict[str, float]:
    """``games`` games at once, each appending ``per_game`` events one after the other."""
    gids = [(await store.create_game(NewGame(status="playing"))).id for _ in range(games)]
    lat: list[float] = []

    async def play(gid: int) -> None:
        for seq in range(1, per_game + 1):
            t = time.perf_counter()
            await store.append_event(gid, seq, "move", PAYLOAD)
            lat.append(time.perf_counter() - t)

    start = time.perf_counter()
    await asyncio.gather(*(play(g) for g in gids))
    wall = time.perf_counter() - start
    return _summary(games * per_game, wall, lat)


def _summary(n: int, wall: float, lat: list[float]) -> dict[str, float]:
    return {
        "events": n,
        "events_per_s": n / wall,
        "p50_ms": statistics.median(lat) * 1000,
        "p99_ms": _pct(lat, 0.99) * 1000,
    }


# -- pytest-benchmark ----------------------------------------------------------------------------


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = new_loop()
    try:
        yield lp
    finally:
        lp.close()


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, loop: asyncio.AbstractEventLoop) -> Iterator[Store]:
    cm = bench_store(request.param)
    try:
        s = loop.run_until_complete(cm.__aenter__())
    except Exception as e:
        if os.environ.get("CI"):
            pytest.fail(f"{request.param} unavailable: {e}")
        pytest.skip(f"{request.param} unavailable: {e}")
    try:
        yield s
    finally:
        loop.run_until_complete(cm.__aexit__(None, None, None))


def test_append_latency_single_game(benchmark: Any, store: Store, loop: Any) -> None:
    """Time of one append+commit (sequential, one game): the per-move latency."""
    gid = loop.run_until_complete(store.create_game(NewGame(status="playing"))).id
    seq = iter(range(1, 10**9))

    def append() -> None:
        loop.run_until_complete(store.append_event(gid, next(seq), "move", PAYLOAD))

    benchmark.pedantic(append, rounds=500, iterations=1, warmup_rounds=20)


def test_append_throughput_200_games(benchmark: Any, store: Store, loop: Any) -> None:
    """200 games appending 10 events each, concurrently; extra_info holds events/s."""
    results: list[dict[str, float]] = []

    def burst() -> None:
        results.append(loop.run_until_complete(concurrent(store, 200, 10)))

    benchmark.pedantic(burst, rounds=3, iterations=1)
    best = max(r["events_per_s"] for r in results)
    benchmark.extra_info.update(events_per_s=round(best), p99_ms=results[-1]["p99_ms"])


# -- script --------------------------------------------------------------------------------------


async def run_all(events: int, games: int, per_game: int, backends: list[str]) -> list[str]:
    rows = [
        "| backend | workload | events/s | p50 ms | p99 ms |",
        "|---|---|---:|---:|---:|",
    ]
    for backend in backends:
        try:
            async with bench_store(backend) as store:
                seq = await sequential(store, events)
                conc = await concurrent(store, games, per_game)
        except Exception as e:  # PostgreSQL not reachable, ...
            rows.append(f"| {backend} | unavailable: {e} | | | |")
            continue
        for name, r in (("1 game, sequential", seq), (f"{games} games, concurrent", conc)):
            rows.append(
                f"| {backend} | {name} | {r['events_per_s']:,.0f} | {r['p50_ms']:.2f}"
                f" | {r['p99_ms']:.2f} |"
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000, help="sequential appends")
    parser.add_argument("--games", type=int, default=200, help="concurrent games")
    parser.add_argument("--per-game", type=int, default=20, help="appends per concurrent game")
    parser.add_argument("--backend", action="append", choices=BACKENDS)
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=new_loop) as runner:
        rows = runner.run(run_all(args.events, args.games, args.per_game, args.backend or BACKENDS))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
