"""What the bus needs of the layers it serves, as protocols (so that it imports none of them).

:class:`goapp.server.hub.Hub` is a :class:`LocalHub` and :class:`goapp.server.auth.Revocations`
a :class:`RevocationSet`; the composition root (:mod:`goapp.server.wiring`) hands them in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sized
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from goapp.game.service import GameService

__all__ = ["LocalHub", "RevocationSet"]


class LocalHub(Protocol):
    """This instance's connections, as the bus sees them: who is here, and the
    ``deliver_*`` methods that hand the other instances' frames to them."""

    #: the other instances (the bus sets itself here while it runs)
    relay: Any

    @property
    def games(self) -> Mapping[int, Sized]:
        """Watched game -> its local subscriptions."""

    @property
    def user_conns(self) -> Mapping[int, int]:
        """User id -> open connections here."""

    @property
    def user_names(self) -> Mapping[int, str]: ...
    @property
    def guests(self) -> int: ...

    def attach(self, games: GameService) -> None: ...
    def broadcast_body(self, game_id: int, seq: int, body: bytes) -> None: ...
    def deliver_room(self, room: str, frame: bytes) -> None: ...
    def deliver_lobby(self, frame: bytes, direct: set[int], private: bool = False) -> None: ...
    def deliver_user(self, user_id: int, frame: bytes) -> int: ...
    def deliver_disconnect(self, user_id: int, code: int, reason: str) -> int: ...
    def deliver_presence(self, user_id: int, name: str, online: bool, *, fire: bool) -> None: ...
    def deliver_watchers(self, game_id: int) -> None: ...
    def send_lobby_frame(self, obj: dict[str, Any]) -> None: ...
    def presence_snapshot(self) -> dict[str, Any]: ...


class RevocationSet(Protocol):
    """Users whose access tokens issued before a time are refused."""

    def add(self, user_id: int, not_before_ms: int) -> None: ...
