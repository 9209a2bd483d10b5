"""Run the SGF upload path over a folder of real SGF files and count what it accepts.

    .venv/bin/python benches/sgf_import_corpus.py FOLDER [--show N] [--json]

Every ``*.sgf`` file under FOLDER (any case, recursively) goes through what
``POST /api/sgf`` does after reading the body: the size cap, then
``goapp.server.api.games.review_sgf`` (parse, read the record, replay the main line
through the rules core). The output counts accepted files, rejected files grouped by
reason (the error text with its specifics, such as points, numbers and line/column,
replaced by placeholders), crashes (any other exception: there must be none) and the
slowest file. The files are data: keep them outside the repository.
"""

from __future__ import annotations

import argparse
import collections
import json
import pathlib
import re
import sys
import time
import traceback

from goapp.rules.sgf import SgfError
from goapp.server.api.games import MAX_SGF_BYTES, review_sgf

# Specifics replaced so that errors of one kind group together.
_PLACEHOLDERS = [
    (re.compile(r"^line \d+, column \d+: "), ""),
    (re.compile(r"'[^']*'"), "'…'"),
    (re.compile(r"\[[^\]]*\]"), "[…]"),
    (re.compile(r"\b[A-HJ-Z]\d{1,2}\b"), "V"),
    (re.compile(r"\d+(\.\d+)?"), "N"),
    (re.compile(r"U\+[0-9A-F]{4}"), "U+…"),
]


def reason_of(message: str) -> str:
    for pattern, placeholder in _PLACEHOLDERS:
        message = pattern.sub(placeholder, message)
    return message


def import_file(data: bytes) -> str | None:
    """None when the upload path accepts ``data``, else the reason it refuses it."""
    if len(data) > MAX_SGF_BYTES:
        return f"413: larger than {MAX_SGF_BYTES} bytes"
    try:
        review_sgf(data)
    except SgfError as exc:
        return reason_of(str(exc))
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=pathlib.Path)
    parser.add_argument("--show", type=int, default=3, help="example files per reason")
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    args = parser.parse_args(argv)
    files = sorted(p for p in args.folder.rglob("*") if p.suffix.lower() == ".sgf" and p.is_file())
    accepted = 0
    rejected: collections.Counter[str] = collections.Counter()
    examples: dict[str, list[str]] = collections.defaultdict(list)
    crashes: list[tuple[str, str]] = []
    slowest = (0.0, "")
    started = time.perf_counter()
    for path in files:
        data = path.read_bytes()
        t0 = time.perf_counter()
        try:
            reason = import_file(data)
        except Exception:
            crashes.append((str(path), traceback.format_exc(limit=3)))
            continue
        finally:
            elapsed = time.perf_counter() - t0
            if elapsed > slowest[0]:
                slowest = (elapsed, str(path))
        if reason is None:
            accepted += 1
        else:
            rejected[reason] += 1
            if len(examples[reason]) < args.show:
                examples[reason].append(str(path.relative_to(args.folder)))
    total_s = time.perf_counter() - started
    summary = {
        "files": len(files),
        "accepted": accepted,
        "rejected": sum(rejected.values()),
        "crashes": len(crashes),
        "reasons": dict(rejected.most_common()),
        "slowest_s": round(slowest[0], 4),
        "slowest_file": slowest[1],
        "total_s": round(total_s, 2),
    }
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        print(
            f"{len(files)} files: {accepted} accepted, {summary['rejected']} rejected, "
            f"{len(crashes)} crashes; {total_s:.1f} s in all, slowest {slowest[0] * 1000:.1f} ms "
            f"({slowest[1]})"
        )
        for reason, count in rejected.most_common():
            print(f"{count:6d}  {reason}")
            for example in examples[reason]:
                print(f"        e.g. {example}")
    for path, trace in crashes:
        print(f"CRASH {path}\n{trace}", file=sys.stderr)
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
