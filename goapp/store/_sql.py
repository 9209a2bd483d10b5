"""SQL shared by both backends, written with PostgreSQL's ``$n`` placeholders.

SQLite accepts numbered parameters as ``?n``; :func:`to_sqlite` rewrites the text once at
import. Only statements whose text is the same in both dialects live here; the rest is in
each backend.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .base import COLUMNS

_PARAM = re.compile(r"\$(\d+)")


def to_sqlite(sql: str) -> str:
    return _PARAM.sub(r"?\1", sql)


def cols(table: str, prefix: str = "") -> str:
    return ", ".join(prefix + c for c in COLUMNS[table])


USER = cols("users")
GAME = cols("games")
EVENT = cols("game_events")
CHAT = cols("chat_messages")
CHALLENGE = cols("challenges")
TOKEN = cols("refresh_tokens")
ACTIVE = "status IN ('open', 'playing', 'scoring')"

INSERT_USER = (
    "INSERT INTO users (name, name_key, password_hash, rating, rd, volatility, games_count,"
    f" created_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7) RETURNING {USER}"
)
GET_USER = f"SELECT {USER} FROM users WHERE id = $1"
GET_USER_BY_NAME = f"SELECT {USER} FROM users WHERE name_key = $1"
UPDATE_RATING = (
    "UPDATE users SET rating = $2, rd = $3, volatility = $4, games_count = $5"
    f" WHERE id = $1 RETURNING {USER}"
)
SET_PASSWORD = "UPDATE users SET password_hash = $2 WHERE id = $1 RETURNING id"

INSERT_GAME = (
    "INSERT INTO games (black_id, white_id, black_bot, white_bot, width, height, komi, rules,"
    " handicap, time_control, status, created_at, last_seq)"
    f" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 0) RETURNING {GAME}"
)
GET_GAME = f"SELECT {GAME} FROM games WHERE id = $1"
GAME_STATE = "SELECT last_seq, status FROM games WHERE id = $1"
ACTIVE_GAMES = (
    f"SELECT {GAME} FROM games WHERE black_id = $1 AND {ACTIVE}"
    f" UNION SELECT {GAME} FROM games WHERE white_id = $1 AND {ACTIVE}"
    " ORDER BY id DESC"
)
ACTIVE_BOT_GAMES = (
    f"SELECT {GAME} FROM games WHERE {ACTIVE}"
    " AND (black_bot IS NOT NULL OR white_bot IS NOT NULL) ORDER BY id LIMIT $1"
)
UPSERT_ANALYSIS = (
    "INSERT INTO game_analysis (game_id, turn, payload, created_at) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (game_id, turn) DO UPDATE SET payload = excluded.payload,"
    " created_at = excluded.created_at"
)
LOAD_ANALYSIS = (
    "SELECT game_id, turn, payload, created_at FROM game_analysis WHERE game_id = $1 ORDER BY turn"
)
RECENT_FINISHED = (
    f"SELECT {GAME} FROM games WHERE status = 'finished'"
    " ORDER BY finished_at DESC, id DESC LIMIT $1"
)
RECENT_FINISHED_BEFORE = (
    f"SELECT {GAME} FROM games WHERE status = 'finished' AND finished_at < $2"
    " ORDER BY finished_at DESC, id DESC LIMIT $1"
)
EXPIRED_GAMES = (
    f"SELECT {GAME} FROM games WHERE deadline IS NOT NULL AND deadline <= $1 AND {ACTIVE}"
    " ORDER BY deadline, id LIMIT $2"
)
INSERT_EVENT = (
    "INSERT INTO game_events (game_id, seq, kind, payload, created_at) VALUES ($1, $2, $3, $4, $5)"
)
EVENTS_SINCE = f"SELECT {EVENT} FROM game_events WHERE game_id = $1 AND seq > $2 ORDER BY seq"
EVENTS_SINCE_LIMIT = EVENTS_SINCE + " LIMIT $3"

INSERT_CHAT = (
    f"INSERT INTO chat_messages (room, user_id, text, created_at) VALUES ($1, $2, $3, $4)"
    f" RETURNING {CHAT}"
)
LIST_CHAT = (
    f"SELECT {CHAT} FROM (SELECT {CHAT} FROM chat_messages WHERE room = $1"
    " ORDER BY id DESC LIMIT $2) AS t ORDER BY id"
)
LIST_CHAT_BEFORE = (
    f"SELECT {CHAT} FROM (SELECT {CHAT} FROM chat_messages WHERE room = $1 AND id < $3"
    " ORDER BY id DESC LIMIT $2) AS t ORDER BY id"
)

INSERT_CHALLENGE = (
    "INSERT INTO challenges (challenger_id, target_id, params, status, created_at, expires_at)"
    f" VALUES ($1, $2, $3, 'open', $4, $5) RETURNING {CHALLENGE}"
)
GET_CHALLENGE = f"SELECT {CHALLENGE} FROM challenges WHERE id = $1"
_OPEN = "status = 'open' AND (expires_at IS NULL OR expires_at > $1)"
LIST_OPEN_PUBLIC = (
    f"SELECT {CHALLENGE} FROM challenges WHERE {_OPEN} AND target_id IS NULL ORDER BY id LIMIT $2"
)
LIST_OPEN_FOR_USER = (
    f"SELECT {CHALLENGE} FROM challenges WHERE {_OPEN}"
    " AND (target_id IS NULL OR target_id = $3 OR challenger_id = $3) ORDER BY id LIMIT $2"
)
ACCEPT_CHALLENGE = (
    "UPDATE challenges SET status = 'accepted', accepted_by = $2"
    " WHERE id = $1 AND status = 'open' AND (expires_at IS NULL OR expires_at > $3)"
    " AND challenger_id <> $2 AND (target_id IS NULL OR target_id = $2)"
    f" RETURNING {CHALLENGE}"
)
SET_CHALLENGE_GAME = f"UPDATE challenges SET game_id = $2 WHERE id = $1 RETURNING {CHALLENGE}"
CLOSE_CHALLENGE = (
    f"UPDATE challenges SET status = $2 WHERE id = $1 AND status = 'open' RETURNING {CHALLENGE}"
)
CLOSE_CHALLENGE_BY = (
    "UPDATE challenges SET status = $2 WHERE id = $1 AND status = 'open'"
    f" AND (challenger_id = $3 OR target_id = $3) RETURNING {CHALLENGE}"
)
EXPIRE_CHALLENGES = (
    "UPDATE challenges SET status = 'expired'"
    " WHERE status = 'open' AND expires_at IS NOT NULL AND expires_at <= $1"
)

INSERT_TOKEN = (
    "INSERT INTO refresh_tokens (token_hash, user_id, created_at, expires_at, revoked_at)"
    f" VALUES ($1, $2, $3, $4, NULL) RETURNING {TOKEN}"
)
GET_TOKEN = f"SELECT {TOKEN} FROM refresh_tokens WHERE token_hash = $1"
REVOKE_FOR_ROTATION = (
    "UPDATE refresh_tokens SET revoked_at = $2, replaced_by = $3"
    " WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2 RETURNING user_id"
)
REVOKE_TOKEN = (
    "UPDATE refresh_tokens SET revoked_at = $2 WHERE token_hash = $1 AND revoked_at IS NULL"
)
REVOKE_USER_TOKENS = (
    "UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL"
)
PURGE_TOKENS = "DELETE FROM refresh_tokens WHERE expires_at < $1"

REVOKE_ACCESS = (
    "INSERT INTO access_revocations (user_id, not_before_ms) VALUES ($1, $2)"
    " ON CONFLICT (user_id) DO UPDATE SET not_before_ms = excluded.not_before_ms"
    " WHERE access_revocations.not_before_ms < excluded.not_before_ms"
)
ACCESS_REVOCATIONS = (
    "SELECT user_id, not_before_ms FROM access_revocations WHERE not_before_ms >= $1"
)
PURGE_ACCESS_REVOCATIONS = "DELETE FROM access_revocations WHERE not_before_ms < $1"


def update_game_sql(
    columns: dict[str, Any],
    expect_status: Sequence[str] | None,
    expect_seq: int | None,
) -> tuple[str, list[Any]]:
    """``UPDATE games SET ... WHERE id = $1 [AND status IN (...)] [AND last_seq = $k]``;
    the caller puts the game id first in the arguments."""
    args: list[Any] = []
    sets = []
    for name, value in columns.items():
        args.append(value)
        sets.append(f"{name} = ${len(args) + 1}")
    if not sets:
        sets.append("id = id")
    sql = f"UPDATE games SET {', '.join(sets)} WHERE id = $1"
    sql += conditions(args, expect_status, expect_seq)
    return sql + f" RETURNING {GAME}", args


def conditions(args: list[Any], expect_status: Sequence[str] | None, expect_seq: int | None) -> str:
    """Extra ``AND ...`` terms for a conditional games update; appends to ``args``
    (whose ``$n`` numbering starts after the game id at ``$1``)."""
    sql = ""
    if expect_status is not None:
        marks = []
        for s in expect_status:
            args.append(s)
            marks.append(f"${len(args) + 1}")
        sql += f" AND status IN ({', '.join(marks)})"
    if expect_seq is not None:
        args.append(expect_seq)
        sql += f" AND last_seq = ${len(args) + 1}"
    return sql


def events_table_args(columns: dict[str, Any], first: int) -> tuple[str, list[Any]]:
    """The ``, col = $n`` SET terms for the game columns changed with an append."""
    sql = ""
    args: list[Any] = []
    for name, value in columns.items():
        args.append(value)
        sql += f", {name} = ${first + len(args) - 1}"
    return sql, args


# -- ratings (migration 0003_ratings) ---------------------------------------------------------

RATING = "user_id, pool, rating, rd, volatility, games, updated_at"
HISTORY = "game_id, user_id, pool, rating_before, rating_after, rd_after, created_at"
GET_RATINGS = f"SELECT {RATING} FROM ratings WHERE user_id = $1 ORDER BY pool"
INSERT_HISTORY = (
    f"INSERT INTO rating_history ({HISTORY}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    " ON CONFLICT (game_id, user_id, pool) DO NOTHING RETURNING game_id"
)
# the new rating, only if nobody changed it since it was read (games = $6)
UPSERT_RATING = (
    f"INSERT INTO ratings ({RATING}) VALUES ($1, $2, $3, $4, $5, $6 + 1, $7)"
    " ON CONFLICT (user_id, pool) DO UPDATE SET rating = excluded.rating, rd = excluded.rd,"
    " volatility = excluded.volatility, games = excluded.games,"
    " updated_at = excluded.updated_at WHERE ratings.games = $6 RETURNING user_id"
)
# the overall pool is mirrored in the users row (users.rating ... games_count)
MIRROR_OVERALL = (
    "UPDATE users SET rating = $2, rd = $3, volatility = $4, games_count = $5 WHERE id = $1"
)
RATING_HISTORY = (
    f"SELECT {HISTORY} FROM (SELECT {HISTORY} FROM rating_history"
    " WHERE user_id = $1 AND pool = $2 ORDER BY created_at DESC, game_id DESC LIMIT $3) AS t"
    " ORDER BY created_at, game_id"
)
LEADERBOARD = (
    "SELECT r.user_id, u.name, r.rating, r.rd, r.volatility, r.games FROM ratings AS r"
    " JOIN users AS u ON u.id = r.user_id WHERE r.pool = $1 AND r.rd < $3"
    " ORDER BY r.rating DESC, r.user_id LIMIT $2"
)
GAME_RATED = "SELECT rated FROM games WHERE id = $1"
SET_GAME_RATED = "UPDATE games SET rated = $2 WHERE id = $1 RETURNING id"
# finished rated games between two users that have no rating history yet (catch-up)
UNRATED_FINISHED = (
    f"SELECT {GAME} FROM games AS g WHERE g.status = 'finished' AND g.rated"
    " AND g.black_id IS NOT NULL AND g.white_id IS NOT NULL"
    " AND g.black_bot IS NULL AND g.white_bot IS NULL"
    " AND NOT EXISTS (SELECT 1 FROM rating_history AS h WHERE h.game_id = g.id)"
    " ORDER BY g.finished_at, g.id LIMIT $1"
)
