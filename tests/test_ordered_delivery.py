"""Per-game ordered delivery (goapp.bus.ordering), with no Redis: fed events in any order,
some twice, some never, it hands each one on once, in seq order, reading the missing ones
from a real SQLite event log (or, where a test needs to control the log's timing, from a
plain function over a list of events)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from goapp.bus.ordering import OrderedDelivery
from goapp.protocol import LoggedEvent, event_json
from goapp.store import Event, NewGame, Store, open_store


@dataclass
class Sink:
    """What the ordered path handed on: ``(game_id, seq, body)`` in the order it did."""

    got: list[tuple[int, int, bytes]] = field(default_factory=list)

    def __call__(self, game_id: int, seq: int, body: bytes) -> None:
        self.got.append((game_id, seq, body))

    def seqs(self, game_id: int) -> list[int]:
        return [s for g, s, _ in self.got if g == game_id]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await open_store(f"sqlite://{tmp_path}/goapp.db")
    try:
        yield s
    finally:
        await s.close()


_names = itertools.count()


async def new_game(store: Store) -> int:
    black = await store.create_user(f"black{next(_names)}", "hash")
    white = await store.create_user(f"white{next(_names)}", "hash")
    return (await store.create_game(NewGame(black_id=black.id, white_id=white.id))).id


async def commit(store: Store, game_id: int, *seqs: int) -> list[Event]:
    return [await store.append_event(game_id, s, "move", {"n": s}) for s in seqs]


def ordered_on(store: Store, sink: Sink, **kw: Any) -> OrderedDelivery:
    async def last_seq(game_id: int) -> int:
        return (await store.get_game(game_id)).last_seq

    return OrderedDelivery(sink, store.events_since, last_seq, **kw)


async def until(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.005)
    assert check(), what


async def settle() -> None:
    """Let every ready task run (fills included) a few times."""
    for _ in range(20):
        await asyncio.sleep(0)


# -- with the SQLite log -------------------------------------------------------------------


async def test_in_order_events_go_through_once_and_duplicates_are_dropped(store: Store) -> None:
    sink = Sink()
    order = ordered_on(store, sink)
    game = await new_game(store)
    await commit(store, game, 1, 2)  # before the watch: part of the state the client reads
    assert await order.watch(game) is True
    assert order.delivered(game) == 2
    assert sink.got == []

    events = await commit(store, game, 3, 4, 5)
    for e in events:
        order.offer(game, e.seq, event_json(e))
    assert sink.got == [(game, e.seq, event_json(e)) for e in events]

    for seq in (5, 4, 3, 2, 1, 5):  # again, and older than what was delivered
        order.offer(game, seq, b"again")
    await settle()
    assert sink.seqs(game) == [3, 4, 5]
    assert order.gap_fills == 0


async def test_a_gap_is_filled_from_the_log(store: Store) -> None:
    sink = Sink()
    order = ordered_on(store, sink)
    game = await new_game(store)
    await order.watch(game)
    events = await commit(store, game, 1, 2, 3)
    # the messages of 1 and 2 were lost: 3 reveals the gap, the log fills it
    order.offer(game, 3, event_json(events[2]))
    assert sink.got == []  # not before 1 and 2
    await until(lambda: order.delivered(game) == 3, "the gap filled")
    assert sink.got == [(game, e.seq, event_json(e)) for e in events]
    assert order.gap_fills == 1
    # the lost messages turning up late change nothing
    order.offer(game, 1, event_json(events[0]))
    order.offer(game, 2, event_json(events[1]))
    await settle()
    assert sink.seqs(game) == [1, 2, 3]


async def test_out_of_order_offers_are_buffered_and_drained_in_order(store: Store) -> None:
    sink = Sink()
    order = ordered_on(store, sink)
    game = await new_game(store)
    await order.watch(game)
    events = await commit(store, game, 1, 2, 3, 4)
    bodies = {e.seq: event_json(e) for e in events}
    for seq in (4, 2, 3, 2, 1):  # reversed, with a duplicate, all before the fill reads
        order.offer(game, seq, bodies[seq])
    assert sink.got == []
    await until(lambda: order.delivered(game) == 4, "all four")
    assert sink.got == [(game, s, bodies[s]) for s in (1, 2, 3, 4)]
    await commit(store, game, 5)
    order.offer(game, 5, b"5")
    assert sink.seqs(game) == [1, 2, 3, 4, 5]


async def test_events_racing_the_watch_are_not_sent_twice(store: Store) -> None:
    """Events offered while ``watch`` subscribes (before it reads the log) are kept; those
    the log already holds are in the state the client reads, so they are dropped."""
    sink = Sink()
    order = ordered_on(store, sink)
    game = await new_game(store)
    await commit(store, game, 1)

    async def subscribe() -> None:  # event 2 commits and arrives during the subscription
        [two] = await commit(store, game, 2)
        order.offer(game, 2, event_json(two))

    assert await order.watch(game, subscribe) is True
    assert order.delivered(game) == 2
    await settle()
    assert sink.got == []
    [three] = await commit(store, game, 3)
    order.offer(game, 3, event_json(three))
    assert sink.seqs(game) == [3]


async def test_an_offer_ahead_of_the_log_read_at_watch_is_delivered_after_it(
    store: Store,
) -> None:
    """An event newer than the state read at watch time (its commit raced the read) waits
    in the buffer and goes out in order once the read is done."""
    sink = Sink()
    game = await new_game(store)
    await commit(store, game, 1)
    events = await commit(store, game, 2, 3)

    async def stale_last_seq(game_id: int) -> int:
        return 1  # the state was read before 2 and 3 committed

    order = OrderedDelivery(sink, store.events_since, stale_last_seq)

    async def subscribe() -> None:
        order.offer(game, 3, event_json(events[1]))
        order.offer(game, 2, event_json(events[0]))

    await order.watch(game, subscribe)
    await settle()
    assert sink.seqs(game) == [2, 3]
    assert order.gap_fills == 0  # 2 and 3 were both buffered: nothing to read


async def test_the_audit_finds_a_lost_last_message(store: Store) -> None:
    sink = Sink()
    order = ordered_on(store, sink)
    game, quiet = await new_game(store), await new_game(store)
    await order.watch(game)
    await order.watch(quiet)
    [one] = await commit(store, game, 1)  # committed, its message never arrives
    await order.audit(store.last_seqs)
    await until(lambda: order.delivered(game) == 1, "found by the audit")
    assert sink.got == [(game, 1, event_json(one))]
    fills = order.gap_fills
    await order.audit(store.last_seqs)  # nothing behind: nothing read
    await settle()
    assert order.gap_fills == fills == 1


async def test_unwatched_games_get_nothing(store: Store) -> None:
    sink = Sink()
    order = ordered_on(store, sink)
    game = await new_game(store)
    order.offer(game, 1, b"never watched")
    await order.watch(game)
    assert game in order
    order.unwatch(game)
    assert game not in order
    await commit(store, game, 1, 2)
    order.offer(game, 2, b"after unwatch")
    order.fill_all()
    await order.audit(store.last_seqs)
    await settle()
    assert sink.got == []


async def test_a_second_watch_waits_for_the_first(store: Store) -> None:
    sink = Sink()
    order = ordered_on(store, sink)
    game = await new_game(store)
    await commit(store, game, 1, 2)
    gate = asyncio.Event()
    subscribed = 0

    async def subscribe() -> None:
        nonlocal subscribed
        subscribed += 1
        await gate.wait()

    first = asyncio.create_task(order.watch(game, subscribe))
    second = asyncio.create_task(order.watch(game, subscribe))
    await settle()
    assert not second.done()  # it must not return before delivered is known
    gate.set()
    assert await first is True
    assert await second is False
    assert subscribed == 1
    assert order.delivered(game) == 2


# -- with a log whose timing the test controls ------------------------------------------


@dataclass
class Log:
    """A game's log as a list; ``visible`` is how much of it a read sees (a reader that
    lags the commits), ``reads`` counts the reads."""

    events: list[LoggedEvent]
    visible: int = 0
    reads: int = 0
    gate: asyncio.Event | None = None

    async def events_since(self, game_id: int, seq: int) -> Sequence[LoggedEvent]:
        self.reads += 1
        if self.gate is not None:
            await self.gate.wait()
        return [e for e in self.events[: self.visible] if e.seq > seq]

    async def last_seq(self, game_id: int) -> int:
        return 0


def events_of(game_id: int, n: int) -> list[LoggedEvent]:
    at = datetime.now(UTC)
    return [
        Event(game_id=game_id, seq=s, kind="move", payload={"n": s}, created_at=at)
        for s in range(1, n + 1)
    ]


async def test_a_fill_reads_again_while_the_log_lags_the_message() -> None:
    sink = Sink()
    log = Log(events_of(7, 2), visible=0)
    order = OrderedDelivery(sink, log.events_since, log.last_seq, fill_delay_s=0.01)
    await order.watch(7)
    order.offer(7, 2, b"two")  # 1 is missing and the log does not show it yet
    await until(lambda: log.reads >= 2, "read again")
    assert sink.got == []
    log.visible = 2
    await until(lambda: order.delivered(7) == 2, "filled once the log caught up")
    assert sink.got == [(7, 1, event_json(log.events[0])), (7, 2, b"two")]
    assert order.gap_fills == 1


async def test_offers_during_a_fill_wait_for_it() -> None:
    sink = Sink()
    log = Log(events_of(7, 4), visible=4, gate=asyncio.Event())
    order = OrderedDelivery(sink, log.events_since, log.last_seq)
    await order.watch(7)
    order.offer(7, 3, b"three")  # starts a fill, which waits on the gate
    await settle()
    order.offer(7, 1, b"one")  # next in line, but a fill is running: buffered, not sent
    order.offer(7, 4, b"four")
    order.offer(7, 1, b"one again")
    assert sink.got == []
    assert log.reads == 1
    log.gate.set()  # type: ignore[union-attr]
    await until(lambda: order.delivered(7) == 4, "all four")
    # each once, in order; the buffered bodies are used, the log's for the one never offered
    assert sink.got == [
        (7, 1, b"one again"),
        (7, 2, event_json(log.events[1])),
        (7, 3, b"three"),
        (7, 4, b"four"),
    ]


async def test_a_gap_the_log_never_fills_is_given_up_not_stuck() -> None:
    sink = Sink()
    log = Log(events_of(7, 3), visible=0)
    order = OrderedDelivery(
        sink, log.events_since, log.last_seq, fill_attempts=3, fill_delay_s=0.001
    )
    await order.watch(7)
    order.offer(7, 3, b"three")
    await until(lambda: log.reads == 3, "three reads")
    await settle()
    await asyncio.sleep(0.05)
    assert sink.got == [] and log.reads == 3  # gave up: the buffered 3 is dropped
    order.offer(7, 1, b"one")  # and the game still flows
    order.offer(7, 2, b"two")
    assert sink.seqs(7) == [1, 2]


async def test_close_cancels_the_fills() -> None:
    sink = Sink()
    log = Log(events_of(7, 2), visible=2, gate=asyncio.Event())
    order = OrderedDelivery(sink, log.events_since, log.last_seq)
    await order.watch(7)
    order.offer(7, 2, b"two")
    await settle()
    await order.close()
    log.gate.set()  # type: ignore[union-attr]
    await settle()
    assert sink.got == []
