"""Leases: one named job (e.g. the clock sweeper) runs on one instance at a time
(migration 0006). Times are epoch milliseconds of the callers' clocks (keep them in sync:
NTP)."""

from __future__ import annotations

from .seam import Backend, count

# take the lease when it is free, expired, or already the holder's: one conditional upsert
ACQUIRE = (
    "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)"
    " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
    " expires_at = excluded.expires_at"
    " WHERE leases.holder = excluded.holder OR leases.expires_at <= $4"
)
RELEASE = "DELETE FROM leases WHERE name = $1 AND holder = $2"


class LeaseQueries(Backend):
    async def acquire_lease(self, name: str, holder: str, ttl_ms: int, now_ms: int) -> bool:
        """Take or renew the lease ``name`` for ``holder`` until ``now_ms + ttl_ms`` when it
        is free, expired or already ``holder``'s. False when another holder's lease is
        live."""
        return await self._write(count(ACQUIRE, name, holder, now_ms + ttl_ms, now_ms)) == 1

    async def release_lease(self, name: str, holder: str) -> bool:
        """Give the lease up if ``holder`` holds it; False otherwise."""
        return await self._write(count(RELEASE, name, holder)) == 1
