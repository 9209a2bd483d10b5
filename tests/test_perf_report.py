"""``make bench-save`` and ``goapp bench report``: named baselines with the machine's
description, read back as a Markdown table and SVG trend plots (goapp/perf/report.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from goapp.cli import main
from goapp.perf.report import load_runs, markdown_table, svg_trend, write_report

pytestmark = [pytest.mark.slow]  # runs benches/check.py

ROOT = Path(__file__).resolve().parent.parent
SVG = "{http://www.w3.org/2000/svg}"


def _save(storage: Path, name: str, plant: str = "") -> None:
    """``benches/check.py save`` (what ``make bench-save`` runs) of one cheap benchmark."""
    env = {k: v for k, v in os.environ.items() if k != "GOAPP_BENCH_PLANT_SLOWDOWN"}
    if plant:
        env["GOAPP_BENCH_PLANT_SLOWDOWN"] = plant
    cmd = [sys.executable, "benches/check.py", "save", "--name", name, "--storage", str(storage),
           "--suite", "benches/bench_sgf.py", "-k", "test_write_300_moves",
           "--max-time", "0.1"]  # fmt: skip
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)


def test_saved_runs_keep_the_machine_and_make_a_report(tmp_path: Path) -> None:
    storage = tmp_path / ".benchmarks"
    _save(storage, "before")
    _save(storage, "slower", plant="test_write_300_moves=0.5")  # a planted 50% slowdown
    saved = sorted(storage.rglob("*.json"))
    assert [p.name.split("_", 1)[1] for p in saved] == ["before.json", "slower.json"]
    info = json.loads(saved[0].read_text())
    # pytest-benchmark's own record of the machine and the commit
    assert info["machine_info"]["cpu"]["count"] == os.cpu_count()
    assert info["machine_info"]["cpu"]["brand_raw"]
    assert info["machine_info"]["python_version"].startswith("3.")
    assert len(info["commit_info"]["id"]) == 40

    assert main(["bench", "report", "--storage", str(storage), "--out", str(tmp_path / "r")]) == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert info["machine_info"]["cpu"]["brand_raw"] in md
    assert f"{os.cpu_count()} cores" in md
    row = next(line for line in md.splitlines() if "test_write_300_moves" in line)
    assert "(svg/bench_sgf.py_test_write_300_moves.svg)" in row
    assert float(row.rstrip(" |").rsplit("|", 1)[1]) > 1.2  # last/first: the slowdown shows
    svg = ET.parse(tmp_path / "r" / "svg" / "bench_sgf.py_test_write_300_moves.svg").getroot()
    lines = svg.findall(f"{SVG}polyline")
    assert len(lines) == 2  # min and median
    ys = [float(p.split(",")[1]) for p in lines[1].get("points", "").split()]
    assert len(ys) == 2 and ys[1] < ys[0]  # SVG y grows downwards: the second run is slower


def _run(commit: str, time: str, mins: dict[str, float]) -> dict[str, object]:
    return {
        "machine_info": {"cpu": {"brand_raw": "Test CPU", "count": 2}, "python_version": "3.11.2",
                         "python_implementation": "CPython"},
        "commit_info": {"id": commit * 5, "time": time, "dirty": False},
        "benchmarks": [{"fullname": n, "stats": {"min": m, "median": m * 1.1}}
                       for n, m in mins.items()],
    }  # fmt: skip


def test_runs_are_ordered_by_commit_time_and_gaps_shown(tmp_path: Path) -> None:
    storage = tmp_path / "s"
    (storage / "m").mkdir(parents=True)
    (storage / "check").mkdir()
    files = {
        "0001_late": _run("cccccccc", "2026-03-01T00:00:00", {"b::x": 3e-3, "b::y": 2e-6}),
        "0002_early": _run("aaaaaaaa", "2026-01-01T00:00:00", {"b::x": 1e-3}),
        "0003_mid": _run("bbbbbbbb", "2026-02-01T00:00:00", {"b::x": 2e-3, "b::y": 1e-6}),
    }
    for name, data in files.items():
        (storage / "m" / f"{name}.json").write_text(json.dumps(data))
    # bench-check's scratch rounds and stray files are not history
    (storage / "check" / "head-01.json").write_text(json.dumps(files["0001_late"]))
    (storage / "m" / "notes.json").write_text("[1, 2]")
    runs = load_runs(storage)
    assert [r.name for r in runs] == ["0002_early", "0003_mid", "0001_late"]
    table = markdown_table(runs)
    assert "| [`b::x`](svg/b_x.svg) | 1 ms | 2 ms | 3 ms | 3.00 |" in table
    assert "| [`b::y`](svg/b_y.svg) | - | 1 µs | 2 µs | 2.00 |" in table
    svg = ET.fromstring(svg_trend("b::x", runs))
    points = svg.findall(f"{SVG}polyline")[1].get("points", "").split()
    assert len(points) == 3
    assert [t.text for t in svg.findall(f"{SVG}text")][-4:-1] == [
        "aaaaaaaa",
        "bbbbbbbb",
        "cccccccc",
    ]
    assert write_report(storage, tmp_path / "out", last=2).exists()
    assert "aaaaaaaa" not in (tmp_path / "out" / "report.md").read_text()  # only the last 2


def test_report_without_saved_runs_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "report", "--storage", str(tmp_path), "--out", str(tmp_path)]) == 1
    assert "make bench-save" in capsys.readouterr().err
    assert not (tmp_path / "report.md").exists()
