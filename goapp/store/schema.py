"""What both backends agree on: the tables and their columns, and how values are written.

The neutral form of a value (what every :class:`~goapp.store.Store` method takes and
returns, and what ``goapp db copy`` moves): timestamps are timezone-aware UTC
``datetime``s, JSON columns are text, booleans are ``bool``. Each backend converts at its
edge (SQLite keeps timestamps as integer microseconds since the epoch).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_json_encoder = msgspec.json.Encoder()
_json_decoder = msgspec.json.Decoder()


def utcnow() -> datetime:
    return datetime.now(UTC)


def check_dt(value: datetime) -> datetime:
    """Refuse naive datetimes (they would mean different instants on each backend)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"timezone-aware datetime required, got naive {value!r}")
    return value.astimezone(UTC)


def dt_to_us(value: datetime) -> int:
    if value.tzinfo is None or value.utcoffset() is None:
        check_dt(value)  # raises
    return (value - EPOCH) // _US  # an aware difference: any time zone gives UTC


def us_to_dt(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def encode_json(value: Any) -> str:
    """JSON text of a value. Already-encoded JSON goes in as ``msgspec.Raw(data)``; plain
    bytes are refused (msgspec would silently store them as a base64 string)."""
    if isinstance(value, bytes | bytearray | memoryview):
        raise TypeError("JSON columns take a JSON value or msgspec.Raw, not bytes")
    return _json_encoder.encode(value).decode("utf-8")


def decode_json(text: str | bytes) -> Any:
    return _json_decoder.decode(text)


def name_key(name: str) -> str:
    """The default key that makes user names unique ignoring case: NFKC, then Unicode case
    folding (the same on both backends). Callers with a stricter policy (look-alike
    letters, see ``goapp.server.auth.username_key``) pass their own ``key=``."""
    return unicodedata.normalize("NFKC", name).casefold()


def statuses(value: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """``expect_status`` as a tuple (None: no condition)."""
    if value is None:
        return None
    out = (value,) if isinstance(value, str) else tuple(value)
    if not out:
        raise ValueError("expect_status must name at least one status")
    return out


def sql_list(values: Sequence[str]) -> str:
    """``'a', 'b'``: constant SQL string literals (for the status lists of records.py)."""
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


#: Tables in dependency order (parents first), as dumped and loaded by ``goapp db copy``.
TABLES: tuple[str, ...] = (
    "users",
    "games",
    "game_events",
    "chat_messages",
    "challenges",
    "refresh_tokens",
    "ratings",
    "rating_history",
)

#: Columns of each table in the neutral form used by dump_rows/load_rows, and in the order
#: the ``*_from_row`` functions read them; the first ``PRIMARY_KEYS[table]`` columns are
#: the primary key.
COLUMNS: dict[str, tuple[str, ...]] = {
    "users": (
        "id",
        "name",
        "name_key",
        "password_hash",
        "rating",
        "rd",
        "volatility",
        "games_count",
        "created_at",
    ),
    "games": (
        "id",
        "black_id",
        "white_id",
        "black_bot",
        "white_bot",
        "width",
        "height",
        "komi",
        "rules",
        "handicap",
        "time_control",
        "status",
        "result",
        "created_at",
        "started_at",
        "finished_at",
        "last_seq",
        "deadline",
        "rated",
    ),
    "game_events": ("game_id", "seq", "kind", "payload", "created_at"),
    "chat_messages": ("id", "room", "user_id", "text", "created_at"),
    "challenges": (
        "id",
        "challenger_id",
        "target_id",
        "params",
        "status",
        "created_at",
        "expires_at",
        "accepted_by",
        "game_id",
    ),
    "refresh_tokens": (
        "token_hash",
        "user_id",
        "created_at",
        "expires_at",
        "revoked_at",
        "replaced_by",
    ),
    "ratings": ("user_id", "pool", "rating", "rd", "volatility", "games", "updated_at"),
    "rating_history": (
        "game_id",
        "user_id",
        "pool",
        "rating_before",
        "rating_after",
        "rd_after",
        "created_at",
    ),
}
PRIMARY_KEYS: dict[str, int] = {
    "users": 1,
    "games": 1,
    "game_events": 2,
    "chat_messages": 1,
    "challenges": 1,
    "refresh_tokens": 1,
    "ratings": 2,
    "rating_history": 3,
}
#: Tables that ``goapp db copy`` does not move (service state, recomputable review), with
#: the columns their queries select.
OTHER_COLUMNS: dict[str, tuple[str, ...]] = {
    "automatch_requests": (
        "id",
        "user_id",
        "speed",
        "sizes",
        "rated",
        "rating",
        "status",
        "created_at",
        "closed_at",
        "partner_id",
        "opponent_id",
        "game_id",
    ),
    "game_analysis": ("game_id", "turn", "payload", "created_at"),
}
TIMESTAMP_COLUMNS = frozenset(
    {
        "created_at",
        "started_at",
        "finished_at",
        "deadline",
        "expires_at",
        "revoked_at",
        "updated_at",
        "closed_at",
    }
)
#: Boolean columns (SQLite stores 0/1; the neutral form is a bool).
BOOL_COLUMNS = frozenset({"rated"})
#: Tables with an integer identity ``id`` whose sequence must follow copied rows.
IDENTITY_TABLES = ("users", "games", "chat_messages", "challenges")


def cols(table: str) -> str:
    """The select list of a table, in the order of :data:`COLUMNS`."""
    return ", ".join(COLUMNS.get(table) or OTHER_COLUMNS[table])
