"""Exactly-once duties across instances (issue 8): bot turns under a lease.

Two "instances" (each its own store connection, game service, bot driver with a holder
name and its own GNU Go) share one PostgreSQL schema. Human moves arrive at either one:

* every bot turn is thought once (one engine query per bot move across both instances)
  and played once;
* an instance that dies mid-think (its driver closed without releasing the lease) is taken
  over by the other once the lease expires, and not before.

Also the lease itself on both backends (conditional upsert: free, expired or own).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from engine_support import human_turn
from services import unavailable

from goapp.engine.bots import BotDriver
from goapp.engine.facade import GnuGoBackend, find_gnugo
from goapp.game.service import GameService
from goapp.store import Store, open_store

# goapp serve instances with GNU Go bots
pytestmark = [pytest.mark.server, pytest.mark.gnugo]

LEASE_TTL = 1.0
SWEEP = 0.1


async def test_lease_is_a_conditional_upsert(store: Store) -> None:
    now = 1_000_000
    assert await store.acquire_lease("bot:1", "a", 1000, now)
    assert await store.acquire_lease("bot:1", "a", 1000, now + 10)  # renew: own lease
    assert not await store.acquire_lease("bot:1", "b", 1000, now + 500)  # live, not b's
    assert await store.acquire_lease("bot:2", "b", 1000, now + 500)  # other names are free
    assert await store.acquire_lease("bot:1", "b", 1000, now + 1010)  # expired: taken over
    assert not await store.release_lease("bot:1", "a")
    assert await store.release_lease("bot:1", "b")
    assert await store.acquire_lease("bot:1", "a", 1000, now + 1020)  # released: free


async def test_last_seqs_of_many_games(store: Store) -> None:
    games = GameService(store)
    alice = (await store.create_user("alice", None)).id
    bob = (await store.create_user("bob", None)).id
    ids = [(await games.create_game(alice, bob, size=9)).game_id for _ in range(3)]
    state = await games.state(ids[1])
    mover = state.setup.black_id if state.to_move == "black" else state.setup.white_id
    await games.act(ids[1], mover, {"type": "pass"})
    assert await store.last_seqs([*ids, 10**9]) == {ids[0]: 2, ids[1]: 3, ids[2]: 2}
    assert await store.last_seqs([]) == {}


@dataclass
class Instance:
    name: str
    store: Store
    games: GameService
    engine: GnuGoBackend
    driver: BotDriver
    thoughts: int = 0
    sweeper: asyncio.Task[None] | None = None
    hang: asyncio.Event | None = None

    async def close(self, *, crash: bool = False) -> None:
        """Shut down cleanly, or (``crash``) as a killed process would: no lease released."""
        if self.sweeper is not None:
            self.sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.sweeper
        await self.driver.close(release_leases=not crash)
        await self.engine.close()
        await self.store.close()


async def _instance(name: str, url: str, gnugo: str) -> Instance:
    store = await open_store(url)
    games = GameService(store)
    engine = GnuGoBackend(gnugo)
    await engine.start()
    driver = BotDriver(games, engine, holder=name, lease_ttl=LEASE_TTL, backoff_initial=0.05)
    inst = Instance(name, store, games, engine, driver)
    genmove = engine.genmove

    async def counted(*args: Any, **kwargs: Any) -> str:  # instrumentation: count thoughts
        inst.thoughts += 1
        if inst.hang is not None:
            await asyncio.Event().wait()  # "thinks" until the instance dies
        return await genmove(*args, **kwargs)

    engine.genmove = counted  # type: ignore[method-assign]
    driver.attach()
    inst.sweeper = asyncio.create_task(driver.sweep(SWEEP))
    return inst


@pytest.fixture
async def pair(pg_schema_url: str) -> AsyncIterator[tuple[Instance, Instance]]:
    gnugo = find_gnugo()
    if gnugo is None:
        unavailable("GNU Go is not installed")
        raise AssertionError
    a = await _instance("a", pg_schema_url, gnugo)
    b = await _instance("b", pg_schema_url, gnugo)
    try:
        yield a, b
    finally:
        for inst in (a, b):
            with contextlib.suppress(Exception):
                await inst.close()


async def _bot_to_move(games: GameService, game_id: int, want: bool, timeout: float) -> float:
    """Wait until it is (``want``) or is not the bot's (white's) turn; the seconds waited."""
    t0 = time.monotonic()
    while True:
        state = await games.state(game_id)
        if (state.to_move == "white") == want:
            return time.monotonic() - t0
        assert time.monotonic() - t0 < timeout, f"bot to move != {want} within {timeout}s"
        await asyncio.sleep(0.02)


async def test_one_thought_and_one_move_per_bot_turn(pair: tuple[Instance, Instance]) -> None:
    a, b = pair
    alice = (await a.store.create_user("alice", None)).id
    state = await a.games.create_game(
        alice, None, user_color="black", size=9, opponent_bot="gnugo:beginner"
    )
    game = state.game_id
    rng = random.Random(7)
    turns = 6
    for i in range(turns):
        inst = (a, b)[i % 2]  # the human's moves arrive at either instance
        await human_turn(inst.games, game, alice, rng, passing=False)
        await _bot_to_move(inst.games, game, False, 20)
    await asyncio.sleep(3 * SWEEP)  # sweeps on both sides find nothing to do
    events = await a.games.events_since(game, 0)
    bot_moves = [e for e in events if getattr(e.event, "color", None) == "white"]
    assert len(bot_moves) == turns
    assert a.thoughts + b.thoughts == turns, (a.thoughts, b.thoughts)
    assert a.thoughts and b.thoughts  # each instance played the turns that reached it


async def _a_thinks_forever(a: Instance, b: Instance) -> tuple[int, float]:
    """A bot game whose bot turn A has taken and never finishes thinking about, while B
    leaves it alone (A holds the lease): the game id and when the human moved."""
    alice = (await a.store.create_user("alice", None)).id
    state = await a.games.create_game(
        alice, None, user_color="black", size=9, opponent_bot="gnugo:beginner"
    )
    game = state.game_id
    a.hang = asyncio.Event()
    await human_turn(a.games, game, alice, random.Random(1), passing=False)
    t0 = time.monotonic()
    while a.thoughts == 0:
        assert time.monotonic() - t0 < 5, "A never started thinking"
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)
    assert b.thoughts == 0  # A holds the lease: B leaves the turn alone
    return game, t0


async def test_a_dead_holders_bot_turn_is_taken_over(pair: tuple[Instance, Instance]) -> None:
    a, b = pair
    game, t0 = await _a_thinks_forever(a, b)
    await a.close(crash=True)  # A "dies": its lease is not released
    waited = await _bot_to_move(b.games, game, False, 10)
    assert b.thoughts == 1
    assert time.monotonic() - t0 >= LEASE_TTL * 0.9  # not before the lease ran out
    assert waited < LEASE_TTL + 3


async def test_a_shutting_down_holders_bot_turn_is_taken_over_at_once(
    pair: tuple[Instance, Instance],
) -> None:
    """A clean shutdown releases the lease: the other instance's next sweep takes the turn,
    long before the lease would have expired."""
    a, b = pair
    game, _ = await _a_thinks_forever(a, b)
    t_stop = time.monotonic()
    await a.close()
    while b.thoughts == 0:
        assert time.monotonic() - t_stop < LEASE_TTL * 3, "B never took the turn"
        await asyncio.sleep(0.01)
    # A renewed its lease every LEASE_TTL / 3, so it would not have expired before
    # 2/3 LEASE_TTL after the stop: a start before that is the release's doing.
    assert time.monotonic() - t_stop < LEASE_TTL / 2
    await _bot_to_move(b.games, game, False, 10)
    assert b.thoughts == 1
