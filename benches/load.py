"""One-instance load benchmarks (benches/README.md, "Load"); not part of ``make test``.

Starts a real server, runs ``goapp loadtest``'s scenario against it from this process and
prints (and with ``--json`` writes) the report plus the server's memory:

    .venv/bin/python benches/load.py                      # the regression: 1k clients, 200 moves/s
    .venv/bin/python benches/load.py --clients 10000 --games 2000 --rate 1000 --duration 300
    .venv/bin/python benches/load.py --server-gc-freeze off ...   # the collector left alone
    .venv/bin/python benches/load.py --target node ...    # the Node.js ws server (benches/node_ws)
    .venv/bin/python benches/load.py --idle 10000         # server RSS per idle connection

The server and the generator are pinned to different cores with ``taskset`` /
``sched_setaffinity`` (server on CPU 0, generator on CPU 1) when the machine has two or
more. The server runs on SQLite in a fresh temporary directory (``--database-url`` for
PostgreSQL), with ``synchronous=FULL`` unless ``--sqlite-synchronous NORMAL``.

``--max-p99 MS`` turns the run into a check: exit status 1 when move->broadcast p99 is
above it, or when any event was lost or duplicated (``make loadtest`` uses 20 ms, the
seed's floor).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from goapp.loadtest import LoadConfig, format_report, run_loadtest  # noqa: E402
from goapp.loadtest.wsclient import WsClient, connect  # noqa: E402
from goapp.settings import load_settings  # noqa: E402

#: Runs ``goapp serve`` with a collector callback that times every collection and writes
#: them at exit to the file named by LOAD_GC_LOG (benchmark instrumentation only: the
#: server itself is unchanged; ``gc.callbacks`` costs a few µs a collection). With
#: LOAD_GC_CENSUS=DIR (``--gc-census``), the first three young collections after the file
#: DIR/driving appears (the bench creates it when the load starts) also write
#: DIR/census-N.json: the young generation's objects by type, with their references
#: (what a collection walks; slow, so only three). SIGUSR1 makes it run a full collection.
GC_WRAPPER = """
import atexit, collections, gc, json, os, signal, sys, time
import goapp.server.app
from goapp.cli import main
if os.environ.get("LOAD_GC_THRESHOLDS"):  # --gc-thresholds: what tune_gc sets
    goapp.server.app.GC_THRESHOLDS = tuple(map(int, os.environ["LOAD_GC_THRESHOLDS"].split(",")))
census_dir = os.environ.get("LOAD_GC_CENSUS")
pauses = []
state = {"census": 0}
def census():
    young = gc.get_objects(0)
    types, refs = collections.Counter(), collections.Counter()
    for o in young:
        name = type(o).__qualname__
        types[name] += 1
        refs[name] += len(gc.get_referents(o))
    state["census"] += 1
    with open(os.path.join(census_dir, f"census-{state['census']}.json"), "w") as fh:
        json.dump({"at": time.time(), "count": gc.get_count(), "objects": len(young),
                   "types": types.most_common(50), "references": refs.most_common(50)}, fh)
def cb(phase, info):
    if phase == "start":
        if (census_dir and info["generation"] == 0 and state["census"] < 3
                and os.path.exists(os.path.join(census_dir, "driving"))):
            census()
        state["count"] = gc.get_count()
        state["t"] = time.perf_counter()
    else:
        ms = (time.perf_counter() - state["t"]) * 1000
        pauses.append((time.time(), info["generation"], round(ms, 3), state["count"],
                       info["collected"]))
gc.callbacks.append(cb)
signal.signal(signal.SIGUSR1, lambda *_: gc.collect())  # --gc-full-at: a full collection
def dump():
    with open(os.environ["LOAD_GC_LOG"], "w") as fh:
        json.dump(pauses, fh)
atexit.register(dump)
sys.exit(main(sys.argv[1:]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pinned(cmd: list[str], cpu: int | None) -> list[str]:
    if cpu is None or shutil.which("taskset") is None:
        return cmd
    return ["taskset", "-c", str(cpu), *cmd]


class Server:
    def __init__(
        self, args: argparse.Namespace, data: Path, cpu: int | None = None, secret: str = ""
    ) -> None:
        self.args = args
        self.data = data
        self.cpu = cpu
        self.secret = secret
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[str] | None = None
        self.gc_log: Path | None = None

    def gc_stats(self, window: tuple[float, float]) -> dict[str, Any] | None:
        """The collector's pauses while the load was driven (after :meth:`stop`)."""
        if self.gc_log is None or not self.gc_log.exists():
            return None
        # [[wall time, generation, ms, gc.get_count() at start, objects collected], ...]
        pauses = json.loads(self.gc_log.read_text())
        out: dict[str, Any] = {
            "slow": [  # every pause over 20 ms, seconds into the run
                [round(p[0] - window[0], 1), *p[1:]]
                for p in pauses
                if p[2] > 20 and window[0] <= p[0] <= window[1]
            ]
        }
        for gen in (0, 1, 2):
            ms = sorted(p[2] for p in pauses if p[1] == gen and window[0] <= p[0] <= window[1])
            out[f"gen{gen}"] = {
                "count": len(ms),
                "total_ms": round(sum(ms), 1),
                "max_ms": round(ms[-1], 2) if ms else 0.0,
                "over_10ms": sum(1 for x in ms if x > 10),
            }
        return out

    def start(self) -> None:
        a = self.args
        env = {k: v for k, v in os.environ.items() if not k.startswith("GOAPP_")}
        if a.target == "node":
            node_dir = ROOT / "benches" / "node_ws"
            if not (node_dir / "node_modules" / "ws").exists():
                subprocess.run(["npm", "ci", "--silent"], cwd=node_dir, check=True)
            cmd = ["node", str(node_dir / "server.js"), "--port", str(self.port)]
        else:
            env.update(
                GOAPP_LOG_LEVEL="warning",
                GOAPP_ENGINE="none",
                GOAPP_GC_FREEZE="true" if a.server_gc_freeze == "on" else "false",
                GOAPP_SQLITE_SYNCHRONOUS=a.sqlite_synchronous,
                GOAPP_METRICS_LISTEN="127.0.0.1:0",  # several instances: not all on 9464
                GOAPP_WS_MAX_PER_IP="0",  # every client connects from 127.0.0.1
            )
            cmd = [sys.executable, "-c", GC_WRAPPER, "serve", "--port", str(self.port),
                   "--ws-port", "0", "--data-dir", str(self.data)]  # fmt: skip
            self.gc_log = self.data.parent / f"gc-{self.port}.json"
            env["LOAD_GC_LOG"] = str(self.gc_log)
            if a.gc_thresholds:
                env["LOAD_GC_THRESHOLDS"] = a.gc_thresholds
            if a.gc_census:
                env["LOAD_GC_CENSUS"] = a.gc_census
            if a.database_url:
                cmd += ["--database-url", a.database_url]
            if a.redis_url:
                env["GOAPP_REDIS_URL"] = a.redis_url
            if self.secret:  # several instances sign and check tokens with one secret
                env["GOAPP_JWT_SECRET"] = self.secret
        self.proc = subprocess.Popen(
            pinned(cmd, self.cpu),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        out = self.proc.stdout
        assert out is not None
        deadline = time.monotonic() + 60
        line = ""
        while time.monotonic() < deadline:
            if not select.select([out], [], [], 1.0)[0]:
                continue
            line = out.readline()
            if not line or "running at" in line:
                break
        else:
            raise RuntimeError("the server did not say it was running within 60 s")
        if self.proc.poll() is not None:
            raise RuntimeError(f"the server exited at start: {line}")
        # keep reading its output so that a chatty server never blocks on a full pipe
        threading.Thread(target=lambda: [None for _ in out], daemon=True).start()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def idle_memory(server: Server, n: int) -> dict[str, Any]:
    """Server RSS with ``n`` idle guest sockets open against none (after a settle)."""
    host, port = "127.0.0.1", server.port
    await asyncio.sleep(1.0)
    before = rss_kib(server.pid)
    sem = asyncio.Semaphore(100)
    clients: list[WsClient] = []

    async def one() -> None:
        async with sem:
            clients.append(await connect(host, port, "/ws", None, lambda *_: None, lambda _c: None))

    await asyncio.gather(*(one() for _ in range(n)))
    await asyncio.sleep(3.0)
    during = rss_kib(server.pid)
    for c in clients:
        c.close()
    await asyncio.sleep(1.0)
    return {
        "idle_connections": n,
        "server_rss_kib_before": before,
        "server_rss_kib_with_idle": during,
        "bytes_per_idle_connection": round((during - before) * 1024 / n),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="goapp-load-") as tmp:
        secret = os.urandom(32).hex() if args.instances > 1 else ""
        ncpu = os.cpu_count() or 1
        cpus = [
            None if args.server_cpu is None else (args.server_cpu + i) % ncpu
            for i in range(args.instances)
        ]
        servers = [Server(args, Path(tmp) / f"data{i}", cpu, secret) for i, cpu in enumerate(cpus)]
        marks: dict[str, float] = {}
        if args.gc_census:
            Path(args.gc_census).mkdir(parents=True, exist_ok=True)
            Path(args.gc_census, "driving").unlink(missing_ok=True)
        for srv in servers:
            srv.start()
            print(f"server pid {srv.pid} at {srv.url}", file=sys.stderr, flush=True)
        server = servers[0]
        try:
            if args.idle:
                return await idle_memory(server, args.idle)
            cfg = LoadConfig(
                urls=[srv.url for srv in servers],
                clients=args.clients,
                games=args.games,
                spectators=args.spectators,
                rate=args.rate,
                duration=args.duration,
                chat_rate=args.chat_rate,
                reconnects=args.reconnects,
                drain=args.drain,
                bare=args.target == "node",
            )
            settings = None
            if args.target != "node":
                overrides = {"data_dir": str(server.data), "database_url": args.database_url}
                env = {"GOAPP_JWT_SECRET": secret} if secret else {}
                settings = load_settings(env=env, overrides=overrides)
            rss_before = sum(rss_kib(srv.pid) for srv in servers)

            def progress(msg: str) -> None:
                # server CPU over the driven part only (not setup, connect or drain)
                if msg.startswith("connected"):
                    if args.gc_census:  # the servers' census starts with the load
                        Path(args.gc_census, "driving").touch()
                    if args.gc_full_at is not None and args.target == "goapp":
                        for srv in servers:
                            t = threading.Timer(args.gc_full_at, os.kill, (srv.pid, signal.SIGUSR1))
                            t.daemon = True
                            t.start()
                    marks["wall0"] = time.time()
                    marks["cpu0"] = sum(cpu_s(srv.pid) for srv in servers)
                    marks["rss_connected"] = sum(rss_kib(srv.pid) for srv in servers)
                elif msg.startswith("drove"):
                    marks["wall1"] = time.time()
                    marks["cpu1"] = sum(cpu_s(srv.pid) for srv in servers)
                print(msg, file=sys.stderr, flush=True)

            report = await run_loadtest(cfg, settings, progress=progress)
            report["server"] = {
                "target": args.target,
                "instances": args.instances,
                "gc_freeze": args.server_gc_freeze,
                "gc_thresholds": args.gc_thresholds,
                "sqlite_synchronous": args.sqlite_synchronous,
                "database": "postgresql" if args.database_url else "sqlite",
                "rss_kib_before": rss_before,
                "rss_kib_connected": marks.get("rss_connected"),
                "rss_kib_after": sum(rss_kib(srv.pid) for srv in servers),
                "cpu_s_driving": round(marks["cpu1"] - marks["cpu0"], 2),
                "cpu_us_per_move": round(
                    (marks["cpu1"] - marks["cpu0"])
                    / max(1.0, report["moves_per_s"] * report["duration_s"])
                    * 1e6,
                    1,
                ),
                "server_cpu": cpus,
                "generator_cpu": args.generator_cpu,
            }
        finally:
            for srv in servers:
                srv.stop()
        window = (marks["wall0"], marks["wall1"])
        report["server"]["gc"] = [srv.gc_stats(window) for srv in servers]
        return report


def main(argv: list[str] | None = None) -> int:
    two = (os.cpu_count() or 1) >= 2
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target", choices=("goapp", "node"), default="goapp")
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--games", type=int, default=200)
    p.add_argument("--spectators", type=int, default=1)
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--chat-rate", type=float, default=0.0)
    p.add_argument("--reconnects", type=int, default=0)
    p.add_argument("--drain", type=float, default=15.0)
    p.add_argument("--idle", type=int, default=0, help="measure N idle sockets instead")
    p.add_argument("--server-gc-freeze", choices=("on", "off"), default="on")
    p.add_argument("--gc-thresholds", default=None, metavar="A,B,C", help="override GC_THRESHOLDS")
    p.add_argument(
        "--gc-full-at",
        type=float,
        default=None,
        metavar="S",
        help="make each server run a full collection S seconds into the load (its cost)",
    )
    p.add_argument(
        "--gc-census",
        default=None,
        metavar="DIR",
        help="write what the server's first 3 young collections under load walk, by type",
    )
    p.add_argument("--sqlite-synchronous", choices=("FULL", "NORMAL"), default="FULL")
    p.add_argument("--database-url", default=None, help="PostgreSQL instead of SQLite")
    p.add_argument("--redis-url", default=None, help="Redis bus (needed by --instances 2+)")
    p.add_argument(
        "--instances",
        type=int,
        default=1,
        help="goapp instances sharing --database-url and --redis-url, pinned to "
        "consecutive cores from --server-cpu; clients spread over them",
    )
    p.add_argument("--server-cpu", type=int, default=0 if two else None)
    p.add_argument("--generator-cpu", type=int, default=1 if two else None)
    p.add_argument("--max-p99", type=float, default=None, help="fail above this p99 (ms)")
    p.add_argument("--json", default=None, help="write the report here")
    args = p.parse_args(argv)
    if args.instances > 1 and not (args.database_url and args.redis_url):
        p.error("--instances 2+ needs --database-url (PostgreSQL) and --redis-url")
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        report = asyncio.run(main_async(args))
    else:
        report = uvloop.run(main_async(args))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if args.idle:
        print(json.dumps(report, indent=2))
        return 0
    print(format_report(report))
    srv = report["server"]
    print(
        f"server ({srv['target']}, gc_freeze {srv['gc_freeze']}, {srv['database']}): RSS "
        f"{srv['rss_kib_before'] / 1024:.0f} MiB before, {srv['rss_kib_after'] / 1024:.0f} MiB "
        f"after; CPU {srv['cpu_s_driving']} s while driving ({srv['cpu_us_per_move']} us a "
        f"move); load average {os.getloadavg()[0]:.2f}"
    )
    p99 = report["latency_ms"]["move_broadcast"]["p99"]
    if not report["ok"]:
        return 1
    if args.max_p99 is not None and (p99 is None or p99 > args.max_p99):
        print(f"FAILED: move->broadcast p99 {p99} ms > {args.max_p99} ms", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
