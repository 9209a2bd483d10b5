"""Typed storage errors, shared by every backend.

The server maps them to HTTP answers: :class:`ConflictError` -> 409 (reload and retry),
:class:`NotFoundError` -> 404, :class:`StoreUnavailableError` -> 503 (try again later).
Backend exceptions (``sqlite3.*``, ``asyncpg.*``, ``OSError``) never escape a
:class:`~goapp.store.Store` method: they are mapped to one of these, with the original
exception chained as ``__cause__``.
"""

from __future__ import annotations

from typing import NoReturn


class StoreError(Exception):
    """Base class of every storage error."""


class ConflictError(StoreError):
    """The write lost a race or violates a uniqueness rule.

    Examples: the event ``seq`` is already taken (another instance moved first), a user name
    is taken, a conditional update found the row in another state, a challenge was already
    accepted. The caller should reload, revalidate and answer its client.
    """


class NotFoundError(StoreError):
    """The row (or a row it refers to) does not exist."""


class StoreUnavailableError(StoreError):
    """The database cannot be used right now: unreachable, read-only, disk full, locked for
    too long, shutting down. Retrying later may succeed; the server answers 503."""


class MigrationError(StoreError):
    """A migration failed, or the applied migrations do not match the shipped files."""


def reraise(exc: BaseException, mapped: BaseException) -> NoReturn:
    """Raise ``mapped`` (what a backend maps ``exc`` to) chained to ``exc``; ``exc`` itself
    when the backend left it as it is."""
    if mapped is exc:
        raise exc
    raise mapped from exc
