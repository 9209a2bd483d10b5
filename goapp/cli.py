"""The ``goapp`` command: ``serve``, ``db``, ``engine``, ``bench``, ``loadtest``, ``settings``,
``version``.

Each subcommand is a thin shell around a function of the package, so that tests and other
tools call the same code the command line does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

from goapp import __version__
from goapp.settings import SettingsError, load_settings, setting_specs


def _settings_epilog() -> str:
    lines = ["settings (TOML key = environment variable, default):"]
    for spec in setting_specs():
        default = "(empty)" if spec.default == "" else spec.default
        extra = f", {spec.env}_FILE" if spec.secret else ""
        lines.append(f"  {spec.name} = {spec.env}{extra} [{default}]")
        lines.append(f"      {spec.help}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="goapp",
        description="A self-hosted server for the game of Go.",
    )
    parser.add_argument("--version", action="version", version=f"goapp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser(
        "serve",
        help="run the server",
        description="Run the goapp server (SQLite in DATA_DIR unless DATABASE_URL is set).",
        epilog=_settings_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--config", metavar="FILE", help="TOML settings file")
    serve.add_argument("--host", help="listen address")
    serve.add_argument("--port", type=int, help="HTTP port")
    serve.add_argument("--ws-port", type=int, help="WebSocket port (0: only /ws on HTTP port)")
    serve.add_argument("--data-dir", help="data directory")
    serve.add_argument("--database-url", help="database URL (sqlite:///... or postgresql://...)")

    db = sub.add_parser("db", help="database administration")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    for name, text in (("migrate", "apply pending migrations"), ("status", "list migrations")):
        p = db_sub.add_parser(name, help=text)
        p.add_argument("--config", metavar="FILE", help="TOML settings file")
        p.add_argument("--database-url", help="database URL (default: from settings)")
    copy = db_sub.add_parser(
        "copy", help="copy a whole database (for example SQLite into PostgreSQL), verified"
    )
    copy.add_argument("--from", dest="src", required=True, metavar="URL")
    copy.add_argument("--to", dest="dst", required=True, metavar="URL")
    backup = db_sub.add_parser("backup", help="consistent online backup of the SQLite database")
    backup.add_argument("--to", dest="dest", required=True, metavar="FILE")
    backup.add_argument("--config", metavar="FILE", help="TOML settings file")
    backup.add_argument("--database-url", help="database URL (default: from settings)")

    engine = sub.add_parser("engine", help="KataGo: install it, check it, serve it")
    engine_sub = engine.add_subparsers(dest="engine_command", metavar="ACTION", required=True)
    from goapp.engine import setup as engine_setup

    setup = engine_sub.add_parser(
        "setup",
        help="install KataGo and a model into DEST and tune it (no pip needed)",
        description="Download KataGo (the OpenCL build in the katrain wheel) and a model from "
        "the package index (sha256 checked, resumable), unpack them into DEST, and start "
        "KataGo once so that it tunes OpenCL now rather than at the server's first start. "
        "Everything KataGo writes stays under DEST. Offline: --wheel and --model. "
        "See docs/engine.md.",
    )
    engine_setup.add_arguments(setup)
    check = engine_sub.add_parser(
        "check", help="start KataGo, run one query, print its speed (visits/s)"
    )
    check.add_argument("--katago-dir", default=".katago", help="install folder (default .katago)")
    check.add_argument("--visits", type=int, default=100, help="visits of the test query")
    check.add_argument("--json", action="store_true", help="print JSON")
    serve_engine = engine_sub.add_parser(
        "serve",
        help="serve KataGo to remote game servers (engine_url), secret engine_secret",
        description="Serve KataGo over HTTP to game servers (their engine_url). Every request "
        "needs Authorization: Bearer ENGINE_SECRET (at least 16 characters; unset: one is "
        "made in DATA_DIR/engine_secret, mode 0600, and its path printed). Wrong secrets "
        "are throttled per client address (429). See docs/engine.md.",
    )
    serve_engine.add_argument(
        "--listen", default="127.0.0.1:4100", metavar="HOST:PORT", help="default 127.0.0.1:4100"
    )
    serve_engine.add_argument("--config", metavar="FILE", help="TOML settings file")
    serve_engine.add_argument(
        "--katago-dir",
        help="KataGo installation (default: katago_binary, DATA_DIR/katago, .katago)",
    )

    bench = sub.add_parser("bench", help="measure this machine")
    bench_sub = bench.add_subparsers(dest="bench_command", metavar="WHAT", required=True)
    core = bench_sub.add_parser("core", help="rules core: ns per playout move, µs per play")
    core.add_argument("--seconds", type=float, default=3.0, help="time budget (default 3)")
    core.add_argument("--json", action="store_true", help="print JSON")
    report = bench_sub.add_parser(
        "report",
        help="saved benchmark runs (make bench-save) as a Markdown table and SVG trend plots",
        description="Read the runs saved under STORAGE by `make bench-save` (pytest-benchmark "
        "JSON), order them by commit time and write OUT/report.md (runs, machines, each "
        "benchmark's minimum per run) and OUT/svg/<benchmark>.svg (min and median over the "
        "commits). See benches/README.md.",
    )
    report.add_argument("--storage", default=".benchmarks", help="saved runs (.benchmarks)")
    report.add_argument("--out", default="bench-report", help="output folder (bench-report)")
    report.add_argument("--last", type=int, default=8, help="runs shown (default 8)")

    settings = sub.add_parser("settings", help="print the effective settings (secrets masked)")
    settings.add_argument("--config", metavar="FILE", help="TOML settings file")
    settings.add_argument("--markdown", action="store_true", help="print the settings table")

    _add_loadtest(sub)

    sub.add_parser("version", help="print version and build information")
    return parser


def _add_loadtest(sub: Any) -> None:
    """``goapp loadtest``: the WebSocket load generator (goapp/loadtest, docs/loadtest.md)."""
    lt = sub.add_parser(
        "loadtest",
        help="drive a running server with many WebSocket clients (loopback only)",
        description="Open CLIENTS WebSocket clients against a running goapp server (real "
        "protocol: accounts and games are made with the server's settings, moves, spectators, "
        "chat, reconnects), drive RATE moves/s for DURATION seconds and report action->ack "
        "and move->broadcast latency percentiles, messages/s, errors, lost and duplicated "
        "events. Exit status 1 on any lost or duplicated event or error. Pass the server's "
        "--config/--data-dir/--database-url: the generator creates its accounts (lt_N, no "
        "password) in that database and signs tokens with that secret (docs/loadtest.md). "
        "Hard caps: 20,000 clients, 900 s, 50,000 moves/s.",
    )
    lt.add_argument(
        "--url",
        action="append",
        metavar="URL",
        help="server base URL, http://127.0.0.1:4000 (repeat for several instances; "
        "clients are spread round-robin)",
    )
    lt.add_argument("--clients", type=int, default=200, help="WebSocket clients (default 200)")
    lt.add_argument("--games", type=int, default=40, help="games, 2 players each (default 40)")
    lt.add_argument(
        "--spectators",
        type=int,
        default=1,
        metavar="K",
        help="games each spectator client watches; spectators are the clients beyond "
        "2 x games (default 1)",
    )
    lt.add_argument("--rate", type=float, default=100.0, help="moves/s, all games (default 100)")
    lt.add_argument("--duration", type=float, default=10.0, help="seconds to drive (default 10)")
    lt.add_argument("--chat-rate", type=float, default=0.0, help="chat lines/s (default 0)")
    lt.add_argument(
        "--reconnects",
        type=int,
        default=0,
        help="connections dropped and resumed during the run (default 0)",
    )
    lt.add_argument("--drain", type=float, default=10.0, help="seconds to wait for the last events")
    lt.add_argument("--json", metavar="PATH", help="write the JSON report to PATH ('-': stdout)")
    lt.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow non-loopback URLs (only against a server you own)",
    )
    lt.add_argument(
        "--bare",
        action="store_true",
        help="no accounts or HTTP API: game ids 1..GAMES, guest tokens (the Node ws "
        "comparison server of benches/node_ws)",
    )
    lt.add_argument("--no-gc-freeze", action="store_true", help="do not freeze the generator's GC")
    lt.add_argument("--config", metavar="FILE", help="the server's TOML settings file")
    lt.add_argument("--data-dir", help="the server's data directory")
    lt.add_argument("--database-url", help="the server's database URL")


def _settings_from(args: argparse.Namespace) -> Any:
    overrides = {
        key: getattr(args, key, None)
        for key in ("host", "port", "ws_port", "data_dir", "database_url")
    }
    return load_settings(getattr(args, "config", None), overrides=overrides)


def version_info() -> dict[str, Any]:
    """What this build is and which optional parts it has."""
    info: dict[str, Any] = {"version": __version__, "python": sys.version.split()[0]}
    try:
        from goapp import _core  # noqa: F401

        info["core"] = "compiled"
    except ImportError:
        info["core"] = "missing"
    try:
        import uvloop  # noqa: F401

        info["uvloop"] = "available"
    except ImportError:
        info["uvloop"] = "missing"
    info["frozen"] = bool(getattr(sys, "frozen", False))
    return info


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except SettingsError as exc:
        print(f"goapp: configuration error: {exc}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "version":
        for key, value in version_info().items():
            print(f"{key}: {value}")
        return 0

    if args.command == "settings":
        if args.markdown:
            from goapp.settings import settings_markdown

            print(settings_markdown(), end="")
            return 0
        for key, value in load_settings(args.config).redacted().items():
            print(f"{key} = {value}")
        return 0

    if args.command == "serve":
        from goapp.server.app import run_server

        return run_server(_settings_from(args))

    if args.command == "engine":
        return _engine(args)

    if args.command == "bench" and args.bench_command == "report":
        from pathlib import Path

        from goapp.perf.report import write_report

        try:
            md = write_report(Path(args.storage), Path(args.out), last=args.last)
        except FileNotFoundError as exc:
            print(f"goapp bench report: {exc}", file=sys.stderr)
            return 1
        print(md.read_text())
        print(f"written: {md} and {md.parent / 'svg'}/", file=sys.stderr)
        return 0

    if args.command == "bench":
        from goapp.rules.bench import run_core_bench

        report = run_core_bench(seconds=args.seconds)
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            for key, value in report.items():
                print(f"{key}: {value}")
        return 0

    if args.command == "loadtest":
        return _loadtest(args)

    if args.command == "db":
        return asyncio.run(_db(args))
    raise AssertionError(f"unhandled command {args.command}")


def _engine(args: argparse.Namespace) -> int:
    from pathlib import Path

    from goapp.engine import setup

    if args.engine_command == "setup":
        return setup.run(args)

    if args.engine_command == "serve":
        from goapp.engine.remote import run_engine_server

        return run_engine_server(load_settings(args.config), args.listen, args.katago_dir)

    from goapp.engine.katago import engine_check

    paths = setup.installed_paths(Path(args.katago_dir))
    if paths is None or paths.model is None:
        print(
            f"goapp: no KataGo binary and model in {args.katago_dir}; "
            "run `goapp engine setup --dest DIR --model FILE` first",
            file=sys.stderr,
        )
        return 1
    report = asyncio.run(
        engine_check(paths, visits=args.visits, print_fn=None if args.json else print)
    )
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    return 0


def _loadtest(args: argparse.Namespace) -> int:
    from goapp.loadtest import LoadConfig, LoadError, format_report, run_loadtest

    cfg = LoadConfig(
        urls=args.url or ["http://127.0.0.1:4000"],
        clients=args.clients,
        games=args.games,
        spectators=args.spectators,
        rate=args.rate,
        duration=args.duration,
        chat_rate=args.chat_rate,
        reconnects=args.reconnects,
        drain=args.drain,
        bare=args.bare,
        allow_remote=args.allow_remote,
        gc_freeze=not args.no_gc_freeze,
    )
    try:
        cfg.check()
    except LoadError as exc:
        print(f"goapp loadtest: {exc}", file=sys.stderr)
        return 2
    settings = None if args.bare else _settings_from(args)
    to_stdout = args.json == "-"

    def say(msg: str) -> None:
        print(msg, file=sys.stderr if to_stdout else sys.stdout, flush=True)

    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        report = asyncio.run(run_loadtest(cfg, settings, progress=say))
    else:
        report = uvloop.run(run_loadtest(cfg, settings, progress=say))
    text = json.dumps(report, indent=2)
    if to_stdout:
        print(text)
    elif args.json:
        with open(args.json, "w") as fh:
            fh.write(text + "\n")
    print(format_report(report), file=sys.stderr if to_stdout else sys.stdout)
    return 0 if report["ok"] else 1


async def _db(args: argparse.Namespace) -> int:
    from goapp.store import admin

    if args.db_command == "copy":
        report = await admin.copy(args.src, args.dst)
        print(json.dumps(report, indent=2, default=str))
        return 0 if report.get("ok") else 1
    url = args.database_url or load_settings(args.config).effective_database_url
    if args.db_command == "migrate":
        applied = await admin.migrate(url)
        print("\n".join(f"applied {name}" for name in applied) or "up to date")
    elif args.db_command == "status":
        for name, applied_at in await admin.status(url):
            print(f"{name}\t{applied_at or 'pending'}")
    elif args.db_command == "backup":
        report = await admin.backup(url, args.dest)
        print(json.dumps(report, indent=2, default=str))
    return 0
