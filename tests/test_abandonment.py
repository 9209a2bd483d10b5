"""Fair play in live games, through GameService on a real store (SQLite and PostgreSQL):
abandonment (``player_left`` / ``player_returned`` / ``claim_victory``) and the bound on the
scoring phase. A fake clock makes the timing exact to the millisecond."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from test_game_service import Table, make_table

from goapp.game import GameService, GameState
from goapp.game.errors import CannotClaimVictory, NotYourTurn
from goapp.rules.clock import ByoYomi, Correspondence
from goapp.store import Store, open_store

ABANDON_MS = 60_000
SCORING_MS = 180_000


async def table(store: Store, **game: Any) -> Table:
    t = await make_table(store, **game)
    t.service.abandon_timeout_ms = ABANDON_MS
    t.service.scoring_timeout_ms = SCORING_MS
    return t


async def claim(t: Table, who: int) -> list[str]:
    return [e.kind for e in await t.service.act(t.game_id, who, {"type": "claim_victory"})]


# -- abandonment ---------------------------------------------------------------------------


async def test_claim_refused_until_the_timeout_then_won_exactly_once(store: Store) -> None:
    t = await table(store, time_control=ByoYomi(main_s=600, periods=5, period_s=30))
    await t.play("E5", "C3")
    t.clock.tick(500)
    left_at = t.clock.t
    committed = await t.service.presence_changed(t.white, False)
    assert [e.kind for e in committed] == ["player_left"]
    assert committed[0].payload["color"] == "white"
    assert committed[0].payload["claim_at_ms"] == left_at + ABANDON_MS
    # the same news again (another socket, another instance) adds nothing
    assert await t.service.presence_changed(t.white, False) == []
    assert (await t.service.view(t.game_id)).away == {"white": left_at + ABANDON_MS}

    t.clock.t = left_at + ABANDON_MS - 1
    with pytest.raises(CannotClaimVictory) as info:
        await t.service.act(t.game_id, t.black, {"type": "claim_victory"})
    assert info.value.claim_at_ms == left_at + ABANDON_MS
    assert "in 1 s" in info.value.message
    assert info.value.to_dict()["code"] == "cannot_claim_victory"
    # the player who left cannot claim against the one who stayed
    with pytest.raises(CannotClaimVictory):
        await t.service.act(t.game_id, t.white, {"type": "claim_victory"})

    t.clock.t = left_at + ABANDON_MS
    other_store = await open_store(store.url)
    other = GameService(other_store, clock_fn=t.clock)
    try:
        results = await asyncio.gather(
            t.service.act(t.game_id, t.black, {"type": "claim_victory"}),
            other.act(t.game_id, t.black, {"type": "claim_victory"}),
            return_exceptions=True,
        )
    finally:
        await other_store.close()
    wins = [r for r in results if isinstance(r, list)]
    assert len(wins) == 1, results
    assert [e.kind for e in wins[0]] == ["game_finished"]
    assert wins[0][0].payload["result"] == "B+F"
    assert wins[0][0].payload["reason"] == "forfeit"
    row = await store.get_game(t.game_id)
    assert (row.status, row.result) == ("finished", "B+F")
    assert (await t.kinds()).count("game_finished") == 1
    await t.assert_fold_matches()


async def test_return_before_the_timeout_cancels_the_claim(store: Store) -> None:
    t = await table(store, time_control=ByoYomi(main_s=600, periods=5, period_s=30))
    await t.play("E5", "C3", "D4")
    await t.service.presence_changed(t.black, False)
    t.clock.tick(ABANDON_MS - 1000)
    back = await t.service.presence_changed(t.black, True)
    assert [e.kind for e in back] == ["player_returned"]
    assert await t.service.presence_changed(t.black, True) == []
    t.clock.tick(10 * ABANDON_MS)
    with pytest.raises(CannotClaimVictory) as info:
        await t.service.act(t.game_id, t.white, {"type": "claim_victory"})
    assert info.value.claim_at_ms is None
    # leaving again starts a new wait
    await t.service.presence_changed(t.black, False)
    t.clock.tick(ABANDON_MS)
    assert await claim(t, t.white) == ["game_finished"]
    assert (await store.get_game(t.game_id)).result == "W+F"
    # the log folds the same on a fresh state (old code paths: GameState.from_events)
    folded = GameState.from_events(await store.events_since(t.game_id))
    assert folded.result == "W+F" and folded.away == {"black": folded.away["black"]}


async def test_the_game_goes_on_while_a_player_is_away(store: Store) -> None:
    t = await table(store)
    await t.play("E5", "C3")
    await t.service.presence_changed(t.white, False)
    await t.act(t.black, {"type": "move", "vertex": "D4"})  # black keeps playing
    with pytest.raises(NotYourTurn):
        await t.act(t.black, {"type": "move", "vertex": "D5"})
    state = await t.service.state(t.game_id)
    assert state.phase == "playing" and state.away


async def test_claim_before_two_moves_annuls_the_game(store: Store) -> None:
    t = await table(store)
    await t.play("E5")
    await t.service.presence_changed(t.white, False)
    t.clock.tick(ABANDON_MS)
    assert await claim(t, t.black) == ["aborted"]
    row = await store.get_game(t.game_id)
    assert (row.status, row.result) == ("aborted", None)


async def test_no_abandonment_in_correspondence_games(store: Store) -> None:
    t = await table(store, time_control=Correspondence(days_per_move=3))
    await t.play("E5", "C3")
    assert await t.service.presence_changed(t.white, False) == []
    t.clock.tick(10 * ABANDON_MS)
    with pytest.raises(CannotClaimVictory):
        await t.service.act(t.game_id, t.black, {"type": "claim_victory"})


async def test_presence_changes_of_a_finished_game_write_nothing(store: Store) -> None:
    t = await table(store)
    await t.play("E5", "C3")
    await t.act(t.white, {"type": "resign"})
    assert await t.service.presence_changed(t.white, False) == []


# -- the scoring phase's bound ---------------------------------------------------------------


async def test_scoring_phase_ends_by_itself_at_its_bound(store: Store) -> None:
    t = await table(store, time_control=ByoYomi(main_s=600, periods=5, period_s=30))
    await t.play("E5", "C3", "pass")
    t.clock.tick(1000)
    started = t.clock.t
    await t.service.act(t.game_id, t.white, {"type": "pass"})
    ends = started + SCORING_MS
    row = await store.get_game(t.game_id)
    assert row.status == "scoring"
    assert row.deadline is not None and int(row.deadline.timestamp() * 1000) == ends
    await t.act(t.black, {"type": "mark_dead", "vertex": "C3"})
    await t.act(t.black, {"type": "accept_score"})
    row = await store.get_game(t.game_id)  # marking and accepting do not move the bound
    assert row.deadline is not None and int(row.deadline.timestamp() * 1000) == ends
    assert (await t.service.view(t.game_id)).scoring_ends_at_ms == ends

    assert await t.service.check_timeouts(ends - 1) == []
    other_store = await open_store(store.url)
    other = GameService(other_store, clock_fn=t.clock)
    try:
        results = await asyncio.gather(t.service.check_timeouts(ends), other.check_timeouts(ends))
    finally:
        await other_store.close()
    committed = [e for r in results for e in r]
    assert [e.kind for e in committed] == ["game_finished"]
    fin = committed[0].payload
    assert fin["reason"] == "scoring_timeout"
    assert fin["dead"] == ["C3"]
    assert fin["result"].startswith("B+")  # white's only stone is dead
    row = await store.get_game(t.game_id)
    assert (row.status, row.deadline) == ("finished", None)
    await t.assert_fold_matches()


async def test_resuming_play_clears_the_scoring_bound(store: Store) -> None:
    t = await table(store, time_control=ByoYomi(main_s=600, periods=5, period_s=30))
    await t.play("E5", "C3", "pass", "pass")
    state = await t.service.state(t.game_id)
    assert state.phase == "scoring" and state.scoring_ends_at is not None
    await t.act(t.white, {"type": "resume"})
    state = await t.service.state(t.game_id)
    assert state.scoring_ends_at is None
    assert await t.service.check_timeouts(t.clock.t + SCORING_MS + 1) == []
    assert (await store.get_game(t.game_id)).status == "playing"
