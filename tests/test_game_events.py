"""The game domain without a database: event JSON, action decoding, the fold, decide()."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import msgspec
import pytest

from goapp.game import (
    BadAction,
    GameError,
    GameState,
    StoredEvent,
    decide,
    decode_action,
    decode_event,
    encode_payload,
)
from goapp.game.actions import (
    Abort,
    AcceptScore,
    MarkDead,
    Move,
    Pass,
    Resign,
    Resume,
    UndoAccept,
    UndoDecline,
    UndoRequest,
    timeout_events,
)
from goapp.game.events import EventDecodeError, GameCreated, GameEvent, GameStarted, clock_view
from goapp.game.events import Resign as ResignEvent
from goapp.rules.clock import ByoYomi, Fischer

T0 = 1_767_268_800_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def new_state(size: int = 9, rules: str = "japanese", **kw: object) -> GameState:
    created = GameCreated(
        at_ms=T0,
        black_id=1,
        white_id=2,
        width=size,
        height=size,
        rules=rules,
        komi=6.5,
        **kw,  # type: ignore[arg-type]
    )
    state = GameState(7, created)
    state.apply(GameStarted(at_ms=T0, clock=clock_view(state.clock.start(T0), T0), first="black"))
    return state


def log_of(state: GameState, events: list[tuple[int, GameEvent]]) -> list[StoredEvent]:
    return [StoredEvent(game_id=7, seq=s, created_at=EPOCH, event=e) for s, e in events]


def test_actions_decode() -> None:
    cases = {
        b'{"type": "move", "vertex": "D4"}': Move("D4"),
        b'{"type": "pass"}': Pass(),
        b'{"type": "resign"}': Resign(),
        b'{"type": "undo_request"}': UndoRequest(),
        b'{"type": "undo_accept"}': UndoAccept(),
        b'{"type": "undo_decline"}': UndoDecline(),
        b'{"type": "mark_dead", "vertex": "c3"}': MarkDead("c3"),
        b'{"type": "accept_score"}': AcceptScore(),
        b'{"type": "resume"}': Resume(),
        b'{"type": "abort"}': Abort(),
    }
    for raw, action in cases.items():
        assert decode_action(raw) == action
        assert decode_action(raw.decode()) == action
        assert decode_action(msgspec.json.decode(raw)) == action
        assert decode_action(action) is action
        assert msgspec.json.decode(msgspec.json.encode(action)) == msgspec.json.decode(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"null",
        b"{",
        b'"move"',
        b"{}",
        b'{"type": "Move", "vertex": "D4"}',
        b'{"type": "move", "vertex": ""}',
        b'{"type": "move", "vertex": null}',
        b'{"type": "move", "vertex": "D4", "color": "black"}',
        b'{"type": "abort", "reason": "bored"}',
    ],
)
def test_bad_actions(raw: bytes) -> None:
    with pytest.raises(BadAction) as info:
        decode_action(raw)
    assert info.value.code == "bad_action" and info.value.message


def test_bad_action_types() -> None:
    with pytest.raises(BadAction):
        decode_action(42)  # type: ignore[arg-type]
    with pytest.raises(BadAction):
        decode_action({"type": "move", "vertex": 3})


def test_event_decode_errors() -> None:
    with pytest.raises(EventDecodeError):
        decode_event("teleport", {})
    with pytest.raises(EventDecodeError):
        decode_event("move", [1, 2])
    with pytest.raises(EventDecodeError):
        decode_event("move", {"at_ms": 1, "color": "green", "vertex": "D4"})
    # unknown fields (a newer server's) are ignored
    ev = decode_event("resign", {"at_ms": 5, "color": "white", "mood": "grumpy"})
    assert encode_payload(ev)["color"] == "white"


def test_fold_checks_the_log() -> None:
    with pytest.raises(ValueError):
        GameState.from_events([])
    state = new_state()
    with pytest.raises(ValueError):
        state.apply(ResignEvent(at_ms=T0, color="black"), 9)
    started = StoredEvent(
        game_id=7, seq=1, created_at=EPOCH, event=GameStarted(at_ms=T0, first="black")
    )
    with pytest.raises(ValueError):
        GameState.from_events([started])


ACTIONS = [
    *(Move(f"{c}{r}") for c in "ABCDE" for r in range(1, 6)),
    *[Pass()] * 6,
    *[UndoRequest(), UndoAccept(), UndoDecline()] * 3,
    *(MarkDead(f"{c}{r}") for c in "ABCDE" for r in range(1, 6)),
    *[AcceptScore()] * 8,
    *[Resume()] * 2,
]
RARE = [Resign(), Abort()]


@pytest.mark.parametrize("seed", range(40))
def test_random_games_fold_back_to_the_same_state(seed: int) -> None:
    """Random actions by random people through decide(); every committed event goes through
    its JSON form; the fold of the log equals the live state at every step."""
    rng = random.Random(seed)
    control = [None, ByoYomi(main_s=30, periods=2, period_s=5), Fischer(main_s=20, increment_s=3)]
    rules = rng.choice(["japanese", "chinese", "tromp-taylor", "aga"])
    state = new_state(5, rules, time_control=rng.choice(control))
    started = GameStarted(at_ms=T0, first="black")
    rows: list[tuple[int, int, str, object]] = [
        (7, 1, "game_created", encode_payload(state.setup)),
        (7, 2, "game_started", encode_payload(started)),
    ]
    now = T0
    for _ in range(300):
        if state.is_over:
            break
        now += rng.randint(0, 1500)
        who = rng.choice(["black", "white", "black", "white", None])
        action = rng.choice(RARE if rng.random() < 0.005 else ACTIONS)
        try:
            events = decide(state, who, action, now, lag_ms=rng.randint(0, 500))  # type: ignore[arg-type]
        except GameError as exc:
            events = getattr(exc, "events", [])
        for e in events:
            kind = e.__struct_config__.tag
            payload = msgspec.json.decode(msgspec.json.encode(encode_payload(e)))
            again = decode_event(kind, payload)  # type: ignore[arg-type]
            assert again == e
            state.apply(again)
            rows.append((7, state.last_seq, kind, payload))  # type: ignore[arg-type]
        if rng.random() < 0.1 or state.is_over:
            folded = GameState.decode_and_fold(rows)
            assert folded.fingerprint() == state.fingerprint()


def test_timeout_events_only_after_the_deadline() -> None:
    state = new_state(time_control=ByoYomi(main_s=10, periods=1, period_s=5))
    deadline = state.clock.deadline()
    assert deadline is not None
    assert timeout_events(state, deadline - 1) == []
    timeout, finished = timeout_events(state, deadline)
    assert encode_payload(timeout)["color"] == "black"
    assert encode_payload(finished)["result"] == "W+T"


def test_view() -> None:
    state = new_state()
    for v, c in (("E5", "black"), ("D5", "white"), ("C3", "black")):
        for e in decide(state, c, Move(v), T0 + 1000):  # type: ignore[arg-type]
            state.apply(e)
    view = state.view(T0 + 2000)
    assert view.board[4] == "...OX...."
    assert view.board[6] == "..X......"
    assert view.moves == ["E5", "D5", "C3"] and view.to_move == "white"
    assert view.seq == 5 and view.phase == "playing"
    assert msgspec.json.decode(msgspec.json.encode(view))["clock"]["server_ms"] == T0 + 2000
