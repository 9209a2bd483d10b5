"""What every request handler needs, built once per process: settings, store, game service,
token secret, the engine and its users (bots, score estimates, reviews). Handlers reach it
as ``request.app[CTX]``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from goapp.bus import Bus, LocalBus, open_bus
from goapp.engine.bots import BotDriver, Estimator
from goapp.engine.errors import EngineError
from goapp.engine.facade import GameEngine, open_engine
from goapp.engine.review import ReviewService
from goapp.game.fairplay import FairPlay
from goapp.game.service import GameService
from goapp.match.service import AutomatchService
from goapp.obs import metrics
from goapp.private_files import make_private_dir
from goapp.rating.service import RatingService
from goapp.server.auth import Revocations, load_or_create_secret
from goapp.server.hub import Hub
from goapp.server.ratelimit import KeyedLocks, RateLimiter, SocketCounts
from goapp.settings import Settings, SettingsError
from goapp.store import Store, open_store

log = logging.getLogger("goapp.server")

#: How long a shutdown waits for the engine to stop.
ENGINE_CLOSE_TIMEOUT_S = 10.0


@dataclass(eq=False)
class ServerContext:
    settings: Settings
    store: Store
    games: GameService
    secret: bytes
    hub: Hub = field(default_factory=Hub)
    engine: GameEngine | None = None
    bots: BotDriver | None = None
    reviews: ReviewService | None = None
    estimator: Estimator | None = None
    ratings: RatingService | None = None
    automatch: AutomatchService | None = None
    fair_play: FairPlay | None = None  # abandonment, your-move notifications
    #: access tokens refused since a logout (filled on every instance by the bus)
    revocations: Revocations = field(default_factory=lambda: Revocations(900))
    #: rate limits (HTTP API and chat), in Redis when there is one (see ratelimit.py)
    limiter: RateLimiter = field(default_factory=RateLimiter)
    #: open WebSocket connections per client address and per user ("user:ID"), for the
    #: ws_max_per_ip and ws_max_per_user caps
    sockets: SocketCounts = field(default_factory=SocketCounts)
    #: one creation at a time per user where a cap counts (challenges, bot games)
    user_locks: KeyedLocks = field(default_factory=KeyedLocks)
    #: the fan-out between instances (:class:`LocalBus` with one instance)
    bus: Bus = field(init=False)
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    _rating_catch_up: asyncio.Task[None] = field(init=False, repr=False)

    @classmethod
    async def open(cls, settings: Settings, *, search_cwd: bool = False) -> ServerContext:
        """Create the data directory, open and migrate the store, load the token secret,
        start the engine in the background (``search_cwd``: also look for a KataGo
        installation in ./.katago, as ``goapp serve`` does)."""
        make_private_dir(settings.data_dir)  # 0700 whatever the umask
        if settings.jwt_secret:
            secret = _secret_from_setting(settings.jwt_secret)
        else:
            secret = load_or_create_secret(settings.data_dir / "jwt_secret")
        store = await open_store(
            settings.effective_database_url, synchronous=settings.sqlite_synchronous
        )
        games = GameService(
            store,
            abandon_timeout_ms=settings.abandon_timeout_s * 1000,
            scoring_timeout_ms=settings.scoring_timeout_s * 1000,
        )
        ctx = cls(settings=settings, store=store, games=games, secret=secret)
        ctx.revocations = Revocations(settings.access_token_ttl)
        await ctx.load_revocations()
        ctx.bus = open_bus(settings, ctx.hub, ctx.games, ctx.revocations)
        await ctx.bus.start()
        # several instances: rate-limit buckets in Redis, shared by all
        ctx.limiter.shared = getattr(ctx.bus, "buckets", None)
        ctx.start_ratings()
        ctx.start_automatch()
        # abandonment (player_left on a global disconnect) and your-move notifications
        ctx.fair_play = FairPlay(ctx.games, ctx.hub.send_user).attach(ctx.hub.on_presence)
        try:
            engine = open_engine(settings, search_cwd=search_cwd, on_latency=_observe_latency)
        except EngineError as exc:
            log.error(
                "engine not available; playing the computer is off", extra={"error": str(exc)}
            )
            engine = None
        await ctx.start_engine(engine)
        return ctx

    def __post_init__(self) -> None:
        self.bus = LocalBus(self.hub, self.revocations)

    async def load_revocations(self) -> None:
        """Refuse again the access tokens revoked before this start (a restart must not
        bring a logged-out token back), after pruning the revocations that have outlived
        every token they refuse."""
        horizon = self.revocations.horizon_ms(time.time_ns() // 1_000_000)
        await self.store.purge_access_revocations(horizon)
        for user_id, not_before_ms in (await self.store.access_revocations(horizon)).items():
            self.revocations.add(user_id, not_before_ms)

    async def revoke_user(self, user_id: int) -> None:
        """Logout, theft: refuse the user's access tokens issued until now, durably (the
        store) and on every instance (the bus), and close their sockets."""
        now_ms = time.time_ns() // 1_000_000
        await self.store.revoke_access_tokens(user_id, now_ms)
        self.bus.revoke(user_id, now_ms)
        self.hub.disconnect_user(user_id, code=1008, reason="logged out")
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

    async def start_engine(self, engine: GameEngine | None) -> None:
        """Use ``engine``: start it in the background (never waits for KataGo to load),
        attach the bot driver, resume bot games whose bot is to move. A previous engine's
        driver and reviews are stopped (the engine itself is the caller's to close)."""
        await self._stop_tasks()
        if self.bots is not None:
            await self.bots.close()
        if self.reviews is not None:
            await self.reviews.close()
        self.engine = engine
        # several instances: bot turns are leased (one instance thinks), and a sweep takes
        # over the games of an instance that died mid-turn
        holder = self.bus.instance_id
        self.bots = BotDriver(self.games, engine, holder=holder)
        self.reviews = ReviewService(self.store, self.games, engine)
        self.estimator = (
            None if engine is None else Estimator(engine, max_waiting=self.settings.estimate_queue)
        )
        if engine is None:
            metrics.ENGINE_UP.set(0)
            return
        self.bots.attach()
        await engine.start()
        log.info("engine starting", extra={"engine": engine.kind})
        self._tasks.append(asyncio.create_task(self._resume_bots(), name="bots-resume"))
        if holder is not None:
            self._tasks.append(asyncio.create_task(self.bots.sweep(), name="bots-sweep"))
        self._tasks.append(asyncio.create_task(self._sample_engine(), name="engine-metrics"))

    def start_ratings(self) -> None:
        """Rate games as they finish, and (in the background) those a crash left unrated."""
        self.ratings = RatingService(self.store, self.games)
        self.ratings.attach()
        self._rating_catch_up = asyncio.create_task(self._catch_up_ratings(), name="ratings")

    def start_automatch(self) -> None:
        """The automatch service and its periodic re-examination of waiting requests."""
        self.automatch = AutomatchService(
            self.store,
            self.games,
            send=self.hub.send_user,
            online=self.hub.presence_of,
            offline_cancel_s=self.settings.automatch_offline_cancel_s,
        )
        self.automatch.start(self.settings.automatch_interval_s)

    async def _catch_up_ratings(self) -> None:
        assert self.ratings is not None
        try:
            n = await self.ratings.catch_up()
        except Exception:
            log.exception("rating catch-up failed")
            return
        if n:
            log.info("rated games missed before the start", extra={"games": n})

    async def _resume_bots(self) -> None:
        assert self.bots is not None
        try:
            await self.bots.resume()
        except Exception:
            log.exception("resuming bot games failed")

    async def _sample_engine(self, interval: float = 2.0) -> None:
        """Copy the engine's counters into the Prometheus metrics."""
        restarts = 0
        while self.engine is not None:
            try:
                st = self.engine.stats()
                metrics.ENGINE_QUEUE_DEPTH.set(st.get("queue_depth") or 0)
                vps = st.get("last_visits_per_second")
                if vps is not None:
                    metrics.ENGINE_VISITS_PER_SECOND.set(vps)
                now = int(st.get("restarts") or 0)
                if now > restarts:
                    metrics.ENGINE_RESTARTS.inc(now - restarts)
                restarts = now
                metrics.ENGINE_UP.set(1 if self.engine_state == "up" else 0)
            except Exception:
                log.exception("engine metrics failed")
            await asyncio.sleep(interval)

    async def _stop_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def close(self) -> None:
        await self._stop_tasks()
        if self.automatch is not None:
            await self.automatch.close()
        if self.fair_play is not None:
            await self.fair_play.close()
        await self.bus.close()
        if self.ratings is not None:
            self._rating_catch_up.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._rating_catch_up
            await self.ratings.close()
        await self.stop_engine()
        await self.store.close()

    async def stop_engine(self) -> None:
        """Stop the bots, the reviews and the engine. A shutdown does this first, before it
        waits for the HTTP requests in flight: a request waiting for the engine (a score
        estimate) then fails at once with 503 instead of holding the exit. Safe to call
        again (``close`` does)."""
        if self.bots is not None:
            await self.bots.close()
        if self.reviews is not None:
            await self.reviews.close()
        if self.engine is not None:
            # The engine kills its process group within seconds, even when this wait runs
            # out and cancels the close; the store must still finish (it drains the queued
            # writes), so only the engine's close is bounded.
            try:
                await asyncio.wait_for(self.engine.close(), ENGINE_CLOSE_TIMEOUT_S)
            except TimeoutError:
                log.warning("the engine did not stop in time; continuing the shutdown")


_PRIORITY_LABELS = {100: "bot", 50: "score", 0: "review"}


def _observe_latency(seconds: float, priority: int) -> None:
    metrics.ENGINE_QUERY_SECONDS.labels(
        priority=_PRIORITY_LABELS.get(priority, str(priority))
    ).observe(seconds)


def _secret_from_setting(value: str) -> bytes:
    """Hex (``openssl rand -hex 32``) or, failing that, the text's bytes; at least 32 bytes."""
    try:
        secret = bytes.fromhex(value)
    except ValueError:
        secret = value.encode()
    if len(secret) < 32:
        raise SettingsError("jwt_secret must be at least 32 bytes (64 hex digits)")
    return secret


CTX = web.AppKey("ctx", ServerContext)
