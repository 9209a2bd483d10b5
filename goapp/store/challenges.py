"""Challenges (one player invites another, or anyone) and automatch requests (the pool
that ``goapp.match`` pairs)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .errors import ConflictError, NotFoundError, StoreError
from .games import ACTIVE, check_start, start_game
from .records import (
    AUTOMATCH_SIZE_BITS,
    AUTOMATCH_SPEEDS,
    AutomatchRequest,
    Challenge,
    GameStart,
    NewGame,
)
from .schema import check_dt, cols, decode_json, encode_json, utcnow
from .seam import Backend, Plan, count, one, rows

CHALLENGE = cols("challenges")
AUTOMATCH = cols("automatch_requests")

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
COUNT_OPEN_BY = f"SELECT count(*) FROM challenges WHERE {_OPEN} AND challenger_id = $2"
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

# -- automatch (migration 0004_automatch) ------------------------------------------------------

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
#: A candidate request ``r`` is available to the claimer's user ``$2`` when it is waiting,
#: of another user, and the two users have no active game together. The backends' claim
#: statements (``_claim_automatch``) select ``CANDIDATE_COLUMNS`` from
#: ``automatch_requests AS r`` with this condition.
AVAILABLE = (
    "r.status = 'waiting' AND r.user_id <> $2 AND NOT EXISTS (SELECT 1 FROM games AS g"
    f" WHERE g.{ACTIVE} AND ((g.black_id = $2 AND g.white_id = r.user_id)"
    " OR (g.black_id = r.user_id AND g.white_id = $2)))"
)
CANDIDATE_COLUMNS = ", ".join("r." + c for c in AUTOMATCH.split(", "))
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


def challenge_from_row(r: Sequence[Any]) -> Challenge:
    return Challenge(
        id=r[0],
        challenger_id=r[1],
        target_id=r[2],
        params=decode_json(r[3]),
        status=r[4],
        created_at=r[5],
        expires_at=r[6],
        accepted_by=r[7],
        game_id=r[8],
    )


def automatch_from_row(r: Sequence[Any]) -> AutomatchRequest:
    return AutomatchRequest(
        id=r[0],
        user_id=r[1],
        speed=r[2],
        sizes=mask_to_sizes(r[3]),
        rated=bool(r[4]),
        rating=float(r[5]),
        status=r[6],
        created_at=r[7],
        closed_at=r[8],
        partner_id=r[9],
        opponent_id=r[10],
        game_id=r[11],
    )


def _automatch_or_none(row: Sequence[Any] | None) -> AutomatchRequest | None:
    return None if row is None else automatch_from_row(row)


def check_close_status(status: str) -> None:
    if status not in ("declined", "cancelled", "expired"):
        raise ValueError(
            f"a challenge can be closed as declined, cancelled or expired, not {status!r}"
        )


def accept_failure(
    challenge_id: int, acceptor_id: int, old: Challenge | None, now: datetime
) -> StoreError:
    """Why a conditional accept matched nothing."""
    if old is None:
        return NotFoundError(f"challenge {challenge_id} not found")
    if old.status != "open":
        return ConflictError(f"challenge {challenge_id} is already {old.status}")
    if old.expires_at is not None and old.expires_at <= now:
        return ConflictError(f"challenge {challenge_id} has expired")
    if old.challenger_id == acceptor_id:
        return ConflictError("cannot accept your own challenge")
    return ConflictError(f"challenge {challenge_id} is for another user")


def sizes_to_mask(sizes: Sequence[int]) -> int:
    mask = 0
    for size in sizes:
        if size not in AUTOMATCH_SIZE_BITS:
            raise ValueError(f"automatch board sizes are 9, 13 and 19, not {size}")
        mask |= AUTOMATCH_SIZE_BITS[size]
    if not mask:
        raise ValueError("an automatch request needs at least one board size")
    return mask


def mask_to_sizes(mask: int) -> tuple[int, ...]:
    return tuple(size for size, bit in AUTOMATCH_SIZE_BITS.items() if mask & bit)


def check_automatch_speed(speed: str) -> None:
    if speed not in AUTOMATCH_SPEEDS:
        raise ValueError(f"automatch speed is one of {', '.join(AUTOMATCH_SPEEDS)}, not {speed!r}")


class ChallengeQueries(Backend):
    # -- challenges --------------------------------------------------------------------------

    async def create_challenge(
        self,
        challenger_id: int,
        params: Any,
        *,
        target_id: int | None = None,
        expires_at: datetime | None = None,
    ) -> Challenge:
        """An open challenge (``target_id`` None: anyone may accept) or a direct one."""
        args = (challenger_id, target_id, encode_json(params), utcnow(), expires_at)
        return challenge_from_row(
            await self._write(one(INSERT_CHALLENGE, *args, table="challenges"))
        )

    async def get_challenge(self, challenge_id: int) -> Challenge:
        """NotFoundError when there is no such challenge."""
        row = await self._read(one(GET_CHALLENGE, challenge_id, table="challenges"))
        if row is None:
            raise NotFoundError(f"challenge {challenge_id} not found")
        return challenge_from_row(row)

    async def list_open_challenges(
        self, *, user_id: int | None = None, now: datetime | None = None, limit: int = 100
    ) -> list[Challenge]:
        """Open, unexpired challenges, oldest first. Without ``user_id``: the public ones
        (no target). With it: the public ones plus those sent to or by that user."""
        when = now or utcnow()
        if user_id is None:
            plan = rows(LIST_OPEN_PUBLIC, when, limit, table="challenges")
        else:
            plan = rows(LIST_OPEN_FOR_USER, when, limit, user_id, table="challenges")
        return [challenge_from_row(r) for r in await self._read(plan)]

    async def count_open_challenges(
        self, challenger_id: int, *, now: datetime | None = None
    ) -> int:
        """How many open, unexpired challenges ``challenger_id`` has made (public and
        direct): the per-user cap counts them."""
        row = await self._read(one(COUNT_OPEN_BY, now or utcnow(), challenger_id))
        return int(row[0])

    async def accept_challenge(
        self,
        challenge_id: int,
        acceptor_id: int,
        *,
        game: NewGame | GameStart | None = None,
        now: datetime | None = None,
    ) -> Challenge:
        """Accept an open, unexpired challenge. Exactly one of several concurrent acceptors
        wins; the others get ConflictError (so do the challenger, a user who is not the
        target, and late acceptors). When ``game`` is given, the game is created (and, for
        a :class:`GameStart`, started: its rated flag and first events) in the same
        transaction and its id recorded in the challenge's ``game_id``: if the game cannot
        be created (e.g. NotFoundError for an unknown player), the challenge stays open."""
        when = check_dt(now or utcnow())
        start = GameStart(game) if isinstance(game, NewGame) else game
        if start is not None:
            check_start(start)

        def plan() -> Plan[Challenge]:
            t = "challenges"
            row = yield from one(ACCEPT_CHALLENGE, challenge_id, acceptor_id, when, table=t)
            if row is None:
                old = yield from one(GET_CHALLENGE, challenge_id, table=t)
                old_challenge = None if old is None else challenge_from_row(old)
                raise accept_failure(challenge_id, acceptor_id, old_challenge, when)
            if start is not None:
                new_game = yield from start_game(self, start)
                row = yield from one(SET_CHALLENGE_GAME, challenge_id, new_game.id, table=t)
            return challenge_from_row(row)

        return await self._write(plan(), atomic=True)

    async def close_challenge(
        self, challenge_id: int, status: str, *, user_id: int | None = None
    ) -> Challenge:
        """Move an open challenge to ``declined``, ``cancelled`` or ``expired``. With
        ``user_id``, only a party to the challenge may do it. ConflictError when it is no
        longer open."""
        check_close_status(status)

        def plan() -> Plan[Challenge]:
            if user_id is None:
                row = yield from one(CLOSE_CHALLENGE, challenge_id, status, table="challenges")
            else:
                args = (challenge_id, status, user_id)
                row = yield from one(CLOSE_CHALLENGE_BY, *args, table="challenges")
            if row is None:
                old = yield from one(GET_CHALLENGE, challenge_id)
                if old is None:
                    raise NotFoundError(f"challenge {challenge_id} not found")
                raise ConflictError(f"challenge {challenge_id} is {old[4]!r}, or not yours")
            return challenge_from_row(row)

        return await self._write(plan())

    async def expire_challenges(self, now: datetime | None = None) -> int:
        """Mark open challenges past their ``expires_at`` as expired; returns how many."""
        return await self._write(count(EXPIRE_CHALLENGES, now or utcnow()))

    # -- automatch (migration 0004_automatch; goapp.match) -----------------------------------

    async def create_automatch_request(
        self,
        user_id: int,
        *,
        speed: str,
        sizes: Sequence[int],
        rated: bool,
        rating: float,
        now: datetime | None = None,
    ) -> tuple[AutomatchRequest, AutomatchRequest | None]:
        """A new waiting request of ``user_id``, and the user's previous waiting request,
        cancelled in the same transaction (None when there was none): a player has at most
        one waiting request. NotFoundError when the user does not exist."""
        check_automatch_speed(speed)
        args = (user_id, speed, sizes_to_mask(sizes), bool(rated), float(rating))
        when = check_dt(now or utcnow())

        def plan() -> Plan[tuple[AutomatchRequest, AutomatchRequest | None]]:
            t = "automatch_requests"
            old = yield from one(CANCEL_OF_USER, user_id, when, table=t)
            row = yield from one(INSERT_AUTOMATCH, *args, when, table=t)
            return automatch_from_row(row), _automatch_or_none(old)

        return await self._write(plan(), atomic=True)

    async def get_automatch_request(self, request_id: int) -> AutomatchRequest:
        """NotFoundError when there is no such request."""
        found = _automatch_or_none(
            await self._read(one(GET_AUTOMATCH, request_id, table="automatch_requests"))
        )
        if found is None:
            raise NotFoundError(f"automatch request {request_id} not found")
        return found

    async def waiting_automatch_request(self, user_id: int) -> AutomatchRequest | None:
        """The user's waiting request, if any."""
        return _automatch_or_none(
            await self._read(one(WAITING_OF_USER, user_id, table="automatch_requests"))
        )

    async def waiting_automatch_requests(
        self, speed: str | None = None, limit: int = 1000
    ) -> list[AutomatchRequest]:
        """Waiting requests (of one speed when given), oldest first."""
        if speed is None:
            plan = rows(WAITING_ALL, limit, table="automatch_requests")
        else:
            plan = rows(WAITING_OF_SPEED, limit, speed, table="automatch_requests")
        return [automatch_from_row(r) for r in await self._read(plan)]

    async def cancel_automatch_request(
        self, user_id: int, *, request_id: int | None = None, now: datetime | None = None
    ) -> AutomatchRequest | None:
        """Cancel the user's waiting request (only if its id is ``request_id``, when given);
        returns it, or None when there was none (or it was paired first)."""
        when = check_dt(now or utcnow())
        if request_id is None:
            plan = one(CANCEL_OF_USER, user_id, when, table="automatch_requests")
        else:
            plan = one(CANCEL_BY_ID, user_id, request_id, when, table="automatch_requests")
        return _automatch_or_none(await self._write(plan))

    async def claim_automatch_pair(
        self, request_id: int, candidate_ids: Sequence[int], *, now: datetime | None = None
    ) -> tuple[AutomatchRequest, AutomatchRequest] | None:
        """Pair the waiting request ``request_id`` with the first of ``candidate_ids`` (in
        that order) that is still waiting, belongs to another user and whose user has no
        active game with this one; both become ``paired`` in one transaction. Returns
        ``(request, partner)``, or None (nothing changed) when the request is no longer
        waiting, is being claimed by someone else right now, or no candidate is available.
        A request is paired at most once, across concurrent callers and instances."""
        when = check_dt(now or utcnow())
        ids = [i for i in candidate_ids if i != request_id]
        if not ids:
            return None

        def plan() -> Plan[tuple[AutomatchRequest, AutomatchRequest] | None]:
            found = yield from self._claim_automatch(request_id, ids)
            if found is None:
                return None
            own, other = found
            t = "automatch_requests"
            a = yield from one(MARK_PAIRED, request_id, other[0], other[1], when, table=t)
            b = yield from one(MARK_PAIRED, other[0], request_id, own[1], when, table=t)
            if a is None or b is None:  # cannot happen: both rows are locked by the claim
                raise ConflictError("automatch request changed during the claim")
            return automatch_from_row(a), automatch_from_row(b)

        return await self._write(plan(), atomic=True)

    async def set_automatch_game(self, request_ids: Sequence[int], game_id: int | None) -> int:
        """Record the game of paired requests; ``game_id`` None cancels them instead (the
        game could not be created). Returns how many requests changed."""
        ids = list(request_ids)

        def plan() -> Plan[int]:
            n = 0
            for rid in ids:
                if game_id is None:
                    n += yield from count(CANCEL_PAIRED, rid)
                else:
                    n += yield from count(SET_GAME, rid, game_id)
            return n

        return await self._write(plan(), atomic=True)
