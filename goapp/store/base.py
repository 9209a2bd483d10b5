"""The storage interface: :class:`Store`, the domain queries of every entity written once
(``users.py``, ``games.py``, ``challenges.py``, ``ratings.py``, ``analysis.py``,
``leases.py``) over the seam of ``seam.py``, which each backend fills in:
:class:`~goapp.store.sqlite.SQLiteStore` and :class:`~goapp.store.postgres.PostgresStore`.

Both backends pass the same test suite (``tests/test_store*.py``); callers must not care
which one they have. Every method either succeeds or raises a
:class:`~goapp.store.errors.StoreError` subclass.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Sequence
from types import TracebackType
from typing import Any, ClassVar

from .analysis import AnalysisQueries
from .challenges import ChallengeQueries
from .errors import reraise
from .games import GameQueries
from .leases import LeaseQueries
from .ratings import RatingQueries
from .schema import COLUMNS, PRIMARY_KEYS, TABLES, utcnow
from .seam import CallsInFlight, rows
from .users import UserQueries

__all__ = ["TABLES", "Store", "utcnow"]


class Store(
    UserQueries, GameQueries, ChallengeQueries, RatingQueries, AnalysisQueries, LeaseQueries
):
    """Storage for goapp: users, games and their event logs, chat, challenges, tokens,
    ratings, automatch, reviews, leases.

    Open one with :func:`goapp.store.open_store`; close it with :meth:`close` (or use
    ``async with``). Methods are safe to call concurrently from many tasks.
    """

    #: ``"sqlite"`` or ``"postgres"``
    backend: ClassVar[str]

    def __init__(self, url: str) -> None:
        self.url = url
        #: names of the migrations applied when this store was opened
        self.applied_migrations: list[str] = []
        self._closed = False
        #: the calls in flight that close() lets finish
        self._calls = CallsInFlight()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- lifecycle ---------------------------------------------------------------------------

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish every queued write (each caller still gets its answer), then close."""

    @abc.abstractmethod
    async def _abort(self) -> None:
        """Close whatever a failed start-up opened."""

    @staticmethod
    @abc.abstractmethod
    def _map_error(exc: BaseException) -> BaseException:
        """The StoreError a backend exception means (others are returned unchanged)."""

    async def _start(self, startup: Awaitable[None]) -> None:
        """Await the backend's start-up (connect, migrate); on failure, close what it
        opened and raise the failure as a StoreError."""
        try:
            await startup
        except BaseException as e:
            await self._abort()
            reraise(e, self._map_error(e))

    async def ping(self) -> None:
        """Round-trip to the database (``/readyz``); StoreUnavailableError when it is down."""
        await self._read(rows("SELECT 1"))

    # -- whole-table access for `goapp db copy` -----------------------------------------------

    async def dump_rows(
        self, table: str, after: tuple[Any, ...] | None, limit: int
    ) -> list[tuple[Any, ...]]:
        """Rows of ``table`` in primary-key order after the key ``after``, in the neutral
        form (datetimes aware UTC, JSON as text, booleans as bool), columns as in
        :data:`~goapp.store.schema.COLUMNS`."""
        columns = COLUMNS[table]
        npk = PRIMARY_KEYS[table]
        pk = ", ".join(columns[:npk])
        sql = f"SELECT {', '.join(columns)} FROM {table}"
        if after is not None:
            sql += f" WHERE ({pk}) > ({', '.join(f'${i + 1}' for i in range(npk))})"
        sql += f" ORDER BY {pk} LIMIT {int(limit)}"
        found = await self._read(rows(sql, *(after or ()), table=table))
        return [tuple(r) for r in found]

    @abc.abstractmethod
    async def load_rows(self, table: str, rows: Sequence[tuple[Any, ...]]) -> int:
        """Insert rows in the neutral form, skipping those whose primary key exists;
        returns how many were inserted. Called in dependency order by ``copy``."""

    @abc.abstractmethod
    async def finish_load(self) -> None:
        """After ``load_rows``: move id sequences past the loaded ids."""
