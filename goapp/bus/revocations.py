"""Shared revocations: a logout on one instance refuses the user's old tokens on all.

A revocation goes to every instance on ``goapp:user`` (``{"k": "revoke", "u", "nb"}``;
the ``"bye"`` that follows closes the sockets) and is kept in Redis
(``goapp:revoked:{user}`` = not-before time in ms, expiring with the access tokens it
refuses) for the instances that start, or reconnect, later.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from goapp.bus.ports import RevocationSet
from goapp.bus.transport import RedisTransport
from goapp.bus.wire import REVOKED_PREFIX, USER, message, text

__all__ = ["SharedRevocations"]


class SharedRevocations:
    """See the module docstring. ``ttl_s`` is the access tokens' lifetime."""

    def __init__(
        self,
        transport: RedisTransport,
        revocations: RevocationSet,
        instance_id: str,
        ttl_s: int = 900,
    ) -> None:
        self.transport = transport
        self.revocations = revocations
        self.instance_id = instance_id
        self.ttl_s = ttl_s

    def revoke(self, user_id: int, not_before_ms: int) -> None:
        """Refuse ``user_id``'s access tokens issued before ``not_before_ms``, everywhere."""
        self.revocations.add(user_id, not_before_ms)
        ttl_ms = (self.ttl_s + 60) * 1000
        key = f"{REVOKED_PREFIX}{user_id}"

        async def op(r: aioredis.Redis) -> None:
            await r.set(key, not_before_ms, px=ttl_ms)

        self.transport.enqueue(op)
        header = {"o": self.instance_id, "k": "revoke", "u": user_id, "nb": not_before_ms}
        self.transport.send(USER, message(header))

    def received(self, header: dict[str, Any]) -> None:
        self.revocations.add(int(header["u"]), int(header["nb"]))

    async def load(self, r: aioredis.Redis) -> None:
        """Read every revocation kept in Redis."""
        async for key in r.scan_iter(match=f"{REVOKED_PREFIX}*", count=500):
            value = await r.get(key)
            if value is not None:
                uid = text(key).rsplit(":", 1)[1]
                if uid.isdigit():
                    self.revocations.add(int(uid), int(value))
