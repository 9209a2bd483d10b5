"""KataGo supervisor: one ``katago analysis`` child process serves every game's queries.

>>> engine = KataGoEngine.from_paths(install_katago(Path(".katago")))   # doctest: +SKIP
>>> await engine.start()                                                 # doctest: +SKIP
>>> query = AnalysisQuery(moves=[["B", "D4"]], rules="japanese", komi=6.5,      # doctest: +SKIP
...                       board_x_size=19, board_y_size=19, max_visits=100)
>>> (await engine.analyze(query)).best_move                              # doctest: +SKIP
'Q16'

KataGo's analysis engine reads one JSON query a line on stdin and answers, in any order, one
JSON line per analysed turn on stdout (docs/Analysis_Engine.md in KataGo's repository). This
module multiplexes queries over that single process so that KataGo batches positions across
games, and supervises it:

* **Routing**: every query gets a unique wire id; results go back to the waiting coroutine.
  A query with ``analyzeTurns`` completes when every turn has its final result
  (``isDuringSearch`` false).
* **Flow control**: at most ``max_in_flight`` queries are sent to KataGo at once; the rest
  wait in a priority queue (bot moves before score estimates before review analysis, then
  first come first served) bounded by ``max_queue``: a full queue raises
  :class:`EngineBusyError` at once. The priority is also sent to KataGo (``priority``).
* **Timeouts and cancellation**: a query that outlives its timeout fails with
  :class:`EngineTimeoutError`; :meth:`KataGoEngine.cancel_tag` cancels every query of a game
  (:class:`QueryCancelledError`). Both send KataGo a ``terminate`` action; the slot stays
  taken until KataGo reports the terminated query finished.
* **Supervision**: when the child exits, or hangs (no output for ``watchdog_timeout`` seconds
  although the watchdog probed it with ``query_version``), it is killed (SIGKILL to its own
  process group) and restarted after a backoff (0.5 s doubling up to 30 s, back to 0.5 s once
  a run stayed up ``stable_uptime`` seconds). Queries it was working on are sent again once
  (only the turns still missing), then fail with :class:`EngineCrashedError`.
* **State** (:attr:`KataGoEngine.state`): ``stopped``, ``starting`` (first start),
  ``tuning`` (not up yet: KataGo's stderr says it is tuning OpenCL for this model, which takes
  minutes on a first start; ``goapp engine setup`` does it beforehand), ``up``, ``degraded``
  (crashed, backing off or restarting) for ``/readyz``.
* **Shutdown** (:meth:`KataGoEngine.close`): stdin is closed (KataGo runs with
  ``-quit-without-waiting``), then SIGTERM, then SIGKILL to the process group within about
  3 s; the child is always reaped, and killed at once when the close is cancelled.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import itertools
import logging
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec
import orjson

from goapp.engine.errors import (
    EngineBusyError,
    EngineCrashedError,
    EngineError,
    EngineProtocolError,
    EngineTimeoutError,
    EngineUnavailableError,
    QueryCancelledError,
)
from goapp.engine.process import signal_group, stop_process
from goapp.engine.setup import TUNING_LINE, KataGoPaths, default_config

__all__ = [
    "PRIORITY_BOT",
    "PRIORITY_REVIEW",
    "PRIORITY_SCORE",
    "AnalysisQuery",
    "AnalysisResult",
    "EngineState",
    "KataGoEngine",
    "MoveInfo",
    "RootInfo",
    "default_config",
    "engine_check",
    "katago_rules",
]

log = logging.getLogger(__name__)

#: Query priorities: higher is served first, by our queue and by KataGo's analysis threads.
PRIORITY_BOT = 100
PRIORITY_SCORE = 50
PRIORITY_REVIEW = 0

EngineState = Literal["stopped", "starting", "tuning", "up", "degraded"]

_LINE_LIMIT = 64 * 1024 * 1024  # one response line (ownership per move can be large)
_READY_ID = "_ready"
_UNSET: Any = object()


# --------------------------------------------------------------------------------------------
# Queries and results


def katago_rules(rules: object) -> str | dict[str, Any]:
    """KataGo's form of ``rules``: a :class:`goapp.rules.rulesets.Rules` (anything with
    ``to_dict()``), a KataGo rules name (``"japanese"``, ``"tromp-taylor"``...) or a dict."""
    to_dict = getattr(rules, "to_dict", None)
    if callable(to_dict):
        return dict(to_dict())
    if isinstance(rules, str):
        return rules
    if isinstance(rules, Mapping):
        return dict(rules)
    raise TypeError(f"rules must be a Rules object, a KataGo rules name or a dict, not {rules!r}")


class AnalysisQuery(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """One analysis query (without its id: the engine assigns a unique one).

    ``moves`` are ``[["B", "D4"], ["W", "pass"], ...]`` in GTP coordinates. ``rules`` is a
    :class:`~goapp.rules.rulesets.Rules`, a KataGo rules name or KataGo's rules dict.
    ``analyze_turns`` (``None``: only the position after the last move) lists turns to analyse;
    turn 0 is the initial position.
    """

    moves: Sequence[Sequence[str]]
    rules: Any = "tromp-taylor"
    komi: float | None = None
    board_x_size: int = 19
    board_y_size: int = 19
    initial_stones: Sequence[Sequence[str]] | None = None
    initial_player: str | None = None
    max_visits: int | None = None
    include_ownership: bool = False
    include_policy: bool = False
    include_pv_visits: bool = msgspec.field(default=False, name="includePVVisits")
    analyze_turns: list[int] | None = None
    priority: int = PRIORITY_REVIEW
    override_settings: dict[str, Any] | None = None
    avoid_moves: list[dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        self.rules = katago_rules(self.rules)

    def to_wire(self) -> dict[str, Any]:
        """The query as KataGo's JSON object, without ``id``."""
        body: dict[str, Any] = msgspec.to_builtins(self)
        # Required by KataGo even when equal to our defaults (omit_defaults drops those).
        body["moves"] = [list(m) for m in self.moves]
        body["rules"] = katago_rules(self.rules)
        body["boardXSize"] = self.board_x_size
        body["boardYSize"] = self.board_y_size
        body["priority"] = self.priority
        return body


class MoveInfo(msgspec.Struct, rename="camel"):
    """One candidate move. Winrates and scores are from Black's point of view
    (``reportAnalysisWinratesAs = BLACK`` in goapp's config)."""

    move: str
    visits: int = 0
    winrate: float = 0.5
    score_lead: float = 0.0
    score_stdev: float = 0.0
    prior: float = 0.0
    lcb: float = 0.0
    utility: float = 0.0
    order: int = 0
    pv: list[str] = []
    pv_visits: list[int] | None = None
    ownership: list[float] | None = None


class RootInfo(msgspec.Struct, rename="camel"):
    """The analysed position itself."""

    winrate: float = 0.5
    score_lead: float = 0.0
    score_stdev: float = 0.0
    utility: float = 0.0
    visits: int = 0
    current_player: str | None = None
    this_hash: str | None = None
    sym_hash: str | None = None


class AnalysisResult(msgspec.Struct, rename="camel"):
    """KataGo's final answer for one turn. ``ownership`` (if asked for) is row-major from the
    top-left corner (A19 on 19x19), +1 Black; ``policy`` has one extra value (pass) at the
    end. ``warnings`` collects KataGo's warnings about the query."""

    id: str
    turn_number: int = 0
    is_during_search: bool = False
    no_results: bool = False
    move_infos: list[MoveInfo] = []
    root_info: RootInfo | None = None
    ownership: list[float] | None = None
    policy: list[float] | None = None
    warnings: list[str] = []

    @property
    def best_move(self) -> str | None:
        """KataGo's top move (``order`` 0), ``None`` when there are no results."""
        if not self.move_infos:
            return None
        return min(self.move_infos, key=lambda m: m.order).move

    @property
    def visits(self) -> int:
        return self.root_info.visits if self.root_info is not None else 0


# --------------------------------------------------------------------------------------------
# The supervisor


@dataclass(eq=False)
class _Query:
    qid: str
    body: dict[str, Any]
    turns: frozenset[int] | None  # None: one result, whatever its turn number
    priority: int
    seq: int
    tag: str | None
    future: asyncio.Future[dict[int, AnalysisResult]]
    submitted: float
    results: dict[int, AnalysisResult] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    attempts: int = 0
    sent_at: float | None = None
    abandoned: bool = False  # the caller has its answer (error); KataGo may still be busy
    timer: asyncio.TimerHandle | None = None

    def complete(self) -> bool:
        if self.turns is None:
            return len(self.results) >= 1
        return self.turns <= self.results.keys()


LatencyHook = Callable[[float, int], None]


class KataGoEngine:
    """Supervises one ``katago analysis`` process; see the module documentation.

    ``binary``/``model``/``config``: paths (``config`` defaults to the packaged
    ``analysis.cfg``). ``env``: the child's environment (``KataGoPaths.env()`` sets
    ``LD_LIBRARY_PATH``). ``override_config``: extra ``-override-config`` entries;
    ``log_file``: where KataGo writes its own log (default: none, stderr is captured).
    """

    def __init__(
        self,
        binary: Path | str,
        model: Path | str,
        config: Path | str | None = None,
        *,
        env: Mapping[str, str] | None = None,
        override_config: Mapping[str, object] | None = None,
        log_file: Path | str | None = None,
        extra_args: Sequence[str] = (),
        max_in_flight: int = 8,
        max_queue: int = 256,
        query_timeout: float | None = 120.0,
        startup_timeout: float = 900.0,
        watchdog_timeout: float = 30.0,
        watchdog_interval: float | None = None,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        stable_uptime: float = 60.0,
        max_attempts: int = 2,
        fail_fast_after: int = 3,
        stderr_lines: int = 50,
        on_latency: LatencyHook | None = None,
    ) -> None:
        if max_in_flight < 1 or max_queue < 0 or max_attempts < 1:
            raise ValueError("max_in_flight and max_attempts must be >= 1, max_queue >= 0")
        self.binary = Path(binary)
        self.model = Path(model)
        self.config = Path(config) if config is not None else default_config("analysis")
        self.env = dict(env) if env is not None else None
        overrides = dict(override_config or {})
        if log_file is not None:
            overrides["logFile"] = str(log_file)
        self.override_config = overrides
        self.extra_args = list(extra_args)
        self.max_in_flight = max_in_flight
        self.max_queue = max_queue
        self.query_timeout = query_timeout
        self.startup_timeout = startup_timeout
        self.watchdog_timeout = watchdog_timeout
        self.watchdog_interval = (
            watchdog_interval if watchdog_interval is not None else max(watchdog_timeout / 4, 0.1)
        )
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.stable_uptime = stable_uptime
        self.max_attempts = max_attempts
        self.fail_fast_after = fail_fast_after
        self.on_latency = on_latency

        # Metrics (plain counters; Prometheus wiring reads them).
        self.queries_total = 0
        self.queries_ok = 0
        self.queries_failed = 0
        self.timeouts = 0
        self.cancelled = 0
        self.rejected = 0
        self.crashes = 0
        self.hangs = 0
        self.restarts = 0
        self.retries = 0
        self.malformed_lines = 0
        self.visits_total = 0
        self.last_visits_per_second: float | None = None
        self.latencies: collections.deque[float] = collections.deque(maxlen=1000)
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=stderr_lines)
        self.version: str | None = None
        self.last_failure: str | None = None

        self._state: EngineState = "stopped"
        self._proc: asyncio.subprocess.Process | None = None
        self._ready = False
        self._up_since: float | None = None
        self._closing = False
        self._close_event: asyncio.Event | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._start_waiters: list[asyncio.Future[None]] = []
        self._heap: list[tuple[int, int, _Query]] = []
        self._inflight: dict[str, _Query] = {}
        self._seq = itertools.count()
        self._ids = itertools.count(1)
        self._last_output = 0.0
        self._last_stderr = 0.0
        self._consecutive_failures = 0
        self._tuning_logged = False
        self._kill_reason: str | None = None

    @classmethod
    def from_paths(
        cls, paths: KataGoPaths, config: Path | str | None = None, **kwargs: Any
    ) -> KataGoEngine:
        """An engine for an installation made by :func:`goapp.engine.setup.install_katago`:
        its environment and ``homeDataDir`` keep everything KataGo writes under
        ``paths.home``."""
        if paths.model is None:
            raise EngineUnavailableError(
                f"no KataGo model configured (put one in {paths.home}/models or pass --model)"
            )
        paths.make_dirs()
        kwargs.setdefault("env", paths.env())
        kwargs["override_config"] = {
            **paths.config_overrides(),
            **(kwargs.get("override_config") or {}),
        }
        return cls(paths.binary, paths.model, config, **kwargs)

    # -- public state ----------------------------------------------------------------------

    @property
    def state(self) -> EngineState:
        return self._state

    @property
    def pid(self) -> int | None:
        """The child's pid while one runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    @property
    def queue_depth(self) -> int:
        """Queries waiting to be sent to KataGo."""
        return len(self._heap)

    @property
    def in_flight(self) -> int:
        """Queries sent to KataGo and not finished there (terminated ones included)."""
        return len(self._inflight)

    @property
    def uptime(self) -> float | None:
        return None if self._up_since is None else time.monotonic() - self._up_since

    def stats(self) -> dict[str, Any]:
        """A snapshot of the state and counters (for /readyz, logs and metrics)."""
        lat = sorted(self.latencies)
        return {
            "state": self._state,
            "pid": self.pid,
            "version": self.version,
            "uptime": self.uptime,
            "queue_depth": self.queue_depth,
            "in_flight": self.in_flight,
            "queries_total": self.queries_total,
            "queries_ok": self.queries_ok,
            "queries_failed": self.queries_failed,
            "timeouts": self.timeouts,
            "cancelled": self.cancelled,
            "rejected": self.rejected,
            "crashes": self.crashes,
            "hangs": self.hangs,
            "restarts": self.restarts,
            "retries": self.retries,
            "malformed_lines": self.malformed_lines,
            "visits_total": self.visits_total,
            "last_visits_per_second": self.last_visits_per_second,
            "latency_p50": lat[len(lat) // 2] if lat else None,
            "latency_p99": lat[min(len(lat) - 1, len(lat) * 99 // 100)] if lat else None,
            "last_failure": self.last_failure,
        }

    def argv(self) -> list[str]:
        """The child's command line."""
        args = [
            str(self.binary),
            "analysis",
            "-config",
            str(self.config),
            "-model",
            str(self.model),
            "-quit-without-waiting",
        ]
        if self.override_config:
            parts = []
            for key, value in self.override_config.items():
                text = str(value).lower() if isinstance(value, bool) else str(value)
                if any(c in f"{key}{text}" for c in ",\n\r") or "=" in key:
                    raise ValueError(f"bad -override-config entry: {key}={text}")
                parts.append(f"{key}={text}")
            args += ["-override-config", ",".join(parts)]
        return args + self.extra_args

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> KataGoEngine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self, wait: bool = True) -> None:
        """Start supervising. With ``wait``, return once KataGo answers, or raise
        :class:`EngineUnavailableError` if its first start fails (the supervisor goes on
        retrying in the background until :meth:`close`)."""
        if self._supervisor is None or self._supervisor.done():
            self._closing = False
            self._close_event = asyncio.Event()
            self._state = "starting"
            self._supervisor = asyncio.create_task(self._supervise(), name="katago-supervisor")
        if wait:
            await self.wait_up()

    async def wait_up(self, timeout: float | None = None) -> None:
        """Wait until KataGo answers; raise :class:`EngineUnavailableError` when the current
        start attempt fails (or after ``timeout`` seconds)."""
        if self._state == "up":
            return
        if self._supervisor is None:
            raise EngineUnavailableError("engine is stopped")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._start_waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise EngineUnavailableError(f"KataGo not up after {timeout} s") from None
        finally:
            with contextlib.suppress(ValueError):
                self._start_waiters.remove(waiter)

    async def close(self, grace: float = 2.0) -> None:
        """Stop the engine: fail pending queries, close stdin, then SIGTERM and SIGKILL the
        process group if it does not exit within ``grace`` s; reap it. Safe to call twice;
        cancelled, it still kills the process group (:func:`stop_process`)."""
        self._closing = True
        if self._close_event is not None:
            self._close_event.set()
        self._fail_all(EngineUnavailableError("engine closed"))
        try:
            proc = self._proc
            if proc is not None and proc.returncode is None:
                if proc.stdin is not None:
                    with contextlib.suppress(Exception):
                        proc.stdin.close()
                await stop_process(proc, grace=grace)
            if self._supervisor is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(self._supervisor, grace + 5)
        finally:
            if self._supervisor is not None and not self._supervisor.done():
                self._supervisor.cancel()  # its own cleanup SIGKILLs a child it still has
            self._supervisor = None
            self._state = "stopped"
            self._wake_start_waiters(EngineUnavailableError("engine closed"))

    @staticmethod
    def _signal(proc: asyncio.subprocess.Process, sig: int) -> None:
        # The child leads its own process group (start_new_session): signal the group.
        signal_group(proc, sig)

    def kill(self, reason: str = "killed") -> None:
        """Kill the child now (SIGKILL); the supervisor restarts it."""
        proc = self._proc
        if proc is not None and proc.returncode is None:
            self._kill_reason = reason
            self._signal(proc, signal.SIGKILL)

    async def _supervise(self) -> None:
        backoff = self.backoff_initial
        assert self._close_event is not None
        while not self._closing:
            started = time.monotonic()
            was_up = False
            try:
                was_up = await self._run_once()
            except Exception:  # a bug here must not stop supervision
                log.exception("katago supervisor error")
            if self._closing:
                break
            self._consecutive_failures += 1
            self._state = "degraded"
            if was_up and time.monotonic() - started >= self.stable_uptime:
                backoff = self.backoff_initial
            log.warning(
                "katago: engine down (%s); restarting in %.1f s", self.last_failure, backoff
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._close_event.wait(), backoff)
            backoff = min(backoff * 2, self.backoff_max)
            if not self._closing:
                self.restarts += 1
        self._state = "stopped"

    async def _run_once(self) -> bool:
        """Run one child until it exits; return whether it came up."""
        self._ready = False
        self._kill_reason = None
        argv = self.argv()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self.env,
                start_new_session=True,
                limit=_LINE_LIMIT,
            )
        except OSError as exc:
            self.last_failure = f"cannot start {self.binary}: {exc}"
            self._wake_start_waiters(EngineUnavailableError(self.last_failure))
            return False
        self._proc = proc
        self.stderr_tail.clear()  # failure messages quote this run's stderr only
        if self._closing:  # close() ran while the child was being spawned
            self._signal(proc, signal.SIGKILL)
        log.info("katago: started pid %d: %s", proc.pid, " ".join(argv))
        self._last_output = time.monotonic()
        assert proc.stdout is not None and proc.stderr is not None
        stderr_task = asyncio.create_task(self._drain_stderr(proc.stderr))
        reader = asyncio.create_task(self._read_stdout(proc.stdout))
        watchdog = asyncio.create_task(self._watchdog(proc))
        self._write({"id": _READY_ID, "action": "query_version"})
        came_up = False
        try:
            rc = await proc.wait()
            came_up = self._ready
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(reader, stderr_task), 5.0)
        finally:
            for task in (reader, stderr_task, watchdog):
                task.cancel()
            if proc.returncode is None:  # cancelled: never leave a child behind
                self._signal(proc, signal.SIGKILL)
                await proc.wait()
            self._ready = False
            self._up_since = None
            self._proc = None
        reason = self._kill_reason or (
            f"exited with code {rc}" if rc >= 0 else f"killed by signal {-rc}"
        )
        tail = " | ".join(list(self.stderr_tail)[-5:])
        self.last_failure = f"KataGo {reason}" + (f"; stderr: {tail}" if tail else "")
        if not self._closing:
            self.crashes += 1
            self._requeue_inflight()
            self._wake_start_waiters(EngineUnavailableError(self.last_failure))
        return came_up

    async def _watchdog(self, proc: asyncio.subprocess.Process) -> None:
        pings = itertools.count(1)
        spawned = time.monotonic()
        last_ping = 0.0
        while proc.returncode is None:
            await asyncio.sleep(min(self.watchdog_interval, 1.0))
            now = time.monotonic()
            if not self._ready:
                # Tuning a big net on a CPU can outlast startup_timeout; KataGo saves its
                # tuning only at the end, so while it still reports progress, let it finish.
                since = self._last_stderr if self._state == "tuning" else spawned
                if now - max(since, spawned) > self.startup_timeout:
                    log.error("katago: not ready after %.0f s; killing it", self.startup_timeout)
                    self.kill(f"not ready after {self.startup_timeout:.0f} s")
                    return
                continue
            silent = now - self._last_output
            if silent > self.watchdog_timeout:
                self.hangs += 1
                log.error("katago: no output for %.1f s (hung); killing pid %d", silent, proc.pid)
                self.kill(f"hung (no output for {silent:.1f} s)")
                return
            if silent >= self.watchdog_interval and now - last_ping >= self.watchdog_interval:
                last_ping = now
                self._write({"id": f"_ping:{next(pings)}", "action": "query_version"})

    async def _drain_stderr(self, stream: asyncio.StreamReader) -> None:
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # over the line limit: skip it
                continue
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip()
            self._last_stderr = time.monotonic()
            self.stderr_tail.append(line)
            if not self._ready and TUNING_LINE.search(line):
                if self._state != "tuning":
                    self._state = "tuning"  # back to "up" when KataGo answers
                if not self._tuning_logged:
                    self._tuning_logged = True
                    log.info("katago: tuning OpenCL for this model (first start; minutes)")
            log.debug("katago stderr: %s", line)

    async def _read_stdout(self, stream: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await stream.readline()
            except ValueError:
                self.malformed_lines += 1
                log.warning("katago: output line over %d bytes skipped", _LINE_LIMIT)
                continue
            if not line:
                return
            self._last_output = time.monotonic()
            try:
                self._handle_line(line)
            except Exception:  # never let one bad line stop the reader
                self.malformed_lines += 1
                log.exception("katago: cannot handle output line %r", line[:200])

    def _write(self, obj: Mapping[str, Any]) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing():
            return
        try:
            proc.stdin.write(orjson.dumps(obj) + b"\n")
        except (OSError, RuntimeError) as exc:  # the child is gone: the supervisor handles it
            log.debug("katago: write failed: %s", exc)

    # -- responses -------------------------------------------------------------------------

    def _handle_line(self, line: bytes) -> None:
        try:
            msg = orjson.loads(line)
        except orjson.JSONDecodeError:
            msg = None
        if not isinstance(msg, dict):
            self.malformed_lines += 1
            log.warning("katago: ignored non-JSON output: %r", line[:200])
            return
        qid = msg.get("id")
        if "error" in msg:
            query = self._inflight.get(qid) if isinstance(qid, str) else None
            if query is None:
                log.warning("katago error: %s", msg.get("error"))
                self.stderr_tail.append(f"error: {msg.get('error')}")
                return
            del self._inflight[query.qid]
            field_name = msg.get("field")
            self._finish(
                query,
                EngineProtocolError(
                    f"KataGo rejected the query: {msg.get('error')}",
                    field_name if isinstance(field_name, str) else None,
                ),
            )
            self._pump()
            return
        if "warning" in msg:
            query = self._inflight.get(qid) if isinstance(qid, str) else None
            text = f"{msg.get('warning')}" + (f" (field {msg['field']})" if "field" in msg else "")
            log.warning("katago warning for %s: %s", qid, text)
            if query is not None:
                query.warnings.append(text)
            return
        if "action" in msg:
            if qid == _READY_ID:
                self._on_ready(msg)
            return
        if not isinstance(qid, str):
            self.malformed_lines += 1
            log.warning("katago: ignored output without an id: %r", line[:200])
            return
        query = self._inflight.get(qid)
        if query is None:
            self.malformed_lines += 1
            log.warning("katago: ignored output for unknown id %r", qid)
            return
        if msg.get("isDuringSearch"):
            return
        try:
            result = msgspec.convert(msg, AnalysisResult)
        except msgspec.ValidationError as exc:
            del self._inflight[qid]
            self._finish(query, EngineProtocolError(f"unreadable KataGo result: {exc}"))
            self._pump()
            return
        query.results[result.turn_number] = result
        if query.complete():
            del self._inflight[qid]
            self._finish(query, None)
            self._pump()

    def _on_ready(self, msg: dict[str, Any]) -> None:
        version = msg.get("version")
        self.version = version if isinstance(version, str) else None
        self._ready = True
        self._up_since = time.monotonic()
        self._consecutive_failures = 0
        self._state = "up"
        log.info("katago: up (version %s, pid %s)", self.version, self.pid)
        self._wake_start_waiters(None)
        self._pump()

    def _wake_start_waiters(self, exc: BaseException | None) -> None:
        waiters, self._start_waiters = self._start_waiters, []
        for waiter in waiters:
            if waiter.done():
                continue
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(exc)

    def _finish(self, query: _Query, exc: BaseException | None) -> None:
        """Called when KataGo is done with ``query`` (or gave up on it)."""
        if query.timer is not None:
            query.timer.cancel()
            query.timer = None
        if query.abandoned or query.future.done():
            return
        now = time.monotonic()
        if exc is not None:
            self.queries_failed += 1
            query.future.set_exception(exc)
            return
        self.queries_ok += 1
        if query.warnings:
            for result in query.results.values():
                result.warnings = list(query.warnings)
        latency = now - query.submitted
        self.latencies.append(latency)
        visits = sum(r.visits for r in query.results.values())
        self.visits_total += visits
        if query.sent_at is not None and now > query.sent_at and visits:
            self.last_visits_per_second = visits / (now - query.sent_at)
        if self.on_latency is not None:
            try:
                self.on_latency(latency, query.priority)
            except Exception:
                log.exception("katago: on_latency hook failed")
        query.future.set_result(dict(sorted(query.results.items())))

    # -- queue and flow control ------------------------------------------------------------

    def _pump(self) -> None:
        """Send queued queries while KataGo is up and has free slots, best priority first."""
        if not self._ready or self._proc is None:
            return
        while self._heap and len(self._inflight) < self.max_in_flight:
            _, _, query = heapq.heappop(self._heap)
            if query.future.done():
                continue
            query.attempts += 1
            query.sent_at = time.monotonic()
            self._inflight[query.qid] = query
            self._write({"id": query.qid, **query.body})

    def _requeue_inflight(self) -> None:
        """The child died: resend what it was working on (once), fail the rest."""
        lost, self._inflight = list(self._inflight.values()), {}
        for query in lost:
            if query.abandoned or query.future.done():
                continue
            if query.attempts >= self.max_attempts:
                self._finish(
                    query,
                    EngineCrashedError(f"{self.last_failure} (query tried {query.attempts} times)"),
                )
                continue
            self.retries += 1
            if query.turns is not None and query.results:
                missing = sorted(query.turns - query.results.keys())
                query.body = {**query.body, "analyzeTurns": missing}
            query.sent_at = None
            heapq.heappush(self._heap, (-query.priority, query.seq, query))

    def _fail_all(self, exc: EngineError) -> None:
        heap, self._heap = self._heap, []
        for _, _, query in heap:
            self._finish(query, exc)
        for query in list(self._inflight.values()):
            self._finish(query, exc)
            query.abandoned = True

    def _submit(self, query: AnalysisQuery, timeout: float | None, tag: str | None) -> _Query:
        if self._closing or self._supervisor is None:
            raise EngineUnavailableError("engine is stopped")
        if self._state == "degraded" and self._consecutive_failures >= self.fail_fast_after:
            raise EngineUnavailableError(f"engine is down: {self.last_failure}")
        if len(self._heap) >= self.max_queue and not self._make_room(query.priority):
            self.rejected += 1
            raise EngineBusyError(
                f"engine queue full ({len(self._heap)} waiting, {len(self._inflight)} running)"
            )
        body = query.to_wire()
        turns = frozenset(query.analyze_turns) if query.analyze_turns is not None else None
        loop = asyncio.get_running_loop()
        pending = _Query(
            qid=f"{tag}:{next(self._ids)}" if tag else f"q{next(self._ids)}",
            body=body,
            turns=turns,
            priority=query.priority,
            seq=next(self._seq),
            tag=tag,
            future=loop.create_future(),
            submitted=time.monotonic(),
        )
        self.queries_total += 1
        if timeout is not None:
            pending.timer = loop.call_later(timeout, self._on_timeout, pending, timeout)
        heapq.heappush(self._heap, (-pending.priority, pending.seq, pending))
        self._pump()
        return pending

    def _make_room(self, priority: int) -> bool:
        """The queue is full: refuse the queued query of the lowest priority (the newest of
        those) with :class:`EngineBusyError` if it ranks below ``priority``, so that a bot
        move always gets in ahead of estimates and reviews. False: nothing ranks lower."""
        if not self._heap:
            return False
        worst = max(self._heap, key=lambda entry: (entry[0], entry[1]))
        if worst[2].priority >= priority:
            return False
        self.rejected += 1
        self._abandon(
            worst[2], EngineBusyError("engine queue full: a query of higher priority came first")
        )
        return True

    def _on_timeout(self, query: _Query, timeout: float) -> None:
        query.timer = None
        if query.future.done():
            return
        self.timeouts += 1
        self._abandon(query, EngineTimeoutError(f"query {query.qid} timed out after {timeout} s"))

    def _abandon(self, query: _Query, exc: EngineError | None) -> None:
        """Stop caring about ``query``: fail its future with ``exc`` (or cancel it), drop it
        from the queue, or tell KataGo to terminate it."""
        if query.timer is not None:
            query.timer.cancel()
            query.timer = None
        for i, (_, _, queued) in enumerate(self._heap):
            if queued is query:
                self._heap.pop(i)
                heapq.heapify(self._heap)
                break
        else:
            if query.qid in self._inflight and not query.abandoned:
                self._write(
                    {
                        "id": f"_terminate:{query.qid}",
                        "action": "terminate",
                        "terminateId": query.qid,
                    }
                )
        if not query.future.done():
            self.queries_failed += 1
            if exc is None:
                query.future.cancel()
            else:
                query.future.set_exception(exc)
                query.future.exception()  # retrieved: no "never retrieved" noise
        query.abandoned = True

    # -- public queries --------------------------------------------------------------------

    async def analyze_turns(
        self, query: AnalysisQuery, *, timeout: float | None = _UNSET, tag: str | None = None
    ) -> dict[int, AnalysisResult]:
        """Run ``query``; return its final results keyed by turn number.

        ``timeout`` (default ``query_timeout``) counts from now, queue wait included.
        ``tag`` (a game id, say) groups queries for :meth:`cancel_tag`. Raises
        :class:`EngineBusyError`, :class:`EngineUnavailableError`,
        :class:`EngineTimeoutError`, :class:`EngineCrashedError`,
        :class:`EngineProtocolError` or :class:`QueryCancelledError`."""
        pending = self._submit(query, self.query_timeout if timeout is _UNSET else timeout, tag)
        try:
            return await asyncio.shield(pending.future)
        except asyncio.CancelledError:
            if not pending.future.done():
                self.cancelled += 1
                self._abandon(pending, None)
            raise

    async def analyze(
        self, query: AnalysisQuery, *, timeout: float | None = _UNSET, tag: str | None = None
    ) -> AnalysisResult:
        """Run a query for one turn (the last one unless ``analyze_turns`` names one)."""
        if query.analyze_turns is not None and len(query.analyze_turns) != 1:
            raise ValueError("analyze() is for one turn; use analyze_turns()")
        results = await self.analyze_turns(query, timeout=timeout, tag=tag)
        return next(iter(results.values()))

    def cancel_tag(self, tag: str) -> int:
        """Cancel every pending query submitted with ``tag`` (a finished game's id): their
        callers get :class:`QueryCancelledError`. Returns how many were cancelled."""
        found = [q for _, _, q in self._heap if q.tag == tag]
        found += [q for q in self._inflight.values() if q.tag == tag and not q.abandoned]
        for query in found:
            self.cancelled += 1
            self._abandon(query, QueryCancelledError(f"query {query.qid} cancelled"))
        return len(found)


# --------------------------------------------------------------------------------------------
# `goapp engine check`


async def engine_check(
    paths: KataGoPaths,
    config: Path | str | None = None,
    *,
    visits: int = 100,
    size: int = 19,
    startup_timeout: float = 900.0,
    print_fn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Start KataGo with ``paths``, run one query of ``visits`` visits on an empty board and
    report what is configured and how fast it is (``visits_per_second``). Raises
    :class:`EngineError` when it does not work."""
    out = print_fn or (lambda _line: None)
    engine = KataGoEngine.from_paths(paths, config, startup_timeout=startup_timeout)
    report: dict[str, Any] = {
        **paths.to_dict(),
        "config": str(engine.config),
        "argv": engine.argv(),
    }
    out(f"binary: {paths.binary}\nmodel:  {paths.model}\nconfig: {engine.config}")
    out("starting KataGo (the first start with a model tunes OpenCL; it can take minutes)...")
    started = time.monotonic()
    try:
        await engine.start()
        report["version"] = engine.version
        report["startup_seconds"] = round(time.monotonic() - started, 2)
        out(f"KataGo {engine.version} up in {report['startup_seconds']} s")
        query = AnalysisQuery(
            moves=[],
            rules="japanese",
            komi=6.5,
            board_x_size=size,
            board_y_size=size,
            max_visits=visits,
            priority=PRIORITY_BOT,
        )
        t0 = time.monotonic()
        result = await engine.analyze(query, timeout=None)
        elapsed = time.monotonic() - t0
    finally:
        await engine.close()
    report.update(
        {
            "visits": result.visits,
            "seconds": round(elapsed, 3),
            "visits_per_second": round(result.visits / elapsed, 1) if elapsed > 0 else None,
            "best_move": result.best_move,
            "winrate_black": None if result.root_info is None else result.root_info.winrate,
            "warnings": result.warnings,
        }
    )
    out(
        f"{result.visits} visits in {elapsed:.2f} s: {report['visits_per_second']} visits/s "
        f"(best move {result.best_move})"
    )
    return report
