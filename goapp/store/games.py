"""Games, their event logs, and chat."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .errors import ConflictError, NotFoundError
from .records import (
    ACTIVE_GAME_STATUSES,
    GAME_STATUSES,
    ChatMessage,
    Event,
    Game,
    GameChange,
    GameStart,
    NewEvent,
    NewGame,
)
from .schema import cols, decode_json, encode_json, sql_list, statuses, utcnow
from .seam import Backend, Plan, one, rows

GAME = cols("games")
EVENT = cols("game_events")
CHAT = cols("chat_messages")
#: a game that is not over (``records.ACTIVE_GAME_STATUSES``)
ACTIVE = f"status IN ({sql_list(ACTIVE_GAME_STATUSES)})"

INSERT_GAME = (
    "INSERT INTO games (black_id, white_id, black_bot, white_bot, width, height, komi, rules,"
    " handicap, time_control, status, created_at, last_seq)"
    f" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 0) RETURNING {GAME}"
)
GET_GAME = f"SELECT {GAME} FROM games WHERE id = $1"
SET_GAME_RATED = "UPDATE games SET rated = $2 WHERE id = $1 RETURNING id"
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
#: ``last_seqs`` asks for at most this many games per statement
LAST_SEQS_CHUNK = 500


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


def check_start(start: GameStart) -> None:
    check_new_game(start.game)
    if start.events:
        check_events(start.events)
        if start.events[0].seq != 1:
            raise ValueError(f"a new game's log starts at seq 1, not {start.events[0].seq}")


def insert_game(game: NewGame) -> Plan[Game]:
    """Insert a game (also used when a challenge is accepted)."""
    row = yield from one(
        INSERT_GAME,
        game.black_id,
        game.white_id,
        game.black_bot,
        game.white_bot,
        game.width,
        game.height,
        float(game.komi),
        game.rules,
        game.handicap,
        encode_json(game.time_control),
        game.status,
        utcnow(),
        table="games",
    )
    return game_from_row(row)


def start_game(backend: Backend, start: GameStart) -> Plan[Game]:
    """Insert a game, set its rated flag and append its first events (``start_game``, also
    run inside ``accept_challenge``); the caller makes the plan atomic."""
    game = yield from insert_game(start.game)
    if not start.rated:
        yield from one(SET_GAME_RATED, game.id, False)
    if not start.events:
        return game
    columns = {
        "last_seq": start.events[-1].seq,
        **(start.change.columns() if start.change is not None else {}),
    }
    sql, args = update_game_sql(columns, None, 0)
    items = [(e.seq, e.kind, encode_json(e.payload)) for e in start.events]
    at = start.at or utcnow()
    if not (yield from backend._append(sql, [game.id, *args], items, at)):
        raise ConflictError(f"game {game.id} changed while it was being started")
    row = yield from one(GET_GAME, game.id, table="games")
    return game_from_row(row)


def update_game_sql(
    columns: dict[str, Any], expect_status: Sequence[str] | None, expect_seq: int | None
) -> tuple[str, list[Any]]:
    """``UPDATE games SET ... WHERE id = $1 [AND status IN (...)] [AND last_seq = $k]``
    and its arguments after the game id (``$1``)."""
    args = [
        *columns.values(),
        *(expect_status or ()),
        *(() if expect_seq is None else [expect_seq]),
    ]
    n_status = None if expect_status is None else len(expect_status)
    return _update_game_text(tuple(columns), n_status, expect_seq is not None), args


@functools.lru_cache(maxsize=256)
def _update_game_text(names: tuple[str, ...], n_status: int | None, with_seq: bool) -> str:
    # the text depends only on the shape of the change: made once per shape
    sets = [f"{name} = ${i + 2}" for i, name in enumerate(names)] or ["id = id"]
    sql = f"UPDATE games SET {', '.join(sets)} WHERE id = $1"
    n = len(names) + 1  # the last $n used so far
    if n_status is not None:
        sql += f" AND status IN ({', '.join(f'${n + i + 1}' for i in range(n_status))})"
        n += n_status
    if with_seq:
        sql += f" AND last_seq = ${n + 1}"
    return sql


def _game_conflict(game_id: int, what: str) -> Plan[Exception]:
    """Why a conditional write to a game matched nothing."""
    state = yield from one(GAME_STATE, game_id)
    if state is None:
        return NotFoundError(f"game {game_id} not found")
    return ConflictError(f"{what} (game {game_id}: last_seq={state[0]} status={state[1]!r})")


class GameQueries(Backend):
    # -- games -------------------------------------------------------------------------------

    async def create_game(self, game: NewGame) -> Game:
        """Insert a game with ``last_seq = 0``. NotFoundError when a user id does not exist."""
        check_new_game(game)
        return await self._write(insert_game(game))

    async def start_game(self, start: GameStart) -> Game:
        """Create a game and append its first events in one transaction: either the game
        exists with all of them, or nothing was written. NotFoundError when a user id does
        not exist. Returns the game as it is after the events."""
        check_new_game(start.game)
        check_start(start)
        return await self._write(start_game(self, start), atomic=True)

    async def get_game(self, game_id: int) -> Game:
        """NotFoundError when there is no such game."""
        row = await self._read(one(GET_GAME, game_id, table="games"))
        if row is None:
            raise NotFoundError(f"game {game_id} not found")
        return game_from_row(row)

    async def _games(self, sql: str, *args: Any) -> list[Game]:
        return [game_from_row(r) for r in await self._read(rows(sql, *args, table="games"))]

    async def list_active_games(self, user_id: int) -> list[Game]:
        """Games of the user (either colour) that are open, playing or scoring; newest
        first."""
        return await self._games(ACTIVE_GAMES, user_id)

    async def list_active_bot_games(self, limit: int = 1000) -> list[Game]:
        """Open, playing or scoring games with a bot on either side, oldest first (the bot
        driver resumes them at start-up)."""
        return await self._games(ACTIVE_BOT_GAMES, limit)

    async def list_recent_finished(
        self, limit: int = 50, *, before: datetime | None = None
    ) -> list[Game]:
        """Finished games, most recently finished first; ``before`` pages back in time."""
        if before is None:
            return await self._games(RECENT_FINISHED, limit)
        return await self._games(RECENT_FINISHED_BEFORE, limit, before)

    async def expired_games(self, now: datetime | None = None, limit: int = 100) -> list[Game]:
        """Active games whose deadline is at or before ``now`` (default: the current time),
        earliest deadline first. Any instance may end them: append the timeout event with
        ``seq = last_seq + 1`` (and the status change, in the same call); exactly one
        instance wins, the others get ConflictError."""
        return await self._games(EXPIRED_GAMES, now or utcnow(), limit)

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
        sql, args = update_game_sql(change.columns(), statuses(expect_status), expect_seq)

        def plan() -> Plan[Game]:
            row = yield from one(f"{sql} RETURNING {GAME}", game_id, *args, table="games")
            if row is None:
                raise (yield from _game_conflict(game_id, "game changed"))
            return game_from_row(row)

        return await self._write(plan())

    async def set_deadline(
        self, game_id: int, deadline: datetime | None, *, expect_seq: int | None = None
    ) -> Game:
        """Set (or clear) the clock deadline; conditional on ``last_seq`` when given."""
        return await self.update_game(game_id, GameChange(deadline=deadline), expect_seq=expect_seq)

    async def last_seqs(self, game_ids: Sequence[int]) -> dict[int, int]:
        """``last_seq`` of each existing game of ``game_ids`` (one query per 500 ids): the
        bus compares it with what it delivered to find events whose message was lost."""
        ids = [int(g) for g in game_ids]

        def plan() -> Plan[dict[int, int]]:
            out: dict[int, int] = {}
            for i in range(0, len(ids), LAST_SEQS_CHUNK):
                where, args = self._id_in("id", 1, ids[i : i + LAST_SEQS_CHUNK])
                found = yield from rows(f"SELECT id, last_seq FROM games WHERE {where}", *args)
                out.update((r[0], r[1]) for r in found)
            return out

        return await self._read(plan())

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
        check_events(events)
        first, last = events[0].seq, events[-1].seq
        # last_seq moves from first - 1 to last: the condition is the lock (see docs/storage.md)
        columns = {"last_seq": last, **(change.columns() if change is not None else {})}
        sql, args = update_game_sql(columns, statuses(expect_status), first - 1)
        items = [(e.seq, e.kind, encode_json(e.payload)) for e in events]
        now = utcnow()

        try:
            appended = await self._write(self._append(sql, [game_id, *args], items, now))
        except ConflictError as e:  # the primary key backs up the last_seq condition
            raise ConflictError(f"seq {first} of game {game_id} is taken") from e
        if not appended:
            raise await self._read(_game_conflict(game_id, f"cannot append seq {first}"))
        return [
            Event(game_id=game_id, seq=e.seq, kind=e.kind, payload=e.payload, created_at=now)
            for e in events
        ]

    async def events_since(
        self, game_id: int, seq: int = 0, *, limit: int | None = None
    ) -> list[Event]:
        """Events with ``seq > seq`` in order (``events_since(g, 0)`` is the whole log).
        An unknown game has an empty log."""
        if limit is None:
            plan = rows(EVENTS_SINCE, game_id, seq, table="game_events")
        else:
            plan = rows(EVENTS_SINCE_LIMIT, game_id, seq, limit, table="game_events")
        return [event_from_row(r) for r in await self._read(plan)]

    # -- chat --------------------------------------------------------------------------------

    async def add_chat(self, room: str, user_id: int | None, text: str) -> ChatMessage:
        """Store a chat line. ``room`` is e.g. ``"lobby"`` or ``"game:42"``; ``user_id``
        None is a system message."""
        plan = one(INSERT_CHAT, room, user_id, text, utcnow(), table="chat_messages")
        return chat_from_row(await self._write(plan))

    async def list_chat(
        self, room: str, *, limit: int = 50, before_id: int | None = None
    ) -> list[ChatMessage]:
        """The latest ``limit`` messages of a room (older than ``before_id`` when given),
        oldest first."""
        if before_id is None:
            plan = rows(LIST_CHAT, room, limit, table="chat_messages")
        else:
            plan = rows(LIST_CHAT_BEFORE, room, limit, before_id, table="chat_messages")
        return [chat_from_row(r) for r in await self._read(plan)]
