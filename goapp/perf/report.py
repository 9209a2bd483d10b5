"""``goapp bench report``: saved benchmark runs as a Markdown table and SVG trend plots.

Reads every run that ``make bench-save`` (pytest-benchmark's ``--benchmark-save``) stored
under ``.benchmarks/`` (``.benchmarks/<machine>/NNNN_<name>.json``; the A/B check's scratch
files in ``.benchmarks/check/`` are skipped), orders the runs by the time of their commit,
and writes into the output folder:

* ``report.md``: the runs (name, commit, date, CPU, cores, Python) and one row per
  benchmark with its minimum in each run (the last ``--last`` runs) and last/first;
* ``svg/<benchmark>.svg``: the minimum (solid) and the median (dashed) of each run, one
  point per run, left to right in commit order. A few lines of hand-written SVG: no
  plotting library.

Runs of different machines are listed together (the table says which machine each ran on):
compare a figure only with the same machine's, or use the ``*_per_node`` load figures,
which are divided by the Node.js yardstick measured in the same run.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

__all__ = ["SavedRun", "load_runs", "markdown_table", "svg_trend", "write_report"]


@dataclass(frozen=True)
class SavedRun:
    """One saved pytest-benchmark run."""

    name: str  # the file name without .json, e.g. 0003_before-gc
    commit: str  # short id, "+" when the tree was dirty
    commit_time: str
    machine: str  # CPU model, cores, Python
    stats: dict[str, dict[str, float]]  # benchmark fullname -> pytest-benchmark stats


def _machine(info: dict[str, Any]) -> str:
    cpu = info.get("cpu") or {}
    brand = cpu.get("brand_raw") or info.get("processor") or "?"
    cores = cpu.get("count", "?")
    return f"{brand}, {cores} cores, {info.get('python_implementation', 'Python')} " + str(
        info.get("python_version", "?")
    )


def load_runs(storage: Path) -> list[SavedRun]:
    """Every saved run under ``storage``, oldest commit first."""
    runs = []
    for path in sorted(storage.rglob("*.json")):
        if "check" in path.relative_to(storage).parts[:-1]:
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or "benchmarks" not in data:
            continue
        commit = data.get("commit_info") or {}
        short = str(commit.get("id") or "?")[:8] + ("+" if commit.get("dirty") else "")
        runs.append(
            SavedRun(
                name=path.stem,
                commit=short,
                commit_time=str(commit.get("time") or data.get("datetime") or ""),
                machine=_machine(data.get("machine_info") or {}),
                stats={b["fullname"]: b["stats"] for b in data["benchmarks"]},
            )
        )
    return sorted(runs, key=lambda r: (r.commit_time, r.name))


def _fmt(value: float, unit_of: str) -> str:
    if not unit_of.startswith("benches/load.py"):  # seconds
        for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
            if value >= scale:
                return f"{value / scale:.3g} {unit}"
        return f"{value * 1e9:.3g} ns"
    return f"{value:.4g}"  # load figures carry their unit in their name


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name.removeprefix("benches/")).strip("_")


def markdown_table(runs: list[SavedRun], last: int = 8, svg_dir: str | None = "svg") -> str:
    """The runs, then one row per benchmark: its minimum in each of the ``last`` runs."""
    shown = runs[-last:]
    lines = ["| run | commit | commit time | machine |", "|---|---|---|---|"]
    lines += [f"| {r.name} | `{r.commit}` | {r.commit_time} | {r.machine} |" for r in shown]
    lines += ["", "Minimum of each benchmark per run (oldest commit first):", ""]
    head = "| benchmark | " + " | ".join(f"`{r.commit}`" for r in shown) + " | last/first |"
    lines += [head, "|---|" + "---:|" * (len(shown) + 1)]
    names = sorted({n for r in shown for n in r.stats})
    for name in names:
        mins = [r.stats[name]["min"] if name in r.stats else None for r in shown]
        cells = ["-" if m is None else _fmt(m, name) for m in mins]
        known = [m for m in mins if m is not None]
        change = f"{known[-1] / known[0]:.2f}" if len(known) >= 2 and known[0] else "-"
        label = f"`{name.removeprefix('benches/')}`"
        if svg_dir is not None:
            label = f"[{label}]({svg_dir}/{_slug(name)}.svg)"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {change} |")
    return "\n".join(lines) + "\n"


def svg_trend(name: str, runs: list[SavedRun], width: int = 640, height: int = 240) -> str:
    """One benchmark's minimum (solid) and median (dashed) over the runs, as SVG text."""
    points = [(r.commit, r.stats[name]) for r in runs if name in r.stats]
    left, right, top, bottom = 70, 45, 30, 50
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = max((s["median"] for _, s in points), default=1.0) * 1.1 or 1.0

    def xy(i: int, value: float) -> str:
        x = left + (plot_w * i / (len(points) - 1) if len(points) > 1 else plot_w / 2)
        y = top + plot_h * (1 - value / top_value)
        return f"{x:.1f},{y:.1f}"

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="18" font-size="13">{escape(name.removeprefix("benches/"))}</text>',
    ]
    for k in range(5):  # horizontal grid lines with their values
        value = top_value * k / 4
        y = top + plot_h * (1 - k / 4)
        out.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#ddd"/>'
        )
        out.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(_fmt(value, name) if value else '0')}</text>"
        )
    for stat, dash in (("median", ' stroke-dasharray="4 3"'), ("min", "")):
        line = " ".join(xy(i, s[stat]) for i, (_, s) in enumerate(points))
        out.append(f'<polyline points="{line}" fill="none" stroke="#1f5fa8"{dash}/>')
    for i, (commit, s) in enumerate(points):
        px, py = xy(i, s["min"]).split(",")
        out.append(f'<circle cx="{px}" cy="{py}" r="3" fill="#1f5fa8"/>')
        out.append(
            f'<text x="{px}" y="{height - bottom + 16}" text-anchor="middle">'
            f"{escape(commit)}</text>"
        )
    out.append(
        f'<text x="{left}" y="{height - 10}">min (solid), median (dashed); '
        "commits oldest first</text>"
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_report(storage: Path, out: Path, last: int = 8) -> Path:
    """``report.md`` and ``svg/*.svg`` in ``out``; returns the Markdown file's path."""
    runs = load_runs(storage)
    if not runs:
        raise FileNotFoundError(f"no saved benchmark runs under {storage} (make bench-save)")
    (out / "svg").mkdir(parents=True, exist_ok=True)
    for name in sorted({n for r in runs for n in r.stats}):
        (out / "svg" / f"{_slug(name)}.svg").write_text(svg_trend(name, runs[-last:]))
    md = out / "report.md"
    md.write_text("## Benchmark history\n\n" + markdown_table(runs, last))
    return md
