"""SQL of the automatch requests (migration 0004_automatch), with PostgreSQL's ``$n``
placeholders (:func:`goapp.store._sql.to_sqlite` rewrites them for SQLite). Kept apart from
``_sql.py`` so the automatch statements read as one unit."""

from __future__ import annotations

from .base import AUTOMATCH_COLUMNS

AUTOMATCH = ", ".join(AUTOMATCH_COLUMNS)
_ACTIVE = "status IN ('open', 'playing', 'scoring')"

INSERT_AUTOMATCH = (
    "INSERT INTO automatch_requests (user_id, speed, sizes, rated, rating, status, created_at)"
    f" VALUES ($1, $2, $3, $4, $5, 'waiting', $6) RETURNING {AUTOMATCH}"
)
GET_AUTOMATCH = f"SELECT {AUTOMATCH} FROM automatch_requests WHERE id = $1"
WAITING_OF_USER = (
    f"SELECT {AUTOMATCH} FROM automatch_requests WHERE user_id = $1 AND status = 'waiting'"
)
WAITING_ALL = (
    f"SELECT {AUTOMATCH} FROM automatch_requests WHERE status = 'waiting'"
    " ORDER BY created_at, id LIMIT $1"
)
WAITING_OF_SPEED = (
    f"SELECT {AUTOMATCH} FROM automatch_requests WHERE status = 'waiting' AND speed = $2"
    " ORDER BY created_at, id LIMIT $1"
)
CANCEL_OF_USER = (
    "UPDATE automatch_requests SET status = 'cancelled', closed_at = $2"
    f" WHERE user_id = $1 AND status = 'waiting' RETURNING {AUTOMATCH}"
)
CANCEL_BY_ID = (
    "UPDATE automatch_requests SET status = 'cancelled', closed_at = $3"
    f" WHERE user_id = $1 AND id = $2 AND status = 'waiting' RETURNING {AUTOMATCH}"
)
# a candidate is available when it is waiting, of another user, and the two users have no
# active game together ($1 the candidate, $2 the claimer's user)
_AVAILABLE = (
    "r.status = 'waiting' AND r.user_id <> $2 AND NOT EXISTS (SELECT 1 FROM games AS g"
    f" WHERE g.{_ACTIVE} AND ((g.black_id = $2 AND g.white_id = r.user_id)"
    " OR (g.black_id = r.user_id AND g.white_id = $2)))"
)
CANDIDATE_SQLITE = (
    f"SELECT {', '.join('r.' + c for c in AUTOMATCH_COLUMNS)} FROM automatch_requests AS r"
    f" WHERE r.id = $1 AND {_AVAILABLE}"
)
# PostgreSQL: lock the claimer's row (skipping it when another claimer holds it) ...
LOCK_OWN_PG = (
    f"SELECT {AUTOMATCH} FROM automatch_requests WHERE id = $1 AND status = 'waiting'"
    " FOR UPDATE SKIP LOCKED"
)
# ... then the first available candidate in the caller's order, skipping locked ones
CANDIDATE_PG = (
    f"SELECT {', '.join('r.' + c for c in AUTOMATCH_COLUMNS)} FROM automatch_requests AS r"
    f" WHERE r.id = ANY($1::bigint[]) AND {_AVAILABLE}"
    " ORDER BY array_position($1::bigint[], r.id) LIMIT 1 FOR UPDATE OF r SKIP LOCKED"
)
MARK_PAIRED = (
    "UPDATE automatch_requests SET status = 'paired', closed_at = $4, partner_id = $2,"
    f" opponent_id = $3 WHERE id = $1 AND status = 'waiting' RETURNING {AUTOMATCH}"
)
SET_GAME = (
    "UPDATE automatch_requests SET game_id = $2"
    " WHERE id = $1 AND status = 'paired' AND game_id IS NULL"
)
CANCEL_PAIRED = (
    "UPDATE automatch_requests SET status = 'cancelled'"
    " WHERE id = $1 AND status = 'paired' AND game_id IS NULL"
)
