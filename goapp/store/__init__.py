"""Storage: one interface (:class:`Store`), two backends that behave the same.

* SQLite (embedded default): ``sqlite:///abs/path/goapp.db`` or ``sqlite:relative.db``
  (relative to ``base_dir`` when given, else to the current directory). Options in the
  query string or as keyword arguments: ``synchronous`` (``FULL`` default, or ``NORMAL``),
  ``readers`` (read-only connections, default 3), ``busy_timeout`` (seconds, default 5),
  ``batch_max`` (writes per group commit, default 256).
* PostgreSQL: ``postgresql://user:pass@host:5432/db`` (also ``postgres://``), any libpq
  URL that asyncpg understands; other query parameters become server settings (e.g.
  ``?search_path=goapp``). goapp's own options: ``pool_min`` (1), ``pool_max`` (10),
  ``command_timeout`` (30 s), ``connect_timeout`` (5 s).

Options that belong to the other backend are ignored (so ``synchronous=...`` may be passed
for any URL). Common keyword options: ``migrate=True`` (apply pending migrations under a
lock at open), ``migrations=DIR`` (use another migrations directory; tests).

See docs/storage.md for durability, migrations, copy and backup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .base import Store
from .errors import (
    ConflictError,
    MigrationError,
    NotFoundError,
    StoreError,
    StoreUnavailableError,
)
from .records import (
    ACTIVE_GAME_STATUSES,
    CHALLENGE_STATUSES,
    GAME_STATUSES,
    KEEP,
    RATING_POOLS,
    AnalysisTurn,
    Challenge,
    ChatMessage,
    Event,
    Game,
    GameChange,
    GameStart,
    LeaderboardEntry,
    NewEvent,
    NewGame,
    PoolRating,
    RatingHistoryEntry,
    RatingUpdate,
    RefreshToken,
    User,
)

__all__ = [
    "ACTIVE_GAME_STATUSES",
    "CHALLENGE_STATUSES",
    "GAME_STATUSES",
    "KEEP",
    "RATING_POOLS",
    "AnalysisTurn",
    "Challenge",
    "ChatMessage",
    "ConflictError",
    "Event",
    "Game",
    "GameChange",
    "GameStart",
    "LeaderboardEntry",
    "MigrationError",
    "NewEvent",
    "NewGame",
    "NotFoundError",
    "PoolRating",
    "RatingHistoryEntry",
    "RatingUpdate",
    "RefreshToken",
    "Store",
    "StoreError",
    "StoreUnavailableError",
    "User",
    "backend_of",
    "open_store",
    "sqlite_path",
]

_SQLITE_OPTS = {"synchronous": str, "readers": int, "busy_timeout": float, "batch_max": int}
_PG_OPTS = {"pool_min": int, "pool_max": int, "command_timeout": float, "connect_timeout": float}


def backend_of(url: str) -> str:
    """``"sqlite"`` or ``"postgres"`` for a store URL; ValueError for anything else."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        return "sqlite"
    if scheme in ("postgresql", "postgres"):
        return "postgres"
    raise ValueError(
        f"unsupported store URL {url!r}: use sqlite:///abs/path.db, sqlite:relative.db "
        "or postgresql://user@host/db"
    )


def sqlite_path(url: str, base_dir: str | Path | None = None) -> tuple[Path, dict[str, str]]:
    """The file of a ``sqlite:`` URL and its query options.

    ``sqlite:///var/lib/goapp/goapp.db`` is absolute; ``sqlite:goapp.db`` and
    ``sqlite:data/goapp.db`` are relative to ``base_dir`` (default: the current directory).
    """
    if backend_of(url) != "sqlite":
        raise ValueError(f"not a sqlite URL: {url!r}")
    rest = url.split(":", 1)[1]
    rest, _, query = rest.partition("?")
    if rest.startswith("///"):
        # sqlite:////abs/path (SQLAlchemy's spelling) names the same file as sqlite:///abs/path.
        path = Path("/" + rest.lstrip("/"))
    elif rest.startswith("//"):
        raise ValueError(
            f"bad sqlite URL {url!r}: use sqlite:///absolute/path.db (three slashes) or "
            "sqlite:relative/path.db"
        )
    else:
        if not rest:
            raise ValueError(f"sqlite URL without a path: {url!r}")
        path = Path(rest)
        if not path.is_absolute():
            path = Path(base_dir or ".") / path
    return path.absolute(), dict(parse_qsl(query))


def _split_options(url: str, known: dict[str, type]) -> tuple[str, dict[str, Any]]:
    """Remove goapp's own options from a URL's query string."""
    parts = urlsplit(url)
    keep = []
    opts: dict[str, Any] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in known:
            opts[key] = known[key](value)
        else:
            keep.append((key, value))
    return urlunsplit(parts._replace(query=urlencode(keep))), opts


async def open_store(url: str, **opts: Any) -> Store:
    """Open (and by default migrate) the store at ``url``.

    Raises StoreUnavailableError when the database cannot be reached or written,
    MigrationError when the schema cannot be brought up to date, ValueError for a bad URL.
    """
    backend = backend_of(url)
    # Options of the other backend are ignored, so that one configuration (e.g.
    # ``synchronous=settings.sqlite_synchronous``) can be passed whatever the URL.
    for key in _PG_OPTS if backend == "sqlite" else _SQLITE_OPTS:
        opts.pop(key, None)
    if backend == "sqlite":
        from .sqlite import SQLiteStore

        path, query = sqlite_path(url, opts.pop("base_dir", None))
        merged: dict[str, Any] = {}
        for key, value in query.items():
            if key not in _SQLITE_OPTS:
                raise ValueError(
                    f"unknown sqlite URL option {key!r} (known: {sorted(_SQLITE_OPTS)})"
                )
            merged[key] = _SQLITE_OPTS[key](value)
        merged.update(opts)
        return await SQLiteStore.open(url, path, **merged)
    from .postgres import PostgresStore

    opts.pop("base_dir", None)
    dsn, query_opts = _split_options(url, _PG_OPTS)
    return await PostgresStore.open(url, dsn=dsn, **{**query_opts, **opts})
