"""The composition root: :func:`open_services` builds every service of a server process and
attaches every hook between them, in one place and in an order that matters;
:func:`close_services` takes them down in the reverse order. What they build is a plain
record, :class:`~goapp.server.context.ServerContext`; the HTTP routes, the WebSocket gateway
and the app factories only read it.

The hooks, all attached here:

* ``GameService.on_events`` (after each commit, in this order): the bus (fan-out to this
  instance's sockets and, with Redis, to the other instances), ratings, fair play, the bot
  driver;
* ``Hub.on_presence`` (a user's first socket opens, the last one closes): fair play;
* ``RateLimiter.shared``: buckets in Redis, on the bus's connection (several instances).

Left to the apps: the hub's ping/idle ticker runs while an app serves WebSockets, and the
app's shutdown closes them (:func:`goapp.server.ws.setup_routes`).
"""

from __future__ import annotations

import asyncio
import logging
import time

from goapp.bus import open_bus
from goapp.bus.hub import Hub
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
from goapp.server.auth import Revocations, load_or_create_secret, secret_from_setting
from goapp.server.context import ServerContext
from goapp.server.ratelimit import KeyedLocks, RateLimiter, SharedBuckets, SocketCounts
from goapp.settings import Settings
from goapp.store import Store, open_store
from goapp.tasks import BackgroundTasks

__all__ = ["ENGINE_CLOSE_TIMEOUT_S", "close_services", "open_services", "stop_engine", "use_engine"]

log = logging.getLogger("goapp.server")

#: How long a shutdown waits for the engine to stop.
ENGINE_CLOSE_TIMEOUT_S = 10.0


async def open_services(settings: Settings, *, search_cwd: bool = False) -> ServerContext:
    """Build and start every service of a server process (``search_cwd``: also look for a
    KataGo installation in ./.katago, as ``goapp serve`` does). Never waits for the engine:
    KataGo loads (or tunes) in the background while the server already serves."""
    # The secret first: a bad jwt_secret is a configuration error before anything opens.
    make_private_dir(settings.data_dir)  # 0700 whatever the umask
    if settings.jwt_secret:
        secret = secret_from_setting(settings.jwt_secret)
    else:
        secret = load_or_create_secret(settings.data_dir / "jwt_secret")

    # The store (opened and migrated): every service below reads or writes it.
    store = await open_store(
        settings.effective_database_url, synchronous=settings.sqlite_synchronous
    )

    # The revocations of earlier runs, before any token can be checked: a restart must not
    # bring a logged-out token back.
    revocations = Revocations(settings.access_token_ttl)
    await _load_revocations(store, revocations)

    games = GameService(
        store,
        abandon_timeout_ms=settings.abandon_timeout_s * 1000,
        scoring_timeout_ms=settings.scoring_timeout_s * 1000,
    )
    hub = Hub()

    # The bus is hooked to the game service before anything below can commit (automatch
    # pairings, bot moves), so every commit reaches the sockets and the other instances.
    bus = open_bus(settings, hub, games, revocations)
    bus.attach(games)
    await bus.start()
    limiter = RateLimiter()
    if settings.redis_url:  # several instances: the buckets live in Redis, on the bus's link
        from goapp.bus.redis import RedisBus  # (redis is imported only when it is used)

        assert isinstance(bus, RedisBus)
        limiter.shared = SharedBuckets(bus.redis, lambda: bus.up)

    # Rate games as they finish and, in the background, those a crash left unrated.
    tasks = BackgroundTasks()
    ratings = RatingService(store, games)
    ratings.attach()
    tasks.spawn(_catch_up_ratings(ratings), name="ratings")

    # Automatch sends its frames through the hub and asks it who is online.
    automatch = AutomatchService(
        store,
        games,
        send=hub.send_user,
        online=hub.presence_of,
        offline_cancel_s=settings.automatch_offline_cancel_s,
    )
    automatch.start(settings.automatch_interval_s)

    # Abandonment (player_left on a global disconnect) and your-move notifications.
    fair_play = FairPlay(games, hub.send_user).attach(hub.on_presence)

    # The engine last: its bot driver needs the bus's instance id (bot turns are leased
    # when there are several instances) and resumes bot games, which commits moves.
    engine = _open_engine(settings, search_cwd)
    bots, reviews, estimator = _engine_users(settings, store, games, engine, bus.instance_id)
    ctx = ServerContext(
        settings=settings,
        secret=secret,
        store=store,
        revocations=revocations,
        games=games,
        hub=hub,
        bus=bus,
        limiter=limiter,
        sockets=SocketCounts(),
        user_locks=KeyedLocks(),
        ratings=ratings,
        automatch=automatch,
        fair_play=fair_play,
        engine=engine,
        bots=bots,
        reviews=reviews,
        estimator=estimator,
        tasks=tasks,
        engine_tasks=BackgroundTasks(),
    )
    await _start_engine(ctx)
    return ctx


async def close_services(ctx: ServerContext) -> None:
    """Stop what :func:`open_services` started, in the reverse order; the store last, as it
    finishes the queued writes of everything above it."""
    await ctx.engine_tasks.cancel_all()
    await stop_engine(ctx)
    await ctx.fair_play.close()
    await ctx.automatch.close()
    await ctx.tasks.cancel_all()
    await ctx.ratings.close()
    await ctx.bus.close()
    await ctx.store.close()


async def stop_engine(ctx: ServerContext) -> None:
    """Stop the bots, the reviews and the engine. A shutdown does this first, before it
    waits for the HTTP requests in flight: a request waiting for the engine (a score
    estimate) then fails at once with 503 instead of holding the exit. Safe to call
    again (:func:`close_services` does)."""
    await ctx.bots.close()
    await ctx.reviews.close()
    if ctx.engine is not None:
        # The engine kills its process group within seconds, even when this wait runs
        # out and cancels the close; the store must still finish (it drains the queued
        # writes), so only the engine's close is bounded.
        try:
            await asyncio.wait_for(ctx.engine.close(), ENGINE_CLOSE_TIMEOUT_S)
        except TimeoutError:
            log.warning("the engine did not stop in time; continuing the shutdown")


async def use_engine(ctx: ServerContext, engine: GameEngine | None) -> None:
    """Replace the engine and what is built on it (bot driver, reviews, estimates), as a
    test does to bring an engine in after the start. The previous driver and reviews are
    stopped; the previous engine itself is the caller's to close."""
    await ctx.engine_tasks.cancel_all()
    await ctx.bots.close()
    await ctx.reviews.close()
    ctx.engine = engine
    ctx.bots, ctx.reviews, ctx.estimator = _engine_users(
        ctx.settings, ctx.store, ctx.games, engine, ctx.bus.instance_id
    )
    await _start_engine(ctx)


async def _load_revocations(store: Store, revocations: Revocations) -> None:
    """Refuse again the access tokens revoked before this start, after pruning the
    revocations that have outlived every token they refuse."""
    horizon = revocations.horizon_ms(time.time_ns() // 1_000_000)
    await store.purge_access_revocations(horizon)
    for user_id, not_before_ms in (await store.access_revocations(horizon)).items():
        revocations.add(user_id, not_before_ms)


# -- the engine ----------------------------------------------------------------------------


def _open_engine(settings: Settings, search_cwd: bool) -> GameEngine | None:
    """The engine the settings ask for; none (logged) when it cannot be had: games between
    people go on without it."""
    try:
        return open_engine(settings, search_cwd=search_cwd, on_latency=_observe_latency)
    except EngineError as exc:
        log.error("engine not available; playing the computer is off", extra={"error": str(exc)})
        return None


def _engine_users(
    settings: Settings,
    store: Store,
    games: GameService,
    engine: GameEngine | None,
    holder: str | None,
) -> tuple[BotDriver, ReviewService, Estimator | None]:
    """The services over the engine (they answer "no engine" without one). ``holder``:
    this instance's id among several, under which bot turns are leased."""
    bots = BotDriver(games, engine, holder=holder)
    reviews = ReviewService(store, games, engine)
    estimator = None if engine is None else Estimator(engine, max_waiting=settings.estimate_queue)
    return bots, reviews, estimator


async def _start_engine(ctx: ServerContext) -> None:
    """Start the engine in the background (never waits for KataGo to load), hook the bot
    driver to the game service, resume the bot games whose bot is to move."""
    engine = ctx.engine
    if engine is None:
        metrics.ENGINE_UP.set(0)
        return
    ctx.bots.attach()
    await engine.start()
    log.info("engine starting", extra={"engine": engine.kind})
    ctx.engine_tasks.spawn(_resume_bots(ctx.bots), name="bots-resume")
    if ctx.bus.instance_id is not None:
        # several instances: a sweep takes over the games of an instance that died mid-turn
        ctx.engine_tasks.spawn(ctx.bots.sweep(), name="bots-sweep")
    ctx.engine_tasks.spawn(_sample_engine(ctx), name="engine-metrics")


async def _resume_bots(bots: BotDriver) -> None:
    try:
        await bots.resume()
    except Exception:
        log.exception("resuming bot games failed")


async def _catch_up_ratings(ratings: RatingService) -> None:
    try:
        n = await ratings.catch_up()
    except Exception:
        log.exception("rating catch-up failed")
        return
    if n:
        log.info("rated games missed before the start", extra={"games": n})


async def _sample_engine(ctx: ServerContext, interval: float = 2.0) -> None:
    """Copy the engine's counters into the Prometheus metrics."""
    restarts = 0
    while ctx.engine is not None:
        try:
            st = ctx.engine.stats()
            metrics.ENGINE_QUEUE_DEPTH.set(st.get("queue_depth") or 0)
            vps = st.get("last_visits_per_second")
            if vps is not None:
                metrics.ENGINE_VISITS_PER_SECOND.set(vps)
            now = int(st.get("restarts") or 0)
            if now > restarts:
                metrics.ENGINE_RESTARTS.inc(now - restarts)
            restarts = now
            metrics.ENGINE_UP.set(1 if ctx.engine_state == "up" else 0)
        except Exception:
            log.exception("engine metrics failed")
        await asyncio.sleep(interval)


_PRIORITY_LABELS = {100: "bot", 50: "score", 0: "review"}


def _observe_latency(seconds: float, priority: int) -> None:
    metrics.ENGINE_QUERY_SECONDS.labels(
        priority=_PRIORITY_LABELS.get(priority, str(priority))
    ).observe(seconds)
