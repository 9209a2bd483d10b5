"""Benchmark history and A/B comparison for maintainers.

* :mod:`goapp.perf.stats`: the paired head/base ratio of an interleaved A/B run, its
  rank-based confidence interval and the regression verdict (used by ``benches/check.py``,
  ``make bench-check``);
* :mod:`goapp.perf.report`: saved pytest-benchmark runs (``make bench-save``) as a Markdown
  table and one SVG trend plot per benchmark (``goapp bench report``).

Nothing here imports the rest of goapp: it reads and writes pytest-benchmark's JSON files.
"""
