"""The game lifecycle through GameService, on a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from goapp.game import (
    BadAction,
    CannotAbort,
    CannotUndo,
    ConcurrentUpdate,
    FlagFallenError,
    GameError,
    GameFinishedError,
    GameService,
    GameState,
    IllegalMove,
    NotAPlayer,
    NotYourTurn,
    NoUndoPending,
    StoredEvent,
    WrongPhase,
)
from goapp.game.actions import Pass
from goapp.game.service import BadGameSettings, ms_to_dt
from goapp.rules.clock import Absolute, ByoYomi
from goapp.store import ConflictError, Store, open_store

T0 = 1_767_268_800_000  # 2026-01-01 12:00 UTC in epoch ms


class FakeClock:
    """A settable server clock (epoch ms)."""

    def __init__(self, t: int = T0) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t

    def tick(self, ms: int = 1000) -> int:
        self.t += ms
        return self.t


@dataclass
class Table:
    """A service, its clock, two players, a spectator and one game."""

    store: Store
    service: GameService
    clock: FakeClock
    black: int
    white: int
    spectator: int
    game_id: int = 0
    published: list[StoredEvent] = field(default_factory=list)

    async def act(self, who: int, action: Any, *, ms: int = 1000, **kw: Any) -> list[StoredEvent]:
        self.clock.tick(ms)
        return await self.service.act(self.game_id, who, action, **kw)

    async def play(self, *vertices: str) -> None:
        """Moves (or "pass") in turn, by whoever is to move."""
        for v in vertices:
            state = await self.service.state(self.game_id)
            who = self.black if state.to_move == "black" else self.white
            body = {"type": "pass"} if v == "pass" else {"type": "move", "vertex": v}
            await self.act(who, body)

    async def kinds(self) -> list[str]:
        return [e.kind for e in await self.store.events_since(self.game_id)]

    async def fold(self) -> GameState:
        return GameState.from_events(await self.store.events_since(self.game_id))

    async def assert_fold_matches(self) -> None:
        live = await self.service.state(self.game_id)
        assert (await self.fold()).fingerprint() == live.fingerprint()


async def make_table(store: Store, **game: Any) -> Table:
    clock = FakeClock()
    service = GameService(store, clock_fn=clock)
    ids = [(await store.create_user(n, "x")).id for n in ("alice", "bob", "carol")]
    table = Table(store, service, clock, ids[0], ids[1], ids[2])

    async def hook(events: list[StoredEvent]) -> None:
        table.published.extend(events)

    service.on_events.append(hook)
    game.setdefault("size", 9)
    game.setdefault("rules", "japanese")
    game.setdefault("komi", 6.5)
    state = await service.create_game(ids[0], ids[1], user_color="black", **game)
    table.game_id = state.game_id
    return table


async def expect_rejected(t: Table, who: int, action: Any, error: type[GameError]) -> GameError:
    """The action fails with ``error`` and the log, the row and the state do not change."""
    before_log = await t.store.events_since(t.game_id)
    before_row = await t.store.get_game(t.game_id)
    before_state = (await t.service.state(t.game_id)).fingerprint()
    with pytest.raises(error) as info:
        await t.act(who, action)
    assert await t.store.events_since(t.game_id) == before_log
    assert await t.store.get_game(t.game_id) == before_row
    assert (await t.service.state(t.game_id)).fingerprint() == before_state
    return info.value


# Black wall on column E, White wall on column F, one dead stone of each inside the other's
# area (White B5, Black G5), then two passes.
WALLS = [v for row in range(1, 10) for v in (f"E{row}", f"F{row}")]
FULL_GAME = [*WALLS, "G5", "B5", "pass", "pass"]


# -- a whole game ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "komi", "result", "black_total", "white_total"),
    [
        # territory: Black 36 points + 1 prisoner (B5); White 27 + 1 (G5) + 6.5 komi
        ("japanese", 6.5, "B+2.5", 37.0, 34.5),
        # area: Black 9 stones + 36; White 9 stones + 27 + 7.5 komi
        ("chinese", 7.5, "B+1.5", 45.0, 43.5),
    ],
)
async def test_full_9x9_game_to_a_scored_result(
    store: Store, rules: str, komi: float, result: str, black_total: float, white_total: float
) -> None:
    t = await make_table(
        store, rules=rules, komi=komi, time_control=ByoYomi(main_s=600, periods=3, period_s=30)
    )
    assert await t.kinds() == ["game_created", "game_started"]
    row = await store.get_game(t.game_id)
    assert (row.status, row.rules, row.width, row.komi) == ("playing", rules, 9, komi)
    assert row.deadline is not None and row.started_at == ms_to_dt(T0)
    for i, v in enumerate(FULL_GAME):
        await t.play(v)
        if i % 7 == 0:
            await t.assert_fold_matches()
    state = await t.service.state(t.game_id)
    assert state.phase == "scoring" and state.clock.state == "paused"
    assert (await t.kinds())[-2:] == ["pass", "scoring_started"]
    row = await store.get_game(t.game_id)
    assert row.status == "scoring" and row.deadline is None

    # White marks the black stone at G5, Black the white stone at B5
    (ev,) = await t.act(t.white, {"type": "mark_dead", "vertex": "G5"})
    assert ev.kind == "dead_stones_marked" and ev.payload["marking"] == ["G5"]
    (ev,) = await t.act(t.black, {"type": "mark_dead", "vertex": "b5"})
    assert ev.payload["stones"] == ["B5"] and ev.payload["dead"] is True
    assert ev.payload["marking"] == ["B5", "G5"]
    await t.act(t.black, {"type": "accept_score"})
    assert (await t.service.state(t.game_id)).accepted == {"black"}

    # White toggles the whole black wall dead and alive again: Black's acceptance is reset
    (ev,) = await t.act(t.white, {"type": "mark_dead", "vertex": "E5"})
    assert len(ev.payload["stones"]) == 9 and ev.payload["dead"] is True
    assert (await t.service.state(t.game_id)).accepted == set()
    (ev,) = await t.act(t.white, {"type": "mark_dead", "vertex": "E1"})
    assert ev.payload["dead"] is False and ev.payload["marking"] == ["B5", "G5"]

    (ev,) = await t.act(t.white, {"type": "accept_score"})
    assert ev.kind == "score_accepted" and ev.payload["result"] == result
    await expect_rejected(t, t.white, {"type": "accept_score"}, BadAction)  # accepted already
    accepted, finished = await t.act(t.black, {"type": "accept_score"})
    assert accepted.kind == "score_accepted"
    assert finished.kind == "game_finished"
    p = finished.payload
    assert (p["result"], p["reason"], p["winner"]) == (result, "score", "black")
    assert (p["score"]["black"], p["score"]["white"]) == (black_total, white_total)
    assert p["dead"] == ["B5", "G5"]

    row = await store.get_game(t.game_id)
    assert (row.status, row.result, row.deadline) == ("finished", result, None)
    assert row.finished_at == ms_to_dt(t.clock.t)
    state = await t.service.state(t.game_id)
    assert (state.phase, state.result, state.clock.state) == ("finished", result, "stopped")
    await t.assert_fold_matches()
    # everything committed was published once, in order
    assert [e.seq for e in t.published] == list(range(1, state.last_seq + 1))
    await expect_rejected(t, t.black, {"type": "move", "vertex": "A1"}, GameFinishedError)
    await expect_rejected(t, t.white, {"type": "resign"}, GameFinishedError)
    await expect_rejected(t, t.spectator, {"type": "resign"}, NotAPlayer)


async def test_events_carry_clocks_and_server_time(store: Store) -> None:
    t = await make_table(store, time_control=Absolute(main_s=300))
    (ev,) = await t.act(t.black, {"type": "move", "vertex": "E5"}, ms=4000)
    clock = ev.payload["clock"]
    assert clock["server_ms"] == T0 + 4000 and ev.payload["at_ms"] == T0 + 4000
    assert clock["black"]["remaining_ms"] == 296_000
    assert clock["white"]["remaining_ms"] == 300_000
    assert clock["to_move"] == "white" and clock["state"] == "running"
    row = await store.get_game(t.game_id)
    assert row.deadline == ms_to_dt(clock["deadline_ms"])
    (ev,) = await t.act(t.white, {"type": "move", "vertex": "C3"}, ms=10_000, lag_ms=300)
    assert ev.payload["lag_ms"] == 300
    assert ev.payload["clock"]["white"]["remaining_ms"] == 300_000 - 10_000 + 300
    await t.assert_fold_matches()


# -- resign, abort -------------------------------------------------------------------------------


async def test_resign(store: Store) -> None:
    t = await make_table(store)
    await t.play("E5", "C3")
    resign, finished = await t.act(t.white, {"type": "resign"})
    assert resign.kind == "resign" and resign.payload["color"] == "white"
    assert finished.payload["result"] == "B+R" and finished.payload["winner"] == "black"
    row = await store.get_game(t.game_id)
    assert (row.status, row.result) == ("finished", "B+R")
    await expect_rejected(t, t.white, {"type": "move", "vertex": "D4"}, GameFinishedError)
    await t.assert_fold_matches()


async def test_resign_during_scoring_and_out_of_turn(store: Store) -> None:
    t = await make_table(store)
    await t.play("E5", "pass", "pass")
    assert (await t.service.state(t.game_id)).phase == "scoring"
    _, finished = await t.act(t.black, {"type": "resign"})
    assert finished.payload["result"] == "W+R"


async def test_abort_rules(store: Store) -> None:
    t = await make_table(store)
    (ev,) = await t.act(t.black, {"type": "abort"})
    assert ev.kind == "aborted" and ev.payload["color"] == "black"
    row = await store.get_game(t.game_id)
    assert (row.status, row.result, row.deadline) == ("aborted", None, None)
    await expect_rejected(t, t.white, {"type": "move", "vertex": "E5"}, GameFinishedError)
    await expect_rejected(t, t.white, {"type": "abort"}, GameFinishedError)

    t2 = await _second_table(t)
    await t2.play("E5")
    (ev,) = await t2.act(t2.white, {"type": "abort"})  # one move made: still allowed
    assert ev.kind == "aborted"

    t3 = await _second_table(t)
    await t3.play("E5", "C3")
    await expect_rejected(t3, t3.black, {"type": "abort"}, CannotAbort)
    await expect_rejected(t3, t3.white, {"type": "abort"}, CannotAbort)
    await expect_rejected(t3, t3.spectator, {"type": "abort"}, NotAPlayer)


async def _second_table(t: Table, **game: Any) -> Table:
    """Another game between the same players on the same service."""
    game.setdefault("size", 9)
    game.setdefault("rules", "japanese")
    state = await t.service.create_game(t.black, t.white, user_color="black", **game)
    return Table(t.store, t.service, t.clock, t.black, t.white, t.spectator, state.game_id)


# -- undo ----------------------------------------------------------------------------------------


async def test_undo_request_accept_decline(store: Store) -> None:
    t = await make_table(store, time_control=Absolute(main_s=600))
    await expect_rejected(t, t.black, {"type": "undo_request"}, CannotUndo)  # nothing to undo
    await t.play("E5")
    before_c3 = (await t.service.state(t.game_id)).game.situational_hash
    await expect_rejected(t, t.white, {"type": "undo_request"}, CannotUndo)  # not White's move
    await expect_rejected(t, t.white, {"type": "undo_accept"}, NoUndoPending)
    await t.play("C3")
    (ev,) = await t.act(t.white, {"type": "undo_request"})
    assert ev.kind == "undo_requested" and ev.payload["move_number"] == 2
    await expect_rejected(t, t.white, {"type": "undo_request"}, CannotUndo)  # already pending
    await expect_rejected(t, t.white, {"type": "undo_accept"}, NoUndoPending)  # own request
    await expect_rejected(t, t.spectator, {"type": "undo_accept"}, NotAPlayer)
    (ev,) = await t.act(t.black, {"type": "undo_decline"})
    assert ev.kind == "undo_declined"
    await expect_rejected(t, t.black, {"type": "undo_decline"}, NoUndoPending)
    await expect_rejected(t, t.white, {"type": "undo_request"}, CannotUndo)  # declined once
    state = await t.service.state(t.game_id)
    assert state.game.move_number == 2 and state.to_move == "black"

    # a pending request lapses when the opponent plays on
    await t.play("D4")
    await t.act(t.black, {"type": "undo_request"})
    await t.play("F6")
    await expect_rejected(t, t.white, {"type": "undo_accept"}, NoUndoPending)

    # White asks again for F6; Black accepts: F6 is gone and White moves again
    await t.act(t.white, {"type": "undo_request"})
    (ev,) = await t.act(t.black, {"type": "undo_accept"}, ms=3000)
    assert ev.kind == "undo_accepted"
    assert ev.payload["undone"] == ["F6"] and ev.payload["to_move"] == "white"
    assert ev.payload["clock"]["to_move"] == "white"
    state = await t.service.state(t.game_id)
    assert state.to_move == "white" and state.game.move_number == 3
    assert state.game.vertex(state.game.moves[-1]) == "D4"
    assert state.clock.to_move == "white" and state.clock.state == "running"
    await t.play("G7")
    await t.assert_fold_matches()
    assert before_c3 != state.game.situational_hash
    row = await store.get_game(t.game_id)
    assert row.deadline == ms_to_dt(state.clock.deadline())  # type: ignore[arg-type]


async def test_undo_restores_the_position_exactly(store: Store) -> None:
    t = await make_table(store)
    await t.play("E5", "D5", "D4", "C4", "E4", "pass")
    before = (await t.service.state(t.game_id)).fingerprint()[3:9]  # hashes, board, moves
    await t.play("D6")
    await t.act(t.black, {"type": "undo_request"})
    await t.act(t.white, {"type": "undo_accept"})
    after = (await t.service.state(t.game_id)).fingerprint()[3:9]
    assert before[:5] == after[:5]
    await t.assert_fold_matches()


# -- scoring disagreement ------------------------------------------------------------------------


async def test_scoring_disagreement_resume_play_on_and_finish(store: Store) -> None:
    t = await make_table(store, time_control=Absolute(main_s=600))
    await t.play(*WALLS, "pass", "pass")
    await t.act(t.black, {"type": "mark_dead", "vertex": "F5"})  # Black claims White is dead
    await t.act(t.black, {"type": "accept_score"})
    (ev,) = await t.act(t.white, {"type": "resume"})
    assert ev.kind == "play_resumed" and ev.payload["to_move"] == "black"
    assert ev.payload["clock"]["state"] == "running"
    state = await t.service.state(t.game_id)
    assert state.phase == "playing" and state.dead == set() and state.accepted == set()
    row = await store.get_game(t.game_id)
    assert row.status == "playing" and row.deadline is not None

    await expect_rejected(t, t.white, {"type": "move", "vertex": "G5"}, NotYourTurn)
    await t.play("G5", "H5")
    await t.play("pass")
    assert (await t.service.state(t.game_id)).phase == "playing"  # one pass since resuming
    await t.play("pass")
    state = await t.service.state(t.game_id)
    assert state.phase == "scoring"
    await t.act(t.white, {"type": "mark_dead", "vertex": "G5"})
    await t.act(t.white, {"type": "accept_score"})
    _, finished = await t.act(t.black, {"type": "accept_score"})
    # Japanese: Black 36 + 0; White 26 (G5 dead, H5 own stone) + 1 prisoner + 6.5 = 33.5
    assert finished.payload["result"] == "B+2.5"
    await t.assert_fold_matches()


# -- errors --------------------------------------------------------------------------------------


async def test_error_paths_change_nothing(store: Store) -> None:
    t = await make_table(store)
    other = await _second_table(t)
    await expect_rejected(t, t.white, {"type": "move", "vertex": "E5"}, NotYourTurn)
    await expect_rejected(t, t.white, {"type": "pass"}, NotYourTurn)
    await expect_rejected(t, t.spectator, {"type": "move", "vertex": "E5"}, NotAPlayer)
    await expect_rejected(t, 999_999, {"type": "pass"}, NotAPlayer)
    await expect_rejected(t, t.black, {"type": "mark_dead", "vertex": "E5"}, WrongPhase)
    await expect_rejected(t, t.black, {"type": "accept_score"}, WrongPhase)
    await expect_rejected(t, t.black, {"type": "resume"}, WrongPhase)
    for bad in (
        b"{",
        b"[]",
        b'{"type": "fly"}',
        b'{"type": "move"}',
        b'{"type": "move", "vertex": 44}',
        b'{"type": "move", "vertex": "E5", "x": 1}',
        b'{"type": "pass", "please": true}',
        b'{"type": "move", "vertex": "' + b"E" * 100 + b'"}',
        '{"vertex": "E5"}',
        {"type": "resign", "now": 1},
    ):
        err = await expect_rejected(t, t.black, bad, BadAction)
        assert err.code == "bad_action"
    with pytest.raises(BadAction):
        await t.service.act(t.game_id, t.black, {"type": "pass"}, request_id="x" * 500)

    err = await expect_rejected(t, t.black, {"type": "move", "vertex": "Z99"}, IllegalMove)
    assert isinstance(err, IllegalMove) and err.reason == "off_board"
    await expect_rejected(t, t.black, {"type": "move", "vertex": "pass"}, BadAction)

    await t.play("E5")
    err = await expect_rejected(t, t.white, {"type": "move", "vertex": "E5"}, IllegalMove)
    assert isinstance(err, IllegalMove) and err.reason == "occupied" and err.vertex == "E5"
    assert err.to_dict()["code"] == "illegal_move"

    # suicide: White A1 inside Black's A2/B1
    await t.play("J9", "A2", "J8", "B1")
    err = await expect_rejected(t, t.white, {"type": "move", "vertex": "A1"}, IllegalMove)
    assert isinstance(err, IllegalMove) and err.reason == "suicide"

    # ko (in the other game, E5 is taken here): White D5 in Black's mouth, Black takes at E5
    await other.play("C5", "E4", "D4", "E6", "D6", "F5", "J9", "D5")
    (take,) = await other.act(other.black, {"type": "move", "vertex": "E5"})
    assert take.payload["captures"] == 1
    err = await expect_rejected(other, other.white, {"type": "move", "vertex": "D5"}, IllegalMove)
    assert isinstance(err, IllegalMove) and err.reason == "ko"

    # scoring phase: no moves, no undo, no abort
    await other.play("A9", "pass", "pass")
    await expect_rejected(other, other.black, {"type": "move", "vertex": "A1"}, WrongPhase)
    await expect_rejected(other, other.black, {"type": "pass"}, WrongPhase)
    await expect_rejected(other, other.black, {"type": "undo_request"}, WrongPhase)
    await expect_rejected(other, other.black, {"type": "abort"}, CannotAbort)
    await expect_rejected(other, other.black, {"type": "mark_dead", "vertex": "H8"}, BadAction)
    await expect_rejected(other, other.black, {"type": "mark_dead", "vertex": "Q99"}, BadAction)


async def test_superko(store: Store) -> None:
    t = await make_table(store, size=3, rules="tromp-taylor", komi=7.5)
    await t.play("C1", "B3", "A2", "A1", "B1", "B2", "A3", "A1")
    err = await expect_rejected(t, t.black, {"type": "move", "vertex": "A2"}, IllegalMove)
    assert isinstance(err, IllegalMove) and err.reason == "superko"


async def test_bad_game_settings(store: Store) -> None:
    t = await make_table(store)
    for kw in (
        {"size": 1},
        {"size": 40},
        {"rules": "calvinball"},
        {"komi": 6.3},
        {"komi": float("nan")},
        {"handicap": 1},
        {"handicap": 12},
        {"time_control": {"system": "byoyomi", "main_s": -5}},
        {"user_color": "green"},
    ):
        with pytest.raises(BadGameSettings):
            await t.service.create_game(t.black, t.white, **kw)
    with pytest.raises(BadGameSettings):
        await t.service.create_game(t.black, t.black)
    with pytest.raises(BadGameSettings):
        await t.service.create_game(t.black, 987_654)


async def test_handicap_game_white_first(store: Store) -> None:
    t = await make_table(store, handicap=4, komi=None)
    state = await t.service.state(t.game_id)
    assert state.to_move == "white" and state.clock.to_move == "white"
    assert state.game.komi == 0.5 and state.game.handicap == 4
    await expect_rejected(t, t.black, {"type": "move", "vertex": "E5"}, NotYourTurn)
    await t.act(t.white, {"type": "move", "vertex": "E5"})
    await t.assert_fold_matches()


# -- timeouts ------------------------------------------------------------------------------------


async def test_timeout_decided_by_check_timeouts_exactly_once(store: Store) -> None:
    t = await make_table(store, time_control=Absolute(main_s=60))
    await t.act(t.black, {"type": "move", "vertex": "E5"})
    state = await t.service.state(t.game_id)
    deadline = state.clock.deadline()
    assert deadline is not None and deadline > state.clock.flag_time()  # type: ignore[operator]
    assert await t.service.check_timeouts(deadline - 1) == []
    other_store = await open_store(store.url)
    other = GameService(other_store, clock_fn=t.clock)
    try:
        results = await asyncio.gather(
            t.service.check_timeouts(deadline),
            t.service.check_timeouts(deadline),
            other.check_timeouts(deadline),
        )
    finally:
        await other_store.close()
    committed = [e for r in results for e in r]
    assert [e.kind for e in committed] == ["timeout", "game_finished"]
    assert committed[0].payload["color"] == "white"
    assert committed[1].payload["result"] == "B+T"
    assert (await t.kinds())[-2:] == ["timeout", "game_finished"]
    row = await store.get_game(t.game_id)
    assert (row.status, row.result, row.deadline) == ("finished", "B+T", None)
    assert await t.service.check_timeouts(deadline + 10_000) == []
    t.clock.t = deadline + 5
    with pytest.raises(GameFinishedError):
        await t.service.act(t.game_id, t.white, {"type": "move", "vertex": "C3"})
    await t.assert_fold_matches()


async def test_late_move_is_refused_and_the_game_ends_on_time(store: Store) -> None:
    t = await make_table(store, time_control=Absolute(main_s=60))
    await t.act(t.black, {"type": "move", "vertex": "E5"})
    deadline = (await t.service.state(t.game_id)).clock.deadline()
    assert deadline is not None
    before = len(await t.kinds())
    with pytest.raises(FlagFallenError) as info:
        await t.act(t.white, {"type": "move", "vertex": "C3"}, ms=deadline - t.clock.t)
    assert info.value.code == "flag_fallen"
    assert (await t.kinds())[before:] == ["timeout", "game_finished"]
    assert (await store.get_game(t.game_id)).result == "B+T"
    assert await t.service.check_timeouts(deadline + 1) == []
    # the timeout events are the server's, not the refused request's
    log = await store.events_since(t.game_id, before)
    assert all(e.payload["request_id"] is None for e in log)


async def test_move_after_zero_without_enough_lag_credit_flags(store: Store) -> None:
    t = await make_table(store, time_control=Absolute(main_s=60))
    await t.act(t.black, {"type": "move", "vertex": "E5"})
    clock = (await t.service.state(t.game_id)).clock
    flag, deadline = clock.flag_time(), clock.deadline()
    assert flag is not None and deadline is not None and flag < deadline - 1
    t.clock.t = flag + 1  # past zero, inside the grace period, but claiming no lag
    with pytest.raises(FlagFallenError):
        await t.service.act(t.game_id, t.white, {"type": "move", "vertex": "C3"})
    assert (await store.get_game(t.game_id)).result == "B+T"


async def test_clock_pauses_while_scoring(store: Store) -> None:
    t = await make_table(store, time_control=Absolute(main_s=60))
    await t.play("E5", "pass", "pass")
    row = await store.get_game(t.game_id)
    assert row.status == "scoring" and row.deadline is None
    t.clock.tick(3_600_000)  # an hour of arguing costs nobody time
    assert await t.service.check_timeouts() == []
    (ev,) = await t.act(t.white, {"type": "resume"})
    # Black spent 1 s on E5 and 1 s on the pass, White 1 s on the pass; nothing since
    assert ev.payload["clock"]["black"]["remaining_ms"] == 58_000
    assert ev.payload["clock"]["white"]["remaining_ms"] == 59_000
    await t.play("D4")
    await t.assert_fold_matches()


# -- idempotency ---------------------------------------------------------------------------------


async def test_retry_with_the_same_request_id_returns_the_same_events(store: Store) -> None:
    t = await make_table(store)
    first = await t.act(t.black, {"type": "move", "vertex": "E5"}, request_id="req-1")
    again = await t.act(t.black, {"type": "move", "vertex": "E5"}, request_id="req-1")
    assert again == first and [e.seq for e in first] == [3]
    assert first[0].payload["request_id"] == "req-1"
    assert first[0].payload["user_id"] == t.black
    # the same id from the other player is another request
    await t.act(t.white, {"type": "pass"}, request_id="req-1")
    # an action of two events (pass + scoring_started) comes back whole
    two = await t.act(t.black, {"type": "pass"}, request_id="req-2")
    assert [e.kind for e in two] == ["pass", "scoring_started"]
    assert await t.act(t.black, {"type": "pass"}, request_id="req-2") == two
    # a fresh service (another instance, cold cache) knows the ids from the log
    cold = GameService(store, clock_fn=t.clock)
    assert await cold.act(t.game_id, t.black, {"type": "pass"}, request_id="req-2") == two
    assert (
        await cold.act(t.game_id, t.black, {"type": "move", "vertex": "E5"}, request_id="req-1")
        == first
    )
    assert len(await t.kinds()) == 6
    # a rejected request is not remembered: the retry is decided again
    with pytest.raises(WrongPhase):
        await t.act(t.white, {"type": "move", "vertex": "A1"}, request_id="req-3")
    await t.act(t.black, {"type": "resume"}, request_id="req-4")
    (ev,) = await t.act(t.white, {"type": "move", "vertex": "A1"}, request_id="req-3")
    assert ev.kind == "move"
    await t.assert_fold_matches()


# -- several instances ---------------------------------------------------------------------------


async def test_two_instances_race_for_every_seq(store: Store) -> None:
    t = await make_table(store)
    other_store = await open_store(store.url)
    other = GameService(other_store, clock_fn=t.clock)
    services = [t.service, other]
    try:
        moves = ["E5", "C3", "G7", "C7", "G3", "E3", "E7", "C5", "G5", "D4"]
        alt = ["D5", "D3", "F7", "B7", "F3", "F4", "F6", "B5", "H5", "H4"]
        for i, (a, b) in enumerate(zip(moves, alt, strict=True)):
            t.clock.tick()
            who = t.black if i % 2 == 0 else t.white
            results = await asyncio.gather(
                *(
                    s.act(t.game_id, who, {"type": "move", "vertex": v})
                    for s, v in zip(services, (a, b), strict=True)
                ),
                return_exceptions=True,
            )
            wins = [r for r in results if isinstance(r, list)]
            losses = [r for r in results if not isinstance(r, list)]
            assert len(wins) == 1, results
            assert len(losses) == 1 and isinstance(losses[0], NotYourTurn), results
        # the same request on both instances at once: one commit, both get it
        t.clock.tick()
        same = await asyncio.gather(
            *(s.act(t.game_id, t.black, {"type": "pass"}, request_id="both") for s in services)
        )
        assert same[0] == same[1] and len(same[0]) == 1
        log = await store.events_since(t.game_id)
        assert [e.seq for e in log] == list(range(1, len(log) + 1))
        assert len(log) == 2 + 10 + 1
        folded = GameState.from_events(log).fingerprint()
        for s in services:
            assert (await s.state(t.game_id)).fingerprint() == folded
    finally:
        await other_store.close()


async def test_stale_cache_catches_up_before_refusing(store: Store) -> None:
    t = await make_table(store)
    other_store = await open_store(store.url)
    other = GameService(other_store, clock_fn=t.clock)
    try:
        await t.service.state(t.game_id)  # cached on instance 1
        t.clock.tick()
        await other.act(t.game_id, t.black, {"type": "move", "vertex": "E5"})
        # instance 1 still thinks Black is to move; White's move must succeed anyway
        (ev,) = await t.act(t.white, {"type": "move", "vertex": "C3"})
        assert ev.seq == 4
        # and instance 2 (stale now) appends after a conflict
        t.clock.tick()
        (ev,) = await other.act(t.game_id, t.black, {"type": "move", "vertex": "G7"})
        assert ev.seq == 5
        folded = (await t.fold()).fingerprint()
        assert (await other.state(t.game_id)).fingerprint() == folded
        assert (await t.service.state(t.game_id)).fingerprint() == folded
    finally:
        await other_store.close()


async def test_concurrent_actions_in_one_instance_are_serialised(store: Store) -> None:
    t = await make_table(store)
    results = await asyncio.gather(
        t.service.act(t.game_id, t.black, {"type": "move", "vertex": "E5"}),
        t.service.act(t.game_id, t.black, {"type": "move", "vertex": "D5"}),
        return_exceptions=True,
    )
    assert sum(isinstance(r, list) for r in results) == 1
    assert sum(isinstance(r, NotYourTurn) for r in results) == 1
    await t.assert_fold_matches()


async def test_hooks_get_committed_events_and_cannot_break_an_action(store: Store) -> None:
    t = await make_table(store)

    async def broken(events: list[StoredEvent]) -> None:
        raise RuntimeError("bus down")

    t.service.on_events.insert(0, broken)
    evs = await t.act(t.black, {"type": "move", "vertex": "E5"})
    assert t.published[-1] == evs[0]
    assert [e.seq for e in t.published] == [1, 2, 3]


async def test_unknown_game(store: Store) -> None:
    service = GameService(store)
    from goapp.game import GameNotFound

    with pytest.raises(GameNotFound):
        await service.act(424242, 1, {"type": "pass"})
    with pytest.raises(GameNotFound):
        await service.state(424242)
    assert await service.events_since(424242) == []


async def test_cache_eviction_refolds(store: Store) -> None:
    t = await make_table(store)
    t.service.cache_size = 1
    t2 = await _second_table(t)
    await t.play("E5")
    await t2.play("D4")
    await t.play("C3")
    assert len(t.service._cache) == 1
    await t.assert_fold_matches()
    state = await t.service.state(t.game_id)
    assert state.game.move_number == 2


async def test_bot_side_acts_through_act_as_bot(store: Store) -> None:
    clock = FakeClock()
    service = GameService(store, clock_fn=clock)
    alice = (await store.create_user("alice", "x")).id
    state = await service.create_game(
        alice, None, user_color="black", size=9, opponent_bot="katago:b18"
    )
    gid = state.game_id
    row = await store.get_game(gid)
    assert (row.black_id, row.white_id, row.white_bot) == (alice, None, "katago:b18")
    await service.act(gid, alice, {"type": "move", "vertex": "E5"})
    with pytest.raises(NotAPlayer):  # the black side is a person, not a bot
        await service.act_as_bot(gid, "black", {"type": "pass"})
    with pytest.raises(NotAPlayer):  # nobody acts for the bot through act()
        await service.act(gid, None, {"type": "move", "vertex": "C3"})
    (ev,) = await service.act_as_bot(
        gid, "white", {"type": "move", "vertex": "C3"}, request_id="b1"
    )
    assert ev.payload["color"] == "white" and ev.payload["user_id"] is None
    assert await service.act_as_bot(gid, "white", Pass(), request_id="b1") == [ev]


async def test_two_instances_many_concurrent_actions_keep_the_log_whole(store: Store) -> None:
    """Both players act through both instances at once, round after round: every committed
    event was returned to exactly one caller, the log has no gap, and both instances end
    with the fold of the log."""
    t = await make_table(store, time_control=Absolute(main_s=3600))
    other_store = await open_store(store.url)
    other = GameService(other_store, clock_fn=t.clock)
    services = [t.service, other]
    points = [f"{c}{r}" for c in "ABCDEFGHJ" for r in range(1, 10)]
    rng = random.Random(5)
    returned: list[int] = []
    try:
        for _ in range(25):
            t.clock.tick(500)
            calls = []
            for s in services:
                for who in (t.black, t.white):
                    body: dict[str, Any] = {"type": "move", "vertex": rng.choice(points)}
                    if rng.random() < 0.1:
                        body = {"type": "undo_request"}
                    calls.append(s.act(t.game_id, who, body))
            for r in await asyncio.gather(*calls, return_exceptions=True):
                if isinstance(r, list):
                    returned.extend(e.seq for e in r)
                else:
                    assert isinstance(r, GameError), r
        log = await store.events_since(t.game_id)
        assert [e.seq for e in log] == list(range(1, len(log) + 1))
        assert sorted(returned) == list(range(3, len(log) + 1))
        assert len(log) > 10
        folded = GameState.from_events(log).fingerprint()
        for s in services:
            assert (await s.state(t.game_id)).fingerprint() == folded
    finally:
        await other_store.close()


async def test_losing_the_race_twice_is_a_conflict_error(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = await make_table(store)
    calls = 0

    async def always_taken(*args: Any, **kw: Any) -> Any:
        nonlocal calls
        calls += 1
        raise ConflictError("seq taken")

    monkeypatch.setattr(store, "append_events", always_taken)
    with pytest.raises(ConcurrentUpdate) as info:
        await t.act(t.black, {"type": "move", "vertex": "E5"})
    assert info.value.code == "conflict" and calls == 2
    monkeypatch.undo()
    assert await t.kinds() == ["game_created", "game_started"]
    (ev,) = await t.act(t.black, {"type": "move", "vertex": "E5"})
    assert ev.seq == 3 and ev.to_wire()["kind"] == "move" and ev.to_wire()["seq"] == 3


async def test_accepting_an_undo_after_running_out_of_time_ends_the_game(store: Store) -> None:
    t = await make_table(store, time_control=Absolute(main_s=60))
    await t.play("E5")
    await t.act(t.black, {"type": "undo_request"})
    flag = (await t.service.state(t.game_id)).clock.flag_time()
    assert flag is not None
    t.clock.t = flag + 1  # White's time is over, the lag grace not yet
    with pytest.raises(FlagFallenError):
        await t.service.act(t.game_id, t.white, {"type": "undo_accept"})
    assert (await store.get_game(t.game_id)).result == "B+T"
    await t.assert_fold_matches()


async def test_view_for_subscribers(store: Store) -> None:
    t = await make_table(store, time_control=Absolute(main_s=60))
    await t.play("E5", "pass", "pass")
    await t.act(t.white, {"type": "mark_dead", "vertex": "E5"})
    view = await t.service.view(t.game_id)
    assert (view.phase, view.seq, view.dead, view.to_move) == ("scoring", 7, ["E5"], "white")
    assert view.board[4] == "....X...." and view.moves == ["E5", "pass", "pass"]
    assert view.clock.state == "paused" and view.clock.server_ms == t.clock.t
