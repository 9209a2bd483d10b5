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

    async def estimate(self, pos: Position, *, tag: str | None = None) -> Estimate: ...

    async def analyze_turns(
        self, query: AnalysisQuery, *, timeout: float | None = ..., tag: str | None = None
    ) -> dict[int, AnalysisResult]: ...

    def cancel_tag(self, tag: str) -> int: ...

    def stats(self) -> dict[str, Any]: ...


class _KataGoLike(Protocol):
    @property
    def state(self) -> Any: ...

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

    async def estimate(self, pos: Position, *, tag: str | None = None) -> Estimate:
        query = pos.query(max_visits=SCORE_VISITS, include_ownership=True, priority=PRIORITY_SCORE)
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


class GnuGoBackend:
    """:class:`GameEngine` over GNU Go (``gnugo --mode gtp``): one process, one position at
    a time (the whole game is replayed for each move: ``boardsize``, ``clear_board``,
    ``komi``, ``play``...; pipelined in one write). It plays and proposes dead stones
    (``final_status_list dead``); it cannot analyse. Restarted once when it dies."""

    kind = "gnugo"
    can_analyze = False

    def __init__(self, binary: str = "gnugo", *, timeout: float = 120.0) -> None:
        self.binary = binary
        self.timeout = timeout
        self._client: AsyncGtpClient | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        self.queries_total = 0
        self.queries_failed = 0
        self.restarts = 0

    @property
    def state(self) -> str:
        return "stopped" if self._closed else "up"

    async def start(self) -> None:
        self._closed = False  # the process starts with the first query

    async def close(self) -> None:
        self._closed = True
        async with self._lock:
            if self._client is not None:
                with contextlib.suppress(Exception):
                    await self._client.close()
                self._client = None

    async def _run(self, pos: Position, final: str, level: int | None) -> str:
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
        async with self._lock:
            for attempt in (1, 2):
                if self._client is None:
                    try:
                        self._client = await AsyncGtpClient.start(
                            [self.binary, "--mode", "gtp"], timeout=self.timeout
                        )
                    except OSError as exc:
                        self.queries_failed += 1
                        raise EngineUnavailableError(f"cannot start GNU Go: {exc}") from exc
                try:
                    answers = await self._client.send_many(cmds)
                    return answers[-1]
                except GtpError as exc:
                    self.queries_failed += 1
                    raise EngineProtocolError(f"GNU Go refused the position: {exc}") from exc
                except GtpEngineDied as exc:
                    with contextlib.suppress(Exception):
                        await self._client.close(timeout=1.0)
                    self._client = None
                    self.restarts += 1
                    if attempt == 2:
                        self.queries_failed += 1
                        raise EngineCrashedError(f"GNU Go died twice: {exc}") from exc
        raise AssertionError("unreachable")

    async def genmove(
        self, pos: Position, *, visits: int = 0, gnugo_level: int = 10, tag: str | None = None
    ) -> str:
        color = "black" if pos.to_move == "B" else "white"
        answer = (await self._run(pos, f"genmove {color}", gnugo_level)).strip()
        # GNU Go may resign: goapp's bots never do, they pass instead
        if answer.lower() in ("pass", "resign", ""):
            return "pass"
        return answer.upper()

    async def estimate(self, pos: Position, *, tag: str | None = None) -> Estimate:
        answer = await self._run(pos, "final_status_list dead", None)
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
            "queue_depth": 0,
            "queries_total": self.queries_total,
            "queries_failed": self.queries_failed,
            "restarts": self.restarts,
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


def _katago_paths(
    settings: Settings, search_cwd: bool = True
) -> tuple[Path, Path, Path | None, dict[str, str] | None]:
    """Binary, model, config and environment of the configured KataGo, or
    :class:`EngineUnavailableError` saying what is missing."""
    from goapp.engine.setup import find_model, installed_paths

    config = Path(settings.katago_config) if settings.katago_config else None
    env: dict[str, str] | None = None
    if settings.katago_binary:
        binary = Path(settings.katago_binary)
        model = Path(settings.katago_model) if settings.katago_model else None
        if model is None:
            found = find_model(binary.parent / "models")
            model = found
    else:
        paths = None
        homes = [settings.data_dir / "katago"] + ([Path(".katago")] if search_cwd else [])
        for home in homes:
            paths = installed_paths(home)
            if paths is not None:
                break
        if paths is None:
            raise EngineUnavailableError(
                "no KataGo: set katago_binary, or run `goapp engine setup --dest "
                f"{settings.data_dir / 'katago'} --model FILE`"
            )
        binary = paths.binary
        model = Path(settings.katago_model) if settings.katago_model else paths.model
        env = paths.env()
    if not binary.exists():
        raise EngineUnavailableError(f"KataGo binary {binary} not found")
    if model is None or not model.exists():
        raise EngineUnavailableError(f"KataGo model {model} not found (set katago_model)")
    return binary, model, config, env


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
            binary, model, config, env = _katago_paths(settings, search_cwd)
        except EngineUnavailableError:
            if mode == "katago":
                raise
            log.info("KataGo not found; trying GNU Go")
        else:
            from goapp.engine.katago import KataGoEngine

            return KataGoBackend(KataGoEngine(binary, model, config, env=env, **katago_kwargs))
    gnugo = find_gnugo()
    if gnugo is None:
        if mode == "gnugo":
            raise EngineUnavailableError("gnugo is not on the PATH (nor in /usr/games)")
        return None
    return GnuGoBackend(gnugo)
