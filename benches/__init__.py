"""The benchmarks (a package, so that benches/conftest.py is ``benches.conftest`` and never
shadows tests/conftest.py as the top-level ``conftest`` module)."""
