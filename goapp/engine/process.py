"""Stopping an engine's child process for sure, within a bound.

Engines (KataGo, GNU Go) are started with ``start_new_session=True``: each child leads its
own process group, so a signal to the group also reaches anything it started, and nothing
of the server's own group is hit. :func:`stop_process` is the one way they are stopped:

1. the caller has already asked politely (GTP ``quit``, or KataGo's stdin closed);
2. wait ``grace`` seconds for the process to exit;
3. SIGTERM (and SIGCONT, so a stopped process acts on it) to the group, wait ``term_grace``;
4. SIGKILL to the group and reap it.

If the waiting coroutine is cancelled (a shutdown's ``wait_for`` ran out), the group gets
SIGKILL at once, before the cancellation goes on: a busy engine is never left running
without its server (a GNU Go orphaned at 99% CPU, issue 15).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

__all__ = ["signal_group", "stop_process"]


def signal_group(proc: asyncio.subprocess.Process, sig: int) -> None:
    """Send ``sig`` to ``proc``'s process group (it leads one: ``start_new_session``), or
    to ``proc`` alone when that fails; a process already gone is not an error."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)


async def stop_process(
    proc: asyncio.subprocess.Process, *, grace: float = 2.0, term_grace: float = 1.0
) -> None:
    """Wait up to ``grace`` s for ``proc`` to exit, then SIGTERM its group, then SIGKILL it
    after ``term_grace`` s more; reap it. Cancelled: SIGKILL the group, then re-raise."""
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), grace)
        if proc.returncode is None:
            signal_group(proc, signal.SIGTERM)
            signal_group(proc, signal.SIGCONT)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), term_grace)
        if proc.returncode is None:
            signal_group(proc, signal.SIGKILL)
            await proc.wait()
    except BaseException:
        if proc.returncode is None:
            signal_group(proc, signal.SIGKILL)
            _reap_later(proc)
        raise


_reaping: set[asyncio.Task[int]] = set()


def _reap_later(proc: asyncio.subprocess.Process) -> None:
    """Reap a killed child in the background (the cancelled caller cannot wait), so that
    its pipes and transport are closed while the loop still runs."""
    with contextlib.suppress(RuntimeError):  # no running loop: nothing left to reap with
        task = asyncio.get_running_loop().create_task(proc.wait())
        _reaping.add(task)
        task.add_done_callback(_reaping.discard)
