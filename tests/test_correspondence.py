"""Correspondence games (days per move, weekends off), whose turn it is in the game lists,
"your move" notifications, and abandonment through the real server (HTTP API + WebSocket,
SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from api_support import Api
from test_game_service import make_table
from ws_helpers import recv, request

from goapp.rules.clock import (
    DAY_MS,
    ClockError,
    Correspondence,
    GameClock,
    TimeControlError,
    decode_time_control,
    weekday_ms,
)
from goapp.store import Store


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp() * 1000)


FRI_NOON = ms(2026, 11, 27, 12)  # a Friday
SAT_NOON = ms(2026, 11, 28, 12)
MON_0 = ms(2026, 11, 30)


# -- the clock -----------------------------------------------------------------------------


def test_days_per_move_and_validation() -> None:
    c = decode_time_control({"system": "correspondence", "days_per_move": 3})
    assert c == Correspondence(days_per_move=3, weekends_off=False)
    assert c.describe() == "3 days per move"
    assert Correspondence(days_per_move=1, weekends_off=True).describe() == (
        "1 day per move, weekends off"
    )
    for bad in (0, 31, True, 1.5):
        with pytest.raises(TimeControlError):
            decode_time_control({"system": "correspondence", "days_per_move": bad})
    with pytest.raises(TimeControlError):
        decode_time_control({"system": "correspondence", "days_per_move": 2, "x": 1})

    clock = GameClock.new(c).start(FRI_NOON)
    assert clock.flag_time() == FRI_NOON + 3 * DAY_MS  # weekends count
    after = clock.move_made("black", FRI_NOON + DAY_MS)
    # the next deadline: the time of the last move + days (unused time is lost)
    assert after.flag_time() == FRI_NOON + DAY_MS + 3 * DAY_MS
    assert after.player("black").period_ms == 3 * DAY_MS


def test_weekends_off_skip_saturday_and_sunday_utc() -> None:
    assert weekday_ms(FRI_NOON, MON_0 + 1000) == DAY_MS // 2 + 1000
    assert weekday_ms(SAT_NOON, MON_0) == 0
    c = Correspondence(days_per_move=1, weekends_off=True)
    # a move on Friday noon: half of Friday, then the rest on Monday morning
    assert GameClock.new(c).start(FRI_NOON).flag_time() == MON_0 + DAY_MS // 2
    # a move on Saturday: the day starts on Monday
    assert GameClock.new(c).start(SAT_NOON).flag_time() == MON_0 + DAY_MS
    # five days from Monday 00:00 end on Friday 24:00 exactly (not on Monday)
    five = Correspondence(days_per_move=5, weekends_off=True)
    assert GameClock.new(five).start(MON_0).flag_time() == MON_0 + 5 * DAY_MS
    # without weekends off the weekend counts
    plain = Correspondence(days_per_move=1)
    assert GameClock.new(plain).start(FRI_NOON).flag_time() == FRI_NOON + DAY_MS
    # the time shown during the weekend does not run down
    clock = GameClock.new(c).start(FRI_NOON)
    sat, sun = clock.time_left_ms("black", SAT_NOON), clock.time_left_ms("black", MON_0 - 1)
    assert sat == sun == DAY_MS // 2
    # a move on Monday morning is in time; Monday noon + grace is not
    clock.move_made("black", MON_0 + DAY_MS // 2 - 1)
    deadline = clock.deadline()
    assert deadline is not None and clock.is_flagged(deadline)
    with pytest.raises(ClockError):
        clock.timeout(MON_0)  # still has time


async def test_correspondence_timeout_by_the_sweeper(store: Store) -> None:
    t = await make_table(store)
    t.clock.t = FRI_NOON - 3_600_000  # created on Friday at 11:00
    control = Correspondence(days_per_move=1, weekends_off=True)
    game = await t.service.create_game(t.black, t.white, user_color="black", time_control=control)
    t.game_id = game.game_id
    t.clock.t = FRI_NOON
    await t.service.act(t.game_id, t.black, {"type": "move", "vertex": "E5"})
    row = await store.get_game(t.game_id)
    want = MON_0 + DAY_MS // 2
    grace = (await t.service.state(t.game_id)).clock.grace_ms()
    assert row.deadline is not None
    assert int(row.deadline.timestamp() * 1000) == want + grace
    assert await t.service.check_timeouts(SAT_NOON + DAY_MS) == []  # Sunday: nothing
    done = await t.service.check_timeouts(want + grace)
    assert [e.kind for e in done] == ["timeout", "game_finished"]
    assert (await store.get_game(t.game_id)).result == "B+T"


# -- through the server --------------------------------------------------------------------


CORR = {"system": "correspondence", "days_per_move": 3, "weekends_off": True}


async def frame(ws: Any, type_: str, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
    """The next frame of ``type_`` whose fields match (``kind`` included), skipping others."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        left = deadline - loop.time()
        if left <= 0:
            raise TimeoutError(f"no {type_} frame {match} within {timeout}s")
        try:
            got = await recv(ws, left)
        except TimeoutError:
            raise TimeoutError(f"no {type_} frame {match} within {timeout}s") from None
        if got["type"] == type_ and all(got.get(k) == v for k, v in match.items()):
            return got


async def _ws(api: Api, name: str) -> Any:
    ws = await api.client.ws_connect(f"/ws?token={api.tokens[name]['access_token']}")
    assert (await recv(ws))["type"] == "welcome"
    return ws


async def test_lists_show_whose_turn_and_the_next_player_is_notified(api: Api) -> None:
    alice = (await api.register("alice"))["user"]["id"]
    bob = (await api.register("bob"))["user"]["id"]
    status, body = await api.call(
        "POST",
        "/api/challenges",
        {"size": 9, "time_control": {**CORR, "days_per_move": 31}, "opponent": "bob"},
        user="alice",
    )
    assert status == 400, body
    bob_ws = await _ws(api, "bob")
    try:
        game_id = await api.new_game("alice", "bob", time_control=CORR)  # alice is black
        status, listed = await api.call("GET", "/api/games?user=alice", user="bob")
        assert status == 200, listed
        [g] = listed["games"]
        assert g["time_control"] == CORR
        assert (g["to_move"], g["to_move_id"], g["your_turn"]) == ("black", alice, False)
        assert g["deadline"] is not None
        status, mine = await api.call("GET", "/api/games?user=alice", user="alice")
        assert mine["games"][0]["your_turn"] is True

        assert (await api.act("alice", game_id, {"type": "move", "vertex": "E5"}))[0] == 200
        note = await frame(bob_ws, "notify", kind="your_move")
        assert note["game_id"] == game_id
        assert note["opponent"] == {"id": alice, "name": "alice"}
        state = await api.ctx.games.state(game_id)
        assert note["deadline_ms"] == state.clock.deadline()
        status, listed = await api.call("GET", "/api/games?user=bob", user="bob")
        g = listed["games"][0]
        assert (g["to_move"], g["to_move_id"], g["your_turn"]) == ("white", bob, True)
        # anonymous: whose turn, but not "yours"
        status, anon = await api.call("GET", "/api/games?user=bob")
        assert anon["games"][0]["to_move_id"] == bob and anon["games"][0]["your_turn"] is False
    finally:
        await bob_ws.close()


async def test_no_notification_in_live_games(api: Api) -> None:
    await api.register("alice")
    await api.register("bob")
    bob_ws = await _ws(api, "bob")
    try:
        game_id = await api.new_game("alice", "bob")  # byo-yomi
        assert (await api.act("alice", game_id, {"type": "move", "vertex": "E5"}))[0] == 200
        with pytest.raises(TimeoutError):
            await frame(bob_ws, "notify", 0.3)
    finally:
        await bob_ws.close()


async def test_abandonment_through_the_server(api: Api) -> None:
    await api.register("alice")
    await api.register("bob")
    assert api.ctx.settings.abandon_timeout_s == 60  # the default
    api.ctx.games.abandon_timeout_ms = 400
    alice_ws = await _ws(api, "alice")
    bob_ws = await _ws(api, "bob")
    try:
        game_id = await api.new_game("alice", "bob")
        assert (await api.act("alice", game_id, {"type": "move", "vertex": "E5"}))[0] == 200
        assert (await api.act("bob", game_id, {"type": "move", "vertex": "C3"}))[0] == 200
        ack = await request(alice_ws, type="subscribe", game_id=game_id, id="s1")
        assert ack["type"] == "ack", ack
        await bob_ws.close()  # bob's only connection: he is gone
        left = await frame(alice_ws, "event", kind="player_left")
        assert left["payload"]["color"] == "white"
        status, body = await api.act("alice", game_id, {"type": "claim_victory"})
        assert status == 409 and body["error"]["code"] == "cannot_claim_victory", body
        assert body["error"]["claim_at_ms"] == left["payload"]["claim_at_ms"]
        wait_s = (left["payload"]["claim_at_ms"] - int(datetime.now(UTC).timestamp() * 1000)) / 1000
        await asyncio.sleep(max(0.0, wait_s) + 0.05)
        status, body = await api.act("alice", game_id, {"type": "claim_victory"})
        assert status == 200, body
        assert [e["kind"] for e in body["events"]] == ["game_finished"]
        assert body["events"][0]["result"] == "B+F"
        # bob coming back after the end writes nothing
        n = await api.event_count(game_id)
        bob_ws = await _ws(api, "bob")
        assert api.ctx.fair_play is not None
        await api.ctx.fair_play.wait_idle()
        assert await api.event_count(game_id) == n
    finally:
        await alice_ws.close()
        await bob_ws.close()


async def test_returning_in_time_through_the_server(api: Api) -> None:
    await api.register("alice")
    await api.register("bob")
    alice_ws = await _ws(api, "alice")
    bob_ws = await _ws(api, "bob")
    try:
        game_id = await api.new_game("alice", "bob")
        ack = await request(alice_ws, type="subscribe", game_id=game_id, id="s1")
        assert ack["type"] == "ack", ack
        await bob_ws.close()
        await frame(alice_ws, "event", kind="player_left")
        bob_ws = await _ws(api, "bob")
        back = await frame(alice_ws, "event", kind="player_returned")
        assert back["payload"]["color"] == "white"
        status, body = await api.act("alice", game_id, {"type": "claim_victory"})
        assert status == 409 and body["error"]["claim_at_ms"] is None
    finally:
        await alice_ws.close()
        await bob_ws.close()
