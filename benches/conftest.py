"""Benchmark fixtures shared by the suites.

``GOAPP_BENCH_PLANT_SLOWDOWN`` is a TEST-ONLY hook for ``benches/check.py`` (``make
bench-check``) and its test: ``PATTERN=FRACTION`` (for example ``test_write_300_moves=0.3``)
makes every benchmark whose node id contains PATTERN that much slower, by spinning after each
call of the measured function for FRACTION of the time the call took. It proves that the
A/B check catches a slowdown of known size; unset (always, outside that test), the
``benchmark`` fixture is pytest-benchmark's own, untouched.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

PLANT_ENV = "GOAPP_BENCH_PLANT_SLOWDOWN"


def _slowed(fn: Callable[..., Any], fraction: float) -> Callable[..., Any]:
    def slower(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        until = t0 + (time.perf_counter() - t0) * (1 + fraction)
        while time.perf_counter() < until:
            pass
        return result

    return slower


class _SlowedBenchmark(BenchmarkFixture):
    """pytest-benchmark's fixture with the measured function slowed (see the docstring).
    The plugin insists on an instance of its class, so the fixture's class is swapped."""

    plant_fraction = 0.0

    def __call__(self, function_to_benchmark: Any, *args: Any, **kwargs: Any) -> Any:
        slowed = _slowed(function_to_benchmark, self.plant_fraction)
        return super().__call__(slowed, *args, **kwargs)

    def pedantic(self, target: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return super().pedantic(_slowed(target, self.plant_fraction), *args, **kwargs)


@pytest.fixture
def benchmark(benchmark: Any, request: pytest.FixtureRequest) -> Any:
    spec = os.environ.get(PLANT_ENV)
    if not spec:
        return benchmark
    pattern, _, fraction = spec.rpartition("=")
    if pattern and pattern in request.node.nodeid:
        benchmark.__class__ = _SlowedBenchmark
        benchmark.plant_fraction = float(fraction)
    return benchmark
