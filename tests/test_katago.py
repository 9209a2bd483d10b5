"""KataGo supervisor (goapp.engine.katago) against the real KataGo binary and a small model.

KataGo is installed by goapp.engine.setup into ``.katago/`` at the repository root (once;
later runs reuse it) with the test model from ``../shared/katago/``. Without KataGo the tests
fail when ``CI`` is set and are skipped otherwise. The first start with a model tunes OpenCL
(minutes on a busy CPU, cached in ``.katago/home``): the session fixture does it once, so the
pytest timeouts here are generous while every test body has its own short ``asyncio``
timeout. Only the malformed-output tests use a fake engine (a Python script).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from engine_support import best_move

from goapp.engine import setup as katago_setup
from goapp.engine.errors import (
    EngineBusyError,
    EngineCrashedError,
    EngineProtocolError,
    EngineTimeoutError,
    EngineUnavailableError,
    QueryCancelledError,
)
from goapp.engine.katago import (
    PRIORITY_BOT,
    AnalysisQuery,
    KataGoEngine,
    default_config,
    engine_check,
)
from goapp.engine.setup import KataGoPaths, KataGoSetupError, install_katago, katago_version
from goapp.rules.rulesets import Rules

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO.parent / "shared" / "katago" / "g170-b6c96-s175395328-d26788732.bin.gz"
CACHE = REPO / ".katago"

# Covers the one-off OpenCL tuning in the session fixture (pytest-timeout counts fixture
# setup); each test body also runs under its own short asyncio timeout (BODY).
pytestmark = pytest.mark.timeout(1800)
BODY = 120

# A 20-move 9x9 game (legal, no captures).
GAME = [
    ["B", "E5"], ["W", "C3"], ["B", "G7"], ["W", "C7"], ["B", "G3"],
    ["W", "E3"], ["B", "E7"], ["W", "D6"], ["B", "F4"], ["W", "D4"],
    ["B", "C6"], ["W", "B6"], ["B", "C5"], ["W", "B5"], ["B", "D7"],
    ["W", "C4"], ["B", "F2"], ["W", "E2"], ["B", "G5"], ["W", "H8"],
]  # fmt: skip


# The session fixture `katago` (install + OpenCL tuning, once) lives in tests/conftest.py.


@asynccontextmanager
async def running(paths: KataGoPaths, **kwargs: Any) -> AsyncIterator[KataGoEngine]:
    kwargs.setdefault("backoff_initial", 0.1)
    engine = KataGoEngine.from_paths(paths, **kwargs)
    try:
        await engine.start()
        yield engine
    finally:
        pid = engine.pid
        await engine.close()
        if pid is not None:
            assert process_gone(pid), f"KataGo pid {pid} left behind: {proc_state(pid)}"


def proc_state(pid: int) -> str | None:
    """The state letter of ``pid`` (``Z`` for a zombie), ``None`` when it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def process_gone(pid: int) -> bool:
    return proc_state(pid) is None


async def until(cond: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def q9(
    moves: list[list[str]] | None = None, visits: int = 8, rules: object = "tromp-taylor", **kw: Any
) -> AnalysisQuery:
    return AnalysisQuery(
        moves=GAME[:2] if moves is None else moves,
        rules=rules,
        komi=7.0,
        board_x_size=9,
        board_y_size=9,
        max_visits=visits,
        **kw,
    )


LONG = 1_000_000  # visits: a search that runs until terminated


# -- without KataGo ------------------------------------------------------------------------


def test_query_wire_form() -> None:
    q = AnalysisQuery(
        moves=[("B", "D4")],
        rules=Rules.from_name("japanese"),
        komi=6.5,
        include_pv_visits=True,
        analyze_turns=[0, 1],
    )
    wire = q.to_wire()
    assert wire["moves"] == [["B", "D4"]]
    assert wire["rules"]["scoring"] == "TERRITORY"
    assert wire["boardXSize"] == 19 and wire["boardYSize"] == 19
    assert wire["includePVVisits"] is True and wire["analyzeTurns"] == [0, 1]
    assert "id" not in wire and "includeOwnership" not in wire and "maxVisits" not in wire
    assert AnalysisQuery(moves=[]).to_wire()["rules"] == "tromp-taylor"


def test_argv_and_config(tmp_path: Path) -> None:
    engine = KataGoEngine(
        "/x/katago", "/m.bin.gz", override_config={"maxVisits": 5}, log_file=tmp_path / "k.log"
    )
    argv = engine.argv()
    assert argv[:2] == ["/x/katago", "analysis"] and "-quit-without-waiting" in argv
    assert argv[argv.index("-override-config") + 1] == f"maxVisits=5,logFile={tmp_path}/k.log"
    assert "\nnumAnalysisThreads = 2\n" in default_config().read_text()
    assert "logAllGTPCommunication" in default_config("gtp").read_text()
    with pytest.raises(ValueError):
        KataGoEngine("k", "m", override_config={"a": "1,b=2"}).argv()


async def test_start_failure_is_reported(tmp_path: Path) -> None:
    script = tmp_path / "broken-katago"
    script.write_text("#!/bin/sh\necho 'boom: cannot load model' >&2\nexit 3\n")
    script.chmod(0o755)
    engine = KataGoEngine(script, tmp_path / "none.bin.gz", backoff_initial=0.05)
    async with asyncio.timeout(BODY):
        with pytest.raises(EngineUnavailableError, match="boom"):
            await engine.start()
        assert engine.state == "degraded"
        await engine.close()
    assert engine.state == "stopped"
    with pytest.raises(EngineUnavailableError):
        await engine.analyze(q9())


FAKE_ENGINE = """\
import json, sys
def out(obj):
    sys.stdout.write((obj if isinstance(obj, str) else json.dumps(obj)) + "\\n")
    sys.stdout.flush()
for line in sys.stdin:
    q = json.loads(line)
    if q.get("action"):
        out({**q, "version": "0.0-fake"})
        continue
    if q.get("komi") == 999:
        out({"error": "komi out of range", "field": "komi", "id": q["id"]})
        continue
    out("this is not JSON")
    out("[1, 2, 3]")
    out({"no": "id"})
    out({"id": "unknown-query", "isDuringSearch": False, "turnNumber": 0})
    out({"id": q["id"], "isDuringSearch": False, "turnNumber": "garbage-turn"})
    out({"warning": "unused field", "field": "foo", "id": q["id"]})
    out({"id": q["id"], "isDuringSearch": True, "turnNumber": 0})
    turn = len(q["moves"])
    out({"id": q["id"], "isDuringSearch": False, "turnNumber": turn,
         "moveInfos": [{"move": "D4", "visits": 3, "order": 0, "pv": ["D4"]}],
         "rootInfo": {"visits": 3, "winrate": 0.5, "scoreLead": 0.0}})
"""


async def test_malformed_output_is_ignored(tmp_path: Path) -> None:
    """A fake engine (the only test double here) mixes garbage into its answers."""
    script = tmp_path / "fake-katago"
    script.write_text(f"#!{sys.executable}\n" + textwrap.dedent(FAKE_ENGINE))
    script.chmod(0o755)
    engine = KataGoEngine(script, tmp_path / "model.bin.gz", config=tmp_path / "x.cfg")
    async with asyncio.timeout(BODY):
        await engine.start()
        try:
            assert engine.version == "0.0-fake"
            # A result with an unreadable turnNumber fails that query clearly ...
            with pytest.raises(EngineProtocolError, match="unreadable"):
                await engine.analyze(q9())
            # ... and an error response fails only its query.
            with pytest.raises(EngineProtocolError, match="komi") as err:
                await engine.analyze(AnalysisQuery(moves=[], komi=999))
            assert err.value.field == "komi"
            assert engine.malformed_lines >= 4
            assert engine.state == "up" and engine.crashes == 0
        finally:
            await engine.close()


SLOW_TUNER = """\
import json, sys, time
sys.stderr.write("Beginning GPU tuning for fake device\\n")
for i in range(12):
    time.sleep(0.25)
    sys.stderr.write(f"Tuning {i}/12 Calls/sec 1.0\\n")
    sys.stderr.flush()
for line in sys.stdin:
    q = json.loads(line)
    sys.stdout.write(json.dumps({**q, "version": "0.0-tuned"}) + "\\n")
    sys.stdout.flush()
"""


async def test_a_tune_longer_than_startup_timeout_is_not_killed(tmp_path: Path) -> None:
    """KataGo saves its tuning only at the end: a tune that outlasts startup_timeout but keeps
    reporting progress is left to finish (a fake engine: a real tune takes minutes); the
    state says `tuning` meanwhile."""
    script = tmp_path / "slow-tuner"
    script.write_text(f"#!{sys.executable}\n" + SLOW_TUNER)
    script.chmod(0o755)
    engine = KataGoEngine(script, tmp_path / "m.bin.gz", startup_timeout=1.0)
    async with asyncio.timeout(BODY):
        await engine.start(wait=False)
        try:
            while engine.state != "tuning":
                await asyncio.sleep(0.05)
            await engine.wait_up(30)
            assert engine.version == "0.0-tuned" and engine.state == "up"
            assert engine.crashes == 0 and engine.restarts == 0
        finally:
            await engine.close()


async def test_fake_engine_answers_after_garbage(tmp_path: Path) -> None:
    script = tmp_path / "fake-katago"
    # Same fake, without the unreadable final result: answers follow the garbage lines.
    script.write_text(
        f"#!{sys.executable}\n"
        + textwrap.dedent(FAKE_ENGINE).replace(
            '    out({"id": q["id"], "isDuringSearch": False, "turnNumber": "garbage-turn"})\n',
            "",
        )
    )
    script.chmod(0o755)
    engine = KataGoEngine(script, tmp_path / "model.bin.gz", config=tmp_path / "x.cfg")
    async with asyncio.timeout(BODY):
        await engine.start()
        try:
            results = await asyncio.gather(*(engine.analyze(q9(GAME[:n])) for n in range(5)))
            assert [r.turn_number for r in results] == [0, 1, 2, 3, 4]
            assert all(r.best_move == "D4" and r.warnings for r in results)
            assert engine.malformed_lines >= 4 * 5 and engine.state == "up"
        finally:
            await engine.close()


# -- getting KataGo --------------------------------------------------------------------------


def test_install_is_idempotent(katago: KataGoPaths, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_download(*args: Any, **kwargs: Any) -> Path:
        raise AssertionError("install_katago downloaded again")

    monkeypatch.setattr(katago_setup, "fetch_wheel", no_download)
    again = install_katago(CACHE, MODEL)
    assert again == katago
    assert install_katago(CACHE).model == katago.model  # the model already there is found
    assert (CACHE / ".gitignore").read_text().strip().endswith("*")
    wrapper = subprocess.run([str(CACHE / "katago"), "version"], capture_output=True, text=True)
    assert wrapper.returncode == 0 and "KataGo v1.18" in wrapper.stdout
    with pytest.raises(KataGoSetupError, match="not found"):
        install_katago(CACHE, CACHE / "no-such-model.bin.gz")


def test_tune_reports_a_failed_first_start_in_one_line(katago: KataGoPaths, tmp_path: Path) -> None:
    bad = tmp_path / "broken.bin.gz"
    bad.write_bytes(b"not a model")
    paths = dataclasses.replace(katago, model=bad, home=tmp_path / "k")
    with pytest.raises(KataGoSetupError, match="KataGo failed to start") as caught:
        katago_setup.tune(paths)
    assert "\n" not in str(caught.value)
    assert (tmp_path / "k" / "home").is_dir()  # the layout is made before KataGo runs


# -- with KataGo -----------------------------------------------------------------------------


async def test_query_answered(katago: KataGoPaths) -> None:
    latencies: list[tuple[float, int]] = []
    async with (
        asyncio.timeout(BODY),
        running(katago, on_latency=lambda s, p: latencies.append((s, p))) as engine,
    ):
        assert engine.state == "up" and engine.version == "1.18.1"
        result = await engine.analyze(
            q9(visits=10, include_ownership=True, rules=Rules.from_name("japanese"))
        )
        assert result.turn_number == 2 and result.visits >= 10
        assert result.root_info is not None and result.root_info.current_player == "B"
        assert result.ownership is not None and len(result.ownership) == 81
        assert result.best_move is not None and result.move_infos[0].pv
        assert result.warnings == []
        move = await best_move(engine, GAME[:3], 9, Rules.from_name("chinese"), 7.5, 8)
        assert re.fullmatch(r"[A-HJ][1-9]|pass", move), move
        assert engine.queries_ok == 2 and len(engine.latencies) == 2
        assert [p for _, p in latencies] == [0, PRIORITY_BOT]
        assert engine.visits_total >= 18 and engine.last_visits_per_second
        stats = engine.stats()
        assert stats["state"] == "up" and stats["queries_ok"] == 2 and stats["latency_p50"]
        assert engine.queue_depth == 0 and engine.in_flight == 0


async def test_concurrent_queries_are_routed(katago: KataGoPaths) -> None:
    async with asyncio.timeout(BODY), running(katago, max_in_flight=8) as engine:
        lengths = [0, 3, 7, 1, 12, 5, 20, 9]
        results = await asyncio.gather(*(engine.analyze(q9(GAME[:n], visits=4)) for n in lengths))
        for n, result in zip(lengths, results, strict=True):
            assert result.turn_number == n
            assert result.root_info is not None
            assert result.root_info.current_player == ("B" if n % 2 == 0 else "W")
        assert len({r.id for r in results}) == 8


async def test_analyze_turns(katago: KataGoPaths) -> None:
    async with asyncio.timeout(BODY), running(katago) as engine:
        results = await engine.analyze_turns(q9(GAME, visits=2, analyze_turns=list(range(21))))
        assert list(results) == list(range(21))
        for turn, result in results.items():
            assert result.turn_number == turn and result.visits >= 1
            assert result.root_info is not None
            assert result.root_info.current_player == ("B" if turn % 2 == 0 else "W")
        with pytest.raises(ValueError):
            await engine.analyze(q9(GAME, analyze_turns=[1, 2]))


async def test_killed_engine_restarts_and_query_is_retried(katago: KataGoPaths) -> None:
    async with asyncio.timeout(BODY), running(katago) as engine:
        old_pid = engine.pid
        assert old_pid is not None
        task = asyncio.create_task(engine.analyze(q9(visits=60)))
        await until(lambda: engine.in_flight == 1, what="query sent")
        os.kill(old_pid, signal.SIGKILL)
        await until(lambda: engine.state == "degraded", 10, "degraded state")
        result = await task
        assert result.visits >= 60
        assert engine.state == "up" and engine.pid not in (None, old_pid)
        assert (engine.crashes, engine.restarts, engine.retries) == (1, 1, 1)
        assert process_gone(old_pid)


async def test_crash_during_analyze_turns_resends_missing_turns(katago: KataGoPaths) -> None:
    async with asyncio.timeout(BODY), running(katago) as engine:
        task = asyncio.create_task(
            engine.analyze_turns(q9(GAME, visits=12, analyze_turns=list(range(21))))
        )

        def some_turns_done() -> bool:  # peeks at the supervisor's bookkeeping
            return any(len(q.results) >= 2 for q in engine._inflight.values())

        await until(some_turns_done, what="first turns analysed")
        pid = engine.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        results = await task
        assert list(results) == list(range(21)) and engine.retries == 1
        assert all(r.turn_number == t for t, r in results.items())


async def test_query_fails_after_second_crash(katago: KataGoPaths) -> None:
    async with asyncio.timeout(BODY), running(katago) as engine:
        task = asyncio.create_task(engine.analyze(q9(visits=LONG), timeout=None))
        for attempt in (1, 2):
            await until(lambda: engine.in_flight == 1 and engine.state == "up", what="sent")
            pid = engine.pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            if attempt == 1:

                def restarted(p: int = pid) -> bool:
                    return engine.pid not in (None, p)

                await until(restarted, 30, "restart")
        with pytest.raises(EngineCrashedError, match="tried 2 times"):
            await task
        await engine.wait_up(30)
        assert (await engine.analyze(q9(visits=2))).visits >= 1  # still serving


async def test_hung_engine_is_killed_and_restarted(katago: KataGoPaths) -> None:
    async with (
        asyncio.timeout(BODY),
        running(katago, watchdog_timeout=2.0, watchdog_interval=0.5) as engine,
    ):
        pid = engine.pid
        assert pid is not None
        task = asyncio.create_task(engine.analyze(q9(visits=30)))
        await until(lambda: engine.in_flight == 1, what="query sent")
        os.kill(pid, signal.SIGSTOP)
        try:
            await until(lambda: engine.hangs == 1, 15, "hang detected")
            result = await task  # retried on the new process
            assert result.visits >= 30
            assert engine.pid not in (None, pid) and engine.state == "up"
            await until(lambda: process_gone(pid), 5, "hung process reaped")
        finally:
            if not process_gone(pid):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)


async def test_query_timeout_terminates_search(katago: KataGoPaths) -> None:
    # The watchdog (2 s) must not mistake a long search for a hang: it probes KataGo.
    async with (
        asyncio.timeout(BODY),
        running(katago, watchdog_timeout=2.0, watchdog_interval=0.25) as engine,
    ):
        started = time.monotonic()
        with pytest.raises(EngineTimeoutError):
            await engine.analyze(q9(visits=LONG), timeout=5.0)
        assert 4.9 < time.monotonic() - started < 15
        await until(lambda: engine.in_flight == 0, 20, "terminated search to finish")
        assert engine.timeouts == 1 and engine.hangs == 0 and engine.crashes == 0
        assert (await engine.analyze(q9(visits=2))).visits >= 1


async def test_cancel_queries(katago: KataGoPaths) -> None:
    async with asyncio.timeout(BODY), running(katago) as engine:
        g1 = [
            asyncio.create_task(engine.analyze(q9(visits=LONG), tag="game-1", timeout=None))
            for _ in range(2)
        ]
        g2 = asyncio.create_task(engine.analyze(q9(visits=4), tag="game-2"))
        await until(lambda: engine.in_flight == 3, what="queries sent")
        assert engine.cancel_tag("game-1") == 2
        for task in g1:
            with pytest.raises(QueryCancelledError):
                await task
        assert (await g2).visits >= 4
        # Cancelling the caller's task terminates its query too.
        task = asyncio.create_task(engine.analyze(q9(visits=LONG), timeout=None))
        await until(lambda: engine.in_flight >= 1, what="query sent")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await until(lambda: engine.in_flight == 0, 20, "terminated searches to finish")
        assert engine.cancelled == 3


async def test_busy_when_queue_full(katago: KataGoPaths) -> None:
    async with asyncio.timeout(BODY), running(katago, max_in_flight=1, max_queue=2) as engine:
        tasks = [
            asyncio.create_task(engine.analyze(q9(visits=LONG), tag="g", timeout=None))
            for _ in range(3)
        ]
        await until(lambda: engine.in_flight == 1 and engine.queue_depth == 2, what="queued")
        started = time.monotonic()
        with pytest.raises(EngineBusyError):
            await engine.analyze(q9(visits=2))
        assert time.monotonic() - started < 0.5 and engine.rejected == 1
        assert engine.cancel_tag("g") == 3
        await asyncio.gather(*tasks, return_exceptions=True)
        await until(lambda: engine.in_flight == 0, 20, "terminated search to finish")


async def test_bot_queries_go_first(katago: KataGoPaths) -> None:
    async with asyncio.timeout(BODY), running(katago, max_in_flight=1) as engine:
        finished: list[str] = []

        async def run(name: str, query: AnalysisQuery) -> None:
            await engine.analyze(query)
            finished.append(name)

        first = asyncio.create_task(run("review-1", q9(visits=60)))
        await until(lambda: engine.in_flight == 1, what="first query sent")
        tasks = [first]
        for name in ("review-2", "review-3"):
            tasks.append(asyncio.create_task(run(name, q9(visits=2))))
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(run("bot", q9(visits=2, priority=PRIORITY_BOT))))
        await asyncio.gather(*tasks)
        assert finished == ["review-1", "bot", "review-2", "review-3"]


async def test_close_leaves_no_process(katago: KataGoPaths) -> None:
    async with asyncio.timeout(BODY):
        engine = KataGoEngine.from_paths(katago)
        await engine.start()
        pid = engine.pid
        assert pid is not None and proc_state(pid) not in (None, "Z")
        pending = asyncio.create_task(engine.analyze(q9(visits=LONG), timeout=None))
        await until(lambda: engine.in_flight == 1, what="query sent")
        await engine.close()
        assert engine.state == "stopped" and engine.pid is None
        assert process_gone(pid), f"pid {pid} still there: {proc_state(pid)}"
        with pytest.raises(EngineUnavailableError):
            await pending
        with pytest.raises(EngineUnavailableError):
            await engine.analyze(q9())
        await engine.close()  # twice is fine


async def test_engine_check(katago: KataGoPaths) -> None:
    lines: list[str] = []
    async with asyncio.timeout(BODY):
        report = await engine_check(katago, visits=20, size=9, print_fn=lines.append)
    assert report["version"] == "1.18.1" and report["visits"] >= 20
    assert report["visits_per_second"] > 0 and report["best_move"]
    assert any("visits/s" in line for line in lines)


@pytest.mark.timeout(300)
def test_goapp_engine_check_command(katago: KataGoPaths) -> None:
    """`goapp engine check` starts the installed engine and reports its speed."""
    result = subprocess.run(
        [
            *(sys.executable, "-m", "goapp", "engine", "check"),
            *("--katago-dir", str(CACHE), "--visits", "10", "--json"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert katago_version(katago).endswith(report["version"])
    assert report["visits"] >= 10
    assert report["visits_per_second"] > 0
    assert report["best_move"]


@pytest.mark.server
def test_goapp_engine_check_without_engine(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "goapp", "engine", "check", "--katago-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "goapp engine setup" in result.stderr
