"""Per-game ordered delivery: every event of a watched game, in seq order, exactly once.

Pure logic with no Redis in it: :class:`OrderedDelivery` is fed events (``offer``: this
instance's commits at once, the other instances' from Redis, in any order, some twice, some
never) and hands them on in order (``deliver``), reading from the event log (``events_since``)
whatever is missing. The pub/sub that feeds it is at-most-once; the log decides.

Each watched game has a :class:`GameSync` with ``delivered``, the last seq handed on.
``seq <= delivered`` is dropped, ``delivered + 1`` is delivered and drains what was buffered,
anything later is buffered and the gap is filled from the log (one task per game at a time;
while it runs, offers are buffered). :meth:`OrderedDelivery.watch` is awaited before the
caller reads the game's state: it runs ``subscribe`` (make sure the feed has started) and
only then reads ``delivered`` from the log, so every event after it comes through an offer
or a fill. A message lost with no later event to reveal it is found by :meth:`audit`, which
compares the log's ``last_seq`` of every watched game with ``delivered``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

from goapp.obs import metrics
from goapp.protocol import LoggedEvent, event_json

__all__ = ["GameSync", "OrderedDelivery"]

log = logging.getLogger("goapp.bus")

#: ``deliver(game_id, seq, body)``: hand one event on (``body`` is its JSON)
Deliver = Callable[[int, int, bytes], None]
#: ``events_since(game_id, seq)``: the committed events after ``seq``, in order
EventsSince = Callable[[int, int], Awaitable[Sequence[LoggedEvent]]]
#: ``last_seq(game_id)``: the seq of the game's last committed event
LastSeq = Callable[[int], Awaitable[int]]
#: ``last_seqs(game_ids)``: ``last_seq`` of each existing game, in one query
LastSeqs = Callable[[list[int]], Awaitable[Mapping[int, int]]]


class GameSync:
    """The ordered delivery state of one watched game."""

    __slots__ = ("delivered", "filling", "pending", "ready")

    def __init__(self) -> None:
        self.delivered: int | None = None  # None until watch() has read it from the log
        self.pending: dict[int, bytes] = {}
        self.filling: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()


async def _nothing() -> None:
    return None


class OrderedDelivery:
    """See the module docstring. ``fill_attempts`` reads of the log (``fill_delay_s``
    apart, doubling up to a second, while the log lags a message) before a gap is given up
    and the events buffered behind it are dropped."""

    def __init__(
        self,
        deliver: Deliver,
        events_since: EventsSince,
        last_seq: LastSeq,
        *,
        encode: Callable[[LoggedEvent], bytes] = event_json,
        fill_attempts: int = 20,
        fill_delay_s: float = 0.05,
    ) -> None:
        self.deliver = deliver
        self.events_since = events_since
        self.last_seq = last_seq
        self.encode = encode
        self.fill_attempts = fill_attempts
        self.fill_delay_s = fill_delay_s
        self.syncs: dict[int, GameSync] = {}
        self._fills: set[asyncio.Task[None]] = set()
        #: how many fills from the log ran
        self.gap_fills = 0

    def __contains__(self, game_id: object) -> bool:
        return game_id in self.syncs

    def games(self) -> list[int]:
        """The watched games."""
        return list(self.syncs)

    def delivered(self, game_id: int) -> int | None:
        """The last seq delivered for ``game_id`` (None: not watched or not started)."""
        sync = self.syncs.get(game_id)
        return None if sync is None else sync.delivered

    async def watch(
        self, game_id: int, subscribe: Callable[[], Awaitable[None]] = _nothing
    ) -> bool:
        """Start delivering ``game_id`` (or wait until the watch in progress is done):
        ``subscribe``, then read ``delivered`` from the log. True when this call started
        it and it still holds (not unwatched meanwhile)."""
        sync = self.syncs.get(game_id)
        if sync is not None:
            if not sync.ready.is_set():
                await sync.ready.wait()
            return False
        sync = self.syncs[game_id] = GameSync()
        try:
            await subscribe()
            try:
                delivered = await self.last_seq(game_id)
            except Exception:  # no such game (the gateway answers that), store trouble
                delivered = 0
            if self.syncs.get(game_id) is not sync:
                return False
            sync.delivered = delivered
            self._drain(game_id, sync)
            return True
        finally:
            sync.ready.set()

    def unwatch(self, game_id: int) -> None:
        """Stop delivering ``game_id`` (a fill in progress is cancelled)."""
        sync = self.syncs.pop(game_id, None)
        if sync is not None and sync.filling is not None:
            sync.filling.cancel()

    def offer(self, game_id: int, seq: int, body: bytes) -> None:
        """An event, from anywhere, in any order, maybe again: delivered when it is next."""
        sync = self.syncs.get(game_id)
        if sync is None:
            return
        delivered = sync.delivered
        if delivered is None or sync.filling is not None:
            if delivered is None or seq > delivered:
                sync.pending[seq] = body
            return
        if seq <= delivered:
            return
        if seq == delivered + 1:
            self.deliver(game_id, seq, body)
            sync.delivered = seq
            if sync.pending:
                self._drain(game_id, sync)
            return
        sync.pending[seq] = body
        self._fill(game_id, sync)

    def fill(self, game_id: int) -> None:
        """Read what the log has after ``delivered`` (a feed may have missed it)."""
        sync = self.syncs.get(game_id)
        if sync is not None:
            self._fill(game_id, sync)

    def fill_all(self) -> None:
        """Fill every watched game from the log (after the feed was cut off)."""
        for game_id, sync in list(self.syncs.items()):
            if sync.delivered is not None:
                self._fill(game_id, sync)

    async def audit(self, last_seqs: LastSeqs) -> None:
        """Compare each watched game's ``last_seq`` in the log (``last_seqs``: one query)
        with what was delivered, and fill what is behind. This catches the lost messages
        no later event reveals. Errors of ``last_seqs`` propagate."""
        ids = [g for g, s in self.syncs.items() if s.delivered is not None]
        if not ids:
            return
        last = await last_seqs(ids)
        for game_id, seq in last.items():
            sync = self.syncs.get(game_id)
            if sync is not None and sync.delivered is not None and seq > sync.delivered:
                self._fill(game_id, sync)

    async def close(self) -> None:
        """Stop: forget every game (a cancelled fill must not start another one) and cancel
        the fills in progress."""
        self.syncs.clear()
        fills = list(self._fills)
        for task in fills:
            task.cancel()
        for task in fills:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _drain(self, game_id: int, sync: GameSync) -> None:
        assert sync.delivered is not None
        pending = sync.pending
        while pending:
            nxt = sync.delivered + 1
            body = pending.pop(nxt, None)
            if body is None:
                break
            self.deliver(game_id, nxt, body)
            sync.delivered = nxt
        for seq in [s for s in pending if s <= sync.delivered]:
            del pending[seq]
        if pending:
            self._fill(game_id, sync)

    def _fill(self, game_id: int, sync: GameSync) -> None:
        if sync.filling is None and sync.delivered is not None:
            task = asyncio.get_running_loop().create_task(
                self._fill_from_log(game_id, sync), name=f"bus-fill-{game_id}"
            )
            sync.filling = task
            self._fills.add(task)
            task.add_done_callback(self._fills.discard)

    async def _fill_from_log(self, game_id: int, sync: GameSync) -> None:
        """Deliver the events after ``delivered`` from the log, then what was buffered."""
        self.gap_fills += 1
        metrics.BUS_GAP_FILLS.inc()
        delay = self.fill_delay_s
        try:
            for _ in range(self.fill_attempts):
                assert sync.delivered is not None
                try:
                    events = await self.events_since(game_id, sync.delivered)
                except Exception as exc:
                    log.warning("gap fill failed", extra={"game_id": game_id, "error": str(exc)})
                    events = []
                for event in events:
                    if event.seq == sync.delivered + 1:
                        body = sync.pending.pop(event.seq, None) or self.encode(event)
                        self.deliver(game_id, event.seq, body)
                        sync.delivered = event.seq
                for seq in [s for s in sync.pending if s <= sync.delivered]:
                    del sync.pending[seq]
                if not sync.pending or min(sync.pending) == sync.delivered + 1:
                    return
                await asyncio.sleep(delay)  # the log lags the message: read again
                delay = min(delay * 2, 1.0)
            log.warning("gap not filled; dropping buffered events", extra={"game_id": game_id})
            sync.pending.clear()
        finally:
            if sync.filling is asyncio.current_task():
                sync.filling = None
                if sync.pending and self.syncs.get(game_id) is sync:
                    self._drain(game_id, sync)
