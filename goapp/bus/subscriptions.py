"""Per-game subscriptions: the fan-out of committed events, resume without gaps, and the
watcher counts.

How an event reaches the sockets: :meth:`GameSubscriptions.broadcast_events` runs in the
:attr:`GameService.on_events` hook (:meth:`goapp.bus.hub.Hub.on_events`), after the commit,
under the game's lock, so it never awaits. For each event it builds the JSON once (orjson)
and the WebSocket frame once (:func:`goapp._core.encode_ws_text_frame`: unmasked,
uncompressed, so the gateway's responses use ``compress=False``), then hands the same bytes
to every subscriber's transport with ``transport.write`` (slow clients are dropped: see
:mod:`goapp.bus.conn`).

Resume without gaps: a subscription starts *buffering* (:meth:`GameSubscriptions.subscribe`):
live events are kept in a per-subscription list while the gateway sends the full state or
replays the log; :meth:`GameSubscriptions.go_live` then sends the buffered events newer than
what was sent and switches the subscription to live delivery with that seq as a floor: an
event committed before the replay read the log but published (its hook called) after it is
skipped. Every event carries ``seq``: nothing is missed, nothing is sent twice.

Watchers: each game's watcher count (of this instance, plus the other instances' as the
relay last heard them) goes to its subscribers when it changes.
"""

from __future__ import annotations

import time
from asyncio import current_task
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from goapp._core import encode_ws_text_frame
from goapp.obs.metrics import BROADCAST_DURATION
from goapp.protocol import LoggedEvent, Presence, encode_frame, event_json

if TYPE_CHECKING:
    from goapp.bus.conn import Conn
    from goapp.bus.ports import Relay

__all__ = ["GameSubscriptions"]


class GameSubscriptions:
    """Which connections watch which game, and the delivery of its events to them."""

    def __init__(self) -> None:
        # game id -> {conn: floor (live: only seqs above it are sent) or
        #             [(seq, frame), ...] (buffering while the gateway replays)}
        self.games: dict[int, dict[Conn, list[tuple[int, bytes]] | int]] = {}
        #: the other instances (the hub sets it); None: one instance
        self.relay: Relay | None = None

    def subscribe(self, conn: Conn, game_id: int) -> None:
        """Subscribe in buffering mode: live events are kept until :meth:`go_live`."""
        subs = self.games.get(game_id)
        if subs is None:
            subs = self.games[game_id] = {}
        new = conn not in subs
        subs[conn] = []
        conn.games.add(game_id)
        if new:
            self._send_watchers(game_id)

    def go_live(self, conn: Conn, game_id: int, sent_seq: int) -> None:
        """Send the buffered events after ``sent_seq`` and switch to live delivery of the
        events after the last one sent."""
        subs = self.games.get(game_id)
        if subs is None or conn not in subs:
            return
        buffered = subs[conn]
        floor = sent_seq
        if isinstance(buffered, list):
            for seq, frame in buffered:
                if seq > floor:
                    conn.send(frame)
                    floor = seq
        subs[conn] = floor

    def unsubscribe(self, conn: Conn, game_id: int) -> None:
        conn.games.discard(game_id)
        subs = self.games.get(game_id)
        if subs is None:
            return
        subs.pop(conn, None)  # may be gone already: dropped during a broadcast
        if subs:
            self._send_watchers(game_id)
        else:
            del self.games[game_id]
            if self.relay is not None:
                self.relay.watchers(game_id, 0)
                self.relay.unwatch(game_id)

    # -- events ----------------------------------------------------------------------------

    def broadcast_events(self, events: Iterable[LoggedEvent]) -> None:
        for event in events:
            if event.game_id in self.games:
                self.broadcast_body(event.game_id, event.seq, event_json(event))

    def broadcast_body(self, game_id: int, seq: int, body: bytes) -> None:
        """Hand one event (its JSON ``body``, :func:`event_json`) to the game's sockets:
        buffered for subscriptions that are replaying, written to the live ones whose floor
        is below ``seq``. The bus calls this for events committed on other instances."""
        subs = self.games.get(game_id)
        if not subs:
            return
        t0 = time.perf_counter()
        frame = encode_ws_text_frame(body)
        dead = False
        for conn, floor in subs.items():
            if floor.__class__ is not int:
                floor.append((seq, frame))  # type: ignore[union-attr]
            elif seq > floor and not conn.closed:  # Conn.send, inlined
                if conn.holder is not None:  # acting: the mover's events go with its ack
                    if conn.held is not None:
                        conn.held.append(frame)  # (whoever publishes: keep the order)
                        continue
                    if conn.holder is current_task():
                        conn.held = [frame]
                        continue
                t = conn.transport
                if not t.is_closing():
                    t.write(frame)
                    if t.get_write_buffer_size() > conn.limit:
                        conn.abort("slow")
                        dead = True
        if dead:
            self._forget_closed(subs)
        BROADCAST_DURATION.observe(time.perf_counter() - t0)

    def send_frame(self, game_id: int, frame: bytes) -> None:
        """A frame for every live subscriber of a game (chat, watcher counts)."""
        subs = self.games.get(game_id)
        if subs:
            for conn, floor in list(subs.items()):
                if floor.__class__ is int:
                    conn.send(frame)

    @staticmethod
    def _forget_closed(subs: dict[Conn, Any]) -> None:
        # dropped connections stop receiving now; the gateway unregisters them fully
        for conn in [c for c in subs if c.closed]:
            del subs[conn]

    # -- watcher counts --------------------------------------------------------------------

    def watchers(self, game_id: int) -> int:
        """How many connections watch ``game_id`` (players included), on every instance
        while the relay is up (the others' counts as they last announced them)."""
        local = len(self.games.get(game_id, ()))
        if self.relay is None:
            return local
        return local + self.relay.remote_watchers(game_id)

    def deliver_watchers(self, game_id: int) -> None:
        """Another instance's count for ``game_id`` changed: tell the local watchers."""
        if game_id in self.games:
            self._send_count(game_id)

    def _send_watchers(self, game_id: int) -> None:
        """This instance's count for ``game_id`` changed: announce it, tell the watchers."""
        if self.relay is not None:
            self.relay.watchers(game_id, len(self.games.get(game_id, ())))
        self._send_count(game_id)

    def _send_count(self, game_id: int) -> None:
        if self.games.get(game_id):
            frame = Presence(game_id=game_id, watchers=self.watchers(game_id))
            self.send_frame(game_id, encode_frame(frame))
