"""``make bench-check`` catches a planted slowdown and passes an unchanged tree.

Head is this working tree, base is HEAD checked out by ``benches/check.py`` in a temporary
git worktree (its core copied from head's build: same source). Two cheap SGF benchmarks, 5
interleaved rounds, short pytest-benchmark runs: about a minute in all. The slowdown is
the test-only hook of benches/conftest.py (``--plant-slowdown``: head's SGF writer 30%
slower by busy work proportional to its own time). The false-alarm and detection rates
over many full runs are measured outside the tests (benches/README.md, "bench-check").
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLANTED = "test_write_300_moves"


def _check(out: Path, *extra: str) -> tuple[int, dict[str, object], str]:
    cmd = [sys.executable, "benches/check.py", "check", "--base", "HEAD", "--rounds", "5",
           "--suite", "benches/bench_sgf.py", "-k", f"{PLANTED} or test_parse_300_moves_bytes",
           "--max-time", "0.1", "--out", str(out), "--summary", str(out / "step-summary.md"),
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
    assert 1.15 < ratio < 1.45  # the planted 30%, measured
    assert "**REGRESSION**" in (tmp_path / "planted" / "step-summary.md").read_text()
    assert len(list((tmp_path / "planted").glob("base-*.json"))) == 5  # pytest-benchmark JSON

    rc, result, stdout = _check(tmp_path / "unchanged")
    assert rc == 0, stdout
    assert result["regressions"] == []
    assert "No regression." in stdout
