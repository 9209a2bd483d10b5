"""The seam between the domain queries (written once) and the two backends.

A store operation is a **plan**: a generator that yields the statements to run (:class:`Op`)
and receives each one's result, then returns the answer::

    def rename(user_id: int, name: str) -> Plan[User]:
        row = yield from one("UPDATE users SET name = $2 WHERE id = $1 RETURNING ...", ...)
        if row is None:
            raise NotFoundError(...)
        return user_from_row(row)

SQL is written with PostgreSQL's ``$n`` placeholders (SQLite reads them as ``?n``). A plan
does no I/O itself, so each backend runs it its own way: SQLite runs a write plan inside
its writer thread's group-commit batch (one savepoint per plan), PostgreSQL awaits each
statement on a pooled connection (inside a transaction when the plan is ``atomic``).

:class:`Backend` is what a backend provides: running plans, and the few statements that
truly differ between the dialects (appending events, claiming an automatch pair, a list of
ids as a parameter, bulk loads).
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Generator, Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar

T = TypeVar("T")


#: One statement: ``(kind, sql, args, table)``. ``kind``: ``one`` (the first row or None),
#: ``all`` (every row), ``count`` (how many rows it changed), ``many`` (run once per row of
#: ``args``; None). ``table`` names the columns' table (see ``schema.COLUMNS``) so that a
#: backend which stores values in another form (SQLite: timestamps as integers) can convert
#: the rows. A plain tuple: the cheapest thing to make once per statement.
Op = tuple[Literal["one", "all", "count", "many"], str, Sequence[Any], str | None]
#: A plan returning T. What it gets back for each Op depends on the op's kind.
Plan = Generator[Op, Any, T]


def one(sql: str, *args: Any, table: str | None = None) -> Plan[Any]:
    """The first row (indexable in column order) or None."""
    return (yield ("one", sql, args, table))


def rows(sql: str, *args: Any, table: str | None = None) -> Plan[list[Any]]:
    """Every row."""
    result: list[Any] = yield ("all", sql, args, table)
    return result


def count(sql: str, *args: Any) -> Plan[int]:
    """How many rows the statement inserted, updated or deleted."""
    result: int = yield ("count", sql, args, None)
    return result


def many(sql: str, arg_rows: Sequence[Sequence[Any]]) -> Plan[None]:
    """The statement once per row of arguments (``executemany``)."""
    yield ("many", sql, arg_rows, None)


class Backend(abc.ABC):
    """What a backend provides to the domain queries (``users.py``, ``games.py``, ...)."""

    @abc.abstractmethod
    async def _read(self, plan: Plan[T]) -> T:
        """Run a read-only plan (PostgreSQL retries it once after a lost connection)."""

    @abc.abstractmethod
    async def _write(self, plan: Plan[T], *, atomic: bool = False) -> T:
        """Run a plan that writes; it returns after the commit. ``atomic``: the plan's
        statements commit together or not at all (SQLite: always)."""

    # -- the statements that differ ------------------------------------------------------------

    @abc.abstractmethod
    def _append(
        self,
        update_sql: str,
        args: list[Any],
        events: list[tuple[int, str, str]],
        now: datetime,
    ) -> Plan[bool]:
        """Run ``update_sql`` (the conditional ``UPDATE games SET last_seq ... WHERE id =
        $1 ...``, no RETURNING) with ``args`` and, only if it matched the game, insert
        ``events`` (``(seq, kind, payload_json)``, created at ``now``) into game_events.
        True when both happened, False (nothing written) when the update matched nothing."""

    @abc.abstractmethod
    def _claim_automatch(
        self, request_id: int, candidate_ids: list[int]
    ) -> Plan[tuple[Any, Any] | None]:
        """The rows of the waiting request and of the first available candidate (see
        ``challenges.CANDIDATE``), both locked against other claimers until the plan ends;
        None when either is missing. Writes nothing."""

    @abc.abstractmethod
    def _id_in(self, column: str, first: int, ids: Sequence[int]) -> tuple[str, list[Any]]:
        """A condition ``column`` is one of ``ids``, its placeholders numbered from
        ``$first``, and the arguments that go with it."""


class CallsInFlight:
    """Counts the calls in flight (``with calls: ...``) so that ``close()`` can wait until
    none is left."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def __enter__(self) -> None:
        self._count += 1
        self._idle.clear()

    def __exit__(self, *exc: object) -> None:
        self._count -= 1
        if not self._count:
            self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()
