"""In-memory token-bucket rate limits for the HTTP API.

Each limited endpoint has a :class:`Limit` (bucket capacity and refill rate) per client IP
and, where the client is authenticated, per user. A request takes one token from each of its
buckets; when one is empty the request is refused with 429 ``rate_limited`` and a
``Retry-After`` header (seconds until a token is back).

Memory is bounded: a :class:`RateLimiter` keeps at most ``max_keys`` buckets in an LRU. When
it is full, the least recently used bucket is dropped; a dropped bucket comes back full, which
errs on the side of letting a request through (an attacker would need more than ``max_keys``
distinct keys in the refill window to profit, and a single IP cannot make many).

Several instances: with ``redis_url`` set the buckets live in Redis (:class:`SharedBuckets`,
one Lua script per hit, Redis's clock), so every instance takes from the same bucket and a
client gets the budget once, not ``instances x``. While Redis is down (or slower than
:data:`SHARED_TIMEOUT_S`) each instance falls back to its in-memory buckets: limits stay on,
per instance, until Redis is back.

Logins are also limited per *account*, whatever the address (:class:`LoginGuard`): a few
failures in a row cost nothing, then each attempt from a client the account does not know
must wait twice as long as the last. A client that logged in to the account before (its
device cookie, or the address it succeeded from) is never delayed, so an attacker guessing
from many addresses slows only the guessing, never locks the owner out. docs/api.md,
"Login back-off", gives the numbers.

The client IP is :func:`goapp.server.api.common.client_ip`: ``request.remote``, or, when
that is one of the ``trusted_proxies`` (Nginx), the right-most untrusted address of
``X-Forwarded-For``. Without ``trusted_proxies`` every client behind a proxy shares the
proxy's bucket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from goapp.backoff import Backoff

__all__ = [
    "ACTION_PER_IP",
    "ACTION_PER_USER",
    "CHAT_PER_USER",
    "DEFAULT_LIMITS",
    "DEFAULT_MAX_KEYS",
    "ESTIMATE_PER_IP",
    "ESTIMATE_PER_USER",
    "LOGIN_BACKOFF",
    "LOGIN_PER_IP",
    "REGISTER_PER_IP",
    "SGF_PER_IP",
    "Backoff",
    "KeyedLocks",
    "Limit",
    "LoginGuard",
    "RateLimiter",
    "SharedBuckets",
    "SocketCounts",
]

log = logging.getLogger("goapp.server")

#: Longest wait for Redis before a hit falls back to the in-memory bucket.
SHARED_TIMEOUT_S = 0.25

# KEYS[1]: the bucket; ARGV: burst, tokens per second. Returns the wait (seconds, as text:
# Lua numbers become integers in replies), 0 when a token was taken.
_BUCKET_LUA = """
local burst, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1]) or burst
local at = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


# KEYS[1]: an account's failures (hash n, at); ARGV: free, base_s, max_s, forget_s. The
# wait (seconds, as text) before this account may be tried again; 0 when this attempt may go
# ahead, which counts it as a failure until LoginGuard.succeeded says otherwise.
_LOGIN_LUA = """
local free, base, max, forget = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 'n', 'at')
local n = tonumber(b[1]) or 0
local at = tonumber(b[2]) or 0
if n >= free then
  local wait = at + math.min(max, base * 2 ^ math.min(n - free, 40)) - now
  if wait > 0 then return tostring(wait) end
end
redis.call('HSET', KEYS[1], 'n', tostring(n + 1), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(forget * 1000))
return '0'
"""


@dataclass(frozen=True, slots=True)
class Limit:
    """``burst`` requests at once, then ``per_s`` requests a second on average."""

    burst: float
    per_s: float

    def __post_init__(self) -> None:
        if self.burst < 1 or self.per_s <= 0:
            raise ValueError("a limit needs burst >= 1 and per_s > 0")


#: ``POST /api/login`` per client IP: 10 tries at once, then one every 6 s (10 a minute).
#: Each try costs ~0.1 s of scrypt on the server, so this also caps CPU spent on guessing.
LOGIN_PER_IP = Limit(burst=10, per_s=1 / 6)
#: ``POST /api/register`` per client IP: 5 accounts at once, then one a minute.
REGISTER_PER_IP = Limit(burst=5, per_s=1 / 60)
#: ``POST /api/action`` per user: 20 at once, 10 a second sustained (far above human play;
#: blitz premoves and score marking come in short bursts).
ACTION_PER_USER = Limit(burst=20, per_s=10)
#: ``POST /api/action`` per client IP (several users behind one NAT): 60 at once, 30/s.
ACTION_PER_IP = Limit(burst=60, per_s=30)
#: ``POST /api/sgf`` per client IP: 10 uploads at once, then one every 2 s (each parse and
#: replay of a large record costs CPU).
SGF_PER_IP = Limit(burst=10, per_s=0.5)
#: ``GET /api/games/{id}/estimate`` per user: 5 at once, then one every 10 s (each one not
#: cached costs seconds of engine time; a scoring phase needs one or two).
ESTIMATE_PER_USER = Limit(burst=5, per_s=0.1)
#: ... and per client IP (anonymous callers, on finished games only): 10 at once, one every 5 s.
ESTIMATE_PER_IP = Limit(burst=10, per_s=0.2)
#: WebSocket ``chat`` per user, over all of the user's sockets (and every instance with
#: Redis): 5 lines at once, then one a second. Per socket, ten sockets made it ten times
#: that.
CHAT_PER_USER = Limit(burst=5, per_s=1)


#: Five free tries, then 1 s, 2 s, 4 s ... at most 15 minutes between tries of one account
#: from unknown clients: about 100 guesses a day once at the ceiling, from any number of
#: addresses together.
LOGIN_BACKOFF = Backoff()
#: Most buckets kept in memory (about 100 bytes each).
DEFAULT_MAX_KEYS = 50_000

#: The limits the API applies, by name (``"login:ip"``, ...).
DEFAULT_LIMITS: dict[str, Limit] = {
    "login:ip": LOGIN_PER_IP,
    "register:ip": REGISTER_PER_IP,
    "action:user": ACTION_PER_USER,
    "action:ip": ACTION_PER_IP,
    "sgf:ip": SGF_PER_IP,
    "estimate:user": ESTIMATE_PER_USER,
    "estimate:ip": ESTIMATE_PER_IP,
    "chat:user": CHAT_PER_USER,
}


class RateLimiter:
    """Token buckets keyed by ``(limit name, client key)``, in a bounded LRU."""

    def __init__(
        self,
        limits: dict[str, Limit] | None = None,
        *,
        login_backoff: Backoff | None = LOGIN_BACKOFF,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.limits = dict(DEFAULT_LIMITS if limits is None else limits)
        self.max_keys = max_keys
        self.clock = clock
        # key -> (tokens, time of last update)
        self._buckets: OrderedDict[tuple[str, str], tuple[float, float]] = OrderedDict()
        #: Buckets shared by every instance (Redis); None: in memory only.
        self.shared: SharedBuckets | None = None
        #: The per-account login back-off (None: off)
        self.login = None if login_backoff is None else LoginGuard(self, login_backoff)

    def __len__(self) -> int:
        return len(self._buckets)

    def hit(self, name: str, key: str) -> float:
        """Take a token from bucket ``key`` of limit ``name``. Returns 0 when allowed, else
        the seconds until a token is available (nothing is taken then). Unknown limit names
        are not limited."""
        limit = self.limits.get(name)
        if limit is None:
            return 0.0
        now = self.clock()
        bucket_key = (name, key)
        tokens, last = self._buckets.get(bucket_key, (limit.burst, now))
        tokens = min(limit.burst, tokens + max(0.0, now - last) * limit.per_s)
        if tokens >= 1:
            self._store(bucket_key, tokens - 1, now)
            return 0.0
        self._store(bucket_key, tokens, now)
        return (1 - tokens) / limit.per_s

    def check(self, *hits: tuple[str, str]) -> float:
        """Take one token from each ``(name, key)``; the longest wait of those refused (0
        when all allowed). Buckets that allowed keep their token spent: a refused request
        still counts against the other buckets, which only makes flooding costlier."""
        wait = 0.0
        for name, key in hits:
            wait = max(wait, self.hit(name, key))
        return wait

    async def acheck(self, *hits: tuple[str, str]) -> float:
        """:meth:`check` against the shared buckets when there are some (and Redis answers
        in time), else against the in-memory ones."""
        shared = self.shared
        if shared is not None and shared.available:
            try:
                wait = 0.0
                for name, key in hits:
                    limit = self.limits.get(name)
                    if limit is not None:
                        wait = max(wait, await shared.hit(name, key, limit))
                return wait
            except Exception as exc:
                shared.failed(exc)
        return self.check(*hits)

    def _store(self, key: tuple[str, str], tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)


def retry_after_s(wait: float) -> int:
    """The ``Retry-After`` value (whole seconds, at least 1) for a wait."""
    return max(1, math.ceil(wait))


class SharedBuckets:
    """Token buckets in Redis (``goapp:rl:NAME:KEY``), shared by every instance.

    ``redis`` is a ``redis.asyncio`` client; ``up`` says whether it is worth trying (the
    bus's state). Any error or a reply slower than :data:`SHARED_TIMEOUT_S` makes the caller
    use its in-memory buckets for that request."""

    def __init__(self, redis: Any, up: Callable[[], bool], prefix: str = "goapp:rl:") -> None:
        self.redis = redis
        self.up = up
        self.prefix = prefix
        self._scripts: dict[str, str] = {}  # name -> SHA of the loaded script
        self.errors = 0

    @property
    def available(self) -> bool:
        return self.up()

    async def hit(self, name: str, key: str, limit: Limit) -> float:
        async with asyncio.timeout(SHARED_TIMEOUT_S):
            bucket = f"{self.prefix}{name}:{key}"
            reply = await self._eval("bucket", _BUCKET_LUA, [bucket], [limit.burst, limit.per_s])
        return float(reply)

    async def _eval(self, name: str, script: str, keys: list[str], args: list[Any]) -> Any:
        """Run a script by its SHA, loading it first (again after a Redis restart)."""
        sha = self._scripts.get(name)
        if sha is None:
            sha = self._scripts[name] = await self.redis.script_load(script)
        try:
            return await self.redis.evalsha(sha, len(keys), *keys, *args)
        except Exception as exc:
            if "NOSCRIPT" not in str(exc):
                raise
            sha = self._scripts[name] = await self.redis.script_load(script)
            return await self.redis.evalsha(sha, len(keys), *keys, *args)

    async def login_attempt(self, account: str, backoff: Backoff) -> float:
        """:meth:`LoginGuard.attempt` in Redis (one script: check and count at once)."""
        args = [backoff.free, backoff.base_s, backoff.max_s, backoff.forget_s]
        async with asyncio.timeout(SHARED_TIMEOUT_S):
            reply = await self._eval("login", _LOGIN_LUA, [self._login_key(account)], args)
        return float(reply)

    async def login_succeeded(self, account: str, address: str, backoff: Backoff) -> None:
        async with asyncio.timeout(SHARED_TIMEOUT_S):
            pipe = self.redis.pipeline(transaction=False)
            pipe.delete(self._login_key(account))
            pipe.set(self._known_key(account, address), b"1", px=int(backoff.known_s * 1000))
            await pipe.execute()

    async def login_known(self, account: str, address: str) -> bool:
        async with asyncio.timeout(SHARED_TIMEOUT_S):
            return bool(await self.redis.exists(self._known_key(account, address)))

    def _login_key(self, account: str) -> str:
        return f"{self.prefix}login:{account}"

    def _known_key(self, account: str, address: str) -> str:
        return f"{self.prefix}known:{account}:{address}"

    def failed(self, exc: BaseException) -> None:
        self.errors += 1
        if self.errors == 1 or self.errors % 1000 == 0:
            log.warning(
                "shared rate limit unavailable; using this instance's buckets",
                extra={"error": str(exc) or type(exc).__name__, "errors": self.errors},
            )


class LoginGuard:
    """The per-account login back-off (:class:`Backoff`): in Redis when the limiter has
    shared buckets (every instance sees the same failures), else in this process.

    :meth:`attempt` comes before the password is checked and counts the attempt as a failure
    at once, so that a burst of parallel guesses cannot all slip through the same opening;
    :meth:`succeeded` then clears the count. A refused attempt costs no password hash and
    tells nothing about the password."""

    def __init__(self, limiter: RateLimiter, backoff: Backoff) -> None:
        self.limiter = limiter
        self.backoff = backoff
        # account -> (failures, monotonic time of the last one)
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()
        # (account, address) -> monotonic time until which it is known
        self._known: OrderedDict[tuple[str, str], float] = OrderedDict()

    async def attempt(self, account: str, *, known: bool) -> float:
        """0 when an attempt on ``account`` may go ahead (now counted as a failure), else
        the seconds to wait. ``known`` clients (see :meth:`is_known`) never wait, and their
        attempts do not count: the per-address limit bounds them."""
        if known:
            return 0.0
        shared = self.limiter.shared
        if shared is not None and shared.available:
            try:
                return await shared.login_attempt(account, self.backoff)
            except Exception as exc:
                shared.failed(exc)
        now = self.limiter.clock()
        failures, last = self._failures.get(account, (0, now))
        if now - last > self.backoff.forget_s:
            failures = 0
        wait = last + self.backoff.delay(failures) - now
        if failures >= self.backoff.free and wait > 0:
            return wait
        self._failures[account] = (failures + 1, now)
        self._failures.move_to_end(account)
        _trim(self._failures, self.limiter.max_keys)
        return 0.0

    async def succeeded(self, account: str, address: str) -> None:
        """The password was right: forget the account's failures, remember the address."""
        self._failures.pop(account, None)
        key = (account, address)
        self._known[key] = self.limiter.clock() + self.backoff.known_s
        self._known.move_to_end(key)
        _trim(self._known, self.limiter.max_keys)
        shared = self.limiter.shared
        if shared is not None and shared.available:
            try:
                await shared.login_succeeded(account, address, self.backoff)
            except Exception as exc:
                shared.failed(exc)

    async def is_known(self, account: str, address: str) -> bool:
        """Whether ``address`` logged in to ``account`` successfully within ``known_s``."""
        until = self._known.get((account, address))
        if until is not None and until > self.limiter.clock():
            return True
        shared = self.limiter.shared
        if shared is not None and shared.available:
            try:
                return await shared.login_known(account, address)
            except Exception as exc:
                shared.failed(exc)
        return False


def _trim(lru: OrderedDict[Any, Any], max_keys: int) -> None:
    while len(lru) > max_keys:
        lru.popitem(last=False)


# -- caps: how much one user or address may hold open at once ---------------------------------
#
# The caps themselves are settings (``max_open_challenges``, ``max_bot_games``,
# ``ws_max_per_ip``, ``ws_max_per_user``; 0 means no cap). They are counted per instance
# where the count lives in memory (sockets), and in the database where it lives there
# (challenges, games).


def at_cap(held: int, cap: int) -> bool:
    """Whether one more is refused: ``held`` already, ``cap`` allowed (0: no cap)."""
    return cap > 0 and held >= cap


class SocketCounts:
    """Open WebSocket connections per key (a client address, or ``user:ID``), on this
    instance."""

    def __init__(self) -> None:
        self._open: dict[str, int] = {}

    def get(self, key: str) -> int:
        return self._open.get(key, 0)

    def try_open(self, key: str, cap: int) -> bool:
        """Count one more connection of ``key``, unless it holds ``cap`` already."""
        held = self._open.get(key, 0)
        if at_cap(held, cap):
            return False
        self._open[key] = held + 1
        return True

    def closed(self, key: str) -> None:
        held = self._open.get(key, 0) - 1
        if held > 0:
            self._open[key] = held
        else:
            self._open.pop(key, None)


class KeyedLocks:
    """One asyncio lock per key (a user id), kept only while in use: a cap is checked and
    the new thing created under it, so a burst of concurrent requests cannot all pass the
    check before any of them counts (on one instance; with several, a burst spread over
    them can pass the cap by at most one per instance)."""

    def __init__(self) -> None:
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: int) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)
