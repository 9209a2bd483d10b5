"""Event fan-out between instances: in-process (one instance) or Redis (several).

The hub (:mod:`goapp.bus.hub`) delivers frames to this instance's sockets; a bus decides
which frames reach it. The bus never imports the server: what it needs of the hub and of
the revocations is in :mod:`goapp.bus.ports`, and the frames it sends come from
:mod:`goapp.protocol`, below both.

* :class:`LocalBus` (no ``redis_url``): the hub is hooked straight to the game service's
  commits. Exactly the single-instance behaviour; ``/readyz`` reports the bus ``absent``.
* :class:`~goapp.bus.redis.RedisBus` (``redis_url`` set): commits go through an ordered
  per-game path that merges this instance's commits with the ones other instances publish
  on Redis, fills gaps from the event log, and relays lobby, chat, user frames, presence and
  token revocations. See that module and docs/scaling.md.

Both have the same small interface: :meth:`attach` (hook into the game service),
:meth:`start`, :meth:`watch` (awaited by the gateway before it reads a game's state),
:attr:`status` (for ``/readyz``), :meth:`revoke` and :meth:`close`.
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from goapp.bus.ports import LocalHub, RevocationSet
    from goapp.game.service import GameService
    from goapp.settings import Settings

__all__ = ["Bus", "LocalBus", "default_instance_id", "open_bus"]


class Bus(Protocol):
    @property
    def instance_id(self) -> str | None:
        """This instance's name among several; None with one instance."""

    @property
    def status(self) -> str: ...
    def attach(self, games: GameService) -> None: ...
    async def start(self) -> None: ...
    async def watch(self, game_id: int) -> None: ...
    def revoke(self, user_id: int, not_before_ms: int) -> None: ...
    async def close(self) -> None: ...


class LocalBus:
    """One instance: the hub is the whole bus."""

    status = "absent"
    instance_id: str | None = None

    def __init__(self, hub: LocalHub, revocations: RevocationSet | None = None) -> None:
        self.hub = hub
        self.revocations = revocations

    def attach(self, games: GameService) -> None:
        self.hub.attach(games)

    async def start(self) -> None:
        return None

    async def watch(self, game_id: int) -> None:
        return None

    def revoke(self, user_id: int, not_before_ms: int) -> None:
        if self.revocations is not None:
            self.revocations.add(user_id, not_before_ms)

    async def close(self) -> None:
        return None


def default_instance_id() -> str:
    """``HOSTNAME-PID``: unique among the instances of a deployment."""
    return f"{socket.gethostname()}-{os.getpid()}"


def open_bus(
    settings: Settings, hub: LocalHub, games: GameService, revocations: RevocationSet
) -> Bus:
    """The bus the settings ask for (not started)."""
    if not settings.redis_url:
        return LocalBus(hub, revocations)
    from goapp.bus.redis import RedisBus

    return RedisBus(
        settings.redis_url,
        hub,
        games,
        revocations,
        instance_id=settings.instance_id or default_instance_id(),
        revocation_ttl_s=settings.access_token_ttl,
    )
