"""The load generator (``goapp loadtest``): a short smoke run against a real ``goapp serve``
process on SQLite (200 clients, a few seconds, moves, spectators, chat and reconnects) that
fails on any lost or duplicated event, plus the generator's own bookkeeping: its move
sequence is legal, its seq tracking catches gaps and duplicates, it refuses non-loopback
targets and oversized runs, and the server's GC tuning does what the setting says."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_support import Instance

from goapp.loadtest import LoadConfig, LoadError, legal_sequence
from goapp.loadtest.scenario import MAX_CLIENTS, Client, Game, Run
from goapp.loadtest.stats import Samples
from goapp.rules.game import Game as RulesGame
from goapp.rules.rulesets import Rules

# goapp serve and goapp loadtest processes
pytestmark = [pytest.mark.server]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOAPP_")}
    env["GOAPP_LOG_LEVEL"] = "warning"
    env["GOAPP_ENGINE"] = "none"
    env["GOAPP_METRICS_LISTEN"] = "127.0.0.1:0"  # any free port, not the default 9464
    return env


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A ``goapp serve`` process on SQLite in its own data directory: (base URL, data dir)."""
    # every client connects from 127.0.0.1: lift the per-address socket cap
    instance = Instance("goapp", tmp_path, {"GOAPP_WS_MAX_PER_IP": "0"})
    instance.start()
    try:
        yield instance.url, instance.data_dir
    finally:
        assert instance.stop() == 0, instance.log_tail()


def test_smoke_200_clients_no_lost_or_duplicated_events(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    url, data = server
    report_path = tmp_path / "report.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "goapp",
            "loadtest",
            "--url",
            url,
            "--data-dir",
            str(data),
            "--clients",
            "200",
            "--games",
            "40",
            "--spectators",
            "2",
            "--rate",
            "100",
            "--duration",
            "3",
            "--chat-rate",
            "4",
            "--reconnects",
            "20",
            "--drain",
            "15",
            "--json",
            str(report_path),
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report: dict[str, Any] = json.loads(report_path.read_text())
    for key in ("clients", "games", "moves_acked", "moves_per_s", "messages_per_s", "lost",
                "duplicated", "gaps", "errors", "latency_ms", "reconnects", "ok"):  # fmt: skip
        assert key in report, key
    assert report["ok"] is True
    assert report["clients"] == 200 and report["games"] == 40
    assert report["lost"] == 0 and report["duplicated"] == 0 and report["errors"] == {}
    assert report["unanswered"] == 0 and report["unexpected_closes"] == 0
    # the scenario really ran: moves at about the rate, every receiver saw them
    assert report["moves_acked"] >= 150
    assert report["reconnects"] >= 15
    assert report["chats_acked"] >= 6 and report["chats_received"] > report["chats_acked"]
    for name in ("action_ack", "move_broadcast", "chat_ack", "connect"):
        summary = report["latency_ms"][name]
        assert set(summary) >= {"count", "p50", "p99", "p999", "max"}
        assert summary["count"] > 0
    # each move reaches the opponent and 2 x 120 / 40 = 6 spectators: 7 other receivers
    assert report["latency_ms"]["move_broadcast"]["count"] >= 6 * report["moves_acked"]
    assert "p99.9" in proc.stdout and "OK" in proc.stdout


def test_legal_sequence_is_legal_under_every_rule() -> None:
    """304 moves, alternating, none illegal, nothing ever captured (19x19, Japanese and
    Tromp-Taylor: suicide and superko rules differ, the sequence is legal under both)."""
    moves = legal_sequence(19)
    assert len(moves) == 304 and len(set(moves)) == 304
    for rules in ("japanese", "tromp-taylor"):
        game = RulesGame(19, rules=Rules.from_name(rules))
        for vertex in moves:
            assert game.play(vertex) == 0  # legal (play raises otherwise), no capture


def _run_with_one_watcher() -> tuple[Run, Client, Game]:
    run = Run(LoadConfig(urls=["http://127.0.0.1:1"], clients=3, games=1, bare=True))
    game = Game(7)
    run.games[7] = game
    client = Client(0, ("127.0.0.1", 1), None)
    client.games.append(game)
    client.last[7] = 0
    run.clients.append(client)
    sent: list[Any] = []

    def send(client: Client, obj: dict[str, Any]) -> bool:  # record instead of a socket
        sent.append(obj)
        return True

    run.send = send  # type: ignore[method-assign]
    run.sent = sent  # type: ignore[attr-defined]
    return run, client, game


def test_seq_tracking_counts_duplicates_gaps_and_lost() -> None:
    run, client, _ = _run_with_one_watcher()
    for seq in (1, 2, 2, 3):  # one duplicate
        run.on_event(client, {"game_id": 7, "seq": seq, "kind": "move"}, 0.0)
    assert run.n.duplicates == 1 and client.last[7] == 3
    run.on_event(client, {"game_id": 7, "seq": 6, "kind": "move"}, 0.0)  # 4 and 5 missing
    assert run.n.gaps == 1 and client.last[7] == 3
    # the client resubscribed with since=3, as the protocol says
    resubscribe = run.sent[-1]  # type: ignore[attr-defined]
    assert resubscribe["type"] == "subscribe"
    assert (resubscribe["game_id"], resubscribe["since"]) == (7, 3)
    assert run.lost() == 3  # 4, 5, 6 not (yet) held
    for seq in (4, 5, 6):  # the replay fills the gap
        run.on_event(client, {"game_id": 7, "seq": seq, "kind": "move"}, 0.0)
    assert run.lost() == 0 and client.last[7] == 6


def test_broadcast_latency_excludes_the_mover() -> None:
    run, client, game = _run_with_one_watcher()
    mover = Client(1, ("127.0.0.1", 1), None)
    mover.games.append(game)
    mover.last[7] = 0
    game.sent[1] = (10.0, mover)
    run.on_event(mover, {"game_id": 7, "seq": 1, "kind": "move"}, 10.5)
    run.on_event(client, {"game_id": 7, "seq": 1, "kind": "move"}, 10.25)
    summary = run.broadcast.summary()
    assert summary["count"] == 1 and summary["p50"] == 250.0


def test_samples_percentiles_are_exact() -> None:
    s = Samples()
    for i in range(1, 1001):
        s.add(i / 1000)  # 1..1000 ms
    out = s.summary()
    assert (out["p50"], out["p99"], out["p999"], out["max"]) == (500.0, 990.0, 999.0, 1000.0)
    assert Samples().summary()["p99"] is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"urls": ["http://10.1.2.3:4000"]}, "not a loopback"),
        ({"urls": ["http://example.org:4000"]}, "not a loopback"),
        ({"clients": MAX_CLIENTS + 1}, "--clients"),
        ({"duration": 3600.0}, "--duration"),
        ({"games": 101}, "--games"),
    ],
)
def test_config_refuses(changes: dict[str, Any], message: str) -> None:
    cfg = LoadConfig(**{"urls": ["http://127.0.0.1:4000"], "clients": 200, **changes})
    with pytest.raises(LoadError, match=message):
        cfg.check()
    LoadConfig(urls=["http://10.1.2.3:4000"], allow_remote=True).check()  # explicit opt-in


def test_cli_refuses_remote_target_without_flag() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "goapp", "loadtest", "--url", "http://192.0.2.1:4000"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert proc.returncode == 2 and "not a loopback address" in proc.stderr


def test_tune_gc_freezes_and_raises_thresholds() -> None:
    from goapp.server.app import GC_THRESHOLDS, tune_gc

    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 1000  # the modules and objects of this process
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
