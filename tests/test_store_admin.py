"""`goapp db copy` and `goapp db backup` (goapp.store.admin)."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from goapp.store import (
    GameChange,
    NewEvent,
    NewGame,
    NotFoundError,
    RatingUpdate,
    Store,
    StoreError,
    admin,
    open_store,
)

T0 = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)


async def _populate(store: Store) -> dict[str, int]:
    users = [await store.create_user(f"Player{i}", f"hash{i}", rating=1500.0 + i) for i in range(5)]
    await store.update_user_rating(
        users[0].id, rating=1623.75, rd=75.5, volatility=0.0599, games_count=7
    )
    games = []
    for i in range(6):
        g = await store.create_game(
            NewGame(
                black_id=users[i % 5].id,
                white_id=users[(i + 1) % 5].id if i % 2 else None,
                white_bot=None if i % 2 else "katago:b6",
                width=9 + 2 * (i % 3),
                height=9 + 2 * (i % 3),
                komi=6.5 + 0.5 * i,
                time_control={"main": 300 + i, "byoyomi": [30, 5]},
                status="playing",
            )
        )
        games.append(g.id)
        await store.append_events(
            g.id,
            [
                NewEvent(n, "move", {"x": n, "y": i, "t": 1.5 * n, "s": "ü"})
                for n in range(1, 11 + i)
            ],
            change=GameChange(deadline=T0 + timedelta(seconds=i)),
        )
    await store.append_event(
        games[0],
        11,
        "resign",
        None,
        change=GameChange(status="finished", result="W+R", finished_at=T0),
    )
    for i in range(7):
        await store.add_chat("lobby" if i % 2 else f"game:{games[1]}", users[i % 5].id, f"hi {i} ✓")
    await store.add_chat("lobby", None, "server restarting")
    ch = await store.create_challenge(users[0].id, {"size": 19})
    await store.accept_challenge(ch.id, users[1].id, game=NewGame(black_id=users[0].id))
    await store.create_challenge(users[2].id, {"size": 9}, target_id=users[3].id, expires_at=T0)
    await store.create_refresh_token("tok-a", users[0].id, T0 + timedelta(days=30))
    await store.rotate_refresh_token("tok-a", "tok-b", T0 + timedelta(days=30), now=T0)
    # ratings: a rated game (history + pools) and an unrated one (games.rated)
    await store.set_game_rated(games[1], False)
    updates = [
        RatingUpdate(
            user_id=u.id,
            pool=pool,
            rating_before=1500.0,
            games_before=0,
            rating=1500.0 + 17.25 * sign,
            rd=290.123456789,
            volatility=0.0599991,
        )
        for u, sign in ((users[0], -1), (users[1], 1))
        for pool in ("9", "overall")
    ]
    assert await store.apply_rating_update(games[0], updates, now=T0)
    return {
        "users": 5,
        "games": 7,
        "game_events": 6 * 10 + 15 + 1,
        "chat_messages": 8,
        "ratings": 4,
        "rating_history": 4,
    }


async def test_copy_sqlite_to_postgres_and_rerun(tmp_path: Path, pg_schema_url: str) -> None:
    src_url = f"sqlite://{tmp_path}/src.db"
    src = await open_store(src_url)
    try:
        expected = await _populate(src)
        src_games = [await src.get_game(i) for i in range(1, 8)]
        src_events = {g.id: await src.events_since(g.id) for g in src_games}
        src_user = await src.get_user_by_name("player0")
        src_ratings = {u: await src.get_ratings(u) for u in range(1, 6)}
        src_history = {u: await src.rating_history(u, "9") for u in range(1, 6)}
        src_rated = [await src.is_game_rated(g.id) for g in src_games]
    finally:
        await src.close()
    assert src_rated.count(False) == 1 and src_ratings[1] and src_history[2]

    report = await admin.copy(src_url, pg_schema_url)
    assert report["ok"] is True, report
    tables = report["tables"]
    assert set(tables) >= {
        "users",
        "games",
        "game_events",
        "chat_messages",
        "challenges",
        "refresh_tokens",
        "ratings",
        "rating_history",
    }
    for name, n in expected.items():
        assert tables[name]["copied"] == tables[name]["source_rows"] == n, (name, tables[name])
    for t in tables.values():
        assert t["dest_rows"] == t["source_rows"] and t["skipped"] == 0
        assert t["source_checksum"] == t["dest_checksum"]

    again = await admin.copy(src_url, pg_schema_url)  # idempotent: skips what is there
    assert again["ok"] is True
    for name, t in again["tables"].items():
        assert t["copied"] == 0 and t["skipped"] == t["source_rows"], name

    dst = await open_store(pg_schema_url)
    try:
        assert await dst.get_user_by_name("PLAYER0") == src_user
        for g in src_games:
            assert await dst.get_game(g.id) == g
            assert await dst.events_since(g.id) == src_events[g.id]
        assert [await dst.is_game_rated(g.id) for g in src_games] == src_rated
        for u in range(1, 6):
            assert await dst.get_ratings(u) == src_ratings[u]
            assert await dst.rating_history(u, "9") == src_history[u]
        # the copy is rated already: no game is rated a second time there
        rerated = RatingUpdate(
            user_id=1,
            pool="9",
            rating_before=1.0,
            games_before=1,
            rating=1.0,
            rd=50.0,
            volatility=0.06,
        )
        assert await dst.apply_rating_update(src_games[0].id, [rerated]) is False
        # the identity sequences follow the copied ids: new rows do not collide
        new_user = await dst.create_user("newcomer", None)
        assert new_user.id == 6
        new_game = await dst.create_game(NewGame())
        assert new_game.id == 8
        await dst.append_event(2, 12, "move", {"after": "copy"})
        assert (await dst.add_chat("lobby", None, "x")).id == 9
        # a changed destination row is reported, not overwritten
        await dst.update_user_rating(1, rating=1.0, rd=1.0, volatility=1.0, games_count=1)
    finally:
        await dst.close()
    diverged = await admin.copy(src_url, pg_schema_url)
    assert diverged["ok"] is False
    assert diverged["tables"]["users"]["ok"] is False
    assert diverged["tables"]["chat_messages"]["ok"] is False  # the extra row

    back = await admin.copy(pg_schema_url, f"sqlite://{tmp_path}/back.db")  # any to any
    assert back["ok"] is True


async def test_copy_refuses_unmigrated_source(tmp_path: Path) -> None:
    src = tmp_path / "empty.db"
    sqlite3.connect(src).close()
    with pytest.raises(StoreError, match="migrate"):
        await admin.copy(f"sqlite://{src}", f"sqlite://{tmp_path}/dst.db")


async def test_backup_while_writing(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/live.db"
    store = await open_store(url)
    games = [(await store.create_game(NewGame(status="playing"))).id for _ in range(10)]
    stop = asyncio.Event()
    written = 0

    async def play(gid: int) -> None:
        nonlocal written
        seq = 0
        while not stop.is_set():
            seq += 1
            await store.append_event(gid, seq, "move", {"pad": "x" * 200, "seq": seq})
            written += 1

    writers = [asyncio.create_task(play(g)) for g in games]
    try:
        while written < 500:
            await asyncio.sleep(0.01)
        first = await admin.backup(url, str(tmp_path))  # a directory: a dated file in it
        second = await admin.backup(url, str(tmp_path / "copy.db"))
        assert written > 500  # the writers kept going
    finally:
        stop.set()
        await asyncio.gather(*writers)
        await store.close()

    assert Path(first["path"]).name.startswith("goapp-")
    assert second["path"] == str(tmp_path / "copy.db")
    for report in (first, second):
        assert report["integrity"] == "ok"
        path = Path(report["path"])
        assert path.stat().st_size == report["bytes"] > 0
        assert not Path(str(path) + "-wal").exists()  # self-contained
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
            # one snapshot: each game's last_seq matches its log exactly
            rows = conn.execute(
                "SELECT g.id, g.last_seq, count(e.seq), coalesce(max(e.seq), 0)"
                " FROM games g LEFT JOIN game_events e ON e.game_id = g.id GROUP BY g.id"
            ).fetchall()
            assert len(rows) == 10
            assert all(last == n == top for _, last, n, top in rows), rows
            assert report["tables"]["game_events"] == sum(r[2] for r in rows) > 0
        finally:
            conn.close()
    restored = await open_store(f"sqlite://{second['path']}")  # a backup is a working store
    try:
        assert len(await restored.events_since(games[0])) >= 1
    finally:
        await restored.close()


async def test_backup_refuses_postgres_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="pg_dump"):
        await admin.backup("postgresql://postgres@127.0.0.1/test", str(tmp_path))
    with pytest.raises(NotFoundError):
        await admin.backup(f"sqlite://{tmp_path}/nothing.db", str(tmp_path))
