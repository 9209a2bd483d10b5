"""Users, their refresh tokens and access-token revocations."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .errors import ConflictError, NotFoundError
from .records import RefreshToken, User
from .schema import check_dt, cols, name_key, utcnow
from .seam import Backend, Plan, count, one, rows

USER = cols("users")
TOKEN = cols("refresh_tokens")

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

# access-token revocations (migration 0007): a later not-before time replaces an earlier one
REVOKE_ACCESS = (
    "INSERT INTO access_revocations (user_id, not_before_ms) VALUES ($1, $2)"
    " ON CONFLICT (user_id) DO UPDATE SET not_before_ms = excluded.not_before_ms"
    " WHERE access_revocations.not_before_ms < excluded.not_before_ms"
)
ACCESS_REVOCATIONS = (
    "SELECT user_id, not_before_ms FROM access_revocations WHERE not_before_ms >= $1"
)
PURGE_ACCESS_REVOCATIONS = "DELETE FROM access_revocations WHERE not_before_ms < $1"


def user_from_row(r: Sequence[Any]) -> User:
    return User(
        id=r[0],
        name=r[1],
        password_hash=r[3],
        rating=r[4],
        rd=r[5],
        volatility=r[6],
        games_count=r[7],
        created_at=r[8],
    )


def token_from_row(r: Sequence[Any]) -> RefreshToken:
    return RefreshToken(
        token_hash=r[0],
        user_id=r[1],
        created_at=r[2],
        expires_at=r[3],
        revoked_at=r[4],
        replaced_by=r[5],
    )


def _user_or_missing(row: Sequence[Any] | None, what: object) -> User:
    if row is None:
        raise NotFoundError(f"user {what} not found")
    return user_from_row(row)


def _token_or_missing(row: Sequence[Any] | None) -> RefreshToken:
    if row is None:
        raise NotFoundError("refresh token not found")
    return token_from_row(row)


class UserQueries(Backend):
    # -- users -------------------------------------------------------------------------------

    async def create_user(
        self,
        name: str,
        password_hash: str | None,
        *,
        rating: float = 1500.0,
        rd: float = 350.0,
        volatility: float = 0.06,
        key: str | None = None,
    ) -> User:
        """ConflictError when the name is taken: names are unique by ``key`` (default
        :func:`~goapp.store.schema.name_key`, i.e. ignoring case). Pass the same ``key``
        function's value to :meth:`get_user_by_name`."""
        args = (name, key or name_key(name), password_hash)
        plan = one(
            INSERT_USER, *args, float(rating), float(rd), float(volatility), utcnow(), table="users"
        )
        try:
            row = await self._write(plan)
        except ConflictError as e:  # the only unique key a new user can hit
            raise ConflictError(f"user name {name!r} is taken") from e
        return user_from_row(row)

    async def get_user(self, user_id: int) -> User:
        """NotFoundError when there is no such user."""
        return _user_or_missing(await self._read(one(GET_USER, user_id, table="users")), user_id)

    async def get_user_by_name(self, name: str, *, key: str | None = None) -> User:
        """Lookup by ``key`` (default ``name_key(name)``: ignoring case). NotFoundError when
        there is no such user."""
        row = await self._read(one(GET_USER_BY_NAME, key or name_key(name), table="users"))
        return _user_or_missing(row, repr(name))

    async def update_user_rating(
        self, user_id: int, *, rating: float, rd: float, volatility: float, games_count: int
    ) -> User:
        """Store a user's new rating (Glicko-2 fields) and game count."""
        args = (user_id, float(rating), float(rd), float(volatility), games_count)
        return _user_or_missing(
            await self._write(one(UPDATE_RATING, *args, table="users")), user_id
        )

    async def set_password_hash(self, user_id: int, password_hash: str | None) -> None:
        """Replace a user's password hash. NotFoundError when there is no such user."""
        if await self._write(one(SET_PASSWORD, user_id, password_hash)) is None:
            raise NotFoundError(f"user {user_id} not found")

    # -- sessions / refresh tokens -----------------------------------------------------------

    async def create_refresh_token(
        self, token_hash: str, user_id: int, expires_at: datetime
    ) -> RefreshToken:
        """Store the hash of a refresh token (never the token itself)."""
        plan = one(INSERT_TOKEN, token_hash, user_id, utcnow(), expires_at, table="refresh_tokens")
        return token_from_row(await self._write(plan))

    async def get_refresh_token(self, token_hash: str) -> RefreshToken:
        """NotFoundError when unknown. The caller checks ``revoked_at``/``expires_at``."""
        return _token_or_missing(
            await self._read(one(GET_TOKEN, token_hash, table="refresh_tokens"))
        )

    async def rotate_refresh_token(
        self,
        old_hash: str,
        new_hash: str,
        expires_at: datetime,
        *,
        now: datetime | None = None,
    ) -> RefreshToken:
        """Atomically revoke a valid token and issue its successor (same user), recording
        the successor in the old token's ``replaced_by``. ConflictError when the old token is
        revoked or expired (the caller reads it again to tell reuse from logout),
        NotFoundError when it is unknown."""
        when = check_dt(now or utcnow())
        check_dt(expires_at)

        def plan() -> Plan[RefreshToken]:
            revoked = yield from one(REVOKE_FOR_ROTATION, old_hash, when, new_hash)
            if revoked is None:
                _token_or_missing((yield from one(GET_TOKEN, old_hash)))
                raise ConflictError("refresh token already used, revoked or expired")
            args = (new_hash, revoked[0], when, expires_at)
            return token_from_row((yield from one(INSERT_TOKEN, *args, table="refresh_tokens")))

        return await self._write(plan(), atomic=True)

    async def revoke_refresh_token(self, token_hash: str) -> bool:
        """Revoke one token; False when it was unknown or already revoked."""
        return bool(await self._write(count(REVOKE_TOKEN, token_hash, utcnow())))

    async def revoke_user_tokens(self, user_id: int) -> int:
        """Revoke every live token of a user ("log out everywhere"); returns how many."""
        return await self._write(count(REVOKE_USER_TOKENS, user_id, utcnow()))

    async def purge_refresh_tokens(self, now: datetime | None = None) -> int:
        """Delete tokens that expired before ``now``; returns how many."""
        return await self._write(count(PURGE_TOKENS, now or utcnow()))

    # -- access-token revocations (migration 0007) -------------------------------------------

    async def revoke_access_tokens(self, user_id: int, not_before_ms: int) -> None:
        """Refuse ``user_id``'s access tokens issued before ``not_before_ms`` (epoch
        milliseconds); a later time replaces an earlier one, never the reverse."""
        await self._write(count(REVOKE_ACCESS, user_id, not_before_ms))

    async def access_revocations(self, since_ms: int) -> dict[int, int]:
        """User id -> not-before time (ms) of every revocation at or after ``since_ms``
        (older ones refuse only tokens that have expired anyway)."""
        found = await self._read(rows(ACCESS_REVOCATIONS, since_ms))
        return {int(r[0]): int(r[1]) for r in found}

    async def purge_access_revocations(self, before_ms: int) -> int:
        """Delete revocations older than ``before_ms``; returns how many."""
        return await self._write(count(PURGE_ACCESS_REVOCATIONS, before_ms))
