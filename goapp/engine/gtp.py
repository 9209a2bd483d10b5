"""A small client for the Go Text Protocol (GTP version 2), as spoken by GNU Go and KataGo.

>>> with GtpClient(["gnugo", "--mode", "gtp"]) as gtp:        # doctest: +SKIP
...     gtp.send("boardsize 9")
...     gtp.play("black", "E5")
...     gtp.genmove("white")
'C3'

:class:`GtpClient` is synchronous (tests, tools). :class:`AsyncGtpClient` has the same
commands for asyncio code such as the server's bot player. Both raise :class:`GtpError`
when the engine answers ``? message``, and :class:`GtpEngineDied` when it exits or does not
answer in time. Commands can be *pipelined* with :meth:`GtpClient.send_many`: GTP answers
in order, so writing many commands before reading saves one round trip per command.
"""

from __future__ import annotations

import asyncio
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Sequence

from goapp.engine.process import stop_process

_BATCH_BYTES = 16384


class GtpError(RuntimeError):
    """The engine refused a command (``? message``)."""

    def __init__(self, command: str, message: str) -> None:
        super().__init__(f"GTP command {command!r} failed: {message}")
        self.command = command
        self.message = message


class GtpEngineDied(RuntimeError):
    """The engine exited, closed its output, or did not answer within the timeout."""


def _check_command(command: str) -> str:
    cmd = command.strip()
    if not cmd or "\n" in cmd or "\r" in cmd:
        raise ValueError(f"a GTP command is one non-empty line, not {command!r}")
    return cmd


def _parse_response(command: str, raw: str) -> str:
    """``raw`` is one response without its final blank line."""
    if not raw or raw[0] not in "=?":
        raise GtpEngineDied(f"malformed GTP response to {command!r}: {raw!r}")
    ok = raw[0] == "="
    body = raw[1:]
    # skip an optional numeric id
    i = 0
    while i < len(body) and body[i].isdigit():
        i += 1
    body = body[i:].strip()
    if not ok:
        raise GtpError(command, body)
    return body


def _parse_responses(cmds: Sequence[str], raws: Sequence[str]) -> list[str]:
    """The answers to a batch of commands, in order. Every answer is read before the first
    error (``?``) is raised, so that the stream stays in step with the commands."""
    out: list[str] = []
    error: GtpError | None = None
    for c, raw in zip(cmds, raws, strict=True):
        try:
            out.append(_parse_response(c, raw))
        except GtpError as exc:
            error = error or exc
            out.append("")
    if error is not None:
        raise error
    return out


class GtpClient:
    """Run an engine as a child process and talk GTP to it over its stdin/stdout."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = 60.0,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.timeout = timeout
        self._proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=cwd,
            env=env,
            bufsize=0,
            start_new_session=True,  # its own process group: close() kills all of it
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._stdin = self._proc.stdin
        self._fd = self._proc.stdout.fileno()
        self._buf = b""
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._fd, selectors.EVENT_READ)

    # -- protocol ------------------------------------------------------------------------

    def _read_response(self, command: str, deadline: float | None) -> str:
        while True:
            end = self._buf.find(b"\n\n")
            if end >= 0:
                raw = self._buf[:end].decode("utf-8", "replace").replace("\r", "")
                self._buf = self._buf[end + 2 :]
                return raw.lstrip("\n")
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._sel.select(timeout):
                raise GtpEngineDied(f"no answer to {command!r} within {self.timeout} s")
            chunk = os.read(self._fd, 65536)
            if not chunk:
                raise GtpEngineDied(f"the engine closed its output (after {command!r})")
            self._buf += chunk.replace(b"\r", b"")

    def send_many(self, commands: Sequence[str]) -> list[str]:
        """Send several commands at once and return their answers in order. If any fails,
        every answer is still read and the first failure is raised as :class:`GtpError`."""
        cmds = [_check_command(c) for c in commands]
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        raws: list[str] = []
        # Write in batches small enough to sit in the pipe buffer (64 KiB on Linux) and read
        # each batch's answers before the next, so neither side can block the other.
        start = 0
        while start < len(cmds):
            end, size = start, 0
            while end < len(cmds) and (end == start or size + len(cmds[end]) < _BATCH_BYTES):
                size += len(cmds[end]) + 1
                end += 1
            try:
                self._stdin.write(("\n".join(cmds[start:end]) + "\n").encode())
            except (BrokenPipeError, OSError) as exc:
                raise GtpEngineDied(f"the engine is gone: {exc}") from exc
            raws.extend(self._read_response(c, deadline) for c in cmds[start:end])
            start = end
        return _parse_responses(cmds, raws)

    def send(self, command: str) -> str:
        """Send one command; return the answer's text (``""`` for a bare ``=``)."""
        return self.send_many([command])[0]

    # -- common commands -----------------------------------------------------------------

    def name(self) -> str:
        return self.send("name")

    def version(self) -> str:
        return self.send("version")

    def list_commands(self) -> list[str]:
        return self.send("list_commands").split()

    def known_command(self, command: str) -> bool:
        return self.send(f"known_command {command}") == "true"

    def boardsize(self, size: int) -> None:
        self.send(f"boardsize {size}")

    def clear_board(self) -> None:
        self.send("clear_board")

    def komi(self, komi: float) -> None:
        self.send(f"komi {komi:g}")

    def play(self, color: str, vertex: str) -> None:
        """``color``: ``"black"``/``"white"`` (or ``b``/``w``); ``vertex``: ``"D4"``/``"pass"``."""
        self.send(f"play {color} {vertex}")

    def genmove(self, color: str) -> str:
        """Ask the engine for a move; returns ``"D4"``, ``"pass"`` or ``"resign"``."""
        answer = self.send(f"genmove {color}")
        low = answer.lower()
        return low if low in ("pass", "resign") else answer.upper()

    # -- lifetime ------------------------------------------------------------------------

    def close(self, timeout: float = 5.0) -> None:
        """Send ``quit`` and wait for the engine to exit (killing it if it does not)."""
        if self._proc.poll() is None:
            try:
                self._stdin.write(b"quit\n")
                self._stdin.flush()
            except OSError:
                pass
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self._proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    self._proc.kill()
                self._proc.wait()
        self._sel.close()
        self._stdin.close()
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    @property
    def returncode(self) -> int | None:
        return self._proc.poll()

    def __enter__(self) -> GtpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncGtpClient:
    """The asyncio twin of :class:`GtpClient`: ``client = await AsyncGtpClient.start(argv)``."""

    def __init__(self, proc: asyncio.subprocess.Process, timeout: float | None) -> None:
        self._proc = proc
        self.timeout = timeout
        self._lock = asyncio.Lock()

    @classmethod
    async def start(cls, argv: Sequence[str], *, timeout: float | None = 60.0) -> AsyncGtpClient:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # its own process group: close() kills all of it
        )
        return cls(proc, timeout)

    async def _read_one(self, command: str) -> str:
        assert self._proc.stdout is not None
        lines: list[str] = []
        while True:
            line = await self._proc.stdout.readline()
            if not line:
                raise GtpEngineDied(f"the engine closed its output (after {command!r})")
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            if text == "":
                if lines:
                    return "\n".join(lines)
                continue
            lines.append(text)

    async def _read_all(self, cmds: list[str]) -> list[str]:
        return [await self._read_one(c) for c in cmds]

    async def send_many(self, commands: Sequence[str]) -> list[str]:
        """Send several commands at once; answers in order (see :meth:`GtpClient.send_many`)."""
        cmds = [_check_command(c) for c in commands]
        assert self._proc.stdin is not None
        async with self._lock:
            try:
                self._proc.stdin.write(("\n".join(cmds) + "\n").encode())
                await self._proc.stdin.drain()
            except (BrokenPipeError, ConnectionResetError) as exc:
                raise GtpEngineDied(f"the engine is gone: {exc}") from exc
            try:
                raws = await asyncio.wait_for(self._read_all(cmds), self.timeout)
            except TimeoutError as exc:
                raise GtpEngineDied(f"no answer within {self.timeout} s") from exc
        return _parse_responses(cmds, raws)

    async def send(self, command: str) -> str:
        return (await self.send_many([command]))[0]

    @property
    def pid(self) -> int:
        return self._proc.pid

    async def close(self, timeout: float = 2.0) -> None:
        """Send ``quit`` and give the engine ``timeout`` s to exit; then SIGTERM and SIGKILL
        its process group (:func:`goapp.engine.process.stop_process`). Never waits for a
        command in progress (GTP reads ``quit`` only after a long ``genmove``), and kills
        the engine even when this close is cancelled."""
        if self._proc.returncode is None:
            try:
                assert self._proc.stdin is not None
                self._proc.stdin.write(b"quit\n")
            except (BrokenPipeError, ConnectionResetError, RuntimeError):
                pass
        await stop_process(self._proc, grace=timeout)


__all__ = ["AsyncGtpClient", "GtpClient", "GtpEngineDied", "GtpError"]
