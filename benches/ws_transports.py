"""WebSocket transports side by side (issue 16; benches/README.md, "WebSocket transports").

    .venv/bin/python benches/ws_transports.py                 # 2,000 sockets, 2 rounds, ~2 min
    .venv/bin/python -m benches.ws_transports --connections 10000 --rate 1000 --json out.json

The transports, each a minimal server doing the same thing (join a group, broadcast a
message to its group) in a process of its own:

* ``hooked``: the current gateway's way, with goapp's own pieces
  (:class:`goapp.server.ws_inbox.InboxWebSocketResponse`: aiohttp's reader taken over through
  its private ``_post_start`` and parser queue; a broadcast framed once by
  :func:`goapp._core.encode_ws_text_frame` and the same bytes written straight to every
  member's transport, as the hub and :class:`goapp.bus.conn.Conn` do); the handler awaits
  a future until the socket ends, as ``goapp.server.ws._serve`` does;
* ``aiohttp``: aiohttp's public API only (``async for msg in ws``, ``ws.send_frame``);
* ``picows``: picows's callback API (``WSListener.on_ws_frame``, ``WSTransport.send``), at
  its defaults (aiofastnet's transport, a 16 KiB read buffer per socket);
* ``picows-lean``: the same on the event loop's own transport with a 1 KiB read buffer.

Frames are applied synchronously where they arrive (in the callback, or in the read loop
for ``aiohttp``), so the figures are the transport's, not goapp's (no auth, hub, rules or
database). Servers run on uvloop, pinned to CPU 0; the generator (goapp's load-test client,
:mod:`goapp.loadtest.wsclient`) runs here, pinned to CPU 1. Per transport and round:

1. N sockets connect and each joins group ``i // group_size`` (one text message, answered);
2. the idle cost: the server's RSS and its GC-tracked objects (after ``gc.collect()``, with
   the types that grew) before and after, divided by N;
3. the churn: one ping and one answered message on every socket with the collector off, and
   the objects then in the young generation, per socket;
4. the broadcast: R messages a second for T seconds, each sent by the first member of a
   group (round robin over the groups) and forwarded by the server to every member (the
   sender included): server CPU (``time.process_time`` in the server) per message, and the
   latency from the send to each receipt (p50, p99, max);
5. every socket dropped: the objects a full collection then finds unreachable, per socket.

The transports run interleaved (hooked, aiohttp, picows, picows-lean, then again) so that
the noise of a shared machine spreads over all of them; every round is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benches.load import free_port, pinned, rss_kib  # noqa: E402  (after the path above)

TRANSPORTS = ("hooked", "aiohttp", "picows", "picows-lean")
MAX_MSG_SIZE = 4096

# -- the servers (run in a child process: ``serve TRANSPORT PORT``) ---------------------------


class Groups:
    """What every server does with a text message, whatever the transport.

    ``j G``: join group G (answered ``ok``); ``p G ...``: send the message as it is to every
    member of G; ``c``: the server's CPU seconds; ``g``: a full collection, then the number
    of GC-tracked objects and the 60 most common types."""

    def __init__(self, send: Any, broadcast: Any = None) -> None:
        self.groups: dict[int, list[Any]] = collections.defaultdict(list)
        self.send = send  # send(conn, data): one text message
        self.broadcast = broadcast or self._broadcast  # broadcast(members, data)

    def _broadcast(self, members: list[Any], data: bytes) -> None:
        send = self.send
        for member in members:
            send(member, data)

    def on_text(self, conn: Any, text: str) -> None:
        send = self.send
        kind = text[:1]
        if kind == "p":
            members = self.groups.get(int(text[2 : text.index(" ", 2)]))
            if members:
                self.broadcast(members, text.encode())
        elif kind == "j":
            self.groups[int(text[2:])].append(conn)
            send(conn, b"ok")
        elif kind == "n":
            send(conn, b"ok")
        elif kind == "f":  # the young generation from here on holds what frames leave behind
            gc.collect()
            gc.disable()
            send(conn, b"ok")
        elif kind == "y":
            young = len(gc.get_objects(0))
            gc.enable()
            send(conn, f"y {young}".encode())
        elif kind == "k":  # what a full collection finds unreachable (and frees)
            send(conn, f"k {gc.collect()}".encode())
        elif kind == "c":
            send(conn, f"c {time.process_time()!r}".encode())
        elif kind == "g":
            gc.collect()
            objects = gc.get_objects()
            types = collections.Counter(type(o).__qualname__ for o in objects)
            body = {"objects": len(objects), "types": dict(types.most_common(60))}
            del objects
            send(conn, b"g " + json.dumps(body).encode())

    def drop(self, conn: Any) -> None:
        for members in self.groups.values():
            if conn in members:
                members.remove(conn)


async def serve_hooked(port: int, ready: Any) -> None:
    from aiohttp import WSMsgType, web

    from goapp._core import encode_ws_text_frame
    from goapp.server.ws_inbox import InboxWebSocketResponse

    def send(conn: Any, data: bytes) -> None:
        conn.write(encode_ws_text_frame(data))

    def broadcast(members: list[Any], data: bytes) -> None:
        frame = encode_ws_text_frame(data)  # framed once for every member, as the hub does
        for conn in members:
            conn.write(frame)

    groups = Groups(send, broadcast)

    async def handler(request: web.Request) -> web.StreamResponse:
        transport = request.transport
        assert transport is not None
        done = asyncio.get_running_loop().create_future()

        def on_frame(msg: Any) -> bool:
            if msg.type is WSMsgType.TEXT:
                groups.on_text(transport, msg.data)
                return True
            if msg.type is WSMsgType.PING:
                transport.write(b"\x8a\x00")
                return True
            if msg.type is WSMsgType.PONG:
                return True
            transport.close()  # close, error: the bench's clients never close cleanly
            return True

        def on_eof() -> None:
            if not done.done():
                done.set_result(None)

        ws = InboxWebSocketResponse(
            on_frame=on_frame, on_eof=on_eof, protocols=("goapp.v1",),
            max_msg_size=MAX_MSG_SIZE, autoping=False,
        )  # fmt: skip
        await ws.prepare(request)
        try:
            await done
        finally:
            groups.drop(transport)
        return ws

    await _run_aiohttp(handler, port, ready)


async def serve_aiohttp(port: int, ready: Any) -> None:
    from aiohttp import WSMsgType, web

    pending: list[Any] = []

    def send(ws: Any, data: bytes) -> None:
        pending.append(ws.send_frame(data, WSMsgType.TEXT))

    groups = Groups(send)

    async def handler(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=("goapp.v1",), max_msg_size=MAX_MSG_SIZE)
        await ws.prepare(request)
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    groups.on_text(ws, msg.data)
                    while pending:  # the public API's sends are coroutines
                        await pending.pop()
        finally:
            groups.drop(ws)
        return ws

    await _run_aiohttp(handler, port, ready)


async def _run_aiohttp(handler: Any, port: int, ready: Any) -> None:
    from aiohttp import web

    app = web.Application()
    app.router.add_get("/ws", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    ready()
    await asyncio.Event().wait()


async def serve_picows(
    port: int, ready: Any, *, aiofastnet: bool | None = None, read_buffer: int = 16 * 1024
) -> None:
    from picows import WSListener, WSMsgType, ws_create_server

    text = WSMsgType.TEXT

    def send(transport: Any, data: bytes) -> None:
        transport.send(text, data)

    groups = Groups(send)

    class Listener(WSListener):
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            kind = frame.msg_type
            if kind == text:
                groups.on_text(transport, frame.get_payload_as_utf8_text())
            elif kind == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()

        def on_ws_disconnected(self, transport: Any) -> None:
            groups.drop(transport)

    await ws_create_server(
        lambda request: Listener(), "127.0.0.1", port, max_frame_size=MAX_MSG_SIZE,
        backlog=4096, use_aiofastnet=aiofastnet,
        read_buffer_init_size=read_buffer,
    )  # fmt: skip
    ready()
    await asyncio.Event().wait()


async def serve_picows_lean(port: int, ready: Any) -> None:
    """picows on the event loop's own transport (uvloop's) instead of aiofastnet's, with a
    1 KiB read buffer to start with instead of 16 KiB (it grows for a bigger frame)."""
    await serve_picows(port, ready, aiofastnet=False, read_buffer=1024)


SERVERS = {
    "hooked": serve_hooked,
    "aiohttp": serve_aiohttp,
    "picows": serve_picows,
    "picows-lean": serve_picows_lean,
}


def serve(transport: str, port: int) -> None:
    def ready() -> None:
        print(f"ready {os.getpid()}", flush=True)

    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a goapp dependency on Linux
        asyncio.run(SERVERS[transport](port, ready))
    else:
        uvloop.run(SERVERS[transport](port, ready))


# -- the generator ----------------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


class Probe:
    """Receipts of every socket, and the replies the generator waits for."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.waiters: dict[Any, asyncio.Future[bytes]] = {}

    def on_message(self, client: Any, payload: bytes, now: float) -> None:
        if payload[:1] == b"p":
            t_sent = float(payload.split(b" ", 3)[2])
            self.latencies.append(now - t_sent)
            return
        waiter = self.waiters.pop(client, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(payload)

    def on_close(self, client: Any) -> None:
        waiter = self.waiters.pop(client, None)
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionError("closed"))

    async def ask(self, client: Any, text: str, timeout: float = 60.0) -> bytes:
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.waiters[client] = fut
        client.send_text(text.encode())
        return await asyncio.wait_for(fut, timeout)


async def run_one(transport: str, args: argparse.Namespace, server_cpu: int | None) -> dict:
    from goapp.loadtest.wsclient import connect

    port = free_port()
    cmd = pinned(
        [sys.executable, str(Path(__file__).resolve()), "serve", transport, str(port)], server_cpu
    )
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=subprocess.PIPE, cwd=ROOT)
    assert proc.stdout is not None
    clients: list[Any] = []
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if not line.startswith(b"ready "):
            raise RuntimeError(f"{transport}: the server did not start ({line!r})")
        pid = int(line.split()[1])
        probe = Probe()

        async def open_one() -> Any:
            return await connect("127.0.0.1", port, "/ws", None, probe.on_message, probe.on_close)

        ctrl = await open_one()

        async def census() -> tuple[int, dict[str, int], int]:
            body = json.loads((await probe.ask(ctrl, "g"))[2:])
            await asyncio.sleep(0.2)  # let freed memory settle before reading RSS
            return body["objects"], body["types"], rss_kib(pid)

        async def cpu() -> float:
            return float((await probe.ask(ctrl, "c"))[2:])

        objects0, types0, rss0 = await census()
        n, size = args.connections, args.group_size
        sem = asyncio.Semaphore(100)

        async def join(i: int) -> Any:
            async with sem:
                client = await open_one()
                reply = await probe.ask(client, f"j {i // size}")
                assert reply == b"ok", reply
                return client

        t0 = time.perf_counter()
        clients = list(await asyncio.gather(*(join(i) for i in range(n))))
        connect_s = time.perf_counter() - t0
        objects1, types1, rss1 = await census()
        grew = {k: types1.get(k, 0) - types0.get(k, 0) for k in types1}
        grew_per_conn = {
            k: round(v / n, 2) for k, v in sorted(grew.items(), key=lambda kv: -kv[1]) if v >= n
        }
        async_kinds = ("coroutine", "Task", "Future", "FutureIter", "_GatheringFuture")
        async_objects = sum(max(0, grew.get(k, 0)) for k in async_kinds) / n

        # What one frame on every socket leaves alive (a ping, as goapp's pinger sends
        # every 20 s, then a message answered): what the next young collection walks.
        assert await probe.ask(ctrl, "f") == b"ok"
        for client in clients:
            client.send_frame(0x9, b"")

        async def noop(client: Any) -> None:
            async with sem:
                assert await probe.ask(client, "n") == b"ok"

        await asyncio.gather(*(noop(c) for c in clients))
        young_per_conn = int((await probe.ask(ctrl, "y"))[2:]) / n

        # The broadcast.
        groups = n // size
        senders = [clients[g * size] for g in range(groups)]
        pad = "x" * max(0, args.size - 40)
        total = int(args.rate * args.duration)
        probe.latencies.clear()
        cpu0 = await cpu()
        loop = asyncio.get_running_loop()
        start = loop.time()
        sent = 0
        while sent < total:
            due = min(total, int((loop.time() - start) * args.rate) + 1)
            while sent < due:
                g = sent % groups
                senders[g].send_text(f"p {g} {time.perf_counter()!r} {pad}".encode())
                sent += 1
            await asyncio.sleep(max(0.0, start + sent / args.rate - loop.time()))
        send_s = loop.time() - start
        expected = total * size
        deadline = loop.time() + 10.0
        while len(probe.latencies) < expected and loop.time() < deadline:
            await asyncio.sleep(0.02)
        cpu1 = await cpu()
        lat = sorted(probe.latencies)

        # The sockets go away (dropped, as a vanished client does): the reference cycles they
        # leave for a full collection, and whatever stays after it.
        await probe.ask(ctrl, "k")
        for client in clients:
            client.abort()
        clients = []
        await asyncio.sleep(2.0)
        cyclic = int((await probe.ask(ctrl, "k"))[2:])
        objects2, _, rss2 = await census()
        return {
            "transport": transport,
            "connections": n,
            "connect_s": round(connect_s, 2),
            "rss_kib_before": rss0,
            "rss_kib_after": rss1,
            "rss_bytes_per_conn": round((rss1 - rss0) * 1024 / n),
            "gc_objects_before": objects0,
            "gc_objects_after": objects1,
            "gc_objects_per_conn": round((objects1 - objects0) / n, 2),
            "async_objects_per_conn": round(async_objects, 2),
            "young_objects_per_frame": round(young_per_conn, 2),
            "cyclic_garbage_per_closed_conn": round(cyclic / n, 2),
            "gc_objects_left_per_closed_conn": round((objects2 - objects0) / n, 2),
            "rss_kib_closed": rss2,
            "types_per_conn": grew_per_conn,
            "messages": total,
            "rate": args.rate,
            "send_s": round(send_s, 2),
            "deliveries_expected": expected,
            "deliveries": len(lat),
            "server_cpu_s": round(cpu1 - cpu0, 4),
            "cpu_us_per_message": round((cpu1 - cpu0) / total * 1e6, 1),
            "p50_ms": round(percentile(lat, 0.50) * 1000, 3),
            "p99_ms": round(percentile(lat, 0.99) * 1000, 3),
            "max_ms": round(lat[-1] * 1000, 3) if lat else float("nan"),
        }
    finally:
        for client in clients:
            client.abort()
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def table(results: list[dict]) -> str:
    head = (
        "| round | transport | RSS/conn | GC objs/conn | async objs/conn | young objs/frame "
        "| cycles/closed conn | CPU/msg | p50 | p99 | max | delivered |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    rows = [
        f"| {r['round']} | {r['transport']} | {r['rss_bytes_per_conn'] / 1024:.1f} KiB "
        f"| {r['gc_objects_per_conn']} | {r['async_objects_per_conn']} "
        f"| {r['young_objects_per_frame']} | {r['cyclic_garbage_per_closed_conn']} "
        f"| {r['cpu_us_per_message']} µs | {r['p50_ms']} ms | {r['p99_ms']} ms "
        f"| {r['max_ms']} ms | {r['deliveries']}/{r['deliveries_expected']} |"
        for r in results
    ]
    return "\n".join([head, *rows])


async def main_async(args: argparse.Namespace) -> list[dict]:
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu = None
    if len(cpus) >= 2:
        server_cpu = cpus[0]
        os.sched_setaffinity(0, {cpus[1]})
    results = []
    for rnd in range(1, args.rounds + 1):
        for transport in args.transports:
            r = await run_one(transport, args, server_cpu)
            r["round"] = rnd
            results.append(r)
            print(
                f"round {rnd} {transport}: {r['rss_bytes_per_conn'] / 1024:.1f} KiB/conn, "
                f"{r['gc_objects_per_conn']} GC objs/conn, "
                f"{r['young_objects_per_frame']} young objs/frame, "
                f"{r['cpu_us_per_message']} µs/msg, "
                f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, "
                f"{r['deliveries']}/{r['deliveries_expected']} delivered",
                flush=True,
            )
    return results


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="hooked aiohttp gateway vs aiohttp's public API vs picows, interleaved"
    )
    ap.add_argument("--connections", type=int, default=2000, help="idle sockets (2000)")
    ap.add_argument("--group-size", type=int, default=5, help="sockets per group (5)")
    ap.add_argument("--rate", type=float, default=500.0, help="broadcasts a second (500)")
    ap.add_argument("--duration", type=float, default=10.0, help="broadcast seconds (10)")
    ap.add_argument("--size", type=int, default=200, help="bytes per broadcast message (200)")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds (2)")
    ap.add_argument(
        "--transports", default=",".join(TRANSPORTS), help="comma-separated, in run order"
    )
    ap.add_argument("--json", metavar="FILE", help="also write every run's figures here")
    args = ap.parse_args(argv)
    args.transports = [t for t in args.transports.split(",") if t]
    unknown = set(args.transports) - set(TRANSPORTS)
    if unknown:
        ap.error(f"unknown transport(s): {', '.join(sorted(unknown))}")
    if args.connections < args.group_size:
        ap.error("--connections must be at least --group-size")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        serve(argv[1], int(argv[2]))
        return 0
    args = parse_args(argv)
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.connections * 2 + 256  # the server inherits it
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    results = asyncio.run(main_async(args))
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
