"""The server's view of "the engine": one object with the few calls the game server needs,
whatever plays behind it (a local KataGo, a remote ``goapp engine serve``, GNU Go, nothing).

* :class:`Position`: a game position in engine terms (moves, handicap stones, rules, komi),
  built from a :class:`goapp.game.state.GameState`.
* :class:`GameEngine`: what the bot driver, the score estimate and the review use:
  ``genmove``, ``estimate`` (ownership and/or dead stones), ``analyze_turns`` (KataGo only:
  ``can_analyze``), ``cancel_tag``, ``state``, ``stats``.
* :class:`KataGoBackend` wraps :class:`goapp.engine.katago.KataGoEngine` or
  :class:`goapp.engine.remote.RemoteEngine` (they share ``analyze_turns``/``state``).
* :class:`GnuGoBackend` plays through GNU Go's GTP (:class:`goapp.engine.gtp.AsyncGtpClient`).
* :func:`open_engine` picks one from the settings (``engine``, ``katago_*``, ``engine_url``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from goapp.engine.errors import (
    EngineBusyError,
    EngineCrashedError,
    EngineProtocolError,
    EngineUnavailableError,
)
from goapp.engine.gtp import AsyncGtpClient, GtpEngineDied, GtpError
from goapp.engine.katago import (
    PRIORITY_BOT,
    PRIORITY_SCORE,
    AnalysisQuery,
    AnalysisResult,
)
from goapp.engine.setup import configured_paths

if TYPE_CHECKING:
    from goapp.game.state import GameState
    from goapp.settings import Settings

__all__ = [
    "DEAD_THRESHOLD",
    "Estimate",
    "GameEngine",
    "GnuGoBackend",
    "KataGoBackend",
    "Position",
    "dead_from_ownership",
    "find_gnugo",
    "open_engine",
]

log = logging.getLogger("goapp.engine")

#: A chain is proposed dead when its mean ownership is at least this much the opponent's.
DEAD_THRESHOLD = 0.4
#: Visits of the ownership query behind a dead-stone proposal.
SCORE_VISITS = 32


@dataclass(frozen=True, slots=True)
class Position:
    """A position as engines want it: GTP moves ``[["B", "D4"], ["W", "pass"]]``, fixed
    handicap stones as ``initial_stones``, the goapp ruleset (KataGo's rules dict)."""

    width: int
    height: int
    rules: Any
    komi: float
    moves: list[list[str]]
    initial_stones: list[list[str]] = field(default_factory=list)
    initial_player: str = "B"

    @classmethod
    def from_state(cls, state: GameState) -> Position:
        g = state.game
        moves = [["B" if t.color.letter == "B" else "W", g.vertex(t.loc)] for t in g.history]
        stones = [["B", g.vertex(loc)] for loc in g.handicap_locs]
        return cls(
            width=g.width,
            height=g.height,
            rules=state.rules,
            komi=float(g.komi),
            moves=moves,
            initial_stones=stones,
            initial_player="W" if stones else "B",
        )

    @property
    def to_move(self) -> str:
        if self.moves:
            return "W" if self.moves[-1][0] == "B" else "B"
        return self.initial_player

    def query(self, **kwargs: Any) -> AnalysisQuery:
        """An :class:`AnalysisQuery` for this position (``kwargs``: max_visits, ...)."""
        return AnalysisQuery(
            moves=self.moves,
            rules=self.rules,
            komi=self.komi,
            board_x_size=self.width,
            board_y_size=self.height,
            initial_stones=self.initial_stones or None,
            initial_player=self.initial_player if self.initial_stones else None,
            **kwargs,
        )


@dataclass(frozen=True, slots=True)
class Estimate:
    """The engine's judgement of the final position: ``ownership`` (row-major from the
    top-left, +1 Black; ``None`` from GNU Go), ``dead`` (vertices it considers dead;
    ``None`` when the caller should derive them from ownership), ``score_lead`` and
    ``winrate`` (Black's point of view; ``None`` from GNU Go)."""

    ownership: list[float] | None
    dead: list[str] | None
    score_lead: float | None = None
    winrate: float | None = None


class GameEngine(Protocol):
    """What the server needs from an engine."""

    kind: str
    can_analyze: bool

    @property
    def state(self) -> str: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def genmove(
        self, pos: Position, *, visits: int, gnugo_level: int, tag: str | None = None
    ) -> str: ...

    async def estimate(
        self, pos: Position, *, tag: str | None = None, priority: int = PRIORITY_SCORE
    ) -> Estimate: ...

    async def analyze_turns(
        self, query: AnalysisQuery, *, timeout: float | None = ..., tag: str | None = None
    ) -> dict[int, AnalysisResult]: ...

    def cancel_tag(self, tag: str) -> int: ...

    def stats(self) -> dict[str, Any]: ...


class KataGoBackend:
    """:class:`GameEngine` over a KataGo analysis engine, local or remote."""

    can_analyze = True

    def __init__(self, inner: Any, kind: str = "katago") -> None:
        self.inner = inner
        self.kind = kind

    @property
    def state(self) -> str:
        return str(self.inner.state)

    async def start(self) -> None:
        """Start in the background (never blocks on model loading or tuning)."""
        await self.inner.start(wait=False)

    async def close(self) -> None:
        await self.inner.close()

    async def genmove(
        self, pos: Position, *, visits: int, gnugo_level: int = 10, tag: str | None = None
    ) -> str:
        query = pos.query(
            max_visits=max(1, visits),
            priority=PRIORITY_BOT,
            override_settings={"wideRootNoise": 0.0},
        )
        results = await self.inner.analyze_turns(query, tag=tag)
        result = next(iter(results.values()))
        return result.best_move or "pass"

    async def estimate(
        self, pos: Position, *, tag: str | None = None, priority: int = PRIORITY_SCORE
    ) -> Estimate:
        query = pos.query(max_visits=SCORE_VISITS, include_ownership=True, priority=priority)
        results = await self.inner.analyze_turns(query, tag=tag)
        result = next(iter(results.values()))
        root = result.root_info
        return Estimate(
            ownership=result.ownership,
            dead=None,
            score_lead=None if root is None else root.score_lead,
            winrate=None if root is None else root.winrate,
        )

    async def analyze_turns(
        self, query: AnalysisQuery, *, timeout: Any = None, tag: str | None = None
    ) -> dict[int, AnalysisResult]:
        if timeout is None:
            return dict(await self.inner.analyze_turns(query, tag=tag))
        return dict(await self.inner.analyze_turns(query, timeout=timeout, tag=tag))

    def cancel_tag(self, tag: str) -> int:
        return int(self.inner.cancel_tag(tag))

    def stats(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.inner.stats()}


class _GtpLane:
    """One GNU Go process and the queries waiting for it: one at a time, first come first
    served, at most ``max_waiting`` waiting (more: :class:`EngineBusyError`). Started with
    the first query, restarted once when it dies."""

    def __init__(self, name: str, argv: list[str], timeout: float, max_waiting: int) -> None:
        self.name = name
        self.argv = argv
        self.timeout = timeout
        self.max_waiting = max_waiting
        self.client: AsyncGtpClient | None = None
        self.closed = False
        self.waiting = 0
        self.restarts = 0
        self.failed = 0
        self.rejected = 0
        self._lock = asyncio.Lock()

    async def run(self, cmds: list[str]) -> str:
        """The answer to the last of ``cmds`` (sent in one write)."""
        if self._lock.locked() and self.waiting >= self.max_waiting:
            self.rejected += 1
            raise EngineBusyError(
                f"GNU Go is busy ({self.waiting} {self.name} queries waiting); try again later"
            )
        self.waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self.waiting -= 1
        try:
            return await self._run_locked(cmds)
        finally:
            self._lock.release()

    async def _run_locked(self, cmds: list[str]) -> str:
        for attempt in (1, 2):
            if self.closed:
                raise EngineUnavailableError("engine is stopped")
            if self.client is None:
                try:
                    self.client = await AsyncGtpClient.start(self.argv, timeout=self.timeout)
                except OSError as exc:
                    self.failed += 1
                    raise EngineUnavailableError(f"cannot start GNU Go: {exc}") from exc
            client = self.client
            try:
                answers = await client.send_many(cmds)
                return answers[-1]
            except GtpError as exc:
                self.failed += 1
                raise EngineProtocolError(f"GNU Go refused the position: {exc}") from exc
            except GtpEngineDied as exc:
                if self.client is client:
                    self.client = None
                with contextlib.suppress(Exception):
                    await client.close(timeout=0.5)
                if self.closed:
                    raise EngineUnavailableError("engine closed") from exc
                self.restarts += 1
                if attempt == 2:
                    self.failed += 1
                    raise EngineCrashedError(f"GNU Go died twice: {exc}") from exc
        raise AssertionError("unreachable")

    async def close(self) -> None:
        """Stop the process now, whatever it is doing (a query in progress fails with
        :class:`EngineUnavailableError`); never waits for the queries' lock."""
        self.closed = True
        client, self.client = self.client, None
        if client is not None:
            await client.close()


class GnuGoBackend:
    """:class:`GameEngine` over GNU Go (``gnugo --mode gtp``), which thinks about one
    position at a time (the whole game is replayed for each query: ``boardsize``,
    ``clear_board``, ``komi``, ``play``...; pipelined in one write). It plays and proposes
    dead stones (``final_status_list dead``); it cannot analyse.

    Two processes ("lanes"), so that bot moves never wait behind estimates: the *play* lane
    runs the bots' moves and the bots' own dead-stone proposals (``PRIORITY_BOT``); the
    *background* lane runs everything else (score estimates asked through the API), at most
    ``max_queue`` waiting there. Closing kills both within a few seconds, busy or not."""

    kind = "gnugo"
    can_analyze = False

    def __init__(
        self,
        binary: str = "gnugo",
        *,
        timeout: float = 120.0,
        max_queue: int = 4,
        max_bot_queue: int = 256,
    ) -> None:
        self.binary = binary
        self.timeout = timeout
        argv = [binary, "--mode", "gtp"]
        self._play = _GtpLane("bot", argv, timeout, max_bot_queue)
        self._background = _GtpLane("estimate", argv, timeout, max_queue)
        self._closed = False
        self.queries_total = 0

    @property
    def state(self) -> str:
        return "stopped" if self._closed else "up"

    def pids(self) -> list[int]:
        """The process ids of the running GNU Go processes (tests, diagnostics)."""
        return [lane.client.pid for lane in self._lanes if lane.client is not None]

    @property
    def _lanes(self) -> tuple[_GtpLane, _GtpLane]:
        return (self._play, self._background)

    async def start(self) -> None:
        self._closed = False  # the processes start with the first queries
        for lane in self._lanes:
            lane.closed = False

    async def close(self) -> None:
        self._closed = True
        await asyncio.gather(*(lane.close() for lane in self._lanes))

    async def _run(self, pos: Position, final: str, level: int | None, priority: int) -> str:
        if self._closed:
            raise EngineUnavailableError("engine is stopped")
        if pos.width != pos.height or pos.width > 19:
            raise EngineUnavailableError("GNU Go plays square boards up to 19x19 only")
        cmds = [f"boardsize {pos.width}", "clear_board", f"komi {pos.komi}"]
        if level is not None:
            cmds.append(f"level {max(0, min(10, level))}")
        cmds += [f"play black {v}" for _, v in pos.initial_stones]
        cmds += [f"play {'black' if c == 'B' else 'white'} {v}" for c, v in pos.moves]
        cmds.append(final)
        self.queries_total += 1
        lane = self._play if priority >= PRIORITY_BOT else self._background
        return await lane.run(cmds)

    async def genmove(
        self, pos: Position, *, visits: int = 0, gnugo_level: int = 10, tag: str | None = None
    ) -> str:
        color = "black" if pos.to_move == "B" else "white"
        answer = (await self._run(pos, f"genmove {color}", gnugo_level, PRIORITY_BOT)).strip()
        # GNU Go may resign: goapp's bots never do, they pass instead
        if answer.lower() in ("pass", "resign", ""):
            return "pass"
        return answer.upper()

    async def estimate(
        self, pos: Position, *, tag: str | None = None, priority: int = PRIORITY_SCORE
    ) -> Estimate:
        answer = await self._run(pos, "final_status_list dead", None, priority)
        dead = sorted({v.upper() for v in answer.split() if v})
        return Estimate(ownership=None, dead=dead)

    async def analyze_turns(
        self, query: AnalysisQuery, *, timeout: Any = None, tag: str | None = None
    ) -> dict[int, AnalysisResult]:
        raise EngineUnavailableError("game analysis needs KataGo (GNU Go only plays)")

    def cancel_tag(self, tag: str) -> int:
        return 0

    def stats(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "state": self.state,
            "queue_depth": sum(lane.waiting for lane in self._lanes),
            "queries_total": self.queries_total,
            "queries_failed": sum(lane.failed for lane in self._lanes),
            "rejected": sum(lane.rejected for lane in self._lanes),
            "restarts": sum(lane.restarts for lane in self._lanes),
            "last_visits_per_second": None,
        }


def dead_from_ownership(
    state: GameState, ownership: Sequence[float], threshold: float = DEAD_THRESHOLD
) -> list[str]:
    """The stones of ``state``'s board whose chain's mean ownership belongs to the opponent
    (by at least ``threshold``), as sorted vertices. ``ownership`` is row-major from the
    top-left, +1 Black."""
    from goapp.rules import Color

    g = state.game
    board = g.board
    w = g.width
    if len(ownership) != w * g.height:
        raise ValueError(f"ownership has {len(ownership)} values for a {w}x{g.height} board")
    seen: set[int] = set()
    dead: set[int] = set()
    for color, sign in ((Color.BLACK, 1.0), (Color.WHITE, -1.0)):
        for loc in board.stones(int(color)):
            if loc in seen:
                continue
            chain = board.chain(loc)
            seen.update(chain)
            total = 0.0
            for c in chain:
                x, y = board.xy(c)
                total += ownership[y * w + x]
            if sign * total / len(chain) <= -threshold:
                dead.update(chain)
    return [g.vertex(loc) for loc in sorted(dead)]


def find_gnugo() -> str | None:
    """``gnugo`` on the PATH, or Debian's /usr/games/gnugo (not on every PATH)."""
    found = shutil.which("gnugo")
    if found is None and Path("/usr/games/gnugo").is_file():
        found = "/usr/games/gnugo"
    return found


def open_engine(
    settings: Settings, *, search_cwd: bool = True, **katago_kwargs: Any
) -> GameEngine | None:
    """The engine the settings ask for (not started), or ``None`` for none.

    ``engine = auto``: remote when ``engine_url`` is set, else KataGo when a binary and a
    model are found (``katago_binary``; else the installations in DATA_DIR/katago and, with
    ``search_cwd``, ./.katago), else GNU Go when ``gnugo`` is on the PATH, else none. An
    explicit choice that cannot be honoured raises :class:`EngineUnavailableError`."""
    mode = settings.engine
    if mode == "none":
        return None
    if mode == "remote" or (mode == "auto" and settings.engine_url):
        if not settings.engine_url:
            raise EngineUnavailableError("engine = remote needs engine_url")
        from goapp.engine.remote import RemoteEngine

        return KataGoBackend(RemoteEngine(settings.engine_url, settings.engine_secret), "remote")
    if mode in ("auto", "katago"):
        try:
            paths = configured_paths(settings, search_cwd)
        except EngineUnavailableError:
            if mode == "katago":
                raise
            log.info("KataGo not found; trying GNU Go")
        else:
            from goapp.engine.katago import KataGoEngine

            config = settings.katago_config or None
            return KataGoBackend(KataGoEngine.from_paths(paths, config, **katago_kwargs))
    gnugo = find_gnugo()
    if gnugo is None:
        if mode == "gnugo":
            raise EngineUnavailableError("gnugo is not on the PATH (nor in /usr/games)")
        return None
    return GnuGoBackend(gnugo)
