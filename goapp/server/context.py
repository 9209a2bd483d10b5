"""What every request handler needs, built once per process by
:func:`goapp.server.wiring.open_services` (the composition root): a plain record of the
services it built and hooked together. Handlers reach it as ``request.app[CTX]``."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from aiohttp import web

from goapp.bus import Bus
from goapp.bus.hub import Hub
from goapp.engine.bots import BotDriver, Estimator
from goapp.engine.facade import GameEngine
from goapp.engine.review import ReviewService
from goapp.game.fairplay import FairPlay
from goapp.game.service import GameService
from goapp.match.service import AutomatchService
from goapp.rating.service import RatingService
from goapp.server.auth import Revocations
from goapp.server.ratelimit import KeyedLocks, RateLimiter, SocketCounts
from goapp.settings import Settings
from goapp.store import Store
from goapp.tasks import BackgroundTasks

#: A logout drops the store's expired access revocations at most this often (seconds); a
#: start-up drops them too (``wiring._load_revocations``).
REVOCATION_PURGE_INTERVAL_S = 60.0


@dataclass(eq=False)
class ServerContext:
    settings: Settings
    #: signs the access tokens (``jwt_secret``, else DATA_DIR/jwt_secret)
    secret: bytes
    store: Store
    #: access tokens refused since a logout (filled on every instance by the bus)
    revocations: Revocations
    games: GameService
    #: this instance's WebSocket connections, rooms and presence
    hub: Hub
    #: the fan-out between instances (:class:`goapp.bus.LocalBus` with one instance)
    bus: Bus
    #: rate limits (HTTP API and chat), in Redis when there is one (see ratelimit.py)
    limiter: RateLimiter
    #: open WebSocket connections per client address and per user ("user:ID"), for the
    #: ws_max_per_ip and ws_max_per_user caps
    sockets: SocketCounts
    #: one creation at a time per user where a cap counts (challenges, bot games)
    user_locks: KeyedLocks
    ratings: RatingService
    automatch: AutomatchService
    #: abandonment, your-move notifications
    fair_play: FairPlay
    #: None: no engine configured or found (games between people only)
    engine: GameEngine | None
    bots: BotDriver
    reviews: ReviewService
    #: None without an engine
    estimator: Estimator | None
    #: the root's own background work (the rating catch-up)
    tasks: BackgroundTasks
    #: the engine's background work (resuming bot games, the lease sweep, metrics)
    engine_tasks: BackgroundTasks
    #: ``time.monotonic()`` of the last purge of the store's expired revocations
    _revocations_purged_at: float = field(default=-math.inf, init=False)

    async def revoke_user(self, user_id: int) -> None:
        """Logout, theft: refuse the user's access tokens issued until now, durably (the
        store) and on every instance (the bus), and close their sockets."""
        now_ms = time.time_ns() // 1_000_000
        await self.store.revoke_access_tokens(user_id, now_ms)
        self.bus.revoke(user_id, now_ms)
        self.hub.disconnect_user(user_id, code=1008, reason="logged out")
        # expired rows are dropped at most once per interval, not on every logout: the
        # DELETE scans the whole table (no index on not_before_ms), which made n logouts
        # within one token lifetime cost O(n^2)
        now = time.monotonic()
        if now - self._revocations_purged_at >= REVOCATION_PURGE_INTERVAL_S:
            self._revocations_purged_at = now
            await self.store.purge_access_revocations(self.revocations.horizon_ms(now_ms))

    @property
    def engine_state(self) -> str:
        """For /readyz: ``up``, ``starting``, ``tuning`` (KataGo's first start tunes OpenCL
        for minutes; bot moves wait), ``degraded`` (crashed, restarting, unreachable) or
        ``absent`` (none configured)."""
        if self.engine is None:
            return "absent"
        state = self.engine.state
        return state if state in ("up", "starting", "tuning") else "degraded"


CTX = web.AppKey("ctx", ServerContext)
