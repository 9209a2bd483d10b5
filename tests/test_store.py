"""The storage interface, run against both backends (SQLite and a real PostgreSQL)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from goapp.store import (
    ConflictError,
    Game,
    GameChange,
    GameStart,
    NewEvent,
    NewGame,
    NotFoundError,
    RatingUpdate,
    Store,
    StoreUnavailableError,
    backend_of,
    open_store,
    sqlite_path,
)
from goapp.store.postgres import PostgresStore
from goapp.store.sqlite import SQLiteStore

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


async def _players(store: Store) -> tuple[int, int]:
    a = await store.create_user("alice", "hash-a")
    b = await store.create_user("bob", "hash-b")
    return a.id, b.id


async def _game(store: Store, **kw: object) -> int:
    a, b = await _players(store)
    game = await store.create_game(NewGame(black_id=a, white_id=b, **kw))  # type: ignore[arg-type]
    return game.id


# -- users -------------------------------------------------------------------------------------


async def test_users_unique_ignoring_case(store: Store) -> None:
    u = await store.create_user("Alice", "h1", rating=1600.0)
    assert u.name == "Alice" and u.password_hash == "h1" and u.rating == 1600.0
    assert u.rd == 350.0 and u.games_count == 0
    assert u.created_at.tzinfo is not None
    assert await store.get_user(u.id) == u
    assert await store.get_user_by_name("aLICE") == u
    with pytest.raises(ConflictError):
        await store.create_user("ALICE", "h2")
    s = await store.create_user("Straße", None)  # Unicode case folding, both backends
    with pytest.raises(ConflictError):
        await store.create_user("STRASSE", None)
    assert (await store.get_user_by_name("strasse")).id == s.id
    # NFKC: the fullwidth form of a name is the same name
    with pytest.raises(ConflictError):
        await store.create_user("\uff21\uff2c\uff29\uff23\uff25", None)  # fullwidth ALICE
    # a caller-supplied key (the server's stricter policy) is what must be unique
    bob = await store.create_user("Bob", None, key="b0b")
    with pytest.raises(ConflictError):
        await store.create_user("B0B", None, key="b0b")
    assert await store.get_user_by_name("whatever", key="b0b") == bob
    with pytest.raises(NotFoundError):
        await store.get_user(10_000)
    with pytest.raises(NotFoundError):
        await store.get_user_by_name("nobody")


async def test_user_rating_and_password(store: Store) -> None:
    u = await store.create_user("carol", "h")
    r = await store.update_user_rating(
        u.id, rating=1712.5, rd=80.25, volatility=0.059, games_count=3
    )
    assert (r.rating, r.rd, r.volatility, r.games_count) == (1712.5, 80.25, 0.059, 3)
    assert await store.get_user(u.id) == r
    await store.set_password_hash(u.id, "new")
    assert (await store.get_user(u.id)).password_hash == "new"
    with pytest.raises(NotFoundError):
        await store.set_password_hash(999, "x")
    with pytest.raises(NotFoundError):
        await store.update_user_rating(999, rating=1, rd=1, volatility=1, games_count=1)


# -- games -------------------------------------------------------------------------------------


async def test_game_create_and_get(store: Store) -> None:
    a, _ = await _players(store)
    g = await store.create_game(
        NewGame(
            width=9,
            height=13,
            komi=6.5,
            rules="chinese",
            handicap=2,
            time_control={"type": "byoyomi", "main": 600, "periods": 5, "period": 30},
            black_id=a,
            white_bot="katago:b6",
        )
    )
    assert (g.width, g.height, g.komi, g.rules, g.handicap) == (9, 13, 6.5, "chinese", 2)
    assert g.time_control == {"type": "byoyomi", "main": 600, "periods": 5, "period": 30}
    assert g.black_id == a and g.white_id is None and g.white_bot == "katago:b6"
    assert g.status == "open" and g.last_seq == 0 and g.deadline is None
    assert await store.get_game(g.id) == g
    with pytest.raises(NotFoundError):
        await store.get_game(12345)
    with pytest.raises(NotFoundError):  # unknown user id
        await store.create_game(NewGame(black_id=9999))
    with pytest.raises(ValueError):
        await store.create_game(NewGame(status="bogus"))
    with pytest.raises(ValueError):
        await store.create_game(NewGame(width=0))


async def test_active_and_recent_finished_games(store: Store) -> None:
    a, b = await _players(store)
    c = (await store.create_user("carol", None)).id
    g1 = await store.create_game(NewGame(black_id=a, white_id=b))
    g2 = await store.create_game(NewGame(black_id=b, white_id=a, status="playing"))
    g3 = await store.create_game(NewGame(black_id=a, white_bot="gnugo", status="scoring"))
    g4 = await store.create_game(NewGame(black_id=c, white_id=b))
    assert [g.id for g in await store.list_active_games(a)] == [g3.id, g2.id, g1.id]
    assert [g.id for g in await store.list_active_games(c)] == [g4.id]
    for i, g in enumerate((g1, g2, g3)):
        await store.update_game(
            g.id,
            GameChange(status="finished", result="B+R", finished_at=T0 + timedelta(minutes=i)),
        )
    await store.update_game(g4.id, GameChange(status="aborted"))
    assert await store.list_active_games(a) == []
    assert await store.list_active_games(c) == []
    recent = await store.list_recent_finished(10)
    assert [g.id for g in recent] == [g3.id, g2.id, g1.id]  # aborted games are not listed
    assert recent[0].result == "B+R" and recent[0].finished_at == T0 + timedelta(minutes=2)
    assert [g.id for g in await store.list_recent_finished(2)] == [g3.id, g2.id]
    older = await store.list_recent_finished(10, before=T0 + timedelta(minutes=2))
    assert [g.id for g in older] == [g2.id, g1.id]


async def test_update_game_is_conditional(store: Store) -> None:
    gid = await _game(store)
    g = await store.update_game(
        gid, GameChange(status="playing", started_at=T0), expect_status="open", expect_seq=0
    )
    assert g.status == "playing" and g.started_at == T0
    with pytest.raises(ConflictError):  # status moved on
        await store.update_game(gid, GameChange(status="playing"), expect_status="open")
    with pytest.raises(ConflictError):  # seq moved on
        await store.update_game(gid, GameChange(result="x"), expect_seq=5)
    with pytest.raises(NotFoundError):
        await store.update_game(9999, GameChange(status="aborted"))
    with pytest.raises(ValueError):
        await store.update_game(gid, GameChange(status="nonsense"))
    assert (await store.get_game(gid)).result is None


async def test_deadlines(store: Store) -> None:
    gid = await _game(store, status="playing")
    other = await store.create_game(NewGame(status="playing"))
    await store.set_deadline(gid, T0 + timedelta(seconds=30), expect_seq=0)
    await store.set_deadline(other.id, T0 + timedelta(seconds=10))
    assert await store.expired_games(T0) == []
    assert [g.id for g in await store.expired_games(T0 + timedelta(seconds=10))] == [other.id]
    due = await store.expired_games(T0 + timedelta(minutes=1))
    assert [g.id for g in due] == [other.id, gid]
    assert due[1].deadline == T0 + timedelta(seconds=30)
    with pytest.raises(ConflictError):
        await store.set_deadline(gid, T0, expect_seq=3)
    # finishing a game clears its deadline
    g = await store.update_game(other.id, GameChange(status="finished", result="W+T"))
    assert g.deadline is None
    assert [g.id for g in await store.expired_games(T0 + timedelta(minutes=1))] == [gid]
    with pytest.raises(ValueError):
        await store.expired_games(datetime(2026, 1, 1))  # naive datetimes are refused


# -- the event log -----------------------------------------------------------------------------


async def test_append_and_events_since(store: Store) -> None:
    gid = await _game(store)
    payloads = [
        {"x": i % 19, "y": i // 19, "clock": [600.5 - i, 600.0], "note": "é✓"} for i in range(30)
    ]
    for i, p in enumerate(payloads, start=1):
        ev = await store.append_event(gid, i, "move", p)
        assert ev.seq == i and ev.payload == p
    assert (await store.get_game(gid)).last_seq == 30
    everything = await store.events_since(gid, 0)
    assert [e.seq for e in everything] == list(range(1, 31))
    assert [e.payload for e in everything] == payloads
    assert all(e.game_id == gid and e.kind == "move" for e in everything)
    since = await store.events_since(gid, 17)
    assert [e.seq for e in since] == list(range(18, 31))
    assert [e.seq for e in await store.events_since(gid, 17, limit=3)] == [18, 19, 20]
    assert await store.events_since(gid, 30) == []
    # pre-encoded JSON goes in as msgspec.Raw; bare bytes are refused, not base64-encoded
    await store.append_event(gid, 31, "move", msgspec.Raw(b'{"raw": [1, 2]}'))
    assert (await store.events_since(gid, 30))[0].payload == {"raw": [1, 2]}
    with pytest.raises(TypeError):
        await store.append_event(gid, 32, "move", b'{"x": 1}')
    assert await store.events_since(424242, 0) == []


async def test_append_rejects_taken_and_gapped_seq(store: Store) -> None:
    gid = await _game(store)
    await store.append_event(gid, 1, "move", {"x": 1})
    with pytest.raises(ConflictError):
        await store.append_event(gid, 1, "move", {"x": 2})  # taken
    with pytest.raises(ConflictError):
        await store.append_event(gid, 3, "move", {"x": 3})  # gap
    with pytest.raises(NotFoundError):
        await store.append_event(999_999, 1, "move", {})
    with pytest.raises(ValueError):
        await store.append_event(gid, 0, "move", {})
    log = await store.events_since(gid)
    assert [(e.seq, e.payload) for e in log] == [(1, {"x": 1})]


async def test_append_events_is_atomic(store: Store) -> None:
    gid = await _game(store)
    evs = await store.append_events(gid, [NewEvent(1, "move", [3, 3]), NewEvent(2, "pass")])
    assert [e.seq for e in evs] == [1, 2]
    with pytest.raises(ConflictError):  # the first is taken: none of the three is written
        await store.append_events(
            gid, [NewEvent(2, "move"), NewEvent(3, "move"), NewEvent(4, "move")]
        )
    with pytest.raises(ValueError):
        await store.append_events(gid, [NewEvent(3, "move"), NewEvent(5, "move")])
    with pytest.raises(ValueError):
        await store.append_events(gid, [])
    assert [e.seq for e in await store.events_since(gid)] == [1, 2]
    assert (await store.get_game(gid)).last_seq == 2
    await store.append_events(gid, [NewEvent(3, "resign", {"by": "white"})])
    assert [e.kind for e in await store.events_since(gid, 2)] == ["resign"]


async def test_append_changes_game_in_same_transaction(store: Store) -> None:
    gid = await _game(store, status="playing")
    await store.append_event(
        gid, 1, "move", {}, change=GameChange(deadline=T0), expect_status="playing"
    )
    g = await store.get_game(gid)
    assert g.last_seq == 1 and g.deadline == T0
    await store.append_event(
        gid,
        2,
        "timeout",
        {"loser": "black"},
        change=GameChange(status="finished", result="W+T", finished_at=T0),
        expect_status=("playing", "scoring"),
    )
    g = await store.get_game(gid)
    assert (g.status, g.result, g.finished_at, g.deadline, g.last_seq) == (
        "finished",
        "W+T",
        T0,
        None,
        2,
    )
    with pytest.raises(ConflictError):  # the game is over: nothing more is appended
        await store.append_event(gid, 3, "move", {}, expect_status="playing")
    assert (await store.get_game(gid)).last_seq == 2


async def _second_store(store: Store) -> Store:
    """Another store on the same database: other connections, as a second instance has."""
    return await open_store(store.url)


async def test_concurrent_append_one_winner(store: Store) -> None:
    """Two writers (separate connections) append the same seq at once: exactly one commits,
    the other gets ConflictError, and the log has no gap and no duplicate."""
    gid = await _game(store)
    other = await _second_store(store)
    try:
        for seq in range(1, 41):
            results = await asyncio.gather(
                store.append_event(gid, seq, "move", {"by": "a", "seq": seq}),
                other.append_event(gid, seq, "move", {"by": "b", "seq": seq}),
                return_exceptions=True,
            )
            wins = [r for r in results if not isinstance(r, BaseException)]
            losses = [r for r in results if isinstance(r, BaseException)]
            assert len(wins) == 1, results
            assert len(losses) == 1 and isinstance(losses[0], ConflictError), results
        log = await other.events_since(gid)
        assert [e.seq for e in log] == list(range(1, 41))
        assert (await store.get_game(gid)).last_seq == 40
    finally:
        await other.close()


async def test_many_writers_race_for_each_seq(store: Store) -> None:
    """Eight tasks over two stores keep appending "the next seq" to one game: every seq is
    committed exactly once and every failure is a ConflictError."""
    gid = await _game(store)
    other = await _second_store(store)
    committed: list[tuple[int, int]] = []

    async def writer(s: Store, name: int) -> None:
        for _ in range(40):
            seq = (await s.get_game(gid)).last_seq + 1
            if seq > 60:
                return
            try:
                await s.append_event(gid, seq, "move", {"writer": name})
            except ConflictError:
                continue
            committed.append((seq, name))

    try:
        await asyncio.gather(*(writer(store if i % 2 else other, i) for i in range(8)))
        log = await store.events_since(gid)
        assert [e.seq for e in log] == list(range(1, len(log) + 1))
        assert sorted(seq for seq, _ in committed) == [e.seq for e in log]
        assert {seq: w for seq, w in committed} == {e.seq: e.payload["writer"] for e in log}
    finally:
        await other.close()


async def test_timeout_ends_game_exactly_once(store: Store) -> None:
    """Two instances find the same expired game; only one timeout event is written."""
    gid = await _game(store, status="playing")
    await store.append_event(gid, 1, "move", {}, change=GameChange(deadline=T0))
    other = await _second_store(store)
    try:
        # both instances find the game (a sweep on each), then both try to end it
        found = await asyncio.gather(
            store.expired_games(T0 + timedelta(seconds=1)),
            other.expired_games(T0 + timedelta(seconds=1)),
        )
        assert [[g.id for g in f] for f in found] == [[gid], [gid]]

        async def end_on_time(s: Store, g: Game) -> bool:
            try:
                await s.append_event(
                    g.id,
                    g.last_seq + 1,
                    "timeout",
                    {},
                    change=GameChange(status="finished", result="W+T"),
                    expect_status="playing",
                )
            except ConflictError:
                return False
            return True

        won = await asyncio.gather(end_on_time(store, found[0][0]), end_on_time(other, found[1][0]))
        assert sorted(won) == [False, True]
        assert [e.kind for e in await store.events_since(gid)] == ["move", "timeout"]
        assert await store.expired_games(T0 + timedelta(seconds=1)) == []
    finally:
        await other.close()


async def test_close_finishes_queued_writes(store_url: str) -> None:
    s = await open_store(store_url)
    gid = await _game(s)
    tasks: list[asyncio.Task[object]] = [
        asyncio.create_task(s.append_events(gid, [NewEvent(1, "move"), NewEvent(2, "move")]))
    ]
    tasks += [asyncio.create_task(s.add_chat("lobby", None, f"m{i}")) for i in range(100)]
    tasks += [asyncio.create_task(s.get_game(gid)) for _ in range(20)]  # reads in flight
    await asyncio.sleep(0)  # let them start
    await s.close()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert not [r for r in results if isinstance(r, BaseException)]
    s = await open_store(store_url)
    try:
        assert len(await s.list_chat("lobby", limit=1000)) == 100
        assert [e.seq for e in await s.events_since(gid)] == [1, 2]
    finally:
        await s.close()


# -- chat --------------------------------------------------------------------------------------


async def test_chat(store: Store) -> None:
    a, _ = await _players(store)
    ids = [(await store.add_chat("game:1", a, f"hello {i}")).id for i in range(5)]
    await store.add_chat("lobby", None, "system notice")
    msgs = await store.list_chat("game:1")
    assert [m.text for m in msgs] == [f"hello {i}" for i in range(5)]
    assert all(m.user_id == a and m.room == "game:1" for m in msgs)
    assert [m.text for m in await store.list_chat("game:1", limit=2)] == ["hello 3", "hello 4"]
    page = await store.list_chat("game:1", limit=2, before_id=ids[3])
    assert [m.text for m in page] == ["hello 1", "hello 2"]
    (notice,) = await store.list_chat("lobby")
    assert notice.user_id is None


# -- challenges --------------------------------------------------------------------------------


async def test_challenges_listing(store: Store) -> None:
    a, b = await _players(store)
    c = (await store.create_user("carol", None)).id
    open_ = await store.create_challenge(a, {"size": 19, "komi": 6.5})
    direct = await store.create_challenge(a, {"size": 9}, target_id=b)
    stale = await store.create_challenge(c, {"size": 13}, expires_at=T0)
    assert open_.status == "open" and open_.params == {"size": 19, "komi": 6.5}
    assert direct.target_id == b and stale.expires_at == T0
    assert [x.id for x in await store.list_open_challenges()] == [open_.id]
    assert [x.id for x in await store.list_open_challenges(user_id=b)] == [open_.id, direct.id]
    assert [x.id for x in await store.list_open_challenges(user_id=c)] == [open_.id]
    # before its expiry the stale one is listed
    listed = await store.list_open_challenges(now=T0 - timedelta(seconds=1))
    assert [x.id for x in listed] == [open_.id, stale.id]
    assert await store.expire_challenges() == 1
    assert (await store.get_challenge(stale.id)).status == "expired"
    with pytest.raises(NotFoundError):
        await store.get_challenge(999)


async def test_accept_challenge_exactly_one_wins(store: Store) -> None:
    host = (await store.create_user("host", None)).id
    guests = [(await store.create_user(f"guest{i}", None)).id for i in range(8)]
    ch = await store.create_challenge(host, {"size": 19})
    other = await _second_store(store)
    try:
        results = await asyncio.gather(
            *(
                (store if i % 2 else other).accept_challenge(
                    ch.id, g, game=NewGame(black_id=host, white_id=g, status="playing")
                )
                for i, g in enumerate(guests)
            ),
            return_exceptions=True,
        )
    finally:
        await other.close()
    wins = [r for r in results if not isinstance(r, BaseException)]
    assert len(wins) == 1, results
    assert all(isinstance(r, ConflictError) for r in results if isinstance(r, BaseException))
    won = wins[0]
    assert won.status == "accepted" and won.accepted_by in guests and won.game_id is not None
    game = await store.get_game(won.game_id)
    assert (game.black_id, game.white_id, game.status) == (host, won.accepted_by, "playing")
    # one game was created, not eight
    assert len(await store.list_active_games(host)) == 1
    assert await store.get_challenge(ch.id) == won


async def test_accept_challenge_rules(store: Store) -> None:
    a, b = await _players(store)
    c = (await store.create_user("carol", None)).id
    direct = await store.create_challenge(a, {}, target_id=b)
    with pytest.raises(ConflictError):
        await store.accept_challenge(direct.id, c)  # not the target
    with pytest.raises(ConflictError):
        await store.accept_challenge(direct.id, a)  # own challenge
    accepted = await store.accept_challenge(direct.id, b)
    assert accepted.accepted_by == b and accepted.game_id is None
    with pytest.raises(ConflictError):
        await store.accept_challenge(direct.id, b)  # already accepted
    stale = await store.create_challenge(a, {}, expires_at=T0)
    with pytest.raises(ConflictError):
        await store.accept_challenge(stale.id, b)
    with pytest.raises(NotFoundError):
        await store.accept_challenge(999, b)
    # a failed game insert undoes the accept
    fresh = await store.create_challenge(a, {})
    with pytest.raises(NotFoundError):
        await store.accept_challenge(fresh.id, b, game=NewGame(black_id=a, white_id=4242))
    assert (await store.get_challenge(fresh.id)).status == "open"


async def test_accept_challenge_starts_its_game_in_the_same_transaction(store: Store) -> None:
    """The accept, the game row, its rated flag and its first events commit together:
    concurrent accepts (two users, one user twice, over two connections) start one game;
    an accept whose game cannot be created leaves the challenge open and writes nothing."""
    host, b = await _players(store)
    c = (await store.create_user("carol", None)).id

    def start(white: int) -> GameStart:
        return GameStart(
            NewGame(black_id=host, white_id=white),
            rated=False,
            events=(NewEvent(1, "game_created", {"n": 1}), NewEvent(2, "game_started", {})),
            change=GameChange(status="playing", started_at=T0),
            at=T0,
        )

    ch = await store.create_challenge(host, {"size": 19})
    other = await _second_store(store)
    try:
        results = await asyncio.gather(
            store.accept_challenge(ch.id, b, game=start(b)),
            other.accept_challenge(ch.id, b, game=start(b)),
            other.accept_challenge(ch.id, c, game=start(c)),
            store.accept_challenge(ch.id, c, game=start(c)),
            return_exceptions=True,
        )
    finally:
        await other.close()
    wins = [r for r in results if not isinstance(r, BaseException)]
    assert len(wins) == 1, results
    assert all(isinstance(r, ConflictError) for r in results if isinstance(r, BaseException))
    (won,) = wins
    assert won.game_id is not None and await store.get_challenge(ch.id) == won
    game = await store.get_game(won.game_id)
    assert (game.status, game.last_seq, game.started_at) == ("playing", 2, T0)
    assert (game.black_id, game.white_id) == (host, won.accepted_by)
    log = await store.events_since(game.id)
    assert [(e.seq, e.kind, e.created_at) for e in log] == [
        (1, "game_created", T0),
        (2, "game_started", T0),
    ]
    assert [g.id for g in await store.list_active_games(host)] == [game.id]

    # the game's events fail (seq must start at 1): refused before anything is written
    fresh = await store.create_challenge(host, {"size": 9})
    bad_seq = GameStart(NewGame(black_id=host, white_id=b), events=(NewEvent(2, "x"),))
    with pytest.raises(ValueError):
        await store.accept_challenge(fresh.id, b, game=bad_seq)
    # an unknown player: the insert fails inside the transaction, the accept is undone
    with pytest.raises(NotFoundError):
        await store.accept_challenge(fresh.id, b, game=start(4242))
    assert await store.get_challenge(fresh.id) == fresh
    assert [g.id for g in await store.list_active_games(host)] == [game.id]
    assert await store.list_active_games(b) == [game]


async def test_close_challenge(store: Store) -> None:
    a, b = await _players(store)
    c = (await store.create_user("carol", None)).id
    ch = await store.create_challenge(a, {}, target_id=b)
    with pytest.raises(ConflictError):
        await store.close_challenge(ch.id, "declined", user_id=c)  # not a party
    declined = await store.close_challenge(ch.id, "declined", user_id=b)
    assert declined.status == "declined"
    with pytest.raises(ConflictError):
        await store.close_challenge(ch.id, "cancelled", user_id=a)
    with pytest.raises(ValueError):
        await store.close_challenge(ch.id, "accepted")
    with pytest.raises(NotFoundError):
        await store.close_challenge(999, "cancelled")
    assert await store.list_open_challenges(user_id=b) == []


# -- refresh tokens ----------------------------------------------------------------------------


async def test_refresh_tokens(store: Store) -> None:
    a, _ = await _players(store)
    far = datetime.now(UTC) + timedelta(days=30)
    t = await store.create_refresh_token("h1", a, far)
    assert t.user_id == a and t.revoked_at is None and t.expires_at == far
    assert await store.get_refresh_token("h1") == t
    with pytest.raises(ConflictError):
        await store.create_refresh_token("h1", a, far)
    new = await store.rotate_refresh_token("h1", "h2", far)
    assert new.token_hash == "h2" and new.user_id == a
    assert (await store.get_refresh_token("h1")).revoked_at is not None
    with pytest.raises(ConflictError):  # reuse of a rotated token
        await store.rotate_refresh_token("h1", "h3", far)
    with pytest.raises(NotFoundError):
        await store.rotate_refresh_token("nope", "h4", far)
    with pytest.raises(NotFoundError):
        await store.get_refresh_token("h3")  # the failed rotation wrote nothing
    await store.create_refresh_token("h5", a, far)
    await store.create_refresh_token("old", a, T0)
    with pytest.raises(ConflictError):  # expired
        await store.rotate_refresh_token("old", "h6", far)
    assert await store.revoke_refresh_token("h5") is True
    assert await store.revoke_refresh_token("h5") is False
    assert await store.revoke_user_tokens(a) == 2  # h2 and old
    assert await store.purge_refresh_tokens() == 1  # old
    with pytest.raises(NotFoundError):
        await store.get_refresh_token("old")


async def test_a_rotated_token_is_told_from_a_logged_out_one(store: Store) -> None:
    """Rotation records the successor; logout and "log out everywhere" do not: the server
    treats only a rotated token that comes back as theft."""
    a, _ = await _players(store)
    far = datetime.now(UTC) + timedelta(days=30)
    await store.create_refresh_token("r1", a, far)
    await store.rotate_refresh_token("r1", "r2", far)
    rotated = await store.get_refresh_token("r1")
    assert rotated.replaced_by == "r2" and rotated.rotated
    assert await store.revoke_refresh_token("r2") is True  # logout
    ended = await store.get_refresh_token("r2")
    assert ended.revoked_at is not None and ended.replaced_by is None and not ended.rotated
    await store.create_refresh_token("r3", a, far)
    assert await store.revoke_user_tokens(a) == 1
    assert not (await store.get_refresh_token("r3")).rotated


async def test_access_revocations_persist_and_are_pruned(store: Store) -> None:
    a, b = await _players(store)
    await store.revoke_access_tokens(a, 5_000)
    await store.revoke_access_tokens(a, 4_000)  # an older time never replaces a newer one
    await store.revoke_access_tokens(b, 1_000)
    assert await store.access_revocations(0) == {a: 5_000, b: 1_000}
    assert await store.access_revocations(2_000) == {a: 5_000}
    await store.revoke_access_tokens(a, 6_000)
    assert await store.purge_access_revocations(2_000) == 1  # b's
    assert await store.access_revocations(0) == {a: 6_000}
    other = await _second_store(store)  # another process (or a restart) sees them
    try:
        assert await other.access_revocations(0) == {a: 6_000}
    finally:
        await other.close()


async def test_rotation_race_has_one_winner(store: Store) -> None:
    a, _ = await _players(store)
    far = datetime.now(UTC) + timedelta(days=1)
    await store.create_refresh_token("root", a, far)
    other = await _second_store(store)
    try:
        results = await asyncio.gather(
            *(
                (store if i % 2 else other).rotate_refresh_token("root", f"n{i}", far)
                for i in range(6)
            ),
            return_exceptions=True,
        )
    finally:
        await other.close()
    assert sum(not isinstance(r, BaseException) for r in results) == 1, results
    assert all(isinstance(r, ConflictError) for r in results if isinstance(r, BaseException))


async def test_ping(store: Store) -> None:
    await store.ping()


async def test_failed_write_does_not_spoil_concurrent_ones(store: Store) -> None:
    """Writes that run together (SQLite group commit, PostgreSQL pool) succeed or fail on
    their own: a conflicting append among many good ones fails alone."""
    gids = [(await store.create_game(NewGame())).id for _ in range(30)]
    await store.append_event(gids[0], 1, "move", {})
    results = await asyncio.gather(
        *(store.append_event(g, 1, "move", {"g": g}) for g in gids),  # gids[0]: seq taken
        store.create_user("dup", None),
        store.create_user("DUP", None),
        return_exceptions=True,
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 2 and all(isinstance(f, ConflictError) for f in failures)
    assert isinstance(results[0], ConflictError)
    for g in gids[1:]:
        assert [e.payload for e in await store.events_since(g)] == [{"g": g}]


async def test_closed_store_is_unavailable(store_url: str) -> None:
    s = await open_store(store_url)
    await s.close()
    await s.close()  # idempotent
    with pytest.raises(StoreUnavailableError):
        await s.create_user("late", None)
    with pytest.raises(StoreUnavailableError):
        await s.get_user(1)


# -- URLs and options --------------------------------------------------------------------------


def test_sqlite_urls(tmp_path: Path) -> None:
    assert sqlite_path("sqlite:///var/lib/goapp/goapp.db") == (Path("/var/lib/goapp/goapp.db"), {})
    # Four slashes (SQLAlchemy's absolute form) name the same file, not "//var/...".
    assert str(sqlite_path("sqlite:////var/lib/goapp/goapp.db")[0]) == "/var/lib/goapp/goapp.db"
    path, opts = sqlite_path("sqlite:data/goapp.db?synchronous=normal", base_dir=tmp_path)
    assert path == tmp_path / "data" / "goapp.db" and opts == {"synchronous": "normal"}
    assert sqlite_path("sqlite:goapp.db")[0] == Path.cwd() / "goapp.db"
    for bad in ("sqlite://host/goapp.db", "sqlite:", "mysql://x/y", "goapp.db"):
        with pytest.raises(ValueError):
            sqlite_path(bad)
    assert backend_of("postgres://u@h/db") == backend_of("postgresql://u@h/db") == "postgres"


async def test_sqlite_options(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown sqlite URL option"):
        await open_store(f"sqlite://{tmp_path}/a.db?synchronus=full")
    with pytest.raises(ValueError):
        await open_store(f"sqlite://{tmp_path}/a.db?synchronous=sometimes")
    s = await open_store("sqlite:rel.db?synchronous=normal&readers=2", base_dir=tmp_path)
    try:
        assert isinstance(s, SQLiteStore)
        assert s.path == tmp_path / "rel.db" and s.synchronous == "NORMAL"
        assert s._all_readers and len(s._all_readers) == 2
        assert s._writer is not None
        level = await s._writer.run(lambda c: c.execute("PRAGMA synchronous").fetchone())
        assert level == (1,)  # NORMAL
        mode = await s._writer.run(lambda c: c.execute("PRAGMA journal_mode").fetchone())
        assert mode == ("wal",)
    finally:
        await s.close()
    s = await open_store(f"sqlite://{tmp_path}/b.db")
    try:
        assert isinstance(s, SQLiteStore) and s.synchronous == "FULL"  # the default
        assert s._writer is not None
        level = await s._writer.run(lambda c: c.execute("PRAGMA synchronous").fetchone())
        assert level == (2,)
    finally:
        await s.close()


async def test_sqlite_threads_one_per_connection_and_gone_after_close(tmp_path: Path) -> None:
    """Each SQLite connection lives on a thread of its own (one writer, ``readers``
    readers) while the store is open; close() ends every one of them."""

    def sqlite_threads() -> list[str]:
        return sorted(t.name for t in threading.enumerate() if t.name.startswith("sqlite-"))

    before = sqlite_threads()
    s = await open_store(f"sqlite://{tmp_path}/t.db?readers=2")
    gid = (await s.create_game(NewGame(status="playing"))).id
    await s.append_event(gid, 1, "move", {"n": 1})
    assert [e.seq for e in await s.events_since(gid)] == [1]
    opened = [n for n in sqlite_threads() if n not in before]
    assert sorted(opened) == ["sqlite-reader-0:t.db", "sqlite-reader-1:t.db", "sqlite-writer:t.db"]
    await s.close()
    deadline = asyncio.get_running_loop().time() + 5
    while [n for n in sqlite_threads() if n not in before]:
        assert asyncio.get_running_loop().time() < deadline, sqlite_threads()
        await asyncio.sleep(0.01)
    with pytest.raises(StoreUnavailableError):
        await s.get_game(gid)


@pytest.mark.server
def test_sqlite_store_needs_no_aiosqlite(tmp_path: Path) -> None:
    """The SQLite backend is the standard library's sqlite3 alone (aiosqlite is no longer a
    dependency): with aiosqlite unimportable a store opens, commits and reads back."""
    code = (
        "import sys, asyncio\n"
        "sys.modules['aiosqlite'] = None  # any import of it fails\n"
        "from goapp.store import open_store, NewGame\n"
        "async def main():\n"
        f"    s = await open_store('sqlite://{tmp_path}/n.db')\n"
        "    g = (await s.create_game(NewGame(status='playing'))).id\n"
        "    await s.append_event(g, 1, 'move', {'n': 1})\n"
        "    await s.close()\n"
        f"    s = await open_store('sqlite://{tmp_path}/n.db')\n"
        "    print([e.payload for e in await s.events_since(g)])\n"
        "    await s.close()\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[{'n': 1}]"


async def test_postgres_url_options(pg_schema_url: str) -> None:
    # sqlite-only options (as the server passes from its settings) are ignored
    s = await open_store(pg_schema_url + "&pool_max=3&command_timeout=7", synchronous="FULL")
    try:
        assert isinstance(s, PostgresStore)
        assert s._pool_max == 3 and s._command_timeout == 7.0
        await s.ping()
    finally:
        await s.close()


# -- bots and AI review (migration 0002_analysis) ------------------------------------------------


async def test_active_bot_games(store: Store) -> None:
    a, b = await _players(store)
    human = await store.create_game(NewGame(black_id=a, white_id=b, status="playing"))
    bot1 = await store.create_game(NewGame(black_id=a, white_bot="katago:easy", status="playing"))
    bot2 = await store.create_game(NewGame(black_bot="gnugo:easy", white_id=b, status="scoring"))
    done = await store.create_game(NewGame(black_id=a, white_bot="katago:easy", status="playing"))
    await store.update_game(done.id, GameChange(status="finished", result="W+R"))
    assert human.id not in [g.id for g in await store.list_active_bot_games()]
    assert [g.id for g in await store.list_active_bot_games()] == [bot1.id, bot2.id]
    assert [g.id for g in await store.list_active_bot_games(limit=1)] == [bot1.id]


async def test_analysis_rows(store: Store) -> None:
    game_id = await _game(store)
    assert await store.load_analysis(game_id) == []
    rows = [
        (t, {"turn": t, "winrate": 0.5 + t / 100, "best": [{"move": "D4", "pv": ["D4"]}]})
        for t in range(3)
    ]
    assert await store.save_analysis(game_id, list(reversed(rows))) == 3
    got = await store.load_analysis(game_id)
    assert [r.turn for r in got] == [0, 1, 2]
    assert [r.payload for r in got] == [p for _, p in rows]
    assert all(r.game_id == game_id and r.created_at.tzinfo is not None for r in got)
    # saving a turn again replaces it; other turns stay
    assert await store.save_analysis(game_id, [(1, {"turn": 1, "winrate": 0.9})]) == 1
    got = await store.load_analysis(game_id)
    assert [r.payload.get("winrate") for r in got] == [0.5, 0.9, 0.52]
    with pytest.raises(NotFoundError):
        await store.save_analysis(game_id + 1000, [(0, {})])
    assert await store.load_analysis(game_id + 1000) == []


# -- ratings (migration 0003_ratings) --------------------------------------------------------------


def _updates(a: int, b: int, *, before: int = 0) -> list[RatingUpdate]:
    return [
        RatingUpdate(
            user_id=a,
            pool=pool,
            rating_before=1500.0,
            games_before=before,
            rating=1662.0,
            rd=290.0,
            volatility=0.06,
        )
        for pool in ("9", "overall")
    ] + [
        RatingUpdate(
            user_id=b,
            pool=pool,
            rating_before=1500.0,
            games_before=before,
            rating=1338.0,
            rd=290.0,
            volatility=0.06,
        )
        for pool in ("9", "overall")
    ]


async def test_ratings_apply_once(store: Store) -> None:
    game_id = await _game(store, width=9, height=9)
    a, b = (await store.get_game(game_id)).black_id, (await store.get_game(game_id)).white_id
    assert a is not None and b is not None
    assert await store.get_ratings(a) == {}
    assert await store.is_game_rated(game_id) is True
    assert await store.apply_rating_update(game_id, _updates(a, b), now=T0) is True
    ratings = await store.get_ratings(a)
    assert sorted(ratings) == ["9", "overall"]
    assert ratings["9"].rating == 1662.0 and ratings["9"].games == 1
    assert ratings["9"].updated_at == T0
    user = await store.get_user(a)  # the overall pool is mirrored in the user's row
    assert (user.rating, user.rd, user.games_count) == (1662.0, 290.0, 1)
    # the second apply of the same game changes nothing
    assert await store.apply_rating_update(game_id, _updates(a, b)) is False
    assert await store.get_ratings(a) == ratings
    assert (await store.get_user(a)).games_count == 1
    history = await store.rating_history(a, "9")
    assert [(h.game_id, h.rating_before, h.rating_after, h.rd_after) for h in history] == [
        (game_id, 1500.0, 1662.0, 290.0)
    ]
    assert await store.rating_history(b, "13") == []
    board = await store.leaderboard("9")
    assert [(e.name, e.rating, e.games) for e in board] == [
        ("alice", 1662.0, 1),
        ("bob", 1338.0, 1),
    ]
    assert await store.leaderboard("9", limit=1) == board[:1]
    assert await store.leaderboard("9", max_rd=100.0) == []
    assert await store.leaderboard("19") == []
    # a stale update (computed from an older rating) is refused and changes nothing
    other = await store.create_game(NewGame(black_id=a, white_id=b, width=9, height=9))
    with pytest.raises(ConflictError):
        await store.apply_rating_update(other.id, _updates(a, b, before=0))
    assert len(await store.rating_history(a, "overall")) == 1
    assert await store.apply_rating_update(other.id, _updates(a, b, before=1)) is True
    assert (await store.get_ratings(b))["overall"].games == 2
    with pytest.raises(ValueError):
        await store.apply_rating_update(other.id, [])


async def test_ratings_catch_up_query_and_rated_flag(store: Store) -> None:
    a, b = await _players(store)
    done = await store.create_game(NewGame(black_id=a, white_id=b, status="playing"))
    await store.update_game(done.id, GameChange(status="finished", result="B+R"))
    unrated = await store.create_game(NewGame(black_id=a, white_id=b, status="playing"))
    await store.set_game_rated(unrated.id, False)
    assert await store.is_game_rated(unrated.id) is False
    await store.update_game(unrated.id, GameChange(status="finished", result="B+R"))
    bot = await store.create_game(NewGame(black_id=a, white_bot="katago:b6", status="playing"))
    await store.update_game(bot.id, GameChange(status="finished", result="B+R"))
    await store.create_game(NewGame(black_id=a, white_id=b, status="playing"))
    assert [g.id for g in await store.unrated_finished_games()] == [done.id]
    assert await store.apply_rating_update(done.id, _updates(a, b)) is True
    assert await store.unrated_finished_games() == []
    with pytest.raises(NotFoundError):
        await store.is_game_rated(done.id + 1000)
    with pytest.raises(NotFoundError):
        await store.set_game_rated(done.id + 1000, True)


async def test_ratings_concurrent_apply_one_winner(store: Store) -> None:
    """Two instances (separate connections) rate the same games at once: for each game,
    exactly one apply wins; the ratings move once."""
    a, b = await _players(store)
    other = await _second_store(store)
    try:
        for _ in range(10):
            g = await store.create_game(NewGame(black_id=a, white_id=b, width=9, height=9))
            before = (await store.get_ratings(a)).get("9")
            n = 0 if before is None else before.games
            results = await asyncio.gather(
                store.apply_rating_update(g.id, _updates(a, b, before=n)),
                other.apply_rating_update(g.id, _updates(a, b, before=n)),
                return_exceptions=True,
            )
            assert sorted(r is True for r in results) == [False, True], results
            assert all(r is False for r in results if r is not True), results
            assert (await store.get_ratings(a))["9"].games == n + 1
    finally:
        await other.close()
    assert len(await store.rating_history(a, "9")) == 10
