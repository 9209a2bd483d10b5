"""Benchmark regressions: head against a base git ref, interleaved in one run.

    .venv/bin/python benches/check.py check --base main         # make bench-check BASE=main
    .venv/bin/python benches/check.py check --base main --load  # + the load benchmark
    .venv/bin/python benches/check.py save --name before-gc     # make bench-save NAME=...

``check`` checks the base ref out into a temporary git worktree, builds its Cython core
there (copied from head when ``_core.pyx`` and ``setup.py`` are identical) and, when its
``pyproject.toml`` asks for other dependencies, gives it a venv of its own. Then it runs the
pytest-benchmark suites of base and head alternately, ``--rounds`` times (base, head, head,
base, base, head...: the order flips every round so that a machine that slows down steadily
does not favour one side), each run writing pytest-benchmark's ``--benchmark-json``. Each
round gives every benchmark one minimum and one median per side; ``goapp.perf.stats``
turns the rounds' paired head/base ratios into an estimate with a rank-based confidence
interval, and the check fails (exit status 1) on a regression: by default head at least 10%
slower at the minimum with the whole 90% interval above 1, and head's best round 10%
slower than base's best round.

With ``--load``, every round also runs ``benches/load.py`` at a fixed modest load (500
clients, 100 moves/s, 15 s) for both sides, judged on the server's CPU per move and the
move->broadcast p99, each divided by the same figures of the Node.js ``ws`` server
(``--target node``, run just before each goapp run): a yardstick of the machine's speed at
that moment, so that a moment when the machine is busier does not read as a regression.

The rounds' JSON files, ``result.json`` and ``summary.md`` stay in ``--out``
(``.benchmarks/check/`` in head); ``pytest-benchmark compare`` reads the JSON files too.

``save`` runs the suites once with ``--benchmark-save`` (pytest-benchmark stores the
machine's CPU, cores, Python and the commit with the figures in ``.benchmarks/``) and, with
``--load``, adds the load figures (raw and divided by the Node yardstick) to that file;
``goapp bench report`` draws the history.

Exit status: 0 no regression, 1 regression, 2 the check could not run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from goapp.perf.stats import Comparison, Verdict, compare_paired  # noqa: E402

#: The suites of ``make bench-check``: CPU-bound, no service, seconds each. bench_store
#: (disk fsyncs), bench_engine (KataGo) and bench_compare_openspiel measure other things.
DEFAULT_SUITES = ["benches/bench_core.py", "benches/bench_sgf.py", "benches/bench_ws.py"]
#: The fixed load of the ``--load`` part (modest: it must not saturate a 2-core machine).
LOAD_ARGS = ["--clients", "500", "--games", "100", "--rate", "100", "--drain", "5"]
PLANT_ENV = "GOAPP_BENCH_PLANT_SLOWDOWN"  # benches/conftest.py
#: No benchmark uses Hypothesis, and importing its plugin is half of pytest's start-up,
#: which a check pays twice a round.
NO_PLUGINS = ["-p", "no:hypothesispytest"]


def git_safe(repo: Path) -> list[str]:
    """Lets git work in a checkout owned by another user (CI containers run as root)."""
    return ["-c", f"safe.directory={repo}"]


class CheckError(Exception):
    """The check could not run (a build, a checkout, a benchmark failed)."""


@dataclass
class Side:
    """One tree under test: where it is and the Python that runs it."""

    name: str  # "base" or "head"
    root: Path
    python: str
    env: dict[str, str] = field(default_factory=dict)

    def run(self, cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        # The tree first on sys.path: the venv's editable install points at head's tree.
        env = {**os.environ, "PYTHONPATH": str(self.root), **self.env}
        return subprocess.run(cmd, cwd=self.root, env=env, text=True, **kwargs)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _built_core(root: Path) -> Path | None:
    found = sorted(root.glob("goapp/_core.*.so"))
    return found[0] if found else None


def _same_file(a: Path, b: Path) -> bool:
    return a.exists() and b.exists() and a.read_bytes() == b.read_bytes()


def ensure_built(side: Side, donor: Path | None = None) -> None:
    """Build ``side``'s Cython core unless it is up to date; copy ``donor``'s build instead
    when both trees have the same ``_core.pyx`` and ``setup.py`` (the same source)."""
    pyx = side.root / "goapp" / "_core.pyx"
    so = _built_core(side.root)
    if so is not None and so.stat().st_mtime >= pyx.stat().st_mtime:
        return
    if donor is not None and donor != side.root:
        donor_so = _built_core(donor)
        same = all(_same_file(side.root / p, donor / p) for p in ("goapp/_core.pyx", "setup.py"))
        if donor_so is not None and same:
            shutil.copy2(donor_so, side.root / "goapp" / donor_so.name)
            os.utime(side.root / "goapp" / donor_so.name)
            return
    log(f"{side.name}: building the Cython core")
    r = side.run(
        [side.python, "setup.py", "--quiet", "build_ext", "--inplace"],
        capture_output=True,
    )
    if r.returncode != 0:
        raise CheckError(f"{side.name}: the core does not build:\n{r.stdout}{r.stderr}")


def _dependencies(root: Path) -> Any:
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    return project.get("dependencies"), project.get("optional-dependencies")


def python_for(base: Path, head: Path, workdir: Path) -> str:
    """Head's Python when base's ``pyproject.toml`` asks for the same dependencies, else a
    venv of base's own in ``workdir`` (built by base's own Makefile)."""
    if _dependencies(base) == _dependencies(head):
        return sys.executable
    log("base: other dependencies than head: building a venv of its own")
    venv = workdir / "base-venv"
    r = subprocess.run(
        ["make", "-C", str(base), "install", f"VENV={venv}", f"PYTHON={sys.executable}"],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise CheckError(f"base: its venv does not install:\n{r.stdout}{r.stderr}")
    return str(venv / "bin" / "python")


@contextlib.contextmanager
def base_worktree(repo: Path, ref: str, workdir: Path) -> Iterator[Path]:
    """``ref`` checked out (detached) in a temporary git worktree, removed afterwards."""
    path = workdir / "base"
    r = subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            *git_safe(repo),
            "worktree",
            "add",
            "--detach",
            "--quiet",
            str(path),
            ref,
        ],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise CheckError(f"git worktree add {ref}: {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(
            ["git", "-C", str(repo), *git_safe(repo), "worktree", "remove", "--force", str(path)],
            capture_output=True,
        )


def check_imports(side: Side) -> None:
    """Fail early when the side's runs would import another tree's goapp."""
    r = side.run([side.python, "-c", "import goapp; print(goapp.__file__)"], capture_output=True)
    where = Path(r.stdout.strip()).resolve()
    if r.returncode != 0 or side.root.resolve() not in where.parents:
        raise CheckError(f"{side.name}: imports goapp from {where or r.stderr}, not its tree")


def run_suites(side: Side, args: argparse.Namespace, out: Path) -> dict[str, dict[str, float]]:
    """One run of the suites: ``{benchmark name: {"min": s, "median": s}}``."""
    cmd = [
        side.python, "-m", "pytest", *args.suite, "--benchmark-only", "-q",
        "-p", "no:randomly", "-p", "no:cacheprovider", *NO_PLUGINS,
        f"--benchmark-json={out}", f"--benchmark-max-time={args.max_time}",
        f"--benchmark-min-rounds={args.min_rounds}",
    ]  # fmt: skip
    if args.k:
        cmd += ["-k", args.k]
    r = side.run(cmd, capture_output=True)
    if r.returncode != 0 or not out.exists():
        raise CheckError(f"{side.name}: the benchmarks failed:\n{r.stdout[-4000:]}{r.stderr}")
    data = json.loads(out.read_text())
    return {
        b["fullname"]: {"min": b["stats"]["min"], "median": b["stats"]["median"]}
        for b in data["benchmarks"]
    }


def run_load(side: Side, args: argparse.Namespace, out: Path, target: str) -> dict[str, float]:
    """One ``benches/load.py`` run: server CPU per move (µs) and move->broadcast p99 (ms)."""
    cmd = [side.python, "benches/load.py", *LOAD_ARGS, "--duration", str(args.load_duration),
           "--target", target, "--json", str(out)]  # fmt: skip
    r = side.run(cmd, capture_output=True)
    if not out.exists():
        raise CheckError(f"{side.name}: the {target} load run failed:\n{r.stdout}{r.stderr}")
    report = json.loads(out.read_text())
    p99 = report["latency_ms"]["move_broadcast"]["p99"]
    if r.returncode != 0 or p99 is None:
        raise CheckError(f"{side.name}: the {target} load run lost events:\n{r.stdout}")
    return {"cpu_us_per_move": report["server"]["cpu_us_per_move"], "p99_ms": p99}


def load_round(
    side: Side, yardstick: Side, args: argparse.Namespace, out: Path, tag: str
) -> dict[str, float]:
    """The Node yardstick, then the side's goapp server: each figure raw and divided by the
    yardstick's (``..._per_node``: how many times the Node server's cost, which tracks how
    fast the machine is at that moment)."""
    node = run_load(yardstick, args, out / f"node-{tag}.json", "node")
    goapp = run_load(side, args, out / f"{tag}.json", "goapp")
    figures = dict(goapp)
    for key, value in goapp.items():
        figures[f"node_{key}"] = node[key]
        figures[f"{key}_per_node"] = value / max(node[key], 1e-9)
    return figures


# -- the report ------------------------------------------------------------------------


def _fmt_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def _fmt_ratio(c: Comparison) -> str:
    if c.verdict is Verdict.TOO_FEW:
        return f"{c.ratio:.3f} (no interval)"
    return f"{c.ratio:.3f} [{c.low:.3f}, {c.high:.3f}]"


def markdown(rows: list[dict[str, Any]], header: str) -> str:
    lines = [
        header,
        "",
        "| benchmark | base min | head min | head/base at the min [CI] "
        "| head/base at the median [CI] | verdict |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        verdict = row["verdict"]
        mark = {"regression": "**REGRESSION**", "improvement": "improvement"}.get(verdict, verdict)
        lines.append(
            f"| `{row['name']}` | {row['base_min']} | {row['head_min']} | {row['ratio_min']} "
            f"| {row['ratio_median']} | {mark} |"
        )
    return "\n".join(lines) + "\n"


def judge(
    base: list[dict[str, dict[str, float]]],
    head: list[dict[str, dict[str, float]]],
    args: argparse.Namespace,
    judged: str = "min",
    fmt: Any = _fmt_time,
) -> list[dict[str, Any]]:
    """One row per benchmark present on both sides. ``judged`` is the figure the verdict
    goes by; the other column is shown for information."""
    rows = []
    first, second = list(next(iter(head[0].values())))[:2]
    for name in sorted(set(base[0]) & set(head[0])):
        figures = {}
        for stat in base[0][name]:
            figures[stat] = compare_paired(
                [r[name][stat] for r in base],
                [r[name][stat] for r in head],
                threshold=args.threshold,
                level=args.confidence,
            )
        rows.append(
            {
                "name": name.removeprefix("benches/"),
                "base_min": fmt(min(r[name][first] for r in base)),
                "head_min": fmt(min(r[name][first] for r in head)),
                "ratio_min": _fmt_ratio(figures[first]),
                "ratio_median": _fmt_ratio(figures[second]),
                "verdict": figures[judged].verdict.value,
                "comparisons": {k: vars(v) for k, v in figures.items()},
            }
        )
    for name in sorted(set(head[0]) - set(base[0])):
        head_min = fmt(min(r[name][first] for r in head))
        rows.append({"name": name, "base_min": "-", "head_min": head_min,
                     "ratio_min": "-", "ratio_median": "-", "verdict": "new"})  # fmt: skip
    return rows


def check(args: argparse.Namespace) -> int:
    head_root = Path(args.head).resolve()
    out = Path(args.out or head_root / ".benchmarks" / "check").resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    with (
        tempfile.TemporaryDirectory(prefix="goapp-bench-check-") as tmp,
        base_worktree(head_root, args.base, Path(tmp)) as base_root,
    ):
        head = Side("head", head_root, sys.executable)
        if args.plant_slowdown:  # the test-only hook of benches/conftest.py, head only
            head.env[PLANT_ENV] = args.plant_slowdown
        base = Side("base", base_root, python_for(base_root, head_root, Path(tmp)))
        ensure_built(head)
        ensure_built(base, donor=head_root)
        for side in (base, head):
            check_imports(side)
        runs: dict[str, list[dict[str, dict[str, float]]]] = {"base": [], "head": []}
        loads: dict[str, list[dict[str, dict[str, float]]]] = {"base": [], "head": []}
        t0 = time.monotonic()
        for i in range(args.rounds):
            order = (base, head) if i % 2 == 0 else (head, base)
            for side in order:
                tag = f"{side.name}-{i + 1:02d}"
                runs[side.name].append(run_suites(side, args, out / f"{tag}.json"))
                if args.load:
                    figures = load_round(side, head, args, out, f"load-{tag}")
                    loads[side.name].append({"load": figures})
            log(f"round {i + 1}/{args.rounds} done ({time.monotonic() - t0:.0f} s)")
    rows = judge(runs["base"], runs["head"], args)
    if args.load:
        rows += load_rows(loads, args)
    regressions = [r["name"] for r in rows if r["verdict"] == "regression"]
    header = (
        f"### Benchmarks: head vs `{args.base}`\n\n{args.rounds} interleaved rounds on one "
        f"machine; ratio head/base (>1: head slower), {args.confidence:.0%} rank-based "
        f"interval; regression = at least {args.threshold:.0%} slower at the min with the "
        f"interval above 1 and the best rounds (base min, head min) {args.threshold:.0%} "
        "apart. " + (f"**{len(regressions)} regression(s).**" if regressions else "No regression.")
    )
    text = markdown(rows, header)
    if regressions and args.accept_regressions:
        text += f"\nRegressions accepted ({args.accept_regressions}): the check passes.\n"
    print(text)
    (out / "summary.md").write_text(text)
    if args.summary:
        with open(args.summary, "a") as fh:
            fh.write(text + "\n")
    result = {"base": args.base, "rounds": args.rounds, "threshold": args.threshold,
              "confidence": args.confidence, "rows": rows, "regressions": regressions}  # fmt: skip
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return 1 if regressions and not args.accept_regressions else 0


def load_rows(
    loads: dict[str, list[dict[str, dict[str, float]]]], args: argparse.Namespace
) -> list[dict[str, Any]]:
    """The load figures as rows: server CPU per move and p99. The first ratio is of the
    figures divided by the Node yardstick's, the second of the raw figures; a regression
    needs both to say so: a moment of a busier machine that the yardstick caught (raw
    only) or a yardstick run that was itself disturbed (divided only) fails nothing."""
    rows = []
    for metric, unit in (("cpu_us_per_move", "µs"), ("p99_ms", "ms")):
        pick = [
            [{"load": {"per_node": r["load"][f"{metric}_per_node"], "raw": r["load"][metric]}}
             for r in loads[side]]
            for side in ("base", "head")
        ]  # fmt: skip
        (row,) = judge(pick[0], pick[1], args, judged="per_node", fmt=lambda x: f"{x:.3g}")
        verdicts = {c["verdict"] for c in row["comparisons"].values()}
        row["verdict"] = str(verdicts.pop() if len(verdicts) == 1 else Verdict.SAME)
        row["name"] = f"load.py: {metric} ÷ Node's; raw {unit} in the second ratio"
        rows.append(row)
    return rows


def save(args: argparse.Namespace) -> int:
    """``make bench-save``: pytest-benchmark's ``--benchmark-save`` (+ the load figures)."""
    storage = Path(args.storage).resolve()
    cmd = [sys.executable, "-m", "pytest", *args.suite, "--benchmark-only", "-q",
           "-p", "no:randomly", "-p", "no:cacheprovider", *NO_PLUGINS,
           f"--benchmark-save={args.name}",
           f"--benchmark-storage=file://{storage}",
           f"--benchmark-max-time={args.max_time}"]  # fmt: skip
    if args.k:
        cmd += ["-k", args.k]
    before = set(storage.rglob("*.json"))
    if subprocess.run(cmd, cwd=ROOT).returncode != 0:
        return 2
    (saved,) = set(storage.rglob("*.json")) - before - set(storage.glob("check/*.json"))
    if args.load:
        side = Side("head", ROOT, sys.executable)
        with tempfile.TemporaryDirectory() as tmp:
            figures = load_round(side, side, args, Path(tmp), "load")
        data = json.loads(saved.read_text())
        for key, value in figures.items():
            data["benchmarks"].append(_load_entry(key, value))
        saved.write_text(json.dumps(data, indent=4))
    print(f"saved {saved}")
    return 0


def _load_entry(key: str, value: float) -> dict[str, Any]:
    """A load figure in pytest-benchmark's shape (one round: min = median = the figure)."""
    stats: dict[str, Any] = dict.fromkeys(
        ("min", "max", "mean", "median", "q1", "q3", "ld15iqr", "hd15iqr"), value
    )
    stats.update(stddev=0, iqr=0, rounds=1, iterations=1, total=value, outliers="0;0",
                 iqr_outliers=0, stddev_outliers=0, ops=1 / value if value else 0)  # fmt: skip
    return {"group": "load", "name": f"load_{key}", "fullname": f"benches/load.py::{key}",
            "params": None, "param": None, "extra_info": {}, "options": {},
            "stats": stats}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="head against --base, interleaved (make bench-check)")
    c.add_argument("--base", required=True, help="git ref to compare with (main, a commit)")
    c.add_argument("--head", default=str(ROOT), help="the tree under test (default: this one)")
    c.add_argument("--rounds", type=int, default=6, help="A/B rounds (default 6)")
    c.add_argument("--threshold", type=float, default=0.10, help="slowdown that fails (0.10)")
    c.add_argument("--confidence", type=float, default=0.90, help="interval level (0.90)")
    c.add_argument("--min-rounds", type=int, default=5, help="pytest-benchmark min rounds")
    c.add_argument("--summary", help="append the Markdown table here ($GITHUB_STEP_SUMMARY)")
    c.add_argument("--out", help="rounds' JSON and the result (head/.benchmarks/check)")
    c.add_argument(
        "--accept-regressions",
        metavar="WHY",
        help="report regressions but exit 0 (CI: the benchmark-regression-ok label)",
    )
    c.add_argument("--plant-slowdown", metavar="PATTERN=FRACTION", help="TEST ONLY: slow head")
    s = sub.add_parser("save", help="keep a named baseline in .benchmarks (make bench-save)")
    s.add_argument("--name", required=True)
    s.add_argument("--storage", default=str(ROOT / ".benchmarks"), help="(.benchmarks)")
    for q in (c, s):
        q.add_argument("--suite", nargs="+", default=DEFAULT_SUITES, help="benchmark files")
        q.add_argument("-k", help="pytest -k filter")
        q.add_argument("--max-time", type=float, default=0.5, help="pytest-benchmark's (0.5 s)")
        q.add_argument("--load", action="store_true", help="also the load benchmark (long)")
        q.add_argument("--load-duration", type=float, default=15.0, help="load seconds (15)")
    args = p.parse_args(argv)
    # SIGTERM (CI cancelling the job) unwinds like Ctrl-C: the running benchmark is killed
    # and the temporary worktree removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return check(args) if args.command == "check" else save(args)
    except CheckError as exc:
        log(f"bench-check could not run: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
