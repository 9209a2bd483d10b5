"""``make bench-check`` catches a planted slowdown and passes an unchanged tree.

Head is this working tree, base is HEAD checked out by ``benches/check.py`` in a temporary
git worktree (its core copied from head's build: same source). Two cheap SGF benchmarks, 6
interleaved rounds (the 90% interval then survives one round disturbed by another process;
with 5 it would not), pytest-benchmark's runs as long as bench-check's (0.5 s a benchmark:
at 0.1 s, the minimum of a run on a saturated machine is not yet the floor and a round
where base was disturbed hid the planted slowdown once at load average 10): about a
minute in all at load average 4 on 2 cores, 2-3 minutes at load average 10. The slowdown is
the test-only hook of benches/conftest.py (``--plant-slowdown``: head's SGF writer 30%
slower by busy work proportional to its own time). The false-alarm and detection rates
over many full runs are measured outside the tests (benches/README.md, "bench-check").
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.slow]  # runs the benchmark suites, twice

ROOT = Path(__file__).resolve().parent.parent
PLANTED = "test_write_300_moves"


def _check(out: Path, *extra: str) -> tuple[int, dict[str, object], str]:
    cmd = [sys.executable, "benches/check.py", "check", "--base", "HEAD", "--rounds", "6",
           "--suite", "benches/bench_sgf.py", "-k", f"{PLANTED} or test_parse_300_moves_bytes",
           "--out", str(out), "--summary", str(out / "step-summary.md"),
           *extra]  # fmt: skip
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode in (0, 1), r.stderr
    return r.returncode, json.loads((out / "result.json").read_text()), r.stdout


def test_bench_check_fails_on_a_planted_slowdown_and_passes_unchanged(tmp_path: Path) -> None:
    rc, result, stdout = _check(tmp_path / "planted", "--plant-slowdown", f"{PLANTED}=0.3")
    assert rc == 1, stdout
    assert result["regressions"] == [f"bench_sgf.py::{PLANTED}"]
    rows = {row["name"]: row for row in result["rows"]}  # type: ignore[attr-defined]
    ratio = rows[f"bench_sgf.py::{PLANTED}"]["comparisons"]["min"]["ratio"]
    assert 1.15 < ratio < 1.6, stdout  # the planted 30%, measured
    assert "**REGRESSION**" in (tmp_path / "planted" / "step-summary.md").read_text()
    assert len(list((tmp_path / "planted").glob("base-*.json"))) == 6  # pytest-benchmark JSON

    rc, result, stdout = _check(tmp_path / "unchanged")
    assert rc == 0, stdout
    assert result["regressions"] == []
    assert "No regression." in stdout


def _load_check() -> Any:
    spec = importlib.util.spec_from_file_location("bench_check", ROOT / "benches" / "check.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_check"] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def test_load_verdict_needs_the_raw_and_the_yardstick_ratio() -> None:
    """The load figures of 6 synthetic rounds: server CPU per move and p99, and the Node
    yardstick's figures measured just before each run."""
    check = _load_check()
    args = argparse.Namespace(threshold=0.10, confidence=0.90)

    def rounds(cpu: list[float], node: list[float]) -> list[dict[str, dict[str, float]]]:
        return [{"load": {"cpu_us_per_move": c, "cpu_us_per_move_per_node": c / n,
                          "p99_ms": 20.0, "p99_ms_per_node": 20.0 / n}}
                for c, n in zip(cpu, node, strict=True)]  # fmt: skip

    def verdict(
        base: list[dict[str, dict[str, float]]], head: list[dict[str, dict[str, float]]]
    ) -> str:
        rows = check.load_rows({"base": base, "head": head}, args)
        return str(rows[0]["verdict"])

    steady = [300.0] * 6
    base = rounds([800.0] * 6, steady)
    # head's server 25% slower on a steady machine: raw and divided agree
    assert verdict(base, rounds([1000.0] * 6, steady)) == "regression"
    # head's runs fell on busier moments (the yardstick was 25% slower then too): no
    assert verdict(base, rounds([1000.0] * 6, [375.0] * 6)) == "same"
    # the yardstick alone was disturbed before head's runs: no
    assert verdict(base, rounds([800.0] * 6, [240.0] * 6)) == "same"
