"""systemd's service notification protocol (``sd_notify``), without a dependency.

With ``Type=notify`` systemd sets ``NOTIFY_SOCKET`` (an AF_UNIX datagram socket; a name
starting with ``@`` is in the abstract namespace) and waits for ``READY=1`` before it
considers the service started. With ``WatchdogSec=`` it also sets ``WATCHDOG_USEC`` and
restarts the service when no ``WATCHDOG=1`` arrives within that time.

goapp sends ``READY=1`` once its sockets listen, ``WATCHDOG=1`` every half watchdog interval
*only while the database answers* (so that a wedged store gets the process restarted), and
``STOPPING=1`` when it shuts down. Outside systemd (no ``NOTIFY_SOCKET``) all of this does
nothing.

The PyInstaller one-file binary runs as two processes: the bootloader (systemd's main PID)
and the Python interpreter, its child. Messages therefore come from a child of the main
PID: the unit needs ``NotifyAccess=all``, and ``WATCHDOG_PID`` may name our parent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping

log = logging.getLogger("goapp.systemd")


class Notifier:
    """Sends state changes to systemd; every method is a no-op outside systemd."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.address = _address(env.get("NOTIFY_SOCKET", ""))
        self.watchdog_interval = _watchdog_interval(env)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *lines: str) -> bool:
        """Send one datagram of ``KEY=VALUE`` lines; False when not under systemd or the
        socket refused it (never raises: notification is best effort)."""
        if self.address is None:
            return False
        data = "\n".join(lines).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.connect(self.address)
                s.sendall(data)
        except OSError as exc:
            log.warning("sd_notify failed", extra={"error": str(exc)})
            return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str = "") -> bool:
        return self.notify("STOPPING=1", *([f"STATUS={status}"] if status else []))


def _address(value: str) -> str | bytes | None:
    if value.startswith("@"):
        return b"\0" + value[1:].encode()  # abstract namespace
    if value.startswith("/"):
        return value
    return None  # unset, or a transport we do not speak (vsock:)


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Seconds between keep-alives (half of ``WATCHDOG_USEC``), or None when disabled."""
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    # The watchdog is meant for the main PID; in the one-file binary that is our parent.
    if pid and pid not in (str(os.getpid()), str(os.getppid())):
        return None
    return usec / 2e6 if usec > 0 else None


async def watchdog_loop(
    notifier: Notifier,
    check: Callable[[], Awaitable[object]],
    *,
    interval: float | None = None,
) -> None:
    """Send ``WATCHDOG=1`` every ``interval`` seconds (default: half of WATCHDOG_USEC) while
    ``check()`` succeeds within that interval; while it fails, send nothing (systemd then
    restarts the service once WatchdogSec passes) and say why in STATUS. Runs until
    cancelled; returns at once when there is no watchdog."""
    interval = interval or notifier.watchdog_interval
    if interval is None or not notifier.enabled:
        return
    loop = asyncio.get_running_loop()
    healthy = True
    while True:
        started = loop.time()
        try:
            # Half the interval at most, so that keep-alives stay within WATCHDOG_USEC.
            await asyncio.wait_for(check(), timeout=interval / 2)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if healthy:
                log.error("health check failed; withholding the watchdog keep-alive",
                          extra={"error": str(exc) or type(exc).__name__})  # fmt: skip
                notifier.status(f"database unavailable: {exc or type(exc).__name__}")
            healthy = False
        else:
            if not healthy:
                log.info("health check passes again; watchdog keep-alive resumed")
                notifier.status("ready")
            healthy = True
            notifier.watchdog()
        await asyncio.sleep(max(0.0, interval - (loop.time() - started)))
