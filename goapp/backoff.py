"""Exponential back-off after failures (login attempts, an unreachable remote engine).

It lives outside goapp.server so that packages below the server (goapp.engine) can use it
without importing the server; goapp.server.ratelimit re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Per-account login back-off. ``free`` failed attempts in a row cost nothing; then an
    attempt from a client the account does not know must come ``base_s`` after the last
    failure, twice that after the next one, and so on up to ``max_s``. Failures are
    forgotten at a successful login, or ``forget_s`` after the last one. A client that
    logged in successfully stays known for ``known_s``."""

    free: int = 5
    base_s: float = 1.0
    max_s: float = 900.0
    forget_s: float = 24 * 3600.0
    known_s: float = 30 * 24 * 3600.0

    def delay(self, failures: int) -> float:
        """How long after the last failure the next attempt may come."""
        if failures < self.free:
            return 0.0
        return min(self.max_s, self.base_s * 2.0 ** min(failures - self.free, 40))
