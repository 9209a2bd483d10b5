"""A game's state: the fold of its event log through the rules core and the clock.

``GameState.from_events(log)`` rebuilds it; ``state.apply(event)`` advances it by one event.
Both are deterministic: the same log gives the same state (board, hashes, clocks, marking)
on every instance. A cached state is only ever a cache of that fold.

:mod:`goapp.game.actions` reads a state to decide what happens next; only the fold changes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TypeAlias

import msgspec

from goapp.game.events import (
    Aborted,
    ClockView,
    DeadStonesMarked,
    GameCreated,
    GameEvent,
    GameFinished,
    GameStarted,
    Move,
    Pass,
    PlayerColor,
    PlayerLeft,
    PlayerReturned,
    PlayResumed,
    Resign,
    ScoreAccepted,
    ScoringStarted,
    StoredEvent,
    Timeout,
    UndoAccepted,
    UndoDeclined,
    UndoRequested,
    clock_view,
    decode_event,
)
from goapp.rules import Color, Game, Rules
from goapp.rules.clock import GameClock, NoTimeControl
from goapp.store.records import GameStatus

__all__ = ["GameState", "GameView", "Phase", "color_name", "core_color"]

Phase: TypeAlias = GameStatus  # the statuses are defined once, in goapp.store.records


def core_color(color: PlayerColor) -> Color:
    return Color.BLACK if color == "black" else Color.WHITE


def color_name(color: Color) -> PlayerColor:
    return "black" if color is Color.BLACK else "white"


def opponent(color: PlayerColor) -> PlayerColor:
    return "white" if color == "black" else "black"


class GameView(msgspec.Struct, frozen=True, kw_only=True):
    """The whole state as sent to a client that subscribes (see :meth:`GameState.view`).
    ``board`` is one string per row from the top: ``.`` empty, ``X`` black, ``O`` white."""

    game_id: int
    seq: int
    phase: str
    width: int
    height: int
    rules: str
    komi: float
    handicap: int
    black_id: int | None
    white_id: int | None
    black_bot: str | None
    white_bot: str | None
    to_move: PlayerColor
    board: list[str]
    moves: list[str]
    captures: dict[str, int]
    ko: str | None
    dead: list[str]
    accepted: list[PlayerColor]
    undo_requested_by: PlayerColor | None
    result: str | None
    clock: ClockView
    #: players whose connection is gone -> when the opponent may claim the win (epoch ms)
    away: dict[str, int] = {}
    #: when the scoring phase ends by itself (epoch ms), while scoring
    scoring_ends_at_ms: int | None = None
    #: whether the game moves ratings
    rated: bool = True


class GameState:
    """Everything about one game that the log says, as of event ``last_seq``.

    Attributes (read them; never assign):

    * ``phase``: ``playing`` -> ``scoring`` (two passes) -> ``playing`` (resumed) or
      ``finished``; ``aborted``. ``open`` only between ``game_created`` and ``game_started``.
    * ``game``: the core :class:`goapp.rules.Game` (board, history, ko, superko).
    * ``clock``: the :class:`goapp.rules.clock.GameClock`.
    * ``dead``: locs marked dead in the scoring phase; ``accepted``: players who accepted
      exactly that marking (emptied whenever it changes).
    * ``undo_request``: ``(color, move_number)`` of a pending undo request;
      ``undo_declined``: the turn number whose undo was declined (not asked again).
    * ``resume_floor``: the turn number at which play last resumed (passes before it do not
      count towards the two that end play, and turns before it cannot be undone).
    * ``requests``: ``(user_id, request_id) -> (first_seq, last_seq)`` of the events an
      action produced (idempotent retries).
    * ``away``: ``color -> claim_at_ms`` of players whose connection is gone (``player_left``
      without a later ``player_returned``): the opponent may claim the win from then on.
    * ``scoring_ends_at``: when the current scoring phase ends by itself (``None``: no
      bound, or not scoring).
    """

    def __init__(self, game_id: int, created: GameCreated) -> None:
        self.game_id = game_id
        self.setup = created
        self.rules = Rules.from_name(created.rules)
        self.game = Game(
            created.width,
            created.height,
            rules=self.rules,
            komi=created.komi,
            handicap=created.handicap,
        )
        control = created.time_control if created.time_control is not None else NoTimeControl()
        first: PlayerColor = "white" if self.game.handicap else "black"
        self.clock: GameClock = GameClock.new(control, first)
        self.phase: Phase = "open"
        self.dead: set[int] = set()
        self.accepted: set[PlayerColor] = set()
        self.undo_request: tuple[PlayerColor, int] | None = None
        self.undo_declined: int | None = None
        self.resume_floor = 0
        self.result: str | None = None
        self.last_seq = 1
        self.last_at_ms = created.at_ms
        self.requests: dict[tuple[int | None, str], tuple[int, int]] = {}
        self.away: dict[PlayerColor, int] = {}
        self.scoring_ends_at: int | None = None
        self._note_request(created, 1)

    # -- building ------------------------------------------------------------------------

    @classmethod
    def from_events(cls, events: Iterable[StoredEvent | Any]) -> GameState:
        """Fold a whole log (StoredEvent or goapp.store.Event rows, seq 1 first)."""
        state: GameState | None = None
        for item in events:
            stored = item if isinstance(item, StoredEvent) else StoredEvent.from_record(item)
            if state is None:
                if stored.seq != 1 or not isinstance(stored.event, GameCreated):
                    raise ValueError(
                        f"game {stored.game_id}: the log must start with game_created at seq 1"
                    )
                state = cls(stored.game_id, stored.event)
            else:
                state.apply(stored.event, stored.seq)
        if state is None:
            raise ValueError("an empty log has no state")
        return state

    def apply_all(self, events: Iterable[StoredEvent | Any]) -> None:
        """Apply events that follow ``last_seq`` (rows or StoredEvents)."""
        for item in events:
            stored = item if isinstance(item, StoredEvent) else StoredEvent.from_record(item)
            self.apply(stored.event, stored.seq)

    def _note_request(self, event: GameEvent, seq: int) -> None:
        if event.request_id is None:
            return
        key = (event.user_id, event.request_id)
        first = self.requests.get(key, (seq, seq))[0]
        self.requests[key] = (first, seq)

    def apply(self, event: GameEvent, seq: int | None = None) -> None:
        """Advance the state by one event (``seq`` must be ``last_seq + 1`` when given)."""
        if seq is None:
            seq = self.last_seq + 1
        if seq != self.last_seq + 1:
            raise ValueError(
                f"game {self.game_id}: event seq {seq} does not follow {self.last_seq}"
            )
        at = event.at_ms
        game = self.game
        if isinstance(event, GameStarted):
            self.phase = "playing"
            self.clock = self.clock.start(at)
        elif isinstance(event, Move):
            game.play(event.vertex, core_color(event.color))
            self.clock = self.clock.move_made(event.color, at, event.lag_ms)
            self.undo_request = None
        elif isinstance(event, Pass):
            game.play(None, core_color(event.color))
            self.clock = self.clock.move_made(event.color, at, event.lag_ms)
            self.undo_request = None
        elif isinstance(event, ScoringStarted):
            self.phase = "scoring"
            self.clock = self.clock.pause(at)
            self.dead = {game.to_loc(v) for v in event.dead}
            self.accepted = set()
            self.undo_request = None
            self.scoring_ends_at = event.ends_at_ms
        elif isinstance(event, DeadStonesMarked):
            self.dead = {game.to_loc(v) for v in event.marking}
            self.accepted = set()
        elif isinstance(event, ScoreAccepted):
            self.accepted.add(event.color)
        elif isinstance(event, PlayResumed):
            self.phase = "playing"
            self.clock = self.clock.resume(at, event.to_move)
            self.dead = set()
            self.accepted = set()
            self.resume_floor = game.move_number
            self.scoring_ends_at = None
        elif isinstance(event, UndoRequested):
            self.undo_request = (event.color, event.move_number)
        elif isinstance(event, UndoDeclined):
            self.undo_request = None
            self.undo_declined = event.move_number
        elif isinstance(event, UndoAccepted):
            for _ in event.undone:
                game.undo()
            self.clock = self.clock.pause(at).resume(at, event.to_move)
            self.undo_request = None
            self.undo_declined = None
        elif isinstance(event, PlayerLeft):
            self.away[event.color] = event.claim_at_ms
        elif isinstance(event, PlayerReturned):
            self.away.pop(event.color, None)
        elif isinstance(event, Resign):
            self.clock = self.clock.stop(at)
        elif isinstance(event, Timeout):
            self.clock = self.clock.timeout(at)
        elif isinstance(event, Aborted):
            self.phase = "aborted"
            self.clock = self.clock.stop(at)
            self.undo_request = None
        elif isinstance(event, GameFinished):
            self.phase = "finished"
            self.clock = self.clock.stop(at)
            self.result = event.result
            self.undo_request = None
        elif isinstance(event, GameCreated):
            raise ValueError(f"game {self.game_id}: game_created may only be the first event")
        else:  # pragma: no cover - the union is closed
            raise TypeError(f"unknown event {event!r}")
        self.last_seq = seq
        self.last_at_ms = at
        self._note_request(event, seq)

    @classmethod
    def decode_and_fold(cls, rows: Iterable[tuple[int, int, str, Any]]) -> GameState:
        """Fold ``(game_id, seq, kind, payload)`` tuples (tests, tools)."""
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        return cls.from_events(
            StoredEvent(game_id=g, seq=s, created_at=epoch, event=decode_event(k, p))
            for g, s, k, p in rows
        )

    # -- reading -------------------------------------------------------------------------

    @property
    def black_id(self) -> int | None:
        return self.setup.black_id

    @property
    def white_id(self) -> int | None:
        return self.setup.white_id

    @property
    def to_move(self) -> PlayerColor:
        return color_name(self.game.to_move)

    @property
    def is_correspondence(self) -> bool:
        """Whether the game is played by correspondence (days per move)."""
        return self.clock.control.correspondence

    @property
    def is_live(self) -> bool:
        """A game between two users on a live clock: presence matters (abandonment)."""
        s = self.setup
        return (
            not self.is_correspondence
            and s.black_id is not None
            and s.white_id is not None
            and s.black_bot is None
            and s.white_bot is None
        )

    def to_move_id(self) -> int | None:
        """The user to move while the game is played (``None``: scoring, over, or a bot)."""
        if self.phase != "playing":
            return None
        return self.setup.black_id if self.to_move == "black" else self.setup.white_id

    @property
    def is_over(self) -> bool:
        return self.phase in ("finished", "aborted")

    @property
    def status(self) -> str:
        """The ``games.status`` column that matches the phase."""
        return self.phase

    def color_of(self, user_id: int | None) -> PlayerColor | None:
        """The colour ``user_id`` plays in this game, ``None`` for anyone else."""
        if user_id is None:
            return None
        if user_id == self.setup.black_id:
            return "black"
        if user_id == self.setup.white_id:
            return "white"
        return None

    def bot_color(self, color: PlayerColor) -> PlayerColor | None:
        """``color`` if a bot plays that side, else ``None``."""
        bot = self.setup.black_bot if color == "black" else self.setup.white_bot
        return color if bot is not None else None

    def passes_in_a_row(self) -> int:
        """Consecutive passes at the end, counting only those since play last resumed."""
        return min(self.game.consecutive_passes, self.game.move_number - self.resume_floor)

    def marking(self) -> list[str]:
        """The dead stones, as sorted vertices."""
        return sorted_vertices(self.game, self.dead)

    def fingerprint(self) -> tuple[Any, ...]:
        """Everything that defines the state, for comparing two folds."""
        g = self.game
        return (
            self.game_id,
            self.last_seq,
            self.phase,
            g.hash,
            g.situational_hash,
            g.board.to_bytes(),
            g.board.ko_loc,
            tuple(g.moves),
            g.board.captures(Color.BLACK),
            g.board.captures(Color.WHITE),
            self.clock,
            frozenset(self.dead),
            frozenset(self.accepted),
            self.undo_request,
            self.undo_declined,
            self.resume_floor,
            self.result,
            tuple(sorted(self.away.items())),
            self.scoring_ends_at,
            tuple(sorted(self.requests.items(), key=lambda kv: kv[1])),
        )

    def view(self, now: int) -> GameView:
        """The full state for a client, clocks as of ``now``."""
        g = self.game
        b = g.board
        rows = []
        for y in range(g.height):
            rows.append(
                "".join(".XO"[int(b[x, y])] if int(b[x, y]) < 3 else "#" for x in range(g.width))
            )
        ko = b.ko_loc
        ko_vertex = g.vertex(ko) if ko and b.is_on_board(ko) else None
        s = self.setup
        return GameView(
            game_id=self.game_id,
            seq=self.last_seq,
            phase=self.phase,
            width=g.width,
            height=g.height,
            rules=s.rules,
            komi=g.komi,
            handicap=g.handicap,
            black_id=s.black_id,
            white_id=s.white_id,
            black_bot=s.black_bot,
            white_bot=s.white_bot,
            to_move=self.to_move,
            board=rows,
            moves=[g.vertex(loc) for loc in g.moves],
            captures={
                "black": b.captures(Color.BLACK),
                "white": b.captures(Color.WHITE),
            },
            ko=ko_vertex,
            dead=self.marking(),
            accepted=sorted(self.accepted),
            undo_requested_by=self.undo_request[0] if self.undo_request else None,
            result=self.result,
            clock=clock_view(self.clock, now),
            away={str(k): v for k, v in self.away.items()},
            scoring_ends_at_ms=self.scoring_ends_at if self.phase == "scoring" else None,
            rated=s.rated and s.black_bot is None and s.white_bot is None,
        )

    def __repr__(self) -> str:
        return (
            f"<GameState {self.game_id} seq={self.last_seq} {self.phase} "
            f"move={self.game.move_number} to_move={self.to_move}>"
        )


def sorted_vertices(game: Game, locs: Iterable[int]) -> list[str]:
    """GTP vertices of ``locs`` in board order (top-left first)."""
    return [game.vertex(loc) for loc in sorted(locs)]
