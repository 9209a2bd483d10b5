"""Closing an engine kills its process group within a bound, busy or not, cancelled or not
(issue 15: a busy GNU Go held a shutdown 28 s and was once left running at 99% CPU).

Real GNU Go thinking about a hard 19x19 position (minutes of work queued), real KataGo on
the test model in a search of a million visits, then hung (SIGSTOP). After each close, /proc
must hold no live process of the engine's group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

import pytest
from engine_support import busy_position, cpu_ticks, group_alive, until

from goapp.engine.errors import EngineError
from goapp.engine.facade import GnuGoBackend, find_gnugo
from goapp.engine.katago import AnalysisQuery, KataGoEngine
from goapp.engine.setup import KataGoPaths

pytestmark = [
    pytest.mark.timeout(900),
    pytest.mark.gnugo,
]  # busy GNU Go processes; the session's KataGo fixture may tune OpenCL first

#: Longest a close may take: 2 s for the engine to act on quit (or stdin closed), 1 s after
#: SIGTERM, then SIGKILL (goapp.engine.process.stop_process).
CLOSE_BOUND_S = 5.0
#: How soon a cancelled close must have killed the group (it sends SIGKILL at once).
CANCEL_BOUND_S = 2.0
#: CPU time (clock ticks, 1/100 s) after which a child counts as busy thinking: replaying
#: the position costs a few ticks, the search itself the rest.
BUSY_TICKS = 20


def children(name: str) -> list[int]:
    """Live child processes of this test process whose command is ``name``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        if comm == name and int(fields[1]) == os.getpid() and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def kill_leftovers(pids: list[int]) -> None:
    """After a failed assertion: never leave an engine running on the shared machine."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


async def busy_gnugo() -> tuple[GnuGoBackend, list[asyncio.Task[object]], list[int]]:
    """GNU Go with two long bot moves and an estimate of :func:`busy_position` in progress
    or queued; returns the engine, the query tasks and the GNU Go process ids, once every
    GNU Go process is busy thinking."""
    gnugo = find_gnugo()
    assert gnugo is not None, "GNU Go is required (apt-get install gnugo)"
    engine = GnuGoBackend(gnugo)
    await engine.start()
    pos = busy_position()
    tasks: list[asyncio.Task[object]] = [
        asyncio.create_task(engine.genmove(pos, gnugo_level=10)),
        asyncio.create_task(engine.genmove(pos, gnugo_level=10)),
        asyncio.create_task(engine.estimate(pos)),
    ]

    def thinking() -> bool:
        pids = children("gnugo")
        return bool(pids) and all(cpu_ticks(p) > BUSY_TICKS for p in pids)

    await until(thinking, 60, "GNU Go thinking")
    return engine, tasks, children("gnugo")


async def test_busy_gnugo_closes_within_bound_and_leaves_no_process() -> None:
    engine, tasks, pids = await busy_gnugo()
    try:
        started = time.monotonic()
        await asyncio.wait_for(engine.close(), 60)
        elapsed = time.monotonic() - started
        assert elapsed < CLOSE_BOUND_S, f"close took {elapsed:.1f} s"
        for pid in pids:
            assert group_alive(pid) == [], f"GNU Go {pid} (or its group) survived the close"
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)
        # the queries in progress or waiting fail with a typed engine error, none hangs
        assert all(isinstance(r, EngineError) for r in results), results
    finally:
        kill_leftovers(pids)


async def test_cancelled_close_still_kills_busy_gnugo() -> None:
    engine, tasks, pids = await busy_gnugo()
    try:
        closing = asyncio.create_task(engine.close())
        await asyncio.sleep(0.3)  # inside the close: quit sent, waiting for the exit
        closing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await closing
        await until(
            lambda: all(group_alive(pid) == [] for pid in pids),
            CANCEL_BOUND_S,
            "the GNU Go processes killed by the cancelled close",
        )
    finally:
        kill_leftovers(pids)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def busy_katago(katago: KataGoPaths) -> tuple[KataGoEngine, asyncio.Task[object], int]:
    """A KataGo in the middle of a long search, then hung (SIGSTOP); returns the engine,
    the search's task and KataGo's process id."""
    engine = KataGoEngine.from_paths(katago, query_timeout=None)
    await engine.start(wait=False)
    await engine.wait_up(600)
    search = AnalysisQuery(moves=[], board_x_size=19, board_y_size=19, max_visits=1_000_000)
    task: asyncio.Task[object] = asyncio.create_task(engine.analyze_turns(search))
    pids = children("katago") or children("AppRun")
    assert pids, "KataGo is not a child of this process"
    await until(lambda: engine.queue_depth == 0 and engine.stats()["queries_total"] == 1, 10)
    await asyncio.sleep(1.0)  # searching
    # Hung, as a stuck GPU driver leaves it: it reads no stdin and exits on nothing polite
    # (a healthy KataGo exits promptly once its stdin closes).
    os.kill(pids[0], signal.SIGSTOP)
    return engine, task, pids[0]


async def test_hung_katago_closes_within_bound_even_when_cancelled(katago: KataGoPaths) -> None:
    # closed and waited for: within the bound
    engine, task, pid = await busy_katago(katago)
    try:
        started = time.monotonic()
        await asyncio.wait_for(engine.close(), 60)
        elapsed = time.monotonic() - started
        assert elapsed < CLOSE_BOUND_S, f"close took {elapsed:.1f} s"
        assert group_alive(pid) == []
        with pytest.raises(EngineError):
            await asyncio.wait_for(task, 5)
    finally:
        kill_leftovers([pid])

    # closed, and the close cancelled (a shutdown's wait ran out): killed all the same
    engine, task, pid = await busy_katago(katago)
    try:
        closing = asyncio.create_task(engine.close())
        await asyncio.sleep(0.3)  # stdin closed, waiting for an exit that never comes
        closing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await closing
        await until(lambda: group_alive(pid) == [], CANCEL_BOUND_S, "KataGo killed")
        with pytest.raises(EngineError):
            await asyncio.wait_for(task, 5)
    finally:
        kill_leftovers([pid])
