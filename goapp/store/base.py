"""The storage interface: one abstract :class:`Store`, implemented by
:class:`~goapp.store.sqlite.SQLiteStore` and :class:`~goapp.store.postgres.PostgresStore`.

Both backends pass the same test suite (``tests/test_store*.py``); callers must not care
which one they have. Every method either succeeds or raises a
:class:`~goapp.store.errors.StoreError` subclass.
"""

from __future__ import annotations

import abc
import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, ClassVar

import msgspec

from .errors import ConflictError, NotFoundError, StoreError
from .records import (
    GAME_STATUSES,
    AnalysisTurn,
    AutomatchRequest,
    Challenge,
    ChatMessage,
    Event,
    Game,
    GameChange,
    LeaderboardEntry,
    NewEvent,
    NewGame,
    PoolRating,
    RatingHistoryEntry,
    RatingUpdate,
    RefreshToken,
    User,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_json_encoder = msgspec.json.Encoder()
_json_decoder = msgspec.json.Decoder()

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


def utcnow() -> datetime:
    return datetime.now(UTC)


def check_dt(value: datetime) -> datetime:
    """Refuse naive datetimes (they would mean different instants on each backend)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"timezone-aware datetime required, got naive {value!r}")
    return value.astimezone(UTC)


def dt_to_us(value: datetime) -> int:
    return (check_dt(value) - EPOCH) // _US


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
    if value is None:
        return None
    out = (value,) if isinstance(value, str) else tuple(value)
    if not out:
        raise ValueError("expect_status must name at least one status")
    return out


class Store(abc.ABC):
    """Storage for goapp: users, games and their event logs, chat, challenges, tokens.

    Open one with :func:`goapp.store.open_store`; close it with :meth:`close` (or use
    ``async with``). Methods are safe to call concurrently from many tasks.
    """

    #: ``"sqlite"`` or ``"postgres"``
    backend: ClassVar[str]

    def __init__(self, url: str) -> None:
        self.url = url

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
    async def ping(self) -> None:
        """Round-trip to the database (``/readyz``); StoreUnavailableError when it is down."""

    # -- users -------------------------------------------------------------------------------

    @abc.abstractmethod
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
        :func:`name_key`, i.e. ignoring case). Pass the same ``key`` function's value to
        :meth:`get_user_by_name`."""

    @abc.abstractmethod
    async def get_user(self, user_id: int) -> User:
        """NotFoundError when there is no such user."""

    @abc.abstractmethod
    async def get_user_by_name(self, name: str, *, key: str | None = None) -> User:
        """Lookup by ``key`` (default :func:`name_key` of ``name``: ignoring case).
        NotFoundError when there is no such user."""

    @abc.abstractmethod
    async def update_user_rating(
        self, user_id: int, *, rating: float, rd: float, volatility: float, games_count: int
    ) -> User:
        """Store a user's new rating (Glicko-2 fields) and game count."""

    @abc.abstractmethod
    async def set_password_hash(self, user_id: int, password_hash: str | None) -> None:
        """Replace a user's password hash. NotFoundError when there is no such user."""

    # -- games -------------------------------------------------------------------------------

    @abc.abstractmethod
    async def create_game(self, game: NewGame) -> Game:
        """Insert a game with ``last_seq = 0``. NotFoundError when a user id does not exist."""

    @abc.abstractmethod
    async def get_game(self, game_id: int) -> Game:
        """NotFoundError when there is no such game."""

    @abc.abstractmethod
    async def list_active_games(self, user_id: int) -> list[Game]:
        """Games of the user (either colour) that are open, playing or scoring; newest
        first."""

    @abc.abstractmethod
    async def list_recent_finished(
        self, limit: int = 50, *, before: datetime | None = None
    ) -> list[Game]:
        """Finished games, most recently finished first; ``before`` pages back in time."""

    @abc.abstractmethod
    async def update_game(
        self,
        game_id: int,
        change: GameChange,
        *,
        expect_status: str | Sequence[str] | None = None,
        expect_seq: int | None = None,
    ) -> Game:
        """Change columns of a game if (and only if) its status is one of ``expect_status``
        and its ``last_seq`` equals ``expect_seq`` (when given). ConflictError when the
        condition fails (someone else changed the game first), NotFoundError when the game
        does not exist. Returns the updated game."""

    async def set_deadline(
        self, game_id: int, deadline: datetime | None, *, expect_seq: int | None = None
    ) -> Game:
        """Set (or clear) the clock deadline; conditional on ``last_seq`` when given."""
        return await self.update_game(game_id, GameChange(deadline=deadline), expect_seq=expect_seq)

    @abc.abstractmethod
    async def expired_games(self, now: datetime | None = None, limit: int = 100) -> list[Game]:
        """Active games whose deadline is at or before ``now`` (default: the current time),
        earliest deadline first. Any instance may end them: append the timeout event with
        ``seq = last_seq + 1`` (and the status change, in the same call); exactly one
        instance wins, the others get ConflictError."""

    @abc.abstractmethod
    async def list_active_bot_games(self, limit: int = 1000) -> list[Game]:
        """Open, playing or scoring games with a bot on either side, oldest first (the bot
        driver resumes them at start-up)."""

    # -- AI review ---------------------------------------------------------------------------

    @abc.abstractmethod
    async def save_analysis(self, game_id: int, turns: Sequence[tuple[int, Any]]) -> int:
        """Store ``(turn, payload)`` rows of a game's review in one transaction, replacing
        rows of the same turns; returns how many were written. NotFoundError when the game
        does not exist."""

    @abc.abstractmethod
    async def load_analysis(self, game_id: int) -> list[AnalysisTurn]:
        """The stored review rows of a game, by turn (empty when there are none)."""

    # -- ratings (migration 0003_ratings) ----------------------------------------------------

    @abc.abstractmethod
    async def get_ratings(self, user_id: int) -> dict[str, PoolRating]:
        """A user's ratings by pool (``"overall"``, ``"9"``, ``"13"``, ``"19"``); pools the
        user has no rated game in are absent."""

    @abc.abstractmethod
    async def apply_rating_update(
        self, game_id: int, updates: Sequence[RatingUpdate], *, now: datetime | None = None
    ) -> bool:
        """Record a rated game: history rows for ``game_id`` and the new ratings, in one
        transaction (the ``overall`` pool is mirrored in the user's row). Returns False,
        changing nothing, when the game already has history rows: a rating update applies
        exactly once, across retries and instances. ConflictError (nothing changed) when a
        rating changed since it was read (``games_before``): recompute and retry."""

    @abc.abstractmethod
    async def rating_history(
        self, user_id: int, pool: str, limit: int = 500
    ) -> list[RatingHistoryEntry]:
        """The latest ``limit`` rated games of a user in a pool, oldest first."""

    @abc.abstractmethod
    async def leaderboard(
        self, pool: str, limit: int = 50, *, max_rd: float | None = None
    ) -> list[LeaderboardEntry]:
        """The highest ratings of a pool (only RD below ``max_rd`` when given)."""

    @abc.abstractmethod
    async def is_game_rated(self, game_id: int) -> bool:
        """The game's ``rated`` flag (default true). NotFoundError when there is no game."""

    @abc.abstractmethod
    async def set_game_rated(self, game_id: int, rated: bool) -> None:
        """Set the game's ``rated`` flag. NotFoundError when there is no game."""

    @abc.abstractmethod
    async def unrated_finished_games(self, limit: int = 100) -> list[Game]:
        """Finished rated games between two users with no rating history yet, the earliest
        finished first (``RatingService.catch_up``)."""

    # -- the event log -----------------------------------------------------------------------

    async def append_event(
        self,
        game_id: int,
        seq: int,
        kind: str,
        payload: Any = None,
        *,
        change: GameChange | None = None,
        expect_status: str | Sequence[str] | None = None,
    ) -> Event:
        """Append one event. It commits only if ``seq == last_seq + 1`` (and the game's status
        is in ``expect_status`` when given); ``change`` is applied to the game in the same
        transaction. ConflictError when another writer took ``seq`` first (or the status
        check failed); NotFoundError when the game does not exist. Returns after the commit:
        an acknowledged event survives kill -9 and restarts."""
        events = await self.append_events(
            game_id, [NewEvent(seq, kind, payload)], change=change, expect_status=expect_status
        )
        return events[0]

    @abc.abstractmethod
    async def append_events(
        self,
        game_id: int,
        events: Sequence[NewEvent],
        *,
        change: GameChange | None = None,
        expect_status: str | Sequence[str] | None = None,
    ) -> list[Event]:
        """Append several consecutive events atomically: all commit or none does. The first
        must have ``seq == last_seq + 1`` and the others follow without gaps."""

    @abc.abstractmethod
    async def events_since(
        self, game_id: int, seq: int = 0, *, limit: int | None = None
    ) -> list[Event]:
        """Events with ``seq > seq`` in order (``events_since(g, 0)`` is the whole log).
        An unknown game has an empty log."""

    # -- chat --------------------------------------------------------------------------------

    @abc.abstractmethod
    async def add_chat(self, room: str, user_id: int | None, text: str) -> ChatMessage:
        """Store a chat line. ``room`` is e.g. ``"lobby"`` or ``"game:42"``; ``user_id``
        None is a system message."""

    @abc.abstractmethod
    async def list_chat(
        self, room: str, *, limit: int = 50, before_id: int | None = None
    ) -> list[ChatMessage]:
        """The latest ``limit`` messages of a room (older than ``before_id`` when given),
        oldest first."""

    # -- challenges --------------------------------------------------------------------------

    @abc.abstractmethod
    async def create_challenge(
        self,
        challenger_id: int,
        params: Any,
        *,
        target_id: int | None = None,
        expires_at: datetime | None = None,
    ) -> Challenge:
        """An open challenge (``target_id`` None: anyone may accept) or a direct one."""

    @abc.abstractmethod
    async def get_challenge(self, challenge_id: int) -> Challenge:
        """NotFoundError when there is no such challenge."""

    @abc.abstractmethod
    async def list_open_challenges(
        self, *, user_id: int | None = None, now: datetime | None = None, limit: int = 100
    ) -> list[Challenge]:
        """Open, unexpired challenges, oldest first. Without ``user_id``: the public ones
        (no target). With it: the public ones plus those sent to or by that user."""

    @abc.abstractmethod
    async def accept_challenge(
        self,
        challenge_id: int,
        acceptor_id: int,
        *,
        game: NewGame | None = None,
        now: datetime | None = None,
    ) -> Challenge:
        """Accept an open, unexpired challenge. Exactly one of several concurrent acceptors
        wins; the others get ConflictError (so do the challenger, a user who is not the
        target, and late acceptors). When ``game`` is given, the game is created in the same
        transaction and its id recorded in the challenge's ``game_id``."""

    @abc.abstractmethod
    async def close_challenge(
        self, challenge_id: int, status: str, *, user_id: int | None = None
    ) -> Challenge:
        """Move an open challenge to ``declined``, ``cancelled`` or ``expired``. With
        ``user_id``, only a party to the challenge may do it. ConflictError when it is no
        longer open."""

    @abc.abstractmethod
    async def expire_challenges(self, now: datetime | None = None) -> int:
        """Mark open challenges past their ``expires_at`` as expired; returns how many."""

    # -- sessions / refresh tokens -----------------------------------------------------------

    @abc.abstractmethod
    async def create_refresh_token(
        self, token_hash: str, user_id: int, expires_at: datetime
    ) -> RefreshToken:
        """Store the hash of a refresh token (never the token itself)."""

    @abc.abstractmethod
    async def get_refresh_token(self, token_hash: str) -> RefreshToken:
        """NotFoundError when unknown. The caller checks ``revoked_at``/``expires_at``."""

    @abc.abstractmethod
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

    @abc.abstractmethod
    async def revoke_refresh_token(self, token_hash: str) -> bool:
        """Revoke one token; False when it was unknown or already revoked."""

    @abc.abstractmethod
    async def revoke_user_tokens(self, user_id: int) -> int:
        """Revoke every live token of a user ("log out everywhere"); returns how many."""

    @abc.abstractmethod
    async def purge_refresh_tokens(self, now: datetime | None = None) -> int:
        """Delete tokens that expired before ``now``; returns how many."""

    # -- access-token revocations (migration 0007) ---------------------------------------------

    @abc.abstractmethod
    async def revoke_access_tokens(self, user_id: int, not_before_ms: int) -> None:
        """Refuse ``user_id``'s access tokens issued before ``not_before_ms`` (epoch
        milliseconds); a later time replaces an earlier one, never the reverse."""

    @abc.abstractmethod
    async def access_revocations(self, since_ms: int) -> dict[int, int]:
        """User id -> not-before time (ms) of every revocation at or after ``since_ms``
        (older ones refuse only tokens that have expired anyway)."""

    @abc.abstractmethod
    async def purge_access_revocations(self, before_ms: int) -> int:
        """Delete revocations older than ``before_ms``; returns how many."""

    # -- whole-table access for `goapp db copy` -----------------------------------------------

    @abc.abstractmethod
    async def dump_rows(
        self, table: str, after: tuple[Any, ...] | None, limit: int
    ) -> list[tuple[Any, ...]]:
        """Rows of ``table`` in primary-key order after the key ``after``, in the neutral
        form (datetimes aware UTC, JSON as text), columns as in :data:`COLUMNS`."""

    @abc.abstractmethod
    async def load_rows(self, table: str, rows: Sequence[tuple[Any, ...]]) -> int:
        """Insert rows in the neutral form, skipping those whose primary key exists;
        returns how many were inserted. Called in dependency order by ``copy``."""

    @abc.abstractmethod
    async def finish_load(self) -> None:
        """After ``load_rows``: move id sequences past the loaded ids."""

    # -- automatch (migration 0004_automatch; goapp.match) -----------------------------------

    @abc.abstractmethod
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

    @abc.abstractmethod
    async def get_automatch_request(self, request_id: int) -> AutomatchRequest:
        """NotFoundError when there is no such request."""

    @abc.abstractmethod
    async def waiting_automatch_request(self, user_id: int) -> AutomatchRequest | None:
        """The user's waiting request, if any."""

    @abc.abstractmethod
    async def waiting_automatch_requests(
        self, speed: str | None = None, limit: int = 1000
    ) -> list[AutomatchRequest]:
        """Waiting requests (of one speed when given), oldest first."""

    @abc.abstractmethod
    async def cancel_automatch_request(
        self, user_id: int, *, request_id: int | None = None, now: datetime | None = None
    ) -> AutomatchRequest | None:
        """Cancel the user's waiting request (only if its id is ``request_id``, when given);
        returns it, or None when there was none (or it was paired first)."""

    @abc.abstractmethod
    async def claim_automatch_pair(
        self, request_id: int, candidate_ids: Sequence[int], *, now: datetime | None = None
    ) -> tuple[AutomatchRequest, AutomatchRequest] | None:
        """Pair the waiting request ``request_id`` with the first of ``candidate_ids`` (in
        that order) that is still waiting, belongs to another user and whose user has no
        active game with this one; both become ``paired`` in one transaction. Returns
        ``(request, partner)``, or None (nothing changed) when the request is no longer
        waiting, is being claimed by someone else right now, or no candidate is available.
        A request is paired at most once, across concurrent callers and instances."""

    @abc.abstractmethod
    async def set_automatch_game(self, request_ids: Sequence[int], game_id: int | None) -> int:
        """Record the game of paired requests; ``game_id`` None cancels them instead (the
        game could not be created). Returns how many requests changed."""

    # -- leases (migration 0006) ---------------------------------------------------------------

    @abc.abstractmethod
    async def acquire_lease(self, name: str, holder: str, ttl_ms: int, now_ms: int) -> bool:
        """Take or renew the lease ``name`` for ``holder`` until ``now_ms + ttl_ms`` when it
        is free, expired or already ``holder``'s (one conditional upsert). False when
        another holder's lease is live. Times are epoch milliseconds of the callers' clocks
        (keep them in sync: NTP)."""

    @abc.abstractmethod
    async def release_lease(self, name: str, holder: str) -> bool:
        """Give the lease up if ``holder`` holds it; False otherwise."""

    @abc.abstractmethod
    async def last_seqs(self, game_ids: Sequence[int]) -> dict[int, int]:
        """``last_seq`` of each existing game of ``game_ids`` (one query per 500 ids): the
        bus compares it with what it delivered to find events whose message was lost."""


#: Columns of each table in the neutral form used by dump_rows/load_rows; the first
#: ``PRIMARY_KEYS[table]`` columns are the primary key.
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
TIMESTAMP_COLUMNS = frozenset(
    {
        "created_at",
        "started_at",
        "finished_at",
        "deadline",
        "expires_at",
        "revoked_at",
        "updated_at",
    }
)
#: Boolean columns (SQLite stores 0/1; the neutral form is a bool).
BOOL_COLUMNS = frozenset({"rated"})
#: Tables with an integer identity ``id`` whose sequence must follow copied rows.
IDENTITY_TABLES = ("users", "games", "chat_messages", "challenges")


# -- row -> record (rows come in the column order of COLUMNS, timestamps converted) ---------


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


def game_from_row(r: Sequence[Any]) -> Game:
    return Game(
        id=r[0],
        black_id=r[1],
        white_id=r[2],
        black_bot=r[3],
        white_bot=r[4],
        width=r[5],
        height=r[6],
        komi=r[7],
        rules=r[8],
        handicap=r[9],
        time_control=decode_json(r[10]),
        status=r[11],
        result=r[12],
        created_at=r[13],
        started_at=r[14],
        finished_at=r[15],
        last_seq=r[16],
        deadline=r[17],
    )


def event_from_row(r: Sequence[Any]) -> Event:
    return Event(game_id=r[0], seq=r[1], kind=r[2], payload=decode_json(r[3]), created_at=r[4])


def chat_from_row(r: Sequence[Any]) -> ChatMessage:
    return ChatMessage(id=r[0], room=r[1], user_id=r[2], text=r[3], created_at=r[4])


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


def token_from_row(r: Sequence[Any]) -> RefreshToken:
    return RefreshToken(
        token_hash=r[0],
        user_id=r[1],
        created_at=r[2],
        expires_at=r[3],
        revoked_at=r[4],
        replaced_by=r[5],
    )


def check_new_game(game: NewGame) -> None:
    if game.status not in GAME_STATUSES:
        raise ValueError(f"unknown game status {game.status!r}")
    if not (1 <= game.width <= 52 and 1 <= game.height <= 52):
        raise ValueError(f"board size {game.width}x{game.height} is out of range (1..52)")
    if game.handicap < 0:
        raise ValueError(f"negative handicap {game.handicap}")


def check_events(events: Sequence[NewEvent]) -> None:
    if not events:
        raise ValueError("append_events needs at least one event")
    first = events[0].seq
    if first < 1:
        raise ValueError(f"event seq starts at 1, got {first}")
    for i, e in enumerate(events):
        if e.seq != first + i:
            raise ValueError(f"events must have consecutive seq, got {[x.seq for x in events]}")


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


class RatingAlreadyApplied(ConflictError):
    """Internal to :meth:`Store.apply_rating_update`: the game has history rows already
    (raised inside the transaction to roll it back; the method returns False)."""


def check_rating_updates(updates: Sequence[RatingUpdate]) -> None:
    from .records import RATING_POOLS

    if not updates:
        raise ValueError("apply_rating_update needs at least one update")
    for u in updates:
        if u.pool not in RATING_POOLS:
            raise ValueError(f"unknown rating pool {u.pool!r}")


def rating_from_row(r: Sequence[Any]) -> PoolRating:
    return PoolRating(
        user_id=r[0],
        pool=r[1],
        rating=r[2],
        rd=r[3],
        volatility=r[4],
        games=r[5],
        updated_at=r[6],
    )


def history_from_row(r: Sequence[Any]) -> RatingHistoryEntry:
    return RatingHistoryEntry(
        game_id=r[0],
        user_id=r[1],
        pool=r[2],
        rating_before=r[3],
        rating_after=r[4],
        rd_after=r[5],
        created_at=r[6],
    )


def leader_from_row(r: Sequence[Any]) -> LeaderboardEntry:
    return LeaderboardEntry(
        user_id=r[0], name=r[1], rating=r[2], rd=r[3], volatility=r[4], games=r[5]
    )


# -- automatch ------------------------------------------------------------------------------

#: Columns of ``automatch_requests`` in the order of :func:`automatch_from_row`.
AUTOMATCH_COLUMNS = (
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
)


def sizes_to_mask(sizes: Sequence[int]) -> int:
    from .records import AUTOMATCH_SIZE_BITS

    mask = 0
    for size in sizes:
        if size not in AUTOMATCH_SIZE_BITS:
            raise ValueError(f"automatch board sizes are 9, 13 and 19, not {size}")
        mask |= AUTOMATCH_SIZE_BITS[size]
    if not mask:
        raise ValueError("an automatch request needs at least one board size")
    return mask


def mask_to_sizes(mask: int) -> tuple[int, ...]:
    from .records import AUTOMATCH_SIZE_BITS

    return tuple(size for size, bit in AUTOMATCH_SIZE_BITS.items() if mask & bit)


def check_automatch_speed(speed: str) -> None:
    from .records import AUTOMATCH_SPEEDS

    if speed not in AUTOMATCH_SPEEDS:
        raise ValueError(f"automatch speed is one of {', '.join(AUTOMATCH_SPEEDS)}, not {speed!r}")


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
