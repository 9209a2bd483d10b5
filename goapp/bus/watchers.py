"""Watcher counts across instances: how many connections watch a game, everywhere.

Each instance announces its own count of a watched game on the game's channel
(``{"k": "w", "n": count}``) when it changes; ``"h": 1`` when it starts watching or
reconnects asks the others watching for theirs. A count of an instance that stopped
beating (crashed: no goodbye) is forgotten.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container

from goapp.bus.ports import LocalHub
from goapp.bus.wire import game_channel, message

__all__ = ["WatcherCounts"]


class WatcherCounts:
    """See the module docstring. ``watched`` holds the games this instance watches;
    ``send(channel, message)`` publishes."""

    def __init__(
        self,
        hub: LocalHub,
        instance_id: str,
        send: Callable[[str, bytes], None],
        watched: Container[int],
    ) -> None:
        self.hub = hub
        self.instance_id = instance_id
        self.send = send
        self.watched = watched
        #: watched game -> other instance -> (its watcher count, when it said so)
        self.counts: dict[int, dict[str, tuple[int, float]]] = {}

    def announce(self, game_id: int, local: int) -> None:
        """This instance's watcher count of a game changed (0: it stopped watching)."""
        header = {"o": self.instance_id, "k": "w", "n": local}
        self.send(game_channel(game_id), message(header))

    def hello(self, game_id: int) -> None:
        """Announce this instance's count and ask the others watching for theirs."""
        local = len(self.hub.games.get(game_id, ()))
        if local:
            header = {"o": self.instance_id, "k": "w", "n": local, "h": 1}
            self.send(game_channel(game_id), message(header))

    def remote(self, game_id: int) -> int:
        """The other instances' watchers of a game, as they last announced them."""
        return sum(n for n, _ in self.counts.get(game_id, {}).values())

    def forget(self, game_id: int) -> None:
        self.counts.pop(game_id, None)

    def received(self, game_id: int, origin: str, n: int, hello: bool) -> None:
        """Another instance's count."""
        if game_id not in self.watched:
            return  # not watched here
        counts = self.counts.setdefault(game_id, {})
        old = counts.pop(origin, (0, 0.0))[0]
        if n:
            counts[origin] = (n, time.monotonic())
        if hello:  # a newcomer (or a reconnected instance) asks: answer with ours
            local = len(self.hub.games.get(game_id, ()))
            if local:
                self.announce(game_id, local)
        if n != old:
            self.hub.deliver_watchers(game_id)

    def forget_dead(self, live: Container[str], ttl_s: float) -> None:
        """Drop the counts of instances not in ``live``. A count newer than ``ttl_s`` is
        kept: its instance may have registered after the list of live instances was read."""
        horizon = time.monotonic() - ttl_s
        for game_id, counts in list(self.counts.items()):
            dead = [i for i, (_, at) in counts.items() if i not in live and at < horizon]
            for inst in dead:
                del counts[inst]
            if dead:
                self.hub.deliver_watchers(game_id)
