"""Shared presence: who is online on any instance, and which instances are alive.

Keys (volatile: a Redis restart loses them and every instance writes its own again):

* ``goapp:instances``: sorted set, instance id -> last heartbeat (ms);
* ``goapp:presence:{instance}``: hash, user id -> name of the users connected there
  (``_guests`` -> their guest count).

A user's first connection on an instance, or last one, goes through a Lua script that
updates the hash and says whether that was a *global* transition (no other live instance
has the user); only then is it announced on ``goapp:lobby`` and the hub's ``on_presence``
callbacks run here (once in the cluster). An instance whose heartbeat is older than
``ttl_s`` is dead: the first live instance to notice removes it (once, a Lua script) and
announces its users that are connected nowhere else as gone (the hash also expires after
three times that, in case every instance died).
"""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as aioredis

from goapp.bus.ports import LocalHub
from goapp.bus.transport import RedisTransport
from goapp.bus.wire import INSTANCES, LOBBY, message, now_ms, presence_key, text

__all__ = ["SharedPresence"]

log = logging.getLogger("goapp.bus")

# KEYS: none. ARGV: my instance id, user id, name ('' to leave), ttl ms, now ms.
# Sets or clears the user in my hash, then says whether any other live instance has them:
# 1 = this was a global transition (first connection anywhere / last one anywhere).
_PRESENCE_LUA = """
local me, uid, name, ttl, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local mine = 'goapp:presence:' .. me
local had_elsewhere = false
for _, other in ipairs(redis.call('ZRANGEBYSCORE', 'goapp:instances', now - ttl, '+inf')) do
  if other ~= me and redis.call('HEXISTS', 'goapp:presence:' .. other, uid) == 1 then
    had_elsewhere = true
  end
end
redis.call('ZADD', 'goapp:instances', now, me)
if name ~= '' then
  redis.call('HSET', mine, uid, name)
else
  redis.call('HDEL', mine, uid)
end
redis.call('PEXPIRE', mine, ttl * 3)
if had_elsewhere then return 0 end
return 1
"""

# ARGV: dead instance id, ttl ms, now ms. Claims a dead instance (once: ZREM) and returns
# its users that no live instance has: the ones that went offline with it.
_REAP_LUA = """
local dead, ttl, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if redis.call('ZREM', 'goapp:instances', dead) == 0 then return {} end
local key = 'goapp:presence:' .. dead
local users = redis.call('HGETALL', key)
redis.call('DEL', key)
local live = redis.call('ZRANGEBYSCORE', 'goapp:instances', now - ttl, '+inf')
local gone = {}
for i = 1, #users, 2 do
  local uid = users[i]
  if uid ~= '_guests' then
    local elsewhere = false
    for _, other in ipairs(live) do
      if redis.call('HEXISTS', 'goapp:presence:' .. other, uid) == 1 then elsewhere = true end
    end
    if not elsewhere then table.insert(gone, uid); table.insert(gone, users[i + 1]) end
  end
end
return gone
"""


class SharedPresence:
    """See the module docstring."""

    def __init__(
        self, transport: RedisTransport, hub: LocalHub, instance_id: str, ttl_s: float = 10.0
    ) -> None:
        self.transport = transport
        self.hub = hub
        self.instance_id = instance_id
        self.ttl_s = ttl_s
        #: user id -> name, on every live instance (this one's included)
        self.online: dict[int, str] = {}
        self.remote_guests = 0
        #: instances with a recent heartbeat
        self.live: set[str] = set()

    @property
    def _ttl_ms(self) -> int:
        return int(self.ttl_s * 1000)

    def changed(self, user_id: int, name: str, online: bool) -> bool:
        """A user's first (``online``) or last connection here: register it in Redis and,
        when that is a global transition, announce it. False while Redis is down (the hub
        then reports the local transition itself)."""
        if not self.transport.up:
            return False
        if online:
            self.online[user_id] = name

        async def op(r: aioredis.Redis) -> None:
            first = await self.transport.eval(
                r, _PRESENCE_LUA, self.instance_id, user_id,
                name if online else "", self._ttl_ms, now_ms(),
            )  # fmt: skip
            if int(first):
                await self._announce(r, user_id, name, online)

        self.transport.enqueue(op)
        return True

    def received(self, header: dict[str, Any]) -> None:
        """Another instance announced a global transition."""
        self.apply(int(header["u"]), str(header["n"]), bool(header["on"]), fire=False)

    def apply(self, user_id: int, name: str, online: bool, *, fire: bool) -> None:
        if online:
            self.online[user_id] = name
        elif user_id not in self.hub.user_conns:
            self.online.pop(user_id, None)
        self.hub.deliver_presence(user_id, name, online, fire=fire)

    async def _announce(self, r: aioredis.Redis, user_id: int, name: str, online: bool) -> None:
        header = {"o": self.instance_id, "k": "presence", "u": user_id, "n": name, "on": online}
        await self.transport.publish(r, LOBBY, message(header))
        self.apply(user_id, name, online, fire=True)

    async def register(self, r: aioredis.Redis) -> None:
        """Write this instance's users (after a start or a Redis restart) and read
        everyone's."""
        key = presence_key(self.instance_id)
        mapping: dict[Any, Any] = {str(u): n for u, n in self.hub.user_names.items()}
        mapping["_guests"] = self.hub.guests
        async with r.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping=mapping)
            pipe.pexpire(key, self._ttl_ms * 3)
            pipe.zadd(INSTANCES, {self.instance_id: now_ms()})
            await pipe.execute()
        await self.read(r)

    async def read(self, r: aioredis.Redis) -> None:
        """Read the live instances and their users."""
        live = await r.zrangebyscore(INSTANCES, now_ms() - self._ttl_ms, "+inf")
        online: dict[int, str] = {}
        guests = 0
        for inst in live:
            inst_id = text(inst)
            users = await r.hgetall(presence_key(inst_id))
            for k, v in users.items():
                field = text(k)
                if field == "_guests":
                    if inst_id != self.instance_id:
                        guests += int(v)
                elif field.isdigit():
                    online[int(field)] = text(v)
        online.update(self.hub.user_names)
        self.online = online
        self.remote_guests = guests
        self.live = {text(inst) for inst in live}

    async def beat(self, r: aioredis.Redis) -> None:
        """Keep this instance alive, reap the dead ones, read everyone's users again."""
        now = now_ms()
        ttl = self._ttl_ms
        key = presence_key(self.instance_id)
        async with r.pipeline(transaction=True) as pipe:
            pipe.zadd(INSTANCES, {self.instance_id: now})
            pipe.hset(key, "_guests", self.hub.guests)
            pipe.pexpire(key, ttl * 3)
            await pipe.execute()
        for dead in await r.zrangebyscore(INSTANCES, "-inf", now - ttl):
            dead_id = text(dead)
            gone = await self.transport.eval(r, _REAP_LUA, dead_id, ttl, now)
            if gone:
                log.info("reaped a dead instance", extra={"instance": dead_id})
            for i in range(0, len(gone), 2):
                await self._announce(r, int(gone[i]), text(gone[i + 1]), False)
        await self.read(r)

    async def leave(self, r: aioredis.Redis) -> None:
        """Remove this instance (a clean stop; a crash leaves it to be reaped)."""
        await r.zrem(INSTANCES, self.instance_id)
        await r.delete(presence_key(self.instance_id))
