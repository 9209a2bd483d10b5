"""Fair play and correspondence, the server-side wiring: presence -> abandonment events,
and "your move" notifications in correspondence games.

:class:`FairPlay` sits between the WebSocket hub and :class:`~goapp.game.service.GameService`
without importing the server (it takes the hub's ``on_presence`` list and ``send_user``):

* **Presence.** The hub calls ``on_presence(user_id, online)`` when a user's first
  connection opens or last one closes (once, on one instance, for the whole cluster). Each
  call is turned into :meth:`GameService.presence_changed` in a task; the tasks of one user
  run one after the other, in the order the news came (a quick disconnect-reconnect never
  ends as "away"). The service writes ``player_left`` / ``player_returned`` into the user's
  live games (conditional appends: exactly once), and everything else (who may claim the
  win, when) follows from the log. See docs/game-lifecycle.md, "Abandonment".
* **Notifications.** A ``GameService.on_events`` hook: when a move or a pass is committed in
  a correspondence game (or such a game starts), the player now to move gets
  ``{"type": "notify", "kind": "your_move", "game_id", "opponent": {"id", "name"},
  "deadline_ms"}`` on every connection (``send_user``, which crosses instances). The hook
  runs under the game's lock, so it only schedules the sending. See docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from goapp.game.events import GameStarted, Move, Pass, StoredEvent
from goapp.game.service import GameService
from goapp.protocol import Notify, UserRef
from goapp.store import NotFoundError
from goapp.tasks import BackgroundTasks

__all__ = ["FairPlay"]

log = logging.getLogger("goapp.game")

SendUser = Callable[[int, Notify], Any]


class FairPlay:
    """See the module docstring. ``attach(on_presence)`` subscribes to the hub's presence
    callbacks and to the game service's events; ``close()`` cancels what is in flight."""

    def __init__(self, games: GameService, send_user: SendUser) -> None:
        self.games = games
        self.send_user = send_user
        self._tasks = BackgroundTasks()
        self._user_locks: dict[int, asyncio.Lock] = {}
        self._pending: dict[int, int] = {}
        self._presence_lists: list[list[Callable[[int, bool], None]]] = []
        self._closed = False

    # -- wiring --------------------------------------------------------------------------

    def attach(self, on_presence: list[Callable[[int, bool], None]] | None = None) -> FairPlay:
        if on_presence is not None and self.on_presence not in on_presence:
            on_presence.append(self.on_presence)
            self._presence_lists.append(on_presence)
        if self.on_events not in self.games.on_events:
            self.games.on_events.append(self.on_events)
        return self

    def detach(self) -> None:
        for lst in self._presence_lists:
            with contextlib.suppress(ValueError):
                lst.remove(self.on_presence)
        self._presence_lists.clear()
        with contextlib.suppress(ValueError):
            self.games.on_events.remove(self.on_events)

    async def close(self) -> None:
        self._closed = True
        self.detach()
        await self._tasks.cancel_all()

    async def wait_idle(self) -> None:
        """Wait for the scheduled work (tests)."""
        await self._tasks.wait_idle()

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        self._tasks.spawn(coro, name=name)

    # -- presence ------------------------------------------------------------------------

    def on_presence(self, user_id: int, online: bool) -> None:
        """The hub's callback (synchronous): schedule the presence events."""
        if self._closed:
            return
        lock = self._user_locks.setdefault(user_id, asyncio.Lock())
        self._pending[user_id] = self._pending.get(user_id, 0) + 1
        self._spawn(self._presence(user_id, online, lock), f"presence:{user_id}")

    async def _presence(self, user_id: int, online: bool, lock: asyncio.Lock) -> None:
        try:
            async with lock:  # FIFO: a user's news are applied in the order they came
                await self.games.presence_changed(user_id, online)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("presence events for user %s failed", user_id)
        finally:
            left = self._pending.get(user_id, 1) - 1
            if left <= 0:
                self._pending.pop(user_id, None)
                self._user_locks.pop(user_id, None)
            else:
                self._pending[user_id] = left

    # -- notifications -------------------------------------------------------------------

    async def on_events(self, events: list[StoredEvent]) -> None:
        """The ``on_events`` hook: schedule a "your move" notification when a turn of a
        correspondence game passed to a player."""
        if self._closed or not events:
            return
        if not any(isinstance(e.event, Move | Pass | GameStarted) for e in events):
            return
        state = self.games.cached_state(events[0].game_id)
        if state is None or not state.is_correspondence or state.last_seq != events[-1].seq:
            return
        to_move = state.to_move_id()
        if to_move is None:  # scoring, over, or a bot to move
            return
        mover = state.white_id if state.to_move == "black" else state.black_id
        clock = events[-1].event.clock
        deadline = clock.deadline_ms if clock is not None else None
        self._spawn(
            self._notify(state.game_id, to_move, mover, deadline), f"notify:{state.game_id}"
        )

    async def _notify(
        self, game_id: int, user_id: int, opponent_id: int | None, deadline_ms: int | None
    ) -> None:
        opponent: UserRef | None = None
        if opponent_id is not None:
            try:
                user = await self.games.store.get_user(opponent_id)
                opponent = UserRef(user.id, user.name)
            except NotFoundError:
                opponent = UserRef(opponent_id, None)
            except Exception:
                log.exception("notification for game %s: opponent lookup failed", game_id)
                opponent = UserRef(opponent_id, None)
        try:
            self.send_user(
                user_id,
                Notify(
                    kind="your_move",
                    game_id=game_id,
                    opponent=opponent,
                    deadline_ms=deadline_ms,
                ),
            )
        except Exception:
            log.exception("notification for game %s failed", game_id)
